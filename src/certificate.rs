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
    let mut base64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            base64.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in base64.chunks(64) {
        // Only bytes of ALPHABET and '=' were pushed: ASCII.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
pub(crate) use imp::system_time;

#[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
mod imp {
    use std::net::IpAddr;
    use std::time::{Duration, SystemTime};

    use openssl::asn1::{Asn1Time, Asn1TimeRef};
    use openssl::hash::MessageDigest;
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
    /// one, else the OID in dotted form.
    fn name(name: &X509NameRef) -> String {
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
mod tests {
    use super::*;
    use std::time::Duration;

    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    /// A self-signed certificate with one SAN of each kind the view reads, valid from a
    /// UTCTime to a GeneralizedTime (past 2049), and its PEM as rcgen wrote it.
    fn every_kind() -> (Certificate, String) {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DE");
        dn.push(DnType::OrganizationName, "gracetls tests");
        dn.push(DnType::CommonName, "view \"test\"");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::DnsName("*.example.com".try_into().unwrap()),
            SanType::IpAddress([127, 0, 0, 1].into()),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
            SanType::Rfc822Name("someone@example.com".try_into().unwrap()),
            SanType::URI("https://example.com/x".try_into().unwrap()),
            SanType::OtherName((vec![1, 3, 6, 1, 4, 1, 99999, 1], "other".into())),
        ];
        params.not_before =
            rcgen::date_time_ymd(2001, 2, 3) + Duration::from_secs(4 * 3600 + 5 * 60 + 6);
        params.not_after = rcgen::date_time_ymd(2051, 12, 31) + Duration::from_secs(86_399);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let view = Certificate::from_der(cert.der().to_vec()).expect("a certificate");
        (view, cert.pem())
    }

    #[test]
    fn reads_subject_issuer_and_each_kind_of_name() {
        let (cert, _) = every_kind();
        assert_eq!(cert.subject(), r#"C=DE, O=gracetls tests, CN=view "test""#);
        assert_eq!(cert.issuer(), cert.subject(), "self-signed");
        let names: Vec<String> = cert
            .subject_alt_names()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "DNS:localhost",
                "DNS:*.example.com",
                "IP:127.0.0.1",
                "IP:2001:db8::1",
                "email:someone@example.com",
                "URI:https://example.com/x",
                "other",
            ]
        );
    }

    /// rcgen cannot write a directory name or a registered ID: OpenSSL's own builder can.
    #[test]
    fn reads_directory_names_and_marks_unknown_kinds() {
        use openssl::asn1::Asn1Time;
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::x509::extension::SubjectAlternativeName;
        use openssl::x509::{X509, X509Name};

        let mut dir = X509Name::builder().unwrap();
        dir.append_entry_by_text("O", "Dir Org").unwrap();
        dir.append_entry_by_text("CN", "dir name").unwrap();
        let mut subject = X509Name::builder().unwrap();
        subject.append_entry_by_text("CN", "openssl built").unwrap();
        let subject = subject.build();
        let key = PKey::ec_gen("prime256v1").unwrap();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        builder.set_subject_name(&subject).unwrap();
        builder.set_issuer_name(&subject).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder
            .set_not_before(&Asn1Time::from_unix(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::from_unix(86_400).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dir_name2(dir.build())
            .rid("1.2.3.4")
            .build(&builder.x509v3_context(None, None))
            .unwrap();
        builder.append_extension(san).unwrap();
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        let der = builder.build().to_der().unwrap();
        let cert = Certificate::from_der(der).expect("a certificate");
        assert_eq!(cert.subject(), "CN=openssl built");
        assert_eq!(
            cert.subject_alt_names(),
            [
                SubjectAltName::DirectoryName("O=Dir Org, CN=dir name".into()),
                SubjectAltName::Other,
            ]
        );
        assert_eq!(utc(cert.not_after()), "1970-01-02 00:00:00 UTC");
    }

    #[test]
    fn not_a_certificate_is_none() {
        assert_eq!(
            Certificate::from_der(b"\x30\x03\x02\x01\x01".to_vec()),
            None
        );
        assert_eq!(Certificate::from_der(Vec::new()), None);
    }

    #[test]
    fn dates_in_utc_both_encodings() {
        let (cert, _) = every_kind();
        assert_eq!(utc(cert.not_before()), "2001-02-03 04:05:06 UTC");
        assert_eq!(utc(cert.not_after()), "2051-12-31 23:59:59 UTC");
        assert_eq!(
            crate::utc::rfc3339(cert.not_after()),
            "2051-12-31T23:59:59Z"
        );
    }

    #[test]
    fn pem_and_fingerprint() {
        let (cert, rcgen_pem) = every_kind();
        assert_eq!(cert.to_pem(), rcgen_pem.replace("\r\n", "\n"));
        let fp = cert.sha256_fingerprint();
        assert_eq!(fp.len(), 95, "{fp}");
        assert!(
            fp.split(':')
                .all(|h| h.len() == 2 && h.chars().all(|c| matches!(c, '0'..='9' | 'A'..='F'))),
            "{fp}"
        );
        let x509 = openssl::x509::X509::from_der(cert.der()).unwrap();
        let want = x509.digest(openssl::hash::MessageDigest::sha256()).unwrap();
        assert_eq!(&cert.sha256()[..], &want[..]);
    }

    #[test]
    fn pem_of_every_length_modulo_three() {
        assert_eq!(pem("X", b""), "-----BEGIN X-----\n-----END X-----\n");
        assert_eq!(pem("X", b"f"), "-----BEGIN X-----\nZg==\n-----END X-----\n");
        assert_eq!(
            pem("X", b"fo"),
            "-----BEGIN X-----\nZm8=\n-----END X-----\n"
        );
        assert_eq!(
            pem("X", b"foo"),
            "-----BEGIN X-----\nZm9v\n-----END X-----\n"
        );
        let long = pem("X", &[0xFF; 48]);
        assert_eq!(long.lines().nth(1).map(str::len), Some(64));
        assert_eq!(long.lines().count(), 3);
        let longer = pem("X", &[0xFF; 49]);
        assert_eq!(longer.lines().nth(2), Some("/w=="));
    }

    #[test]
    fn one_line_whatever_the_names_hold() {
        let (mut cert, _) = every_kind();
        cert.alt_names = vec![
            SubjectAltName::Dns("evil\nname".into()),
            SubjectAltName::Ip([10, 0, 0, 1].into()),
        ];
        cert.subject = "CN=a\r\nb".into();
        let line = cert.to_string();
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(
            line.starts_with(r#"subject "CN=a\r\nb", issuer "C=DE, O=gracetls tests, CN=view \"test\"", valid 2001-02-03 04:05:06 UTC to 2051-12-31 23:59:59 UTC, names "DNS:evil\nname" IP:10.0.0.1, SHA-256 "#),
            "{line}"
        );
        cert.alt_names.clear();
        assert!(cert.to_string().contains(", names none, SHA-256 "));
    }
}
