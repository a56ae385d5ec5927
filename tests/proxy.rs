//! `--proxy` through real proxies started by the test: tinyproxy (HTTP CONNECT) and
//! microsocks (SOCKS5), to `openssl s_server -state` and to nginx. The servers' logs judge
//! the TLS end (close_notify read), the proxies' logs show the tunnel to the target, and the
//! exit code and one-line message say what happened. Refusals (403, 407, SOCKS5 replies),
//! a proxy that closes, stalls or speaks another protocol, and a proxy that dies mid-session
//! (a truncation, exit 3, never a clean end) are covered too. See `tests/common/proxies.rs`
//! for how the proxies run.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::nginx::Nginx;
use common::peer::{TlsPeer, Verdict};
use common::proxies::{Microsocks, Tinyproxy, TinyproxyRules};
use common::*;

per_version! {
    http_proxy_to_s_server => |tls| to_s_server(tls, Via::Http);
    socks5_proxy_to_s_server => |tls| to_s_server(tls, Via::Socks5);
}

/// Which proxy a scenario goes through.
#[derive(Clone, Copy, Debug)]
enum Via {
    Http,
    Socks5,
}

/// A running proxy of either kind.
enum AnyProxy {
    Http(Tinyproxy),
    Socks5(Microsocks),
}

impl AnyProxy {
    /// A proxy that lets CONNECT reach `port`; `None` when its tool is missing (SKIP).
    fn start(via: Via, port: u16) -> Option<AnyProxy> {
        Some(match via {
            Via::Http => AnyProxy::Http(Tinyproxy::start(&TinyproxyRules {
                connect_ports: vec![port],
                basic_auth: None,
            })?),
            Via::Socks5 => AnyProxy::Socks5(Microsocks::start(None)?),
        })
    }

    fn url(&self) -> String {
        match self {
            AnyProxy::Http(p) => p.url(None),
            AnyProxy::Socks5(p) => p.url(None),
        }
    }

    /// How messages name it: `proxy 127.0.0.1:N` or `SOCKS5 proxy 127.0.0.1:N`.
    fn label(&self) -> String {
        match self {
            AnyProxy::Http(p) => format!("proxy 127.0.0.1:{}", p.port),
            AnyProxy::Socks5(p) => format!("SOCKS5 proxy 127.0.0.1:{}", p.port),
        }
    }

    /// Waits until the proxy logged its tunnel to `localhost:port`, and returns those lines.
    fn tunnel_lines(&self, port: u16, ctx: &[&dyn Dump]) -> Vec<String> {
        match self {
            AnyProxy::Http(p) => {
                p.expect_log("Established connection to host \"localhost\"", ctx);
                let mut lines = p.lines_with(&format!("CONNECT localhost:{port} HTTP/1.1"));
                lines.extend(p.lines_with("Established connection to host"));
                lines
            }
            AnyProxy::Socks5(p) => {
                // The name as sent: the proxy resolved it (ATYP 3), not the client.
                let line = format!("connected to localhost:{port}");
                p.expect_log(&line, ctx);
                p.lines_with(&line)
            }
        }
    }

    fn proc(&mut self) -> &mut Proc {
        match self {
            AnyProxy::Http(p) => &mut p.proc,
            AnyProxy::Socks5(p) => &mut p.proc,
        }
    }
}

impl Dump for AnyProxy {
    fn dump(&self) -> String {
        match self {
            AnyProxy::Http(p) => p.dump(),
            AnyProxy::Socks5(p) => p.dump(),
        }
    }
}

