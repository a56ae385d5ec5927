//! The one error type of the crate, with messages written for the person at the terminal.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::starttls::{Problem, Protocol};
use crate::utc::utc;

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
        /// Which file or setting.
        what: String,
        /// Why it could not be used.
        reason: String,
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
        /// What was being done: `connecting to` or `talking to` the proxy.
        op: &'static str,
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
        /// The verification failure as OpenSSL names it, e.g. `certificate has expired` or
        /// `Hostname mismatch`.
        reason: String,
        /// What is known beyond `reason`: the certificate's dates, the names it holds, the
        /// issuer that is missing. `None` when nothing more could be learned. (Boxed: it is
        /// rare, and every `Result` of the crate carries the error's size.)
        problem: Option<Box<CertificateProblem>>,
    },
    /// The server requires a client certificate and none was given.
    ///
    /// In TLS 1.2 the server says so during the handshake, and this is the error. In TLS 1.3
    /// it says so only after the handshake, with the alert `certificate required`: that arrives
    /// on the established connection as [`Error::Tls`], whose message and hint say the same.
    ClientCertificateRequired {
        /// The target, `host:port`.
        target: String,
        /// The alert the server ended the handshake with, e.g. `handshake failure`.
        alert: String,
    },
    /// The client key does not belong to the client certificate.
    KeyMismatch {
        /// The client certificate file.
        cert: PathBuf,
        /// The client key file.
        key: PathBuf,
    },
    /// The TLS handshake failed for another reason: an alert, no common version, not TLS.
    Handshake {
        /// The target, `host:port`.
        target: String,
        /// What the TLS library said.
        reason: String,
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
        /// What was being done: `reading`, `writing`.
        op: &'static str,
        /// The socket error.
        source: io::Error,
    },
    /// The established connection failed at the TLS layer: a bad record, an alert, garbage.
    Tls {
        /// The target, `host:port`.
        target: String,
        /// What the TLS library said.
        reason: String,
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
    /// The alert the server ended the connection or the handshake with, by name
    /// (`internal error`, `handshake failure`), or `alert N` for a number TLS does not
    /// define; `None` when the failure was not an alert from the server.
    ///
    /// ```
    /// let e = gracetls::Error::Tls {
    ///     target: "example.com:443".into(),
    ///     reason: "tlsv1 alert internal error".into(),
    /// };
    /// assert_eq!(e.alert().as_deref(), Some("internal error"));
    /// ```
    pub fn alert(&self) -> Option<String> {
        match self {
            Error::Tls { reason, .. } | Error::Handshake { reason, .. } => {
                crate::alert::received_alert(reason)
            }
            Error::ClientCertificateRequired { alert, .. } => Some(alert.clone()),
            _ => None,
        }
    }
}

pub(crate) fn is_name_mismatch(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("hostname mismatch") || r.contains("ip address mismatch")
}

/// The TLS 1.3 alert of a server that wanted a client certificate and got none, as OpenSSL
/// names it: `tlsv13 alert certificate required`.
fn is_certificate_required(reason: &str) -> bool {
    reason.contains("alert certificate required")
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

/// The alert's own name in an OpenSSL reason: `handshake failure` of
/// `sslv3 alert handshake failure`.
pub(crate) fn alert_name(reason: &str) -> &str {
    reason.split_once("alert ").map_or(reason, |(_, name)| name)
}

/// What a diagnosis of a rejected server certificate found: the facts behind OpenSSL's reason.
///
/// Certificates are named by their subject's common name (the whole subject if it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// A certificate of the chain is outside its validity period: expired, or not yet valid.
    Dates {
        /// Which certificate: 0 is the server's own, 1 its issuer, and so on.
        depth: u32,
        /// Its subject.
        subject: String,
        /// Its `notBefore`.
        not_before: SystemTime,
        /// Its `notAfter`.
        not_after: SystemTime,
        /// The time it was checked at.
        now: SystemTime,
    },
    /// The server's certificate does not hold the name that was asked for.
    NameMismatch {
        /// The name verified: [`Config::servername`](crate::Config::servername) if set, or
        /// else the target's host.
        expected: String,
        /// Its subject alternative names, as `DNS:name` and `IP:address`.
        names: Vec<String>,
        /// Its subject's common name, given when it has no subject alternative names.
        common_name: Option<String>,
    },
    /// The chain the server sent ends at a certificate whose issuer is neither sent nor
    /// trusted: a CA that is not trusted (a private CA, most often), or an intermediate CA
    /// that the server should have sent. Which of the two, the client cannot tell.
    IncompleteChain {
        /// Which certificate: 0 is the server's own, 1 its issuer, and so on.
        depth: u32,
        /// Its subject.
        subject: String,
        /// Its issuer, which the server did not send and which is not a trusted CA.
        issuer: String,
    },
    /// The server's certificate is issued by a CA that is neither sent nor trusted, and it
    /// names where that CA's certificate is published (Authority Information Access, which
    /// public CAs write into every certificate): most likely an intermediate CA that the
    /// server should have sent.
    MissingIntermediate {
        /// The server's certificate's subject.
        subject: String,
        /// Its issuer, which the server did not send.
        issuer: String,
        /// Where the issuer's certificate is published (the `CA Issuers` URL).
        url: String,
    },
    /// A CA file holds the server's own certificate rather than the CA that issued it: a
    /// certificate that is not a CA's is no root of trust, so its issuer is looked for, and
    /// it is neither sent nor trusted.
    CaFileHoldsLeaf {
        /// The CA file that holds it (or `(PEM in memory)`).
        file: String,
        /// The server's certificate's subject.
        subject: String,
        /// Its issuer: the CA whose certificate the file should hold.
        issuer: String,
    },
    /// The server sent its whole chain, up to a self-signed root that is not trusted.
    UntrustedRoot {
        /// The root's subject.
        root: String,
    },
    /// The server's certificate is self-signed and not trusted.
    SelfSigned {
        /// Its subject.
        subject: String,
    },
}

