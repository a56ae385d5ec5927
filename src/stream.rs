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
mod drain;
mod inner;
mod read;
mod socket;
mod write;

use inner::{CloseState, Counters, Flags, Inner, lock};
use read::Step;

use std::fmt;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::Error;
use crate::config::Config;
use crate::dial::{self, Dialed};
use crate::outbound::Outbound;
use crate::read_size::ReadSize;
use crate::session::Session;
use crate::starttls::Starttls;

/// A TLS client connection with `std::io` manners.
///
/// - [`Read`](std::io::Read) and [`Write`](std::io::Write) are implemented for `Stream` and for `&Stream` (as for
///   `&TcpStream`): share it with [`try_clone`](Stream::try_clone), an `Arc` or a scoped
///   thread, and one thread can block in `read` while others write. (`Arc<Stream>` itself
///   cannot be `Read` or `Write`: neither the traits nor `Arc` belong to this crate. Read
///   through `&*arc`, or give the thread a handle of its own with `try_clone`.)
/// - `TcpStream`'s manners: [`set_read_timeout`](Stream::set_read_timeout),
///   [`set_write_timeout`](Stream::set_write_timeout), [`peer_addr`](Stream::peer_addr),
///   [`local_addr`](Stream::local_addr), [`set_nodelay`](Stream::set_nodelay) (on by
///   default), `AsFd`/`AsRawFd` for polling, `write_vectored`.
/// - `read` returns `Ok(0)` after the server's close_notify or after our own close, and an
///   error of kind [`UnexpectedEof`](std::io::ErrorKind::UnexpectedEof) when the server's TCP
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
/// let stream = Arc::new(Stream::connect(&Config::new().with_ca_file("ca.pem"), "localhost:4433")?);
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

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("target", &self.inner.target)
            .field("session", &self.inner.session)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Connects to `target` (`HOST[:PORT]`, port 443 by default; also `https://HOST[:PORT]`),
    /// trying every resolved address in turn, and completes the TLS handshake, all within
    /// the connect timeout. With [`Config::with_proxy`] the connection goes to the proxy, which
    /// opens a tunnel to `target`; TLS runs through it with the target.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gracetls::{Config, Stream};
    ///
    /// // Nothing listens on port 1 of the loopback.
    /// let config = Config::new().with_connect_timeout(Duration::from_secs(2));
    /// let err = Stream::connect(&config, "127.0.0.1:1").unwrap_err();
    /// assert_eq!(err.to_string(), "cannot connect to 127.0.0.1:1");
    /// let cause = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<std::io::Error>());
    /// assert_eq!(cause.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
    /// ```
    pub fn connect(config: &Config, target: &str) -> Result<Stream, Error> {
        dial::connect(config, target).map(|dialed| Stream::new(config, dialed))
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
    /// let starttls = Starttls::new(Protocol::Smtp).with_client_name("client.example.org");
    /// let stream = Stream::connect_starttls(&Config::new(), "mail.example.com:587", &starttls)?;
    /// (&stream).write_all(b"EHLO client.example.org\r\n")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_starttls(
        config: &Config,
        target: &str,
        starttls: &Starttls,
    ) -> Result<Stream, Error> {
        dial::connect_starttls(config, target, starttls).map(|dialed| Stream::new(config, dialed))
    }

    /// Starts TLS on a connection the caller already has (after a STARTTLS exchange, through
    /// a proxy tunnel, a socket from elsewhere), checking the certificate against
    /// `server_name` (unless [`Config::with_servername`] says otherwise), within the connect
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
        dial::from_tcp(config, socket, server_name).map(|dialed| Stream::new(config, dialed))
    }

    pub(crate) fn new(config: &Config, dialed: Dialed) -> Stream {
        let Dialed {
            target,
            socket,
            mut tls,
            session,
        } = dialed;
        if let Some(timeout) = config.read_timeout() {
            let _ = socket.set_read_timeout(Some(timeout));
        }
        if let Some(timeout) = config.write_timeout() {
            let _ = socket.set_write_timeout(Some(timeout));
        }
        let socket = Arc::new(socket);
        let out = Arc::new(Outbound::default());
        tls.get_mut()
            .attach_socket(Arc::clone(&socket), Arc::clone(&out));
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
            out,
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
            close_timeout: config.close_timeout(),
            close_mode: config.close_mode(),
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

    /// Blocks until a `read` would find something without waiting for the socket, for a
    /// reader whose last read did not fill its buffer: it then waits holding no buffer.
    pub(crate) fn wait_readable(&self) {
        self.inner.wait_readable();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send_sync() {
        fn is<T: Send + Sync>() {}
        is::<Stream>();
    }
}
