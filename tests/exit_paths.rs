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
use std::time::{Duration, Instant};

per_version! {
    wait_on_stdin_eof_ends_when_quiet => wait_on_stdin_eof_ends_when_quiet;
    wait_quiet_time_counts_from_the_last_data => wait_quiet_time_counts_from_the_last_data;
    piped_tilde_dot_is_data => piped_tilde_dot_is_data;
    stdout_full_is_an_error => stdout_full_is_an_error;
    half_close_on_stdin_eof => half_close_on_stdin_eof;
    on_eof_close => on_eof_close;
    on_eof_ignore_stays_until_signal => on_eof_ignore_stays_until_signal;
    escape_closes => escape_closes;
    escape_none_sends_tilde_dot => escape_none_sends_tilde_dot;
    escape_custom_char => escape_custom_char;
    sigint_closes => |tls| signal_closes(tls, SIGINT);
    sigterm_closes => |tls| signal_closes(tls, SIGTERM);
    sighup_closes => |tls| signal_closes(tls, SIGHUP);
    sigquit_closes => |tls| signal_closes(tls, SIGQUIT);
    quit_on_line_s_server => quit_on_line_s_server;
    quit_on_line_peer => quit_on_line_peer;
    peer_eof_s_server_q => |tls| peer_eof_s_server(tls, |srv| srv.command("q"));
    peer_eof_s_server_killed => |tls| peer_eof_s_server(tls, |srv| srv.proc.kill());
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

/// An s_server session past [`client_ready`].
fn ready_session(tls: Tls, flags: &[&str]) -> Session<SServer> {
    let mut s = Session::s_server(tls, flags);
    client_ready(&mut s.c, &s.srv);
    s
}

/// Waits for the exit; s_server must have got the client's close_notify.
fn exit_cleanly(s: &mut Session<SServer>) -> std::process::ExitStatus {
    let st = s.wait_exit(WAIT);
    s.srv.assert_client_closed_cleanly(&[&s.c]);
    s.c.assert_no_panic(&[&s.srv]);
    st
}

/// s_server sends `line`; it must come out of the client.
fn server_line_arrives(s: &mut Session<SServer>, line: &str) {
    s.srv.send_line(line);
    assert!(
        s.c.stdout.wait_for(&format!("{line}\n"), WAIT),
        "the server's line never reached stdout{}",
        s.dump()
    );
}

/// `hello`, then stdin EOF: a clean exit 0 after s_server got the line.
fn hello_then_stdin_eof(s: &mut Session<SServer>) {
    s.c.write_stdin(b"hello\n", &[&s.srv]);
    s.c.close_stdin();
    let st = exit_cleanly(s);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert!(
        s.srv.text().contains("hello\n"),
        "s_server did not receive `hello`{}",
        s.dump()
    );
}

/// Report fields of a close on signal `sig` (death by it: exit 128 + sig).
fn signal_close<'a>(sig: i32, more: &[(&'a str, Value)]) -> Vec<(&'a str, Value)> {
    let mut all = vec![
        ("signal", json!(signal_name(sig))),
        ("close_notify_sent", json!(true)),
    ];
    all.extend_from_slice(more);
    report_fields("signal", "clean", &all, 128 + sig)
}

/// Path 1, the default `--on-eof wait`, against a server that never closes by itself:
/// nothing is sent at EOF, and after the quiet time with no data the client closes, exit 0.
fn wait_on_stdin_eof_ends_when_quiet(tls: Tls) {
    let mut s = Session::s_server(tls, &["--quiet-time", "500ms"]);
    s.c.write_stdin(b"hello\n", &[&s.srv]);
    s.srv.expect_log("hello\n", WAIT, &[&s.c]);
    s.c.close_stdin();
    let eof_at = Instant::now();
    let st = exit_cleanly(&mut s);
    let took = s.c.proc.exited_at().unwrap_or_else(Instant::now) - eof_at;
    s.c.assert_code(st, 0, &[&s.srv]);
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(2500),
        "the client must end the quiet time (500 ms) after stdin EOF, not {took:?}{}",
        s.dump()
    );
    s.c.assert_report(
        &clean_close(
            "stdin-eof",
            &[
                ("end", json!("quiet")),
                ("bytes_out", json!(6)),
                ("bytes_dropped", json!(0)),
                ("error", null()),
            ],
        ),
        &[&s.srv],
    );
    assert!(
        s.c.message_lines().is_empty(),
        "a clean session should print nothing but the report on stderr{}",
        s.dump()
    );
}

