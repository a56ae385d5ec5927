//! The server side: `Stream::accept` and `Listener`, against real clients that each judge the
//! end their own way: Python `ssl` with `suppress_ragged_eofs=False` (close_notify is `b""`,
//! a bare FIN is `SSLEOFError`; tests/peers/tls_clients.py) and `openssl s_client -state`.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gracetls::{Listener, Outcome, ServerConfig, Stream};

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
    ServerConfig::new().with_identity(&pki.server.cert, &pki.server.key)
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
    // With TLS 1.3 the client closes its socket with our session tickets unread, so its
    // kernel may reset the connection before our close_notify is written: the report still
    // says truncated, as that is how the client ended, and names the socket error.
    assert_eq!(report.outcome(), Outcome::Truncated, "{report:?}");
    assert!(!report.close_notify_received());
}

per_version! {
    accept_server_closes => server_closes;
    accept_client_closes_first => client_closes_first;
    accept_client_truncates => client_truncates;
}

/// A server that takes TLS 1.3 only refuses a TLS 1.2 client with an error that says why.
#[test]
fn accept_without_a_common_version_says_so() {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, Tls::V12, "polite", 1, &[]);
    let (socket, _) = listener.accept().expect("accept");
    let config = server_config(&pki).with_min_version(gracetls::TlsVersion::Tls13);
    let err = Stream::accept(&config, socket).expect_err("no common version");
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

/// `client_ca_file`: a client with a certificate from that CA is served, and its certificate
/// is the session's peer certificate; one without a certificate fails the handshake, which
/// says so.
fn client_certificate_required(tls: Tls) {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let config = server_config(&pki).with_client_ca_file(&pki.ca);
    let (listener, port) = bind();
    let cert = pki.client.cert.display().to_string();
    let key = pki.client.key.display().to_string();
    let with = Clients::start(
        &pki,
        port,
        tls,
        "first",
        1,
        &["--cert", &cert, "--key", &key],
    );
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&config, socket).expect("handshake with a client certificate");
    let peer = stream
        .session()
        .peer_certificate()
        .expect("the client's certificate");
    assert!(
        peer.subject().contains("gracetls test client"),
        "{}",
        peer.subject()
    );
    (&stream)
        .read_to_end(&mut Vec::new())
        .expect("Ok(0) at its close_notify");
    assert_eq!(stream.close().outcome(), Outcome::Clean);
    assert_eq!(with.only(WAIT)["verdict"], "close_notify");

    let without = Clients::start(&pki, port, tls, "polite", 1, &[]);
    let (socket, _) = listener.accept().expect("accept");
    let err = Stream::accept(&config, socket).expect_err("no client certificate");
    assert!(
        err.to_string()
            .contains("the client sent no certificate, and one is required"),
        "{err}"
    );
    let client = without.only(WAIT);
    assert!(
        client["verdict"]
            .as_str()
            .is_some_and(|v| v.contains("error")),
        "{client}"
    );
}

per_version! {
    accept_client_certificate_required => client_certificate_required;
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
    let config = server_config(&pki).with_handshake_timeout(Duration::from_millis(500));
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
        .with_identity(&pki.server.cert, &pki.client.key)
        .check()
        .expect_err("a key of another certificate");
    assert!(err.to_string().contains("does not match"), "{err}");
    let err = ServerConfig::new()
        .with_identity(pki.dir.path().join("missing.pem"), &pki.server.key)
        .check()
        .expect_err("a missing file");
    assert!(err.to_string().contains("no such file"), "{err}");
    server_config(&pki).check().expect("a good pair");
}

// --- Listener ---------------------------------------------------------------------------------

