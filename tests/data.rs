//! Data integrity against an in-process rustls server: bulk transfers in both directions at
//! once with sha256 on both ends, for every way the connection can end cleanly, and property
//! tests for byte-exact delivery, `--quit-on` and `~.` however the bytes are split.
//!
//! The server follows the project's rule: no lock is held across a blocking socket call. A
//! reader thread blocks on its own clone of the socket without the lock, then feeds rustls
//! under it; a writer thread encrypts under the lock and writes to the socket after releasing
//! it. A Condvar carries the wakeups between them.

#![allow(unused_macros)]

#[macro_use]
mod common;

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ChildStdin;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes each way in the integrity runs; `GRACETLS_INTEGRITY_BYTES` (a number, optionally with
/// a K, M or G suffix) overrides it for quick local runs.
const INTEGRITY_BYTES: u64 = 1 << 30;
/// Bound on one integrity run, generous because the two cores are shared.
const INTEGRITY_TIMEOUT: Duration = Duration::from_secs(120);
/// Size of the server's writes and of the test's stdin writes in bulk runs.
const CHUNK: usize = 64 * 1024;

fn integrity_bytes() -> u64 {
    let Ok(v) = std::env::var("GRACETLS_INTEGRITY_BYTES") else {
        return INTEGRITY_BYTES;
    };
    let v = v.trim();
    let (num, mul) = match v.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&v[..v.len() - 1], 1 << 10),
        Some('M') => (&v[..v.len() - 1], 1 << 20),
        Some('G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .unwrap_or_else(|e| panic!("GRACETLS_INTEGRITY_BYTES={v:?} is not a size: {e}"))
}

/// SHA-256 through ring (reached through rustls's TLS 1.3 SHA-256 suite), because the
/// `sha2` crate in a debug build hashes about 32 MiB/s, which would make each 1 GiB run
/// CPU-bound on hashing four streams. `sha256_engines_agree` checks it against `sha2`.
struct Sha(Box<dyn rustls::crypto::hash::Context>);

impl Sha {
    fn new() -> Sha {
        let rustls::SupportedCipherSuite::Tls13(suite) =
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        else {
            unreachable!("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite")
        };
        let hash = suite.common.hash_provider;
        assert_eq!(hash.output_len(), 32, "not SHA-256");
        Sha(hash.start())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish(self) -> [u8; 32] {
        self.0
            .finish()
            .as_ref()
            .try_into()
            .expect("a SHA-256 digest is 32 bytes")
    }
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// A deterministic stream cut into numbered chunks: one pseudo-random block, each chunk
/// stamped with the stream's seed and its index, so that a lost, repeated or reordered
/// chunk changes the hash, at the cost of a copy (debug builds hash slowly enough already).
struct ChunkPattern {
    block: Vec<u8>,
    seed: u64,
    index: u64,
}

impl ChunkPattern {
    fn new(seed: u64) -> ChunkPattern {
        let mut block = vec![0u8; CHUNK];
        PatternStream::new(seed).fill(&mut block);
        ChunkPattern {
            block,
            seed,
            index: 0,
        }
    }

    /// The next `len` (at most CHUNK) bytes.
    fn next(&mut self, len: usize, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.block[..len]);
        let stamp = (self.seed ^ self.index).to_le_bytes();
        let n = stamp.len().min(len);
        out[..n].copy_from_slice(&stamp[..n]);
        self.index += 1;
    }
}

// ---------------------------------------------------------------------------
// The server.

fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_file_iter(&pki.server.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", pki.server.cert.display()));
    let key = PrivateKeyDer::from_pem_file(&pki.server.key)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", pki.server.key.display()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    Arc::new(config)
}

/// What the server sends.
enum Down {
    /// `total` bytes of a [`ChunkPattern`] with this seed.
    Pattern { seed: u64, total: u64 },
    /// These writes, each flushed on its own after sleeping for its delay.
    Script(Vec<(Vec<u8>, Duration)>),
}

/// When the server sends its close_notify (never before all of `Down` was written).
#[derive(Clone, Copy, Debug, PartialEq)]
enum ServerClose {
    /// Only in answer to the client's close_notify.
    Answer,
    /// Once `up_expected` bytes arrived (or in answer to the client's close_notify).
    AfterUpload,
    /// Like `AfterUpload`, but the last write is held back until the upload is complete
    /// and leaves in one socket write together with the close_notify.
    WithLastWrite,
}

struct Plan {
    down: Down,
    up_expected: u64,
    close: ServerClose,
    deadline: Instant,
}

struct State {
    conn: ServerConnection,
    received: u64,
    client_close_notify: bool,
    /// The reader is done (TCP EOF, error or deadline).
    reader_done: bool,
    close_notify_sent: bool,
    /// Set once the server sent its close_notify: errors after it come from the client's
    /// fast close (RST for bytes that arrive after its socket is closed) and are only noted.
    errors: Vec<String>,
    notes: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("server state lock poisoned")
    }

    /// Records an I/O problem: an error, unless the client had already closed.
    fn problem(&self, what: String) {
        let mut st = self.lock();
        if st.client_close_notify || st.close_notify_sent {
            st.notes.push(what);
        } else {
            st.errors.push(what);
        }
        drop(st);
        self.wake.notify_all();
    }
}

/// How the server saw the connection.
#[derive(Debug)]
struct ServerOutcome {
    sent: u64,
    sent_hash: [u8; 32],
    received: u64,
    received_hash: [u8; 32],
    received_bytes: Option<Vec<u8>>,
    client_close_notify: bool,
    close_notify_sent: bool,
    errors: Vec<String>,
    notes: Vec<String>,
}

impl Dump for ServerOutcome {
    fn dump(&self) -> String {
        format!(
            "\n\n===== in-process rustls server =====\nsent {} bytes (sha256 {}), received {} \
             bytes (sha256 {}), client close_notify {}, close_notify sent {}\nerrors: {:?}\n\
             notes: {:?}\n",
            self.sent,
            hex(&self.sent_hash),
            self.received,
            hex(&self.received_hash),
            self.client_close_notify,
            self.close_notify_sent,
            self.errors,
            self.notes
        )
    }
}

/// A server running on one accepted connection; `finish` collects its outcome.
struct Server {
    done: mpsc::Receiver<ServerOutcome>,
}

impl Server {
    /// `keep_received`: also return the received bytes (small transfers only).
    fn serve(
        config: Arc<ServerConfig>,
        sock: TcpStream,
        plan: Plan,
        keep_received: bool,
    ) -> Server {
        let conn = ServerConnection::new(config).expect("rustls ServerConnection");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                conn,
                received: 0,
                client_close_notify: false,
                reader_done: false,
                close_notify_sent: false,
                errors: Vec::new(),
                notes: Vec::new(),
            }),
            wake: Condvar::new(),
        });
        let read_sock = sock.try_clone().expect("clone the server socket");
        let deadline = plan.deadline;
        let (rtx, rrx) = mpsc::channel();
        {
            let shared = shared.clone();
            thread::spawn(move || {
                let r = read_side(&shared, read_sock, deadline, keep_received);
                let _ = rtx.send(r);
            });
        }
        let (done_tx, done) = mpsc::channel();
        thread::spawn(move || {
            let (sent, sent_hash) = write_side(&shared, sock, plan);
            let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
            let (received_hash, received_bytes) = rrx.recv_timeout(left).unwrap_or(([0; 32], None));
            let st = shared.lock();
            let _ = done_tx.send(ServerOutcome {
                sent,
                sent_hash,
                received: st.received,
                received_hash,
                received_bytes,
                client_close_notify: st.client_close_notify,
                close_notify_sent: st.close_notify_sent,
                errors: st.errors.clone(),
                notes: st.notes.clone(),
            });
        });
        Server { done }
    }

    fn finish(&self, timeout: Duration, ctx: &[&dyn Dump]) -> ServerOutcome {
        recv_within(&self.done, timeout, "the in-process server's outcome", ctx)
    }
}