/// The `-v` line `closed ...: ... in N ms` and the report agree: the report's `tls_close_ms`
/// is that N, and its `close_ms` counts from stdin EOF, the quiet time included.
#[test]
fn verbose_close_time_and_report_agree() {
    let mut s = Session::s_server(Tls::V13, &["--quiet-time", "500ms", "-v"]);
    s.c.write_stdin(b"hello\n", &[&s.srv]);
    s.srv.expect_log("hello\n", WAIT, &[&s.c]);
    s.c.close_stdin();
    let st = exit_cleanly(&mut s);
    s.c.assert_code(st, 0, &[&s.srv]);
    let report = s.c.report(&[&s.srv]);
    let err = s.c.stderr_text();
    let closed = err
        .lines()
        .find(|l| l.starts_with("gracetls: info: closed "))
        .unwrap_or_else(|| panic!("no -v line `closed ...`{}", s.dump()));
    let verbose_ms: u64 = closed
        .strip_suffix(" ms")
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time at the end of {closed:?}"));
    assert_eq!(
        report["tls_close_ms"].as_u64(),
        Some(verbose_ms),
        "the report's tls_close_ms must be the -v line's figure ({closed:?}){}",
        s.dump()
    );
    let closing = err
        .lines()
        .find(|l| l.starts_with("gracetls: info: closing: stdin-eof, then quiet ("))
        .unwrap_or_else(|| panic!("no -v line `closing: ...`{}", s.dump()));
    assert!(
        closing.ends_with(" ms after stdin-eof); the TLS close starts"),
        "the -v line must say how long after stdin EOF the TLS close starts: {closing:?}"
    );
    let close_ms = report["close_ms"].as_u64().unwrap_or_default();
    assert!(
        close_ms >= 500 && close_ms >= verbose_ms,
        "close_ms ({close_ms}) counts from stdin EOF, the 500 ms quiet time included{}",
        s.dump()
    );
}

/// `--on-eof wait`: data after stdin EOF is delivered and restarts the quiet time.
fn wait_quiet_time_counts_from_the_last_data(tls: Tls) {
    let mut s = ready_session(tls, &["--quiet-time", "800ms"]);
    s.c.close_stdin();
    s.srv.send_line("late-answer");
    assert!(
        s.c.stdout.wait_for("late-answer\n", WAIT),
        "the server's line after stdin EOF never reached stdout{}",
        s.dump()
    );
    let answer_at = Instant::now();
    let st = exit_cleanly(&mut s);
    let took = s.c.proc.exited_at().unwrap_or_else(Instant::now) - answer_at;
    s.c.assert_code(st, 0, &[&s.srv]);
    assert!(
        took >= Duration::from_millis(700),
        "the quiet time must count from the last data, yet the client ended {took:?} after it{}",
        s.dump()
    );
    s.c.assert_report(
        &clean_close(
            "stdin-eof",
            &[("end", json!("quiet")), ("bytes_in", json!(12))],
        ),
        &[&s.srv],
    );
}

/// From a pipe, `~.` is data unless `--escape` asks for it (as in ssh).
fn piped_tilde_dot_is_data(tls: Tls) {
    let mut s = Session::s_server(tls, &["--quiet-time", "300ms"]);
    s.c.write_stdin(b"a\n~.\nb\n", &[&s.srv]);
    s.c.close_stdin();
    let st = exit_cleanly(&mut s);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert!(
        s.srv.text().contains("a\n~.\nb\n"),
        "s_server did not receive all three lines, `~.` included{}",
        s.dump()
    );
    s.c.assert_report(
        &clean_close("stdin-eof", &[("bytes_out", json!(7))]),
        &[&s.srv],
    );
}