/// Waits (bounded, 5 ms steps) until `listener` has `n` connections open.
fn wait_open(listener: &Listener, n: usize) {
    let end = Instant::now() + WAIT;
    while listener.open_connections() != n {
        assert!(
            Instant::now() < end,
            "{} connections open, expected {n}",
            listener.open_connections()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until `Ok(0)` (the client's close_notify, or the shutdown's close).
fn read_until_end(stream: &Stream) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    while (&*stream).read(&mut buf)? > 0 {}
    Ok(())
}

/// Idle clients, a shutdown: each client reads close_notify and answers with its own; each
/// report is clean with the client's close_notify.
fn shutdown_says_goodbye_to_every_client(tls: Tls) {
    if !have_python() {
        return;
    }
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let pki = Pki::new();
    let read = Arc::new(AtomicUsize::new(0));
    let handler = {
        let read = Arc::clone(&read);
        move |stream: &Stream| {
            let mut buf = [0u8; 4096];
            loop {
                match (&*stream).read(&mut buf)? {
                    0 => return Ok(()),
                    n => read.fetch_add(n, Ordering::SeqCst),
                };
            }
        }
    };
    let listener = Listener::bind("127.0.0.1:0", &server_config(&pki), handler).expect("listen");
    let port = listener.local_addr().port();
    let clients = Clients::start(&pki, port, tls, "polite", 5, &["--send", "10"]);
    clients.wait_ready(WAIT);
    wait_open(&listener, 5);
    // Every handler has its client's 10 bytes and waits in `read`.
    let end = Instant::now() + WAIT;
    while read.load(Ordering::SeqCst) < 50 {
        assert!(Instant::now() < end, "the handlers did not read");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let reports = listener.shutdown();
    let took = started.elapsed();
    let results = clients.results(WAIT);
    assert_eq!(results.len(), 5);
    for client in &results {
        assert_eq!(client["verdict"], "close_notify", "{client}");
        assert_eq!(client["answered"], true, "{client}");
    }
    assert_eq!(reports.len(), 5, "{reports:?}");
    for report in &reports {
        assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
        assert!(report.close_notify_received(), "{report:?}");
        assert_eq!(report.bytes_in(), 10, "{report:?}");
        assert_eq!(report.peer_addr().ip().to_string(), "127.0.0.1");
    }
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        listener.shutdown().len() == 5,
        "a second call returns the same reports"
    );
}

per_version! {
    listener_shutdown_says_goodbye_to_every_client => shutdown_says_goodbye_to_every_client;
}

/// `max_connections(1)`: three clients are served one after the other (the next waits in the
/// accept queue), each to a clean end, and never two at once.
#[test]
fn listener_serves_max_connections_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let config = {
        let reports = Arc::clone(&reports);
        server_config(&pki)
            .with_max_connections(1)
            .with_on_report(move |r| reports.lock().expect("reports").push(r.clone()))
    };
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handler = {
        let (now, most) = (Arc::clone(&now), Arc::clone(&most));
        move |stream: &Stream| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            let result = (&*stream).write_all(b"hi");
            now.fetch_sub(1, Ordering::SeqCst);
            result
        }
    };
    let listener = Listener::bind("127.0.0.1:0", &config, handler).expect("listen");
    let clients = Clients::start(
        &pki,
        listener.local_addr().port(),
        Tls::V12,
        "polite",
        3,
        &[],
    );
    for client in clients.results(WAIT) {
        assert_eq!(client["verdict"], "close_notify", "{client}");
        assert_eq!(client["received"], 2, "{client}");
    }
    assert_eq!(most.load(Ordering::SeqCst), 1);
    wait_open(&listener, 0);
    assert!(listener.shutdown().is_empty());
    let reports = reports.lock().expect("reports");
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert!(
        reports.iter().all(|r| r.outcome() == Outcome::Clean),
        "{reports:?}"
    );
}

