//! Every exit path under network faults: 5% TCP packet loss (a network
//! namespace whose loopback drops packets on the input hook, so senders must
//! detect the loss and retransmit, see `common/netns.rs`; needs root) and 100 ms one-way delay (a delaying proxy in front of the server,
//! see `common/proxy.rs`; no root needed). Requirement: every exit path still
//! closes cleanly; a fast close takes about one round trip at most; with
//! `--close-wait` the close is bounded by `--close-timeout`.
//!
//! Tests are named `<fault>::<path>::<tls version>`. Each prints one
//! `FAULT ...` line with the measured close (see `--nocapture`).

#[macro_use]
mod common;

use common::netns::{LossyNetns, netns_available};
use common::proxy::DelayProxy;
use common::*;
use std::ops::Range;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// One-way delay of the proxy (round trip: twice this).
const DELAY: Duration = Duration::from_millis(100);
const LOSS_PERCENT: u32 = 5;
/// s_server's port inside a namespace (a fresh namespace has every port free).
const NS_PORT: u16 = 4433;
/// Bound on waits for events that retransmissions may hold back (a segment
/// lost three times in a row costs 0.2 + 0.4 + 0.8 + 1.6 s; a lost SYN 1 s,
/// then 3 s).
const T: Duration = Duration::from_secs(30);
/// Client and server get generous bounds so that retransmissions do not fail
/// the test; the paths' own ends are what is tested.
const CLOSE_TIMEOUT: &str = "10s";
const CONNECT_TIMEOUT: &str = "20s";

/// The pattern's line length: payloads are cut at whole lines.
const LINE: usize = 31;
/// Client → server, ~62 KiB: about 45 segments at MTU 1500, so that with
/// the ACKs each case loses a few packets on average.
const C2S_BYTES: usize = LINE * 2048;
/// s_server → client, in ONE write to s_server's stdin: at most a pipe's
/// atomic 4 KiB, so s_server reads it in one piece and looks only at its
/// first byte (a digit) for commands.
const S2C_LINES: usize = 128;
/// Python peer → client (~180 segments).
const PEER_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Loss,
    Delay,
}

macro_rules! fault_cases {
    ($($name:ident => $f:expr;)*) => {
        mod loss {
            use super::*;
            per_version! { $($name => |tls| run(Fault::Loss, tls, $f);)* }
        }
        mod delay {
            use super::*;
            per_version! { $($name => |tls| run(Fault::Delay, tls, $f);)* }
        }
    };
}

fault_cases! {
    stdin_eof_wait => stdin_eof_wait();
    stdin_eof_half_close => stdin_eof_half_close();
    stdin_eof_close => stdin_eof_close();
    stdin_eof_ignore_then_sigterm => stdin_eof_ignore_then_sigterm();
    escape => escape();
    sigint => signal(SIGINT);
    sigterm => signal(SIGTERM);
    sighup => signal(SIGHUP);
    quit_on_line => quit_on_line();
    server_close_notify => server_close_notify();
    server_truncation => server_truncation();
    close_wait_bounded => close_wait_bounded();
}

fn null() -> Value {
    Value::Null
}

/// Where one case runs: the fault, the certificates, and what keeps the fault
/// alive (the namespace or the proxy). Declare it first in a test, so that it
/// is dropped last, after the processes that run through it.
struct Rig {
    fault: Fault,
    tls: Tls,
    pki: Pki,
    ns: Option<LossyNetns>,
    proxy: Option<DelayProxy>,
}

impl Rig {
    /// None when loss cannot be made here (SKIP printed; panics under CI).
    fn new(fault: Fault, tls: Tls) -> Option<Rig> {
        let ns = match fault {
            Fault::Loss if !netns_available() => return None,
            Fault::Loss => Some(LossyNetns::new(LOSS_PERCENT)),
            Fault::Delay => None,
        };
        Some(Rig {
            fault,
            tls,
            pki: Pki::new(),
            ns,
            proxy: None,
        })
    }

    fn prefix(&self) -> Vec<&str> {
        match &self.ns {
            Some(ns) => ns.prefix().to_vec(),
            None => Vec::new(),
        }
    }