/// A stdout that cannot be written (ENOSPC on /dev/full) is an error: one line naming it,
/// exit 1, outcome error, and still a close_notify to the server.
fn stdout_full_is_an_error(tls: Tls) {
    let mut s = Session::start_with(
        Client::spawn_stdout_full,
        "127.0.0.1",
        |pki| SServer::start(pki, tls),
        &[],
    );
    client_ready(&mut s.c, &s.srv);
    s.srv.send_line("lost-on-dev-full");
    let st = exit_cleanly(&mut s);
    s.c.assert_code(st, 1, &[&s.srv]);
    let lines = s.c.message_lines();
    assert!(
        lines.len() == 1
            && lines[0].contains("cannot write the server's data to stdout")
            && lines[0].contains("No space left on device"),
        "expected one line naming the stdout error{}",
        s.dump()
    );
    s.c.assert_report(
        &report_fields("error", "error", &[("close_notify_sent", json!(true))], 1),
        &[&s.srv],
    );
}

/// Path 1, `--on-eof half-close`.
fn half_close_on_stdin_eof(tls: Tls) {
    let mut s = Session::start(
        "localhost",
        |pki| SServer::start(pki, tls),
        &["--on-eof", "half-close"],
    );
    hello_then_stdin_eof(&mut s);
    // s_server answers the close_notify (the client got it: see the report).
    s.srv.expect_log(SS_CLOSE_NOTIFY_WRITE, WAIT, &[&s.c]);
    s.c.assert_report(
        &clean_close(
            "stdin-eof",
            &[
                ("signal", null()),
                ("close_notify_received", json!(true)),
                ("bytes_out", json!(6)),
                ("bytes_in", json!(0)),
                ("error", null()),
            ],
        ),
        &[&s.srv],
    );
    assert!(
        s.c.message_lines().is_empty(),
        "a clean session should print nothing but the report on stderr{}",
        s.dump()
    );
}

/// Path 1, `--on-eof close`: fast close at once.
fn on_eof_close(tls: Tls) {
    let mut s = Session::s_server(tls, &["--on-eof", "close"]);
    hello_then_stdin_eof(&mut s);
    s.c.assert_report(
        &clean_close("stdin-eof", &[("bytes_out", json!(6)), ("error", null())]),
        &[&s.srv],
    );
}

/// Path 1, `--on-eof ignore`: stdin EOF changes nothing; the server can still
/// talk; a signal ends it.
fn on_eof_ignore_stays_until_signal(tls: Tls) {
    let mut s = ready_session(tls, &["--on-eof", "ignore"]);
    s.c.close_stdin();
    s.srv.send_line("still-here-after-eof");
    assert!(
        s.c.stdout.wait_for("still-here-after-eof\n", WAIT),
        "the server's line never reached stdout after stdin EOF with --on-eof ignore{}",
        s.dump()
    );
    assert!(
        !s.c.proc.has_exited(),
        "--on-eof ignore: the client exited after stdin EOF{}",
        s.dump()
    );
    s.c.signal(SIGTERM);
    let st = exit_cleanly(&mut s);
    s.c.assert_signal(st, SIGTERM, &[&s.srv]);
    assert_eq!(
        s.c.stdout_bytes(),
        b"still-here-after-eof\n",
        "stdout{}",
        s.dump()
    );
    s.c.assert_report(
        &signal_close(
            SIGTERM,
            &[("bytes_in", json!(21)), ("bytes_out", json!(READY.len()))],
        ),
        &[&s.srv],
    );
}

