//! A delaying TCP proxy for the latency fault tests.
//!
//! [`DelayProxy`] listens on 127.0.0.1 and forwards each accepted connection
//! to a target port, delaying every byte by a fixed one-way delay in each
//! direction (so the round trip grows by twice the delay). Per direction a
//! reader thread stamps each chunk with its arrival time and queues it; a
//! writer thread forwards it at arrival + delay. The delay is therefore a
//! pipeline, not a per-chunk sleep in series: bandwidth is kept, and a burst
//! of chunks arrives a delay later as a burst.
//!
//! The proxy's socket to each side stands for that side's end of the wire:
//! whatever the proxy observes on it happened at that side at that moment,
//! and reaches the other side one delay later, behind what that side sent
//! before. So the end of a stream travels through the same queue as the data:
//! EOF becomes `shutdown(Write)` on the other side (a half-close, as TCP
//! carries it), and a reset (a read error, or a write failing because that
//! side closed or reset) shuts both sockets down. That last step is the one
//! approximation: without `SO_LINGER` (unstable in std) no RST can be sent,
//! so the far side sees an abrupt end without close_notify (which is what
//! TLS judges), as a FIN rather than a reset. A reset the proxy never
//! observes (it had nothing more to write to a side that closed) is not
//! passed on.
//!
//! The TCP handshake itself is not delayed: the upstream connection is made
//! at accept time. Every thread ends once the proxy is dropped (sockets are
//! shut down, the acceptor is woken by a connection to itself).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::Dump;

/// How long the proxy tries to reach its target for each accepted client.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running delaying proxy; see the module documentation.
pub struct DelayProxy {
    /// The port clients connect to (on 127.0.0.1).
    pub port: u16,
    pub target: SocketAddr,
    pub delay: Duration,
    shared: Arc<Shared>,
}

struct Shared {
    stop: AtomicBool,
    /// Live connections, to shut them down on drop. Weak, so that a
    /// connection's sockets close as soon as its four threads are done (a
    /// lingering descriptor would hold back nothing the peers see, but it
    /// would keep sockets around for the life of the proxy).
    conns: Mutex<Vec<Weak<Pair>>>,
    /// What happened, for failure messages.
    log: Mutex<String>,
    started: Instant,
    accepted: AtomicU64,
    /// Resets observed (each passed on toward the other side).
    resets: AtomicU64,
}

impl Shared {
    fn note(&self, what: &str) {
        let ms = self.started.elapsed().as_millis();
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(log, "{ms:>6} ms  {what}");
    }
}

/// The two sockets of one proxied connection.
struct Pair {
    id: u64,
    client: TcpStream,
    server: TcpStream,
}

impl Pair {
    fn shutdown_both(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

/// Which way a chunk travels.
#[derive(Clone, Copy)]
enum Dir {
    ToServer,
    ToClient,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::ToServer => "client->server",
            Dir::ToClient => "server->client",
        }
    }
    fn ends(self, p: &Pair) -> (&TcpStream, &TcpStream) {
        match self {
            Dir::ToServer => (&p.client, &p.server),
            Dir::ToClient => (&p.server, &p.client),
        }
    }
}

/// What a reader saw, stamped with when it saw it.
enum Event {
    Data(Instant, Vec<u8>),
    Eof(Instant),
    Error(Instant, io::Error),
}

impl DelayProxy {
    /// Starts a proxy on 127.0.0.1:0 in front of 127.0.0.1:`target_port`,
    /// delaying each direction by `delay`.
    pub fn start(target_port: u16, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("proxy: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy: no local address: {e}"))
            .port();
        let target = SocketAddr::from(([127, 0, 0, 1], target_port));
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            log: Mutex::new(String::new()),
            started: Instant::now(),
            accepted: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        });
        let sh = Arc::clone(&shared);
        thread::spawn(move || accept_loop(listener, target, delay, sh));
        DelayProxy {
            port,
            target,
            delay,
            shared,
        }
    }

    /// The round trip the proxy adds (twice the one-way delay).
    pub fn rtt(&self) -> Duration {
        self.delay * 2
    }

    /// How many resets (a read error, or a write to a side that had closed
    /// or reset) it observed and passed on.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns.iter().filter_map(Weak::upgrade) {
            c.shutdown_both();
        }
        // accept() has no timeout; a connection to ourselves wakes it so it
        // can see the stop flag.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        );
    }
}

