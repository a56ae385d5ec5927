//! The session, shown: the `-v` line after the handshake, the `session` object of the JSON
//! report, and `--show-cert`, against `openssl s_server` serving a leaf whose subject, names
//! and dates the test chose. The referees: the versions and suites s_server was forced to
//! (and the `CIPHER is` it logged), `openssl x509 -fingerprint -sha256` on the PEM the test
//! wrote, s_server's log of the client's close_notify, and `openssl x509 -enddate` reading
//! what `--show-cert` printed.

#[macro_use]
mod common;

use common::*;
use std::time::Duration;

per_version! {
    verbose_line_and_report => verbose_line_and_report;
    alpn_choice_is_shown => alpn_choice_is_shown;
    show_cert_prints_pem_and_closes => show_cert_prints_pem_and_closes;
}

const SUBJECT: &str = "C=DE, O=gracetls tests, OU=session, CN=gracetls session test";
const ISSUER: &str = "O=gracetls tests, CN=gracetls test CA";
/// In the certificate's order; `DNS:localhost` and `IP:127.0.0.1` are what the client checks.
const NAMES: [&str; 6] = [
    "DNS:localhost",
    "DNS:session.example",
    "IP:127.0.0.1",
    "IP:::1",
    "email:ops@session.example",
    "URI:https://session.example/",
];
/// A UTCTime, and a GeneralizedTime (RFC 5280 writes dates past 2049 so).
const NOT_BEFORE: (&str, &str) = ("2001-02-03 04:05:06 UTC", "2001-02-03T04:05:06Z");
const NOT_AFTER: (&str, &str) = ("2051-06-07 08:09:10 UTC", "2051-06-07T08:09:10Z");
/// How `openssl x509 -noout -enddate` prints NOT_AFTER.
const ENDDATE: &str = "notAfter=Jun  7 08:09:10 2051 GMT";

/// The leaf with the fields above, signed by the test CA, and what `openssl x509` says of it.
struct Known {
    files: CertFiles,
    pem: String,
    fingerprint: String,
}

fn known_leaf(pki: &Pki) -> Known {
    known_leaf_valid(pki, NOT_AFTER_TIME)
}

/// NOT_AFTER as rcgen takes it: days from 2051-06-07, then seconds into that day.
const NOT_AFTER_TIME: ((i32, u8, u8), u64) = ((2051, 6, 7), 8 * 3600 + 9 * 60 + 10);

fn known_leaf_valid(pki: &Pki, ((y, m, d), secs): ((i32, u8, u8), u64)) -> Known {
    use rcgen::{DnType, SanType};
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CountryName, "DE");
    dn.push(DnType::OrganizationName, "gracetls tests");
    dn.push(DnType::OrganizationalUnitName, "session");
    dn.push(DnType::CommonName, "gracetls session test");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().unwrap()),
        SanType::DnsName("session.example".try_into().unwrap()),
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::IpAddress("::1".parse().unwrap()),
        SanType::Rfc822Name("ops@session.example".try_into().unwrap()),
        SanType::URI("https://session.example/".try_into().unwrap()),
    ];
    params.not_before =
        rcgen::date_time_ymd(2001, 2, 3) + Duration::from_secs(4 * 3600 + 5 * 60 + 6);
    params.not_after = rcgen::date_time_ymd(y, m, d) + Duration::from_secs(secs);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let (files, pem) = pki.leaf("session", params);
    let out = std::process::Command::new(OPENSSL)
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&files.cert)
        .output()
        .expect("run openssl x509 -fingerprint");
    let text = String::from_utf8_lossy(&out.stdout);
    // `sha256 Fingerprint=AB:CD:...` (OpenSSL 3; 1.1 wrote `SHA256 Fingerprint=`).
    let fingerprint = text
        .trim()
        .split_once('=')
        .map(|(_, fp)| fp.to_string())
        .unwrap_or_else(|| panic!("openssl x509 -fingerprint said {text:?}"));
    assert_eq!(fingerprint.len(), 95, "{text}");
    Known {
        files,
        pem,
        fingerprint,
    }
}

/// s_server with the known leaf, forced to one suite per version; the client with `flags`.
fn start(tls: Tls, extra: &[&str], flags: &[&str]) -> (Session<SServer>, Known) {
    let pki = Pki::new();
    let known = known_leaf(&pki);
    let mut server_args = vec![
        match tls {
            Tls::V13 => "-ciphersuites",
            Tls::V12 => "-cipher",
        },
        forced_suite(tls).0,
    ];
    server_args.extend_from_slice(extra);
    let srv = SServer::start_with(&known.files, tls, &server_args);
    let c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, flags));
    (Session { c, srv, pki }, known)
}