    fn s_server(&self) -> SServer {
        match &self.ns {
            Some(_) => SServer::start_in(&self.prefix(), NS_PORT, &self.pki.server, self.tls, &[]),
            None => SServer::start(&self.pki, self.tls),
        }
    }

    fn py_peer(&self, mode: &str, extra: &[&str]) -> PyPeer {
        PyPeer::start_in(&self.prefix(), &self.pki.server, self.tls, mode, extra)
    }

    /// Starts gracetls against the server on `server_port`: through the
    /// proxy under delay, inside the namespace under loss. Adds the generous
    /// timeouts unless `extra` sets `--close-timeout` itself.
    fn client(&mut self, server_port: u16, extra: &[&str]) -> Client {
        let port = match self.fault {
            Fault::Delay => {
                let proxy = DelayProxy::start(server_port, DELAY);
                let port = proxy.port;
                self.proxy = Some(proxy);
                port
            }
            Fault::Loss => server_port,
        };
        let mut flags = vec!["--connect-timeout", CONNECT_TIMEOUT];
        if !extra.contains(&"--close-timeout") {
            flags.extend(["--close-timeout", CLOSE_TIMEOUT]);
        }
        flags.extend_from_slice(extra);
        Client::spawn_in(
            &self.prefix(),
            client_args(&self.pki, "127.0.0.1", port, &flags),
        )
    }

    fn rtt_ms(&self) -> u64 {
        (DELAY * 2).as_millis() as u64
    }

    /// Prints the case's one-line figure: the close as the client reports
    /// it, plus what the fault did.
    fn figure(&self, case: &str, c: &Client, st: ExitStatus, extra: &str) {
        let report = c.report(&[self]);
        let fault = match self.fault {
            Fault::Loss => format!("loss {LOSS_PERCENT}%"),
            Fault::Delay => format!("delay {}ms", DELAY.as_millis()),
        };
        let mut net = String::new();
        if let Some(ns) = &self.ns {
            let dropped = ns.dropped_packets().map_or("?".into(), |n| n.to_string());
            let segs = ns
                .tcp_segments()
                .map_or("?".into(), |(re, out)| format!("{re}/{out}"));
            net = format!(" dropped={dropped} retransmitted/sent={segs}");
        }
        if let Some(proxy) = &self.proxy {
            net = format!(" proxy_resets={}", proxy.resets());
        }
        println!(
            "FAULT {fault:<10} TLS{} {case:<30} close_ms={:<5} duration_ms={:<5} {}{extra}{net}",
            self.tls.number(),
            report["close_ms"],
            report["duration_ms"],
            describe_status(Some(st)),
        );
    }

    /// Under delay, a fast close takes about a round trip (it waits for the server's
    /// answer to our close_notify, not for anything more): 3 RTT as a sanity bound.
    fn assert_close_within_rtts(&self, c: &Client, rtts: u64) {
        if self.fault != Fault::Delay {
            return;
        }
        let report = c.report(&[self]);
        let close_ms = report["close_ms"].as_u64().unwrap_or(u64::MAX);
        let bound = rtts * self.rtt_ms();
        assert!(
            close_ms < bound,
            "the close took {close_ms} ms, more than {rtts} round trips ({bound} ms) through \
             the {} ms delay{}{}",
            DELAY.as_millis(),
            c.dump(),
            self.dump()
        );
    }
}

impl Dump for Rig {
    fn dump(&self) -> String {
        match (&self.ns, &self.proxy) {
            (Some(ns), _) => ns.dump(),
            (None, Some(p)) => p.dump(),
            (None, None) => String::new(),
        }
    }
}

/// The client's payload: whole pattern lines, so that `~.` after it starts a
/// line.
fn c2s_payload() -> Vec<u8> {
    payload_pattern(C2S_BYTES)
}

/// The lines s_server sends (pattern lines start with a digit, never with an
/// s_server command letter).
fn s2c_lines() -> Vec<String> {
    String::from_utf8(payload_pattern(S2C_LINES * LINE))
        .expect("the pattern is ASCII")
        .lines()
        .map(str::to_string)
        .collect()
}

