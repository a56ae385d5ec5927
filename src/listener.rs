//! [`Listener`]: a TLS server with one thread per connection, each running the program's
//! handler on a [`Stream`], at most [`ServerConfig::with_max_connections`] at once, and a graceful
//! [`shutdown`](Listener::shutdown) that says goodbye to every client.
//!
//! # Threads, and who waits on whom
//!
//! - **The accept thread** waits for a free slot (a condition variable), then blocks in
//!   `accept`. The shutdown wakes it by shutting the listening socket down (on Linux a
//!   blocked `accept` then fails at once), never by polling.
//! - **A connection thread** per client runs the handshake (bounded by the handshake
//!   timeout), then the handler, then the close; its slot is freed when the close ends.
//! - **The shutdown** runs on the caller's thread: it stops the accept thread, lets the
//!   handshakes in progress finish (their threads close them), cutting off at the drain
//!   timeout those that do not, and closes every open connection at once, each on a short-lived
//!   closer thread, since a close waits up to the close timeout for the client. A handler
//!   blocked in `read` gets `Ok(0)` when its connection's close ends. The shutdown waits for
//!   the connection threads up to the close timeout plus a grace, and never longer.

mod connections;
mod shutdown;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::connection_report::ConnectionReport;
use crate::error::Operation;
use crate::report::CloseReport;
use crate::server_config::ServerConfig;
use crate::{Error, Stream};

/// What a [`Listener`] runs for each connection, on that connection's thread, after the
/// handshake. The connection is closed when it returns (an error it returns is logged and
/// reported, not sent to the client).
pub type Handler = dyn Fn(&Stream) -> io::Result<()> + Send + Sync;

/// How long past the close timeout a shutdown waits for handlers to return once their
/// connections are closed: their reads already return `Ok(0)`, so this is scheduling.
const HANDLER_GRACE: Duration = Duration::from_millis(500);
/// Stack of the threads that close connections during a shutdown: the close's own paths.
const CLOSER_STACK: usize = 64 * 1024;
/// Pause after `accept` failed for want of resources (descriptors, memory), so a full
/// process table is not a busy loop; a shutdown ends it early.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A TLS server: accepts connections on a thread of its own, runs the handler for each on a
/// thread per connection, and [`shutdown`](Self::shutdown) drains them all with close_notify.
///
/// - **At most [`ServerConfig::with_max_connections`] at once**, handshakes included. The next
///   client is not accepted until a connection ends: its TCP connect succeeds (the kernel's
///   accept queue holds it) and its handshake waits. Nothing is spent on it meanwhile.
/// - **The handshake is bounded** by [`ServerConfig::with_handshake_timeout`], so a client that
///   stalls in it (or sends nothing) holds its slot that long at most.
/// - **The handler** gets the `Stream` by reference; share it with
///   [`Stream::try_clone`] for a second thread. When it returns the connection is closed
///   (with close_notify, bounded by the close timeout).
/// - **[`shutdown`](Self::shutdown)**, from any thread (a signal handler's thread, say):
///   stops accepting at once, closes every open connection at the same time (and each
///   handshake in progress once it finishes; one that has not by the drain timeout is cut
///   off): what handlers wrote goes out, then close_notify, then it
///   waits for each client's answer, all within the close timeout (the drain timeout). A
///   handler's blocked `read` then returns `Ok(0)` and its writes fail. It returns one
///   [`ConnectionReport`] per connection that was open. Dropping the `Listener` shuts it
///   down the same way.
///
/// Memory and threads are bounded: one thread per connection (stack
/// [`ServerConfig::with_thread_stack_size`]) and the accept thread; during a shutdown, one more
/// short-lived thread per open connection. Connections that end before the shutdown are
/// reported through [`ServerConfig::with_on_report`] (as every connection is) and logged; nothing
/// is kept of them.
///
/// ```no_run
/// use std::io::{BufRead, BufReader, Write};
/// use gracetls::{Listener, ServerConfig};
///
/// let config = ServerConfig::new().with_identity("cert.pem", "key.pem");
/// // An echo server, a line at a time.
/// let listener = Listener::bind("127.0.0.1:4433", &config, |stream| {
///     let mut lines = BufReader::new(stream);
///     let mut line = String::new();
///     // Ok(0): the client's close_notify, or the shutdown's close.
///     while lines.read_line(&mut line)? > 0 {
///         (&*stream).write_all(line.as_bytes())?;
///         line.clear();
///     }
///     Ok(())
/// })?;
/// println!("listening on {}", listener.local_addr());
/// // ... later, from any thread:
/// for report in listener.shutdown() {
///     println!("{}: {}", report.peer_addr(), report.outcome().name());
/// }
/// # Ok::<(), gracetls::Error>(())
/// ```
pub struct Listener {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accepting: Mutex<Option<JoinHandle<()>>>,
    /// The first shutdown's reports: a later call (or `Drop`) returns them again.
    shut: Mutex<Option<Vec<ConnectionReport>>>,
}

