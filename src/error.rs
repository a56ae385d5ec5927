//! The one error type of the crate, with messages written for the person at the terminal.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while connecting, talking or closing.
///
/// Each message names the cause and the peer; [`Error::hint`] says what to do about it.
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
        /// The verification failure, e.g. `self-signed certificate` or `Hostname mismatch`.
        reason: String,
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
    /// Data was sent after the connection was closed.
    Closed,
}

impl Error {
    /// One short sentence on what to do about the error, for a person.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::InvalidTarget { .. } => {
                Some("give HOST[:PORT], e.g. example.com:443 or [::1]:8443")
            }
            Error::Resolve { .. } => Some("check the host name"),
            Error::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
                Some("is the server running and listening on that port?")
            }
            Error::Connect { .. } => Some("check the address and the network"),
            Error::ConnectTimeout { .. } => Some(
                "the server did not answer in time; check that it speaks TLS, or raise --connect-timeout",
            ),
            Error::Certificate { reason, .. } if is_name_mismatch(reason) => {
                Some("connect by a name the certificate holds, or set --servername to one of them")
            }
            Error::Certificate { .. } => Some(
                "pass the issuing CA with --ca-file PEM, or --insecure to skip verification (unsafe)",
            ),
            Error::ClientCertificateRequired { .. } => {
                Some("pass a client certificate and its key with --cert PEM --key PEM")
            }
            Error::KeyMismatch { .. } => {
                Some("pass the key that was made with that certificate (--cert and --key)")
            }
            Error::Handshake { .. } => {
                Some("check --tls-min/--tls-max, --alpn and client certificate options")
            }
            Error::NotTls { .. } => Some("check the port: the server there does not speak TLS"),
            // The reason already gives the command that converts the file.
            Error::Setup { reason, .. } if reason.contains("`openssl ") => None,
            Error::Setup { .. } => Some("check the file's path and that it is PEM"),
            Error::Io { .. } => {
                Some("the server or the network dropped the connection; see the server's log")
            }
            Error::Tls { reason, .. } if is_certificate_required(reason) => {
                Some("pass a client certificate and its key with --cert PEM --key PEM")
            }
            Error::Tls { .. } => Some(
                "the server sent bytes that are not valid TLS for this session; see the server's log",
            ),
            Error::Closed => None,
        }
    }
}

fn is_name_mismatch(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("hostname mismatch") || r.contains("ip address mismatch")
}

/// The TLS 1.3 alert of a server that wanted a client certificate and got none, as OpenSSL
/// names it: `tlsv13 alert certificate required`.
fn is_certificate_required(reason: &str) -> bool {
    reason.contains("alert certificate required")
}

/// The alert's own name in an OpenSSL reason: `handshake failure` of
/// `sslv3 alert handshake failure`.
pub(crate) fn alert_name(reason: &str) -> &str {
    reason.split_once("alert ").map_or(reason, |(_, name)| name)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidTarget { target, reason } => {
                write!(f, "invalid target {target:?}: {reason}")
            }
            Error::Setup { what, reason } => write!(f, "cannot use {what}: {reason}"),
            Error::Resolve { host, source } => write!(f, "cannot resolve {host}: {source}"),
            Error::Connect { target, source } => {
                let cause = match source.kind() {
                    io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                    _ => source.to_string(),
                };
                write!(f, "cannot connect to {target}: {cause}")
            }
            Error::ConnectTimeout { target, timeout } => write!(
                f,
                "connect timeout: {target} did not complete TCP connect and TLS handshake within {}",
                crate::config::format_duration(*timeout)
            ),
            Error::Certificate { target, reason } if is_name_mismatch(reason) => write!(
                f,
                "certificate of {target} does not match the expected name ({reason})"
            ),
            Error::Certificate { target, reason } => {
                write!(f, "certificate of {target} is not trusted: {reason}")
            }
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
            Error::Handshake { target, reason } => {
                write!(f, "TLS handshake with {target} failed: {reason}")
            }
            Error::NotTls { target } => {
                write!(f, "{target} is not a TLS server (its answer is not TLS)")
            }
            Error::Io { target, op, source } => {
                let cause = match source.kind() {
                    io::ErrorKind::ConnectionReset => "connection reset by the server".to_string(),
                    io::ErrorKind::BrokenPipe => {
                        "connection closed by the server (broken pipe)".to_string()
                    }
                    _ => source.to_string(),
                };
                write!(f, "{cause} while {op} {target}")
            }
            Error::Tls { target, reason } if is_certificate_required(reason) => write!(
                f,
                "the server {target} requires a client certificate: given none, it ended the connection with the alert \"certificate required\""
            ),
            Error::Tls { target, reason } => {
                write!(f, "TLS error on the connection to {target}: {reason}")
            }
            Error::Closed => write!(f, "the connection is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. }
            | Error::Connect { source, .. }
            | Error::Io { source, .. } => Some(source),
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
        assert_eq!(
            e.to_string(),
            "cannot connect to 127.0.0.1:9: connection refused"
        );
        assert!(e.hint().is_some());
        let e = Error::Certificate {
            target: "h:1".into(),
            reason: "Hostname mismatch".into(),
        };
        assert!(e.to_string().contains("does not match"));
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
        assert!(e.hint().unwrap_or_default().contains("--cert"));
        assert_eq!(
            alert_name("sslv3 alert handshake failure"),
            "handshake failure"
        );
    }
}