/// Hostile clients during a drain (close timeout 2 s, enough for a polite client to read
/// 1 MiB and answer on a loaded machine): one that never reads while the
/// handler writes, one that never sends close_notify, one stalled in its handshake, next to
/// polite ones; one that sent garbage is reported before. The shutdown ends within the
/// close timeout and a grace, each connection with its own outcome.
fn drain_with_hostile_clients(tls: Tls) {
    use std::sync::{Arc, Mutex};

    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let ended = Arc::new(Mutex::new(Vec::new()));
    let config = {
        let ended = Arc::clone(&ended);
        server_config(&pki)
            .with_close_timeout(Duration::from_secs(2))
            .with_on_report(move |r| ended.lock().expect("reports").push(r.clone()))
    };
    // A client that sends `F` first is written to until the write fails; the others get
    // 1 MiB, then are read until the end.
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler = {
        let busy = Arc::clone(&busy);
        move |stream: &Stream| {
            let mut first = [0u8; 1];
            (&*stream).read_exact(&mut first)?;
            let chunk = [b'z'; 65536];
            if first[0] == b'F' {
                busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                loop {
                    (&*stream).write_all(&chunk)?;
                }
            }
            for _ in 0..16 {
                (&*stream).write_all(&chunk)?;
            }
            busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            read_until_end(stream)
        }
    };
    let listener = Listener::bind("127.0.0.1:0", &config, handler).expect("listen");
    let port = listener.local_addr().port();
    let garbage = Clients::start(&pki, port, tls, "garbage", 1, &[]);
    let garbage = garbage.only(WAIT);
    assert_eq!(garbage["verdict"], "closed", "{garbage}");
    let polite = Clients::start(&pki, port, tls, "polite", 3, &["--send", "1"]);
    let silent = Clients::start(
        &pki,
        port,
        tls,
        "silent",
        1,
        &["--send", "1", "--hold", "3"],
    );
    let noread = Clients::start(
        &pki,
        port,
        tls,
        "noread",
        1,
        &["--send", "1", "--fill", "F", "--hold", "20"],
    );
    let stall = Clients::start(&pki, port, tls, "stall", 1, &["--hold", "20"]);
    for c in [&polite, &silent, &noread, &stall] {
        c.wait_ready(WAIT);
    }
    wait_open(&listener, 6);
    // Every handler is at work: four have written their 1 MiB, one writes on and on.
    let end = Instant::now() + WAIT;
    while busy.load(std::sync::atomic::Ordering::SeqCst) < 5 {
        assert!(Instant::now() < end, "the handlers did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let reports = listener.shutdown();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "the drain took {took:?}"
    );
    eprintln!("drain with hostile clients ({}): {took:?}", tls.number());
    assert_eq!(reports.len(), 6, "{reports:#?}");
    let clean = reports
        .iter()
        .filter(|r| r.outcome() == Outcome::Clean && r.close_notify_received())
        .count();
    let silent_closed = reports
        .iter()
        .filter(|r| r.outcome() == Outcome::Clean && !r.close_notify_received())
        .count();
    let stuck = reports
        .iter()
        .filter(|r| matches!(r.outcome(), Outcome::CloseTimeout | Outcome::Unconfirmed))
        .count();
    let cut_off = reports
        .iter()
        .filter(|r| {
            r.handshake_error()
                == Some("the handshake had not finished when the drain timeout passed")
        })
        .count();
    // Three polite clients answered. The silent one was closed without its answer: clean,
    // its TCP acknowledged our close_notify. The one that never reads: either the handler's
    // data could not all go out before the close timeout (close-timeout, the socket shut
    // hard), or it did and our close_notify sits unacknowledged behind a full window
    // (unconfirmed); which one depends on how much the kernels' buffers took. The stalled
    // handshake was cut off.
    assert_eq!(clean, 3, "{reports:#?}");
    assert_eq!(silent_closed, 1, "{reports:#?}");
    assert_eq!(stuck, 1, "{reports:#?}");
    assert_eq!(cut_off, 1, "{reports:#?}");
    for c in polite.results(WAIT) {
        assert_eq!(c["verdict"], "close_notify", "{c}");
        assert_eq!(c["received"], 16 * 65536, "{c}");
    }
    assert_eq!(silent.only(WAIT)["verdict"], "close_notify");
    // The garbage client's report came before the shutdown, through on_report.
    let ended = ended.lock().expect("reports");
    let refused = ended
        .iter()
        .filter_map(|r| r.handshake_error())
        .filter(|e| e.contains("does not speak TLS"))
        .count();
    assert_eq!(refused, 1, "{ended:#?}");
    drop(noread);
    drop(stall);
}

per_version! {
    listener_drain_with_hostile_clients => drain_with_hostile_clients;
}

const NOREAD_ALONE: &str = "GRACETLS_NOREAD_ALONE";

/// Clients that never read while their handlers write hold bounded memory: once every
/// handler is blocked in `write`, the server's memory stops growing, whatever the handlers
/// would still write. Run in a process of its own, so the memory figures are this
/// scenario's alone.
#[test]
fn non_reading_clients_hold_bounded_memory() {
    if !have_python() {
        return;
    }
    let text = run_alone("non_reading_clients_alone", NOREAD_ALONE);
    // libtest may print the test's name on the same line first.
    for line in text
        .lines()
        .filter_map(|l| l.find("noread ").map(|i| &l[i..]))
    {
        eprintln!("{line}");
    }
}

#[test]
#[ignore = "run by non_reading_clients_hold_bounded_memory, in a process of its own"]
fn non_reading_clients_alone() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    if std::env::var_os(NOREAD_ALONE).is_none() {
        return;
    }
    const N: usize = 20;
    let pki = Pki::new();
    let config = server_config(&pki).with_close_timeout(Duration::from_millis(500));
    let written = Arc::new(AtomicU64::new(0));
    let handler = {
        let written = Arc::clone(&written);
        move |stream: &Stream| {
            let mut first = [0u8; 1];
            (&*stream).read_exact(&mut first)?;
            let chunk = [b'z'; 65536];
            // Bounded: 1 GiB a client is far more than any socket buffer takes.
            for _ in 0..16_384 {
                (&*stream).write_all(&chunk)?;
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            Ok(())
        }
    };
    let rss_before = status_field("VmRSS:");
    let listener = Listener::bind("127.0.0.1:0", &config, handler).expect("listen");
    let port = listener.local_addr().port();
    let clients = Clients::start(
        &pki,
        port,
        Tls::V13,
        "noread",
        N,
        &["--send", "1", "--fill", "F", "--hold", "30"],
    );
    clients.wait_ready(WAIT);
    wait_open(&listener, N);
    // Every handler is blocked once what they wrote stops growing for a second.
    let end = Instant::now() + WAIT;
    let mut last = (written.load(Ordering::SeqCst), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if now > 0 && last.1.elapsed() >= Duration::from_secs(1) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the handlers never blocked: {now} bytes written"
        );
    }
    let (rss_blocked, written_blocked) = (status_field("VmRSS:"), written.load(Ordering::SeqCst));
    // The observation window is the measurement itself.
    std::thread::sleep(Duration::from_secs(1));
    let (rss_later, written_later) = (status_field("VmRSS:"), written.load(Ordering::SeqCst));
    println!(
        "noread {N} clients: {written_blocked} bytes written before every handler blocked; RSS {rss_before} KiB before, {rss_blocked} KiB blocked, {rss_later} KiB a second later ({} KiB a connection)",
        rss_later.saturating_sub(rss_before) / N as u64
    );
    assert_eq!(written_later, written_blocked, "a blocked handler wrote on");
    assert!(
        rss_later <= rss_blocked + 1024,
        "memory grew while every handler was blocked: {rss_blocked} -> {rss_later} KiB"
    );
    // What one blocked connection holds: its thread, its TLS state, and at most one
    // write's ciphertext waiting for the socket.
    assert!(
        rss_later.saturating_sub(rss_before) / (N as u64) < 512,
        "{rss_before} -> {rss_later} KiB for {N} connections"
    );
    let started = Instant::now();
    let reports = listener.shutdown();
    assert_eq!(reports.len(), N, "{reports:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the drain took {:?}",
        started.elapsed()
    );
    assert!(
        reports
            .iter()
            .all(|r| matches!(r.outcome(), Outcome::CloseTimeout | Outcome::Unconfirmed)),
        "{reports:#?}"
    );
    drop(clients);
}

