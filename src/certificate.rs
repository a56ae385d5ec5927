//! The server's certificate, read: subject, issuer, validity, subject alternative names,
//! SHA-256 fingerprint, PEM.
//!
//! OpenSSL reads it, through the `openssl` crate that native-tls already builds on: the same
//! parser that has just verified this certificate, no second X.509 parser in the tree, and
//! names and fingerprints as `openssl x509` prints them. Where native-tls does not use
//! OpenSSL (Windows, Apple) there is no reading, and the session has no certificate to show.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::utc::utc;

/// The server's certificate as the handshake received it (the leaf only: native-tls gives
/// no chain), read once when the session starts.
///
/// ```no_run
/// use gracetls::{Config, Stream};
///
/// let stream = Stream::connect(&Config::new(), "example.com:443")?;
/// if let Some(cert) = stream.session().peer_certificate() {
///     println!("{}", cert.subject());
///     for name in cert.subject_alt_names() {
///         println!("  {name}"); // DNS:example.com
///     }
///     println!("expires {:?}", cert.not_after());
///     print!("{}", cert.to_pem());
/// }
/// # Ok::<(), gracetls::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    not_before: SystemTime,
    not_after: SystemTime,
    alt_names: Vec<SubjectAltName>,
    sha256: [u8; 32],
}

/// One entry of a certificate's subject alternative names. Its `Display` is the form OpenSSL's
/// configuration takes: `DNS:example.com`, `IP:127.0.0.1`, `email:a@example.com`,
/// `URI:https://example.com/`, `dirName:O=Example, CN=a`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectAltName {
    /// A DNS name, possibly a wildcard (`*.example.com`).
    Dns(String),
    /// An IP address (v4 or v6).
    Ip(IpAddr),
    /// An email address (`rfc822Name`).
    Email(String),
    /// A URI.
    Uri(String),
    /// A distinguished name, written like [`Certificate::subject`].
    DirectoryName(String),
    /// A kind this crate does not read (`otherName`, `registeredID`, `x400Address`,
    /// `ediPartyName`), or an IP address of a length that is neither v4 nor v6.
    Other,
}

impl fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectAltName::Dns(name) => write!(f, "DNS:{name}"),
            SubjectAltName::Ip(ip) => write!(f, "IP:{ip}"),
            SubjectAltName::Email(email) => write!(f, "email:{email}"),
            SubjectAltName::Uri(uri) => write!(f, "URI:{uri}"),
            SubjectAltName::DirectoryName(name) => write!(f, "dirName:{name}"),
            SubjectAltName::Other => f.write_str("other"),
        }
    }
}

impl Certificate {
    /// Reads a DER certificate; `None` if it is not one, or where OpenSSL is not the TLS
    /// library.
    pub(crate) fn from_der(der: Vec<u8>) -> Option<Certificate> {
        imp::read(der)
    }

    /// The certificate, DER-encoded, as the server sent it.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM (`-----BEGIN CERTIFICATE-----`, 64 columns, LF line ends), as
    /// `openssl x509` writes it.
    pub fn to_pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    /// The subject, its attributes in the certificate's order with OpenSSL's short names:
    /// `O=Example, CN=example.com` (`openssl x509 -noout -subject` prints the same with
    /// spaces around `=`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer, written like [`subject`](Self::subject).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Valid from (`notBefore`).
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// Valid until (`notAfter`), inclusive.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The subject alternative names in the certificate's order; empty when it has none.
    pub fn subject_alt_names(&self) -> &[SubjectAltName] {
        &self.alt_names
    }

    /// SHA-256 of the DER encoding: what certificate pins and fingerprints are made of.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// [`sha256`](Self::sha256) as `openssl x509 -noout -fingerprint -sha256` prints it:
    /// uppercase hex, bytes separated by colons (`AB:CD:...`, 95 characters).
    pub fn sha256_fingerprint(&self) -> String {
        let hex: Vec<String> = self.sha256.iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }
}

/// One line for a log: `subject "O=Example, CN=example.com", issuer "...", valid 2026-01-01
/// 00:00:00 UTC to 2027-01-01 00:00:00 UTC, names DNS:example.com IP:192.0.2.1, SHA-256
/// AB:CD:...`. Names and subjects that hold control characters or quotes are escaped, so
/// the line stays one line whatever the certificate holds.
impl fmt::Display for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject {:?}, issuer {:?}, valid {} to {}, names ",
            self.subject,
            self.issuer,
            utc(self.not_before),
            utc(self.not_after)
        )?;
        if self.alt_names.is_empty() {
            f.write_str("none")?;
        }
        for (i, name) in self.alt_names.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let text = name.to_string();
            if text.chars().all(|c| c.is_ascii_graphic() && c != '"') {
                f.write_str(&text)?;
            } else {
                write!(f, "{text:?}")?;
            }
        }
        write!(f, ", SHA-256 {}", self.sha256_fingerprint())
    }
}

