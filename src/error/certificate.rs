//! Why the server's certificate was rejected, as values that carry what could be learned:
//! the dates of an expired certificate, the names a certificate holds, the issuer that is
//! missing. The facts come from a second, diagnostic connection (see `diagnose`); where it
//! learned nothing, a variant says what failed and holds `None`.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::utc::utc;

/// Why the server's certificate was rejected ([`Error::Certificate`](crate::Error::Certificate)).
///
/// Certificates are named by their subject's common name (the whole subject if it has none).
///
/// ```
/// use gracetls::error::CertificateError;
///
/// fn advice(e: &CertificateError) -> &'static str {
///     match e {
///         CertificateError::Expired(_) => "renew the server's certificate",
///         CertificateError::NameMismatch { .. } => "connect by a name the certificate holds",
///         CertificateError::UnknownIssuer(_) => "trust the issuing CA",
///         _ => "see the message",
///     }
/// }
/// assert_eq!(advice(&CertificateError::Expired(None)), "renew the server's certificate");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateError {
    /// A certificate of the chain has expired; its dates where they could be learned.
    Expired(Option<Validity>),
    /// A certificate of the chain is not valid yet; its dates where they could be learned.
    NotYetValid(Option<Validity>),
    /// The server's certificate does not hold the name that was asked for.
    NameMismatch {
        /// The name verified: [`Config::servername`](crate::Config::servername) if set, or
        /// else the target's host.
        expected: String,
        /// The certificate's subject alternative names, as `DNS:name` and `IP:address`;
        /// empty when they could not be learned, or when it has none.
        names: Vec<String>,
        /// Its subject's common name, given when it has no subject alternative names.
        common_name: Option<String>,
    },
    /// The chain the server sent ends at a certificate whose issuer is neither sent nor
    /// trusted: a CA that is not trusted (a private CA, most often), or an intermediate CA
    /// that the server should have sent. Which of the two, the client cannot tell.
    UnknownIssuer(Option<ChainEnd>),
    /// The server's certificate is issued by a CA that is neither sent nor trusted, and it
    /// names where that CA's certificate is published (Authority Information Access, which
    /// public CAs write into every certificate): most likely an intermediate CA that the
    /// server should have sent.
    IncompleteChain {
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
        /// The root's subject, where it could be learned.
        root: Option<String>,
    },
    /// The server's certificate is self-signed and not trusted.
    SelfSigned {
        /// Its subject, where it could be learned.
        subject: Option<String>,
    },
    /// The chain is longer than OpenSSL follows (100 intermediate certificates).
    ChainTooLong,
    /// Another verification failure, as the TLS library words it.
    Other {
        /// The TLS library's words, e.g. `certificate revoked`.
        reason: String,
    },
}

/// The validity period of a certificate of the chain, and when it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Validity {
    /// Which certificate: 0 is the server's own, 1 its issuer, and so on.
    pub depth: u32,
    /// Its subject.
    pub subject: String,
    /// Its `notBefore`.
    pub not_before: SystemTime,
    /// Its `notAfter`.
    pub not_after: SystemTime,
    /// The time it was checked at.
    pub now: SystemTime,
}

/// The last certificate of the chain the server sent, whose issuer is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainEnd {
    /// Which certificate: 0 is the server's own, 1 its issuer, and so on.
    pub depth: u32,
    /// Its subject.
    pub subject: String,
    /// Its issuer, which the server did not send and which is not a trusted CA.
    pub issuer: String,
}

impl Validity {
    // Made by the certificate diagnosis, which needs OpenSSL.
    #[cfg_attr(not(tls_openssl), allow(dead_code))]
    pub(crate) fn new(
        depth: u32,
        subject: String,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Validity {
        Validity {
            depth,
            subject,
            not_before,
            not_after,
            now: SystemTime::now(),
        }
    }
}

impl ChainEnd {
    #[cfg_attr(not(tls_openssl), allow(dead_code))]
    pub(crate) fn new(depth: u32, subject: String, issuer: String) -> ChainEnd {
        ChainEnd {
            depth,
            subject,
            issuer,
        }
    }
}

impl CertificateError {
    /// The error an X.509 verification result (`X509_V_ERR_*`) names, before any facts are
    /// known; `detail` is the TLS library's words for it, and `expected` the name verified.
    pub(crate) fn from_verify(code: Option<i32>, detail: &str, expected: &str) -> Self {
        match code {
            Some(9) => CertificateError::NotYetValid(None),
            Some(10) => CertificateError::Expired(None),
            Some(2 | 20 | 21) => CertificateError::UnknownIssuer(None),
            Some(18) => CertificateError::SelfSigned { subject: None },
            Some(19) => CertificateError::UntrustedRoot { root: None },
            Some(22) => CertificateError::ChainTooLong,
            Some(62 | 64) => CertificateError::NameMismatch {
                expected: expected.to_string(),
                names: Vec::new(),
                common_name: None,
            },
            _ => CertificateError::Other {
                reason: detail.to_string(),
            },
        }
    }