/// CPU ticks (user + system) of this process's thread named `name`, from /proc.
fn thread_ticks(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // The fields after the command's closing parenthesis; utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        return Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?);
    }
    None
}

/// The accept thread sleeps in `accept` (no CPU while idle, no polling) and the shutdown
/// wakes it at once: shutting the listening socket down makes the blocked `accept` fail.
#[test]
fn listener_shutdown_wakes_the_accept_thread_at_once() {
    let pki = Pki::new();
    let listener = Listener::bind("127.0.0.1:0", &server_config(&pki), |_| Ok(())).expect("listen");
    let name = format!("accept :{}", listener.local_addr().port());
    std::thread::sleep(Duration::from_millis(300));
    let ticks = thread_ticks(&name).expect("the accept thread");
    std::thread::sleep(Duration::from_millis(700));
    let idle = thread_ticks(&name).expect("the accept thread") - ticks;
    assert_eq!(idle, 0, "the accept thread used CPU while idle");
    let started = Instant::now();
    assert!(listener.shutdown().is_empty());
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "{took:?}");
    assert!(
        thread_ticks("gracetls-accept").is_none(),
        "the accept thread ended"
    );
    assert!(
        std::net::TcpStream::connect(listener.local_addr()).is_err(),
        "nothing listens any more"
    );
    // The listening socket is closed, not only shut: the port is free again.
    TcpListener::bind(listener.local_addr()).expect("the port bound again");
    eprintln!("shutdown of an idle listener: {took:?}");
}

