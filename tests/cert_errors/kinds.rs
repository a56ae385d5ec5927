//! The same failures through the library: a program matches [`Error::kind`], the certificate
//! error and the alert, with their facts, rather than reading messages.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, SystemTime};

use gracetls::error::{Alert, CertificateError, ChainEnd, ErrorKind, Validity};
use gracetls::{Config, Error, Stream, TlsVersion};

use super::*;

/// A server with the leaf `spec` signed by a fresh CA that the client trusts; the error of
/// connecting to it by `host`.
fn connect_to_leaf(spec: &Leaf, host: &str) -> Error {
    let files = Files::new("cert-kinds");
    let ca = ca("gracetls cert_errors CA", None);
    let ca_path = files.write("ca.pem", &ca.cert_pem);
    let server = files.pair("server", leaf(&ca, spec));
    let srv = SServer::start_with(&server, Tls::V13, &[]);
    let config = Config::new().ca_file(&ca_path);
    match Stream::connect(&config, &format!("{host}:{}", srv.port)) {
        Ok(_) => panic!("connected to a server it must reject{}", dumps(&[&srv])),
        Err(e) => e,
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[test]
fn expired_is_a_certificate_error_with_its_dates() {
    let spec = Leaf {
        dates: Some(((2020, 1, 1), (2021, 1, 1))),
        ..SERVER
    };
    let e = connect_to_leaf(&spec, "127.0.0.1");
    assert_eq!(e.kind(), ErrorKind::Certificate, "{e}");
    let Some(CertificateError::Expired(Some(Validity {
        depth, not_after, ..
    }))) = e.certificate_error()
    else {
        panic!("not an expired certificate with its dates: {e:?}");
    };
    assert_eq!(*depth, 0);
    assert_eq!(secs(*not_after), 1_609_459_200, "2021-01-01");
}

#[test]
fn not_yet_valid_is_a_certificate_error_with_its_dates() {
    let spec = Leaf {
        dates: Some(((2999, 1, 1), (3000, 1, 1))),
        ..SERVER
    };
    let e = connect_to_leaf(&spec, "127.0.0.1");
    assert!(
        matches!(e.certificate_error(), Some(CertificateError::NotYetValid(Some(v))) if v.now < v.not_before),
        "{e:?}"
    );
}

#[test]
fn wrong_name_gives_expected_and_presented_names() {
    let spec = Leaf {
        names: &["wrong.example", "10.1.2.3"],
        ..SERVER
    };
    let e = connect_to_leaf(&spec, "localhost");
    assert_eq!(e.kind(), ErrorKind::Certificate, "{e}");
    let Some(CertificateError::NameMismatch {
        expected, names, ..
    }) = e.certificate_error()
    else {
        panic!("not a name mismatch: {e:?}");
    };
    assert_eq!(expected, "localhost");
    assert_eq!(names, &["DNS:wrong.example", "IP:10.1.2.3"]);
}

/// A private CA the client does not trust: the issuer, by name.
#[test]
fn unknown_ca_names_the_issuer() {
    let files = Files::new("cert-kinds");
    let ca = ca("gracetls cert_errors private CA", None);
    let server = files.pair("server", leaf(&ca, &SERVER));
    let srv = SServer::start_with(&server, Tls::V12, &[]);
    let e = match Stream::connect(&Config::new(), &format!("127.0.0.1:{}", srv.port)) {
        Ok(_) => panic!("trusted a private CA{}", dumps(&[&srv])),
        Err(e) => e,
    };
    let Some(CertificateError::UnknownIssuer(Some(ChainEnd { depth, issuer, .. }))) =
        e.certificate_error()
    else {
        panic!("not an unknown issuer with its name: {e:?}");
    };
    assert_eq!(
        (*depth, issuer.as_str()),
        (0, "gracetls cert_errors private CA")
    );
}

/// A server that wants a client certificate: in TLS 1.2 it ends the handshake with the alert
/// `handshake failure`; in TLS 1.3 the handshake succeeds and the first read meets the alert
/// `certificate required`. Both are the same kind.
#[test]
fn client_certificate_required_is_one_kind_in_both_versions() {
    for tls in [Tls::V12, Tls::V13] {
        let files = Files::new("cert-kinds");
        let ca = ca("gracetls cert_errors CA", None);
        let ca_path = files.write("ca.pem", &ca.cert_pem);
        let server = files.pair("server", leaf(&ca, &SERVER));
        let srv = SServer::start_with(&server, tls, &["-Verify", "1", "-CAfile", &ca_path]);
        let config = Config::new()
            .ca_file(&ca_path)
            .read_timeout(Duration::from_secs(10));
        let target = format!("127.0.0.1:{}", srv.port);
        let e = match Stream::connect(&config, &target) {
            Err(e) => e,
            Ok(mut stream) => {
                let mut buf = [0u8; 16];
                let err = match stream.read(&mut buf) {
                    Ok(n) => panic!("read {n} bytes from a server that refused us"),
                    Err(err) => err,
                };
                Error::from_io(err, gracetls::error::Operation::Read, &target)
            }
        };
        assert_eq!(
            e.kind(),
            ErrorKind::ClientCertificateRequired,
            "{tls:?}: {e:?}"
        );
        let expected = match tls {
            Tls::V12 => Alert::HandshakeFailure,
            Tls::V13 => Alert::CertificateRequired,
        };
        assert_eq!(e.alert(), Some(expected), "{tls:?}: {e:?}");
    }
}

/// A server that speaks only TLS 1.2 to a client that wants 1.3 ends the handshake with the
/// alert `protocol version`, in the clear.
#[test]
fn protocol_version_alert_is_received_as_a_value() {
    let pki = Pki::new();
    let srv = SServer::start(&pki, Tls::V12);
    let config = Config::new()
        .ca_file(&pki.ca)
        .min_version(TlsVersion::Tls13);
    let e = match Stream::connect(&config, &format!("127.0.0.1:{}", srv.port)) {
        Ok(_) => panic!("a TLS 1.2 server accepted TLS 1.3{}", dumps(&[&srv])),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::AlertReceived, "{e:?}");
    assert_eq!(e.alert(), Some(Alert::ProtocolVersion), "{e:?}");
}

/// A server that answers in HTTP.
#[test]
fn a_server_that_is_not_tls_is_its_own_kind() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local address").port();
    let server = thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        let mut hello = [0u8; 512];
        let _ = socket.read(&mut hello);
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let config = Config::new().connect_timeout(Duration::from_secs(5));
    let e = match Stream::connect(&config, &format!("127.0.0.1:{port}")) {
        Ok(_) => panic!("connected to an HTTP server"),
        Err(e) => e,
    };
    server.join().expect("server thread");
    assert_eq!(e.kind(), ErrorKind::NotTls, "{e:?}");
}