/// Reads without the lock, feeds rustls under it, hashes after releasing it.
fn read_side(
    shared: &Shared,
    mut sock: TcpStream,
    deadline: Instant,
    keep: bool,
) -> ([u8; 32], Option<Vec<u8>>) {
    let mut hash = Sha::new();
    let mut kept = keep.then(Vec::new);
    let mut buf = vec![0u8; 256 * 1024];
    let mut plain = Vec::with_capacity(256 * 1024);
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            shared.problem("server reader: deadline passed".into());
            break;
        }
        let _ = sock.set_read_timeout(Some(left));
        let n = match sock.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                shared.problem(format!("server read: {e}"));
                break;
            }
        };
        let mut st = shared.lock();
        let mut input = &buf[..n];
        let mut failed = false;
        // With n == 0 this shows rustls the end of stream.
        loop {
            if let Err(e) = st.conn.read_tls(&mut input) {
                st.errors.push(format!("server read_tls: {e}"));
                failed = true;
                break;
            }
            if let Err(e) = st.conn.process_new_packets() {
                st.errors.push(format!("server TLS: {e}"));
                failed = true;
                break;
            }
            loop {
                match st.conn.reader().read(&mut tmp) {
                    Ok(0) => {
                        st.client_close_notify = true;
                        break;
                    }
                    Ok(k) => plain.extend_from_slice(&tmp[..k]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        if !st.client_close_notify {
                            let what = format!("server plaintext read: {e}");
                            st.errors.push(what);
                        }
                        failed = true;
                        break;
                    }
                }
            }
            if input.is_empty() || failed {
                break;
            }
        }
        st.received += plain.len() as u64;
        if n == 0 || failed {
            st.reader_done = true;
        }
        drop(st);
        shared.wake.notify_all();
        hash.update(&plain);
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&plain);
        }
        plain.clear();
        if n == 0 || failed {
            break;
        }
    }
    let mut st = shared.lock();
    st.reader_done = true;
    drop(st);
    shared.wake.notify_all();
    (hash.finish(), kept)
}

