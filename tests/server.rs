//! The server side: `Stream::accept` and `Listener`, against real clients that each judge the
//! end their own way: Python `ssl` with `suppress_ragged_eofs=False` (close_notify is `b""`,
//! a bare FIN is `SSLEOFError`; tests/peers/tls_clients.py) and `openssl s_client -state`.

#[allow(unused_macros)]
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gracetls::{Outcome, ServerConfig, Stream};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/tls_clients.py");

/// The Python clients: `n` of them behaving as `behave`, connected to `port`.
struct Clients {
    proc: Proc,
    out: Capture,
    err: Capture,
}

impl Clients {
    fn start(pki: &Pki, port: u16, tls: Tls, behave: &str, n: usize, extra: &[&str]) -> Clients {
        let mut cmd = Command::new("python3");
        cmd.arg(CLIENTS)
            .args(["--port", &port.to_string(), "--ca"])
            .arg(&pki.ca)
            .args([
                "--tls",
                tls.number(),
                "--behave",
                behave,
                "-n",
                &n.to_string(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("tls_clients.py", &mut cmd).expect("start python3");
        let out = Capture::new();
        let err = Capture::new();
        out.attach(proc.child_mut().stdout.take().expect("stdout"));
        err.attach(proc.child_mut().stderr.take().expect("stderr"));
        Clients { proc, out, err }
    }

    fn wait_ready(&self, timeout: Duration) {
        assert!(
            self.out.wait_for("READY ", timeout),
            "clients not ready: {}{}",
            self.out.text(),
            self.err.text()
        );
    }

    /// Every client's line, once all ended.
    fn results(&self, timeout: Duration) -> Vec<Value> {
        assert!(
            self.out.wait_for("DONE\n", timeout),
            "clients did not end: {}{}",
            self.out.text(),
            self.err.text()
        );
        self.out
            .text()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("a client's JSON line"))
            .collect()
    }

    fn only(&self, timeout: Duration) -> Value {
        let mut all = self.results(timeout);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }
}

fn server_config(pki: &Pki) -> ServerConfig {
    ServerConfig::new().identity(&pki.server.cert, &pki.server.key)
}

fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    (listener, port)
}

fn have_python() -> bool {
    have_tool("python3", "python3")
}

// --- Stream::accept, one client at a time ----------------------------------------------------

/// The server writes, then closes: the client reads it all and sees close_notify, answers
/// with its own; the server's report is clean with the client's close_notify.
fn server_closes(tls: Tls) {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, tls, "polite", 1, &["--send", "5"]);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&server_config(&pki), socket).expect("handshake");
    assert_eq!(stream.session().version(), Some(tls.python_name()));
    let mut got = [0u8; 5];
    (&stream).read_exact(&mut got).expect("the client's bytes");
    (&stream).write_all(&[7u8; 100_000]).expect("write");
    let report = stream.close();
    let client = clients.only(WAIT);
    assert_eq!(client["verdict"], "close_notify", "{client}");
    assert_eq!(client["received"], 100_000, "{client}");
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent());
    assert_eq!(report.bytes_out(), 100_000);
    assert_eq!(report.bytes_in(), 5);
}

/// The client closes first: `read` returns `Ok(0)` with the client's close_notify, and the
/// server's close answers it; the client's `unwrap` sees ours.
fn client_closes_first(tls: Tls) {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, tls, "first", 1, &["--send", "3"]);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&server_config(&pki), socket).expect("handshake");
    let mut all = Vec::new();
    (&stream)
        .read_to_end(&mut all)
        .expect("Ok(0) at the client's close_notify");
    assert_eq!(all, b"xxx");
    assert!(stream.close_notify_received());
    let report = stream.close();
    let client = clients.only(WAIT);
    assert_eq!(client["verdict"], "close_notify", "{client}");
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_received() && report.close_notify_sent());
}

