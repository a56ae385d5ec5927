//! A scripted hostile TLS 1.3 server: rustls completes a real handshake, then the test's script
//! writes its own records, valid or not, and a reader decrypts everything the client sends.
//!
//! What a script can do ([`Act`]): send application data, KeyUpdate(update_requested) (the
//! server's sending key then moves on, as RFC 8446 §4.6.3 says), close_notify, a record whose
//! AEAD tag is broken, any number of empty application-data records, raw bytes such as a
//! plaintext record, a TCP FIN, a timed KeyUpdate flood, wait for the client's close_notify,
//! and hold the connection until the test drops the server. With [`Reads::Never`] nothing the
//! client sends is ever read (the socket fills and stays full).
//!
//! What it reports ([`Seen`]): whether the client's close_notify arrived, every record after
//! it, alerts, the client's KeyUpdates and plaintext, how the client's stream ended, and what
//! the script sent (KeyUpdates, how long its writes were blocked).
//!
//! How the records are made: the handshake is fed to rustls one whole record at a time, so
//! rustls never takes a byte past the client's Finished. The traffic secrets come from the
//! key log (`SERVER_TRAFFIC_SECRET_0`, `CLIENT_TRAFFIC_SECRET_0`); the keys derived from them
//! are checked against rustls's own (`ServerConfig::enable_secret_extraction`,
//! `dangerous_extract_secrets`, which also gives the sequence numbers). Records are sealed and
//! opened with ring's AES-128-GCM; a KeyUpdate derives the next secret with HKDF-Expand-Label
//! "traffic upd". Only TLS_AES_128_GCM_SHA256 is offered.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ring::{aead, hkdf};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ConnectionTrafficSecrets, ServerConfig, ServerConnection};

use super::{CertFiles, Dump, WAIT, show_bytes};

const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const CHANGE_CIPHER_SPEC: u8 = 20;
const KEY_UPDATE: u8 = 24;

/// One step of a script, after the handshake.
#[derive(Clone, Debug)]
pub enum Act {
    /// Application data, in records of at most 16 KiB.
    Data(Vec<u8>),
    /// `len` bytes of application data (a repeating pattern, see [`pattern`]) in records of
    /// `size` bytes.
    Records { len: u64, size: usize },
    /// KeyUpdate(update_requested); later records use the next key.
    KeyUpdate,
    /// An encrypted close_notify alert.
    CloseNotify,
    /// An encrypted alert of this level (1 warning, 2 fatal) and description.
    Alert(u8, u8),
    /// An application-data record carrying these bytes, its tag's last byte flipped.
    BadTag(Vec<u8>),
    /// This many empty application-data records (an inner plaintext of its type alone).
    Empty(u64),
    /// These bytes as they are: e.g. a plaintext record.
    Raw(Vec<u8>),
    /// KeyUpdate(update_requested) until `max` were written or `secs` passed, with one byte
    /// of application data after every `data_every` of them (0: none).
    Flood {
        max: u64,
        secs: Duration,
        data_every: u64,
    },
    /// Shuts the socket for writing: a TCP FIN (the reader goes on).
    Fin,
    /// Waits (bounded by [`WAIT`]) until the reader saw the client's close_notify.
    AwaitClientCloseNotify,
    /// Keeps the connection open, doing nothing, until the server is dropped.
    Hold,
}

/// `n` bytes of the pattern [`Act::Records`] sends, from offset `at`: the offset's low byte
/// rotated, so a lost, doubled or reordered byte shows.
pub fn pattern(at: u64, n: usize) -> Vec<u8> {
    (at..at + n as u64).map(|i| (i % 251) as u8).collect()
}

/// Whether the server reads what the client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// A reader decrypts every record until the client's stream ends.
    Yes,
    /// Nothing is ever read after the handshake.
    Never,
}

/// What the server saw and did on its one connection.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub handshake_done: bool,
    /// Plaintext application data the client sent.
    pub client_bytes: u64,
    pub client_key_updates: u64,
    pub client_close_notify: bool,
    /// Every record (decrypted where it could be) that came after the client's close_notify.
    pub after_close_notify: Vec<String>,
    /// Alerts from the client other than close_notify, as `level/description`.
    pub alerts: Vec<String>,
    /// The client's stream ended with a FIN (not a reset or an error).
    pub client_eof: bool,
    pub read_error: Option<String>,
    /// KeyUpdates fully written by the script.
    pub key_updates_sent: u64,
    /// Application-data plaintext written by the script.
    pub data_sent: u64,
    /// The longest time one socket write of the script was blocked, and how long the last
    /// write had been blocked when a flood ended (zero if it was not).
    pub longest_stall: Duration,
    pub stalled_at_end: Duration,
    pub write_error: Option<String>,
    pub script_error: Option<String>,
}