/// Encrypts under the lock, writes without it. Returns bytes sent and their hash.
fn write_side(shared: &Shared, mut sock: TcpStream, plan: Plan) -> (u64, [u8; 32]) {
    let mut hash = Sha::new();
    let mut sent = 0u64;
    // The next write, generated and hashed outside the lock.
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_delay = Duration::ZERO;
    let mut pending_off = 0;
    let mut pattern = None;
    let mut script = Vec::new().into_iter();
    let total = match plan.down {
        Down::Pattern { seed, total } => {
            pattern = Some(ChunkPattern::new(seed));
            total
        }
        Down::Script(writes) => {
            let total = writes.iter().map(|(b, _)| b.len() as u64).sum();
            script = writes.into_iter();
            total
        }
    };
    let mut generated = 0u64;
    let mut out = Vec::with_capacity(2 * CHUNK);
    loop {
        // A loop, not an if: an empty scripted write has nothing to wait for.
        while pending_off == pending.len() && generated < total {
            pending_off = 0;
            if let Some(p) = pattern.as_mut() {
                let len = (total - generated).min(CHUNK as u64) as usize;
                p.next(len, &mut pending);
            } else if let Some((bytes, delay)) = script.next() {
                pending = bytes;
                pending_delay = delay;
            }
            generated += pending.len() as u64;
            hash.update(&pending);
            if !pending_delay.is_zero() {
                // The deliberate timing of a scripted write, not a wait for an event.
                thread::sleep(pending_delay);
            }
        }
        let mut st = shared.lock();
        let finished = loop {
            if !st.errors.is_empty() {
                break true;
            }
            let last = generated == total && pending_off < pending.len();
            let upload_done = st.received >= plan.up_expected;
            let hold = last && plan.close == ServerClose::WithLastWrite && !upload_done;
            let may_send = !st.conn.is_handshaking() && pending_off < pending.len() && !hold;
            let all_sent = generated == total && pending_off == pending.len();
            let close_now = !st.close_notify_sent
                && all_sent
                && !st.conn.is_handshaking()
                && (st.client_close_notify || (plan.close != ServerClose::Answer && upload_done));
            if st.conn.wants_write() || may_send || close_now {
                break false;
            }
            if st.close_notify_sent || (st.reader_done && !st.client_close_notify) {
                break true;
            }
            let left = plan.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let what = format!(
                    "server writer: deadline passed ({sent} of {total} bytes sent, {} \
                     received, client close_notify {})",
                    st.received, st.client_close_notify
                );
                st.errors.push(what);
                break true;
            }
            st = shared
                .wake
                .wait_timeout(st, left)
                .expect("server state lock poisoned")
                .0;
        };
        if finished {
            break;
        }
        let upload_done = st.received >= plan.up_expected;
        let hold = generated == total && plan.close == ServerClose::WithLastWrite && !upload_done;
        if !st.conn.is_handshaking() && pending_off < pending.len() && !hold {
            match st.conn.writer().write(&pending[pending_off..]) {
                Ok(k) => {
                    pending_off += k;
                    sent += k as u64;
                }
                Err(e) => {
                    st.errors.push(format!("server plaintext write: {e}"));
                    break;
                }
            }
        }
        let all_sent = generated == total && pending_off == pending.len();
        if !st.close_notify_sent
            && all_sent
            && !st.conn.is_handshaking()
            && (st.client_close_notify || (plan.close != ServerClose::Answer && upload_done))
        {
            st.conn.send_close_notify();
            st.close_notify_sent = true;
        }
        while st.conn.wants_write() {
            if let Err(e) = st.conn.write_tls(&mut out) {
                st.errors.push(format!("server write_tls: {e}"));
                break;
            }
        }
        let closing = st.close_notify_sent;
        drop(st);
        if !out.is_empty() {
            if let Err(e) = sock.write_all(&out) {
                shared.problem(format!("server write: {e}"));
                break;
            }
            out.clear();
        }
        if closing {
            // The FIN follows the close_notify.
            let _ = sock.shutdown(Shutdown::Write);
            break;
        }
    }
    (sent, hash.finish())
}

