//! How a connection ended: how the goodbye went, what was moved, and what went wrong.

use std::time::Duration;

use crate::error::{Alert, ErrorKind};

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
            Outcome::Error => "error",
            Outcome::Unconfirmed => "unconfirmed",
        }
    }
}

/// What a finished close reports. Made by the library only; read it with its methods.
///
/// ```no_run
/// use gracetls::{Config, Outcome, Stream};
///
/// let stream = Stream::connect(&Config::new(), "example.com:443")?;
/// let report = stream.close();
/// if report.outcome() != Outcome::Clean {
///     eprintln!("{} after {} bytes in: {:?}", report.outcome().name(), report.bytes_in(), report.error());
/// }
/// # Ok::<(), gracetls::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    pub(crate) outcome: Outcome,
    pub(crate) close_notify_sent: bool,
    pub(crate) close_notify_received: bool,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_dropped: u64,
    pub(crate) close_duration: Duration,
    pub(crate) error: Option<String>,
    pub(crate) error_kind: Option<ErrorKind>,
    pub(crate) alert: Option<Alert>,
}

impl CloseReport {
    /// How it went.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether our close_notify was handed to the socket.
    pub fn close_notify_sent(&self) -> bool {
        self.close_notify_sent
    }

    /// Whether the server's close_notify was read.
    pub fn close_notify_received(&self) -> bool {
        self.close_notify_received
    }

    /// Plaintext bytes received from the server.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Plaintext bytes sent to the server.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Plaintext bytes that reached us during a fast close, after reading had stopped, and
    /// were not delivered. A fast close drops them by design; a count above zero says the
    /// server was still sending.
    pub fn bytes_dropped(&self) -> u64 {
        self.bytes_dropped
    }

    /// From the start of the close to its end.
    pub fn close_duration(&self) -> Duration {
        self.close_duration
    }

    /// The message of the connection's first error (with its causes), if it failed.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The kind of the connection's first error, if it failed (see
    /// [`Error::kind`](crate::Error::kind)). The error itself went to the call that met it.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.error_kind
    }

    /// The alert the server ended the connection with, if it sent one (see
    /// [`Error::alert`](crate::Error::alert)).
    pub fn alert(&self) -> Option<Alert> {
        self.alert
    }
}