impl Dump for DelayProxy {
    fn dump(&self) -> String {
        format!(
            "\n\n===== delay proxy 127.0.0.1:{} -> {} ({:?} each way) =====\n{}",
            self.port,
            self.target,
            self.delay,
            self.shared.log.lock().unwrap_or_else(|e| e.into_inner())
        )
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, delay: Duration, sh: Arc<Shared>) {
    for incoming in listener.incoming() {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match incoming {
            Ok(s) => s,
            Err(e) => {
                sh.note(&format!("accept failed: {e}"));
                continue;
            }
        };
        let id = sh.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let server = match TcpStream::connect_timeout(&target, UPSTREAM_CONNECT_TIMEOUT) {
            Ok(s) => s,
            Err(e) => {
                // The client sees its connection closed, as if refused late.
                sh.note(&format!("#{id}: cannot connect to {target}: {e}"));
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        };
        // Nagle would hold small writes back until an ACK comes, adding its
        // own delay on top of ours.
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        sh.note(&format!("#{id}: connected to {target}"));
        let pair = Arc::new(Pair { id, client, server });
        {
            let mut conns = sh.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.retain(|w| w.strong_count() > 0);
            conns.push(Arc::downgrade(&pair));
        }
        let (to_server, to_server_rx) = mpsc::channel();
        let (to_client, to_client_rx) = mpsc::channel();
        // Each writer also gets a sender into the opposite queue: a write
        // that fails tells of a reset at its destination side, which must
        // travel back behind what that side sent before it.
        let lanes = [
            (
                Dir::ToServer,
                to_server.clone(),
                to_server_rx,
                to_client.clone(),
            ),
            (Dir::ToClient, to_client, to_client_rx, to_server),
        ];
        for (dir, tx, rx, back) in lanes {
            let (p, s) = (Arc::clone(&pair), Arc::clone(&sh));
            thread::spawn(move || read_side(&p, dir, &tx, &s));
            let (p, s) = (Arc::clone(&pair), Arc::clone(&sh));
            thread::spawn(move || write_side(&p, dir, &rx, back, delay, &s));
        }
    }
}

/// Reads from the source side of `dir` and queues every chunk, then the way
/// the stream ended, each stamped with its arrival time.
fn read_side(p: &Pair, dir: Dir, tx: &Sender<Event>, sh: &Shared) {
    let (mut src, _) = dir.ends(p);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let ev = match src.read(&mut buf) {
            Ok(0) => Event::Eof(Instant::now()),
            Ok(n) => Event::Data(Instant::now(), buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                sh.resets.fetch_add(1, Ordering::SeqCst);
                Event::Error(Instant::now(), e)
            }
        };
        let last = !matches!(ev, Event::Data(..));
        if tx.send(ev).is_err() || last || sh.stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Forwards queued chunks to the destination side of `dir`, each at its
/// arrival time plus `delay`. `back` queues toward the source side.
///
/// The queue closes when the reader is done and the other writer dropped its
/// `back`; a writer drops its own `back` once its direction ended (after the
/// half-close it will write nothing more, so it has no reset to report), so
/// the two never wait on each other.
fn write_side(
    p: &Pair,
    dir: Dir,
    rx: &Receiver<Event>,
    back: Sender<Event>,
    delay: Duration,
    sh: &Shared,
) {
    let (_, mut dst) = dir.ends(p);
    let mut back = Some(back);
    let mut forwarded: u64 = 0;
    let mut half_closed = false;
    let wait_until = |at: Instant| {
        let due = at + delay;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
    };
    let note = |what: String| sh.note(&format!("#{} {}: {what}", p.id, dir.name()));
    while let Ok(ev) = rx.recv() {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        match ev {
            Event::Data(_, chunk) if half_closed => {
                note(format!("{} bytes after EOF dropped", chunk.len()));
            }
            Event::Data(at, chunk) => {
                wait_until(at);
                if let Err(e) = dst.write_all(&chunk) {
                    note(format!(
                        "write failed after {forwarded} bytes ({e}): reset at the destination"
                    ));
                    sh.resets.fetch_add(1, Ordering::SeqCst);
                    let now = Instant::now();
                    let queued = back
                        .take()
                        .is_some_and(|b| b.send(Event::Error(now, e)).is_ok());
                    if !queued {
                        // Nothing travels the other way any more: the reset
                        // goes alone, one delay from now.
                        wait_until(now);
                        p.shutdown_both();
                    }
                    return;
                }
                forwarded += chunk.len() as u64;
            }
            Event::Eof(_) if half_closed => {}
            Event::Eof(at) => {
                wait_until(at);
                note(format!("EOF after {forwarded} bytes: half-close"));
                let _ = dst.shutdown(Shutdown::Write);
                half_closed = true;
                back = None;
            }
            Event::Error(at, e) => {
                wait_until(at);
                note(format!(
                    "reset at the source after {forwarded} bytes ({e}): closing both"
                ));
                p.shutdown_both();
                return;
            }
        }
    }
}
