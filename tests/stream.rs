//! `Stream`, the `std::io` face of the library, against real servers: `openssl s_server
//! -state`, the Python `ssl` peers and rustls servers in process, whose own logs and reads say
//! whether our close_notify arrived. Also what programs build on it: a STARTTLS upgrade, a
//! WebSocket client (tungstenite), `io::copy` both ways at once.

#[macro_use]
mod common;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::peer::{TlsPeer, Verdict};
use common::rustls_peer::{RustlsPeer, load_config};
use common::{
    PatternStream, PyPeer, SServer, STARTTLS_PEER, Tls, WAIT, fd_count, spin_until, task_count,
    thread_sleeping,
};
use gracetls::{Config, Connection, Error, Outcome, Stream};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sha2::{Digest, Sha256};
use tungstenite::Message;
use tungstenite::error::{Error as WsError, ProtocolError};

fn config(pki: &common::Pki) -> Config {
    Config::new()
        .with_ca_file(&pki.ca)
        .with_close_timeout(Duration::from_secs(5))
}

per_version! {
    lines_reader_closed_from_another_thread => lines_reader_closed_from_another_thread;
    write_while_another_thread_reads => write_while_another_thread_reads;
    server_close_notify_reads_as_end => server_close_notify_reads_as_end;
    truncation_is_unexpected_eof => truncation_is_unexpected_eof;
    close_from_two_threads_one_report => close_from_two_threads_one_report;
    from_tcp_after_plaintext => from_tcp_after_plaintext;
    session_is_known => session_is_known;
    shutdown_write_keeps_reading => shutdown_write_keeps_reading;
    pem_in_memory => pem_in_memory;
    read_timeout_leaves_the_stream_usable => read_timeout_leaves_the_stream_usable;
    starttls_upgrade_through_from_tcp => starttls_upgrade_through_from_tcp;
    websocket_closed_from_another_thread => websocket_closed_from_another_thread;
    io_copy_64_mib_each_way_at_once => io_copy_64_mib_each_way_at_once;
}

/// Runs `work` on a thread of its own and waits for it at most `limit`. Past that, closes
/// `stream`, which ends every read and write blocked on it, and fails the test: a stuck
/// transfer cannot hang the run.
fn bounded<T: Send>(limit: Duration, stream: &Stream, work: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let worker = s.spawn(move || {
            let _ = tx.send(work());
        });
        match rx.recv_timeout(limit) {
            Ok(value) => value,
            Err(RecvTimeoutError::Disconnected) => match worker.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the worker sends before it ends"),
            },
            Err(RecvTimeoutError::Timeout) => {
                let report = stream.close();
                let _ = worker.join();
                panic!("not done within {limit:?}; closed the stream to end it: {report:?}")
            }
        }
    })
}

/// A `BufRead::lines()` loop blocked on the next line; another thread closes: the server
/// logs our close_notify and the pending read returns `Ok(0)`, ending the loop.
fn lines_reader_closed_from_another_thread(tls: Tls) {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, tls);
    let stream = Arc::new(
        Stream::connect(&config(&pki), &format!("localhost:{}", server.port)).expect("connect"),
    );
    let (line_tx, line_rx) = mpsc::channel();
    let reader = {
        let stream = Arc::clone(&stream);
        thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(&*stream).lines() {
                let line = line?;
                let _ = line_tx.send(line.clone());
                lines.push(line);
            }
            Ok::<_, std::io::Error>(lines)
        })
    };
    writeln!(&*stream, "ready").expect("write");
    server.expect_log("ready\n", WAIT, &[]);
    server.send_line("first");
    assert_eq!(line_rx.recv_timeout(WAIT).expect("first line"), "first");
    // The reader is now blocked in read(): close from here.
    let report = stream.close();
    let lines = reader
        .join()
        .expect("reader")
        .expect("the pending read ends with Ok(0)");
    assert_eq!(lines, ["first"]);
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent());
    server.assert_client_closed_cleanly(&[]);
    // Reads after the close keep returning the end.
    assert_eq!((&*stream).read(&mut [0u8; 8]).expect("read after close"), 0);
    assert!(
        (&*stream).write_all(b"late").is_err(),
        "write after close must fail"
    );
}