// --- 1,000 clients drained ------------------------------------------------------------------

const DRAIN_ALONE: &str = "GRACETLS_DRAIN_ALONE";

/// A field of this process's /proc status, as a number (`Threads:`, `VmHWM:` in KiB).
fn status_field(field: &str) -> u64 {
    vm_kib(std::process::id(), field).unwrap_or(0)
}

/// 1,000 connected idle clients (`GRACETLS_DRAIN_N`), drained by one shutdown, in a process
/// of their own so the thread and memory figures are this scenario's alone;
/// `GRACETLS_DRAIN_RUNS=10` runs it ten times in a row. Each run prints its figures.
#[test]
fn listener_drains_1000_clients() {
    if !have_python() {
        return;
    }
    let text = run_alone("listener_drains_1000_clients_alone", DRAIN_ALONE);
    // libtest may print the test's name on the same line first.
    for line in text
        .lines()
        .filter_map(|l| l.find("drain run ").map(|i| &l[i..]))
    {
        eprintln!("{line}");
    }
}

#[test]
#[ignore = "run by listener_drains_1000_clients, in a process of its own"]
fn listener_drains_1000_clients_alone() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    if std::env::var_os(DRAIN_ALONE).is_none() {
        return;
    }
    let n: usize = std::env::var("GRACETLS_DRAIN_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runs: usize = std::env::var("GRACETLS_DRAIN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let tls = match std::env::var("GRACETLS_DRAIN_TLS").as_deref() {
        Ok("1.2") => Tls::V12,
        _ => Tls::V13,
    };
    let drain_timeout = Duration::from_secs(5);
    let pki = Pki::new();
    let config = server_config(&pki)
        .with_max_connections(n)
        .with_close_timeout(drain_timeout);
    for run in 1..=runs {
        let listener = Listener::bind("127.0.0.1:0", &config, read_until_end).expect("listen");
        let clients = Clients::start(
            &pki,
            listener.local_addr().port(),
            tls,
            "polite",
            n,
            &["--timeout", "120"],
        );
        clients.wait_ready(Duration::from_secs(120));
        wait_open(&listener, n);
        let idle_threads = status_field("Threads:");
        let idle_rss = status_field("VmRSS:");
        // The peak thread count during the shutdown, sampled: a measurement, not a wait.
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    peak.fetch_max(status_field("Threads:"), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let started = Instant::now();
        let reports = listener.shutdown();
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        sampler.join().expect("sampler");
        let results = clients.results(Duration::from_secs(60));
        let clean = reports
            .iter()
            .filter(|r| r.outcome() == Outcome::Clean && r.close_notify_received())
            .count();
        let saw = results
            .iter()
            .filter(|c| c["verdict"] == "close_notify" && c["answered"] == true)
            .count();
        eprintln!(
            "drain run {run}/{runs}: tls={} n={n} shutdown={} ms reports={} clean={clean} clients_saw_close_notify={saw} threads_idle={idle_threads} threads_peak={} rss_idle_kib={idle_rss} rss_peak_kib={}",
            tls.number(),
            took.as_millis(),
            reports.len(),
            peak.load(Ordering::SeqCst),
            status_field("VmHWM:"),
        );
        assert_eq!(reports.len(), n);
        assert_eq!(
            clean,
            n,
            "{:?}",
            reports.iter().find(|r| r.outcome() != Outcome::Clean)
        );
        assert_eq!(
            saw,
            n,
            "{:?}",
            results.iter().find(|c| c["verdict"] != "close_notify")
        );
        assert!(took < drain_timeout, "the drain took {took:?}");
        drop(listener);
    }
}

// --- openssl s_client as the client ----------------------------------------------------------

/// `openssl s_client -state` connected to `port`, its stdin a pipe we hold.
struct SClient {
    proc: Proc,
    stdin: Option<std::process::ChildStdin>,
    out: Capture,
    err: Capture,
}

impl SClient {
    fn start(pki: &Pki, port: u16) -> SClient {
        SClient::start_with(pki, port, Tls::V12)
    }

    fn start_with(pki: &Pki, port: u16, tls: Tls) -> SClient {
        let mut cmd = Command::new(OPENSSL);
        cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "localhost", "-state", tls.s_server_flag()])
            .arg("-CAfile")
            .arg(&pki.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("s_client", &mut cmd).expect("start openssl s_client");
        let stdin = proc.child_mut().stdin.take();
        let out = Capture::new();
        let err = Capture::new();
        out.attach(proc.child_mut().stdout.take().expect("stdout"));
        err.attach(proc.child_mut().stderr.take().expect("stderr"));
        SClient {
            proc,
            stdin,
            out,
            err,
        }
    }

    fn text(&self) -> String {
        format!("{}{}", self.out.text(), self.err.text())
    }
}

