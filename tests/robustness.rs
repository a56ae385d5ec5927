//! Robustness: full-duplex transfers, idling, signals at awkward moments, and
//! bad input that must end in exactly one clear line on stderr.

#[macro_use]
mod common;

use common::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

per_version! {
    first_line_after_handshake_arrives => first_line_arrives;
    server_speaks_first => server_speaks_first;
    alert_from_server => alert_from_server;
}

// ---------------------------------------------------------------------------
// The first line right after the handshake must not be stuck behind a read
// (TLS 1.3 s_server sends session tickets and otherwise speaks only when
// spoken to).

fn first_line_arrives(tls: Tls) {
    let mut s = Session::s_server(tls, &[]);
    s.c.write_stdin(b"first-line\n", &[&s.srv]);
    // stdin stays open.
    s.srv.expect_log("first-line\n", WAIT, &[&s.c]);
    s.c.close_stdin();
    let st = s.wait_exit(WAIT);
    s.srv.assert_client_closed_cleanly(&[&s.c]);
    s.c.assert_code(st, 0, &[&s.srv]);
}

/// The server speaks first, with its line in the SAME TCP segment as its last
/// handshake flight (the Python peer's `banner` mode; TLS 1.2: right behind
/// its Finished). The client must deliver it at once, without waiting for
/// more network input.
fn server_speaks_first(tls: Tls) {
    let mut s = Session::peer(
        tls,
        "banner",
        &["--payload-text", "banner-from-server\\n"],
        &[],
    );
    s.srv.expect_line("SENT", WAIT, &[&s.c]);
    assert!(
        s.c.stdout.wait_for("banner-from-server\n", WAIT),
        "the server's first line (sent with its last handshake flight) never reached stdout{}",
        s.dump()
    );
    s.c.close_stdin();
    let st = s.wait_exit(WAIT);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert_eq!(s.c.stdout_bytes(), b"banner-from-server\n", "{}", s.dump());
    s.srv.assert_verdict("client_close_notify", &[&s.c]);
}

// ---------------------------------------------------------------------------

