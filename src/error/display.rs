//! The messages of [`Error`]: one line naming the cause and the peer, built from the error's
//! values.

use std::fmt;
use std::io;

use super::{Alert, Error, Operation, Truncation};

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidTarget { target, reason } => {
                write!(f, "invalid target {target:?}: {reason}")
            }
            Error::Setup { what, reason, .. } => write!(f, "cannot use {what}: {reason}"),
            Error::InvalidProxy { proxy, reason } => {
                write!(f, "invalid proxy {proxy:?}: {reason}")
            }
            Error::ProxyRefused {
                kind,
                proxy,
                target,
                reason,
                ..
            } => match kind {
                crate::ProxyKind::Http => {
                    write!(f, "proxy {proxy} refused CONNECT to {target}: {reason}")
                }
                _ => write!(
                    f,
                    "{} {proxy} refused the connection to {target}: {reason}",
                    kind.label()
                ),
            },
            Error::Proxy {
                kind,
                proxy,
                target,
                op,
                source,
            } => {
                let label = kind.label();
                match (source.kind(), op) {
                    (_, Operation::Connect) => {
                        write!(f, "cannot connect to {label} {proxy} (for {target})")
                    }
                    (io::ErrorKind::UnexpectedEof, _) => write!(
                        f,
                        "{label} {proxy} closed the connection before the tunnel to {target} was set up"
                    ),
                    _ => write!(f, "{label} {proxy} failed to set up the tunnel to {target}"),
                }
            }
            Error::Resolve { host, .. } => write!(f, "cannot resolve {host}"),
            Error::Connect { target, .. } => write!(f, "cannot connect to {target}"),
            Error::ConnectTimeout { target, timeout } => write!(
                f,
                "connect timeout: {target} did not complete TCP connect and TLS handshake within {}",
                crate::config::format_duration(*timeout)
            ),
            Error::Certificate { target, error } => error.describe(f, target),
            Error::ClientCertificateRequired { target, alert } => write!(
                f,
                "the server {target} requires a client certificate: it asked for one and, given none, ended the handshake with the alert \"{alert}\""
            ),
            Error::KeyMismatch { cert, key } => write!(
                f,
                "the client key {} does not match the client certificate {}: they hold different public keys",
                key.display(),
                cert.display()
            ),
            Error::Handshake {
                target,
                alert: Some(alert),
                ..
            } => write!(
                f,
                "TLS handshake with {target} failed: the server sent {}",
                Said(*alert)
            ),
            Error::Handshake { target, reason, .. } => {
                write!(f, "TLS handshake with {target} failed: {reason}")
            }
            Error::NotTls { target } => {
                write!(f, "{target} is not a TLS server (its answer is not TLS)")
            }
            Error::Io { target, op, .. } => write!(f, "{op} {target} failed"),
            Error::Tls {
                target,
                alert: Some(Alert::CertificateRequired),
                ..
            } => write!(
                f,
                "the server {target} requires a client certificate: given none, it ended the connection with the alert \"certificate required\""
            ),
            Error::Tls {
                target,
                alert: Some(alert),
                ..
            } => write!(
                f,
                "the server {target} ended the connection with {}",
                Said(*alert)
            ),
            Error::Tls { target, reason, .. } => {
                write!(f, "TLS error on the connection to {target}: {reason}")
            }
            Error::Starttls {
                target,
                protocol,
                step,
                problem,
            } => crate::starttls::describe(f, target, *protocol, step, problem),
            Error::Truncated { target, how } => match how {
                Truncation::MidRecord => write!(
                    f,
                    "truncated: {target} closed TCP in the middle of a TLS record; the last data is incomplete"
                ),
                Truncation::Unanswered => write!(
                    f,
                    "possible truncation: {target} closed TCP without answering our close_notify (some servers, nginx among them, never answer)"
                ),
                Truncation::NoCloseNotify => {
                    write!(
                        f,
                        "possible truncation: {target} closed TCP without close_notify"
                    )
                }
            },
            Error::Closed => write!(f, "the connection is closed"),
            Error::Thread { what, .. } => write!(f, "cannot start {what}"),
        }
    }
}

/// An alert as a sentence says it: `the alert "internal error"`, or, for a number TLS does
/// not define, `alert 247, a number TLS does not define`.
struct Said(Alert);

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.name() {
            Some(name) => write!(f, "the alert \"{name}\""),
            None => write!(f, "{}, a number TLS does not define", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::{CertificateError, Validity};
    use super::*;

    #[test]
    fn messages_name_the_peer_and_hint() {
        let e = Error::Connect {
            target: "127.0.0.1:9".into(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(e.to_string(), "cannot connect to 127.0.0.1:9");
        assert_eq!(
            crate::unversioned::with_causes(&e),
            "cannot connect to 127.0.0.1:9: connection refused"
        );
        let e = Error::Io {
            target: "h:1".into(),
            op: Operation::Read,
            source: io::ErrorKind::ConnectionReset.into(),
        };
        assert_eq!(
            crate::unversioned::with_causes(&e),
            "reading from h:1 failed: connection reset by the server"
        );
        let e = Error::Certificate {
            target: "h:1".into(),
            error: Box::new(CertificateError::from_verify(
                Some(62),
                "Hostname mismatch",
                "h",
            )),
        };
        assert_eq!(
            e.to_string(),
            "certificate of h:1 does not match the name h (hostname mismatch)"
        );
    }

    #[test]
    fn expired_certificate_gives_dates() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let e = Error::Certificate {
            target: "h:1".into(),
            error: Box::new(CertificateError::Expired(Some(Validity {
                depth: 0,
                subject: "h".into(),
                not_before: at(1_577_836_800),
                not_after: at(1_609_459_200),
                now: at(1_767_225_600),
            }))),
        };
        assert_eq!(
            e.to_string(),
            "certificate of h:1 has expired: it was valid from 2020-01-01 00:00:00 UTC until \
             2021-01-01 00:00:00 UTC, and it is now 2026-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn alerts_are_named_or_numbered() {
        let e = Error::tls(
            "h:1",
            &io::Error::other("tlsv13 alert certificate required"),
        );
        assert_eq!(e.alert(), Some(Alert::CertificateRequired));
        assert!(
            e.to_string()
                .starts_with("the server h:1 requires a client certificate"),
            "{e}"
        );
        let e = Error::tls("h:1", &io::Error::other("reason(1247)"));
        assert_eq!(e.alert(), Some(Alert::Unknown(247)));
        assert_eq!(
            e.to_string(),
            "the server h:1 ended the connection with alert 247, a number TLS does not define"
        );
        let e = Error::tls("h:1", &io::Error::other("bad record mac"));
        assert_eq!(e.alert(), None);
        assert_eq!(
            e.to_string(),
            "TLS error on the connection to h:1: bad record mac"
        );
    }
}
