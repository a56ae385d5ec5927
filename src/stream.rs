//! [`Stream`]: a TLS connection shaped like `TcpStream`: `Read` and `Write` on `&Stream`, so
//! one thread reads while others write, and a graceful [`close`](Stream::close) callable from
//! any thread, also while another is blocked reading. It has no thread of its own.
//!
//! TLS state sits behind one lock and runs over the in-memory transport; **no thread holds that
//! lock across a socket call**. A reader reads the socket with no lock but the read side's own
//! (one socket reader at a time), then feeds and decrypts under the TLS lock straight into the
//! caller's buffer. A writer encrypts under the TLS lock and appends the ciphertext to the
//! [`Outbound`] queue before releasing it, then writes the queue after. Whatever TLS writes
//! while decrypting (a TLS 1.3 KeyUpdate reply, a TLS 1.2 renegotiation message) joins the
//! same queue, so it reaches the wire in the order TLS made it.
//!
//! # Who may wait on whom
//!
//! - **The TLS lock** (`tls`) is held for in-memory work only (encrypt, decrypt, append to
//!   the queue); nobody waits on anything while holding it. Order: `tls`, then the queue's
//!   own lock, never the other way.
//! - **The read side** (`reading`) is held by the one thread reading the socket (a reader; a
//!   writer whose handshake needs the server while nobody reads; the waiting close; the
//!   drain at the end of the close) across a blocking `recv`. Other readers queue on it, as
//!   they would on the socket. Writers never wait for it (`try_lock`, then the progress
//!   counter). The close waits for it only until the close timeout (plus a short grace for a
//!   reader its shutdown just woke).
//! - **The flusher** (one thread at a time writes the outbound queue) blocks in `send`.
//!   Writers wait for it: their own bytes are in its batch or behind it. The close waits for
//!   it until its deadline, then shuts the socket. A **reader never waits for it and never
//!   blocks in `send`**: what TLS answers while decrypting is offered to the socket with a
//!   non-blocking send, or left to the flusher, which writes until the queue is empty before
//!   it stops being the flusher. What nobody is writing (an answer the full socket did not
//!   take, what a timed-out write left) the reader offers again every few milliseconds while
//!   it waits in `recv`. So a server that is blocked writing to us until we read is never
//!   waited on by our reader (the KeyUpdate deadlock), and a handshake message the server
//!   waits for is never left in the queue with nobody to write it (the renegotiation stall).
//!   The one exception is deliberate back-pressure: past 1 MiB of unwritten answers (a
//!   server asking for answers and never reading them) the reader waits for the socket.
//! - **The progress counter** (`progress`): a writer whose encryption waits for the server's
//!   handshake message waits for the read side to move; every socket read, every end and the
//!   start of the close move it.
//! - **The close** (`closing`): a second `close` waits for the first, which is bounded by
//!   the close timeout.

mod close;
mod read;
mod socket;
mod write;

use read::Step;

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use native_tls::TlsStream;

use crate::Error;
use crate::certificate::Certificate;
use crate::config::{CloseMode, Config, OnClose};
use crate::connect::{connect_tcp, start_tls};
use crate::diagnose::Redial;
use crate::outbound::Outbound;
use crate::read_size::ReadSize;
use crate::report::CloseReport;
use crate::session::Session;
use crate::starttls::Starttls;
use crate::transport::MemoryTransport;