/// 64 MiB through the echo peer, both directions at once, byte-exact.
#[test]
fn echo_64_mib_both_ways() {
    const TOTAL: u64 = 64 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
    let deadline = Instant::now() + Duration::from_secs(120);
    let left = || deadline.saturating_duration_since(Instant::now());

    let mut s = Session::peer_raw_stdout(Tls::V13, "echo", &[], &[]);

    // Writer: the pattern into stdin, then EOF.
    let mut stdin = s.c.stdin.take().unwrap();
    let (wtx, wrx) = mpsc::channel();
    thread::spawn(move || {
        let mut pattern = PatternStream::new(SEED);
        let mut hash = Fnv1a::new();
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        let res = loop {
            if sent == TOTAL {
                break Ok(());
            }
            pattern.fill(&mut buf);
            hash.update(&buf);
            if let Err(e) = stdin.write_all(&buf) {
                break Err(e);
            }
            sent += CHUNK as u64;
        };
        drop(stdin);
        let _ = wtx.send((sent, hash.finish(), res));
    });

    // Reader: stdout compared with the same pattern as it arrives.
    let mut stdout = s.c.stdout_pipe.take().unwrap();
    let (rtx, rrx) = mpsc::channel();
    thread::spawn(move || {
        let mut pattern = PatternStream::new(SEED);
        let mut hash = Fnv1a::new();
        let mut expected = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        let mut first_mismatch = None;
        let res = loop {
            match stdout.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    hash.update(&buf[..n]);
                    // Keep `expected` at least n bytes long.
                    while expected.len() < n {
                        let mut more = vec![0u8; CHUNK];
                        pattern.fill(&mut more);
                        expected.extend_from_slice(&more);
                    }
                    if first_mismatch.is_none() {
                        if let Some(i) = buf[..n].iter().zip(&expected).position(|(a, b)| a != b) {
                            first_mismatch = Some(got + i as u64);
                        }
                    }
                    expected.drain(..n);
                    got += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let _ = rtx.send((got, hash.finish(), first_mismatch, res));
    });

    let (sent, sent_hash, wres) = recv_within(&wrx, left(), "the stdin writer", &[&s.c, &s.srv]);
    let (got, got_hash, mismatch, rres) =
        recv_within(&rrx, left(), "the stdout reader (EOF)", &[&s.c, &s.srv]);
    let st = s.wait_exit(left());
    let verdict = s.srv.verdict(&[&s.c]);
    let ctx = format!(
        "sent {sent} bytes (fnv1a {sent_hash:016x}, {wres:?}), got {got} bytes \
         (fnv1a {got_hash:016x}, {rres:?}), first mismatch at {mismatch:?}"
    );
    s.c.assert_no_panic(&[&s.srv, &Note(ctx.clone())]);
    s.c.assert_code(st, 0, &[&s.srv, &Note(ctx.clone())]);
    assert!(
        wres.is_ok()
            && rres.is_ok()
            && sent == TOTAL
            && got == TOTAL
            && mismatch.is_none()
            && sent_hash == got_hash,
        "the echoed stream differs: {ctx}{}",
        s.dump()
    );
    assert_eq!(verdict, "client_close_notify", "{ctx}{}", s.dump());
    s.c.assert_report(
        &report_fields(
            "stdin-eof",
            "clean",
            &[("bytes_in", json!(TOTAL)), ("bytes_out", json!(TOTAL))],
            0,
        ),
        &[&s.srv],
    );
}

// ---------------------------------------------------------------------------

/// An idle session must sleep, not spin or poll.
#[test]
fn idle_client_does_not_wake_up() {
    let mut s = Session::s_server(Tls::V13, &[]);
    s.srv.send_line("hello-idle");
    assert!(
        s.c.stdout.wait_for("hello-idle\n", WAIT),
        "the server's line never reached stdout{}",
        s.dump()
    );
    let pid = s.c.proc.pid();
    let before = voluntary_ctxt_switches(pid).expect("read /proc/PID/task/*/status");
    // The observation window is the measurement itself.
    thread::sleep(Duration::from_secs(2));
    let after = voluntary_ctxt_switches(pid).expect("read /proc/PID/task/*/status");
    let delta = wakeups(&before, &after);
    println!("idle 2 s: {delta} voluntary context switches ({before:?} -> {after:?})");
    assert!(
        delta < 10,
        "idle client woke up {delta} times in 2 s (voluntary context switches, all threads){}",
        s.dump()
    );
    s.c.close_stdin();
    let st = s.wait_exit(WAIT);
    s.c.assert_code(st, 0, &[&s.srv]);
}

// ---------------------------------------------------------------------------

/// Feeds the client's stdin from a thread until its socket writes block (the
/// peer never reads): at least 1 MiB fed, then no progress for 500 ms.
/// Returns the bytes fed so far; the feeding thread keeps trying.
fn feed_until_blocked(c: &mut Client, peer: &PyPeer) -> u64 {
    let mut stdin = c.stdin.take().unwrap();
    let fed = Arc::new(AtomicU64::new(0));
    let (ptx, prx) = mpsc::channel::<u64>();
    {
        let fed = fed.clone();
        thread::spawn(move || {
            let buf = vec![b'x'; 64 * 1024];
            // Feed until the client is gone, not until nobody watches: dropping stdin early
            // would give the client a stdin EOF of its own.
            while stdin.write_all(&buf).is_ok() {
                let total = fed.fetch_add(buf.len() as u64, Ordering::SeqCst) + buf.len() as u64;
                let _ = ptx.send(total);
            }
        });
    }
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        match prx.recv_timeout(Duration::from_millis(500)) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if fed.load(Ordering::SeqCst) >= 1 << 20 => {
                return fed.load(Ordering::SeqCst);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "stdin feeding stopped after {} bytes (client gone?){}{}",
                fed.load(Ordering::SeqCst),
                c.dump(),
                peer.dump()
            ),
        }
        assert!(
            Instant::now() < give_up,
            "the client's writes never blocked ({} bytes fed){}{}",
            fed.load(Ordering::SeqCst),
            c.dump(),
            peer.dump()
        );
    }
}