// ---------------------------------------------------------------------------
// The client side of the bulk runs.

/// Feeds `total` bytes of a pattern into the client's stdin, then hands stdin back (so the
/// caller decides when EOF comes). Returns (bytes written, their hash, the write result).
fn feed_stdin(
    mut stdin: ChildStdin,
    seed: u64,
    total: u64,
) -> mpsc::Receiver<(u64, [u8; 32], io::Result<()>, ChildStdin)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut pattern = ChunkPattern::new(seed);
        let mut hash = Sha::new();
        let mut buf = Vec::with_capacity(CHUNK);
        let mut fed = 0u64;
        let res = loop {
            if fed == total {
                break Ok(());
            }
            let len = (total - fed).min(CHUNK as u64) as usize;
            pattern.next(len, &mut buf);
            hash.update(&buf);
            if let Err(e) = stdin.write_all(&buf) {
                break Err(e);
            }
            fed += len as u64;
        };
        let _ = tx.send((fed, hash.finish(), res, stdin));
    });
    rx
}

/// Reads the client's stdout to EOF, hashing. Sends `()` on `arrived` once `expect` bytes
/// came, then (bytes, hash, result) at EOF.
fn drain_stdout(
    mut stdout: impl Read + Send + 'static,
    expect: u64,
    arrived: mpsc::Sender<()>,
) -> mpsc::Receiver<(u64, [u8; 32], io::Result<()>)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut hash = Sha::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        let mut told = false;
        let res = loop {
            match stdout.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    hash.update(&buf[..n]);
                    got += n as u64;
                    if !told && got >= expect {
                        told = true;
                        let _ = arrived.send(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send((got, hash.finish(), res));
    });
    rx
}

/// How a bulk run ends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// `--on-eof half-close`: stdin EOF right after the upload.
    HalfClose,
    /// `--on-eof close`: stdin EOF only once the whole download arrived.
    Close,
    /// `--on-eof ignore`: stdin EOF right after the upload; the server closes.
    Ignore,
    /// stdin stays open; the server closes right after its last byte.
    ServerClose,
}

/// One bulk run at a time: two of them on two shared cores would only measure each other,
/// and the time bound starts once a run has the machine to itself (as far as this binary goes).
static BULK: Mutex<()> = Mutex::new(());