/// Path 2: with `--escape '~'`, `~.` alone on a line closes; it is not sent. (Without it
/// the escape works only when stdin is a terminal: [`piped_tilde_dot_is_data`].)
fn escape_closes(tls: Tls) {
    let mut s = Session::s_server(tls, &["--escape", "~"]);
    s.c.write_stdin(b"before\n~.\n", &[&s.srv]);
    // stdin stays open: the escape alone must end the session.
    let st = exit_cleanly(&mut s);
    s.c.assert_code(st, 0, &[&s.srv]);
    let log = s.srv.text();
    assert!(
        log.contains("before\n"),
        "s_server did not receive `before`{}",
        s.dump()
    );
    assert!(
        !log.contains("~."),
        "the escape `~.` was sent to the server{}",
        s.dump()
    );
    s.c.assert_report(
        &clean_close("escape", &[("bytes_out", json!(7))]),
        &[&s.srv],
    );
}

/// Path 2 disabled: `--escape none` sends `~.` like any other line.
fn escape_none_sends_tilde_dot(tls: Tls) {
    let mut s = Session::s_server(tls, &["--escape", "none"]);
    s.c.write_stdin(b"before\n~.\nafter\n", &[&s.srv]);
    s.srv.expect_log("after\n", WAIT, &[&s.c]);
    assert!(
        !s.c.proc.has_exited(),
        "--escape none: `~.` still ended the session{}",
        s.dump()
    );
    s.c.close_stdin();
    let st = s.wait_exit(WAIT);
    s.srv.assert_client_closed_cleanly(&[&s.c]);
    s.c.assert_code(st, 0, &[&s.srv]);
    let log = s.srv.text();
    assert!(
        log.contains("before\n") && log.contains("~.\n") && log.contains("after\n"),
        "s_server did not receive all three lines, `~.` included{}",
        s.dump()
    );
    s.c.assert_report(
        &report_fields("stdin-eof", "clean", &[("bytes_out", json!(16))], 0),
        &[&s.srv],
    );
}

/// Path 2 with another escape character: `--escape %` → `%.` closes, `~.`
/// is plain data.
fn escape_custom_char(tls: Tls) {
    let mut s = Session::s_server(tls, &["--escape", "%"]);
    s.c.write_stdin(b"before\n~.\n%.\n", &[&s.srv]);
    let st = s.wait_exit(WAIT);
    s.srv.assert_client_closed_cleanly(&[&s.c]);
    s.c.assert_code(st, 0, &[&s.srv]);
    let log = s.srv.text();
    assert!(
        log.contains("before\n") && log.contains("~.\n"),
        "s_server did not receive `before` and `~.`{}",
        s.dump()
    );
    assert!(
        !log.contains("%."),
        "the escape `%.` was sent to the server{}",
        s.dump()
    );
    s.c.assert_report(
        &report_fields("escape", "clean", &[("bytes_out", json!(10))], 0),
        &[&s.srv],
    );
}

/// Path 3: SIGINT / SIGTERM / SIGHUP → close_notify, report, death by that
/// signal.
fn signal_closes(tls: Tls, sig: i32) {
    let mut s = ready_session(tls, &[]);
    // Connected for sure once a server line comes out of the client.
    server_line_arrives(&mut s, "hello-client");
    s.c.signal(sig);
    let st = exit_cleanly(&mut s);
    s.c.assert_signal(st, sig, &[&s.srv]);
    s.c.assert_report(
        &signal_close(
            sig,
            &[
                ("bytes_in", json!(13)),
                ("bytes_out", json!(READY.len())),
                ("error", null()),
            ],
        ),
        &[&s.srv],
    );
}

/// Path 4 with s_server. (s_server takes a stdin line starting with `q` as
/// its quit command, so the quit line here is `bye`.) The three lines go out
/// in one write, so usually in one TLS record: what follows the quit line
/// must be dropped.
fn quit_on_line_s_server(tls: Tls) {
    let mut s = ready_session(tls, &["--quit-on", "bye"]);
    s.srv.send_lines(&["data", "bye", "after"]);
    let st = exit_cleanly(&mut s);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert_eq!(
        s.c.stdout_text(),
        "data\nbye\n",
        "stdout must end with the quit line{}",
        s.dump()
    );
    s.c.assert_report(&clean_close("quit-line", &[]), &[&s.srv]);
}