/// SIGINT while the client's socket writes are blocked (the peer never
/// reads): the close_notify cannot go out, so the close times out after
/// `--close-timeout`, and the process still dies by SIGINT with a report.
#[test]
fn sigint_while_write_blocked() {
    let mut s = Session::peer(Tls::V13, "stall", &[], &["--close-timeout", "1s"]);
    s.srv.expect_line("HANDSHAKE", WAIT, &[&s.c]);

    let fed_at_signal = feed_until_blocked(&mut s.c, &s.srv);
    let t0 = Instant::now();
    s.c.signal(SIGINT);
    let st = s.wait_exit(Duration::from_secs(2));
    let took = s.c.proc.exited_at().unwrap() - t0;
    println!("blocked write + SIGINT: exited after {took:?} ({fed_at_signal} bytes fed)");
    let note = Note(format!(
        "{fed_at_signal} bytes fed before SIGINT; exit {took:?} after it"
    ));
    s.c.assert_no_panic(&[&s.srv, &note]);
    s.c.assert_signal(st, SIGINT, &[&s.srv, &note]);
    assert!(
        took <= Duration::from_secs(2),
        "took {took:?} > close-timeout 1 s + 1 s{}",
        s.dump()
    );
    s.c.assert_report(
        &report_fields(
            "signal",
            "close-timeout",
            &[("signal", json!("SIGINT"))],
            130,
        ),
        &[&s.srv, &note],
    );
}

/// A second SIGINT while the close waits (blocked write, long
/// `--close-timeout`) aborts at once.
#[test]
fn second_sigint_aborts_close() {
    // -v: the client logs when its close starts (the event to wait for).
    let mut s = Session::peer(Tls::V13, "stall", &[], &["--close-timeout", "30s", "-v"]);
    s.srv.expect_line("HANDSHAKE", WAIT, &[&s.c]);
    feed_until_blocked(&mut s.c, &s.srv);
    s.c.signal(SIGINT);
    assert!(
        s.c.stderr.wait_for("closing", WAIT),
        "no `closing` log line after the first SIGINT (-v){}",
        s.dump()
    );
    assert!(
        !s.c.proc.has_exited(),
        "the first SIGINT should start a close that waits{}",
        s.c.dump()
    );
    let t0 = Instant::now();
    s.c.signal(SIGINT);
    let st = s.wait_exit(WAIT);
    let took = s.c.proc.exited_at().unwrap() - t0;
    println!("second SIGINT: died after {took:?}");
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_signal(st, SIGINT, &[&s.srv]);
    assert!(
        took <= Duration::from_millis(500),
        "took {took:?} to die after the second SIGINT{}",
        s.dump()
    );
    s.c.assert_report(
        &report_fields("signal", "aborted", &[("signal", json!("SIGINT"))], 130),
        &[&s.srv],
    );
}

/// A close on a full socket is bounded by `--close-timeout`: the server never reads, the
/// client's write is blocked, and SIGTERM asks for the goodbye, which cannot go out. The
/// report says close-timeout with no close_notify sent, after about the timeout, and the
/// process still ends by SIGTERM. (The trigger is ours, not a line from the server: a server
/// that sends anything can open its TCP window as it does, and then the blocked write and
/// the close_notify do get through: the close is clean, rightly.) Exit 4 itself, without a
/// signal: `close_wait_bounded_by_close_timeout` in exit_paths.rs.
#[test]
fn close_on_a_full_socket_is_bounded() {
    let mut s = Session::peer(Tls::V13, "stall", &[], &["--close-timeout", "1s"]);
    s.srv.expect_line("HANDSHAKE", WAIT, &[&s.c]);
    feed_until_blocked(&mut s.c, &s.srv);
    s.c.signal(SIGTERM);
    let st = s.wait_exit(WAIT);
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_signal(st, SIGTERM, &[&s.srv]);
    let report = s.c.report(&[&s.srv]);
    s.c.assert_report(
        &report_fields(
            "signal",
            "close-timeout",
            &[("close_notify_sent", json!(false))],
            128 + SIGTERM,
        ),
        &[&s.srv],
    );
    let close_ms = report["close_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (1000..2000).contains(&close_ms),
        "the close took {close_ms} ms with --close-timeout 1s{}",
        s.c.dump()
    );
    assert!(
        s.c.message_lines()
            .iter()
            .any(|l| l.contains("did not finish within 1s")),
        "no close-timeout warning{}",
        s.c.dump()
    );
}

/// The test's own TCP listener, and a client with `flags` connecting to it.
fn listener_session(flags: &[&str]) -> Session<TestListener> {
    let pki = Pki::new();
    let srv = TestListener::start();
    let c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, flags));
    Session { c, srv, pki }
}

