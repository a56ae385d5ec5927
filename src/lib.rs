//! # gracetls
//!
//! A blocking, thread-per-connection TLS client whose connections always end with a proper
//! TLS goodbye: close_notify on the wire, no error in the server's log, no byte lost, and a
//! [`CloseReport`] that says exactly how the connection ended. For synchronous programs: no
//! async runtime.
//!
//! ```no_run
//! use std::time::Duration;
//! use gracetls::{Config, Connection, Event};
//!
//! let config = Config::new().ca_file("ca.pem").close_timeout(Duration::from_secs(2));
//! let conn = Connection::connect(&config, "localhost:4433")?;
//! conn.send(b"hello\n")?;
//! if let Ok(Event::Data(bytes)) = conn.events().recv() {
//!     println!("{}", String::from_utf8_lossy(&bytes));
//! }
//! let report = conn.close(); // close_notify, bounded by the close timeout
//! assert!(report.close_notify_sent);
//! # Ok::<(), gracetls::Error>(())
//! ```
//!
//! Errors name the cause and the peer:
//!
//! ```
//! use std::time::Duration;
//! use gracetls::{Config, Connection};
//!
//! // Nothing listens on port 1 of the loopback.
//! let config = Config::new().connect_timeout(Duration::from_secs(2));
//! let err = Connection::connect(&config, "127.0.0.1:1").unwrap_err();
//! assert_eq!(err.to_string(), "cannot connect to 127.0.0.1:1: connection refused");
//! ```
//!
//! # Design
//!
//! native-tls's `TlsStream` cannot be split, and a `Mutex<TlsStream<TcpStream>>` deadlocks:
//! the reader blocks inside `read()` holding the lock, and the first write waits forever.
//! Here TLS runs over a [`transport::MemoryTransport`] and **the TLS lock is never held
//! across a blocking socket call**. Each connection has two threads:
//!
//! - the reader blocks in `read()` on the socket (one descriptor, shared); under the lock it feeds the
//!   ciphertext in and decrypts until `WouldBlock`; outside it, it delivers [`Event`]s;
//! - the writer takes plaintext from a bounded queue, encrypts under the lock and writes the
//!   ciphertext outside it. It is the only thread that writes to the socket.
//!
//! Owning the transport is also how a clean close is told from a truncation: the end of the
//! TCP stream is shown to TLS only after everything received before it was decrypted, so TLS
//! reporting the end before that is the server's close_notify ([`Event::PeerCloseNotify`]),
//! and after it a truncation ([`Event::PeerEof`]).
//!
//! ## The close, step by step
//!
//! A fast close ([`CloseMode::Fast`]), all within the close timeout:
//!
//! ```text
//! t0  trigger (stdin EOF, ~., a signal, a quit line, the server's close_notify, ...)
//!     writer sends everything queued          reader keeps reading (skipped if nothing is)
//!     flag "stopping" set, shutdown(Read)     reader's blocked read() returns 0: it exits
//!     reader joined
//!     close_notify encrypted, written         shutdown(Write): TCP FIN follows it
//!     bytes that already arrived are read     (unread bytes at close make the kernel send RST)
//! t1  socket closed                           t1 - t0 is about the time to write the queue
//! ```
//!
//! [`CloseMode::Wait`] and the half-close ([`Connection::shutdown_write`]) keep the read side
//! open instead and wait for the server's close_notify while still delivering data: on Linux
//! a socket shut for reading returns 0 at once on every later read, so a reader that must go
//! on reading cannot use `shutdown(Read)`. The flag set before our own `shutdown(Read)` is how
//! the reader tells it from the server's FIN.
//!
//! If the close timeout passes, the socket is shut both ways (unblocking every thread) and the
//! outcome is [`Outcome::CloseTimeout`].
//!
//! # Log levels
//!
//! With the `log` crate: `info` says how each connection was made and how it ended; `debug`
//! gives every step of the close with its time since the start of the close; `warn` reports a
//! possible truncation and a close that timed out.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
mod connect;
pub mod connection;
mod diagnose;
pub mod error;
mod handshake;
mod io_error;
pub mod lines;
mod outbound;
pub mod report;
mod session;
mod stream;
mod target;
pub mod transport;

pub use config::{CloseMode, Config, TlsVersion, format_duration, parse_duration};
pub use connection::{Connection, Event};
pub use error::Error;
pub use report::{CloseReport, ExitReport, Outcome, Signal, Trigger};
pub use session::Session;
pub use stream::Stream;
pub use target::parse_target;
