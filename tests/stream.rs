//! `Stream`, the `std::io` face of the library, against real servers: `openssl s_server
//! -state` and the Python `ssl` peer, whose own logs say whether our close_notify arrived.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{PyPeer, SServer, Tls, WAIT};
use gracetls::{Config, Outcome, Stream};

fn config(pki: &common::Pki) -> Config {
    Config::new()
        .ca_file(&pki.ca)
        .close_timeout(Duration::from_secs(5))
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
    assert_eq!(report.outcome, Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent);
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
    assert_eq!(report.outcome, Outcome::Clean, "{report:?}");
    assert_eq!(
        (report.bytes_in, report.bytes_out),
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
    assert_eq!(report.outcome, Outcome::Clean, "{report:?}");
    assert!(report.close_notify_received && report.close_notify_sent);
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
    assert_eq!(got, b"cut here\n");
    let report = stream.close();
    assert_eq!(report.outcome, Outcome::Truncated, "{report:?}");
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
    assert_eq!(a.outcome, Outcome::Clean, "{a:?}");
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
    assert_eq!(report.outcome, Outcome::Clean, "{report:?}");
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
        .expect("the server's certificate");
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
    assert_eq!(report.outcome, Outcome::Clean, "{report:?}");
    assert!(report.close_notify_received);
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
        .ca_pem(read(&pki.ca))
        .identity_pem(read(&pki.client.cert), read(&pki.client.key))
        .close_timeout(Duration::from_secs(5));
    let mut stream =
        Stream::connect(&config, &format!("127.0.0.1:{}", server.port)).expect("connect");
    stream.write_all(b"pem\n").expect("write");
    let mut got = [0u8; 4];
    stream.read_exact(&mut got).expect("the echo");
    assert_eq!(&got, b"pem\n");
    let report = stream.close();
    assert_eq!(report.outcome, Outcome::Clean, "{report:?}");
    server.assert_verdict("client_close_notify", &[]);
}