/// One thread blocked in `read`, another writing through `&Stream`.
fn write_while_another_thread_reads(tls: Tls) {
    let pki = common::Pki::new();
    let server = PyPeer::start(&pki.server, tls, "echo", &[]);
    let stream =
        Stream::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).expect("connect");
    let total = 1 << 20;
    thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            while got.len() < total {
                let n = (&stream).read(&mut buf).expect("read");
                assert!(n > 0, "end before all was echoed");
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let mut payload = vec![b'e'; total - 1];
        payload.push(b'\n');
        for piece in payload.chunks(8192) {
            (&stream).write_all(piece).expect("write");
        }
        let got = reader.join().expect("reader");
        assert_eq!(got, payload, "the echo is not what was sent");
    });
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert_eq!(
        (report.bytes_in(), report.bytes_out()),
        (total as u64, total as u64)
    );
    server.assert_verdict("client_close_notify", &[]);
}

/// The server's close_notify: everything before it, then `Ok(0)`; the close answers it.
fn server_close_notify_reads_as_end(tls: Tls) {
    let pki = common::Pki::new();
    let server = PyPeer::start(
        &pki.server,
        tls,
        "send-close",
        &["--payload-text", "all of it\\n"],
    );
    let mut stream =
        Stream::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).expect("connect");
    let mut got = String::new();
    stream.read_to_string(&mut got).expect("read to the end");
    assert_eq!(got, "all of it\n");
    assert!(stream.close_notify_received());
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_received() && report.close_notify_sent());
    let verdict = server.verdict(&[]);
    assert!(
        verdict.starts_with("client_close_notify") || verdict == "client_answered_close_notify",
        "the peer did not see our close_notify: {verdict}"
    );
}

/// The server's TCP FIN without close_notify is `UnexpectedEof`, not `Ok(0)`.
fn truncation_is_unexpected_eof(tls: Tls) {
    let pki = common::Pki::new();
    let server = PyPeer::start(
        &pki.server,
        tls,
        "send-truncate",
        &["--payload-text", "cut here\\n"],
    );
    let mut stream =
        Stream::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).expect("connect");
    let mut got = Vec::new();
    let err = stream
        .read_to_end(&mut got)
        .expect_err("a truncation is an error");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    assert!(err.to_string().contains("without close_notify"), "{err}");
    let inner = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .expect("a gracetls::Error inside");
    assert!(
        matches!(
            inner,
            Error::Truncated {
                how: gracetls::Truncation::NoCloseNotify,
                ..
            }
        ),
        "{inner:?}"
    );
    assert_eq!(got, b"cut here\n");
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Truncated, "{report:?}");
}

/// Two threads close at once: one close runs, both get its report.
fn close_from_two_threads_one_report(tls: Tls) {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, tls);
    let stream =
        Stream::connect(&config(&pki), &format!("localhost:{}", server.port)).expect("connect");
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(|| stream.close());
        let b = s.spawn(|| stream.close());
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert_eq!(a, b);
    assert_eq!(a.outcome(), Outcome::Clean, "{a:?}");
    assert_eq!(stream.close(), a, "a later close returns the same report");
    server.assert_client_closed_cleanly(&[]);
}

/// TLS on a socket the caller already has, after a plaintext exchange (STARTTLS): the
/// Python peer's `banner` mode speaks a line in clear first.
fn from_tcp_after_plaintext(tls: Tls) {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, tls);
    let socket = TcpStream::connect(("127.0.0.1", server.port)).expect("tcp");
    let stream = Stream::from_tcp(&config(&pki), socket, "localhost").expect("TLS on the socket");
    writeln!(&stream, "over from_tcp").expect("write");
    server.expect_log("over from_tcp\n", WAIT, &[]);
    assert!(
        stream.target().starts_with("localhost (127.0.0.1:"),
        "{}",
        stream.target()
    );
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_client_closed_cleanly(&[]);
}