fn s2c_bytes() -> Vec<u8> {
    payload_pattern(S2C_LINES * LINE)
}

/// What [`session_up`] makes the client send.
const READY: &[u8] = b"client-ready\n";

/// Waits until the session is up (a line from the client reached s_server),
/// so that what follows measures the close, not the handshake.
fn session_up(c: &mut Client, srv: &SServer, rig: &Rig) {
    c.write_stdin(READY, &[srv, rig]);
    srv.expect_log("client-ready\n", T, &[&*c, rig]);
}

/// Sends the client payload and waits until s_server printed all of it (so
/// the session is up and every byte went through the fault).
fn send_payload_and_wait(c: &mut Client, srv: &SServer, rig: &Rig) {
    let payload = c2s_payload();
    c.write_stdin(&payload, &[srv, rig]);
    assert_server_got_payload(c, srv, rig);
}

fn assert_server_got_payload(c: &Client, srv: &SServer, rig: &Rig) {
    let payload = c2s_payload();
    let ok = srv.log.wait_until(T, |b, eof| contains(b, &payload) || eof);
    assert!(
        ok && contains(&srv.log.bytes(), &payload),
        "s_server did not receive the client's {} bytes intact within {T:?}{}{}{}",
        payload.len(),
        c.dump(),
        srv.dump(),
        rig.dump()
    );
}

/// s_server sends its payload; waits until the client delivered it.
fn server_sends_payload(c: &Client, srv: &mut SServer, rig: &Rig) {
    let lines = s2c_lines();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    srv.send_lines(&refs);
    let want = s2c_bytes();
    assert!(
        c.stdout.wait_len(want.len(), T) && c.stdout_bytes() == want,
        "the client did not deliver s_server's {} bytes within {T:?}: {}{}{}{}",
        want.len(),
        diff_summary(&c.stdout_bytes(), &want),
        c.dump(),
        srv.dump(),
        rig.dump()
    );
}

/// When s_server logged the client's close_notify, in ms after `since`
/// (None if it did not within `T`).
fn server_saw_close_notify(srv: &SServer, since: Instant) -> Option<u128> {
    srv.log
        .wait_for(SS_CLOSE_NOTIFY_READ, T)
        .then(|| since.elapsed().as_millis())
}

fn ms(v: Option<u128>) -> String {
    v.map_or("never".into(), |v| v.to_string())
}

// ---------------------------------------------------------------------------
// The exit paths, as rows for one runner ([`run`]).

enum End {
    S(SServer),
    Py(PyPeer),
}

impl End {
    fn port(&self) -> u16 {
        match self {
            End::S(srv) => srv.port,
            End::Py(peer) => peer.port,
        }
    }
}

impl Dump for End {
    fn dump(&self) -> String {
        match self {
            End::S(srv) => srv.dump(),
            End::Py(peer) => peer.dump(),
        }
    }
}