/// The server closes: s_client reads our close_notify (its own `-state` line says so) and
/// has everything we wrote.
fn s_client_sees_the_servers_close_notify(tls: Tls) {
    if !have_tool(OPENSSL, "openssl") {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let mut client = SClient::start_with(&pki, port, tls);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&server_config(&pki), socket).expect("handshake");
    (&stream).write_all(b"from the server\n").expect("write");
    let report = stream.close();
    assert!(
        client.err.wait_for(SS_CLOSE_NOTIFY_READ, WAIT),
        "s_client did not see close_notify:\n{}",
        client.text()
    );
    assert!(
        client.proc.wait_timeout(WAIT).is_some(),
        "s_client did not exit"
    );
    assert!(
        client.out.wait_for("from the server\n", WAIT),
        "{}",
        client.text()
    );
    assert!(report.close_notify_sent(), "{report:?}");
    assert!(
        matches!(report.outcome(), Outcome::Clean),
        "{report:?}\n{}",
        client.text()
    );
}

per_version! {
    s_client_reads_the_servers_close_notify => s_client_sees_the_servers_close_notify;
}

/// s_client closes first (its stdin ends): `read` returns `Ok(0)` with its close_notify, and
/// it reads ours.
#[test]
fn s_client_closes_first() {
    if !have_tool(OPENSSL, "openssl") {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let mut client = SClient::start(&pki, port);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&server_config(&pki), socket).expect("handshake");
    let mut stdin = client.stdin.take().expect("stdin");
    stdin.write_all(b"from the client\n").expect("to s_client");
    drop(stdin);
    let mut all = Vec::new();
    (&stream)
        .read_to_end(&mut all)
        .expect("Ok(0) at s_client's close_notify");
    assert_eq!(all, b"from the client\n");
    assert!(stream.close_notify_received());
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(
        client.proc.wait_timeout(WAIT).is_some(),
        "s_client did not exit"
    );
    // Its output may still be on the way through the pipe when it has exited.
    assert!(
        client
            .err
            .wait_for("SSL3 alert write:warning:close notify", WAIT),
        "{}",
        client.text()
    );
}