/// The hostile server: one connection, one script.
pub struct HostileServer {
    pub port: u16,
    log: Arc<Log>,
    stop: Option<Sender<()>>,
    seen: Receiver<Seen>,
    result: Option<Seen>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl HostileServer {
    /// Listens on 127.0.0.1 with `cert`; the first connection gets `script`.
    pub fn start(cert: &CertFiles, reads: Reads, script: Vec<Act>) -> HostileServer {
        let secrets = Arc::new(KeyLog::default());
        let config = server_config(cert, secrets.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("listener address").port();
        let log = Arc::new(Log::default());
        let socket = Arc::new(Mutex::new(None));
        let (stop_tx, stop_rx) = mpsc::channel();
        let (seen_tx, seen) = mpsc::channel();
        let thread = {
            let (log, socket) = (log.clone(), socket.clone());
            thread::spawn(move || {
                let note = |line: String| log.note(line);
                let conn_log = log.clone();
                let mut seen = Seen::default();
                let Ok((sock, peer)) = listener.accept() else {
                    note("accept failed".into());
                    let _ = seen_tx.send(seen);
                    return;
                };
                note(format!("accepted {peer}"));
                if let Ok(clone) = sock.try_clone() {
                    *socket.lock().unwrap() = Some(clone);
                }
                let conn = Conn {
                    sock,
                    config,
                    secrets,
                    reads,
                    log: conn_log,
                    stop: stop_rx,
                };
                conn.run(script, &mut seen);
                note(format!("seen: {seen:?}"));
                let _ = seen_tx.send(seen);
            })
        };
        HostileServer {
            port,
            log,
            stop: Some(stop_tx),
            seen,
            result: None,
            socket,
            thread: Some(thread),
        }
    }

    /// What the server saw, once its connection is over (its script done and, if it reads,
    /// the client's stream ended), waiting up to `timeout`.
    pub fn seen(&mut self, timeout: Duration, ctx: &[&dyn Dump]) -> Seen {
        if let Some(seen) = &self.result {
            return seen.clone();
        }
        match self.seen.recv_timeout(timeout) {
            Ok(seen) => {
                self.result = Some(seen.clone());
                seen
            }
            Err(e) => panic!(
                "the hostile server did not finish within {timeout:?} ({e}){}{}",
                super::dumps(ctx),
                self.dump()
            ),
        }
    }

    /// Waits up to `timeout` for a log line containing `pat` (e.g. `flood:`); returns it.
    /// Application-data plaintext the script has written so far.
    pub fn data_sent(&self) -> u64 {
        self.log.data_sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn wait_note(&self, pat: &str, timeout: Duration) -> Option<String> {
        let text = self.log.text.lock().unwrap();
        let (text, _) = self
            .log
            .changed
            .wait_timeout_while(text, timeout, |t| !t.contains(pat))
            .unwrap();
        text.lines().find(|l| l.contains(pat)).map(str::to_string)
    }

    /// Ends [`Act::Hold`] and closes the socket.
    pub fn stop(&mut self) {
        self.stop = None;
        if let Some(s) = self.socket.lock().unwrap().take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop();
        // Wakes an accept that never got its connection.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Dump for HostileServer {
    fn dump(&self) -> String {
        format!(
            "\n\n===== hostile server (port {}) =====\n{}\n",
            self.port,
            show_bytes(self.log.text.lock().unwrap().as_bytes(), 8_000)
        )
    }
}

/// The server's log, waitable.
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    changed: Condvar,
    /// Application-data plaintext the script has written so far, readable while it runs.
    data_sent: std::sync::atomic::AtomicU64,
}

impl Log {
    fn note(&self, line: impl AsRef<str>) {
        let mut text = self.text.lock().unwrap();
        text.push_str(line.as_ref());
        text.push('\n');
        self.changed.notify_all();
    }
}

/// The traffic secrets rustls logs, by label.
#[derive(Debug, Default)]
struct KeyLog(Mutex<HashMap<String, Vec<u8>>>);

impl rustls::KeyLog for KeyLog {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .insert(label.to_string(), secret.to_vec());
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

impl KeyLog {
    fn get(&self, label: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(label).cloned()
    }
}

fn server_config(cert: &CertFiles, secrets: Arc<KeyLog>) -> Arc<ServerConfig> {
    let cert_pem = std::fs::read(&cert.cert).expect("read the test certificate");
    let key_pem = std::fs::read(&cert.key).expect("read the test key");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .expect("PEM certificate");
    let key = PrivateKeyDer::from_pem_slice(&key_pem).expect("PEM key");
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("rustls does TLS 1.3 with ring")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("rustls accepts the test certificate");
    config.key_log = secrets;
    config.enable_secret_extraction = true;
    // No tickets: nothing of rustls's own is sent after the handshake.
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

// ---------------------------------------------------------------------------
// TLS 1.3 record protection (RFC 8446 §5.2, §7.1, §7.2), AES-128-GCM with SHA-256.

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label(secret, label, "", len).
fn expand_label(secret: &[u8], label: &str, len: usize) -> Vec<u8> {
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
    let full = format!("tls13 {label}");
    let length = u16::try_from(len).expect("short output").to_be_bytes();
    let label_len = [u8::try_from(full.len()).expect("short label")];
    let info: [&[u8]; 4] = [&length, &label_len, full.as_bytes(), &[0u8]];
    let okm = prk.expand(&info, Len(len)).expect("HKDF output length");
    let mut out = vec![0u8; len];
    okm.fill(&mut out).expect("HKDF fill");
    out
}

/// One direction's record protection.
struct Keys {
    secret: Vec<u8>,
    key: aead::LessSafeKey,
    key_bytes: Vec<u8>,
    iv: [u8; 12],
    seq: u64,
}

impl Keys {
    fn new(secret: Vec<u8>, seq: u64) -> Keys {
        let key_bytes = expand_label(&secret, "key", 16);
        let iv: [u8; 12] = expand_label(&secret, "iv", 12)
            .try_into()
            .expect("12-byte iv");
        let key = aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_128_GCM, &key_bytes).expect("16-byte key"),
        );
        Keys {
            secret,
            key,
            key_bytes,
            iv,
            seq,
        }
    }

    /// The next generation of keys (KeyUpdate), sequence number 0.
    fn update(&mut self) {
        let next = expand_label(&self.secret, "traffic upd", 32);
        *self = Keys::new(next, 0);
    }

    fn nonce(&mut self) -> aead::Nonce {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        aead::Nonce::assume_unique_for_key(nonce)
    }

    /// A whole record carrying `content` of `content_type`.
    fn seal(&mut self, content_type: u8, content: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(content.len() + 17);
        body.extend_from_slice(content);
        body.push(content_type);
        let len = u16::try_from(body.len() + 16).expect("record fits");
        let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
        let nonce = self.nonce();
        self.key
            .seal_in_place_append_tag(nonce, aead::Aad::from(header), &mut body)
            .expect("AES-GCM seals");
        let mut record = header.to_vec();
        record.extend_from_slice(&body);
        record
    }

    /// The content type and content of a protected record, or why it is not one.
    fn open(&mut self, header: [u8; 5], mut body: Vec<u8>) -> Result<(u8, Vec<u8>), String> {
        let nonce = self.nonce();
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::from(header), &mut body)
            .map_err(|_| "the record does not decrypt".to_string())?;
        let end = plain
            .iter()
            .rposition(|&b| b != 0)
            .ok_or("an inner plaintext of zeros only")?;
        Ok((plain[end], plain[..end].to_vec()))
    }
}

fn read_full(sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match sock.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// One whole record, or None at a clean end of stream between records.
fn read_record(sock: &mut TcpStream) -> io::Result<Option<([u8; 5], Vec<u8>)>> {
    let mut header = [0u8; 5];
    match read_full(sock, &mut header)? {
        0 => return Ok(None),
        5 => {}
        n => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("stream ended {n} bytes into a record header"),
            ));
        }
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    if read_full(sock, &mut body)? < body.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "stream ended inside a record",
        ));
    }
    Ok(Some((header, body)))
}

