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
            per_version! { $($name => |tls| ($f)(Fault::Loss, tls);)* }
        }
        mod delay {
            use super::*;
            per_version! { $($name => |tls| ($f)(Fault::Delay, tls);)* }
        }
    };
}

fault_cases! {
    stdin_eof_half_close => stdin_eof_half_close;
    stdin_eof_close => stdin_eof_close;
    stdin_eof_ignore_then_sigterm => stdin_eof_ignore_then_sigterm;
    escape => escape;
    sigint => |f, tls| signal(f, tls, SIGINT);
    sigterm => |f, tls| signal(f, tls, SIGTERM);
    sighup => |f, tls| signal(f, tls, SIGHUP);
    quit_on_line => quit_on_line;
    server_close_notify => server_close_notify;
    server_truncation => server_truncation;
    close_wait_bounded => close_wait_bounded;
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

    /// Under delay, a close that does not wait for the server's answer must
    /// take no more than about a round trip (3 RTT as a sanity bound).
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

/// stdin EOF with the default `--on-eof half-close`: close_notify at once,
/// then the server's close_notify ends it (one round trip).
fn stdin_eof_half_close(fault: Fault, tls: Tls) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let srv = rig.s_server();
    let mut c = rig.client(srv.port, &["--on-eof", "half-close"]);
    session_up(&mut c, &srv, &rig);
    // The payload is still in flight when stdin ends: the close must not
    // lose it, whatever the fault does to it.
    let t0 = Instant::now();
    c.write_stdin(&c2s_payload(), &[&srv, &rig]);
    c.close_stdin();
    let seen = server_saw_close_notify(&srv, t0);
    let st = c.wait_exit(T, &[&srv, &rig]);
    srv.assert_client_closed_cleanly(&[&c, &rig]);
    assert_server_got_payload(&c, &srv, &rig);
    c.assert_no_panic(&[&srv, &rig]);
    c.assert_code(st, 0, &[&srv, &rig]);
    c.assert_report(
        &[
            ("trigger", json!("stdin-eof")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("close_notify_received", json!(true)),
            ("bytes_out", json!(READY.len() + C2S_BYTES)),
            ("exit_code", json!(0)),
            ("error", null()),
        ],
        &[&srv, &rig],
    );
    rig.assert_close_within_rtts(&c, 3);
    rig.figure(
        "stdin-eof half-close",
        &c,
        st,
        &format!(" server_saw_close_notify_ms={}", ms(seen)),
    );
}

/// stdin EOF with `--on-eof close`: a fast close.
fn stdin_eof_close(fault: Fault, tls: Tls) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let srv = rig.s_server();
    let mut c = rig.client(srv.port, &["--on-eof", "close"]);
    session_up(&mut c, &srv, &rig);
    // The payload is still in flight when stdin ends: the close must not
    // lose it, whatever the fault does to it.
    let t0 = Instant::now();
    c.write_stdin(&c2s_payload(), &[&srv, &rig]);
    c.close_stdin();
    let seen = server_saw_close_notify(&srv, t0);
    let st = c.wait_exit(T, &[&srv, &rig]);
    srv.assert_client_closed_cleanly(&[&c, &rig]);
    assert_server_got_payload(&c, &srv, &rig);
    c.assert_no_panic(&[&srv, &rig]);
    c.assert_code(st, 0, &[&srv, &rig]);
    c.assert_report(
        &[
            ("trigger", json!("stdin-eof")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(READY.len() + C2S_BYTES)),
            ("exit_code", json!(0)),
            ("error", null()),
        ],
        &[&srv, &rig],
    );
    rig.assert_close_within_rtts(&c, 3);
    rig.figure(
        "stdin-eof close (fast)",
        &c,
        st,
        &format!(" server_saw_close_notify_ms={}", ms(seen)),
    );
}

/// stdin EOF with `--on-eof ignore`: the session stays (the server's data
/// still arrives) until SIGTERM, which closes it.
fn stdin_eof_ignore_then_sigterm(fault: Fault, tls: Tls) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let mut srv = rig.s_server();
    let mut c = rig.client(srv.port, &["--on-eof", "ignore"]);
    send_payload_and_wait(&mut c, &srv, &rig);
    c.close_stdin();
    server_sends_payload(&c, &mut srv, &rig);
    assert!(
        !c.proc.has_exited(),
        "--on-eof ignore: the client exited after stdin EOF{}{}{}",
        c.dump(),
        srv.dump(),
        rig.dump()
    );
    let t0 = Instant::now();
    c.signal(SIGTERM);
    let seen = server_saw_close_notify(&srv, t0);
    let st = c.wait_exit(T, &[&srv, &rig]);
    srv.assert_client_closed_cleanly(&[&c, &rig]);
    c.assert_no_panic(&[&srv, &rig]);
    c.assert_signal(st, SIGTERM, &[&srv, &rig]);
    c.assert_report(
        &[
            ("trigger", json!("signal")),
            ("signal", json!("SIGTERM")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(C2S_BYTES)),
            ("bytes_in", json!(S2C_LINES * LINE)),
            ("exit_code", json!(128 + SIGTERM)),
        ],
        &[&srv, &rig],
    );
    rig.assert_close_within_rtts(&c, 3);
    rig.figure(
        "stdin-eof ignore + SIGTERM",
        &c,
        st,
        &format!(" server_saw_close_notify_ms={}", ms(seen)),
    );
}