/// Client arguments: the test CA, a JSON report, `--proxy URL`, `extra`, then the target.
fn args_via(pki: &Pki, proxy: &str, target: &str, extra: &[&str]) -> Vec<String> {
    let mut args = pki.ca_args();
    args.extend([
        "--report".into(),
        "json".into(),
        "--proxy".into(),
        proxy.into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(target.into());
    args
}

/// The one message line on stderr (the report aside); fails if there is not exactly one.
fn one_message(c: &Client, ctx: &[&dyn Dump]) -> String {
    let lines = c.message_lines();
    assert_eq!(
        lines.len(),
        1,
        "expected one message line on stderr, got {lines:?}{}{}",
        c.dump(),
        dumps(ctx)
    );
    lines[0].clone()
}

/// Lines both ways through the tunnel, byte-exact; stdin EOF; after the quiet time
/// close_notify, which s_server reads: exit 0. The proxy logged the tunnel to the target.
fn to_s_server(tls: Tls, via: Via) {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, tls);
    let Some(proxy) = AnyProxy::start(via, srv.port) else {
        return;
    };
    let target = format!("localhost:{}", srv.port);
    let mut c = Client::spawn(args_via(
        &pki,
        &proxy.url(),
        &target,
        &["--quiet-time", "500ms"],
    ));
    let up = b"client line one\nclient line two\n";
    c.write_stdin(up, &[&srv, &proxy]);
    srv.expect_log("client line two\n", WAIT, &[&c, &proxy]);
    srv.send_lines(&["server line one", "server line two"]);
    let down = "server line one\nserver line two\n";
    assert!(
        c.stdout.wait_for(down, WAIT),
        "the server's lines never reached stdout{}{}{}",
        c.dump(),
        srv.dump(),
        proxy.dump()
    );
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv, &proxy]);
    c.assert_code(st, 0, &[&srv, &proxy]);
    srv.assert_client_closed_cleanly(&[&c, &proxy]);
    assert_eq!(
        c.stdout_text(),
        down,
        "stdout must be exactly the server's lines"
    );
    assert!(
        srv.text().contains("client line one\nclient line two\n"),
        "s_server did not get the client's lines in order{}",
        srv.dump()
    );
    c.assert_report(
        &clean_close(
            "stdin-eof",
            &[
                ("end", json!("quiet")),
                ("bytes_out", json!(up.len())),
                ("bytes_in", json!(down.len())),
            ],
        ),
        &[&srv, &proxy],
    );
    let lines = proxy.tunnel_lines(srv.port, &[&c, &srv]);
    println!("{via:?} proxy log: {lines:#?}");
}

/// 256 KiB of binary data up through the tunnel and echoed back by nginx's backend, every
/// byte equal; stdin EOF, then close_notify, which nginx reads (no `unexpected eof`): exit 0.
fn to_nginx(via: Via) {
    let pki = Pki::new();
    let Some(mut nginx) = Nginx::start(&pki.server, Tls::V13) else {
        return;
    };
    let Some(proxy) = AnyProxy::start(via, nginx.port()) else {
        return;
    };
    let mut data = vec![0u8; 256 * 1024];
    PatternStream::new(17).fill(&mut data);
    let target = format!("localhost:{}", nginx.port());
    let mut c = Client::spawn_with_input(args_via(&pki, &proxy.url(), &target, &[]), &data);
    let st = c.wait_exit(Duration::from_secs(30), &[&nginx, &proxy]);
    c.assert_code(st, 0, &[&nginx, &proxy]);
    let got = c.stdout_bytes();
    assert!(
        got == data,
        "the echo through the tunnel differs: {}{}",
        diff_summary(&got, &data),
        c.dump()
    );
    let verdict = nginx.next_verdict(WAIT);
    assert_eq!(
        verdict,
        Verdict::CloseNotify,
        "nginx must have read the client's close_notify{}{}{}",
        c.dump(),
        nginx.dump(),
        proxy.dump()
    );
    c.assert_report(
        &clean_close("stdin-eof", &[("bytes_in", json!(data.len()))]),
        &[&nginx, &proxy],
    );
    let lines = proxy.tunnel_lines(nginx.port(), &[&c, &nginx]);
    println!("{via:?} proxy log: {lines:#?}");
}

#[test]
fn http_proxy_to_nginx() {
    to_nginx(Via::Http);
}

#[test]
fn socks5_proxy_to_nginx() {
    to_nginx(Via::Socks5);
}

/// The proxy dies (SIGKILL) while the session is up: the client sees TCP end without the
/// server's close_notify, which is a possible truncation (exit 3), never a clean end.
fn proxy_killed_is_truncation(via: Via) {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, Tls::V13);
    let Some(mut proxy) = AnyProxy::start(via, srv.port) else {
        return;
    };
    let target = format!("localhost:{}", srv.port);
    let mut c = Client::spawn(args_via(&pki, &proxy.url(), &target, &[]));
    c.write_stdin(b"before the cut\n", &[&srv, &proxy]);
    srv.expect_log("before the cut\n", WAIT, &[&c, &proxy]);
    srv.send_line("answer before the cut");
    assert!(
        c.stdout.wait_for("answer before the cut\n", WAIT),
        "the server's line never reached stdout{}",
        c.dump()
    );
    proxy.proc().kill();
    let st = c.wait_exit(WAIT, &[&srv, &proxy]);
    c.assert_code(st, 3, &[&srv, &proxy]);
    let message = one_message(&c, &[&srv, &proxy]);
    let expected = format!(
        "possible truncation: {target} via {} closed TCP without close_notify",
        proxy.label()
    );
    assert!(
        message.contains(&expected),
        "expected {expected:?} in {message:?}"
    );
    c.assert_report(
        &report_fields(
            "peer-eof",
            "truncated",
            &[("close_notify_received", json!(false))],
            3,
        ),
        &[&srv, &proxy],
    );
    assert!(
        !srv.text().contains(SS_CLOSE_NOTIFY_WRITE),
        "s_server sent no close_notify, yet the client exited as if it had{}",
        srv.dump()
    );
    println!("{message}");
}