/// RFC 7468 text encoding: base64 in lines of 64, between BEGIN and END lines.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = format!("-----BEGIN {label}-----\n");
    // 48 bytes make one line of 64 characters.
    for line in der.chunks(48) {
        for chunk in line.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() {
                    char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize])
                } else {
                    '='
                });
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
pub(crate) use imp::{common_name, name as x509_name, system_time};

#[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
mod imp {
    use std::net::IpAddr;
    use std::time::{Duration, SystemTime};

    use openssl::asn1::{Asn1Time, Asn1TimeRef};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::x509::{GeneralNameRef, X509, X509NameRef};

    use super::{Certificate, SubjectAltName};

    pub(super) fn read(der: Vec<u8>) -> Option<Certificate> {
        let x509 = match X509::from_der(&der) {
            Ok(x509) => x509,
            Err(e) => {
                log::debug!("cannot read the server's certificate: {e}");
                return None;
            }
        };
        let digest = x509.digest(MessageDigest::sha256()).ok()?;
        let alt_names = x509
            .subject_alt_names()
            .map(|names| names.iter().map(alt_name).collect())
            .unwrap_or_default();
        Some(Certificate {
            subject: name(x509.subject_name()),
            issuer: name(x509.issuer_name()),
            not_before: system_time(x509.not_before())?,
            not_after: system_time(x509.not_after())?,
            alt_names,
            sha256: <[u8; 32]>::try_from(&digest[..]).ok()?,
            der,
        })
    }

    /// `O=Example, CN=example.com`: the attributes in order, short names where OpenSSL has
    /// one, else the OID in dotted form. The crate's one way of writing an X.509 name.
    pub(crate) fn name(name: &X509NameRef) -> String {
        name.entries()
            .map(|e| {
                let object = e.object();
                let key = match object.nid().short_name() {
                    Ok(short) => short.to_string(),
                    Err(_) => object.to_string(),
                };
                let value = e.data().to_string().unwrap_or_else(|_| "?".into());
                format!("{key}={value}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The subject's (first) common name, if it has one.
    pub(crate) fn common_name(name: &X509NameRef) -> Option<String> {
        let entry = name.entries_by_nid(Nid::COMMONNAME).next()?;
        entry.data().to_string().ok()
    }

    fn alt_name(general: &GeneralNameRef) -> SubjectAltName {
        if let Some(dns) = general.dnsname() {
            return SubjectAltName::Dns(dns.to_string());
        }
        if let Some(bytes) = general.ipaddress() {
            return match bytes {
                &[a, b, c, d] => SubjectAltName::Ip(IpAddr::from([a, b, c, d])),
                _ => <[u8; 16]>::try_from(bytes)
                    .map_or(SubjectAltName::Other, |v6| SubjectAltName::Ip(v6.into())),
            };
        }
        if let Some(email) = general.email() {
            return SubjectAltName::Email(email.to_string());
        }
        if let Some(uri) = general.uri() {
            return SubjectAltName::Uri(uri.to_string());
        }
        if let Some(dir) = general.directory_name() {
            return SubjectAltName::DirectoryName(name(dir));
        }
        SubjectAltName::Other
    }

    /// An ASN.1 time (UTCTime or GeneralizedTime, always UTC in a certificate) as a
    /// `SystemTime`, by its distance from the epoch.
    pub(crate) fn system_time(t: &Asn1TimeRef) -> Option<SystemTime> {
        let epoch = Asn1Time::from_unix(0).ok()?;
        let diff = epoch.diff(t).ok()?;
        let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
        let magnitude = Duration::from_secs(secs.unsigned_abs());
        if secs >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(magnitude)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(magnitude)
        }
    }
}

#[cfg(any(target_os = "windows", target_vendor = "apple"))]
mod imp {
    use super::Certificate;

    pub(super) fn read(_: Vec<u8>) -> Option<Certificate> {
        None
    }
}

#[cfg(all(test, not(any(target_os = "windows", target_vendor = "apple"))))]
mod tests;