/// Path 4 with `--quit-on quit` (the Python peer sends it; s_server cannot).
fn quit_on_line_peer(tls: Tls) {
    let mut s = Session::peer(
        tls,
        "send-close",
        &["--payload-text", "data\\nquit\\nafter\\n"],
        &["--quit-on", "quit"],
    );
    let st = s.wait_exit(WAIT);
    let verdict = s.srv.verdict(&[&s.c]);
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert_eq!(
        s.c.stdout_text(),
        "data\nquit\n",
        "stdout must end with the quit line{}",
        s.dump()
    );
    assert!(
        verdict == "client_answered_close_notify" || verdict == "client_close_notify",
        "the peer did not get the client's close_notify: {verdict}{}",
        s.dump()
    );
    s.c.assert_report(&clean_close("quit-line", &[]), &[&s.srv]);
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
        &report_fields(
            "peer-eof",
            "truncated",
            &[("close_notify_received", json!(false))],
            3,
        ),
        ctx,
    );
}

/// Path 6 with s_server: `end` (its `q` command, or killing it) closes TCP
/// without close_notify.
fn peer_eof_s_server(tls: Tls, end: fn(&mut SServer)) {
    let mut s = ready_session(tls, &[]);
    server_line_arrives(&mut s, "last-line");
    end(&mut s.srv);
    let st = s.wait_exit(WAIT);
    assert_truncated(&s.c, st, &[&s.srv]);
    assert_eq!(s.c.stdout_bytes(), b"last-line\n", "stdout{}", s.dump());
}

/// Stdout must be exactly the peer's first `n` payload bytes.
fn assert_payload(s: &Session<PyPeer>, n: usize) {
    let got = s.c.stdout_bytes();
    let want = payload_pattern(n);
    assert!(
        got == want,
        "stdout differs from the payload: {}{}",
        diff_summary(&got, &want),
        s.dump()
    );
}

/// Path 5: the server's close_notify (immediately followed by its FIN) after
/// 1 MiB: everything delivered, close_notify answered, exit 0.
fn peer_close_notify(tls: Tls) {
    const N: usize = 1024 * 1024;
    let n = N.to_string();
    let mut s = Session::peer(tls, "send-close", &["--payload-bytes", &n], &[]);
    // stdin stays open: only the server's close_notify ends the session.
    let st = s.wait_exit(Duration::from_secs(30));
    let verdict = s.srv.verdict(&[&s.c]);
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert_payload(&s, N);
    assert_eq!(
        verdict,
        "client_answered_close_notify",
        "the client must answer the server's close_notify{}",
        s.dump()
    );
    s.c.assert_report(
        &clean_close(
            "peer-close-notify",
            &[
                ("close_notify_received", json!(true)),
                ("bytes_in", json!(N)),
                ("bytes_out", json!(0)),
                ("error", null()),
            ],
        ),
        &[&s.srv],
    );
}

/// Path 6 with the Python peer: payload, then FIN without close_notify.
fn peer_truncate(tls: Tls) {
    const N: usize = 256 * 1024;
    let n = N.to_string();
    let mut s = Session::peer(tls, "send-truncate", &["--payload-bytes", &n], &[]);
    let st = s.wait_exit(Duration::from_secs(30));
    assert_truncated(&s.c, st, &[&s.srv]);
    assert_payload(&s, N);
    let report = s.c.report(&[&s.srv]);
    assert_eq!(
        report["bytes_in"],
        json!(N),
        "report: {report}{}",
        s.c.dump()
    );
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
    c.assert_report(&clean_close("stdout-closed", &[]), ctx);
}

/// Path 7: the reader of stdout goes away in the middle of a 4 MiB download.
fn stdout_closed_large_payload(tls: Tls) {
    const N: usize = 4 * 1024 * 1024;
    let n = N.to_string();
    let mut s = Session::peer_raw_stdout(tls, "send-close", &["--payload-bytes", &n], &[]);
    let head = read_then_close_stdout(&mut s.c, 10, &[&s.srv]);
    assert_eq!(head, &payload_pattern(10)[..], "first bytes of stdout");
    let st = s.wait_exit(Duration::from_secs(30));
    let verdict = s.srv.verdict(&[&s.c]);
    assert_stdout_closed_ending(&s.c, st, &[&s.srv]);
    assert!(
        verdict.starts_with("client_close_notify") || verdict == "client_answered_close_notify",
        "the peer did not see the client's close_notify: {verdict}{}",
        s.dump()
    );
}