/// `~.` right after the payload, stdin left open: everything before it is
/// sent, `~.` is not.
fn escape(fault: Fault, tls: Tls) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let srv = rig.s_server();
    let mut c = rig.client(srv.port, &[]);
    session_up(&mut c, &srv, &rig);
    let mut input = c2s_payload();
    input.extend_from_slice(b"~.\n");
    let t0 = Instant::now();
    c.write_stdin(&input, &[&srv, &rig]);
    let seen = server_saw_close_notify(&srv, t0);
    let st = c.wait_exit(T, &[&srv, &rig]);
    srv.assert_client_closed_cleanly(&[&c, &rig]);
    assert_server_got_payload(&c, &srv, &rig);
    assert!(
        !srv.text().contains("~."),
        "the escape `~.` was sent to the server{}{}{}",
        c.dump(),
        srv.dump(),
        rig.dump()
    );
    c.assert_no_panic(&[&srv, &rig]);
    c.assert_code(st, 0, &[&srv, &rig]);
    c.assert_report(
        &[
            ("trigger", json!("escape")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(READY.len() + C2S_BYTES)),
            ("exit_code", json!(0)),
        ],
        &[&srv, &rig],
    );
    rig.assert_close_within_rtts(&c, 3);
    rig.figure(
        "escape ~.",
        &c,
        st,
        &format!(" server_saw_close_notify_ms={}", ms(seen)),
    );
}

/// SIGINT / SIGTERM / SIGHUP after data both ways: fast close, report, death
/// by that signal.
fn signal(fault: Fault, tls: Tls, sig: i32) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let mut srv = rig.s_server();
    let mut c = rig.client(srv.port, &[]);
    send_payload_and_wait(&mut c, &srv, &rig);
    server_sends_payload(&c, &mut srv, &rig);
    let t0 = Instant::now();
    c.signal(sig);
    let seen = server_saw_close_notify(&srv, t0);
    let st = c.wait_exit(T, &[&srv, &rig]);
    srv.assert_client_closed_cleanly(&[&c, &rig]);
    c.assert_no_panic(&[&srv, &rig]);
    c.assert_signal(st, sig, &[&srv, &rig]);
    c.assert_report(
        &[
            ("trigger", json!("signal")),
            ("signal", json!(signal_name(sig))),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(C2S_BYTES)),
            ("bytes_in", json!(S2C_LINES * LINE)),
            ("exit_code", json!(128 + sig)),
            ("error", null()),
        ],
        &[&srv, &rig],
    );
    rig.assert_close_within_rtts(&c, 3);
    rig.figure(
        &format!("{} (fast)", signal_name(sig)),
        &c,
        st,
        &format!(" server_saw_close_notify_ms={}", ms(seen)),
    );
}

/// `--quit-on bye`: s_server sends its payload, `bye` and one more line in
/// one write; stdout ends with `bye`.
fn quit_on_line(fault: Fault, tls: Tls) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let mut srv = rig.s_server();
    let mut c = rig.client(srv.port, &["--quit-on", "bye"]);
    send_payload_and_wait(&mut c, &srv, &rig);
    let mut lines = s2c_lines();
    lines.extend(["bye".to_string(), "after".to_string()]);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    srv.send_lines(&refs);
    let seen = server_saw_close_notify(&srv, t0);
    let st = c.wait_exit(T, &[&srv, &rig]);
    srv.assert_client_closed_cleanly(&[&c, &rig]);
    c.assert_no_panic(&[&srv, &rig]);
    c.assert_code(st, 0, &[&srv, &rig]);
    let mut want = s2c_bytes();
    want.extend_from_slice(b"bye\n");
    let got = c.stdout_bytes();
    assert!(
        got == want,
        "stdout must be the payload up to and including `bye`: {}{}{}{}",
        diff_summary(&got, &want),
        c.dump(),
        srv.dump(),
        rig.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("quit-line")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(C2S_BYTES)),
            ("exit_code", json!(0)),
        ],
        &[&srv, &rig],
    );
    rig.assert_close_within_rtts(&c, 3);
    rig.figure(
        "quit-on line (fast)",
        &c,
        st,
        &format!(" server_saw_close_notify_ms(from send)={}", ms(seen)),
    );
}