impl CertificateProblem {
    fn describe(&self, f: &mut fmt::Formatter<'_>, target: &str, reason: &str) -> fmt::Result {
        match self {
            CertificateProblem::Dates {
                depth,
                subject,
                not_before,
                not_after,
                now,
            } => {
                let whose = if *depth == 0 {
                    format!("certificate of {target}")
                } else {
                    format!("the CA certificate \"{subject}\" in the chain of {target}")
                };
                let (nb, na, now_text) = (utc(*not_before), utc(*not_after), utc(*now));
                if now < not_before {
                    write!(
                        f,
                        "{whose} is not yet valid: it is valid from {nb} until {na}, and it is now {now_text}"
                    )
                } else {
                    write!(
                        f,
                        "{whose} has expired: it was valid from {nb} until {na}, and it is now {now_text}"
                    )
                }
            }
            CertificateProblem::NameMismatch {
                expected,
                names,
                common_name,
            } => {
                write!(
                    f,
                    "certificate of {target} does not match the name {expected}"
                )?;
                match (names.is_empty(), common_name) {
                    (false, _) => write!(f, ": it holds {}", names.join(", ")),
                    (true, Some(cn)) => write!(
                        f,
                        ": it holds no subject alternative names, only the common name {cn}"
                    ),
                    (true, None) => write!(f, " ({reason})"),
                }
            }
            CertificateProblem::IncompleteChain {
                depth,
                subject,
                issuer,
            } => {
                let which = if *depth == 0 {
                    format!("its certificate \"{subject}\"")
                } else {
                    format!("the last certificate the server sent, \"{subject}\",")
                };
                write!(
                    f,
                    "certificate of {target} is not trusted: {which} is issued by \"{issuer}\", which is not a trusted CA (and which the server did not send)"
                )
            }
            CertificateProblem::MissingIntermediate {
                subject,
                issuer,
                url,
            } => write!(
                f,
                "certificate of {target} is not trusted: its certificate \"{subject}\" is issued by \"{issuer}\", which is not a trusted CA and which the server did not send; \"{issuer}\" is published at {url}"
            ),
            CertificateProblem::CaFileHoldsLeaf {
                file,
                subject,
                issuer,
            } => write!(
                f,
                "certificate of {target} is not trusted: the CA file {file} holds the server's own certificate (\"{subject}\"), not the CA that issued it (\"{issuer}\")"
            ),
            CertificateProblem::UntrustedRoot { root } => write!(
                f,
                "certificate of {target} is not trusted: self-signed certificate in certificate chain: the server sent its chain up to the root \"{root}\", which is not a trusted CA"
            ),
            CertificateProblem::SelfSigned { subject } => write!(
                f,
                "certificate of {target} is not trusted: it is self-signed (\"{subject}\") and not a trusted certificate"
            ),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidTarget { target, reason } => {
                write!(f, "invalid target {target:?}: {reason}")
            }
            Error::Setup { what, reason } => write!(f, "cannot use {what}: {reason}"),
            Error::InvalidProxy { proxy, reason } => {
                write!(f, "invalid proxy {proxy:?}: {reason}")
            }
            Error::ProxyRefused {
                kind,
                proxy,
                target,
                reason,
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
                match (source.kind(), *op) {
                    (_, "connecting to") => {
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
            Error::Certificate {
                target,
                reason,
                problem,
            } => match problem {
                Some(problem) => problem.describe(f, target, reason),
                None if is_name_mismatch(reason) => write!(
                    f,
                    "certificate of {target} does not match the expected name ({reason})"
                ),
                None if reason.contains("certificate chain too long") => write!(
                    f,
                    "certificate chain of {target} is too long: OpenSSL follows at most 100 intermediate certificates ({reason})"
                ),
                None => write!(f, "certificate of {target} is not trusted: {reason}"),
            },
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
            Error::Handshake { target, reason } => match crate::alert::received_alert(reason) {
                Some(alert) => write!(
                    f,
                    "TLS handshake with {target} failed: the server sent {}",
                    said(&alert)
                ),
                None => write!(f, "TLS handshake with {target} failed: {reason}"),
            },
            Error::NotTls { target } => {
                write!(f, "{target} is not a TLS server (its answer is not TLS)")
            }
            Error::Io { target, op, .. } => write!(f, "{op} {target} failed"),
            Error::Tls { target, reason } if is_certificate_required(reason) => write!(
                f,
                "the server {target} requires a client certificate: given none, it ended the connection with the alert \"certificate required\""
            ),
            Error::Tls { target, reason } => match crate::alert::received_alert(reason) {
                Some(alert) => write!(
                    f,
                    "the server {target} ended the connection with {}",
                    said(&alert)
                ),
                None => write!(f, "TLS error on the connection to {target}: {reason}"),
            },
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
/// not define, `alert number 247, which TLS does not define`.
fn said(alert: &str) -> String {
    if crate::alert::is_defined(alert) {
        format!("the alert \"{alert}\"")
    } else {
        format!("{alert}, a number TLS does not define")
    }
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

/// Turns an OpenSSL error text such as
/// `error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1890: (self-signed certificate)`
/// into its reasons (`certificate verify failed`) and the verification detail in parentheses.
pub(crate) fn tls_reason(text: &str) -> (String, Option<String>) {
    let (body, detail) = match (text.rfind(" ("), text.ends_with(')')) {
        (Some(i), true) => (&text[..i], Some(text[i + 2..text.len() - 1].to_string())),
        _ => (text, None),
    };
    let reasons: Vec<&str> = body
        .split(", ")
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            // error:CODE:library:function:reason:file:line:
            (fields.len() >= 5 && fields[0].ends_with("error")).then(|| fields[4])
        })
        .collect();
    let reason = if reasons.is_empty() {
        body.trim().to_string()
    } else {
        reasons.join("; ")
    };
    (reason, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_reason_and_detail() {
        let (r, d) = tls_reason(
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1890: (self-signed certificate)",
        );
        assert_eq!(r, "certificate verify failed");
        assert_eq!(d.as_deref(), Some("self-signed certificate"));
        let (r, d) = tls_reason(
            "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl/record/ssl3_record.c:354:",
        );
        assert_eq!(r, "wrong version number");
        assert_eq!(d, None);
        assert_eq!(tls_reason("plain words").0, "plain words");
    }

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
            op: "reading from",
            source: io::ErrorKind::ConnectionReset.into(),
        };
        assert_eq!(
            crate::unversioned::with_causes(&e),
            "reading from h:1 failed: connection reset by the server"
        );
        let e = Error::Certificate {
            target: "h:1".into(),
            reason: "Hostname mismatch".into(),
            problem: None,
        };
        assert!(e.to_string().contains("does not match"));
    }

    #[test]
    fn expired_certificate_gives_dates_and_no_ca_file_hint() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let e = Error::Certificate {
            target: "h:1".into(),
            reason: "certificate has expired".into(),
            problem: Some(Box::new(CertificateProblem::Dates {
                depth: 0,
                subject: "h".into(),
                not_before: at(1_577_836_800),
                not_after: at(1_609_459_200),
                now: at(1_767_225_600),
            })),
        };
        assert_eq!(
            e.to_string(),
            "certificate of h:1 has expired: it was valid from 2020-01-01 00:00:00 UTC until \
             2021-01-01 00:00:00 UTC, and it is now 2026-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn certificate_required_alert_is_named() {
        let e = Error::Tls {
            target: "h:1".into(),
            reason: "tlsv13 alert certificate required".into(),
        };
        assert!(
            e.to_string().contains("requires a client certificate"),
            "{e}"
        );
        assert_eq!(
            alert_name("sslv3 alert handshake failure"),
            "handshake failure"
        );
    }
}
