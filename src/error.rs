//! The one error type of the crate, with messages written for the person at the terminal,
//! and the values it is made of: what kind of failure ([`ErrorKind`]), which operation
//! ([`Operation`]), why a certificate was rejected ([`CertificateError`]), which alert the
//! server sent ([`Alert`]). A program matches these; the messages are built from them, never
//! the other way round.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::alert::Alert;
use crate::openssl_text::{self, Cause};
use crate::starttls::{Problem, Protocol};

mod certificate;
mod display;
mod kind;

pub use certificate::{CertificateError, ChainEnd, Validity};
pub use kind::{ErrorKind, Operation, ProxyRefusal, SetupInput, SetupProblem};

/// Everything that can go wrong while connecting, talking or closing.
///
/// Each message names the cause and the peer. What to do about it depends on the program:
/// the `gracetls` command adds a hint naming its options.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The `HOST[:PORT]` target could not be parsed.
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file named in the configuration (CA, certificate, key) could not be used.
    Setup {
        /// Which file or setting, for people: `CA file /etc/ca.pem`.
        what: String,
        /// Why it could not be used, for people.
        reason: String,
        /// Which input it is, as a value.
        input: SetupInput,
        /// What is wrong with it, as a value.
        problem: SetupProblem,
    },
    /// A proxy URL could not be parsed.
    InvalidProxy {
        /// The URL as given, its password replaced by `***`.
        proxy: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The proxy answered, and would not open the tunnel to the target: an HTTP status other
    /// than 2xx (403, 407, 502, ...) or a SOCKS5 refusal.
    ProxyRefused {
        /// Which protocol the proxy speaks.
        kind: crate::ProxyKind,
        /// The proxy, `host:port`.
        proxy: String,
        /// The target, `host:port`.
        target: String,
        /// Why, as a value.
        refusal: ProxyRefusal,
        /// What the proxy said, for people: `403 Forbidden`, `connection refused by the
        /// target (SOCKS5 reply 5)`, with what it means where that helps.
        reason: String,
    },
    /// The tunnel through the proxy could not be set up: the proxy could not be reached,
    /// closed the connection ([`UnexpectedEof`](io::ErrorKind::UnexpectedEof)), did not answer
    /// within the connect timeout ([`TimedOut`](io::ErrorKind::TimedOut)), or answered in
    /// another protocol ([`InvalidData`](io::ErrorKind::InvalidData)).
    Proxy {
        /// Which protocol the proxy speaks.
        kind: crate::ProxyKind,
        /// The proxy, `host:port`.
        proxy: String,
        /// The target, `host:port`.
        target: String,
        /// What was being done: [`Operation::Connect`] or [`Operation::Talk`] to the proxy.
        op: Operation,
        /// What went wrong.
        source: io::Error,
    },
    /// The host name did not resolve to any address.
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No TCP connection could be made to any address of the target.
    Connect {
        /// The target, `host:port`.
        target: String,
        /// The error of the last address tried (refused, unreachable, ...).
        source: io::Error,
    },
    /// TCP connect plus TLS handshake did not finish within the connect timeout.
    ConnectTimeout {
        /// The target, `host:port`.
        target: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The server's certificate was rejected.
    Certificate {
        /// The target, `host:port`.
        target: String,
        /// Why, with what could be learned of it: the certificate's dates, the names it
        /// holds, the issuer that is missing. (Boxed: it is rare, and every `Result` of the
        /// crate carries the error's size.)
        error: Box<CertificateError>,
    },
    /// The server requires a client certificate and none was given.
    ///
    /// In TLS 1.2 the server says so during the handshake, and this is the error. In TLS 1.3
    /// it says so only after the handshake, with the alert `certificate required`: that arrives
    /// on the established connection as [`Error::Tls`], whose message and hint say the same.
    ClientCertificateRequired {
        /// The target, `host:port`.
        target: String,
        /// The alert the server ended the handshake with, e.g. [`Alert::HandshakeFailure`].
        alert: Alert,
    },
    /// The client key does not belong to the client certificate.
    KeyMismatch {
        /// The client certificate file.
        cert: PathBuf,
        /// The client key file.
        key: PathBuf,
    },
    /// The TLS handshake failed for another reason: an alert, no common version.
    Handshake {
        /// The target, `host:port`.
        target: String,
        /// What the TLS library said, for people.
        reason: String,
        /// The alert the server ended the handshake with, if it sent one.
        alert: Option<Alert>,
    },
    /// The server does not speak TLS on that port.
    NotTls {
        /// The target, `host:port`.
        target: String,
    },
    /// The established connection failed at the socket: reset, broken pipe, ...
    Io {
        /// The target, `host:port`.
        target: String,
        /// What was being done.
        op: Operation,
        /// The socket error.
        source: io::Error,
    },
    /// The established connection failed at the TLS layer: a bad record, an alert, garbage.
    Tls {
        /// The target, `host:port`.
        target: String,
        /// What the TLS library said, for people.
        reason: String,
        /// The alert the server ended the connection with, if it sent one.
        alert: Option<Alert>,
    },
    /// The clear-text exchange before TLS ([`Stream::connect_starttls`](crate::Stream::connect_starttls),
    /// [`Starttls::negotiate`](crate::starttls::Starttls::negotiate)) did not reach the
    /// upgrade: the server does not offer it, refused it, answered otherwise, closed, or
    /// was too slow.
    Starttls {
        /// The server, `host:port`.
        target: String,
        /// The protocol spoken in clear.
        protocol: Protocol,
        /// The step: `greeting`, `EHLO`, `STARTTLS`, `CAPA`, `SSLRequest`, ...
        step: &'static str,
        /// What went wrong.
        problem: Problem,
    },
    /// The server's TCP stream ended without close_notify: what it sent may be incomplete. A
    /// `read` returns it inside an `io::Error` of kind
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof).
    Truncated {
        /// The server, `host:port`.
        target: String,
        /// What is known of the end.
        how: Truncation,
    },
    /// Data was sent after the connection was closed.
    Closed,
    /// A thread the connection needs could not be started (the system's limit on threads or
    /// memory).
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why it could not start.
        source: io::Error,
    },
}

