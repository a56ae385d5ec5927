//! One interface over every TLS server the interop matrix runs against.
//!
//! Each implementation is a real TLS stack that nobody here wrote (or, for
//! rustls, a thin server over it) plus a *referee*: the way that stack itself
//! tells a client's close_notify from a bare TCP FIN. The matrix harness in
//! `tests/interop.rs` drives `gracetls` through every exit path against each
//! peer and asks the peer what it saw.
//!
//! # The echo-peer protocol
//! The peers written for these tests (JSSE, Go, rustls, the nginx backend)
//! share one small protocol, so the harness treats them alike:
//! - they listen on 127.0.0.1 (port 0 or a given one) and print
//!   `LISTENING <port>` once ready (the in-process rustls peer reports the
//!   port directly);
//! - they serve any number of connections, one after another or at once;
//! - every line the client sends is echoed back, except two command lines:
//!   `srv-close` (the server sends close_notify, then reads until the
//!   client's answer or EOF and judges it) and `srv-truncate` (the server
//!   shuts TCP down without close_notify);
//! - when a connection ends, they print exactly one line
//!   `VERDICT close_notify|bare_fin|error <detail>` (flushed at once).

use std::time::Duration;

use super::{Dump, Tls};

/// How a connection ended, as the server's own TLS stack saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The client sent close_notify (first, or as the answer to the server's).
    CloseNotify,
    /// The connection ended with a TCP FIN and no close_notify.
    BareFin,
    /// The server logged an error (text as logged).
    Error(String),
    /// The server could not judge (it was killed to cause a truncation).
    NotJudged,
}

impl Verdict {
    /// Parses the `<what> <detail>` part of an echo-peer `VERDICT` line.
    pub fn parse(rest: &str) -> Verdict {
        let rest = rest.trim();
        let (what, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        match what {
            "close_notify" => Verdict::CloseNotify,
            "bare_fin" => Verdict::BareFin,
            _ => Verdict::Error(format!("{what} {detail}").trim().to_string()),
        }
    }
}

/// The two ways a server can end a connection itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEnd {
    /// Send close_notify (the client must answer it and exit 0).
    CloseNotify,
    /// Close TCP without close_notify (the client must report truncation).
    Truncate,
}

/// How a peer plays a server-initiated end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// The client sends this line (through its stdin); the server reacts.
    Line(&'static str),
    /// The harness calls [`TlsPeer::act`] while the client is connected.
    Act,
    /// This peer cannot play it; the reason goes into the table cell.
    Cannot(&'static str),
}

/// A TLS server under test. Implementations kill what they started on drop.
pub trait TlsPeer: Dump {
    /// Column label, e.g. `"gnutls-serv"` (the harness adds the version).
    fn name(&self) -> &'static str;
    /// The TLS version this instance was started with.
    fn tls(&self) -> Tls;
    /// Where the client connects (127.0.0.1).
    fn port(&self) -> u16;
    /// Makes the server send `line` (with `\n`) to the client on the current
    /// connection. Returns false for echo peers: the harness then has the
    /// client send the line and it comes back as the echo.
    fn say(&mut self, line: &str) -> bool;
    /// How this peer plays `end`.
    fn how(&self, end: ServerEnd) -> How;
    /// Plays `end` (only called when [`TlsPeer::how`] returned [`How::Act`]).
    /// May leave the peer unusable (a killed process): the harness plays
    /// [`ServerEnd::Truncate`] last.
    fn act(&mut self, end: ServerEnd);
    /// Waits (bounded by `timeout`) until the server has finished judging the
    /// next connection that ended, in the order they ended, and returns its
    /// verdict. A connection the server itself truncated yields
    /// [`Verdict::NotJudged`] or [`Verdict::BareFin`], whatever the peer saw.
    fn next_verdict(&mut self, timeout: Duration) -> Verdict;
    /// Version string of the stack, for the table header (e.g. `OpenSSL 3.0.17`).
    fn version(&self) -> String;
}
