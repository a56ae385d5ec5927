//! The promise under pressure: a socket write timeout is an error of that call, never of the
//! connection; the close is bounded in every state; what the server sends after our
//! close_notify is delivered. Against rustls servers in process that do what a hostile or slow
//! server does (stop reading, answer close_notify with data), whose own reads are the referee.

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::Tls;
use common::rustls_peer::load_config;
use gracetls::{Config, Outcome, Stream};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The byte at offset `i` of every upload: a gap or a repeat shows at once.
fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn fill(buf: &mut [u8], from: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(from + k as u64);
    }
}

/// What the server read: plaintext bytes (all in the pattern, else `bad_at`) and how the
/// stream ended as rustls saw it.
#[derive(Debug)]
struct Seen {
    bytes: u64,
    bad_at: Option<u64>,
    /// `close_notify`, `eof` (no close_notify) or the error.
    end: String,
}

/// A rustls server on its own thread for one connection: the handshake, then `pause` without
/// reading, then it reads everything until the end.
struct PausingServer {
    port: u16,
    thread: Option<JoinHandle<Seen>>,
}

impl PausingServer {
    fn start(config: Arc<ServerConfig>, pause: Duration) -> PausingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let thread = thread::spawn(move || {
            let (socket, _) = listener.accept().expect("accept");
            // Bounded: a client that never ends shows as an error, not a hung test.
            socket
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("read timeout");
            let mut tls = StreamOwned::new(
                ServerConnection::new(config).expect("rustls server connection"),
                socket,
            );
            while tls.conn.is_handshaking() {
                if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                    return Seen {
                        bytes: 0,
                        bad_at: None,
                        end: format!("handshake: {e}"),
                    };
                }
            }
            thread::sleep(pause);
            let mut seen = Seen {
                bytes: 0,
                bad_at: None,
                end: String::new(),
            };
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match tls.read(&mut buf) {
                    Ok(0) => {
                        seen.end = "close_notify".into();
                        return seen;
                    }
                    Ok(n) => {
                        for (k, &b) in buf[..n].iter().enumerate() {
                            let at = seen.bytes + k as u64;
                            if seen.bad_at.is_none() && b != pattern_byte(at) {
                                seen.bad_at = Some(at);
                            }
                        }
                        seen.bytes += n as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                        seen.end = "eof".into();
                        return seen;
                    }
                    Err(e) => {
                        seen.end = format!("{:?}: {e}", e.kind());
                        return seen;
                    }
                }
            }
        });
        PausingServer {
            port,
            thread: Some(thread),
        }
    }

    fn seen(&mut self) -> Seen {
        self.thread
            .take()
            .expect("seen once")
            .join()
            .expect("server thread")
    }
}

/// A `Stream` made with `from_tcp` on a socket whose write timeout is `write_timeout`.
fn client(pki: &common::Pki, port: u16, write_timeout: Duration, close: Duration) -> Stream {
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_write_timeout(Some(write_timeout))
        .expect("write timeout");
    let config = Config::new().ca_file(&pki.ca).close_timeout(close);
    Stream::from_tcp(&config, socket, "localhost").expect("handshake")
}

fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Writes the pattern from `*sent` on with `write` calls until one fails (returned), or
/// `limit` bytes were accepted in all.
fn write_until_error(stream: &Stream, sent: &mut u64, limit: u64) -> Option<std::io::Error> {
    let mut chunk = vec![0u8; 64 * 1024];
    while *sent < limit {
        fill(&mut chunk, *sent);
        match (&*stream).write(&chunk) {
            Ok(n) => *sent += n as u64,
            Err(e) => return Some(e),
        }
    }
    None
}

per_version! {
    write_timeout_leaves_the_stream_usable => write_timeout_leaves_the_stream_usable;
    shutdown_write_fails_when_close_notify_is_not_sent => shutdown_write_fails_when_close_notify_is_not_sent;
}

/// A server that reads nothing for 2 s, a socket write timeout of 300 ms: a `write` fails with
/// a timeout, having consumed nothing it did not report; once the server reads again the
/// writes go on where they stopped, the close sends close_notify, and the server read exactly
/// the bytes the writes reported, in order.
fn write_timeout_leaves_the_stream_usable(tls: Tls) {
    let pki = common::Pki::new();
    let mut server = PausingServer::start(load_config(&pki.server, tls), Duration::from_secs(2));
    let stream = client(
        &pki,
        server.port,
        Duration::from_millis(300),
        Duration::from_secs(5),
    );
    let mut sent = 0u64;
    let first = write_until_error(&stream, &mut sent, 256 << 20)
        .expect("a server that does not read makes a write time out");
    assert!(is_timeout(first.kind()), "the first error: {first:?}");
    let at_first_error = sent;
    // The server reads again after its pause: the writes go on. Timeouts meanwhile are fine,
    // any other error is not.
    let started = Instant::now();
    let want = at_first_error + (4 << 20);
    while sent < want {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "writes moved {} bytes in 20 s after the first timeout",
            sent - at_first_error
        );
        if let Some(e) = write_until_error(&stream, &mut sent, want) {
            assert!(is_timeout(e.kind()), "a later write failed: {e:?}");
        }
    }
    let report = stream.close();
    let seen = server.seen();
    assert_eq!(
        report.outcome,
        Outcome::Clean,
        "{report:?}; server {seen:?}"
    );
    assert!(report.close_notify_sent, "{report:?}");
    assert_eq!(report.bytes_out, sent, "{report:?}");
    assert_eq!(seen.end, "close_notify", "{seen:?}");
    assert_eq!(seen.bad_at, None, "{seen:?}");
    assert_eq!(
        seen.bytes, sent,
        "the server read other than what the writes reported ({at_first_error} before the first timeout)"
    );
}

/// After a write timed out against a server that does not read, `shutdown_write` cannot
/// write close_notify within the close timeout: it says so, and so does the close.
fn shutdown_write_fails_when_close_notify_is_not_sent(tls: Tls) {
    let pki = common::Pki::new();
    let mut server = PausingServer::start(load_config(&pki.server, tls), Duration::from_secs(4));
    let close_timeout = Duration::from_millis(500);
    let stream = client(&pki, server.port, Duration::from_millis(300), close_timeout);
    let mut sent = 0u64;
    let first = write_until_error(&stream, &mut sent, 256 << 20).expect("a write times out");
    assert!(is_timeout(first.kind()), "{first:?}");
    let started = Instant::now();
    let half = stream.shutdown_write();
    assert!(
        half.is_err(),
        "shutdown_write said Ok although close_notify could not be written"
    );
    let report = stream.close();
    assert!(
        started.elapsed() < 2 * close_timeout + Duration::from_millis(500),
        "shutdown_write and close took {:?}",
        started.elapsed()
    );
    assert!(!report.close_notify_sent, "{report:?}");
    assert_ne!(report.outcome, Outcome::Clean, "{report:?}");
    drop(stream);
    let seen = server.seen();
    assert_ne!(seen.end, "close_notify", "{seen:?}");
}