impl Error {
    /// What kind of failure this is, for a program that decides what to do by it.
    ///
    /// ```
    /// use gracetls::error::{Alert, ErrorKind};
    ///
    /// let e = gracetls::Error::Tls {
    ///     target: "example.com:443".into(),
    ///     reason: "tlsv1 alert internal error".into(),
    ///     alert: Some(Alert::InternalError),
    /// };
    /// assert_eq!(e.kind(), ErrorKind::AlertReceived);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidTarget { .. }
            | Error::Setup { .. }
            | Error::InvalidProxy { .. }
            | Error::KeyMismatch { .. } => ErrorKind::InvalidInput,
            Error::ProxyRefused { .. } | Error::Proxy { .. } => ErrorKind::Proxy,
            Error::Resolve { .. } => ErrorKind::Resolve,
            Error::Connect { .. } => ErrorKind::Connect,
            Error::ConnectTimeout { .. } => ErrorKind::ConnectTimeout,
            Error::Certificate { .. } => ErrorKind::Certificate,
            Error::ClientCertificateRequired { .. }
            | Error::Tls {
                alert: Some(Alert::CertificateRequired),
                ..
            } => ErrorKind::ClientCertificateRequired,
            Error::Handshake { alert: Some(_), .. } | Error::Tls { alert: Some(_), .. } => {
                ErrorKind::AlertReceived
            }
            Error::Handshake { .. } => ErrorKind::Handshake,
            Error::NotTls { .. } => ErrorKind::NotTls,
            Error::Io { .. } => ErrorKind::Io,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Starttls { .. } => ErrorKind::Starttls,
            Error::Truncated { .. } => ErrorKind::Truncated,
            Error::Closed => ErrorKind::Closed,
            Error::Thread { .. } => ErrorKind::Thread,
        }
    }

    /// The alert the server ended the connection or the handshake with; `None` when the
    /// failure was not an alert from the server.
    ///
    /// ```
    /// use gracetls::error::Alert;
    ///
    /// let e = gracetls::Error::Tls {
    ///     target: "example.com:443".into(),
    ///     reason: "tlsv1 alert internal error".into(),
    ///     alert: Some(Alert::InternalError),
    /// };
    /// assert_eq!(e.alert(), Some(Alert::InternalError));
    /// assert_eq!(e.alert().map(|a| a.to_string()).as_deref(), Some("internal error"));
    /// ```
    pub fn alert(&self) -> Option<Alert> {
        match self {
            Error::Tls { alert, .. } | Error::Handshake { alert, .. } => *alert,
            Error::ClientCertificateRequired { alert, .. } => Some(*alert),
            _ => None,
        }
    }

    /// Why the server's certificate was rejected, if it was.
    pub fn certificate_error(&self) -> Option<&CertificateError> {
        match self {
            Error::Certificate { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The failure of the established connection that the TLS library's `error` describes:
    /// an alert the server sent, or another failure of the TLS layer.
    pub(crate) fn tls(target: &str, error: &(dyn std::error::Error + 'static)) -> Error {
        let failure = openssl_text::read_error(error);
        Error::Tls {
            target: target.to_string(),
            alert: match failure.cause {
                Cause::Alert(alert) => Some(alert),
                _ => None,
            },
            reason: failure.reason,
        }
    }
}

/// How the server's stream ended without close_notify ([`Error::Truncated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Truncation {
    /// The end came in the middle of a TLS record: the last data is certainly incomplete.
    MidRecord,
    /// The end came between records, with no close_notify: nothing says it was all.
    NoCloseNotify,
    /// The end came between records after our close_notify, which the server did not
    /// answer (some servers, nginx among them, never do).
    Unanswered,
}

/// OpenSSL's reasons in an error text, for messages (`wrong version number`), and the
/// verification detail in parentheses.
pub(crate) fn tls_reason(text: &str) -> (String, Option<String>) {
    let failure = openssl_text::read(text);
    let detail = match failure.cause {
        Cause::Verify { detail, .. } => Some(detail),
        _ => None,
    };
    (failure.reason, detail)
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. }
            | Error::Connect { source, .. }
            | Error::Io { source, .. }
            | Error::Proxy { source, .. }
            | Error::Thread { source, .. } => Some(source),
            Error::Starttls {
                problem: Problem::Io(source),
                ..
            } => Some(source),
            _ => None,
        }
    }
}
