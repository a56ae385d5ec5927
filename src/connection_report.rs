//! [`ConnectionReport`]: how one of a [`Listener`](crate::Listener)'s connections ended,
//! with whom and after how long.

use std::net::SocketAddr;
use std::time::Duration;

use crate::report::{CloseReport, Outcome};

/// How one connection of a [`Listener`](crate::Listener) ended: what
/// [`ServerConfig::on_report`](crate::ServerConfig::on_report) gets for every connection,
/// and [`Listener::shutdown`](crate::Listener::shutdown) returns, one per connection that
/// was open (or in its handshake) when the shutdown began. Made by the library only.
#[derive(Debug, Clone)]
pub struct ConnectionReport {
    pub(crate) peer_addr: SocketAddr,
    pub(crate) duration: Duration,
    pub(crate) close: Option<CloseReport>,
    pub(crate) handshake_error: Option<String>,
    pub(crate) handler_error: Option<String>,
}

impl ConnectionReport {
    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// How it ended: the close's [`Outcome`] (`Clean`: our close_notify went out and the
    /// client's came back or its TCP acknowledged ours), or [`Outcome::Error`] for a
    /// connection whose handshake never finished (see
    /// [`handshake_error`](Self::handshake_error)).
    pub fn outcome(&self) -> Outcome {
        self.close
            .as_ref()
            .map_or(Outcome::Error, CloseReport::outcome)
    }

    /// The close's report; `None` when the handshake never finished.
    pub fn close_report(&self) -> Option<&CloseReport> {
        self.close.as_ref()
    }

    /// Whether the client's close_notify arrived.
    pub fn close_notify_received(&self) -> bool {
        self.close
            .as_ref()
            .is_some_and(CloseReport::close_notify_received)
    }

    /// Why the handshake did not finish (a client that does not speak TLS, stalled past
    /// the handshake timeout, or was still in its handshake when the shutdown began).
    pub fn handshake_error(&self) -> Option<&str> {
        self.handshake_error.as_deref()
    }

    /// The error the handler returned, or that it panicked.
    pub fn handler_error(&self) -> Option<&str> {
        self.handler_error.as_deref()
    }

    /// Plaintext bytes received from the client.
    pub fn bytes_in(&self) -> u64 {
        self.close.as_ref().map_or(0, CloseReport::bytes_in)
    }

    /// Plaintext bytes sent to the client.
    pub fn bytes_out(&self) -> u64 {
        self.close.as_ref().map_or(0, CloseReport::bytes_out)
    }

    /// From the accept to the end of the close.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}