/// A TLS client connection with `std::io` manners.
///
/// - [`Read`](io::Read) and [`Write`](io::Write) are implemented for `Stream` and for `&Stream` (as for
///   `&TcpStream`): share it with [`try_clone`](Stream::try_clone), an `Arc` or a scoped
///   thread, and one thread can block in `read` while others write. (`Arc<Stream>` itself
///   cannot be `Read` or `Write`: neither the traits nor `Arc` belong to this crate. Read
///   through `&*arc`, or give the thread a handle of its own with `try_clone`.)
/// - `TcpStream`'s manners: [`set_read_timeout`](Stream::set_read_timeout),
///   [`set_write_timeout`](Stream::set_write_timeout), [`peer_addr`](Stream::peer_addr),
///   [`local_addr`](Stream::local_addr), [`set_nodelay`](Stream::set_nodelay) (on by
///   default), `AsFd`/`AsRawFd` for polling, `write_vectored`.
/// - `read` returns `Ok(0)` after the server's close_notify or after our own close, and an
///   error of kind [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) when the server's TCP
///   stream ended without close_notify: possibly truncated data.
/// - [`close`](Stream::close) sends close_notify from any thread, also while another thread
///   is blocked in `read` (which then returns `Ok(0)`) or `write` (which returns an error),
///   bounded by the close timeout; every call returns the same report. Dropping the last
///   handle closes too.
/// - [`shutdown_write`](Stream::shutdown_write) is the half-close: close_notify now, the
///   read side stays open.
/// - [`session`](Stream::session): version, cipher suite, ALPN, certificate, addresses.
///
/// Each `write` sends at once, like `TcpStream`: writes from threads that come while the
/// socket is busy go out together, and `write!`/`writeln!` make one record per call. A single
/// thread making many tiny writes sends a record each; wrap it in a `BufWriter` then.
///
/// ```no_run
/// use std::io::{BufRead, BufReader, Write};
/// use std::sync::Arc;
/// use gracetls::{Config, Stream};
///
/// let stream = Arc::new(Stream::connect(&Config::new().ca_file("ca.pem"), "localhost:4433")?);
/// let reader = {
///     let stream = Arc::clone(&stream);
///     std::thread::spawn(move || {
///         for line in BufReader::new(&*stream).lines() {
///             println!("{}", line?);
///         }
///         Ok::<(), std::io::Error>(()) // Ok(0): the server's close_notify, or our close
///     })
/// };
/// writeln!(&*stream, "hello")?;
/// let report = stream.close(); // from this thread, while the reader is blocked
/// assert!(report.close_notify_sent());
/// reader.join().expect("reader thread")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Stream {
    inner: Arc<Inner>,
}

/// The connection's state, shared by every handle [`Stream::try_clone`] made; dropping the
/// last handle drops it, which closes.
pub(crate) struct Inner {
    target: String,
    /// Shared with the transport, which receives large records from it (never waiting).
    socket: Arc<TcpStream>,
    tls: Mutex<TlsStream<MemoryTransport>>,
    /// Held by the one thread reading the socket, with what it reads into.
    reading: Mutex<ReadBuffer>,
    out: Outbound,
    /// Bumped whenever the read side makes progress (ciphertext fed, an end seen) or the
    /// close starts: writers waiting for a handshake message and a waiting close watch it.
    progress: Mutex<u64>,
    progressed: Condvar,
    flags: Flags,
    counters: Counters,
    /// The first error's message and, if the server sent one, its alert.
    first_error: Mutex<Option<(String, Option<String>)>>,
    closing: Mutex<CloseState>,
    closed: Condvar,
    close_timeout: Duration,
    close_mode: CloseMode,
    /// [`Config::on_close`], called once with the report of the first close.
    on_close: Mutex<Option<OnClose>>,
    session: Session,
}

#[derive(Default)]
struct Flags {
    /// Set before our own `shutdown(Read)`, so a read of 0 is told from the server's FIN.
    stopping: AtomicBool,
    /// No more application data may be encrypted: close_notify is coming or sent.
    write_closed: AtomicBool,
    /// Where our close_notify ends in the outbound queue, once it is made (0 before): a
    /// server may answer it before our write returns, and a second closing thread (the half
    /// close, then the close) waits for that same write rather than making another.
    close_notify_mark: AtomicU64,
    close_notify_sent: AtomicBool,
    close_notify_received: AtomicBool,
    /// The server's TCP stream ended without close_notify.
    peer_eof: AtomicBool,
    /// The server's TCP stream ended, whole, after a fast close queued our close_notify:
    /// its answer, not a truncation.
    peer_fin: AtomicBool,
    /// A fast close has begun: from its close_notify on, the server's FIN is its answer (a
    /// half-close alone waits for the server's close_notify).
    fast_closing: AtomicBool,
    /// The TLS session hit a fatal error: no close_notify can follow, and an end TLS reports
    /// later is not the server's close_notify.
    tls_failed: AtomicBool,
}