/// SIGINT while the handshake is pending (the server accepted TCP and says
/// nothing): death by SIGINT at once.
#[test]
fn sigint_during_handshake() {
    let mut s = listener_session(&["--connect-timeout", "30s"]);
    let mut sock = s.srv.accept(WAIT, &[&s.c]);
    // The ClientHello arrived: the client is in its handshake.
    let hello =
        read_some(&mut sock, WAIT).unwrap_or_else(|e| panic!("no ClientHello: {e}{}", s.c.dump()));
    assert!(!hello.is_empty(), "no ClientHello{}", s.c.dump());
    let t0 = Instant::now();
    s.c.signal(SIGINT);
    let st = s.c.wait_exit(WAIT, &[]);
    let took = s.c.proc.exited_at().unwrap() - t0;
    println!("SIGINT during handshake: died after {took:?}");
    s.c.assert_signal(st, SIGINT, &[]);
    s.c.assert_no_panic(&[]);
    assert!(
        took <= Duration::from_millis(500),
        "took {took:?} to die after SIGINT during the handshake (contract: 200 ms){}",
        s.c.dump()
    );
    drop(sock);
}

// ---------------------------------------------------------------------------
// Bad input: exit 1 (2 for usage), exactly one message line naming the cause.

/// Asserts the error ending: code, exactly one non-report line on stderr that
/// contains one of `needles` (case-insensitive), no panic, report `error`.
fn assert_one_line_error(
    c: &Client,
    st: ExitStatus,
    code: i32,
    needles: &[&str],
    ctx: &[&dyn Dump],
) -> String {
    c.assert_no_panic(ctx);
    c.assert_code(st, code, ctx);
    let lines = c.message_lines();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one message line on stderr, got {}: {lines:#?}{}{}",
        lines.len(),
        c.dump(),
        dumps(ctx)
    );
    let lower = lines[0].to_lowercase();
    assert!(
        needles.iter().any(|n| lower.contains(&n.to_lowercase())),
        "the error line should mention one of {needles:?}: {:?}{}{}",
        lines[0],
        c.dump(),
        dumps(ctx)
    );
    lines[0].clone()
}

/// Runs the client against the Python peer `start` makes: exit 1, one error
/// line naming one of `needles`, and an error report.
fn fails_against_peer(start: impl FnOnce(&Pki) -> PyPeer, needles: &[&str]) {
    let mut s = Session::start("127.0.0.1", start, &[]);
    let st = s.wait_exit(WAIT);
    assert_one_line_error(&s.c, st, 1, needles, &[&s.srv]);
    assert_error_report(&s.c, &[&s.srv]);
}

fn assert_error_report(c: &Client, ctx: &[&dyn Dump]) {
    let r = c.assert_report(&report_fields("error", "error", &[], 1), ctx);
    assert!(
        r["error"].is_string(),
        "report.error must name the error: {r}{}{}",
        c.dump(),
        dumps(ctx)
    );
}

#[test]
fn untrusted_certificate_with_test_ca() {
    fails_against_peer(
        |pki| PyPeer::start(&pki.untrusted, Tls::V13, "echo", &[]),
        &["certificate"],
    );
}

/// The server learns why: the client sends OpenSSL's alert (`unknown CA`) before closing,
/// so s_server logs that alert, not a bare `unexpected eof`.
#[test]
fn rejected_certificate_is_named_to_the_server() {
    let mut s = Session::start(
        "127.0.0.1",
        |pki| SServer::start_with(&pki.untrusted, Tls::V13, &[]),
        &[],
    );
    let st = s.wait_exit(WAIT);
    assert_one_line_error(&s.c, st, 1, &["certificate"], &[&s.srv]);
    s.srv
        .expect_log("SSL3 alert read:fatal:unknown CA", WAIT, &[&s.c]);
    assert!(
        !s.srv.text().contains("unexpected eof"),
        "s_server saw a bare EOF instead of the alert{}",
        s.dump()
    );
}

/// The echo peer with the untrusted leaf, and a client that is not given the
/// test CA: `flags`, `--report json`, then `host`.
fn untrusted_echo_session(flags: &[&str], host: &str) -> Session<PyPeer> {
    let pki = Pki::new();
    let srv = PyPeer::start(&pki.untrusted, Tls::V13, "echo", &[]);
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.extend([
        "--report".into(),
        "json".into(),
        format!("{host}:{}", srv.port),
    ]);
    let c = Client::spawn(args);
    Session { c, srv, pki }
}