#[test]
fn http_proxy_killed_is_truncation() {
    proxy_killed_is_truncation(Via::Http);
}

#[test]
fn socks5_proxy_killed_is_truncation() {
    proxy_killed_is_truncation(Via::Socks5);
}

/// tinyproxy refuses CONNECT to a port its `ConnectPort` rules do not list: 403, exit 1,
/// the status in the message, and nothing reached the server.
#[test]
fn http_proxy_refuses_the_port() {
    let pki = Pki::new();
    let srv = SServer::start(&pki, Tls::V13);
    let Some(proxy) = Tinyproxy::start(&TinyproxyRules {
        connect_ports: vec![443],
        basic_auth: None,
    }) else {
        return;
    };
    let target = format!("localhost:{}", srv.port);
    let mut c = Client::spawn_with_input(args_via(&pki, &proxy.url(None), &target, &[]), b"");
    let st = c.wait_exit(WAIT, &[&srv, &proxy]);
    c.assert_code(st, 1, &[&srv, &proxy]);
    let message = one_message(&c, &[&srv, &proxy]);
    let expected = format!(
        "proxy 127.0.0.1:{} refused CONNECT to {target}: 403 ",
        proxy.port
    );
    assert!(
        message.contains(&expected),
        "expected {expected:?} in {message:?}"
    );
    proxy.expect_log(
        &format!("Refused CONNECT method on port {}", srv.port),
        &[&c],
    );
    assert!(
        !srv.text().contains("SSL_accept"),
        "the refused tunnel reached the server{}",
        srv.dump()
    );
    println!("{message}");
    println!("{:#?}", proxy.lines_with("CONNECT"));
}

/// tinyproxy with `BasicAuth`: no credentials (407) and wrong ones (401) are exit 1, saying which;
/// the right ones open the tunnel (exit 0, clean close at s_server).
#[test]
fn http_proxy_basic_auth() {
    let pki = Pki::new();
    let srv = SServer::start(&pki, Tls::V13);
    let Some(proxy) = Tinyproxy::start(&TinyproxyRules {
        connect_ports: vec![srv.port],
        basic_auth: Some(("alice", "s3cret")),
    }) else {
        return;
    };
    let target = format!("localhost:{}", srv.port);
    for (credentials, status, says) in [
        (None, 407, "(the proxy wants a user name and password"),
        (
            Some(("alice", "wrong")),
            401,
            "(the user name and password given were refused)",
        ),
    ] {
        let url = proxy.url(credentials);
        let mut c = Client::spawn_with_input(args_via(&pki, &url, &target, &[]), b"");
        let st = c.wait_exit(WAIT, &[&srv, &proxy]);
        c.assert_code(st, 1, &[&srv, &proxy]);
        let message = one_message(&c, &[&srv, &proxy]);
        // tinyproxy answers no credentials with 407, wrong ones with 401.
        let expected = format!(
            "proxy 127.0.0.1:{} refused CONNECT to {target}: {status} ",
            proxy.port
        );
        assert!(
            message.contains(&expected) && message.contains(says),
            "expected {expected:?} and {says:?} in {message:?}"
        );
        assert!(!message.contains("s3cret") && !message.contains("wrong"));
        println!("{message}");
    }
    let url = proxy.url(Some(("alice", "s3cret")));
    let mut c = Client::spawn(args_via(&pki, &url, &target, &["--quiet-time", "300ms"]));
    c.write_stdin(b"authenticated\n", &[&srv, &proxy]);
    srv.expect_log("authenticated\n", WAIT, &[&c, &proxy]);
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv, &proxy]);
    c.assert_code(st, 0, &[&srv, &proxy]);
    srv.assert_client_closed_cleanly(&[&c, &proxy]);
    proxy.expect_log("Established connection to host \"localhost\"", &[&c]);
    println!("{:#?}", proxy.lines_with("CONNECT"));
}

