//! Every way a gracetls session can end, against real peers: `openssl
//! s_server -state` (the referee: it logs the client's close_notify as
//! `SSL3 alert read:warning:close notify`) and `tests/peers/tls_peer.py`.
//! Each scenario runs with TLS 1.3 and TLS 1.2, as `<scenario>::tls1_3` and
//! `<scenario>::tls1_2`.

#[macro_use]
mod common;

use common::*;
use std::io::Read;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

per_version! {
    half_close_on_stdin_eof => half_close_on_stdin_eof;
    on_eof_close => on_eof_close;
    on_eof_ignore_stays_until_signal => on_eof_ignore_stays_until_signal;
    escape_closes => escape_closes;
    escape_none_sends_tilde_dot => escape_none_sends_tilde_dot;
    escape_custom_char => escape_custom_char;
    sigint_closes => |tls| signal_closes(tls, SIGINT);
    sigterm_closes => |tls| signal_closes(tls, SIGTERM);
    sighup_closes => |tls| signal_closes(tls, SIGHUP);
    quit_on_line_s_server => quit_on_line_s_server;
    quit_on_line_peer => quit_on_line_peer;
    peer_eof_s_server_q => peer_eof_s_server_q;
    peer_eof_s_server_killed => peer_eof_s_server_killed;
    peer_close_notify => peer_close_notify;
    peer_truncate => peer_truncate;
    stdout_closed_large_payload => stdout_closed_large_payload;
    stdout_closed_echo => stdout_closed_echo;
    close_wait_delivers_everything => close_wait_delivers_everything;
    close_wait_bounded_by_close_timeout => close_wait_bounded_by_close_timeout;
}

fn null() -> Value {
    Value::Null
}

/// What [`client_ready`] makes the client send.
const READY: &[u8] = b"client-ready\n";

/// Waits until the client is surely past its handshake and in its data loop:
/// it forwarded a stdin line to s_server. (Sending a server line too early
/// makes it travel with the server's last handshake flight; that case has its
/// own test, robustness.rs `server_speaks_first_*`.)
fn client_ready(c: &mut Client, srv: &SServer) {
    c.write_stdin(READY, &[srv]);
    srv.expect_log("client-ready\n", WAIT, &[&*c]);
}

/// Path 1, default `--on-eof half-close`.
fn half_close_on_stdin_eof(tls: Tls) {
    let pki = Pki::new();
    let srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(&pki, "localhost", srv.port, &[]));
    c.write_stdin(b"hello\n", &[&srv]);
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_no_panic(&[&srv]);
    c.assert_code(st, 0, &[&srv]);
    assert!(
        srv.text().contains("hello\n"),
        "s_server did not receive `hello`{}{}",
        c.dump(),
        srv.dump()
    );
    // s_server answers the close_notify (the client got it: see the report).
    srv.expect_log(SS_CLOSE_NOTIFY_WRITE, WAIT, &[&c]);
    c.assert_report(
        &[
            ("trigger", json!("stdin-eof")),
            ("outcome", json!("clean")),
            ("signal", null()),
            ("close_notify_sent", json!(true)),
            ("close_notify_received", json!(true)),
            ("bytes_out", json!(6)),
            ("bytes_in", json!(0)),
            ("exit_code", json!(0)),
            ("error", null()),
        ],
        &[&srv],
    );
    assert!(
        c.message_lines().is_empty(),
        "a clean session should print nothing but the report on stderr{}{}",
        c.dump(),
        srv.dump()
    );
}

/// Path 1, `--on-eof close`: fast close at once.
fn on_eof_close(tls: Tls) {
    let pki = Pki::new();
    let srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--on-eof", "close"],
    ));
    c.write_stdin(b"hello\n", &[&srv]);
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_no_panic(&[&srv]);
    c.assert_code(st, 0, &[&srv]);
    assert!(
        srv.text().contains("hello\n"),
        "s_server did not receive `hello`{}{}",
        c.dump(),
        srv.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("stdin-eof")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(6)),
            ("exit_code", json!(0)),
            ("error", null()),
        ],
        &[&srv],
    );
}

