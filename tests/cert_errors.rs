//! Errors that tell the truth: every certificate and key problem ends in one line on stderr
//! that names the cause with its facts (dates, names, the missing issuer, the two files) and
//! what to do, promptly: exit code 1, or 2 for a client key that does not fit, found before
//! connecting. Each test runs a real `openssl s_server` on 127.0.0.1 with certificates
//! made here at run time by rcgen.

#[macro_use]
mod common;
#[path = "cert_errors/kinds.rs"]
mod kinds;

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use common::*;

/// A certificate error, diagnosis included, must be on the screen within this.
const PROMPT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Certificates: a CA can sign leaves and intermediates; dates and names are the test's.

struct Ca {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn dn(common_name: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "gracetls cert_errors");
    dn.push(rcgen::DnType::CommonName, common_name);
    dn
}

/// A root CA (self-signed) or, with `parent`, an intermediate CA signed by it.
fn ca(common_name: &str, parent: Option<&Ca>) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name = dn(common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = match parent {
        None => params.self_signed(&key).expect("self-signed CA"),
        Some(parent) => {
            params.use_authority_key_identifier_extension = true;
            params
                .signed_by(&key, &parent.issuer)
                .expect("intermediate")
        }
    };
    Ca {
        cert_pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A date: year, month, day.
type Ymd = (i32, u8, u8);

/// What a leaf differs in from the usual `localhost` + 127.0.0.1 server certificate.
struct Leaf<'a> {
    common_name: &'a str,
    names: &'a [&'a str],
    client: bool,
    /// (notBefore, notAfter).
    dates: Option<(Ymd, Ymd)>,
    /// A key made elsewhere (PEM), instead of a fresh P-256 one.
    key_pem: Option<&'a str>,
    /// Where its issuer's certificate is published (Authority Information Access).
    ca_issuers: Option<&'a str>,
}

const SERVER: Leaf<'static> = Leaf {
    common_name: "localhost",
    names: &["localhost", "127.0.0.1"],
    client: false,
    dates: None,
    key_pem: None,
    ca_issuers: None,
};

const CLIENT: Leaf<'static> = Leaf {
    common_name: "gracetls cert_errors client",
    names: &["client.example"],
    client: true,
    dates: None,
    key_pem: None,
    ca_issuers: None,
};