/// Path 7, step by step with the echo peer: a line comes back, the test
/// reads part of it and closes stdout, the next echoed line hits EPIPE.
fn stdout_closed_echo(tls: Tls) {
    let mut s = Session::peer_raw_stdout(tls, "echo", &[], &[]);
    s.c.write_stdin(b"0123456789abcdef\n", &[&s.srv]);
    let head = read_then_close_stdout(&mut s.c, 10, &[&s.srv]);
    assert_eq!(head, b"0123456789", "first bytes of stdout");
    s.c.write_stdin(b"second line\n", &[&s.srv]);
    let st = s.wait_exit(WAIT);
    let verdict = s.srv.verdict(&[&s.c]);
    assert_stdout_closed_ending(&s.c, st, &[&s.srv]);
    assert_eq!(
        verdict,
        "client_close_notify",
        "the echo peer did not get the client's close_notify{}",
        s.dump()
    );
}

/// Path 4, CR/LF stripped before comparing with the quit line.
#[test]
fn quit_on_line_crlf() {
    let mut s = Session::peer(
        Tls::V13,
        "send-close",
        &["--payload-text", "data\\r\\nquit\\r\\nafter\\r\\n"],
        &["--quit-on", "quit"],
    );
    let st = s.wait_exit(WAIT);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert_eq!(
        s.c.stdout_text(),
        "data\r\nquit\r\n",
        "stdout must end with the quit line{}",
        s.dump()
    );
    s.c.assert_report(&[("trigger", json!("quit-line"))], &[&s.srv]);
}

/// `--close-wait`: after `~.` the client sends its close_notify but keeps
/// delivering until the server's; the echo peer echoes all 1 MiB before it
/// reads the close_notify, so every byte comes back.
fn close_wait_delivers_everything(tls: Tls) {
    const TOTAL: usize = 1 << 20;
    let mut s = Session::peer(tls, "echo", &[], &["--close-wait", "--escape", "~"]);
    let mut payload = vec![b'z'; TOTAL - 1];
    payload.push(b'\n');
    s.c.write_stdin(&payload, &[&s.srv]);
    s.c.write_stdin(b"~.\n", &[&s.srv]);
    let st = s.wait_exit(WAIT);
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert!(
        s.c.stdout.wait_eof(WAIT) && s.c.stdout_bytes() == payload,
        "echo incomplete: {} of {TOTAL} bytes{}",
        s.c.stdout_bytes().len(),
        s.dump()
    );
    s.c.assert_report(
        &clean_close(
            "escape",
            &[
                ("close_notify_received", json!(true)),
                ("bytes_in", json!(TOTAL)),
                ("bytes_out", json!(TOTAL)),
            ],
        ),
        &[&s.srv],
    );
    s.srv.assert_verdict("client_close_notify", &[&s.c]);
}

/// `--close-wait` against a server that never answers: the close is bounded
/// by `--close-timeout`, exit 4.
fn close_wait_bounded_by_close_timeout(tls: Tls) {
    let mut s = Session::peer(
        tls,
        "stall",
        &[],
        &["--close-wait", "--close-timeout", "500ms", "--escape", "~"],
    );
    s.srv.expect_line("HANDSHAKE", WAIT, &[&s.c]);
    s.c.write_stdin(b"~.\n", &[&s.srv]);
    let st = s.wait_exit(WAIT);
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_code(st, 4, &[&s.srv]);
    let report = s.c.report(&[&s.srv]);
    s.c.assert_report(
        &report_fields(
            "escape",
            "close-timeout",
            &[
                ("close_notify_sent", json!(true)),
                ("close_notify_received", json!(false)),
            ],
            4,
        ),
        &[&s.srv],
    );
    let close_ms = report["close_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (500..1500).contains(&close_ms),
        "close took {close_ms} ms with --close-timeout 500ms{}",
        s.c.dump()
    );
}

