//! An in-process echo peer on the rustls crate.
//!
//! It follows the echo-peer protocol of [`super::peer`], with the verdicts
//! going into a channel instead of stdout. The referee is rustls itself: once
//! the socket reached EOF, its plaintext reader returns `Ok(0)` when the
//! client's close_notify came first and an `UnexpectedEof` error when the
//! stream just ended.
//!
//! One thread per connection owns both the `ServerConnection` and the
//! `TcpStream`, so no lock is ever held across a socket call. The peer keeps
//! a clone of every socket only to shut it down when it is dropped, which
//! unblocks the connection threads so they can be joined.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use super::peer::{How, ServerEnd, TlsPeer, Verdict};
use super::{CertFiles, Dump, Tls, show_bytes};

/// How long a connection thread waits for the client after the server has
/// finished with the connection (draining before close avoids an RST).
const DRAIN: Duration = Duration::from_secs(5);

/// Shared between the peer and its threads; each lock is held only for a
/// push or a copy, never across I/O.
#[derive(Default)]
struct Shared {
    log: Mutex<String>,
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn note(&self, line: String) {
        let mut log = self.log.lock().unwrap();
        log.push_str(&line);
        log.push('\n');
    }
}

pub struct RustlsPeer {
    port: u16,
    tls: Tls,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    verdicts: Receiver<Verdict>,
    acceptor: Option<JoinHandle<()>>,
}

/// A rustls server configuration for `cert` and exactly the TLS version `tls`.
pub fn load_config(cert: &CertFiles, tls: Tls) -> Arc<ServerConfig> {
    let cert_pem = std::fs::read(&cert.cert)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", cert.cert.display()));
    let key_pem = std::fs::read(&cert.key)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", cert.key.display()));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("bad PEM in {}: {e:?}", cert.cert.display()));
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .unwrap_or_else(|e| panic!("bad PEM key in {}: {e:?}", cert.key.display()));
    let version = match tls {
        Tls::V12 => &rustls::version::TLS12,
        Tls::V13 => &rustls::version::TLS13,
    };
    // An explicit provider: the process-wide default may be unset (or set
    // differently) in a test binary.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("rustls supports TLS 1.2 and 1.3 with ring")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("rustls accepts the test certificate and key");
    Arc::new(config)
}

impl RustlsPeer {
    pub fn start(cert: &CertFiles, tls: Tls) -> RustlsPeer {
        let config = load_config(cert, tls);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("listener address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let (tx, verdicts) = mpsc::channel();
        let acceptor = {
            let stop = stop.clone();
            let shared = shared.clone();
            thread::spawn(move || accept_loop(listener, config, stop, shared, tx))
        };
        RustlsPeer {
            port,
            tls,
            stop,
            shared,
            verdicts,
            acceptor: Some(acceptor),
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    tx: Sender<Verdict>,
) {
    let mut n = 0u64;
    for stream in listener.incoming() {
        // The peer's drop sets `stop` and then connects once to wake us.
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                shared.note(format!("accept failed: {e}"));
                continue;
            }
        };
        n += 1;
        match stream.try_clone() {
            Ok(clone) => shared.sockets.lock().unwrap().push(clone),
            Err(e) => shared.note(format!("#{n}: cannot clone the socket: {e}")),
        }
        let conn = match ServerConnection::new(config.clone()) {
            Ok(c) => c,
            Err(e) => {
                shared.note(format!("#{n}: ServerConnection::new failed: {e}"));
                continue;
            }
        };
        let (shared2, tx) = (shared.clone(), tx.clone());
        let handle = thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|e| format!("? ({e})"));
            shared2.note(format!("#{n}: accepted {peer}"));
            let mut c = Conn {
                n,
                tls: conn,
                sock: stream,
                shared: shared2.clone(),
            };
            let verdict = c.serve();
            shared2.note(format!("#{n}: VERDICT {verdict:?}"));
            let _ = tx.send(verdict);
            c.drain();
        });
        shared.threads.lock().unwrap().push(handle);
    }
}

/// What the echo loop decided to do after a chunk of plaintext.
pub(super) enum Next {
    Continue,
    ServerClose,
    Truncate,
}

struct Conn {
    n: u64,
    tls: ServerConnection,
    sock: TcpStream,
    shared: Arc<Shared>,
}

/// Keeps back a line that may still turn into a command; echoes everything
/// else at once (so bulk data without newlines is not held up).
#[derive(Default)]
pub(super) struct LineEcho {
    held: Vec<u8>,
    mid_line: bool,
}

const COMMANDS: [&[u8]; 2] = [b"srv-close", b"srv-truncate"];

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl LineEcho {
    /// Appends the echo of `data` to `out`; stops at a command line.
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Next {
        for &b in data {
            if self.mid_line {
                out.push(b);
                self.mid_line = b != b'\n';
                continue;
            }
            self.held.push(b);
            if b == b'\n' {
                match strip_eol(&self.held) {
                    b"srv-close" => return Next::ServerClose,
                    b"srv-truncate" => return Next::Truncate,
                    _ => {}
                }
                out.append(&mut self.held);
            } else if !COMMANDS
                .iter()
                .any(|c| c.starts_with(&self.held) || self.held == [c, &b"\r"[..]].concat())
            {
                out.append(&mut self.held);
                self.mid_line = true;
            }
        }
        Next::Continue
    }
}