/// Path 1, `--on-eof ignore`: stdin EOF changes nothing; the server can still
/// talk; a signal ends it.
fn on_eof_ignore_stays_until_signal(tls: Tls) {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--on-eof", "ignore"],
    ));
    client_ready(&mut c, &srv);
    c.close_stdin();
    srv.send_line("still-here-after-eof");
    assert!(
        c.stdout.wait_for("still-here-after-eof\n", WAIT),
        "the server's line never reached stdout after stdin EOF with --on-eof ignore{}{}",
        c.dump(),
        srv.dump()
    );
    assert!(
        !c.proc.has_exited(),
        "--on-eof ignore: the client exited after stdin EOF{}{}",
        c.dump(),
        srv.dump()
    );
    c.signal(SIGTERM);
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_no_panic(&[&srv]);
    c.assert_signal(st, SIGTERM, &[&srv]);
    assert_eq!(
        c.stdout_bytes(),
        b"still-here-after-eof\n",
        "stdout{}{}",
        c.dump(),
        srv.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("signal")),
            ("signal", json!("SIGTERM")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_in", json!(21)),
            ("bytes_out", json!(READY.len())),
            ("exit_code", json!(143)),
        ],
        &[&srv],
    );
}

/// Path 2: `~.` alone on a line closes; it is not sent.
fn escape_closes(tls: Tls) {
    let pki = Pki::new();
    let srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &[]));
    c.write_stdin(b"before\n~.\n", &[&srv]);
    // stdin stays open: the escape alone must end the session.
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_no_panic(&[&srv]);
    c.assert_code(st, 0, &[&srv]);
    let log = srv.text();
    assert!(
        log.contains("before\n"),
        "s_server did not receive `before`{}{}",
        c.dump(),
        srv.dump()
    );
    assert!(
        !log.contains("~."),
        "the escape `~.` was sent to the server{}{}",
        c.dump(),
        srv.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("escape")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(7)),
            ("exit_code", json!(0)),
        ],
        &[&srv],
    );
}

/// Path 2 disabled: `--escape none` sends `~.` like any other line.
fn escape_none_sends_tilde_dot(tls: Tls) {
    let pki = Pki::new();
    let srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--escape", "none"],
    ));
    c.write_stdin(b"before\n~.\nafter\n", &[&srv]);
    srv.expect_log("after\n", WAIT, &[&c]);
    assert!(
        !c.proc.has_exited(),
        "--escape none: `~.` still ended the session{}{}",
        c.dump(),
        srv.dump()
    );
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_code(st, 0, &[&srv]);
    let log = srv.text();
    assert!(
        log.contains("before\n") && log.contains("~.\n") && log.contains("after\n"),
        "s_server did not receive all three lines, `~.` included{}{}",
        c.dump(),
        srv.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("stdin-eof")),
            ("outcome", json!("clean")),
            ("bytes_out", json!(16)),
            ("exit_code", json!(0)),
        ],
        &[&srv],
    );
}

/// Path 2 with another escape character: `--escape %` → `%.` closes, `~.`
/// is plain data.
fn escape_custom_char(tls: Tls) {
    let pki = Pki::new();
    let srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &["--escape", "%"]));
    c.write_stdin(b"before\n~.\n%.\n", &[&srv]);
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_code(st, 0, &[&srv]);
    let log = srv.text();
    assert!(
        log.contains("before\n") && log.contains("~.\n"),
        "s_server did not receive `before` and `~.`{}{}",
        c.dump(),
        srv.dump()
    );
    assert!(
        !log.contains("%."),
        "the escape `%.` was sent to the server{}{}",
        c.dump(),
        srv.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("escape")),
            ("outcome", json!("clean")),
            ("bytes_out", json!(10)),
            ("exit_code", json!(0)),
        ],
        &[&srv],
    );
}

/// Path 3: SIGINT / SIGTERM / SIGHUP → close_notify, report, death by that
/// signal.
fn signal_closes(tls: Tls, sig: i32) {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &[]));
    client_ready(&mut c, &srv);
    // Connected for sure once a server line comes out of the client.
    srv.send_line("hello-client");
    assert!(
        c.stdout.wait_for("hello-client\n", WAIT),
        "the server's line never reached stdout{}{}",
        c.dump(),
        srv.dump()
    );
    c.signal(sig);
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_no_panic(&[&srv]);
    c.assert_signal(st, sig, &[&srv]);
    c.assert_report(
        &[
            ("trigger", json!("signal")),
            ("signal", json!(signal_name(sig))),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("bytes_in", json!(13)),
            ("bytes_out", json!(READY.len())),
            ("exit_code", json!(128 + sig)),
            ("error", null()),
        ],
        &[&srv],
    );
}