/// microsocks with a user and password: none (no acceptable method), wrong ones (RFC 1929
/// status) are exit 1 saying so; the right ones open the tunnel, exit 0.
#[test]
fn socks5_proxy_user_password() {
    let pki = Pki::new();
    let srv = SServer::start(&pki, Tls::V13);
    let Some(proxy) = Microsocks::start(Some(("alice", "s3cret"))) else {
        return;
    };
    let target = format!("localhost:{}", srv.port);
    for (credentials, says) in [
        (None, "it accepts no connection without authentication"),
        (
            Some(("alice", "wrong")),
            "the user name and password were refused",
        ),
    ] {
        let url = proxy.url(credentials);
        let mut c = Client::spawn_with_input(args_via(&pki, &url, &target, &[]), b"");
        let st = c.wait_exit(WAIT, &[&srv, &proxy]);
        c.assert_code(st, 1, &[&srv, &proxy]);
        let message = one_message(&c, &[&srv, &proxy]);
        let expected = format!(
            "SOCKS5 proxy 127.0.0.1:{} refused the connection to {target}: {says}",
            proxy.port
        );
        assert!(
            message.contains(&expected),
            "expected {expected:?} in {message:?}"
        );
        println!("{message}");
    }
    let url = proxy.url(Some(("alice", "s3cret")));
    let mut c = Client::spawn(args_via(&pki, &url, &target, &["--quiet-time", "300ms"]));
    c.write_stdin(b"authenticated\n", &[&srv, &proxy]);
    srv.expect_log("authenticated\n", WAIT, &[&c, &proxy]);
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv, &proxy]);
    c.assert_code(st, 0, &[&srv, &proxy]);
    srv.assert_client_closed_cleanly(&[&c, &proxy]);
    proxy.expect_log(&format!("connected to {target}"), &[&c]);
    println!("{:#?}", proxy.lines_with("connected"));
}

/// The target refuses the proxy's connection: the proxy's answer is in the message, exit 1.
#[test]
fn target_down_behind_the_proxy() {
    let pki = Pki::new();
    let closed = free_port();
    let target = format!("localhost:{closed}");
    for via in [Via::Http, Via::Socks5] {
        let Some(proxy) = AnyProxy::start(via, closed) else {
            return;
        };
        let mut c = Client::spawn_with_input(args_via(&pki, &proxy.url(), &target, &[]), b"");
        let st = c.wait_exit(WAIT, &[&proxy]);
        c.assert_code(st, 1, &[&proxy]);
        let message = one_message(&c, &[&proxy]);
        let expected = match via {
            Via::Http => format!("{} refused CONNECT to {target}: ", proxy.label()),
            Via::Socks5 => format!(
                "{} refused the connection to {target}: connection refused by the target (SOCKS5 reply 5)",
                proxy.label()
            ),
        };
        assert!(
            message.contains(&expected),
            "expected {expected:?} in {message:?}"
        );
        println!("{message}");
    }
}

