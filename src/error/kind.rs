//! The small values a program matches on: what kind of failure, and which operation failed.

use std::fmt;

/// What kind of failure an [`Error`](crate::Error) is: the common question, in a value that is
/// `Copy` and cheap to compare. [`Error::kind`](crate::Error::kind) gives it; the error itself
/// holds the details.
///
/// ```
/// use gracetls::{Config, Stream, error::ErrorKind};
///
/// let err = Stream::connect(&Config::new(), "not a target:x").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Something the program gave is unusable: the target, the proxy URL, a file of the
    /// configuration, a client key that does not match its certificate.
    InvalidInput,
    /// The host name did not resolve.
    Resolve,
    /// No TCP connection could be made.
    Connect,
    /// Connecting (TCP and the TLS handshake) took longer than the connect timeout.
    ConnectTimeout,
    /// The proxy could not be reached or would not open the tunnel.
    Proxy,
    /// The server's certificate was rejected: see
    /// [`CertificateError`](crate::error::CertificateError).
    Certificate,
    /// The server requires a client certificate, and none was given.
    ClientCertificateRequired,
    /// The server ended the handshake or the connection with an alert: see
    /// [`Error::alert`](crate::Error::alert).
    AlertReceived,
    /// The TLS handshake failed for another reason (the server closed, say).
    Handshake,
    /// The server does not speak TLS on that port.
    NotTls,
    /// The socket failed: reset, broken pipe, a timeout the program set.
    Io,
    /// The TLS layer failed on the established connection: a bad record, garbage.
    Tls,
    /// The clear-text exchange before a STARTTLS upgrade did not reach it.
    Starttls,
    /// The server's stream ended without close_notify.
    Truncated,
    /// Data was sent after the connection was closed.
    Closed,
    /// A thread the connection needs could not be started.
    Thread,
}

/// The operation that failed ([`Error::Io`](crate::Error::Io),
/// [`Error::Proxy`](crate::Error::Proxy)). [`Display`](fmt::Display) gives the words a
/// message uses: `reading from`, `writing to`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Reading from the server.
    Read,
    /// Writing to the server.
    Write,
    /// Writing our close_notify to the server.
    WriteCloseNotify,
    /// Setting up the socket after the handshake.
    SetUp,
    /// Connecting (to a proxy).
    Connect,
    /// Talking to a proxy, to set up the tunnel.
    Talk,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Read => "reading from",
            Operation::Write => "writing to",
            Operation::WriteCloseNotify => "writing close_notify to",
            Operation::SetUp => "setting up",
            Operation::Connect => "connecting to",
            Operation::Talk => "talking to",
        })
    }
}