/// The suite s_server is forced to, as s_server names it (`CIPHER is ...`) and as gracetls
/// does (IANA). The leaf's key is ECDSA P-256 (rcgen's default), hence ECDSA for TLS 1.2.
fn forced_suite(tls: Tls) -> (&'static str, &'static str) {
    match tls {
        Tls::V13 => ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
        Tls::V12 => (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
    }
}

/// The `-v` line after `in N ms: `, as the test expects it from what it chose.
fn expected_line(tls: Tls, alpn: &str, known: &Known) -> String {
    format!(
        "{} {}, ALPN {alpn}; certificate subject \"{SUBJECT}\", issuer \"{ISSUER}\", valid {} to {}, names {}, SHA-256 {}",
        tls.python_name(),
        forced_suite(tls).1,
        NOT_BEFORE.0,
        NOT_AFTER.0,
        NAMES.join(" "),
        known.fingerprint
    )
}

/// The `session` object the report must hold.
fn expected_session(tls: Tls, alpn: Value, known: &Known) -> Value {
    json!({
        "version": tls.python_name(),
        "cipher_suite": forced_suite(tls).1,
        "alpn": alpn,
        "certificate": {
            "subject": SUBJECT,
            "issuer": ISSUER,
            "not_before": NOT_BEFORE.1,
            "not_after": NOT_AFTER.1,
            "subject_alt_names": NAMES,
            "sha256_fingerprint": known.fingerprint,
        }
    })
}

/// The one `connected to` line of `-v`, with what follows `in N ms: `.
fn session_line(s: &Session<SServer>) -> String {
    let prefix = format!(
        "gracetls: info: connected to 127.0.0.1:{0} (127.0.0.1:{0}) in ",
        s.srv.port
    );
    let text = s.c.stderr_text();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "one session line expected{}", s.dump());
    match lines[0][prefix.len()..].split_once(" ms: ") {
        Some((ms, rest)) if ms.parse::<u64>().is_ok() => rest.to_string(),
        _ => panic!("no `in N ms: ` in the session line{}", s.dump()),
    }
}

/// A line to the server, stdin EOF (`--on-eof close`), a clean exit 0.
fn hello_and_close(s: &mut Session<SServer>) {
    s.c.write_stdin(b"hello\n", &[&s.srv]);
    s.srv.expect_log("hello\n", WAIT, &[&s.c]);
    s.c.close_stdin();
    let st = s.wait_exit(WAIT);
    s.srv.assert_client_closed_cleanly(&[&s.c]);
    s.c.assert_code(st, 0, &[&s.srv]);
}

/// `-v` and `--report json` say the version and suite s_server was forced to, no ALPN, and
/// every field of the certificate as the test made it.
fn verbose_line_and_report(tls: Tls) {
    let (mut s, known) = start(tls, &[], &["-v", "--on-eof", "close"]);
    hello_and_close(&mut s);
    s.srv
        .expect_log(&format!("CIPHER is {}", forced_suite(tls).0), WAIT, &[&s.c]);
    assert_eq!(session_line(&s), expected_line(tls, "none", &known));
    s.c.assert_report(
        &clean_close(
            "stdin-eof",
            &[("session", expected_session(tls, Value::Null, &known))],
        ),
        &[&s.srv],
    );
}

/// Offered `h2,http/1.1`, s_server picks `http/1.1` (its only one): the line and the report
/// say so, and s_server logged the same choice.
fn alpn_choice_is_shown(tls: Tls) {
    let (mut s, known) = start(
        tls,
        &["-alpn", "http/1.1"],
        &["-v", "--on-eof", "close", "--alpn", "h2,http/1.1"],
    );
    hello_and_close(&mut s);
    s.srv
        .expect_log("ALPN protocols selected: http/1.1", WAIT, &[&s.c]);
    assert_eq!(session_line(&s), expected_line(tls, "http/1.1", &known));
    s.c.assert_report(
        &clean_close(
            "stdin-eof",
            &[("session", expected_session(tls, json!("http/1.1"), &known))],
        ),
        &[&s.srv],
    );
}

