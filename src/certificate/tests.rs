//! Unit tests of the certificate view: each kind of name, both date encodings, PEM and the
//! fingerprint, one line whatever a certificate holds.

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