#[test]
fn untrusted_certificate_without_ca_file() {
    let mut s = untrusted_echo_session(&[], "localhost");
    let st = s.wait_exit(WAIT);
    assert_one_line_error(&s.c, st, 1, &["certificate"], &[&s.srv]);
}

#[test]
fn wrong_hostname_via_servername() {
    let mut s = Session::peer(Tls::V13, "echo", &[], &["--servername", "wrong.example"]);
    let st = s.wait_exit(WAIT);
    assert_one_line_error(&s.c, st, 1, &["wrong.example", "hostname"], &[&s.srv]);
    assert_error_report(&s.c, &[&s.srv]);
}

#[test]
fn wrong_hostname_in_certificate() {
    let mut s = Session::start(
        "localhost",
        |pki| PyPeer::start(&pki.wrong_name, Tls::V12, "echo", &[]),
        &[],
    );
    let st = s.wait_exit(WAIT);
    assert_one_line_error(&s.c, st, 1, &["localhost", "hostname"], &[&s.srv]);
}

/// A plain-TCP server answering with HTTP.
#[test]
fn not_a_tls_server() {
    let mut s = listener_session(&[]);
    let mut sock = s.srv.accept(WAIT, &[&s.c]);
    let hello = read_some(&mut sock, WAIT).unwrap_or_else(|e| panic!("no ClientHello: {e}"));
    assert!(!hello.is_empty(), "no ClientHello{}", s.c.dump());
    sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
    let _ = sock.shutdown(Shutdown::Write);
    let st = s.c.wait_exit(WAIT, &[]);
    drop(sock);
    assert_one_line_error(&s.c, st, 1, &["tls"], &[]);
    assert_error_report(&s.c, &[]);
}

#[test]
fn garbage_after_handshake() {
    fails_against_peer(
        |pki| PyPeer::start(&pki.server, Tls::V13, "garbage", &[]),
        &["TLS error"],
    );
}

#[test]
fn tcp_reset_mid_stream() {
    fails_against_peer(
        |pki| PyPeer::start(&pki.server, Tls::V13, "reset", &[]),
        &["reset"],
    );
}

#[test]
fn connection_refused() {
    let pki = Pki::new();
    let port = free_port();
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", port, &[]));
    let st = c.wait_exit(WAIT, &[]);
    let line = assert_one_line_error(&c, st, 1, &["refused"], &[]);
    let addr = format!("127.0.0.1:{port}");
    assert!(
        line.contains(&addr),
        "the error line should name the address {addr}: {line:?}{}",
        c.dump()
    );
    assert_error_report(&c, &[]);
}

/// The server accepts TCP and never answers: `--connect-timeout` covers the
/// handshake.
#[test]
fn connect_timeout_on_silent_server() {
    let mut s = listener_session(&["--connect-timeout", "500ms"]);
    let sock = s.srv.accept(WAIT, &[&s.c]);
    let st = s.c.wait_exit(WAIT, &[]);
    let took = s.c.proc.exited_at().unwrap() - s.c.started;
    drop(sock);
    println!("--connect-timeout 500ms: exited after {took:?}");
    assert_one_line_error(&s.c, st, 1, &["timeout", "timed out"], &[]);
    assert!(
        took >= Duration::from_millis(490) && took <= Duration::from_secs(3),
        "--connect-timeout 500ms ended after {took:?}{}",
        s.c.dump()
    );
    assert_error_report(&s.c, &[]);
}

/// The server requires a client certificate and the client has none: a
/// fatal alert (TLS 1.2: handshake_failure during the handshake; TLS 1.3:
/// certificate_required right after it).
fn alert_from_server(tls: Tls) {
    fails_against_peer(
        |pki| {
            let ca = pki.ca.display().to_string();
            PyPeer::start(&pki.server, tls, "alert", &["--ca", &ca])
        },
        &["alert"],
    );
}

/// The same server is happy with `--cert/--key`.
#[test]
fn client_certificate_accepted() {
    let pki = Pki::new();
    let ca = pki.ca.display().to_string();
    let peer = PyPeer::start(&pki.server, Tls::V13, "alert", &["--ca", &ca]);
    let cert = pki.client.cert.display().to_string();
    let key = pki.client.key.display().to_string();
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        peer.port,
        &["--cert", &cert, "--key", &key],
    ));
    c.write_stdin(b"with a client cert\n", &[&peer]);
    assert!(
        c.stdout.wait_for("with a client cert\n", WAIT),
        "no echo{}{}",
        c.dump(),
        peer.dump()
    );
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&peer]);
    c.assert_code(st, 0, &[&peer]);
    peer.assert_verdict("client_close_notify", &[&c]);
}