fn integrity_run(ending: Ending) {
    const UP_SEED: u64 = 0x0123_4567_89ab_cdef;
    const DOWN_SEED: u64 = 0xfedc_ba98_7654_3210;
    let _one_at_a_time = BULK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let total = integrity_bytes();
    let started = Instant::now();
    let deadline = started + INTEGRITY_TIMEOUT;
    let left = || deadline.saturating_duration_since(Instant::now());

    let pki = Pki::new();
    let config = server_config(&pki);
    let listener = TestListener::start();
    let on_eof = match ending {
        Ending::HalfClose | Ending::ServerClose => "half-close",
        Ending::Close => "close",
        Ending::Ignore => "ignore",
    };
    let mut c = Client::spawn_raw_stdout(client_args(
        &pki,
        "127.0.0.1",
        listener.port,
        &["--on-eof", on_eof, "--escape", "none"],
    ));
    let sock = listener.accept(WAIT, &[&c]);
    let close = match ending {
        Ending::HalfClose | Ending::Close => ServerClose::Answer,
        Ending::Ignore => ServerClose::AfterUpload,
        Ending::ServerClose => ServerClose::WithLastWrite,
    };
    let server = Server::serve(
        config,
        sock,
        Plan {
            down: Down::Pattern {
                seed: DOWN_SEED,
                total,
            },
            up_expected: total,
            close,
            deadline,
        },
        false,
    );

    let fed = feed_stdin(c.stdin.take().expect("stdin"), UP_SEED, total);
    let (arrived_tx, arrived) = mpsc::channel();
    let out = drain_stdout(c.stdout_pipe.take().expect("stdout"), total, arrived_tx);

    let (fed_n, fed_hash, fed_res, stdin) = recv_within(&fed, left(), "the stdin feeder", &[&c]);
    // EOF on stdin when the ending wants it; otherwise stdin stays open until the exit.
    let mut keep_stdin = Some(stdin);
    match ending {
        Ending::HalfClose | Ending::Ignore => keep_stdin = None,
        Ending::Close => {
            recv_within(&arrived, left(), "the whole download on stdout", &[&c]);
            keep_stdin = None;
        }
        Ending::ServerClose => {}
    }
    let (got_n, got_hash, got_res) = recv_within(&out, left(), "stdout EOF", &[&c]);
    let st = c.wait_exit(left(), &[]);
    let elapsed = started.elapsed();
    drop(keep_stdin);
    let srv = server.finish(left() + Duration::from_secs(2), &[&c]);

    let mib = total as f64 / (1024.0 * 1024.0);
    println!(
        "integrity {ending:?}: {mib:.0} MiB each way at once in {elapsed:.2?}: {:.1} MiB/s \
         each way",
        mib / elapsed.as_secs_f64()
    );
    let note = Note(format!(
        "fed {fed_n} bytes (sha256 {}, {fed_res:?}); stdout {got_n} bytes (sha256 {}, \
         {got_res:?})",
        hex(&fed_hash),
        hex(&got_hash)
    ));
    c.assert_no_panic(&[&srv, &note]);
    c.assert_code(st, 0, &[&srv, &note]);
    assert!(
        fed_res.is_ok() && got_res.is_ok() && fed_n == total,
        "a pipe to the client failed{}{}{}",
        c.dump(),
        srv.dump(),
        note.dump()
    );
    assert!(
        srv.errors.is_empty(),
        "the server saw errors{}{}{}",
        c.dump(),
        srv.dump(),
        note.dump()
    );
    assert!(
        srv.received == total && srv.received_hash == fed_hash,
        "upload differs: stdin got {total} bytes, the server received {}{}{}{}",
        srv.received,
        c.dump(),
        srv.dump(),
        note.dump()
    );
    assert!(
        srv.sent == total && got_n == total && got_hash == srv.sent_hash,
        "download differs: the server sent {}, stdout had {got_n}{}{}{}",
        srv.sent,
        c.dump(),
        srv.dump(),
        note.dump()
    );
    assert!(
        srv.client_close_notify,
        "the server never saw the client's close_notify{}{}",
        c.dump(),
        srv.dump()
    );
    let trigger = match ending {
        Ending::HalfClose | Ending::Close => "stdin-eof",
        Ending::Ignore | Ending::ServerClose => "peer-close-notify",
    };
    let mut expected = vec![
        ("trigger", json!(trigger)),
        ("outcome", json!("clean")),
        ("close_notify_sent", json!(true)),
        ("bytes_in", json!(total)),
        ("bytes_out", json!(total)),
        ("exit_code", json!(0)),
    ];
    if !matches!(ending, Ending::Close) {
        expected.push(("close_notify_received", json!(true)));
    }
    c.assert_report(&expected, &[&srv]);
}

#[test]
fn integrity_half_close() {
    integrity_run(Ending::HalfClose);
}

#[test]
fn integrity_close() {
    integrity_run(Ending::Close);
}

#[test]
fn integrity_ignore() {
    integrity_run(Ending::Ignore);
}

#[test]
fn integrity_server_closes_after_last_byte() {
    integrity_run(Ending::ServerClose);
}