/// One thing the test does to the session.
#[derive(Debug)]
enum Step {
    /// A line from the client reaches s_server.
    SessionUp,
    /// The client's payload goes through; s_server has all of it.
    PayloadThrough,
    /// s_server's payload goes through; the client delivered all of it.
    ServerPayload,
    /// The Python peer reports its handshake done.
    PeerHandshake,
    /// Written to the client's stdin, not waited for.
    Stdin(Vec<u8>),
    CloseStdin,
    /// The client must not have ended yet.
    StillRunning,
    Signal(i32),
    /// s_server sends these lines in one write.
    ServerLines(Vec<String>),
    /// An s_server command, e.g. `q`.
    ServerCommand(&'static str),
}

impl Step {
    fn run(&self, c: &mut Client, end: &mut End, rig: &Rig) {
        match (self, end) {
            (Step::SessionUp, End::S(srv)) => session_up(c, srv, rig),
            (Step::PayloadThrough, End::S(srv)) => send_payload_and_wait(c, srv, rig),
            (Step::ServerPayload, End::S(srv)) => server_sends_payload(c, srv, rig),
            (Step::PeerHandshake, End::Py(peer)) => {
                peer.expect_line("HANDSHAKE", T, &[&*c, rig]);
            }
            (Step::Stdin(b), end) => c.write_stdin(b, &[&*end, rig]),
            (Step::CloseStdin, _) => c.close_stdin(),
            (Step::StillRunning, end) => assert!(
                !c.proc.has_exited(),
                "the client ended before its exit path was taken{}",
                dumps(&[&*c, end, rig])
            ),
            (Step::Signal(sig), _) => c.signal(*sig),
            (Step::ServerLines(lines), End::S(srv)) => {
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                srv.send_lines(&refs);
            }
            (Step::ServerCommand(cmd), End::S(srv)) => srv.command(cmd),
            (step, _) => panic!("{step:?} does not apply to this server"),
        }
    }
}

/// A check after the client ended, beyond its exit status and report.
#[derive(Debug)]
enum Check {
    /// s_server received the client's payload intact.
    ServerGotPayload,
    /// s_server never received this text.
    ServerNeverGot(&'static str),
    /// The client's stdout is exactly these bytes (what they are).
    Stdout(Vec<u8>, &'static str),
    Stderr(&'static str),
    PeerVerdict(&'static str),
    /// The reported close took this long, in ms.
    CloseMs(Range<u64>),
}

impl Check {
    fn run(&self, c: &Client, end: &End, rig: &Rig) {
        match (self, end) {
            (Check::ServerGotPayload, End::S(srv)) => assert_server_got_payload(c, srv, rig),
            (Check::ServerNeverGot(text), End::S(srv)) => assert!(
                !srv.text().contains(text),
                "{text:?} was sent to the server{}",
                dumps(&[c, srv, rig])
            ),
            (Check::Stdout(want, what), end) => {
                let got = c.stdout_bytes();
                assert!(
                    got == *want,
                    "stdout must be {what}: {}{}",
                    diff_summary(&got, want),
                    dumps(&[c, end, rig])
                );
            }
            (Check::Stderr(text), end) => assert!(
                c.stderr_text().contains(text),
                "stderr must say `{text}`{}",
                dumps(&[c, end, rig])
            ),
            (Check::PeerVerdict(want), End::Py(peer)) => {
                let verdict = peer.verdict(&[c, rig]);
                assert_eq!(
                    verdict,
                    *want,
                    "the Python peer judged the close otherwise{}",
                    dumps(&[c, peer, rig])
                );
            }
            (Check::CloseMs(range), end) => {
                let close_ms = c.report(&[end, rig])["close_ms"]
                    .as_u64()
                    .unwrap_or(u64::MAX);
                assert!(
                    range.contains(&close_ms),
                    "the close took {close_ms} ms, not within {range:?} ms{}",
                    dumps(&[c, end, rig])
                );
            }
            (check, _) => panic!("{check:?} does not apply to this server"),
        }
    }
}

enum Exit {
    Code(i32),
    Signal(i32),
}

/// One exit path: a row of the table.
struct Path {
    /// Names the path in its `FAULT` figure.
    label: String,
    flags: &'static [&'static str],
    /// Starts the server end.
    server: fn(&Rig) -> End,
    /// Brings the session to where the path is taken.
    setup: Vec<Step>,
    /// Takes the path; the close is timed from its start.
    trigger: Vec<Step>,
    exit: Exit,
    /// `Some(key)`: s_server must see the client close cleanly, and the
    /// figure gives `key=` the ms from the trigger to its close_notify.
    server_close: Option<&'static str>,
    checks: Vec<Check>,
    report: Vec<(&'static str, Value)>,
    /// The close's bound under delay, in round trips.
    close_rtts: Option<u64>,
}

impl Path {
    /// A path against s_server with the usual expectations: exit 0, a clean
    /// close that s_server sees, within 3 round trips.
    fn new(label: &str, flags: &'static [&'static str]) -> Path {
        Path {
            label: label.into(),
            flags,
            server: |rig| End::S(rig.s_server()),
            setup: vec![],
            trigger: vec![],
            exit: Exit::Code(0),
            server_close: Some("server_saw_close_notify_ms"),
            checks: vec![],
            report: vec![],
            close_rtts: Some(3),
        }
    }
}

/// Every exit path runs through here, so that each gets the same checks of
/// the close and the same `FAULT` figure.
fn run(fault: Fault, tls: Tls, path: Path) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let mut end = (path.server)(&rig);
    let mut c = rig.client(end.port(), path.flags);
    for step in &path.setup {
        step.run(&mut c, &mut end, &rig);
    }
    let t0 = Instant::now();
    for step in &path.trigger {
        step.run(&mut c, &mut end, &rig);
    }
    let seen = match (&end, path.server_close) {
        (End::S(srv), Some(_)) => server_saw_close_notify(srv, t0),
        _ => None,
    };
    let st = c.wait_exit(T, &[&end, &rig]);
    if let (End::S(srv), Some(_)) = (&end, path.server_close) {
        srv.assert_client_closed_cleanly(&[&c, &rig]);
    }
    c.assert_no_panic(&[&end, &rig]);
    match path.exit {
        Exit::Code(code) => c.assert_code(st, code, &[&end, &rig]),
        Exit::Signal(sig) => c.assert_signal(st, sig, &[&end, &rig]),
    }
    for check in &path.checks {
        check.run(&c, &end, &rig);
    }
    c.assert_report(&path.report, &[&end, &rig]);
    if let Some(rtts) = path.close_rtts {
        rig.assert_close_within_rtts(&c, rtts);
    }
    let extra = match path.server_close {
        Some(key) => format!(" {key}={}", ms(seen)),
        None => String::new(),
    };
    rig.figure(&path.label, &c, st, &extra);
}

/// Report fields of a close that went as it should, with `close_notify`
/// sent; `more` are the path's own.
fn clean(trigger: &str, more: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        ("trigger", json!(trigger)),
        ("outcome", json!("clean")),
        ("close_notify_sent", json!(true)),
    ];
    fields.extend_from_slice(more);
    fields
}

/// The payload is whole lines, so `~.` after it starts a line.
fn payload_then_escape() -> Vec<u8> {
    let mut input = c2s_payload();
    input.extend_from_slice(b"~.\n");
    input
}

/// stdin EOF with the default `--on-eof wait`: nothing sent at EOF; the server (which never
/// closes by itself) stays silent, so the quiet time ends it with a close_notify.
fn stdin_eof_wait() -> Path {
    let mut path = stdin_eof(
        "stdin-eof wait (quiet)",
        &["--on-eof", "wait", "--quiet-time", "500ms"],
    );
    path.report.push(("end", json!("quiet")));
    // The close is timed from stdin's end: the quiet time (2.5 round trips here), then the
    // close, which waits one round trip for the server's answer to our close_notify.
    path.close_rtts = Some(4);
    path
}

/// stdin EOF with `--on-eof half-close`: close_notify at once,
/// then the server's close_notify ends it (one round trip).
fn stdin_eof_half_close() -> Path {
    let mut path = stdin_eof("stdin-eof half-close", &["--on-eof", "half-close"]);
    path.report.push(("close_notify_received", json!(true)));
    path
}

/// stdin EOF with `--on-eof close`: a fast close.
fn stdin_eof_close() -> Path {
    stdin_eof("stdin-eof close (fast)", &["--on-eof", "close"])
}

/// stdin ends while the payload is still in flight: the close must not lose
/// it, whatever the fault does to it.
fn stdin_eof(label: &str, flags: &'static [&'static str]) -> Path {
    Path {
        setup: vec![Step::SessionUp],
        trigger: vec![Step::Stdin(c2s_payload()), Step::CloseStdin],
        checks: vec![Check::ServerGotPayload],
        report: clean(
            "stdin-eof",
            &[
                ("bytes_out", json!(READY.len() + C2S_BYTES)),
                ("exit_code", json!(0)),
                ("error", null()),
            ],
        ),
        ..Path::new(label, flags)
    }
}

/// stdin EOF with `--on-eof ignore`: the session stays (the server's data
/// still arrives) until SIGTERM, which closes it.
fn stdin_eof_ignore_then_sigterm() -> Path {
    Path {
        setup: vec![
            Step::PayloadThrough,
            Step::CloseStdin,
            Step::ServerPayload,
            Step::StillRunning,
        ],
        trigger: vec![Step::Signal(SIGTERM)],
        exit: Exit::Signal(SIGTERM),
        report: signal_report(SIGTERM),
        ..Path::new("stdin-eof ignore + SIGTERM", &["--on-eof", "ignore"])
    }
}

/// `~.` right after the payload, stdin left open: everything before it is
/// sent, `~.` is not.
fn escape() -> Path {
    Path {
        setup: vec![Step::SessionUp],
        trigger: vec![Step::Stdin(payload_then_escape())],
        checks: vec![Check::ServerGotPayload, Check::ServerNeverGot("~.")],
        report: clean(
            "escape",
            &[
                ("bytes_out", json!(READY.len() + C2S_BYTES)),
                ("exit_code", json!(0)),
            ],
        ),
        ..Path::new("escape ~.", &["--escape", "~"])
    }
}

/// SIGINT / SIGTERM / SIGHUP after data both ways: fast close, report, death
/// by that signal.
fn signal(sig: i32) -> Path {
    Path {
        setup: vec![Step::PayloadThrough, Step::ServerPayload],
        trigger: vec![Step::Signal(sig)],
        exit: Exit::Signal(sig),
        report: [signal_report(sig), vec![("error", null())]].concat(),
        ..Path::new(&format!("{} (fast)", signal_name(sig)), &[])
    }
}

/// A signal after the client's and s_server's payloads.
fn signal_report(sig: i32) -> Vec<(&'static str, Value)> {
    clean(
        "signal",
        &[
            ("signal", json!(signal_name(sig))),
            ("bytes_out", json!(C2S_BYTES)),
            ("bytes_in", json!(S2C_LINES * LINE)),
            ("exit_code", json!(128 + sig)),
        ],
    )
}

/// `--quit-on bye`: s_server sends its payload, `bye` and one more line in
/// one write; stdout ends with `bye`.
fn quit_on_line() -> Path {
    let mut lines = s2c_lines();
    lines.extend(["bye".to_string(), "after".to_string()]);
    let mut want = s2c_bytes();
    want.extend_from_slice(b"bye\n");
    Path {
        setup: vec![Step::PayloadThrough],
        trigger: vec![Step::ServerLines(lines)],
        server_close: Some("server_saw_close_notify_ms(from send)"),
        checks: vec![Check::Stdout(want, "the payload up to and including `bye`")],
        report: clean(
            "quit-line",
            &[("bytes_out", json!(C2S_BYTES)), ("exit_code", json!(0))],
        ),
        ..Path::new("quit-on line (fast)", &["--quit-on", "bye"])
    }
}

/// The server's close_notify after 256 KiB (Python peer `send-close`):
/// everything delivered, close_notify answered. stdin stays open: only the
/// server's close_notify ends the session.
fn server_close_notify() -> Path {
    Path {
        server: |rig| {
            End::Py(rig.py_peer("send-close", &["--payload-bytes", &PEER_BYTES.to_string()]))
        },
        server_close: None,
        checks: vec![
            Check::PeerVerdict("client_answered_close_notify"),
            Check::Stdout(payload_pattern(PEER_BYTES), "the peer's payload"),
        ],
        report: clean(
            "peer-close-notify",
            &[
                ("close_notify_received", json!(true)),
                ("bytes_in", json!(PEER_BYTES)),
                ("exit_code", json!(0)),
                ("error", null()),
            ],
        ),
        ..Path::new("server close_notify", &[])
    }
}

/// s_server's `q`: TCP closed without close_notify after its payload →
/// `possible truncation`, exit 3, every byte delivered.
fn server_truncation() -> Path {
    Path {
        // Delivered first: `q` in the same read as the payload would be data.
        setup: vec![Step::PayloadThrough, Step::ServerPayload],
        trigger: vec![Step::ServerCommand("q")],
        exit: Exit::Code(3),
        server_close: None,
        checks: vec![
            Check::Stderr("possible truncation"),
            Check::Stdout(s2c_bytes(), "s_server's payload"),
        ],
        report: vec![
            ("trigger", json!("peer-eof")),
            ("outcome", json!("truncated")),
            ("close_notify_received", json!(false)),
            ("bytes_in", json!(S2C_LINES * LINE)),
            ("exit_code", json!(3)),
        ],
        close_rtts: None,
        ..Path::new("server truncation (s_server q)", &[])
    }
}

/// `--close-wait --close-timeout 1s` against a server that never reads (so
/// never answers close_notify): the close ends at the timeout, exit 4.
fn close_wait_bounded() -> Path {
    const TIMEOUT_MS: u64 = 1000;
    Path {
        server: |rig| End::Py(rig.py_peer("stall", &[])),
        setup: vec![Step::PeerHandshake],
        trigger: vec![Step::Stdin(payload_then_escape())],
        exit: Exit::Code(4),
        server_close: None,
        checks: vec![Check::CloseMs(TIMEOUT_MS..TIMEOUT_MS + 1000)],
        report: vec![
            ("trigger", json!("escape")),
            ("outcome", json!("close-timeout")),
            ("close_notify_sent", json!(true)),
            ("close_notify_received", json!(false)),
            ("exit_code", json!(4)),
        ],
        close_rtts: None,
        ..Path::new(
            "close-wait vs stall, 1s timeout",
            &["--close-wait", "--close-timeout", "1s", "--escape", "~"],
        )
    }
}

/// The proxy itself: bytes intact, each one delayed by about `DELAY` (not
/// `DELAY` per chunk: 200 chunks take far less than 200 delays), and a
/// half-close passed on after the delay.
#[test]
fn proxy_delays_without_serializing() {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    const CHUNKS: usize = 200;
    const CHUNK: usize = 8 * 1024;
    let listener = TestListener::start();
    let proxy = DelayProxy::start(listener.port, DELAY);
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port))
        .unwrap_or_else(|e| panic!("cannot connect to the proxy: {e}{}", proxy.dump()));
    let mut server = listener.accept(WAIT, &[&proxy]);
    server
        .set_read_timeout(Some(WAIT))
        .unwrap_or_else(|e| panic!("set_read_timeout: {e}"));

    let mut sent = Fnv1a::new();
    let mut pattern = PatternStream::new(7);
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || -> std::io::Result<(Fnv1a, TcpStream)> {
        let mut buf = vec![0u8; CHUNK];
        for _ in 0..CHUNKS {
            pattern.fill(&mut buf);
            sent.update(&buf);
            client.write_all(&buf)?;
        }
        client.shutdown(Shutdown::Write)?;
        Ok((sent, client))
    });
    let mut got = Fnv1a::new();
    let mut total = 0;
    let mut first_byte_at = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match server.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                first_byte_at.get_or_insert_with(|| t0.elapsed());
                got.update(&buf[..n]);
                total += n;
            }
            Err(e) => panic!(
                "reading through the proxy failed after {total} bytes: {e}{}",
                proxy.dump()
            ),
        }
    }
    let eof_at = t0.elapsed();
    let (sent, _client) = writer
        .join()
        .expect("writer thread panicked")
        .unwrap_or_else(|e| panic!("writing through the proxy failed: {e}{}", proxy.dump()));
    assert_eq!(total, CHUNKS * CHUNK, "byte count{}", proxy.dump());
    assert_eq!(got.finish(), sent.finish(), "bytes differ{}", proxy.dump());
    let first = first_byte_at.expect("at least one chunk arrived");
    println!(
        "FAULT proxy self-check: first byte after {} ms, {} KiB and EOF after {} ms (delay {} ms)",
        first.as_millis(),
        total / 1024,
        eof_at.as_millis(),
        DELAY.as_millis()
    );
    assert!(
        first >= DELAY,
        "the first byte came after {first:?}, before the delay{}",
        proxy.dump()
    );
    // Serialized sleeps would take CHUNKS × DELAY = 20 s.
    assert!(
        eof_at < DELAY * 20,
        "{CHUNKS} chunks and EOF took {eof_at:?}: the delay is not pipelined{}",
        proxy.dump()
    );
}