struct Counters {
    bytes_in: AtomicU64,
    bytes_dropped: AtomicU64,
    born: Instant,
    /// Nanoseconds from `born` to the last application data read or written.
    last_data: AtomicU64,
}

struct ReadBuffer {
    /// The large socket read buffer while data flows; empty otherwise (small reads go
    /// through the stack, so an idle connection holds none).
    buf: Vec<u8>,
    size: ReadSize,
    /// Plaintext a waiting close read while no other thread was reading, kept for the next
    /// `read` (`stash[stash_pos..]`): a close never takes data from a reader.
    stash: Vec<u8>,
    stash_pos: usize,
    /// What TLS said after records already delivered in the same `read` (an end or an
    /// error): the next `read` returns it.
    deferred: Option<Step>,
}

enum CloseState {
    Open,
    Closing,
    Closed(CloseReport),
}

/// The TCP connection to `target`, direct or through the configured proxy's tunnel, and how a
/// certificate diagnosis reaches the same server.
fn open<'a>(
    config: &'a Config,
    target: &'a str,
    default_port: u16,
    deadline: Instant,
) -> Result<(crate::connect::Tcp, Option<Redial<'a>>), Error> {
    Ok(match config.get_proxy() {
        None => (
            connect_tcp(config, target, default_port, deadline)?,
            Some(Redial::Same),
        ),
        Some(proxy) => (
            crate::proxy::tunnel(config, proxy, target, default_port, deadline)?,
            Some(Redial::Proxied {
                config,
                proxy,
                target,
                default_port,
            }),
        ),
    })
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("target", &self.inner.target)
            .field("session", &self.inner.session)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these half-updated in a way that matters more than
    // closing the connection, so a poisoned lock is taken as it is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stream {
    /// Connects to `target` (`HOST[:PORT]`, port 443 by default; also `https://HOST[:PORT]`),
    /// trying every resolved address in turn, and completes the TLS handshake, all within
    /// the connect timeout. With [`Config::proxy`] the connection goes to the proxy, which
    /// opens a tunnel to `target`; TLS runs through it with the target.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gracetls::{Config, Stream};
    ///
    /// // Nothing listens on port 1 of the loopback.
    /// let config = Config::new().connect_timeout(Duration::from_secs(2));
    /// let err = Stream::connect(&config, "127.0.0.1:1").unwrap_err();
    /// assert_eq!(err.to_string(), "cannot connect to 127.0.0.1:1");
    /// let cause = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<std::io::Error>());
    /// assert_eq!(cause.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
    /// ```
    pub fn connect(config: &Config, target: &str) -> Result<Stream, Error> {
        let started = Instant::now();
        let deadline = started + config.get_connect_timeout();
        let (mut tcp, proxied) = open(config, target, 443, deadline)?;
        let name = config.get_servername().unwrap_or(&tcp.host).to_string();
        let tls = start_tls(
            config,
            &mut tcp.socket,
            &name,
            &tcp.target,
            deadline,
            proxied,
        )?;
        Ok(Stream::new(config, tcp.target, tcp.socket, tls, started))
    }

    /// Connects to `target` in clear, upgrades the connection with `starttls` (see
    /// [`starttls`](crate::starttls)), then completes the TLS handshake on the same socket,
    /// all within the connect timeout. A target without a port gets the protocol's
    /// ([`Protocol::default_port`](crate::starttls::Protocol::default_port)). The clear-text
    /// exchange is logged at `info`, a line per message.
    ///
    /// A server that does not offer the upgrade, refuses it or does not answer in time is
    /// [`Error::Starttls`], naming the step and what the server said.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use gracetls::starttls::{Protocol, Starttls};
    /// use gracetls::{Config, Stream};
    ///
    /// let starttls = Starttls::new(Protocol::Smtp).client_name("client.example.org");
    /// let stream = Stream::connect_starttls(&Config::new(), "mail.example.com:587", &starttls)?;
    /// (&stream).write_all(b"EHLO client.example.org\r\n")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_starttls(
        config: &Config,
        target: &str,
        starttls: &Starttls,
    ) -> Result<Stream, Error> {
        let started = Instant::now();
        let timeout = config.get_connect_timeout();
        let deadline = started + timeout;
        let default_port = starttls.protocol().default_port();
        let (mut tcp, _) = open(config, target, default_port, deadline)?;
        let name = config.get_servername().unwrap_or(&tcp.host).to_string();
        starttls.negotiate_until(&tcp.socket, &name, &tcp.target, deadline, timeout)?;
        let tls = start_tls(
            config,
            &mut tcp.socket,
            &name,
            &tcp.target,
            deadline,
            Some(Redial::Starttls {
                config,
                target,
                starttls,
                name: &name,
            }),
        )?;
        Ok(Stream::new(config, tcp.target, tcp.socket, tls, started))
    }

    /// Starts TLS on a connection the caller already has (after a STARTTLS exchange, through
    /// a proxy tunnel, a socket from elsewhere), checking the certificate against
    /// `server_name` (unless [`Config::servername`] says otherwise), within the connect
    /// timeout. Nothing the caller read from the socket may still be unread TLS: the
    /// handshake starts with our ClientHello. Read and write timeouts the caller set on the
    /// socket hold again after the handshake: a `read` that times out fails with `WouldBlock`
    /// or `TimedOut`, and the connection stays usable. So does a `write`: one whose data was
    /// encrypted returns `Ok(n)` even if the socket took only part of it in time (the rest
    /// goes first with the next write or the close); one that could not even send what an
    /// earlier write left fails with the timeout having taken nothing.
    ///
    /// A certificate that fails verification is reported with OpenSSL's reason alone: the
    /// facts (dates, names, the missing issuer) take a second connection, and only
    /// [`connect`](Stream::connect) and [`connect_starttls`](Stream::connect_starttls) know
    /// how to reach the server again (a ClientHello sent to the clear part of a protocol
    /// would be garbage to its server).
    pub fn from_tcp(
        config: &Config,
        socket: TcpStream,
        server_name: &str,
    ) -> Result<Stream, Error> {
        let started = Instant::now();
        let deadline = started + config.get_connect_timeout();
        let mut socket = socket;
        let timeouts = (socket.read_timeout(), socket.write_timeout());
        let target = socket.peer_addr().map_or_else(
            |_| server_name.to_string(),
            |addr| format!("{server_name} ({addr})"),
        );
        let name = config.get_servername().unwrap_or(server_name).to_string();
        let tls = start_tls(config, &mut socket, &name, &target, deadline, None)?;
        if let (Ok(read), Ok(write)) = timeouts {
            let _ = socket.set_read_timeout(read);
            let _ = socket.set_write_timeout(write);
        }
        Ok(Stream::new(config, target, socket, tls, started))
    }

    fn new(
        config: &Config,
        target: String,
        socket: TcpStream,
        mut tls: TlsStream<MemoryTransport>,
        started: Instant,
    ) -> Stream {
        let (version, cipher_suite) = tls.get_ref().server_hello().unzip();
        let session = Session {
            version,
            cipher_suite,
            alpn: tls.negotiated_alpn().ok().flatten(),
            peer_certificate: tls
                .peer_certificate()
                .ok()
                .flatten()
                .and_then(|c| c.to_der().ok())
                .and_then(Certificate::from_der),
            peer_addr: socket.peer_addr().ok(),
            local_addr: socket.local_addr().ok(),
        };
        // One line says how the connection was made: where, how fast, and what was agreed.
        log::info!(
            "connected to {target} ({}) in {} ms: {session}",
            session
                .peer_addr
                .map_or_else(|| "?".into(), |a| a.to_string()),
            started.elapsed().as_millis()
        );
        if let Some(timeout) = config.get_read_timeout() {
            let _ = socket.set_read_timeout(Some(timeout));
        }
        if let Some(timeout) = config.get_write_timeout() {
            let _ = socket.set_write_timeout(Some(timeout));
        }
        let socket = Arc::new(socket);
        tls.get_mut().attach_socket(Arc::clone(&socket));
        let inner = Inner {
            target,
            socket,
            tls: Mutex::new(tls),
            reading: Mutex::new(ReadBuffer {
                buf: Vec::new(),
                size: ReadSize::default(),
                stash: Vec::new(),
                stash_pos: 0,
                deferred: None,
            }),
            out: Outbound::default(),
            progress: Mutex::new(0),
            progressed: Condvar::new(),
            flags: Flags::default(),
            counters: Counters {
                bytes_in: AtomicU64::new(0),
                bytes_dropped: AtomicU64::new(0),
                born: Instant::now(),
                last_data: AtomicU64::new(0),
            },
            first_error: Mutex::new(None),
            closing: Mutex::new(CloseState::Open),
            closed: Condvar::new(),
            close_timeout: config.get_close_timeout(),
            close_mode: config.get_close_mode(),
            on_close: Mutex::new(config.on_close_callback()),
            session,
        };
        Stream {
            inner: Arc::new(inner),
        }
    }

    /// The server as messages name it: `host:port`.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// What the handshake negotiated, and with whom.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Whether the server's close_notify was read: after `read` returned `Ok(0)`, this tells
    /// the server's goodbye from our own close.
    pub fn close_notify_received(&self) -> bool {
        self.inner
            .flags
            .close_notify_received
            .load(Ordering::SeqCst)
    }

    /// How long no application data has moved either way: since the last plaintext was read
    /// or handed to the socket. Zero while ciphertext waits to be written, so a server slow
    /// to read does not count as quiet.
    pub fn idle_time(&self) -> Duration {
        if self.inner.out.pending() > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_nanos(self.inner.counters.last_data.load(Ordering::Relaxed));
        self.inner.counters.born.elapsed().saturating_sub(last)
    }
}