/// Bad arguments are exit 2 with one line naming the problem, before any connection is
/// made: a listener on the port each target names sees nothing.
#[test]
fn bad_arguments_fail_before_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let port = listener.local_addr().expect("local address").port();
    let at = format!("127.0.0.1:{port}");
    let p = port.to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--tls-min", "1.3", "--tls-max", "1.2", &at],
            "--tls-min 1.3 is above --tls-max 1.2",
        ),
        (&["--servername", "", &at], "--servername is empty"),
        (&["127.0.0.1:0"], "port 0"),
        (&["--connect-timeout", "0", &at], "must be more than zero"),
        (&["--close-timeout", "0s", &at], "must be more than zero"),
        (&["--close-timeout", "-1s", &at], "must be more than zero"),
        (&["--quiet-time", "0ms", &at], "must be more than zero"),
        (
            &["127.0.0.1", &p],
            "HOST and PORT are one argument, 127.0.0.1:",
        ),
        (&["::1:4434"], "needs brackets"),
        (&["http://127.0.0.1"], "not a TLS scheme"),
        (
            &["https://127.0.0.1/index.html"],
            "a URL path cannot be sent",
        ),
    ];
    for (args, expected) in cases {
        let mut c = Client::spawn(args.iter().copied());
        c.close_stdin();
        let st = c.wait_exit(WAIT, &[]);
        c.assert_no_panic(&[]);
        c.assert_code(st, 2, &[]);
        let err = c.stderr_text();
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains("error") && first.contains(expected),
            "{args:?}: the first stderr line must name the problem ({expected:?}){}",
            c.dump()
        );
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{args:?}: a connection was made ({other:?}){}", c.dump()),
        }
    }
}

/// A file option that cannot be used is exit 2 with one line naming the file, what is wrong
/// with it and what to do, before any connection: a listener on the port sees nothing, and
/// against a port where nothing listens the user hears about the file, not "connection
/// refused".
#[test]
fn bad_files_fail_before_connecting() {
    let pki = Pki::new();
    let dir = TempDir::new("bad-files");
    let text = dir.write("notes.txt", b"these are notes, not a certificate\n");
    let empty = dir.write("empty.pem", b"");
    let der = dir.write("ca.der", &[0x30, 0x82, 0x01, 0x0a, 0x02, 0x01]);
    let text = text.display().to_string();
    let empty = empty.display().to_string();
    let der = der.display().to_string();
    let ca = pki.ca.display().to_string();
    let cert = pki.client.cert.display().to_string();
    let key = pki.client.key.display().to_string();
    let other_key = pki.server.key.display().to_string();
    let missing = dir.path().join("missing.pem").display().to_string();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let at = format!(
        "127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let closed = {
        let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        format!("127.0.0.1:{}", gone.local_addr().expect("address").port())
    };
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--ca-file", &missing, &at],
            format!(
                "gracetls: error: cannot use CA file {missing}: there is no such file; check the path given to --ca-file"
            ),
        ),
        (
            vec!["--ca-file", &missing, &closed],
            format!(
                "gracetls: error: cannot use CA file {missing}: there is no such file; check the path given to --ca-file"
            ),
        ),
        (
            vec!["--ca-file", &text, &at],
            format!(
                "gracetls: error: cannot use CA file {text}: no certificate in it: it is not PEM (no -----BEGIN CERTIFICATE----- line); pass a PEM file that holds the certificate of the CA that issued the server's, with --ca-file"
            ),
        ),
        (
            vec!["--ca-file", &empty, &at],
            format!(
                "gracetls: error: cannot use CA file {empty}: it is empty: no certificate in it; pass a PEM file"
            ),
        ),
        (
            vec!["--ca-file", &der, &at],
            format!(
                "gracetls: error: cannot use CA file {der}: no PEM certificate in it (it looks like DER); convert it with `openssl x509 -inform der -in {der} -out {der}.pem` and pass {der}.pem"
            ),
        ),
        (
            vec!["--ca-file", &key, &at],
            format!(
                "gracetls: error: cannot use CA file {key}: it holds a private key, not a certificate; pass a PEM file"
            ),
        ),
        (
            vec!["--ca-file", &ca, "--cert", &missing, "--key", &key, &at],
            format!(
                "gracetls: error: cannot use client certificate {missing}: there is no such file; check the paths given to --cert and --key"
            ),
        ),
        (
            vec!["--ca-file", &ca, "--cert", &cert, "--key", &text, &at],
            format!("gracetls: error: cannot use client key {text}: no PEM private key in it"),
        ),
        (
            vec!["--ca-file", &ca, "--cert", &key, "--key", &key, &at],
            format!(
                "gracetls: error: cannot use client certificate {key}: it holds a private key, not a certificate; pass the client certificate and its private key as PEM files, with --cert and --key"
            ),
        ),
        (
            vec![
                "--ca-file",
                &ca,
                "--cert",
                &cert,
                "--key",
                &other_key,
                &closed,
            ],
            format!(
                "gracetls: error: the client key {other_key} does not match the client certificate {cert}: they hold different public keys; pass the key"
            ),
        ),
    ];
    for (args, expected) in &cases {
        let mut c = Client::spawn(args.iter().copied());
        c.close_stdin();
        let st = c.wait_exit(WAIT, &[]);
        c.assert_no_panic(&[]);
        c.assert_code(st, 2, &[]);
        let lines = c.message_lines();
        assert!(
            lines.len() == 1 && lines[0].starts_with(expected.as_str()),
            "{args:?}: stderr must be the one line {expected:?}...{}",
            c.dump()
        );
        assert!(
            !lines[0].contains("connection refused"),
            "{args:?}: the file is named, not the port{}",
            c.dump()
        );
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{args:?}: a connection was made ({other:?}){}", c.dump()),
        }
    }
}

