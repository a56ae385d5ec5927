//! The small `Copy` values a program matches on: what kind of failure, which operation
//! failed, why a proxy refused, which configuration input is unusable and how.

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
    /// Listening for clients ([`Listener`](crate::Listener)).
    Listen,
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
            Operation::Listen => "listening on",
        })
    }
}

/// Why a proxy would not open the tunnel ([`Error::ProxyRefused`](crate::Error::ProxyRefused)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyRefusal {
    /// It wants a user name and password, and none were given.
    CredentialsRequired,
    /// It refused the user name and password given (or the way of giving them).
    CredentialsRefused,
    /// It could not reach the target: an HTTP 5xx, a SOCKS5 reply of network or host
    /// unreachable or of a connection refused by the target.
    TargetUnreachable,
    /// Another HTTP status: its number (403, ...).
    Status(u16),
    /// Another refusal: a SOCKS5 reply, a name longer than SOCKS5 allows.
    Other,
}

/// Which input of the configuration an [`Error::Setup`](crate::Error::Setup) is about.
/// [`Display`](fmt::Display) gives the words a message uses: `CA file`, `client key`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetupInput {
    /// A CA file, or CA certificates given as PEM.
    CaFile,
    /// The client certificate.
    ClientCertificate,
    /// The client key.
    ClientKey,
    /// The client certificate and key together.
    ClientIdentity,
    /// The TLS settings as a whole.
    Tls,
    /// A server's certificate chain ([`ServerConfig`](crate::ServerConfig)).
    ServerCertificate,
    /// A server's private key.
    ServerKey,
    /// A server's PKCS#12 archive.
    Pkcs12Archive,
}

impl fmt::Display for SetupInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetupInput::CaFile => "CA file",
            SetupInput::ClientCertificate => "client certificate",
            SetupInput::ClientKey => "client key",
            SetupInput::ClientIdentity => "client certificate and key",
            SetupInput::Tls => "the TLS configuration",
            SetupInput::ServerCertificate => "server certificate",
            SetupInput::ServerKey => "server key",
            SetupInput::Pkcs12Archive => "PKCS#12 archive",
        })
    }
}

/// What is wrong with an input of the configuration
/// ([`Error::Setup`](crate::Error::Setup)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetupProblem {
    /// It cannot be read: no such file, permission denied, a directory.
    Unreadable,
    /// It is in a form the TLS library does not take (DER, an encrypted or PKCS#1 key); the
    /// reason gives the command that converts it.
    Convert,
    /// Its contents are not what it should hold.
    Invalid,
}