fn alert_name(desc: u8) -> &'static str {
    match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        47 => "illegal_parameter",
        50 => "decode_error",
        51 => "decrypt_error",
        80 => "internal_error",
        90 => "user_canceled",
        _ => "other",
    }
}

// ---------------------------------------------------------------------------

/// What the reader and the script share.
#[derive(Default)]
struct Watch {
    seen: Mutex<Seen>,
    changed: Condvar,
}

struct Conn {
    sock: TcpStream,
    config: Arc<ServerConfig>,
    secrets: Arc<KeyLog>,
    reads: Reads,
    log: Arc<Log>,
    stop: Receiver<()>,
}

impl Conn {
    fn run(mut self, script: Vec<Act>, out: &mut Seen) {
        let (tx, rx) = match self.handshake() {
            Ok(keys) => keys,
            Err(e) => {
                self.log.note(format!("handshake failed: {e}"));
                out.script_error = Some(format!("handshake: {e}"));
                return;
            }
        };
        self.log.note("handshake done");
        let watch = Arc::new(Watch::default());
        watch.seen.lock().unwrap().handshake_done = true;
        let reader = match self.reads {
            Reads::Never => None,
            Reads::Yes => {
                let sock = self.sock.try_clone().expect("clone the socket");
                let (watch, log) = (watch.clone(), self.log.clone());
                Some(thread::spawn(move || read_client(sock, rx, &watch, &log)))
            }
        };
        let mut script_run = Script {
            sock: &self.sock,
            keys: tx,
            watch: &watch,
            log: &self.log,
        };
        for act in script {
            self.log.note(format!("script: {}", describe(&act)));
            let result = match act {
                Act::Hold => {
                    let _ = self.stop.recv();
                    Ok(())
                }
                other => script_run.act(other),
            };
            if let Err(e) = result {
                self.log.note(format!("script stopped: {e}"));
                let mut seen = watch.seen.lock().unwrap();
                if seen.write_error.is_none() {
                    seen.write_error = Some(e.to_string());
                }
                break;
            }
        }
        if let Some(reader) = reader {
            // The client's stream should end soon after the script; bounded either way.
            let deadline = Instant::now() + WAIT;
            while !reader.is_finished() && Instant::now() < deadline {
                match self.stop.recv_timeout(Duration::from_millis(20)) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            if !reader.is_finished() {
                self.log
                    .note("the client's stream did not end; shutting the socket");
                let _ = self.sock.shutdown(Shutdown::Both);
            }
            let _ = reader.join();
        }
        *out = watch.seen.lock().unwrap().clone();
    }

    /// The handshake, one whole record at a time; then the application traffic keys, checked
    /// against what rustls extracts.
    fn handshake(&mut self) -> Result<(Keys, Keys), String> {
        let mut conn = ServerConnection::new(self.config.clone()).map_err(|e| e.to_string())?;
        self.sock
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        loop {
            while conn.wants_write() {
                conn.write_tls(&mut self.sock).map_err(|e| e.to_string())?;
            }
            if !conn.is_handshaking() {
                break;
            }
            let (header, body) = read_record(&mut self.sock)
                .map_err(|e| e.to_string())?
                .ok_or("the client closed during the handshake")?;
            let mut record = header.to_vec();
            record.extend_from_slice(&body);
            conn.read_tls(&mut &record[..]).map_err(|e| e.to_string())?;
            if let Err(e) = conn.process_new_packets() {
                let _ = conn.write_tls(&mut self.sock);
                return Err(e.to_string());
            }
        }
        self.sock
            .set_read_timeout(None)
            .map_err(|e| e.to_string())?;
        let server = self
            .secrets
            .get("SERVER_TRAFFIC_SECRET_0")
            .ok_or("no server traffic secret logged")?;
        let client = self
            .secrets
            .get("CLIENT_TRAFFIC_SECRET_0")
            .ok_or("no client traffic secret logged")?;
        #[allow(deprecated)] // the replacement is for the unbuffered API only
        let extracted = conn
            .dangerous_extract_secrets()
            .map_err(|e| e.to_string())?;
        let tx = Keys::new(server, extracted.tx.0);
        let rx = Keys::new(client, extracted.rx.0);
        for (keys, (_, theirs), what) in [(&tx, &extracted.tx, "tx"), (&rx, &extracted.rx, "rx")] {
            match theirs {
                ConnectionTrafficSecrets::Aes128Gcm { key, iv }
                    if key.as_ref() == keys.key_bytes.as_slice()
                        && iv.as_ref() == keys.iv.as_slice() => {}
                _ => return Err(format!("the derived {what} keys differ from rustls's")),
            }
        }
        self.log.note(format!(
            "keys checked against rustls; tx seq {}, rx seq {}",
            tx.seq, rx.seq
        ));
        Ok((tx, rx))
    }
}

fn describe(act: &Act) -> String {
    match act {
        Act::Data(d) => format!("data, {} bytes", d.len()),
        Act::BadTag(d) => format!("record with a bad tag, {} bytes", d.len()),
        Act::Raw(d) => format!("raw bytes {d:02x?}"),
        other => format!("{other:?}"),
    }
}

/// The script's side: it encrypts with the server's keys and writes.
struct Script<'a> {
    sock: &'a TcpStream,
    keys: Keys,
    watch: &'a Watch,
    log: &'a Log,
}