impl Conn {
    fn note(&self, what: impl std::fmt::Display) {
        self.shared.note(format!("#{}: {what}", self.n));
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.sock)?;
        }
        self.sock.flush()
    }

    fn send_plain(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            // rustls buffers a bounded amount of plaintext; flush in between.
            let n = self.tls.writer().write(data)?;
            data = &data[n..];
            self.flush()?;
        }
        Ok(())
    }

    /// Reads records until some plaintext, the end of the stream or an error.
    /// `Ok(None)` is a clean end (close_notify), `Err` with `UnexpectedEof` a
    /// bare FIN.
    fn read_plain(&mut self, buf: &mut [u8]) -> Result<Option<usize>, String> {
        let mut eof = false;
        loop {
            match self.tls.reader().read(buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // A FIN inside the handshake is a failed handshake, not
                    // a session left without close_notify.
                    if self.tls.is_handshaking() {
                        return Err("error eof during the handshake".into());
                    }
                    return Err("bare_fin".into());
                }
                Err(e) => return Err(format!("error read: {e}")),
            }
            if eof {
                // Only reachable when the stream ended inside the handshake.
                return Err(format!(
                    "error eof while handshaking={}",
                    self.tls.is_handshaking()
                ));
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(n) => eof = n == 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("error socket: {e}")),
            };
            if let Err(e) = self.tls.process_new_packets() {
                // Sends the alert rustls queued for this error.
                let _ = self.flush();
                return Err(format!("error tls: {e}"));
            }
            if let Err(e) = self.flush() {
                return Err(format!("error write: {e}"));
            }
        }
    }

    fn serve(&mut self) -> Verdict {
        let mut echo = LineEcho::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake_logged = false;
        loop {
            let chunk = match self.read_plain(&mut buf) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    // The client's close_notify came first: answer it.
                    self.tls.send_close_notify();
                    let answered = self.flush();
                    self.note(format!("client close_notify; answered: {answered:?}"));
                    return Verdict::CloseNotify;
                }
                Err(e) => return self.failed(e),
            };
            if !handshake_logged {
                handshake_logged = true;
                let v = self.tls.protocol_version();
                self.note(format!("handshake done, {v:?}"));
            }
            let mut out = Vec::new();
            let next = echo.feed(&buf[..chunk], &mut out);
            if let Err(e) = self.send_plain(&out) {
                return self.failed(format!("error write: {e}"));
            }
            match next {
                Next::Continue => {}
                Next::ServerClose => return self.server_close(&mut buf),
                Next::Truncate => {
                    self.note("srv-truncate: FIN without close_notify");
                    if let Err(e) = self.sock.shutdown(Shutdown::Write) {
                        self.note(format!("shutdown(Write) failed: {e}"));
                    }
                    return Verdict::NotJudged;
                }
            }
        }
    }

    fn failed(&self, e: String) -> Verdict {
        self.note(&e);
        if e == "bare_fin" {
            Verdict::BareFin
        } else {
            Verdict::Error(e)
        }
    }

    fn server_close(&mut self, buf: &mut [u8]) -> Verdict {
        self.note("srv-close: sending close_notify");
        self.tls.send_close_notify();
        if let Err(e) = self.flush() {
            return self.failed(format!("error write close_notify: {e}"));
        }
        // Data the client sent before it saw our close_notify is dropped.
        loop {
            match self.read_plain(buf) {
                Ok(Some(n)) => self.note(format!("{n} bytes after our close_notify")),
                Ok(None) => {
                    self.note("client answered close_notify");
                    return Verdict::CloseNotify;
                }
                Err(e) => return self.failed(e),
            }
        }
    }

    /// Reads whatever the client still sends until its FIN (bounded), so
    /// that closing never meets unread bytes (which would send an RST).
    fn drain(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Write);
        if self.sock.set_read_timeout(Some(DRAIN)).is_err() {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0usize;
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.note(format!("drain: {e}"));
                    break;
                }
            }
        }
        if total > 0 {
            self.note(format!("drained {total} bytes after the end"));
        }
    }
}

impl TlsPeer for RustlsPeer {
    fn name(&self) -> &'static str {
        "rustls"
    }
    fn tls(&self) -> Tls {
        self.tls
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn say(&mut self, _line: &str) -> bool {
        false
    }
    fn how(&self, end: ServerEnd) -> How {
        match end {
            ServerEnd::CloseNotify => How::Line("srv-close"),
            ServerEnd::Truncate => How::Line("srv-truncate"),
        }
    }
    fn act(&mut self, end: ServerEnd) {
        panic!("rustls peer plays {end:?} through a line, not act()");
    }
    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        match self.verdicts.recv_timeout(timeout) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                Verdict::Error(format!("rustls peer: no verdict within {timeout:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Verdict::Error("rustls peer: acceptor gone".into())
            }
        }
    }
    fn version(&self) -> String {
        format!("rustls {}", rustls_version())
    }
}

/// The rustls version from Cargo.lock (no crate exposes its own version).
fn rustls_version() -> String {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"rustls\"" {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = ")) {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "0.23".to_string()
}

impl Dump for RustlsPeer {
    fn dump(&self) -> String {
        let log = self.shared.log.lock().unwrap().clone();
        format!(
            "\n\n===== rustls peer TLS {} on 127.0.0.1:{} =====\n{}\n",
            self.tls.number(),
            self.port,
            show_bytes(log.as_bytes(), 16_000)
        )
    }
}

impl Drop for RustlsPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor blocked in accept(); it sees `stop` and returns.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for s in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
    }
}