/// Version, cipher suite, ALPN, certificate and addresses after the handshake.
fn session_is_known(tls: Tls) {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, tls);
    let stream =
        Stream::connect(&config(&pki), &format!("localhost:{}", server.port)).expect("connect");
    let session = stream.session();
    let want = match tls {
        Tls::V13 => "TLSv1.3",
        Tls::V12 => "TLSv1.2",
    };
    assert_eq!(session.version(), Some(want));
    let suite = session.cipher_suite().expect("a cipher suite");
    assert!(
        suite.starts_with("TLS_") && suite.contains("GCM") || suite.contains("CHACHA"),
        "{suite}"
    );
    let der = session
        .peer_certificate()
        .expect("the server's certificate")
        .der();
    let pem = std::fs::read_to_string(&pki.server.cert).expect("leaf PEM");
    let leaf = native_tls::Certificate::from_pem(pem.as_bytes())
        .and_then(|c| c.to_der())
        .expect("leaf DER");
    assert_eq!(der, &leaf[..], "the peer certificate is the server's leaf");
    assert_eq!(session.peer_addr().map(|a| a.port()), Some(server.port));
    assert!(session.local_addr().is_some());
    assert_eq!(session.alpn_protocol(), None, "no ALPN was offered");
    stream.close();
}

/// The half-close: close_notify now, the server's data still arrives.
fn shutdown_write_keeps_reading(tls: Tls) {
    let pki = common::Pki::new();
    let server = PyPeer::start(&pki.server, tls, "echo", &[]);
    let mut stream =
        Stream::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).expect("connect");
    stream.write_all(b"echo me\n").expect("write");
    let started = Instant::now();
    stream.shutdown_write().expect("half-close");
    assert!(stream.write_all(b"too late").is_err());
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .expect("read until the server's close_notify");
    assert_eq!(got, b"echo me\n");
    assert!(started.elapsed() < WAIT);
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_received());
    server.assert_verdict("client_close_notify", &[]);
}

/// CA certificates and a client identity given as PEM bytes, not paths: the Python peer in
/// `alert` mode requires a client certificate signed by the test CA, and echoes.
fn pem_in_memory(tls: Tls) {
    let pki = common::Pki::new();
    let ca = pki.ca.display().to_string();
    let server = PyPeer::start(&pki.server, tls, "alert", &["--ca", &ca]);
    let read = |path: &std::path::Path| std::fs::read(path).expect("PEM file");
    let config = Config::new()
        .with_ca_pem(read(&pki.ca))
        .with_identity_pem(read(&pki.client.cert), read(&pki.client.key))
        .with_close_timeout(Duration::from_secs(5));
    let mut stream =
        Stream::connect(&config, &format!("127.0.0.1:{}", server.port)).expect("connect");
    stream.write_all(b"pem\n").expect("write");
    let mut got = [0u8; 4];
    stream.read_exact(&mut got).expect("the echo");
    assert_eq!(&got, b"pem\n");
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_verdict("client_close_notify", &[]);
}

/// STARTTLS: the test speaks the clear-text part itself on a `TcpStream` (greeting, EHLO,
/// STARTTLS), hands the socket to `Stream::from_tcp`, and exchanges a line over TLS. The
/// Python server (`tests/peers/starttls_server.py`) echoes it and judges the close.
fn starttls_upgrade_through_from_tcp(tls: Tls) {
    let pki = common::Pki::new();
    let server = PyPeer::start_script(STARTTLS_PEER, &pki.server, tls);
    let socket = TcpStream::connect(("127.0.0.1", server.port)).expect("tcp");
    socket.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut clear = BufReader::new(&socket);
    let mut reply = || {
        let mut line = String::new();
        clear.read_line(&mut line).expect("a reply in clear");
        line
    };
    assert!(reply().starts_with("220 "), "{}", common::dumps(&[&server]));
    (&socket)
        .write_all(b"EHLO client.example\r\n")
        .expect("EHLO");
    let mut ehlo = vec![reply()];
    while ehlo.last().is_some_and(|l| l.starts_with("250-")) {
        ehlo.push(reply());
    }
    assert_eq!(ehlo.last().map(String::as_str), Some("250 STARTTLS\r\n"));
    (&socket).write_all(b"STARTTLS\r\n").expect("STARTTLS");
    assert!(reply().starts_with("220 "));
    // Nothing past the last reply may sit in the buffer: the server's TLS bytes are TLS's.
    assert!(
        clear.buffer().is_empty(),
        "read ahead: {:?}",
        clear.buffer()
    );
    drop(clear);

    let stream = Stream::from_tcp(&config(&pki), socket, "localhost").expect("TLS on the socket");
    assert_eq!(stream.session().version(), Some(tls.python_name()));
    writeln!(&stream, "MAIL FROM:<a@example.com>").expect("write over TLS");
    let echo = bounded(WAIT, &stream, || {
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).map(|_| line)
    });
    assert_eq!(echo.expect("the echo"), "MAIL FROM:<a@example.com>\n");
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent());
    server.assert_verdict("client_close_notify", &[]);
    server.expect_line(&format!("HANDSHAKE {}", tls.python_name()), WAIT, &[]);
}