    /// The message of [`Error::Certificate`](crate::Error::Certificate) for `target`.
    pub(crate) fn describe(&self, f: &mut fmt::Formatter<'_>, target: &str) -> fmt::Result {
        let untrusted = |f: &mut fmt::Formatter<'_>, why: &str| {
            write!(f, "certificate of {target} is not trusted: {why}")
        };
        match self {
            CertificateError::Expired(Some(v)) | CertificateError::NotYetValid(Some(v)) => {
                dates(f, target, v)
            }
            CertificateError::Expired(None) => untrusted(f, "certificate has expired"),
            CertificateError::NotYetValid(None) => untrusted(f, "certificate is not yet valid"),
            CertificateError::NameMismatch {
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
                    (true, None) if expected.parse::<IpAddr>().is_ok() => {
                        write!(f, " (IP address mismatch)")
                    }
                    (true, None) => write!(f, " (hostname mismatch)"),
                }
            }
            CertificateError::UnknownIssuer(Some(end)) => {
                let which = if end.depth == 0 {
                    format!("its certificate \"{}\"", end.subject)
                } else {
                    format!("the last certificate the server sent, \"{}\",", end.subject)
                };
                write!(
                    f,
                    "certificate of {target} is not trusted: {which} is issued by \"{}\", which is not a trusted CA (and which the server did not send)",
                    end.issuer
                )
            }
            CertificateError::UnknownIssuer(None) => {
                untrusted(f, "unable to get local issuer certificate")
            }
            CertificateError::IncompleteChain {
                subject,
                issuer,
                url,
            } => write!(
                f,
                "certificate of {target} is not trusted: its certificate \"{subject}\" is issued by \"{issuer}\", which is not a trusted CA and which the server did not send; \"{issuer}\" is published at {url}"
            ),
            CertificateError::CaFileHoldsLeaf {
                file,
                subject,
                issuer,
            } => write!(
                f,
                "certificate of {target} is not trusted: the CA file {file} holds the server's own certificate (\"{subject}\"), not the CA that issued it (\"{issuer}\")"
            ),
            CertificateError::UntrustedRoot { root: Some(root) } => write!(
                f,
                "certificate of {target} is not trusted: self-signed certificate in certificate chain: the server sent its chain up to the root \"{root}\", which is not a trusted CA"
            ),
            CertificateError::UntrustedRoot { root: None } => {
                untrusted(f, "self-signed certificate in certificate chain")
            }
            CertificateError::SelfSigned {
                subject: Some(subject),
            } => write!(
                f,
                "certificate of {target} is not trusted: it is self-signed (\"{subject}\") and not a trusted certificate"
            ),
            CertificateError::SelfSigned { subject: None } => {
                untrusted(f, "self-signed certificate")
            }
            CertificateError::ChainTooLong => write!(
                f,
                "certificate chain of {target} is too long: OpenSSL follows at most 100 intermediate certificates (certificate chain too long)"
            ),
            CertificateError::Other { reason } => untrusted(f, reason),
        }
    }
}

fn dates(f: &mut fmt::Formatter<'_>, target: &str, v: &Validity) -> fmt::Result {
    let whose = if v.depth == 0 {
        format!("certificate of {target}")
    } else {
        format!(
            "the CA certificate \"{}\" in the chain of {target}",
            v.subject
        )
    };
    let (nb, na, now) = (utc(v.not_before), utc(v.not_after), utc(v.now));
    if v.now < v.not_before {
        write!(
            f,
            "{whose} is not yet valid: it is valid from {nb} until {na}, and it is now {now}"
        )
    } else {
        write!(
            f,
            "{whose} has expired: it was valid from {nb} until {na}, and it is now {now}"
        )
    }
}