impl Inner {
    /// Closes as [`Stream::close`] does, and hands the first report to the program's
    /// callback, if it gave one.
    fn close_and_report(&self) -> CloseReport {
        let report = self.close();
        // Taken out of the lock first: a callback may close again (it gets the same report).
        let callback = lock(&self.on_close).take();
        if let Some(OnClose(callback)) = callback {
            callback(&report);
        }
        report
    }

    fn close_notify_received(&self) -> bool {
        self.flags.close_notify_received.load(Ordering::SeqCst)
    }

    fn tls(&self) -> MutexGuard<'_, TlsStream<MemoryTransport>> {
        lock(&self.tls)
    }

    /// Counts `n` bytes (sent bytes are counted by the outbound queue as it writes them) and
    /// remembers when data last moved.
    fn note_data(&self, counter: Option<&AtomicU64>, n: usize) {
        if let Some(counter) = counter {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        let nanos = u64::try_from(self.counters.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.last_data.fetch_max(nanos, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.flags.stopping.load(Ordering::SeqCst)
    }

    /// Wakes whoever waits on the read side's progress.
    fn progressed(&self) {
        *lock(&self.progress) += 1;
        self.progressed.notify_all();
    }

    fn record_error(&self, error: &Error) {
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some((crate::unversioned::with_causes(error), error.alert()));
        }
    }

    /// Moves what TLS wrote into the outbound queue; call with the TLS lock held, so the
    /// queue keeps TLS's order. Returns the mark to flush to, if anything was queued.
    fn queue_tls_output(&self, tls: &mut TlsStream<MemoryTransport>) -> Option<u64> {
        self.queue_tls_data(tls, 0)
    }

    /// Like [`queue_tls_output`](Self::queue_tls_output), for ciphertext that carries
    /// `plain` bytes of application data.
    fn queue_tls_data(&self, tls: &mut TlsStream<MemoryTransport>, plain: usize) -> Option<u64> {
        if !tls.get_ref().has_outbound() {
            return None;
        }
        // The transport's buffer goes to the queue and the queue's empty one comes back: no
        // copy and no allocation per write while data flows.
        Some(self.out.push_from(tls.get_mut().outbound_buffer(), plain))
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            target: self.target.clone(),
            op,
            source,
        }
    }

    fn closed_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, Error::Closed)
    }
}

impl Drop for Inner {
    /// Closes gracefully with the configured mode, bounded by the close timeout, when the
    /// last handle goes.
    fn drop(&mut self) {
        self.close_and_report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send_sync() {
        fn is<T: Send + Sync>() {}
        is::<Stream>();
    }
}