/// What a rustls server's plaintext reads ended with: `Ok(0)` is the client's close_notify,
/// `UnexpectedEof` a TCP FIN without it (rustls is the referee).
struct Referee<S> {
    inner: S,
    end: Arc<Mutex<Option<String>>>,
}

impl<S: Read> Read for Referee<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        let end = match &result {
            Ok(0) if !buf.is_empty() => Some("close_notify".to_string()),
            Err(e) => Some(format!("{:?}: {e}", e.kind())),
            Ok(_) => None,
        };
        if let Some(end) = end {
            self.end.lock().unwrap().get_or_insert(end);
        }
        result
    }
}

impl<S: Write> Write for Referee<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A WebSocket echo server: rustls, then `tungstenite::accept`; one message echoed, then it
/// reads until the connection ends. Returns how rustls saw the end and tungstenite's error.
fn websocket_server(listener: TcpListener, config: Arc<ServerConfig>) -> (Option<String>, String) {
    let (socket, _) = listener.accept().expect("accept");
    // Bounded: a client that never closes shows as a timeout, not a hung test.
    socket.set_read_timeout(Some(WAIT)).expect("read timeout");
    let conn = ServerConnection::new(config).expect("rustls server connection");
    let end = Arc::new(Mutex::new(None));
    let referee = Referee {
        inner: StreamOwned::new(conn, socket),
        end: Arc::clone(&end),
    };
    let mut ws = tungstenite::accept(referee).expect("WebSocket handshake");
    let message = ws.read().expect("the client's message");
    ws.send(message).expect("echo");
    let error = ws.read().expect_err("the client closed");
    let end = end.lock().unwrap().clone();
    (end, format!("{error:?}"))
}

/// tungstenite over `&Stream`: a message each way, then another thread closes the stream while
/// the client thread is blocked in `read`. The read ends at once (gracetls's `Ok(0)`, which
/// tungstenite reports as a reset without its closing handshake), and rustls on the server
/// reads the close_notify.
fn websocket_closed_from_another_thread(tls: Tls) {
    let pki = common::Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server_config = load_config(&pki.server, tls);
    let server = thread::spawn(move || websocket_server(listener, server_config));
    let stream = Stream::connect(&config(&pki), &format!("localhost:{port}")).expect("connect");
    let (blocked, after, report) = thread::scope(|s| {
        let (echo_tx, echo_rx) = mpsc::channel();
        let client = thread::Builder::new()
            .name("ws-client".into())
            .spawn_scoped(s, {
                let stream = &stream;
                move || {
                    let (mut ws, response) =
                        tungstenite::client("ws://localhost/echo", stream).expect("handshake");
                    assert_eq!(response.status(), 101);
                    ws.send(Message::text("hello over gracetls")).expect("send");
                    let echo = ws.read().expect("the echo");
                    echo_tx.send(echo).expect("report the echo");
                    let blocked = ws.read(); // ends when the other thread closes
                    (blocked, ws.read())
                }
            })
            .expect("client thread");
        let echo = echo_rx.recv_timeout(WAIT).expect("the echo within WAIT");
        assert_eq!(echo.to_text().expect("text"), "hello over gracetls");
        assert!(
            spin_until(WAIT, || thread_sleeping("ws-client")),
            "the client never blocked in read"
        );
        let report = stream.close();
        let (blocked, after) = client.join().expect("client thread");
        (blocked, after, report)
    });
    assert!(
        matches!(
            blocked,
            Err(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            ))
        ),
        "the blocked read: {blocked:?}"
    );
    assert!(
        matches!(after, Err(WsError::AlreadyClosed)),
        "a read after it: {after:?}"
    );
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent(), "{report:?}");
    let (end, error) = server.join().expect("server thread");
    assert_eq!(
        end.as_deref(),
        Some("close_notify"),
        "rustls's read ended otherwise; tungstenite said {error}"
    );
}