/// `Sha` is SHA-256: the same digests as the `sha2` crate, also across split updates.
#[test]
fn sha256_engines_agree() {
    let mut data = Vec::new();
    let mut pattern = ChunkPattern::new(42);
    let mut chunk = Vec::new();
    for len in [0, 1, 55, 56, 63, 64, 65, 1000, CHUNK] {
        pattern.next(len, &mut chunk);
        data.extend_from_slice(&chunk);
    }
    for cut in [0, 1, 64, 1000, data.len() / 2, data.len()] {
        let mut ours = Sha::new();
        ours.update(&data[..cut]);
        ours.update(&data[cut..]);
        let theirs: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(hex(&ours.finish()), hex(&theirs), "cut at {cut}");
    }
    assert_eq!(
        hex(&Sha::new().finish()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

// ---------------------------------------------------------------------------
// Property tests against the real binary: few cases, each bounded.

fn e2e_config() -> ProptestConfig {
    ProptestConfig {
        // Each shrinking step spawns the binary too; a failure is reported either way.
        max_shrink_iters: 64,
        max_shrink_time: 60_000,
        // Without a source file (TestRunner, not the macro) there is nowhere to persist to.
        failure_persistence: None,
        ..ProptestConfig::with_cases(24)
    }
}

/// Runs `strategy` through `case`, panicking with the minimal failing input.
fn run_e2e<S: Strategy>(strategy: S, case: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(e2e_config());
    let result = runner.run(&strategy, |v| {
        case(v);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Up to 3 ms between writes: enough to split what the other side reads, short enough
/// for 24 cases.
fn delay() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (0u64..=3).prop_map(Duration::from_millis)
    ]
}

/// Cuts `bytes` at `cuts` (positions up to `limit`) into writes, each after its pause.
fn cut(bytes: &[u8], cuts: &[(Index, Duration)], limit: usize) -> Vec<(Vec<u8>, Duration)> {
    let mut at: Vec<(usize, Duration)> =
        cuts.iter().map(|(i, d)| (i.index(limit + 1), *d)).collect();
    at.sort_by_key(|(i, _)| *i);
    let mut writes = Vec::new();
    let mut start = 0;
    let mut pause = Duration::ZERO;
    for (i, d) in at {
        writes.push((bytes[start..i].to_vec(), pause));
        start = i;
        pause = d;
    }
    writes.push((bytes[start..].to_vec(), pause));
    writes
}

/// Lines (without their `\n`) other than `skip` (with or without trailing `\r`s), biased
/// towards near misses of it.
fn lines_other_than(skip: &'static str) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let near: Vec<u8> = [skip.as_bytes(), b"\r~.x"].concat();
    let byte = prop_oneof![3 => prop::sample::select(near), 1 => any::<u8>()];
    let line = prop::collection::vec(byte, 0..12).prop_filter("a line, not the one", move |l| {
        let text = l.iter().rposition(|&b| b != b'\r').map_or(0, |p| p + 1);
        !l.contains(&b'\n') && &l[..text] != skip.as_bytes()
    });
    prop::collection::vec(line, 0..8)
}

fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// Spawns the client against a fresh in-process server following `plan`.
fn start_pair(
    pki: &Pki,
    config: &Arc<ServerConfig>,
    extra: &[&str],
    plan: Plan,
) -> (Client, Server) {
    let listener = TestListener::start();
    let c = Client::spawn(client_args(pki, "127.0.0.1", listener.port, extra));
    let sock = listener.accept(WAIT, &[&c]);
    let srv = Server::serve(config.clone(), sock, plan, true);
    (c, srv)
}

fn script_plan(writes: Vec<(Vec<u8>, Duration)>, close: ServerClose) -> Plan {
    Plan {
        down: Down::Script(writes),
        up_expected: if close == ServerClose::Answer {
            u64::MAX
        } else {
            0
        },
        close,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

/// Exit 0, no panic, a clean report with `trigger`, and a server that saw no error and the
/// client's close_notify.
fn assert_clean_end(c: &mut Client, srv: &Server, trigger: &str) -> ServerOutcome {
    let st = c.wait_exit(WAIT, &[]);
    let out = srv.finish(WAIT, &[&*c]);
    c.assert_no_panic(&[&out]);
    c.assert_code(st, 0, &[&out]);
    assert!(
        out.errors.is_empty() && out.client_close_notify,
        "the server saw an error or no close_notify{}{}",
        c.dump(),
        out.dump()
    );
    c.assert_report(
        &[("trigger", json!(trigger)), ("outcome", json!("clean"))],
        &[&out],
    );
    out
}

/// The server's writes, in any sizes and with pauses, reach stdout byte-exact, and its
/// close_notify right behind the last one loses nothing.
#[test]
fn prop_server_writes_arrive_byte_exact() {
    let pki = Pki::new();
    let config = server_config(&pki);
    let writes = prop::collection::vec(
        (prop::collection::vec(any::<u8>(), 0..3000), delay()),
        1..16,
    );
    run_e2e(writes, |writes| {
        let want: Vec<u8> = writes.iter().flat_map(|(b, _)| b.clone()).collect();
        let plan = script_plan(writes, ServerClose::WithLastWrite);
        let (mut c, srv) = start_pair(&pki, &config, &[], plan);
        let out = assert_clean_end(&mut c, &srv, "peer-close-notify");
        let got = c.stdout_bytes();
        assert!(
            got == want,
            "stdout differs from what the server wrote: {}{}{}",
            diff_summary(&got, &want),
            c.dump(),
            out.dump()
        );
    });
}

/// `--quit-on bye` ends the session at the quit line however the server's writes split the
/// lines; stdout holds everything up to and including that line and nothing after it.
#[test]
fn prop_quit_line_however_split() {
    let pki = Pki::new();
    let config = server_config(&pki);
    let input = (
        lines_other_than("bye"),
        0usize..3,
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec((any::<Index>(), delay()), 0..12),
    );
    run_e2e(input, |(lines, crs, tail, cuts)| {
        let mut stream = join_lines(&lines);
        stream.extend_from_slice(b"bye");
        stream.extend(std::iter::repeat_n(b'\r', crs));
        stream.push(b'\n');
        let quit_end = stream.len();
        stream.extend_from_slice(&tail);
        // What follows the quit line rides in the write that ends it: later writes would
        // reach a closed socket and be answered with a reset.
        let writes = cut(&stream, &cuts, quit_end - 1);
        let plan = script_plan(writes, ServerClose::Answer);
        let (mut c, srv) = start_pair(&pki, &config, &["--quit-on", "bye"], plan);
        let out = assert_clean_end(&mut c, &srv, "quit-line");
        let got = c.stdout_bytes();
        assert!(
            got == stream[..quit_end],
            "stdout is not the stream up to the quit line: {}{}{}",
            diff_summary(&got, &stream[..quit_end]),
            c.dump(),
            out.dump()
        );
    });
}

/// `~.` ends the session however stdin writes split the lines; the server receives exactly
/// what came before it.
#[test]
fn prop_escape_however_split() {
    let pki = Pki::new();
    let config = server_config(&pki);
    let input = (
        lines_other_than("~."),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec((any::<Index>(), delay()), 0..12),
    );
    run_e2e(input, |(lines, crlf, tail, cuts)| {
        let mut stream = join_lines(&lines);
        let before = stream.len();
        stream.extend_from_slice(if crlf { b"~.\r\n" } else { b"~.\n" });
        let escape_end = stream.len();
        stream.extend_from_slice(&tail);
        let writes = cut(&stream, &cuts, stream.len());
        let plan = script_plan(Vec::new(), ServerClose::Answer);
        let (mut c, srv) = start_pair(&pki, &config, &["--escape", "~"], plan);
        let mut written = 0;
        for (bytes, pause) in &writes {
            // The deliberate timing between stdin writes.
            thread::sleep(*pause);
            let res = c.stdin.as_mut().expect("stdin").write_all(bytes);
            if let Err(e) = res {
                // Only bytes after the command may find the client gone.
                assert!(
                    written >= escape_end,
                    "stdin write failed at byte {written}, before `~.` ended at {escape_end}: \
                     {e}{}",
                    c.dump()
                );
                break;
            }
            written += bytes.len();
        }
        let out = assert_clean_end(&mut c, &srv, "escape");
        let got = out.received_bytes.clone().unwrap_or_default();
        assert!(
            got == stream[..before],
            "the server did not receive exactly what came before `~.`: {}{}{}",
            diff_summary(&got, &stream[..before]),
            c.dump(),
            out.dump()
        );
    });
}