/// KeyUpdate(update_requested): handshake type 24, length 1, request 1.
const KEY_UPDATE_REQUESTED: [u8; 5] = [KEY_UPDATE, 0, 0, 1, 1];

impl Script<'_> {
    fn act(&mut self, act: Act) -> io::Result<()> {
        match act {
            Act::Data(data) => {
                let mut out = Vec::new();
                for chunk in data.chunks(16 * 1024) {
                    out.extend(self.keys.seal(APPLICATION_DATA, chunk));
                }
                self.send(&out)?;
                self.watch.seen.lock().unwrap().data_sent += data.len() as u64;
            }
            Act::Records { len, size } => {
                let mut batch = Vec::new();
                let mut at = 0u64;
                while at < len {
                    batch.clear();
                    while at < len && batch.len() < 64 * 1024 {
                        let n = (size as u64).min(len - at) as usize;
                        let chunk = pattern(at, n);
                        batch.extend(self.keys.seal(APPLICATION_DATA, &chunk));
                        at += n as u64;
                    }
                    self.send(&batch)?;
                    self.watch.seen.lock().unwrap().data_sent = at;
                    self.log
                        .data_sent
                        .store(at, std::sync::atomic::Ordering::SeqCst);
                }
            }
            Act::KeyUpdate => {
                let record = self.keys.seal(HANDSHAKE, &KEY_UPDATE_REQUESTED);
                self.keys.update();
                self.send(&record)?;
                self.watch.seen.lock().unwrap().key_updates_sent += 1;
            }
            Act::CloseNotify => {
                let record = self.keys.seal(ALERT, &[1, 0]);
                self.send(&record)?;
            }
            Act::Alert(level, description) => {
                let record = self.keys.seal(ALERT, &[level, description]);
                self.send(&record)?;
            }
            Act::BadTag(data) => {
                let mut record = self.keys.seal(APPLICATION_DATA, &data);
                *record.last_mut().expect("a tag") ^= 1;
                self.send(&record)?;
            }
            Act::Empty(n) => {
                let mut batch = Vec::new();
                let mut left = n;
                while left > 0 {
                    batch.clear();
                    for _ in 0..left.min(1024) {
                        batch.extend(self.keys.seal(APPLICATION_DATA, &[]));
                        left -= 1;
                    }
                    self.send(&batch)?;
                }
            }
            Act::Raw(bytes) => self.send(&bytes)?,
            Act::Fin => self.sock.shutdown(Shutdown::Write)?,
            Act::Flood {
                max,
                secs,
                data_every,
            } => self.flood(max, secs, data_every)?,
            Act::AwaitClientCloseNotify => {
                let seen = self.watch.seen.lock().unwrap();
                let (seen, _) = self
                    .watch
                    .changed
                    .wait_timeout_while(seen, WAIT, |s| {
                        !s.client_close_notify && s.read_error.is_none() && !s.client_eof
                    })
                    .unwrap();
                if !seen.client_close_notify {
                    return Err(io::Error::other("no close_notify from the client"));
                }
            }
            Act::Hold => {}
        }
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let started = Instant::now();
        let result = (&*self.sock).write_all(bytes);
        let took = started.elapsed();
        let mut seen = self.watch.seen.lock().unwrap();
        seen.longest_stall = seen.longest_stall.max(took);
        result
    }

    /// KeyUpdates until `max` or `secs`; writes wait at most 100 ms at a time, so the flood
    /// ends on time even when the client has stopped reading.
    fn flood(&mut self, max: u64, secs: Duration, data_every: u64) -> io::Result<()> {
        let deadline = Instant::now() + secs;
        self.sock
            .set_write_timeout(Some(Duration::from_millis(100)))?;
        let mut batch = Vec::new();
        let mut sent = 0u64;
        let mut data = 0u64;
        let mut last_progress = Instant::now();
        let mut longest = Duration::ZERO;
        'flood: while sent < max && Instant::now() < deadline {
            batch.clear();
            let n = (max - sent).min(256);
            for i in 0..n {
                batch.extend(self.keys.seal(HANDSHAKE, &KEY_UPDATE_REQUESTED));
                self.keys.update();
                if data_every > 0 && (sent + i + 1) % data_every == 0 {
                    batch.extend(self.keys.seal(APPLICATION_DATA, b"k"));
                    data += 1;
                }
            }
            let mut off = 0;
            while off < batch.len() {
                match (&*self.sock).write(&batch[off..]) {
                    Ok(k) => {
                        off += k;
                        longest = longest.max(last_progress.elapsed());
                        last_progress = Instant::now();
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) =>
                    {
                        if Instant::now() >= deadline {
                            self.log.note(format!(
                                "flood: deadline with {off} of {} bytes of a batch written",
                                batch.len()
                            ));
                            break 'flood;
                        }
                    }
                    Err(e) => {
                        self.record_flood(sent, data, longest, last_progress);
                        return Err(e);
                    }
                }
            }
            sent += n;
        }
        self.record_flood(sent, data, longest, last_progress);
        self.sock.set_write_timeout(None)?;
        Ok(())
    }

    fn record_flood(&self, sent: u64, data: u64, longest: Duration, last: Instant) {
        let mut seen = self.watch.seen.lock().unwrap();
        seen.key_updates_sent += sent;
        seen.data_sent += data;
        seen.longest_stall = seen.longest_stall.max(longest).max(last.elapsed());
        seen.stalled_at_end = last.elapsed();
        self.log.note(format!(
            "flood: {sent} KeyUpdates and {data} data bytes written; last write {:?} ago",
            last.elapsed()
        ));
    }
}