/// Set in the child process that runs [`thread_start_failure_alone`].
const THREAD_CHILD_ENV: &str = "GRACETLS_THREAD_FAILURE_CHILD";

/// `Connection::with_stream` whose reader thread cannot start (a stack size `pthread`
/// refuses: `usize::MAX` fails with EINVAL): `Error::Thread`, the server still gets
/// close_notify, and no thread or descriptor is left. Thread counts are exact only with
/// nothing else running in the process, so the scenario runs in a child process (this test
/// binary again, with only that test).
#[test]
fn failed_reader_thread_start_leaks_nothing() {
    common::run_alone("thread_start_failure_alone", THREAD_CHILD_ENV);
}

#[test]
#[ignore = "run by failed_reader_thread_start_leaks_nothing in its own process"]
fn thread_start_failure_alone() {
    if std::env::var_os(THREAD_CHILD_ENV).is_none() {
        return; // thread counts are only exact when nothing else runs in the process
    }
    let pki = common::Pki::new();
    let server = SServer::start(&pki, Tls::V13);
    let config = config(&pki).with_thread_stack_size(usize::MAX);
    let (threads, fds) = (task_count(), fd_count());
    let stream = Stream::connect(&config, &format!("localhost:{}", server.port)).expect("connect");
    let err = Connection::with_stream(&config, stream).expect_err("no thread can start");
    assert!(
        matches!(&err, Error::Thread { what, .. } if what.contains("reader thread")),
        "{err:?}"
    );
    server.assert_client_closed_cleanly(&[]);
    assert!(
        spin_until(WAIT, || task_count() == threads && fd_count() == fds),
        "left behind: {threads} threads and {fds} fds before, {} and {} after",
        task_count(),
        fd_count()
    );
}

/// Bytes per direction for [`io_copy_64_mib_each_way_at_once`].
const COPY_BYTES: u64 = 64 << 20;

