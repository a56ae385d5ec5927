//! # gracetls
//!
//! A blocking TLS client whose connections always end with a proper TLS goodbye:
//! close_notify on the wire, no error in the server's log, no byte lost, and a
//! [`CloseReport`] that says exactly how the connection ended. For synchronous programs and
//! platforms without an async runtime.
//!
//! [`Stream`] speaks `std::io` the way `TcpStream` does: `Read` and `Write` on `&Stream`, so
//! one thread reads while others write, and [`Stream::close`] works from any thread, also
//! while another is blocked reading:
//!
//! ```no_run
//! use std::io::{BufRead, BufReader, Write};
//! use std::sync::Arc;
//! use gracetls::{Config, Stream};
//!
//! let config = Config::new().ca_file("ca.pem");
//! let stream = Arc::new(Stream::connect(&config, "localhost:4433")?);
//! let reader = {
//!     let stream = Arc::clone(&stream);
//!     std::thread::spawn(move || {
//!         // Ends with Ok(0): the server's close_notify, or our own close below.
//!         for line in BufReader::new(&*stream).lines() {
//!             println!("{}", line?);
//!         }
//!         Ok::<(), std::io::Error>(())
//!     })
//! };
//! writeln!(&*stream, "hello")?;
//! let report = stream.close(); // close_notify, bounded by the close timeout
//! assert!(report.close_notify_sent);
//! reader.join().expect("reader thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Stream::connect_starttls`] connects in clear and upgrades with STARTTLS (SMTP, LMTP, IMAP,
//! POP3, FTP, XMPP, PostgreSQL; see [`starttls`]). [`Stream::from_tcp`] starts TLS on a socket
//! the program already has (after its own clear-text exchange, through a tunnel of its own).
//! [`Config::proxy`] makes [`Stream::connect`] go through an HTTP CONNECT or SOCKS5 [`Proxy`],
//! the certificate checked against the target. [`Connection`] is a `Stream` with one reader thread that
//! delivers [`Event`]s on a channel, for programs that wait on channels rather than in `read`.
//!
//! Errors name the cause and the peer:
//!
//! ```
//! use std::time::Duration;
//! use gracetls::{Config, Stream};
//!
//! // Nothing listens on port 1 of the loopback.
//! let config = Config::new().connect_timeout(Duration::from_secs(2));
//! let err = Stream::connect(&config, "127.0.0.1:1").unwrap_err();
//! assert_eq!(err.to_string(), "cannot connect to 127.0.0.1:1: connection refused");
//! ```
//!
//! # Design
//!
//! native-tls's `TlsStream` cannot be split, and a `Mutex<TlsStream<TcpStream>>` deadlocks:
//! the reader blocks inside `read()` holding the lock, and the first write waits forever.
//! Here TLS runs over an in-memory transport and **the TLS lock is never held across a
//! blocking socket call**. A `Stream` has no thread of its own; the caller's threads do the
//! work:
//!
//! - a reader reads the socket holding only the read side's lock (one socket reader at a
//!   time), then feeds the ciphertext to TLS and decrypts straight into its buffer under the
//!   TLS lock;
//! - a writer encrypts under the TLS lock and appends the ciphertext to one outbound queue
//!   before releasing it; the queue is written to the socket after, by whichever thread gets
//!   there first. What TLS writes while decrypting (a TLS 1.3 KeyUpdate reply, a TLS 1.2
//!   renegotiation message) joins the same queue, so ciphertext reaches the wire in the order
//!   TLS made it.
//!
//! Owning the transport is also how a clean close is told from a truncation: the end of the
//! TCP stream is shown to TLS only after everything received before it was decrypted, so TLS
//! reporting the end before that is the server's close_notify (`read` returns `Ok(0)`), and
//! after it a truncation (`read` fails with `UnexpectedEof`).
//!
//! ## The close, step by step
//!
//! A fast close ([`CloseMode::Fast`]), from any thread, all within the close timeout:
//!
//! ```text
//! t0  close() called; writes fail from now on
//!     the outbound queue is written           readers keep reading meanwhile
//!     close_notify queued, the queue sealed   (nothing may follow close_notify on the wire)
//!     close_notify written, shutdown(Write)   TCP FIN follows it
//!     the server's answer is delivered        until its close_notify or its FIN
//!     flag "stopping" set, shutdown(Read)     a blocked read() returns Ok(0)
//!     bytes that already arrived are read     (unread bytes at close make the kernel send RST)
//! t1  report                                  t1 - t0: writing the queue, one round trip
//! ```
//!
//! [`CloseMode::Wait`] and the half-close ([`Stream::shutdown_write`]) need the server's
//! close_notify instead: its FIN alone is a possible truncation. On Linux a socket shut for
//! reading returns 0 at once on every later read, so the read side is shut only when the
//! close has ended; the flag set before our own `shutdown(Read)` is how a reader tells it
//! from the server's FIN.
//!
//! If the close timeout passes, the socket is shut both ways (unblocking every thread) and the
//! outcome is [`Outcome::CloseTimeout`].
//!
//! # Log levels
//!
//! With the `log` crate: `info` says how each connection was made (one line: the address, the
//! time it took, and the [`Session`]: version, cipher suite, ALPN, the server's certificate)
//! and how it ended; `debug`
//! gives every step of the close with its time since the start of the close; `warn` reports a
//! possible truncation and a close that timed out.
//!
//! # Features
//!
//! `cli` (on by default) builds the `gracetls` command. A program that uses only the library
//! depends on it with `default-features = false` and compiles none of the command line's
//! crates (clap, env_logger, signal-hook).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acked;
mod alert;
mod certificate;
pub mod config;
mod connect;
pub mod connection;
mod diagnose;
pub mod error;
mod handshake;
mod io_error;
mod outbound;
mod proxy;
pub mod report;
mod session;
pub mod starttls;
mod stream;
mod target;
mod transport;
pub mod unversioned;
mod utc;

pub use certificate::{Certificate, SubjectAltName};
pub use config::{CloseMode, Config, TlsVersion};
pub use connection::{Connection, Event};
pub use error::Error;
pub use proxy::{Proxy, ProxyKind};
pub use report::{CloseReport, Outcome};
pub use session::Session;
pub use stream::Stream;
pub use target::parse_target;