/// s_client SIGKILLed: its TCP stream ends without close_notify, a truncation.
#[test]
fn s_client_killed_is_a_truncation() {
    if !have_tool(OPENSSL, "openssl") {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let mut client = SClient::start(&pki, port);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&server_config(&pki), socket).expect("handshake");
    // Killed once it has read all we sent: unread bytes would make its kernel send a reset.
    assert!(
        client.out.wait_for("Verify return code", WAIT),
        "{}",
        client.text()
    );
    client.proc.signal(SIGKILL);
    let err = (&stream).read(&mut [0u8; 64]).expect_err("a truncation");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(stream.close().outcome(), Outcome::Truncated);
}

// --- Settings: PKCS#12, ALPN, timeouts ---------------------------------------------------------

/// The certificate and key from a PKCS#12 archive (made by `openssl pkcs12 -export`), with
/// its password; a wrong password is an error that says what to check.
#[test]
fn pkcs12_identity_serves_and_a_wrong_password_is_named() {
    if !have_tool(OPENSSL, "openssl") || !have_python() {
        return;
    }
    let pki = Pki::new();
    let archive = pki.dir.path().join("server.p12");
    let made = Command::new(OPENSSL)
        .args(["pkcs12", "-export", "-passout", "pass:s3cret", "-in"])
        .arg(&pki.server.cert)
        .arg("-inkey")
        .arg(&pki.server.key)
        .arg("-out")
        .arg(&archive)
        .output()
        .expect("openssl pkcs12");
    assert!(made.status.success(), "{made:?}");
    let err = ServerConfig::new()
        .with_pkcs12_file(&archive, "wrong")
        .check()
        .expect_err("a wrong password");
    assert!(err.to_string().contains("a wrong password"), "{err}");
    let der = std::fs::read(&archive).expect("the archive");
    let config = ServerConfig::new().with_pkcs12(der, "s3cret");
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, Tls::V13, "polite", 1, &[]);
    let (socket, _) = listener.accept().expect("accept");
    let stream = Stream::accept(&config, socket).expect("handshake");
    assert_eq!(stream.close().outcome(), Outcome::Clean);
    assert_eq!(clients.only(WAIT)["verdict"], "close_notify");
}