/// `COPY_BYTES` of deterministic pseudo-random data, hashed as it is read.
struct Source {
    pattern: PatternStream,
    left: u64,
    hash: Sha256,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.pattern.fill(&mut buf[..n]);
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes and counts what is written to it.
#[derive(Default)]
struct Sink {
    hash: Sha256,
    bytes: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `io::copy` through `&Stream` both ways at once against the rustls echo: one thread copies
/// 64 MiB up and half-closes, another copies the echo down until the server's close_notify
/// (its answer to ours). Same length and SHA-256 both ways; the server saw our close_notify.
fn io_copy_64_mib_each_way_at_once(tls: Tls) {
    let pki = common::Pki::new();
    let mut peer = RustlsPeer::start(&pki.server, tls);
    let stream =
        Stream::connect(&config(&pki), &format!("127.0.0.1:{}", peer.port())).expect("connect");
    let ((sent, sent_hash), got) = bounded(Duration::from_secs(300), &stream, || {
        thread::scope(|s| {
            let up = s.spawn(|| {
                let mut source = Source {
                    pattern: PatternStream::new(15),
                    left: COPY_BYTES,
                    hash: Sha256::new(),
                };
                let n = io::copy(&mut source, &mut &stream).expect("copy up");
                stream.shutdown_write().expect("half-close");
                (n, source.hash.finalize())
            });
            let mut sink = Sink::default();
            let n = io::copy(&mut &stream, &mut sink).expect("copy down to Ok(0)");
            assert_eq!(n, sink.bytes);
            (up.join().expect("up"), sink)
        })
    });
    assert_eq!(sent, COPY_BYTES);
    assert_eq!(got.bytes, COPY_BYTES, "the echo's length");
    assert_eq!(got.hash.finalize(), sent_hash, "the echo's SHA-256");
    assert!(
        stream.close_notify_received(),
        "the down copy ended otherwise"
    );
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert_eq!(
        (report.bytes_in(), report.bytes_out()),
        (COPY_BYTES, COPY_BYTES)
    );
    let verdict = peer.next_verdict(WAIT);
    assert_eq!(verdict, Verdict::CloseNotify, "{}", common::dumps(&[&peer]));
}

/// A read bounded by `set_read_timeout` fails with `WouldBlock` or `TimedOut` when the server
/// is silent, and the stream goes on working: the next line still arrives, the close is
/// clean.
fn read_timeout_leaves_the_stream_usable(tls: Tls) {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, tls);
    let stream =
        Stream::connect(&config(&pki), &format!("localhost:{}", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    let err = (&stream)
        .read(&mut buf)
        .expect_err("a silent server times the read out");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    writeln!(&stream, "still here").expect("write after a timed-out read");
    server.expect_log("still here\n", WAIT, &[]);
    server.send_line("and you");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut got = Vec::new();
    while !got.ends_with(b"and you\n") {
        let n = (&stream).read(&mut buf).expect("the server's line");
        assert!(n > 0, "end before the line");
        got.extend_from_slice(&buf[..n]);
    }
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_client_closed_cleanly(&[]);
}

/// A half-close on one thread and the close on another, at once: whichever makes the
/// close_notify, the other waits for the same write, and the report says it was sent (it
/// once said not, when the close came while the half-close's write was in flight).
#[test]
fn half_close_and_close_at_once_report_the_one_close_notify() {
    for round in 0..10 {
        let pki = common::Pki::new();
        let server = PyPeer::start(&pki.server, Tls::V12, "echo", &[]);
        let stream =
            Stream::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).expect("connect");
        let report = thread::scope(|s| {
            let half = s.spawn(|| stream.shutdown_write());
            let report = stream.close();
            half.join().expect("half-close thread").expect("half-close");
            report
        });
        assert!(report.close_notify_sent(), "round {round}: {report:?}");
        assert_eq!(
            report.outcome(),
            Outcome::Clean,
            "round {round}: {report:?}"
        );
        server.assert_verdict("client_close_notify", &[]);
    }
}

/// `TcpStream`'s manners against `openssl s_server`: the timeouts `Config` gives and their
/// getters and setters (the configured read timeout holds: a silent server times the read
/// out), both addresses, `TCP_NODELAY` on by default and off on request (as the socket itself
/// says, reached through `AsFd`), `write_vectored` as one line in the server's log, and a
/// clean close after all of it.
#[test]
fn tcp_stream_manners() {
    use std::io::IoSlice;
    use std::os::fd::{AsFd, AsRawFd};

    let pki = common::Pki::new();
    let server = SServer::start(&pki, Tls::V13);
    let config = config(&pki)
        .with_read_timeout(Duration::from_millis(300))
        .with_write_timeout(Duration::from_secs(7));
    let stream = Stream::connect(&config, &format!("localhost:{}", server.port)).expect("connect");
    assert_eq!(
        stream.read_timeout().expect("read timeout"),
        Some(Duration::from_millis(300))
    );
    assert_eq!(
        stream.write_timeout().expect("write timeout"),
        Some(Duration::from_secs(7))
    );
    let mut buf = [0u8; 64];
    let err = (&stream)
        .read(&mut buf)
        .expect_err("the configured read timeout ends a read from a silent server");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    // Named as a write timeout is: what was being done, and with whom.
    match Error::from_io(err, gracetls::error::Operation::Read, "elsewhere") {
        Error::Io { target, op, .. } => {
            assert_eq!(op, gracetls::error::Operation::Read);
            assert_eq!(target, format!("localhost:{}", server.port));
        }
        other => panic!("{other:?}"),
    }
    stream.set_read_timeout(Some(WAIT)).expect("set");
    assert_eq!(stream.read_timeout().expect("get"), Some(WAIT));
    stream.set_write_timeout(None).expect("set");
    assert_eq!(stream.write_timeout().expect("get"), None);

    let peer = stream.peer_addr().expect("peer_addr");
    assert_eq!(peer.port(), server.port);
    assert_eq!(Some(peer), stream.session().peer_addr());
    let local = stream.local_addr().expect("local_addr");
    assert_eq!(Some(local), stream.session().local_addr());

    assert!(stream.nodelay().expect("nodelay"), "on by default");
    // A duplicate of the descriptor is the same socket: same address, same options. Only
    // options are read through it, as the docs ask.
    let dup = TcpStream::from(stream.as_fd().try_clone_to_owned().expect("dup"));
    assert_eq!(stream.as_raw_fd(), stream.as_fd().as_raw_fd());
    assert_eq!(dup.local_addr().expect("dup local_addr"), local);
    stream.set_nodelay(false).expect("set_nodelay");
    assert!(!stream.nodelay().expect("nodelay"));
    assert!(!dup.nodelay().expect("the socket's own option"));
    drop(dup);

    let n = (&stream)
        .write_vectored(&[
            IoSlice::new(b"gath"),
            IoSlice::new(b""),
            IoSlice::new(b"ered\n"),
        ])
        .expect("write_vectored");
    assert_eq!(n, 9);
    server.expect_log("gathered\n", WAIT, &[]);
    writeln!(&stream, "still on").expect("write after all that");
    server.expect_log("still on\n", WAIT, &[]);
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_client_closed_cleanly(&[]);
}

/// `try_clone`: a reading handle on another thread gets the server's line while the first
/// handle writes; dropping the first leaves the connection open (the clone still writes), and
/// dropping the last closes it with close_notify, as the server's log shows.
#[test]
fn try_clone_shares_one_connection_closed_by_the_last_handle() {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V13);
    let stream = Stream::connect(
        &config(&pki).with_read_timeout(WAIT),
        &format!("localhost:{}", server.port),
    )
    .expect("connect");
    let clone = stream.try_clone().expect("try_clone");
    let reader = thread::spawn(move || {
        let mut line = String::new();
        let got = BufReader::new(&clone).read_line(&mut line).map(|_| line);
        (got, clone)
    });
    writeln!(&stream, "from the first handle").expect("write");
    server.expect_log("from the first handle\n", WAIT, &[]);
    server.send_line("to the clone");
    let (line, clone) = reader.join().expect("reader thread");
    assert_eq!(line.expect("the server's line"), "to the clone\n");
    drop(stream);
    writeln!(&clone, "from the clone").expect("the connection outlives the first handle");
    server.expect_log("from the clone\n", WAIT, &[]);
    drop(clone);
    server.assert_client_closed_cleanly(&[]);
}

/// `Config::with_write_timeout` bounds a write to a server that never reads: the write fails with
/// `WouldBlock` or `TimedOut` once the socket buffers are full, instead of waiting for good.
#[test]
fn configured_write_timeout_bounds_a_write() {
    let pki = common::Pki::new();
    let server = PyPeer::start(&pki.server, Tls::V13, "stall", &[]);
    let config = config(&pki)
        .with_write_timeout(Duration::from_millis(300))
        .with_close_timeout(Duration::from_secs(1));
    let stream = Stream::connect(&config, &format!("127.0.0.1:{}", server.port)).expect("connect");
    let chunk = vec![b'x'; 256 * 1024];
    let started = Instant::now();
    let mut err = None;
    // 64 MiB at most: far more than loopback socket buffers hold.
    for _ in 0..256 {
        if let Err(e) = (&stream).write(&chunk) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("a server that never reads makes a write time out");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
    drop(stream);
}

/// `idle_time` counts from the last application data either way: it grows while nothing
/// moves, and a line written or a line read starts it again (what `--idle-timeout` and
/// `--quiet-time` decide by). The server's log says the written line arrived.
#[test]
fn idle_time_counts_from_the_last_data_either_way() {
    const QUIET: Duration = Duration::from_millis(200);
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V13);
    let stream =
        Stream::connect(&config(&pki), &format!("localhost:{}", server.port)).expect("connect");
    let idle = || stream.idle_time();
    assert!(
        spin_until(WAIT, || idle() >= QUIET),
        "nothing moved, yet the idle time stays at {:?}",
        idle()
    );
    writeln!(&stream, "a line").expect("write");
    assert!(idle() < QUIET, "a write did not restart it: {:?}", idle());
    server.expect_log("a line\n", WAIT, &[]);
    assert!(
        spin_until(WAIT, || idle() >= QUIET),
        "stays at {:?}",
        idle()
    );
    server.send_line("an answer");
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"an answer\n") {
        let n = (&stream).read(&mut buf).expect("the server's line");
        assert!(n > 0, "end before the line");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(idle() < QUIET, "a read did not restart it: {:?}", idle());
    let report = stream.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_client_closed_cleanly(&[]);
}