/// The server's close_notify after 256 KiB (Python peer `send-close`):
/// everything delivered, close_notify answered.
fn server_close_notify(fault: Fault, tls: Tls) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let n = PEER_BYTES.to_string();
    let peer = rig.py_peer("send-close", &["--payload-bytes", &n]);
    // stdin stays open: only the server's close_notify ends the session.
    let mut c = rig.client(peer.port, &[]);
    let st = c.wait_exit(T, &[&peer, &rig]);
    let verdict = peer.verdict(&[&c, &rig]);
    c.assert_no_panic(&[&peer, &rig]);
    c.assert_code(st, 0, &[&peer, &rig]);
    let (got, want) = (c.stdout_bytes(), payload_pattern(PEER_BYTES));
    assert!(
        got == want,
        "stdout differs from the payload: {}{}{}{}",
        diff_summary(&got, &want),
        c.dump(),
        peer.dump(),
        rig.dump()
    );
    assert_eq!(
        verdict,
        "client_answered_close_notify",
        "the client must answer the server's close_notify{}{}{}",
        c.dump(),
        peer.dump(),
        rig.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("peer-close-notify")),
            ("outcome", json!("clean")),
            ("close_notify_received", json!(true)),
            ("close_notify_sent", json!(true)),
            ("bytes_in", json!(PEER_BYTES)),
            ("exit_code", json!(0)),
            ("error", null()),
        ],
        &[&peer, &rig],
    );
    rig.assert_close_within_rtts(&c, 3);
    rig.figure("server close_notify", &c, st, "");
}

/// s_server's `q`: TCP closed without close_notify after its payload →
/// `possible truncation`, exit 3, every byte delivered.
fn server_truncation(fault: Fault, tls: Tls) {
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let mut srv = rig.s_server();
    let mut c = rig.client(srv.port, &[]);
    send_payload_and_wait(&mut c, &srv, &rig);
    // Delivered first: `q` in the same read as the payload would be data.
    server_sends_payload(&c, &mut srv, &rig);
    srv.command("q");
    let st = c.wait_exit(T, &[&srv, &rig]);
    c.assert_no_panic(&[&srv, &rig]);
    c.assert_code(st, 3, &[&srv, &rig]);
    assert!(
        c.stderr_text().contains("possible truncation"),
        "stderr must warn `possible truncation`{}{}{}",
        c.dump(),
        srv.dump(),
        rig.dump()
    );
    let (got, want) = (c.stdout_bytes(), s2c_bytes());
    assert!(
        got == want,
        "stdout differs from s_server's payload: {}{}{}{}",
        diff_summary(&got, &want),
        c.dump(),
        srv.dump(),
        rig.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("peer-eof")),
            ("outcome", json!("truncated")),
            ("close_notify_received", json!(false)),
            ("bytes_in", json!(S2C_LINES * LINE)),
            ("exit_code", json!(3)),
        ],
        &[&srv, &rig],
    );
    rig.figure("server truncation (s_server q)", &c, st, "");
}

/// `--close-wait --close-timeout 1s` against a server that never reads (so
/// never answers close_notify): the close ends at the timeout, exit 4.
fn close_wait_bounded(fault: Fault, tls: Tls) {
    const TIMEOUT_MS: u64 = 1000;
    let Some(mut rig) = Rig::new(fault, tls) else {
        return;
    };
    let peer = rig.py_peer("stall", &[]);
    let mut c = rig.client(peer.port, &["--close-wait", "--close-timeout", "1s"]);
    peer.expect_line("HANDSHAKE", T, &[&c, &rig]);
    let mut input = c2s_payload();
    input.extend_from_slice(b"~.\n");
    c.write_stdin(&input, &[&peer, &rig]);
    let st = c.wait_exit(T, &[&peer, &rig]);
    c.assert_no_panic(&[&peer, &rig]);
    c.assert_code(st, 4, &[&peer, &rig]);
    let report = c.assert_report(
        &[
            ("trigger", json!("escape")),
            ("outcome", json!("close-timeout")),
            ("close_notify_sent", json!(true)),
            ("close_notify_received", json!(false)),
            ("exit_code", json!(4)),
        ],
        &[&peer, &rig],
    );
    let close_ms = report["close_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (TIMEOUT_MS..TIMEOUT_MS + 1000).contains(&close_ms),
        "the close took {close_ms} ms with --close-timeout {TIMEOUT_MS}ms{}{}{}",
        c.dump(),
        peer.dump(),
        rig.dump()
    );
    rig.figure("close-wait vs stall, 1s timeout", &c, st, "");
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