/// Every argument error, whether clap or gracetls finds it, starts `gracetls: error: ` and is
/// exit 2.
#[test]
fn argument_errors_have_one_style() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--no-such-option", "localhost"],
            "unexpected argument '--no-such-option'",
        ),
        (
            &["--on-eof", "never", "localhost"],
            "invalid value 'never' for '--on-eof <MODE>'",
        ),
        (
            &["--tls-min", "1.1", "localhost"],
            "invalid value '1.1' for '--tls-min <VERSION>'",
        ),
        (
            &["--starttls", "gopher", "localhost"],
            "invalid value 'gopher' for '--starttls <PROTO>'",
        ),
        (&[], "the following required arguments were not provided"),
        (&["--servername", "", "localhost"], "--servername is empty"),
        (&["localhost", "443"], "HOST and PORT are one argument"),
    ];
    for (args, expected) in cases {
        let mut c = Client::spawn(args.iter().copied());
        c.close_stdin();
        let st = c.wait_exit(WAIT, &[]);
        c.assert_no_panic(&[]);
        c.assert_code(st, 2, &[]);
        let err = c.stderr_text();
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("gracetls: error: ") && first.contains(expected),
            "{args:?}: the first stderr line must be `gracetls: error: ...{expected}...`{}",
            c.dump()
        );
        assert!(
            !err.lines().skip(1).any(|l| l.contains("error:")),
            "{args:?}: one error line{}",
            c.dump()
        );
    }
}

/// `https://HOST:PORT` is taken as HOST:PORT, the name checked being HOST.
#[test]
fn https_url_target_connects() {
    let mut s = Session::start(
        "https://localhost",
        |pki| SServer::start(pki, Tls::V13),
        &["--on-eof", "close"],
    );
    s.c.write_stdin(b"via-url\n", &[&s.srv]);
    s.srv.expect_log("via-url\n", WAIT, &[&s.c]);
    s.c.close_stdin();
    let st = exit_cleanly(&mut s);
    s.c.assert_code(st, 0, &[&s.srv]);
}