/// Path 4 with s_server. (s_server takes a stdin line starting with `q` as
/// its quit command, so the quit line here is `bye`.) The three lines go out
/// in one write, so usually in one TLS record: what follows the quit line
/// must be dropped.
fn quit_on_line_s_server(tls: Tls) {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--quit-on", "bye"],
    ));
    client_ready(&mut c, &srv);
    srv.send_lines(&["data", "bye", "after"]);
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    c.assert_no_panic(&[&srv]);
    c.assert_code(st, 0, &[&srv]);
    assert_eq!(
        c.stdout_text(),
        "data\nbye\n",
        "stdout must end with the quit line{}{}",
        c.dump(),
        srv.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("quit-line")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("exit_code", json!(0)),
        ],
        &[&srv],
    );
}

/// Path 4 with `--quit-on quit` (the Python peer sends it; s_server cannot).
fn quit_on_line_peer(tls: Tls) {
    let pki = Pki::new();
    let peer = PyPeer::start(
        &pki.server,
        tls,
        "send-close",
        &["--payload-text", "data\\nquit\\nafter\\n"],
    );
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        peer.port,
        &["--quit-on", "quit"],
    ));
    let st = c.wait_exit(WAIT, &[&peer]);
    let verdict = peer.verdict(&[&c]);
    c.assert_no_panic(&[&peer]);
    c.assert_code(st, 0, &[&peer]);
    assert_eq!(
        c.stdout_text(),
        "data\nquit\n",
        "stdout must end with the quit line{}{}",
        c.dump(),
        peer.dump()
    );
    assert!(
        verdict == "client_answered_close_notify" || verdict == "client_close_notify",
        "the peer did not get the client's close_notify: {verdict}{}{}",
        c.dump(),
        peer.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("quit-line")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("exit_code", json!(0)),
        ],
        &[&peer],
    );
}

fn assert_truncated(c: &Client, st: std::process::ExitStatus, ctx: &[&dyn Dump]) {
    c.assert_no_panic(ctx);
    c.assert_code(st, 3, ctx);
    assert!(
        c.stderr_text().contains("possible truncation"),
        "stderr must warn `possible truncation`{}{}",
        c.dump(),
        dumps(ctx)
    );
    c.assert_report(
        &[
            ("trigger", json!("peer-eof")),
            ("outcome", json!("truncated")),
            ("close_notify_received", json!(false)),
            ("exit_code", json!(3)),
        ],
        ctx,
    );
}

/// Path 6 with s_server's `q` command: TCP closed without close_notify.
fn peer_eof_s_server_q(tls: Tls) {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &[]));
    client_ready(&mut c, &srv);
    srv.send_line("last-line");
    assert!(
        c.stdout.wait_for("last-line\n", WAIT),
        "the server's line never reached stdout{}{}",
        c.dump(),
        srv.dump()
    );
    srv.command("q");
    let st = c.wait_exit(WAIT, &[&srv]);
    assert_truncated(&c, st, &[&srv]);
    assert_eq!(
        c.stdout_bytes(),
        b"last-line\n",
        "stdout{}{}",
        c.dump(),
        srv.dump()
    );
}

/// Path 6 with the server process killed outright.
fn peer_eof_s_server_killed(tls: Tls) {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, tls);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &[]));
    client_ready(&mut c, &srv);
    srv.send_line("last-line");
    assert!(
        c.stdout.wait_for("last-line\n", WAIT),
        "the server's line never reached stdout{}{}",
        c.dump(),
        srv.dump()
    );
    srv.proc.kill();
    let st = c.wait_exit(WAIT, &[&srv]);
    assert_truncated(&c, st, &[&srv]);
    assert_eq!(
        c.stdout_bytes(),
        b"last-line\n",
        "stdout{}{}",
        c.dump(),
        srv.dump()
    );
}