/// The leaf's certificate and key, PEM.
fn leaf(issuer: &Ca, spec: &Leaf) -> (String, String) {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let names: Vec<String> = spec.names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
    params.distinguished_name = dn(spec.common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    if spec.key_pem.is_some() {
        params
            .key_usages
            .push(rcgen::KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![if spec.client { ClientAuth } else { ServerAuth }];
    if let Some(((y0, m0, d0), (y1, m1, d1))) = spec.dates {
        params.not_before = rcgen::date_time_ymd(y0, m0, d0);
        params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    }
    if let Some(url) = spec.ca_issuers {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                authority_info_access(url),
            ));
    }
    let key = match spec.key_pem {
        Some(pem) => rcgen::KeyPair::from_pem(pem).expect("leaf key from PEM"),
        None => rcgen::KeyPair::generate().expect("leaf key"),
    };
    let cert = params.signed_by(&key, &issuer.issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

/// The DER of an Authority Information Access extension with one `CA Issuers` URL (RFC 5280
/// 4.2.2.1), for a URL shorter than 100 bytes.
fn authority_info_access(url: &str) -> Vec<u8> {
    const CA_ISSUERS: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    assert!(url.len() < 100, "a short URL: one-byte DER lengths");
    let mut location = vec![0x86, url.len() as u8];
    location.extend_from_slice(url.as_bytes());
    let mut access = vec![0x30, (CA_ISSUERS.len() + location.len()) as u8];
    access.extend_from_slice(&CA_ISSUERS);
    access.extend_from_slice(&location);
    let mut syntax = vec![0x30, access.len() as u8];
    syntax.extend_from_slice(&access);
    syntax
}

/// Files of one test, removed at its end.
struct Files {
    dir: TempDir,
}

impl Files {
    fn new(label: &str) -> Files {
        Files {
            dir: TempDir::new(label),
        }
    }

    fn write(&self, name: &str, contents: &str) -> String {
        self.dir
            .write(name, contents.as_bytes())
            .display()
            .to_string()
    }

    fn pair(&self, name: &str, (cert, key): (String, String)) -> CertFiles {
        CertFiles {
            cert: PathBuf::from(self.write(&format!("{name}.pem"), &cert)),
            key: PathBuf::from(self.write(&format!("{name}.key"), &key)),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Runs `openssl ARGS` (a key conversion); panics with its output if it fails.
fn openssl(args: &[&str]) {
    let out = Command::new(OPENSSL)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {OPENSSL}: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// Running the client.

/// Runs gracetls with `args` against `srv` until it exits (stdin stays open).
fn run(args: &[String], srv: &SServer) -> (Client, ExitStatus, Duration) {
    let mut c = Client::spawn(args);
    let st = c.wait_exit(WAIT, &[srv]);
    let took = c
        .proc
        .exited_at()
        .map_or(Duration::MAX, |at| at - c.started);
    (c, st, took)
}

/// `--ca-file CA ... HOST:PORT`.
fn args(ca: &str, host: &str, port: u16, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--ca-file".to_string(), ca.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("{host}:{port}"));
    args
}

/// Asserts the error ending: exit 1, promptly, no panic, exactly one line on stderr, which
/// holds every one of `phrases` and none of `absent`. Returns the line.
fn one_line(
    c: &Client,
    st: ExitStatus,
    took: Duration,
    phrases: &[&str],
    absent: &[&str],
    srv: &SServer,
) -> String {
    one_line_code(c, st, 1, took, phrases, absent, srv)
}

/// [`one_line`] with exit code `code`.
fn one_line_code(
    c: &Client,
    st: ExitStatus,
    code: i32,
    took: Duration,
    phrases: &[&str],
    absent: &[&str],
    srv: &SServer,
) -> String {
    c.assert_no_panic(&[srv]);
    c.assert_code(st, code, &[srv]);
    let lines = c.message_lines();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr: {lines:#?}{}",
        dumps(&[c, srv])
    );
    let line = &lines[0];
    println!("{line}");
    for phrase in phrases {
        assert!(
            line.contains(phrase),
            "the error line lacks {phrase:?}: {line:?}{}",
            dumps(&[c, srv])
        );
    }
    for phrase in absent {
        assert!(
            !line.contains(phrase),
            "the error line must not say {phrase:?}: {line:?}{}",
            dumps(&[c, srv])
        );
    }
    assert!(
        took < PROMPT,
        "the error took {took:?} (more than {PROMPT:?}){}",
        dumps(&[c, srv])
    );
    line.clone()
}

/// The diagnostic connection ended with our close_notify, and s_server saw no bare EOF.
fn diagnosis_closed_cleanly(c: &Client, srv: &SServer) {
    srv.expect_log(SS_CLOSE_NOTIFY_READ, WAIT, &[c]);
    assert!(
        !srv.text().contains("unexpected eof"),
        "s_server saw a connection end without close_notify{}",
        dumps(&[c, srv])
    );
}

/// A server with the leaf `spec` signed by a fresh CA that the client trusts; the client
/// connects to `host`. Returns the client's error line.
fn rejected_leaf(spec: &Leaf, host: &str, phrases: &[&str], absent: &[&str]) -> String {
    let files = Files::new("cert-errors");
    let ca = ca("gracetls cert_errors CA", None);
    let ca_path = files.write("ca.pem", &ca.cert_pem);
    let server = files.pair("server", leaf(&ca, spec));
    let srv = SServer::start_with(&server, Tls::V13, &[]);
    let (c, st, took) = run(&args(&ca_path, host, srv.port, &[]), &srv);
    let line = one_line(&c, st, took, phrases, absent, &srv);
    diagnosis_closed_cleanly(&c, &srv);
    line
}

// ---------------------------------------------------------------------------
// 1. Dates.

#[test]
fn expired_certificate_gives_its_dates() {
    let spec = Leaf {
        dates: Some(((2020, 1, 1), (2021, 1, 1))),
        ..SERVER
    };
    rejected_leaf(
        &spec,
        "127.0.0.1",
        &[
            "certificate of 127.0.0.1:",
            " has expired: it was valid from 2020-01-01 00:00:00 UTC until 2021-01-01 00:00:00 UTC, and it is now 20",
            "; the server's certificate must be renewed",
        ],
        &["--ca-file", "not trusted"],
    );
}

#[test]
fn not_yet_valid_certificate_gives_its_dates() {
    let spec = Leaf {
        dates: Some(((2999, 1, 1), (3000, 1, 1))),
        ..SERVER
    };
    rejected_leaf(
        &spec,
        "127.0.0.1",
        &[
            " is not yet valid: it is valid from 2999-01-01 00:00:00 UTC until 3000-01-01 00:00:00 UTC, and it is now 20",
            "check this machine's clock",
        ],
        &["--ca-file", "not trusted"],
    );
}

// ---------------------------------------------------------------------------
// 2. Names.

#[test]
fn name_mismatch_names_both_sides() {
    let spec = Leaf {
        common_name: "wrong.example",
        names: &["wrong.example", "10.1.2.3"],
        ..SERVER
    };
    rejected_leaf(
        &spec,
        "localhost",
        &[
            "does not match the name localhost: it holds DNS:wrong.example, IP:10.1.2.3",
            "--servername",
        ],
        &["--ca-file"],
    );
}

#[test]
fn name_mismatch_without_alternative_names_gives_the_common_name() {
    let spec = Leaf {
        common_name: "only-cn.example",
        names: &[],
        ..SERVER
    };
    rejected_leaf(
        &spec,
        "localhost",
        &[
            "does not match the name localhost: it holds no subject alternative names, only the common name only-cn.example",
        ],
        &["--ca-file"],
    );
}

// ---------------------------------------------------------------------------
// 3. Chains.

/// The leaf is signed by an intermediate that the server does not send; the client trusts
/// the root. The client cannot tell a missing intermediate from an untrusted CA: the message
/// says what is true of both, and the hint gives both remedies.
#[test]
fn missing_intermediate_names_the_issuer() {
    let files = Files::new("cert-errors");
    let root = ca("gracetls cert_errors root", None);
    let intermediate = ca("gracetls cert_errors intermediate", Some(&root));
    let root_path = files.write("root.pem", &root.cert_pem);
    let server = files.pair("server", leaf(&intermediate, &SERVER));
    let srv = SServer::start_with(&server, Tls::V13, &[]);
    let (c, st, took) = run(&args(&root_path, "127.0.0.1", srv.port, &[]), &srv);
    one_line(
        &c,
        st,
        took,
        &[
            "is not trusted: its certificate \"localhost\" is issued by \"gracetls cert_errors intermediate\", which is not a trusted CA (and which the server did not send); ",
            "if \"gracetls cert_errors intermediate\" is a CA you trust (a private CA), pass its certificate with --ca-file PEM; if it is an intermediate CA, the server must send it too",
        ],
        &["incomplete chain"],
        &srv,
    );
    diagnosis_closed_cleanly(&c, &srv);
}

/// As above, with the leaf naming where its issuer is published, as public CAs write it:
/// the message gives the URL, and the hint calls the issuer most likely an intermediate.
#[test]
fn missing_intermediate_with_its_published_url() {
    let files = Files::new("cert-errors");
    let root = ca("gracetls cert_errors root", None);
    let intermediate = ca("gracetls cert_errors intermediate", Some(&root));
    let root_path = files.write("root.pem", &root.cert_pem);
    let spec = Leaf {
        ca_issuers: Some("http://ca.example/intermediate.crt"),
        ..SERVER
    };
    let server = files.pair("server", leaf(&intermediate, &spec));
    let srv = SServer::start_with(&server, Tls::V13, &[]);
    let (c, st, took) = run(&args(&root_path, "127.0.0.1", srv.port, &[]), &srv);
    one_line(
        &c,
        st,
        took,
        &[&format!(
            "gracetls: error: certificate of 127.0.0.1:{} is not trusted: its certificate \"localhost\" is issued by \"gracetls cert_errors intermediate\", which is not a trusted CA and which the server did not send; \"gracetls cert_errors intermediate\" is published at http://ca.example/intermediate.crt; \"gracetls cert_errors intermediate\" is most likely an intermediate CA, which the server must send with its own certificate (tell its administrator); if it is a CA you trust, fetch it from there and pass it with --ca-file PEM",
            srv.port
        )],
        &[],
        &srv,
    );
    diagnosis_closed_cleanly(&c, &srv);
}

/// The server sends its intermediate, but the root above it is neither sent nor trusted.
#[test]
fn chain_that_stops_below_an_untrusted_root_names_the_missing_issuer() {
    let files = Files::new("cert-errors");
    let root = ca("gracetls cert_errors untrusted root", None);
    let intermediate = ca("gracetls cert_errors intermediate", Some(&root));
    let trusted = ca("gracetls cert_errors trusted CA", None);
    let trusted_path = files.write("trusted.pem", &trusted.cert_pem);
    let chain = files.write("chain.pem", &intermediate.cert_pem);
    let server = files.pair("server", leaf(&intermediate, &SERVER));
    let srv = SServer::start_with(&server, Tls::V13, &["-cert_chain", &chain]);
    let (c, st, took) = run(&args(&trusted_path, "127.0.0.1", srv.port, &[]), &srv);
    one_line(
        &c,
        st,
        took,
        &[
            "is not trusted: the last certificate the server sent, \"gracetls cert_errors intermediate\", is issued by \"gracetls cert_errors untrusted root\", which is not a trusted CA (and which the server did not send); ",
            "if \"gracetls cert_errors untrusted root\" is a CA you trust (a private CA), pass its certificate with --ca-file PEM",
        ],
        &["incomplete chain"],
        &srv,
    );
    diagnosis_closed_cleanly(&c, &srv);
}

/// A server under a private CA, and no --ca-file: the message names the CA, and the hint
/// says to pass it with --ca-file. (The system roots are trusted; they hold no CA made here.)
#[test]
fn private_ca_without_ca_file_names_the_ca_to_pass() {
    let files = Files::new("cert-errors");
    let ca = ca("gracetls cert_errors private CA", None);
    let server = files.pair("server", leaf(&ca, &SERVER));
    let srv = SServer::start_with(&server, Tls::V13, &[]);
    let target = vec![format!("127.0.0.1:{}", srv.port)];
    let (c, st, took) = run(&target, &srv);
    one_line(
        &c,
        st,
        took,
        &[&format!(
            "gracetls: error: certificate of 127.0.0.1:{} is not trusted: its certificate \"localhost\" is issued by \"gracetls cert_errors private CA\", which is not a trusted CA (and which the server did not send); if \"gracetls cert_errors private CA\" is a CA you trust (a private CA), pass its certificate with --ca-file PEM; if it is an intermediate CA, the server must send it too",
            srv.port
        )],
        &["incomplete chain"],
        &srv,
    );
    diagnosis_closed_cleanly(&c, &srv);
}

per_version! {
    ca_file_with_the_server_certificate_says_so => ca_file_with_the_server_certificate_says_so;
}

/// `--ca-file` holds the server's own certificate instead of its CA's: the message says so,
/// names the file and the CA to pass instead.
fn ca_file_with_the_server_certificate_says_so(tls: Tls) {
    let files = Files::new("cert-errors");
    let ca = ca("gracetls cert_errors CA", None);
    let server = files.pair("server", leaf(&ca, &SERVER));
    let leaf_path = server.cert.display().to_string();
    let srv = SServer::start_with(&server, tls, &[]);
    let (c, st, took) = run(&args(&leaf_path, "127.0.0.1", srv.port, &[]), &srv);
    one_line(
        &c,
        st,
        took,
        &[&format!(
            "gracetls: error: certificate of 127.0.0.1:{} is not trusted: the CA file {leaf_path} holds the server's own certificate (\"localhost\"), not the CA that issued it (\"gracetls cert_errors CA\"); pass the certificate of the CA \"gracetls cert_errors CA\" with --ca-file PEM instead",
            srv.port
        )],
        &["incomplete chain"],
        &srv,
    );
    diagnosis_closed_cleanly(&c, &srv);
}

/// The server sends its whole chain, up to a root that the client does not trust.
#[test]
fn whole_chain_to_an_untrusted_root_names_the_root() {
    let files = Files::new("cert-errors");
    let root = ca("gracetls cert_errors untrusted root", None);
    let intermediate = ca("gracetls cert_errors intermediate", Some(&root));
    let trusted = ca("gracetls cert_errors trusted CA", None);
    let trusted_path = files.write("trusted.pem", &trusted.cert_pem);
    let chain = files.write(
        "chain.pem",
        &format!("{}{}", intermediate.cert_pem, root.cert_pem),
    );
    let server = files.pair("server", leaf(&intermediate, &SERVER));
    let srv = SServer::start_with(&server, Tls::V12, &["-cert_chain", &chain]);
    let (c, st, took) = run(&args(&trusted_path, "127.0.0.1", srv.port, &[]), &srv);
    one_line(
        &c,
        st,
        took,
        &[
            "is not trusted: self-signed certificate in certificate chain: the server sent its chain up to the root \"gracetls cert_errors untrusted root\", which is not a trusted CA",
            "pass it with --ca-file",
        ],
        &["incomplete"],
        &srv,
    );
    diagnosis_closed_cleanly(&c, &srv);
}

// ---------------------------------------------------------------------------
// 4. A server that requires a client certificate.

per_version! {
    client_certificate_required => client_certificate_required;
}

fn client_certificate_required(tls: Tls) {
    let files = Files::new("cert-errors");
    let ca = ca("gracetls cert_errors CA", None);
    let ca_path = files.write("ca.pem", &ca.cert_pem);
    let server = files.pair("server", leaf(&ca, &SERVER));
    let srv = SServer::start_with(&server, tls, &["-Verify", "1", "-CAfile", &ca_path]);
    let (c, st, took) = run(&args(&ca_path, "127.0.0.1", srv.port, &[]), &srv);
    let alert = match tls {
        Tls::V12 => "ended the handshake with the alert \"handshake failure\"",
        Tls::V13 => "ended the connection with the alert \"certificate required\"",
    };
    one_line(
        &c,
        st,
        took,
        &[
            &format!(
                "the server 127.0.0.1:{} requires a client certificate",
                srv.port
            ),
            alert,
            "; pass a client certificate and its key with --cert PEM --key PEM",
        ],
        &["not valid TLS"],
        &srv,
    );
}

// ---------------------------------------------------------------------------
// 5 and 6. Client keys.

#[test]
fn key_that_does_not_match_names_both_files() {
    let files = Files::new("cert-errors");
    let ca = ca("gracetls cert_errors CA", None);
    let ca_path = files.write("ca.pem", &ca.cert_pem);
    let server = files.pair("server", leaf(&ca, &SERVER));
    let client = files.pair("client", leaf(&ca, &CLIENT));
    let other = files.pair("other", leaf(&ca, &CLIENT));
    let srv = SServer::start_with(&server, Tls::V13, &["-Verify", "1", "-CAfile", &ca_path]);
    let cert = client.cert.display().to_string();
    let key = other.key.display().to_string();
    let (c, st, took) = run(
        &args(
            &ca_path,
            "127.0.0.1",
            srv.port,
            &["--cert", &cert, "--key", &key],
        ),
        &srv,
    );
    one_line_code(
        &c,
        st,
        2,
        took,
        &[
            &format!(
                "the client key {key} does not match the client certificate {cert}: they hold different public keys"
            ),
            "pass the key that was made with that certificate",
        ],
        &[],
        &srv,
    );
}

/// A client certificate whose key is given in the traditional format `convert` writes is
/// used as if it were PKCS#8: the server sees the certificate and a clean close.
fn traditional_key_is_accepted(key_pem: Option<&str>, convert: &[&str], marker: &str) {
    let files = Files::new("cert-errors");
    let ca = ca("gracetls cert_errors CA", None);
    let ca_path = files.write("ca.pem", &ca.cert_pem);
    let server = files.pair("server", leaf(&ca, &SERVER));
    let client = files.pair("client", leaf(&ca, &Leaf { key_pem, ..CLIENT }));
    let traditional = files.path("client-traditional.key");
    let pkcs8 = client.key.display().to_string();
    let mut command = convert.to_vec();
    command.extend(["-in", &pkcs8, "-out", &traditional]);
    openssl(&command);
    let text = std::fs::read_to_string(&traditional).expect("the converted key");
    assert!(
        text.starts_with(marker),
        "openssl {convert:?} wrote no {marker}: {text}"
    );
    let mut srv = SServer::start_with(
        &server,
        Tls::V13,
        &["-Verify", "1", "-verify_return_error", "-CAfile", &ca_path],
    );
    let cert = client.cert.display().to_string();
    let mut c = Client::spawn(args(
        &ca_path,
        "127.0.0.1",
        srv.port,
        &["--cert", &cert, "--key", &traditional],
    ));
    c.write_stdin(b"signed in\n", &[&srv]);
    srv.expect_log("signed in\n", WAIT, &[&c]);
    srv.send_line("welcome");
    assert!(
        c.stdout.wait_for("welcome\n", WAIT),
        "no answer from the server{}",
        dumps(&[&c, &srv])
    );
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv]);
    c.assert_code(st, 0, &[&srv]);
    srv.assert_client_closed_cleanly(&[&c]);
    assert!(
        srv.text().contains("gracetls cert_errors client"),
        "s_server did not show the client certificate{}",
        dumps(&[&c, &srv])
    );
}

#[test]
fn pkcs1_rsa_key_is_accepted() {
    let files = Files::new("cert-errors-rsa");
    let rsa = files.path("rsa.key");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &rsa,
    ]);
    let rsa_pem = std::fs::read_to_string(&rsa).expect("the RSA key");
    traditional_key_is_accepted(
        Some(&rsa_pem),
        &["rsa", "-traditional"],
        concat!("-----BEGIN ", "RSA PRIVATE KEY-----"),
    );
}

#[test]
fn sec1_ec_key_is_accepted() {
    traditional_key_is_accepted(None, &["ec"], concat!("-----BEGIN ", "EC PRIVATE KEY-----"));
}

// ---------------------------------------------------------------------------
// 7. -vv shows gracetls's debug lines, not native-tls's.

/// Needs the `init_logging` change in src/cli.rs (gracetls's own debug lines only).
#[test]
fn debug_log_has_no_load_verify_locations_line() {
    let files = Files::new("cert-errors");
    let ca = ca("gracetls cert_errors CA", None);
    let ca_path = files.write("ca.pem", &ca.cert_pem);
    let server = files.pair("server", leaf(&ca, &SERVER));
    let mut srv = SServer::start_with(&server, Tls::V13, &[]);
    let mut c = Client::spawn(args(&ca_path, "127.0.0.1", srv.port, &["-vv"]));
    srv.expect_log("ACCEPT", WAIT, &[&c]);
    srv.send_line("hello");
    assert!(c.stdout.wait_for("hello\n", WAIT), "{}", dumps(&[&c, &srv]));
    c.close_stdin();
    let st = c.wait_exit(WAIT, &[&srv]);
    c.assert_code(st, 0, &[&srv]);
    let err = c.stderr_text();
    assert!(err.contains("gracetls: debug: "), "no debug line: {err}");
    assert!(!err.contains("load_verify_locations"), "{err}");
}