struct Shared {
    config: ServerConfig,
    local_addr: SocketAddr,
    /// A second descriptor of the listening socket, to wake the accept thread with; dropped
    /// with the accept thread's own at the shutdown, so the port is free again after it.
    waker: Mutex<Option<TcpListener>>,
    handler: Box<Handler>,
    stopping: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    next_id: u64,
    slots: HashMap<u64, Slot>,
    /// Reports of the connections the shutdown is draining, as they end.
    drained: Vec<ConnectionReport>,
}

struct Slot {
    peer: SocketAddr,
    accepted: Instant,
    phase: Phase,
    /// The shutdown counts on this connection's report.
    draining: bool,
    /// The close's report, once a closer made it (the handler may still be running).
    closed: Option<CloseReport>,
    /// The shutdown reported it already, its handler still running.
    reported: bool,
    /// The shutdown cut its handshake off at the drain timeout.
    cut: bool,
}

enum Phase {
    /// A second descriptor of the socket, so that a shutdown can cut the handshake off.
    Handshake(Option<TcpStream>),
    Open(Stream),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here is left half-updated by a panic in a way that matters more than
    // finishing the shutdown, so a poisoned lock is taken as it is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Listener {
    /// Binds `addr` (`127.0.0.1:4433`, `[::]:443`; port 0 picks a free one, see
    /// [`local_addr`](Self::local_addr)) and starts accepting, running `handler` for each
    /// connection. The certificate and key are read and checked first
    /// ([`ServerConfig::check`]), so a bad file is an error here, before any client.
    pub fn bind<F>(
        addr: impl ToSocketAddrs,
        config: &ServerConfig,
        handler: F,
    ) -> Result<Listener, Error>
    where
        F: Fn(&Stream) -> io::Result<()> + Send + Sync + 'static,
    {
        config.check()?;
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| Error::Io {
                target: "the given address".into(),
                op: Operation::Listen,
                source: e,
            })?
            .collect();
        let socket = TcpListener::bind(&addrs[..]).map_err(|e| Error::Io {
            target: addrs
                .first()
                .map_or_else(|| "no address".into(), SocketAddr::to_string),
            op: Operation::Listen,
            source: e,
        })?;
        Listener::from_tcp(socket, config, handler)
    }

    /// Starts accepting on a socket the program already listens on (bound by a service
    /// manager, say), running `handler` for each connection.
    pub fn from_tcp<F>(
        socket: TcpListener,
        config: &ServerConfig,
        handler: F,
    ) -> Result<Listener, Error>
    where
        F: Fn(&Stream) -> io::Result<()> + Send + Sync + 'static,
    {
        config.check()?;
        let local_addr = socket.local_addr().map_err(|e| Error::Io {
            target: "the given socket".into(),
            op: Operation::Listen,
            source: e,
        })?;
        let waker = socket.try_clone().map_err(|e| Error::Io {
            target: local_addr.to_string(),
            op: Operation::Listen,
            source: e,
        })?;
        let shared = Arc::new(Shared {
            config: config.clone(),
            local_addr,
            waker: Mutex::new(Some(waker)),
            handler: Box::new(handler),
            stopping: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let accepting = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                // Its port in its name, for `top -H` and the like (15 bytes at most show).
                .name(format!("accept :{}", local_addr.port()))
                .stack_size(CLOSER_STACK)
                .spawn(move || shared.accept_loop(&socket))
                .map_err(|e| Error::Thread {
                    what: "the listener's accept thread",
                    source: e,
                })?
        };
        info!("listening on {local_addr}");
        Ok(Listener {
            shared,
            local_addr,
            accepting: Mutex::new(Some(accepting)),
            shut: Mutex::new(None),
        })
    }

    /// The address it listens on (with the port the system chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many connections are open or in their handshake now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.state).slots.len()
    }

    /// Stops accepting at once and closes every open connection gracefully, all at the same
    /// time: what was written goes out, then close_notify; each client's close_notify (or,
    /// in [`CloseMode::Fast`](crate::CloseMode::Fast), its FIN) is waited for up to the
    /// close timeout, the drain timeout; what has not answered by then is closed hard.
    /// A handshake in progress is closed the same way once it finishes, or cut off at the
    /// drain timeout (a TLS 1.3 client whose side of the handshake is done would read a bare
    /// FIN as a truncation). Handlers see their reads return `Ok(0)` and
    /// their writes fail, and have a short grace to return.
    ///
    /// Returns one report per connection that was open or in its handshake when it began.
    /// Callable from any thread; a second call waits for the first and returns the same
    /// reports. It returns within the close timeout plus about a second, whatever the
    /// clients and the handlers do.
    pub fn shutdown(&self) -> Vec<ConnectionReport> {
        let mut shut = lock(&self.shut);
        if let Some(reports) = &*shut {
            return reports.clone();
        }
        let reports = self.shared.drain(&self.accepting);
        *shut = Some(reports.clone());
        reports
    }
}

impl Drop for Listener {
    /// Shuts down as [`shutdown`](Listener::shutdown) does, if nobody did.
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .field("open_connections", &self.open_connections())
            .finish_non_exhaustive()
    }
}