/// Version pinning that the server cannot meet fails the handshake: the server's alert is
/// named, and the hint points at the version options.
#[test]
fn tls_version_mismatch() {
    let pki = Pki::new();
    for (server, flags) in [
        (Tls::V13, ["--tls-max", "1.2"]),
        (Tls::V12, ["--tls-min", "1.3"]),
    ] {
        let srv = SServer::start(&pki, server);
        let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &flags));
        let st = c.wait_exit(WAIT, &[&srv]);
        let line = assert_one_line_error(
            &c,
            st,
            1,
            &["failed: the server sent the alert \"protocol version\"; "],
            &[&srv],
        );
        assert!(line.contains("--tls-min..--tls-max"), "{line}{}", c.dump());
        c.assert_report(&[("alert", json!("protocol version"))], &[&srv]);
    }
}

/// Usage errors: exit 2, the cause named on stderr, nothing on stdout.
#[test]
fn bad_arguments() {
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag", "127.0.0.1:1"], "--no-such-flag"),
        (&["--on-eof", "bogus", "127.0.0.1:1"], "bogus"),
        (
            &["--connect-timeout", "5parsecs", "127.0.0.1:1"],
            "5parsecs",
        ),
        (&["--close-timeout", "soon", "127.0.0.1:1"], "soon"),
        (&["--report", "xml", "127.0.0.1:1"], "xml"),
        (&["--tls-min", "1.1", "127.0.0.1:1"], "1.1"),
        (&["--report", "json"], "host"),
        (&["127.0.0.1:http"], "port"),
        (&["[::1"], "]"),
        (&["--escape", "ab", "127.0.0.1:1"], "ab"),
    ];
    for (args, needle) in cases {
        let mut c = Client::spawn(args.iter());
        let st = c.wait_exit(WAIT, &[]);
        c.assert_no_panic(&[]);
        c.assert_code(st, 2, &[]);
        let err = c.stderr_text();
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "usage error for {args:?} should name {needle:?}{}",
            c.dump()
        );
        assert!(
            c.stdout_bytes().is_empty(),
            "stdout must stay empty{}",
            c.dump()
        );
    }
}

/// `--insecure` connects to an untrusted server, with a warning.
#[test]
fn insecure_accepts_untrusted_with_warning() {
    let mut s = untrusted_echo_session(&["--insecure"], "127.0.0.1");
    s.c.write_stdin(b"insecure hello\n", &[&s.srv]);
    s.c.close_stdin();
    let st = s.wait_exit(WAIT);
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert_eq!(s.c.stdout_bytes(), b"insecure hello\n", "{}", s.dump());
    let lines = s.c.message_lines();
    assert!(
        lines.iter().any(|l| {
            let l = l.to_lowercase();
            l.contains("warn") || l.contains("insecure")
        }),
        "--insecure must print a warning line{}",
        s.dump()
    );
    s.srv.assert_verdict("client_close_notify", &[&s.c]);
    s.c.assert_report(&[("outcome", json!("clean"))], &[&s.srv]);
}

// ---------------------------------------------------------------------------
// Hostile peers.

/// The peak resident set size of `pid` (VmHWM in /proc/PID/status), in KiB.
fn vm_hwm_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no VmHWM line for pid {pid}")))
}