/// Path 5: the server's close_notify (immediately followed by its FIN) after
/// 1 MiB: everything delivered, close_notify answered, exit 0.
fn peer_close_notify(tls: Tls) {
    const N: usize = 1024 * 1024;
    let pki = Pki::new();
    let n = N.to_string();
    let peer = PyPeer::start(&pki.server, tls, "send-close", &["--payload-bytes", &n]);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", peer.port, &[]));
    // stdin stays open: only the server's close_notify ends the session.
    let st = c.wait_exit(Duration::from_secs(30), &[&peer]);
    let verdict = peer.verdict(&[&c]);
    c.assert_no_panic(&[&peer]);
    c.assert_code(st, 0, &[&peer]);
    let got = c.stdout_bytes();
    let want = payload_pattern(N);
    assert!(
        got == want,
        "stdout differs from the payload: {}{}{}",
        diff_summary(&got, &want),
        c.dump(),
        peer.dump()
    );
    assert_eq!(
        verdict,
        "client_answered_close_notify",
        "the client must answer the server's close_notify{}{}",
        c.dump(),
        peer.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("peer-close-notify")),
            ("outcome", json!("clean")),
            ("close_notify_received", json!(true)),
            ("close_notify_sent", json!(true)),
            ("bytes_in", json!(N)),
            ("bytes_out", json!(0)),
            ("exit_code", json!(0)),
            ("error", null()),
        ],
        &[&peer],
    );
}

/// Path 6 with the Python peer: payload, then FIN without close_notify.
fn peer_truncate(tls: Tls) {
    const N: usize = 256 * 1024;
    let pki = Pki::new();
    let n = N.to_string();
    let peer = PyPeer::start(&pki.server, tls, "send-truncate", &["--payload-bytes", &n]);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", peer.port, &[]));
    let st = c.wait_exit(Duration::from_secs(30), &[&peer]);
    assert_truncated(&c, st, &[&peer]);
    let got = c.stdout_bytes();
    let want = payload_pattern(N);
    assert!(
        got == want,
        "stdout differs from the payload: {}{}{}",
        diff_summary(&got, &want),
        c.dump(),
        peer.dump()
    );
    let report = c.report(&[&peer]);
    assert_eq!(report["bytes_in"], json!(N), "report: {report}{}", c.dump());
}

/// Reads exactly `n` bytes of the client's stdout pipe in a thread (bounded),
/// then drops the pipe (closes the reading end).
fn read_then_close_stdout(c: &mut Client, n: usize, ctx: &[&dyn Dump]) -> Vec<u8> {
    let mut pipe = c.stdout_pipe.take().expect("raw stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = vec![0u8; n];
        let res = pipe.read_exact(&mut buf).map(|_| buf);
        drop(pipe);
        let _ = tx.send(res);
    });
    match recv_within(
        &rx,
        WAIT,
        "reading the client's stdout",
        &[c as &dyn Dump, &Dumps(ctx)],
    ) {
        Ok(b) => b,
        Err(e) => panic!(
            "reading {n} bytes of stdout failed: {e}{}{}",
            c.dump(),
            dumps(ctx)
        ),
    }
}

/// Adapter: a slice of dumps as one.
struct Dumps<'a>(&'a [&'a dyn Dump]);

impl Dump for Dumps<'_> {
    fn dump(&self) -> String {
        dumps(self.0)
    }
}