/// The certificate is checked against the target's name, not the proxy's. With a
/// certificate for `localhost` only: the target `localhost` through the proxy `127.0.0.1`
/// passes; the target `127.0.0.1` through the proxy `localhost` fails, naming 127.0.0.1 and
/// what the certificate holds (its diagnosis went through the tunnel too: the proxy logs
/// two tunnels to 127.0.0.1; through SOCKS5 the address is sent as an address).
fn certificate_is_checked_against_the_target(via: Via) {
    let pki = Pki::new();
    let mut srv = SServer::start_with(&pki.localhost_only, Tls::V13, &[]);
    let Some(proxy) = AnyProxy::start(via, srv.port) else {
        return;
    };
    let by_address = format!("127.0.0.1:{}", srv.port);
    let url_by_name = proxy.url().replace("127.0.0.1", "localhost");
    let mut c = Client::spawn_with_input(args_via(&pki, &url_by_name, &by_address, &[]), b"");
    let st = c.wait_exit(WAIT, &[&srv, &proxy]);
    c.assert_code(st, 1, &[&srv, &proxy]);
    let message = one_message(&c, &[&srv, &proxy]);
    let expected = format!(
        "certificate of {by_address} via {} does not match the name 127.0.0.1: it holds DNS:localhost",
        proxy.label().replace("127.0.0.1", "localhost")
    );
    assert!(
        message.contains(&expected),
        "expected {expected:?} in {message:?}"
    );
    let (log, tunnel) = match &proxy {
        AnyProxy::Http(p) => (&p.log, format!("CONNECT {by_address} HTTP/1.1")),
        AnyProxy::Socks5(p) => (&p.log, format!("connected to {by_address}")),
    };
    assert!(
        log.wait_for_count(&tunnel, 2, WAIT),
        "the diagnosis should have gone through the proxy too{}",
        proxy.dump()
    );
    println!("{message}");
    srv.expect_connection_end(&[&c, &proxy]);

    // The diagnosis closed with close_notify too: the second session's is the next one.
    let close_notifies = count(&srv.log.bytes(), SS_CLOSE_NOTIFY_READ.as_bytes());
    let by_name = format!("localhost:{}", srv.port);
    let mut c = Client::spawn(args_via(
        &pki,
        &proxy.url(),
        &by_name,
        &["--quiet-time", "300ms"],
    ));
    c.write_stdin(b"name checked\n", &[&srv, &proxy]);
    srv.expect_log("name checked\n", WAIT, &[&c, &proxy]);
    srv.send_line("ok");
    assert!(c.stdout.wait_for("ok\n", WAIT), "{}", c.dump());
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv, &proxy]);
    c.assert_code(st, 0, &[&srv, &proxy]);
    assert!(
        srv.log
            .wait_for_count(SS_CLOSE_NOTIFY_READ, close_notifies + 1, WAIT),
        "s_server did not read the client's close_notify{}{}",
        c.dump(),
        srv.dump()
    );
    println!("{via:?} proxy log: {:#?}", lines_with_tunnels(log));
}