/// `--show-cert`: stdout is the leaf's PEM as the test wrote it; nothing of stdin is sent
/// (stdin stays open and the command still ends); close_notify, exit 0; `openssl x509
/// -enddate` reads the output. Without `-v` nothing but the report is on stderr.
fn show_cert_prints_pem_and_closes(tls: Tls) {
    let (mut s, known) = start(tls, &[], &["--show-cert"]);
    s.c.write_stdin(b"not for the server\n", &[&s.srv]);
    let st = s.wait_exit(WAIT);
    s.srv.assert_client_closed_cleanly(&[&s.c]);
    s.c.assert_code(st, 0, &[&s.srv]);
    assert!(
        !s.srv.text().contains("not for the server"),
        "stdin reached the server under --show-cert{}",
        s.dump()
    );
    let stdout = s.c.stdout_text();
    assert_eq!(
        stdout.replace("\r\n", "\n"),
        known.pem.replace("\r\n", "\n"),
        "--show-cert printed something else than the leaf{}",
        s.dump()
    );
    s.c.assert_report(
        &clean_close(
            "show-cert",
            &[
                ("bytes_out", json!(0)),
                ("session", expected_session(tls, Value::Null, &known)),
            ],
        ),
        &[&s.srv],
    );
    let stderr = s.c.stderr_text();
    assert_eq!(stderr.lines().count(), 1, "only the report{}", s.dump());
    let mut x509 = Tool::spawn(
        OPENSSL,
        &["x509".into(), "-noout".into(), "-enddate".into()],
    );
    if let Some(mut stdin) = x509.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(stdout.as_bytes())
            .expect("feed openssl x509");
    }
    let st = x509.proc.wait_timeout(WAIT).expect("openssl x509 ends");
    x509.out.wait_eof(WAIT);
    assert_eq!(st.code(), Some(0), "{}", x509.dump());
    assert_eq!(x509.out.text().trim_end(), ENDDATE, "{}", x509.dump());
}

/// The README's pipeline, as a shell runs it.
#[test]
fn show_cert_into_openssl_enddate() {
    let pki = Pki::new();
    let known = known_leaf(&pki);
    let srv = SServer::start_with(&known.files, Tls::V13, &[]);
    let script = format!(
        "\"$0\" --ca-file '{}' --show-cert 127.0.0.1:{} | {OPENSSL} x509 -noout -enddate",
        pki.ca.display(),
        srv.port
    );
    let mut sh = Tool::spawn("/bin/sh", &["-c".into(), script, GRACETLS.into()]);
    sh.stdin = None;
    let st = sh
        .proc
        .wait_timeout(WAIT)
        .unwrap_or_else(|| panic!("the pipeline did not end{}{}", sh.dump(), srv.dump()));
    sh.out.wait_eof(WAIT);
    srv.assert_client_closed_cleanly(&[&sh]);
    assert_eq!(st.code(), Some(0), "{}{}", sh.dump(), srv.dump());
    assert_eq!(sh.out.text().trim_end(), ENDDATE, "{}", sh.dump());
}

/// What scripts that check expiry need most: an expired certificate is refused (exit 1,
/// the dates named), and with `--insecure` `--show-cert` still prints it, closing cleanly.
#[test]
fn show_cert_of_an_expired_certificate_needs_insecure() {
    let pki = Pki::new();
    let known = known_leaf_valid(&pki, ((2011, 1, 2), 3 * 3600 + 4 * 60 + 5));
    let srv = SServer::start_with(&known.files, Tls::V13, &[]);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &["--show-cert"]));
    let st = c.wait_exit(WAIT, &[&srv]);
    c.assert_code(st, 1, &[&srv]);
    assert!(
        c.stderr_text().contains("has expired")
            && c.stderr_text().contains("until 2011-01-02 03:04:05 UTC"),
        "the refusal names the dates{}{}",
        c.dump(),
        srv.dump()
    );
    assert!(c.stdout_bytes().is_empty(), "nothing printed{}", c.dump());
    // A fresh s_server: this one's log holds the refused handshake's alert.
    drop(srv);
    let srv = SServer::start_with(&known.files, Tls::V13, &[]);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--insecure", "--show-cert"],
    ));
    let st = c.wait_exit(WAIT, &[&srv]);
    c.assert_code(st, 0, &[&srv]);
    assert_eq!(
        c.stdout_text().replace("\r\n", "\n"),
        known.pem.replace("\r\n", "\n"),
        "{}",
        c.dump()
    );
    c.assert_report(&clean_close("show-cert", &[]), &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
}
