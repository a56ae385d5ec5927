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
//! let config = Config::new().with_ca_file("ca.pem");
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
//! assert!(report.close_notify_sent());
//! reader.join().expect("reader thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Stream::connect_starttls`] connects in clear and upgrades with STARTTLS (SMTP, LMTP, IMAP,
//! POP3, FTP, XMPP, PostgreSQL; see [`starttls`]). [`Stream::from_tcp`] starts TLS on a socket
//! the program already has (after its own clear-text exchange, through a tunnel of its own).
//! [`Config::with_proxy`] makes [`Stream::connect`] go through an HTTP CONNECT or SOCKS5 [`Proxy`],
//! the certificate checked against the target. [`Connection`] is a `Stream` with one reader thread that
//! delivers [`Event`]s on a channel, for programs that wait on channels rather than in `read`.
//!
//! The server side is the same `Stream`: [`Stream::accept`] runs the handshake as the server
//! with a [`ServerConfig`], and [`Listener`] serves many clients, a thread each, with a
//! [`shutdown`](Listener::shutdown) that closes every connection with close_notify at once
//! and reports each ([`ConnectionReport`]):
//!
//! ```no_run
//! use std::io::Write;
//! use gracetls::{Listener, ServerConfig};
//!
//! let config = ServerConfig::new().with_identity("cert.pem", "key.pem");
//! let listener = Listener::bind("127.0.0.1:4433", &config, |stream| {
//!     (&*stream).write_all(b"hello\n") // then closed with close_notify
//! })?;
//! // ... from any thread, a signal's say:
//! for report in listener.shutdown() {
//!     println!("{}: {}", report.peer_addr(), report.outcome().name());
//! }
//! # Ok::<(), gracetls::Error>(())
//! ```
//!
//! Errors name what failed and the peer, and the cause is their `source()`; a program decides
//! by [`Error::kind`] and the values the error holds ([`error::CertificateError`],
//! [`Alert`]), never by its message:
//!
//! ```
//! use std::time::Duration;
//! use gracetls::{Config, ErrorKind, Stream};
//!
//! // Nothing listens on port 1 of the loopback.
//! let config = Config::new().with_connect_timeout(Duration::from_secs(2));
//! let err = Stream::connect(&config, "127.0.0.1:1").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Connect);
//! assert_eq!(err.to_string(), "cannot connect to 127.0.0.1:1");
//! // The cause is the error's `source()`, never repeated in its message.
//! let cause = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<std::io::Error>());
//! assert_eq!(cause.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
//! ```
//!
//! # Design
//!
//! TLS runs over an in-memory transport, and **the TLS lock is never held across a blocking
//! socket call**: a reader waits on the socket holding only the read side's lock, then
//! decrypts under the TLS lock; a writer encrypts under it and queues the ciphertext, which
//! is written after the lock is released. So a reader blocked in `read` never holds up a
//! writer or a close, and the end of the TCP stream reaches TLS only after everything before
//! it was decrypted, which is how the server's close_notify (`Ok(0)`) is told from a
//! truncation (`UnexpectedEof`).
//!
//! A fast close ([`CloseMode::Fast`], the default) writes what is queued, sends close_notify
//! and a TCP FIN, delivers what the server still sends until its close_notify or its FIN,
//! then wakes blocked readers with `shutdown(Read)` (they get `Ok(0)`); without the server's
//! close_notify it is clean only once the server's TCP acknowledged ours
//! ([`Outcome::Unconfirmed`] otherwise). [`CloseMode::Wait`] and [`Stream::shutdown_write`]
//! keep reading until the server's close_notify instead. Past the close timeout the socket is
//! shut both ways and the outcome is [`Outcome::CloseTimeout`]. The whole account, with the
//! timeline and why each step is there, is in
//! [docs/design.md](https://github.com/gracetls/gracetls/blob/main/docs/design.md).
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
//! crates (clap, env_logger, signal-hook). The crate is not on crates.io yet: depend on it
//! by git, `gracetls = { git = "https://github.com/gracetls/gracetls", default-features =
//! false }`, or by `path` on a clone.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accept;
mod acked;
mod alert;
mod base64;
mod certificate;
pub mod config;
mod connect;
pub mod connection;
pub mod connection_report;
mod diagnose;
mod dial;
pub mod error;
mod format;
mod handshake;
mod io_error;
pub mod listener;
mod openssl_text;
mod outbound;
mod platform;
mod proxy;
mod read_size;
mod record;
pub mod report;
pub mod server_config;
mod session;
pub mod starttls;
mod stream;
mod target;
mod tls;
mod transport;
#[doc(hidden)]
pub mod unversioned;
mod utc;

pub use certificate::{Certificate, SubjectAltName};
pub use config::{CloseMode, Config, TlsVersion};
pub use connection::{Connection, Event};
pub use connection_report::ConnectionReport;
/// The receiving end of [`Connection::events`]: crossbeam-channel's, so it works in its
/// `select!` next to a program's own channels.
pub use crossbeam_channel::Receiver;
pub use error::{Alert, Error, ErrorKind, Truncation};
pub use listener::Listener;
pub use proxy::{Proxy, ProxyKind};
pub use report::{CloseReport, Outcome};
pub use server_config::ServerConfig;
pub use session::Session;
pub use stream::Stream;
pub use target::parse_target;

// README's and docs/library.md's Rust blocks, compiled (and run, where they need no server)
// by `cargo test --doc`, so that what a user pastes from them builds.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
pub struct LibraryGuideDoctests;