/// The proxy's log lines about tunnels.
fn lines_with_tunnels(log: &Capture) -> Vec<String> {
    log.text()
        .lines()
        .filter(|l| {
            l.contains("CONNECT ") || l.contains("Established") || l.contains("connected to")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn http_certificate_is_checked_against_the_target() {
    certificate_is_checked_against_the_target(Via::Http);
}

#[test]
fn socks5_certificate_is_checked_against_the_target() {
    certificate_is_checked_against_the_target(Via::Socks5);
}

/// A proxy that speaks the other protocol: tinyproxy waits for the end of a request line
/// that a SOCKS5 greeting never sends (bounded by --connect-timeout), microsocks closes on
/// an HTTP request; both exit 1 and say so.
#[test]
fn wrong_protocol() {
    let pki = Pki::new();
    let Some(tinyproxy) = Tinyproxy::start(&TinyproxyRules::default()) else {
        return;
    };
    let Some(microsocks) = Microsocks::start(None) else {
        return;
    };
    let cases = [
        (
            format!("socks5://127.0.0.1:{}", tinyproxy.port),
            format!(
                "SOCKS5 proxy 127.0.0.1:{} failed to set up the tunnel to localhost:443: no answer within 1s (the connect timeout)",
                tinyproxy.port
            ),
        ),
        (
            format!("http://127.0.0.1:{}", microsocks.port),
            format!(
                "proxy 127.0.0.1:{} closed the connection before the tunnel to localhost:443 was set up",
                microsocks.port
            ),
        ),
    ];
    for (url, expected) in cases {
        let extra = ["--connect-timeout", "1s"];
        let mut c = Client::spawn_with_input(args_via(&pki, &url, "localhost", &extra), b"");
        let st = c.wait_exit(WAIT, &[&tinyproxy, &microsocks]);
        c.assert_code(st, 1, &[&tinyproxy, &microsocks]);
        let message = one_message(&c, &[&tinyproxy, &microsocks]);
        assert!(
            message.contains(&expected),
            "expected {expected:?} in {message:?}"
        );
        println!("{message}");
    }
}

/// Hostile proxies run by the test: one that closes after reading the request, one that never
/// answers (bounded by --connect-timeout), one whose header never ends (bounded at 16 KiB).
#[test]
fn hostile_http_proxies() {
    let pki = Pki::new();
    let run = |listener: &TestListener, extra: &[&str], play: &dyn Fn(std::net::TcpStream)| {
        let url = format!("http://127.0.0.1:{}", listener.port);
        let mut c = Client::spawn_with_input(args_via(&pki, &url, "localhost:8443", extra), b"");
        let mut s = listener.accept(WAIT, &[&c]);
        let request = read_some(&mut s, WAIT).expect("the CONNECT request");
        assert!(
            request.starts_with(b"CONNECT localhost:8443 HTTP/1.1\r\nHost: localhost:8443\r\n"),
            "{}",
            show_bytes(&request, 400)
        );
        play(s);
        let started = Instant::now();
        let st = c.wait_exit(WAIT, &[]);
        c.assert_code(st, 1, &[]);
        c.assert_no_panic(&[]);
        (one_message(&c, &[]), started.elapsed())
    };
    let listener = TestListener::start();
    let (message, _) = run(&listener, &[], &|s| drop(s));
    let expected = format!(
        "proxy 127.0.0.1:{} closed the connection before the tunnel to localhost:8443 was set up",
        listener.port
    );
    assert!(message.contains(&expected), "{message}");
    println!("{message}");

    let (message, took) = run(&listener, &["--connect-timeout", "1s"], &|s| {
        // Held open, silent, until the client gives up.
        std::thread::spawn(move || {
            let mut s = s;
            let _ = s.set_read_timeout(Some(WAIT));
            let _ = s.read(&mut [0u8; 1]);
        });
    });
    assert!(
        message.contains("no answer within 1s (the connect timeout)"),
        "{message}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    println!("{message}");

    let (message, _) = run(&listener, &[], &|mut s| {
        let mut head = b"HTTP/1.1 200 Connection established\r\n".to_vec();
        while head.len() < 20 * 1024 {
            head.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let _ = s.write_all(&head);
    });
    assert!(
        message.contains("its answer's header is longer than 16 KiB"),
        "{message}"
    );
    println!("{message}");
}

/// The library: `Config::with_proxy`, then `Stream::connect` through tinyproxy to s_server, a
/// line each way, `close`: close_notify sent and read by s_server.
#[test]
fn library_stream_through_the_proxy() {
    let pki = Pki::new();
    let mut srv = SServer::start(&pki, Tls::V13);
    let Some(proxy) = Tinyproxy::start(&TinyproxyRules {
        connect_ports: vec![srv.port],
        basic_auth: None,
    }) else {
        return;
    };
    let config = gracetls::Config::new()
        .with_ca_file(&pki.ca)
        .with_system_roots(false)
        .with_proxy(proxy.url(None).parse().expect("proxy URL"));
    let target = format!("localhost:{}", srv.port);
    let stream = gracetls::Stream::connect(&config, &target)
        .unwrap_or_else(|e| panic!("connect through the proxy: {e}{}", proxy.dump()));
    assert_eq!(
        stream.target(),
        format!("{target} via proxy 127.0.0.1:{}", proxy.port)
    );
    (&stream).write_all(b"from the library\n").expect("write");
    srv.expect_log("from the library\n", WAIT, &[&proxy]);
    srv.send_line("to the library");
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\n") {
        let n = (&stream).read(&mut buf).expect("read");
        assert!(n > 0, "the stream ended early: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"to the library\n");
    let report = stream.close();
    assert!(report.close_notify_sent(), "{report:?}");
    srv.assert_client_closed_cleanly(&[&proxy]);
}

/// A proxy URL that cannot be used is a usage error: exit 2 before anything is sent, the
/// cause named, and the password never repeated.
#[test]
fn bad_proxy_urls_are_usage_errors() {
    for (url, needle) in [
        ("socks4://127.0.0.1:1080", "unknown scheme"),
        (
            "https://127.0.0.1:3128",
            "TLS to the proxy itself is not supported",
        ),
        ("http://alice:s3cret@127.0.0.1", "the port is required"),
        (
            "127.0.0.1:3128",
            "expected http://HOST:PORT or socks5://HOST:PORT",
        ),
        ("http://127.0.0.1:3128/path", "a proxy URL has no path"),
    ] {
        let mut c = Client::spawn(["--proxy", url, "127.0.0.1:1"]);
        let st = c.wait_exit(WAIT, &[]);
        c.assert_code(st, 2, &[]);
        let message = one_message(&c, &[]);
        assert!(
            message.contains(needle) && message.starts_with("gracetls: error: --proxy: "),
            "expected {needle:?} in {message:?}"
        );
        assert!(!message.contains("s3cret"), "{message}");
        assert!(c.stdout_bytes().is_empty());
    }
}