/// ALPN: the server's preference among what the client offers (s_client `-alpn`).
#[test]
fn alpn_is_chosen_by_the_server() {
    if !have_tool(OPENSSL, "openssl") {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let mut cmd = Command::new(OPENSSL);
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-alpn", "http/1.1,h2", "-CAfile"])
        .arg(&pki.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut client = Proc::spawn("s_client", &mut cmd).expect("s_client");
    let out = Capture::new();
    out.attach(client.child_mut().stdout.take().expect("stdout"));
    let (socket, _) = listener.accept().expect("accept");
    let config = server_config(&pki).with_alpn(["h2", "http/1.1"]);
    let stream = Stream::accept(&config, socket).expect("handshake");
    assert_eq!(stream.session().alpn_protocol(), Some(&b"h2"[..]));
    assert!(out.wait_for("ALPN protocol: h2", WAIT), "{}", out.text());
    stream.close();
}

/// `ServerConfig::with_read_timeout` (with the identity as PEM bytes): a read that waits too long
/// fails with a timeout, and the connection stays usable: it closes cleanly after.
#[test]
fn read_timeout_ends_the_call_not_the_connection() {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (listener, port) = bind();
    let clients = Clients::start(&pki, port, Tls::V13, "polite", 1, &[]);
    let (socket, _) = listener.accept().expect("accept");
    // The identity as PEM bytes, not files.
    let cert = std::fs::read(&pki.server.cert).expect("cert");
    let key = std::fs::read(&pki.server.key).expect("key");
    let config = ServerConfig::new()
        .with_identity_pem(cert, key)
        .with_read_timeout(Duration::from_millis(200));
    let stream = Stream::accept(&config, socket).expect("handshake");
    let started = Instant::now();
    let err = (&stream).read(&mut [0u8; 16]).expect_err("a timeout");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    (&stream)
        .write_all(b"still here")
        .expect("write after the timeout");
    assert_eq!(stream.close().outcome(), Outcome::Clean);
    let client = clients.only(WAIT);
    assert_eq!(client["verdict"], "close_notify", "{client}");
    assert_eq!(client["received"], 10, "{client}");
}

/// Clients that stall in their handshake hold every slot (`max_connections(2)`) only until
/// the handshake timeout: the next client, waiting in the accept queue meanwhile, is then
/// served, and the stalled ones are reported.
#[test]
fn stalled_handshakes_free_their_slots_at_the_handshake_timeout() {
    use std::sync::{Arc, Mutex};

    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let ended = Arc::new(Mutex::new(Vec::new()));
    let config = {
        let ended = Arc::clone(&ended);
        server_config(&pki)
            .with_max_connections(2)
            .with_handshake_timeout(Duration::from_millis(500))
            .with_on_report(move |r| ended.lock().expect("reports").push(r.clone()))
    };
    let listener = Listener::bind("127.0.0.1:0", &config, |stream: &Stream| {
        (&*stream).write_all(b"served")
    })
    .expect("listen");
    let port = listener.local_addr().port();
    let stall = Clients::start(&pki, port, Tls::V13, "stall", 2, &["--hold", "20"]);
    stall.wait_ready(WAIT);
    wait_open(&listener, 2);
    let started = Instant::now();
    let polite = Clients::start(&pki, port, Tls::V13, "polite", 1, &[]);
    let client = polite.only(WAIT);
    let waited = started.elapsed();
    assert_eq!(client["verdict"], "close_notify", "{client}");
    assert_eq!(client["received"], 6, "{client}");
    assert!(
        waited >= Duration::from_millis(300),
        "served before a slot was free: {waited:?}"
    );
    // Both stalled connections are reported (the second may end just after the client
    // served in the first one's slot).
    let timed_out = || {
        ended
            .lock()
            .expect("reports")
            .iter()
            .filter(|r| {
                r.handshake_error()
                    .is_some_and(|e| e.contains("did not complete the handshake within 500ms"))
            })
            .count()
    };
    let end = Instant::now() + WAIT;
    while timed_out() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(timed_out(), 2);
    let stalled = stall.results(WAIT);
    assert!(
        stalled.iter().all(|c| c["verdict"] == "closed"),
        "{stalled:?}"
    );
}

/// `Listener::from_tcp` on a socket the program bound itself (a service manager's, say): it
/// serves on it, and the shutdown closes it.
#[test]
fn listener_from_a_bound_socket() {
    if !have_python() {
        return;
    }
    let pki = Pki::new();
    let (socket, port) = bind();
    let listener = Listener::from_tcp(socket, &server_config(&pki), |stream: &Stream| {
        (&*stream).write_all(b"hi")?;
        read_until_end(stream)
    })
    .expect("listen");
    assert_eq!(listener.local_addr().port(), port);
    let clients = Clients::start(&pki, port, Tls::V13, "polite", 2, &[]);
    clients.wait_ready(WAIT);
    wait_open(&listener, 2);
    let reports = listener.shutdown();
    assert_eq!(reports.len(), 2, "{reports:?}");
    for client in clients.results(WAIT) {
        assert_eq!(client["verdict"], "close_notify", "{client}");
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
}