fn assert_stdout_closed_ending(c: &Client, st: std::process::ExitStatus, ctx: &[&dyn Dump]) {
    c.assert_no_panic(ctx);
    c.assert_code(st, 0, ctx);
    assert!(
        c.message_lines().is_empty(),
        "closing stdout must make no noise on stderr{}{}",
        c.dump(),
        dumps(ctx)
    );
    c.assert_report(
        &[
            ("trigger", json!("stdout-closed")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("exit_code", json!(0)),
        ],
        ctx,
    );
}

/// Path 7: the reader of stdout goes away in the middle of a 4 MiB download.
fn stdout_closed_large_payload(tls: Tls) {
    const N: usize = 4 * 1024 * 1024;
    let pki = Pki::new();
    let n = N.to_string();
    let peer = PyPeer::start(&pki.server, tls, "send-close", &["--payload-bytes", &n]);
    let mut c = Client::spawn_raw_stdout(client_args(&pki, "127.0.0.1", peer.port, &[]));
    let head = read_then_close_stdout(&mut c, 10, &[&peer]);
    assert_eq!(head, &payload_pattern(10)[..], "first bytes of stdout");
    let st = c.wait_exit(Duration::from_secs(30), &[&peer]);
    let verdict = peer.verdict(&[&c]);
    assert_stdout_closed_ending(&c, st, &[&peer]);
    assert!(
        verdict.starts_with("client_close_notify") || verdict == "client_answered_close_notify",
        "the peer did not see the client's close_notify: {verdict}{}{}",
        c.dump(),
        peer.dump()
    );
}

/// Path 7, step by step with the echo peer: a line comes back, the test
/// reads part of it and closes stdout, the next echoed line hits EPIPE.
fn stdout_closed_echo(tls: Tls) {
    let pki = Pki::new();
    let peer = PyPeer::start(&pki.server, tls, "echo", &[]);
    let mut c = Client::spawn_raw_stdout(client_args(&pki, "127.0.0.1", peer.port, &[]));
    c.write_stdin(b"0123456789abcdef\n", &[&peer]);
    let head = read_then_close_stdout(&mut c, 10, &[&peer]);
    assert_eq!(head, b"0123456789", "first bytes of stdout");
    c.write_stdin(b"second line\n", &[&peer]);
    let st = c.wait_exit(WAIT, &[&peer]);
    let verdict = peer.verdict(&[&c]);
    assert_stdout_closed_ending(&c, st, &[&peer]);
    assert_eq!(
        verdict,
        "client_close_notify",
        "the echo peer did not get the client's close_notify{}{}",
        c.dump(),
        peer.dump()
    );
}

/// Path 4, CR/LF stripped before comparing with the quit line.
#[test]
fn quit_on_line_crlf() {
    let pki = Pki::new();
    let peer = PyPeer::start(
        &pki.server,
        Tls::V13,
        "send-close",
        &["--payload-text", "data\\r\\nquit\\r\\nafter\\r\\n"],
    );
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        peer.port,
        &["--quit-on", "quit"],
    ));
    let st = c.wait_exit(WAIT, &[&peer]);
    c.assert_code(st, 0, &[&peer]);
    assert_eq!(
        c.stdout_text(),
        "data\r\nquit\r\n",
        "stdout must end with the quit line{}{}",
        c.dump(),
        peer.dump()
    );
    c.assert_report(&[("trigger", json!("quit-line"))], &[&peer]);
}

/// `--close-wait`: after `~.` the client sends its close_notify but keeps
/// delivering until the server's; the echo peer echoes all 1 MiB before it
/// reads the close_notify, so every byte comes back.
fn close_wait_delivers_everything(tls: Tls) {
    const TOTAL: usize = 1 << 20;
    let pki = Pki::new();
    let peer = PyPeer::start(&pki.server, tls, "echo", &[]);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", peer.port, &["--close-wait"]));
    let mut payload = vec![b'z'; TOTAL - 1];
    payload.push(b'\n');
    c.write_stdin(&payload, &[&peer]);
    c.write_stdin(b"~.\n", &[&peer]);
    let st = c.wait_exit(WAIT, &[&peer]);
    c.assert_no_panic(&[&peer]);
    c.assert_code(st, 0, &[&peer]);
    assert!(
        c.stdout.wait_eof(WAIT) && c.stdout_bytes() == payload,
        "echo incomplete: {} of {TOTAL} bytes{}{}",
        c.stdout_bytes().len(),
        c.dump(),
        peer.dump()
    );
    c.assert_report(
        &[
            ("trigger", json!("escape")),
            ("outcome", json!("clean")),
            ("close_notify_sent", json!(true)),
            ("close_notify_received", json!(true)),
            ("bytes_in", json!(TOTAL)),
            ("bytes_out", json!(TOTAL)),
            ("exit_code", json!(0)),
        ],
        &[&peer],
    );
    peer.assert_verdict("client_close_notify", &[&c]);
}

/// `--close-wait` against a server that never answers: the close is bounded
/// by `--close-timeout`, exit 4.
fn close_wait_bounded_by_close_timeout(tls: Tls) {
    let pki = Pki::new();
    let peer = PyPeer::start(&pki.server, tls, "stall", &[]);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        peer.port,
        &["--close-wait", "--close-timeout", "500ms"],
    ));
    peer.expect_line("HANDSHAKE", WAIT, &[&c]);
    c.write_stdin(b"~.\n", &[&peer]);
    let st = c.wait_exit(WAIT, &[&peer]);
    c.assert_no_panic(&[&peer]);
    c.assert_code(st, 4, &[&peer]);
    let report = c.report(&[&peer]);
    c.assert_report(
        &[
            ("trigger", json!("escape")),
            ("outcome", json!("close-timeout")),
            ("close_notify_sent", json!(true)),
            ("close_notify_received", json!(false)),
            ("exit_code", json!(4)),
        ],
        &[&peer],
    );
    let close_ms = report["close_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (500..1500).contains(&close_ms),
        "close took {close_ms} ms with --close-timeout 500ms{}",
        c.dump()
    );
}
