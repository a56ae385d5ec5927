//! How a connection ended: how the goodbye went, what was moved, and what went wrong.

use std::time::Duration;

/// How the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// close_notify was sent and arrived: the server's close_notify came back, or its TCP
    /// acknowledged ours (where the close waited for the server's, it came back).
    Clean,
    /// The server's stream ended without close_notify: data may be missing.
    Truncated,
    /// The close did not finish within the close timeout; the socket was closed hard.
    CloseTimeout,
    /// The close was cut short on purpose (a second signal): no goodbye.
    Aborted,
    /// The connection failed.
    Error,
    /// close_notify was sent, but neither the server's close_notify came back nor did the
    /// server's TCP acknowledge ours within the close timeout (on Linux, where the kernel
    /// tells): it may not have arrived.
    Unconfirmed,
}

impl Outcome {
    /// The name used in reports: `clean`, `truncated`, ...
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Truncated => "truncated",
            Outcome::CloseTimeout => "close-timeout",
            Outcome::Aborted => "aborted",
            Outcome::Error => "error",
            Outcome::Unconfirmed => "unconfirmed",
        }
    }
}

/// What a finished close reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReport {
    /// How it went.
    pub outcome: Outcome,
    /// Whether our close_notify was handed to the socket.
    pub close_notify_sent: bool,
    /// Whether the server's close_notify was read.
    pub close_notify_received: bool,
    /// Plaintext bytes received from the server.
    pub bytes_in: u64,
    /// Plaintext bytes sent to the server.
    pub bytes_out: u64,
    /// Plaintext bytes that reached us during a fast close, after reading had stopped, and
    /// were not delivered. A fast close drops them by design; a count above zero says the
    /// server was still sending.
    pub bytes_dropped: u64,
    /// From the start of the close to its end.
    pub close_duration: Duration,
    /// The error, if the connection failed.
    pub error: Option<String>,
    /// The alert the server ended the connection with, by name, if it sent one (see
    /// [`Error::alert`](crate::Error::alert)).
    pub alert: Option<String>,
}