/// The fast close under 5% loss, `GRACETLS_LOSS_RUNS` times (10; 100 for the figure), with
/// s_server's log as the referee: a run may end clean (exit 0) only if s_server logged our
/// close_notify; where the kernel cannot confirm it arrived, the close says so (exit 5,
/// `unconfirmed`), never clean. Prints one `LOSS` tally line.
#[test]
fn loss_fast_close_is_clean_only_where_the_server_logged_close_notify() {
    let runs: usize = std::env::var("GRACETLS_LOSS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (mut clean, mut unconfirmed, mut other) = (0, 0, 0);
    for run in 0..runs {
        let tls = if run % 2 == 0 { Tls::V12 } else { Tls::V13 };
        let Some(mut rig) = Rig::new(Fault::Loss, tls) else {
            return;
        };
        let mut end = End::S(rig.s_server());
        let mut c = rig.client(end.port(), &["--on-eof", "close"]);
        Step::SessionUp.run(&mut c, &mut end, &rig);
        Step::Stdin(c2s_payload()).run(&mut c, &mut end, &rig);
        Step::CloseStdin.run(&mut c, &mut end, &rig);
        let st = c.wait_exit(T, &[&end, &rig]);
        c.assert_no_panic(&[&end, &rig]);
        let End::S(srv) = &end else {
            unreachable!("an s_server end")
        };
        srv.expect_connection_end(&[&c, &rig]);
        let logged = srv.text().contains(SS_CLOSE_NOTIFY_READ);
        match st.code() {
            Some(0) => {
                assert!(
                    logged,
                    "run {run}: reported clean, but s_server never logged our close_notify{}",
                    dumps(&[&c, &end, &rig])
                );
                clean += 1;
            }
            Some(5) => unconfirmed += 1,
            code => {
                eprintln!("run {run}: exit {code:?}{}", dumps(&[&c, &end, &rig]));
                other += 1;
            }
        }
    }
    println!("LOSS runs={runs} clean={clean} unconfirmed={unconfirmed} other={other}");
    assert_eq!(other, 0, "runs that ended neither clean nor unconfirmed");
}

/// The server stops hearing us right before a fast close (every packet to it dropped): our
/// close_notify is written but never acknowledged and never answered. The close says so:
/// `unconfirmed`, exit 5, within the close timeout; s_server never logged it. (Reported
/// clean before: the socket had taken the bytes.)
#[test]
fn loss_close_notify_never_acknowledged_is_unconfirmed() {
    let Some(mut rig) = Rig::new(Fault::Loss, Tls::V13) else {
        return;
    };
    let mut end = End::S(rig.s_server());
    let mut c = rig.client(end.port(), &["--on-eof", "close", "--close-timeout", "1s"]);
    Step::SessionUp.run(&mut c, &mut end, &rig);
    rig.ns.as_ref().expect("a namespace").cut_to_port(NS_PORT);
    Step::CloseStdin.run(&mut c, &mut end, &rig);
    let st = c.wait_exit(T, &[&end, &rig]);
    c.assert_no_panic(&[&end, &rig]);
    let report = c.report(&[&end, &rig]);
    assert_eq!(
        (st.code(), report["outcome"].as_str()),
        (Some(5), Some("unconfirmed")),
        "{}",
        dumps(&[&c, &end, &rig])
    );
    assert_eq!(report["close_notify_sent"], json!(true));
    let close_ms = report["close_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        close_ms < 1500,
        "the close took {close_ms} ms with --close-timeout 1s"
    );
    let End::S(srv) = &end else {
        unreachable!("an s_server end")
    };
    assert!(
        !srv.text().contains(SS_CLOSE_NOTIFY_READ),
        "s_server logged a close_notify that could not reach it{}",
        dumps(&[&c, &end, &rig])
    );
}