/// The reader: decrypts every record the client sends until its stream ends.
fn read_client(mut sock: TcpStream, mut keys: Keys, watch: &Watch, log: &Log) {
    let update = |f: &mut dyn FnMut(&mut Seen)| {
        f(&mut watch.seen.lock().unwrap());
        watch.changed.notify_all();
    };
    loop {
        let (header, body) = match read_record(&mut sock) {
            Ok(Some(record)) => record,
            Ok(None) => {
                update(&mut |s| s.client_eof = true);
                break;
            }
            Err(e) => {
                update(&mut |s| s.read_error = Some(e.to_string()));
                break;
            }
        };
        let after = watch.seen.lock().unwrap().client_close_notify;
        let what = match header[0] {
            APPLICATION_DATA => match keys.open(header, body) {
                Ok((APPLICATION_DATA, data)) => {
                    update(&mut |s| s.client_bytes += data.len() as u64);
                    format!("application data, {} bytes", data.len())
                }
                Ok((ALERT, alert)) if alert == [1, 0] => {
                    if after {
                        "close_notify again".to_string()
                    } else {
                        update(&mut |s| s.client_close_notify = true);
                        log.note("client close_notify");
                        continue;
                    }
                }
                Ok((ALERT, alert)) => {
                    let text = match alert.as_slice() {
                        [level, desc] => format!("{level}/{} ({desc})", alert_name(*desc)),
                        other => format!("malformed {other:02x?}"),
                    };
                    update(&mut |s| s.alerts.push(text.clone()));
                    format!("alert {text}")
                }
                Ok((HANDSHAKE, msg)) if msg.first() == Some(&KEY_UPDATE) => {
                    keys.update();
                    update(&mut |s| s.client_key_updates += 1);
                    format!("KeyUpdate {msg:02x?}")
                }
                Ok((kind, content)) => format!("type {kind}, {} bytes", content.len()),
                Err(e) => {
                    update(&mut |s| s.read_error = Some(e.clone()));
                    break;
                }
            },
            CHANGE_CIPHER_SPEC => "change_cipher_spec".to_string(),
            kind => format!("plaintext record of type {kind}, {} bytes", body.len()),
        };
        log.note(format!(
            "client {what}{}",
            if after { " AFTER its close_notify" } else { "" }
        ));
        if after {
            update(&mut |s| s.after_close_notify.push(what.clone()));
        }
    }
}