/// 1 MiB with no newline while `--quit-on` is set: the quit-line matcher sees one endless
/// line and must neither buffer it nor lose a byte of it, and still match `bye` after it.
#[test]
fn endless_line_with_quit_on() {
    const N: usize = 1 << 20;
    let n = N.to_string();
    let mut s = Session::peer(
        Tls::V13,
        "flood",
        &["--payload-line-bytes", &n],
        &["--quit-on", "bye"],
    );
    let t0 = Instant::now();
    assert!(
        s.c.stdout.wait_len(N, Duration::from_secs(60)),
        "the endless line never fully arrived{}",
        s.dump()
    );
    s.srv.expect_line("SENT", WAIT, &[&s.c]);
    let took = t0.elapsed();
    // Measured while the client is still up (its server waits for our close), after the
    // whole line went through the matcher.
    let hwm = vm_hwm_kib(s.c.proc.pid())
        .unwrap_or_else(|e| panic!("cannot read the client's VmHWM: {e}{}", s.c.dump()));
    println!("1 MiB endless line: {took:?}, client VmHWM {hwm} KiB");
    // The peer echoes: ending the long line and sending `bye` shows the matcher still
    // matches after a line far too long to be the quit line.
    s.c.write_stdin(b"\nbye\n", &[&s.srv]);
    let st = s.wait_exit(WAIT);
    s.c.assert_no_panic(&[&s.srv]);
    s.c.assert_code(st, 0, &[&s.srv]);
    let mut want: Vec<u8> = payload_pattern(N)
        .into_iter()
        .map(|b| if b == b'\n' { b' ' } else { b })
        .collect();
    want.extend_from_slice(b"\nbye\n");
    let got = s.c.stdout_bytes();
    assert!(
        got == want,
        "stdout differs from the endless line: {}{}",
        diff_summary(&got, &want),
        s.dump()
    );
    assert!(
        hwm < 64 * 1024,
        "the client's peak RSS is {hwm} KiB after a 1 MiB line (limit 64 MiB){}",
        s.c.dump()
    );
    s.srv.assert_verdict("client_close_notify", &[&s.c]);
    s.c.assert_report(
        &clean_close("quit-line", &[("bytes_in", json!(N + 5))]),
        &[&s.srv],
    );
}

/// The server's stream ends in the middle of a TLS record (a header announcing 1024 bytes,
/// 100 of them, then FIN): the data before it is delivered, and the end is a truncation,
/// bounded, with one line naming it, no panic.
fn cut_inside_record(tls: Tls) {
    let mut s = Session::peer(
        tls,
        "cut-record",
        &["--payload-text", "before the cut\\n"],
        &[],
    );
    let st = s.wait_exit(WAIT);
    let took = s.c.proc.exited_at().unwrap() - s.c.started;
    let lines = s.c.message_lines();
    println!(
        "cut inside a record ({tls:?}): {} after {took:?}, stderr {lines:?}",
        describe_status(Some(st))
    );
    s.srv.assert_verdict("cut_record_sent", &[&s.c]);
    assert_eq!(s.c.stdout_text(), "before the cut\n", "{}", s.dump());
    // Exit 3 like any end without close_notify, but the message says the truncation is
    // certain here: the stream stopped inside a record.
    assert_one_line_error(&s.c, st, 3, &["in the middle of a TLS record"], &[&s.srv]);
    s.c.assert_report(
        &report_fields(
            "peer-eof",
            "truncated",
            &[
                ("close_notify_received", json!(false)),
                ("bytes_in", json!("before the cut\n".len())),
            ],
            3,
        ),
        &[&s.srv],
    );
}

per_version! {
    server_closes_inside_a_record => cut_inside_record;
}

/// `--ca-file` replaces the system roots; `--system-roots` keeps them too. The "system
/// bundle" here is the test CA, named by `SSL_CERT_FILE` (OpenSSL's own variable).
#[test]
fn ca_file_replaces_system_roots() {
    let pki = Pki::new();
    let peer_ok = |extra: &[&str]| {
        let peer = PyPeer::start(&pki.server, Tls::V13, "echo", &[]);
        let system = format!("SSL_CERT_FILE={}", pki.ca.display());
        let mut args: Vec<String> = vec!["--on-eof".into(), "close".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(format!("127.0.0.1:{}", peer.port));
        let mut c = Client::spawn_in(&["env", &system], &args);
        c.close_stdin();
        let st = c.wait_exit(WAIT, &[&peer]);
        c.assert_no_panic(&[&peer]);
        (st.code(), c.stderr_text())
    };
    let other = pki.other_ca.display().to_string();
    let (code, err) = peer_ok(&[]);
    assert_eq!(code, Some(0), "the system bundle alone: {err}");
    let (code, err) = peer_ok(&["--ca-file", &other]);
    assert_eq!(
        code,
        Some(1),
        "--ca-file must replace the system bundle: {err}"
    );
    assert!(err.contains("not trusted"), "{err}");
    let (code, err) = peer_ok(&["--ca-file", &other, "--system-roots"]);
    assert_eq!(
        code,
        Some(0),
        "--system-roots keeps the system bundle: {err}"
    );
}