/// The client ends its TCP stream without close_notify: `read` fails with `UnexpectedEof`
/// and the report says truncated.
fn client_truncates(tls: Tls) {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, tls, "truncate", 1, &["--send", "4"]);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&server_config(&pki), socket).expect("handshake");
    let mut all = Vec::new();
    let err = (&stream).read_to_end(&mut all).expect_err("a truncation");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(all, b"xxxx");
    let report = stream.close();
    clients.only(WAIT);
    assert_eq!(report.outcome(), Outcome::Truncated, "{report:?}");
    assert!(!report.close_notify_received());
}

// The server side speaks TLS 1.2 only: native-tls's OpenSSL server profile turns TLS 1.3 off.
#[test]
fn accept_server_closes() {
    server_closes(Tls::V12);
}

#[test]
fn accept_client_closes_first() {
    client_closes_first(Tls::V12);
}

#[test]
fn accept_client_truncates() {
    client_truncates(Tls::V12);
}

/// A client that offers TLS 1.3 only gets a handshake error that names the versions.
#[test]
fn accept_tls13_only_client_is_refused_by_name() {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, Tls::V13, "polite", 1, &[]);
    let (socket, _) = listener.accept().expect("accept");
    let err = Stream::accept(&server_config(&pki), socket).expect_err("no common version");
    assert!(
        err.to_string().contains("no TLS version in common"),
        "{err}"
    );
    let client = clients.only(WAIT);
    assert!(
        client["verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("error")),
        "{client}"
    );
}

/// A SIGKILLed client: the kernel ends its TCP stream without close_notify, so the blocked
/// `read` fails with `UnexpectedEof` and the report says truncated.
#[test]
fn accept_sigkilled_client_is_a_truncation() {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let mut clients = Clients::start(&pki, port, Tls::V12, "polite", 1, &[]);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&server_config(&pki), socket).expect("handshake");
    clients.wait_ready(WAIT);
    let reader = std::thread::scope(|s| {
        let reading = s.spawn(|| (&stream).read(&mut [0u8; 64]));
        clients.proc.signal(SIGKILL);
        reading.join().expect("reader thread")
    });
    let err = reader.expect_err("a truncation");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Truncated, "{report:?}");
}

/// A client that sends an HTTP request instead of a ClientHello is a handshake error that
/// says so, and its connection is shut.
#[test]
fn accept_garbage_is_a_handshake_error() {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, Tls::V13, "garbage", 1, &[]);
    let (socket, _) = listener.accept().expect("accept");
    let err = Stream::accept(&server_config(&pki), socket).expect_err("not TLS");
    let text = err.to_string();
    assert!(text.contains("does not speak TLS"), "{text}");
    let client = clients.only(WAIT);
    assert_eq!(client["verdict"], "closed", "{client}");
}

/// A client that stalls after two bytes of its hello is cut off at the handshake timeout.
#[test]
fn accept_stalled_handshake_times_out() {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, Tls::V13, "stall", 1, &["--hold", "20"]);
    let (socket, _) = listener.accept().expect("accept");
    let config = server_config(&pki).handshake_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = Stream::accept(&config, socket).expect_err("a stalled handshake");
    let took = started.elapsed();
    assert!(
        err.to_string()
            .contains("did not complete the handshake within 500ms"),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let client = clients.only(WAIT);
    assert_eq!(client["verdict"], "closed", "{client}");
}

/// A configuration without a certificate, or with a key of another certificate, is refused
/// before any client, naming the cause.
#[test]
fn server_config_errors_name_the_file() {
    let pki = Pki::new();
    let err = ServerConfig::new().check().expect_err("no identity");
    assert!(err.to_string().contains("no certificate and key"), "{err}");
    let err = ServerConfig::new()
        .identity(&pki.server.cert, &pki.client.key)
        .check()
        .expect_err("a key of another certificate");
    assert!(err.to_string().contains("does not match"), "{err}");
    let err = ServerConfig::new()
        .identity(pki.dir.path().join("missing.pem"), &pki.server.key)
        .check()
        .expect_err("a missing file");
    assert!(err.to_string().contains("no such file"), "{err}");
    server_config(&pki).check().expect("a good pair");
}
