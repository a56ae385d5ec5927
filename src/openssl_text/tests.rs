//! Every form of OpenSSL's text that `openssl_text` recognises, in each wording.

use super::*;

fn cause(text: &str) -> Cause {
    read(text).cause
}

#[test]
fn verification_failures_with_their_detail() {
    let f = read(
        "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1890: (self-signed certificate)",
    );
    assert_eq!(f.reason, "certificate verify failed");
    let verify = |code, detail: &str| Cause::Verify {
        code,
        detail: detail.into(),
    };
    assert_eq!(f.cause, verify(Some(18), "self-signed certificate"));
    // OpenSSL 1.1: another code layout and the older wording.
    assert_eq!(
        cause(
            "error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1915: (self signed certificate)"
        ),
        verify(Some(18), "self signed certificate")
    );
    // Words alone, without codes.
    assert_eq!(
        cause("certificate verify failed (Hostname mismatch)"),
        verify(Some(62), "Hostname mismatch")
    );
    assert_eq!(
        cause("certificate verify failed"),
        verify(None, "certificate verify failed")
    );
}

#[test]
fn every_verification_wording() {
    for (code, words) in VERIFY {
        assert_eq!(verify_code(words), Some(code), "{words}");
    }
    assert_eq!(verify_code("hostname mismatch"), Some(62));
    assert_eq!(verify_code("Hostname mismatch"), Some(62));
    assert_eq!(verify_code("certificate is not yet valid"), Some(9));
    assert_eq!(verify_code("some new wording"), None);
}

#[test]
fn not_tls_in_every_wording() {
    for text in [
        "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl/record/ssl3_record.c:354:",
        "error:1408F10B:SSL routines:ssl3_get_record:wrong version number:ssl/record/ssl3_record.c:332:",
        "error:0A0000C6:SSL routines:tls_get_more_records:packet length too long:ssl/record/methods/tls_common.c:662:",
        // OpenSSL 3.2+ reports bytes that are not TLS as a record layer failure; 3.0
        // has no words for that code.
        "error:0A000139:SSL routines::record layer failure:ssl/record/rec_layer_s3.c:696:",
        "error:0A000139:SSL routines::reason(313):ssl/record/rec_layer_s3.c:696:",
        "error:0A0000FC:SSL routines::unknown protocol:ssl/statem/statem_lib.c:1951:",
        "wrong version number",
        "record layer failure",
    ] {
        assert_eq!(cause(text), Cause::NotTls, "{text}");
    }
}

#[test]
fn alerts_by_code_and_by_words() {
    for (text, alert) in [
        (
            "error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:ssl/record/rec_layer_s3.c:1605:SSL alert number 40",
            Alert::HandshakeFailure,
        ),
        (
            "error:14094410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:ssl/record/rec_layer_s3.c:1544:SSL alert number 40",
            Alert::HandshakeFailure,
        ),
        (
            "error:0A00045C:SSL routines::tlsv13 alert certificate required:ssl/record/rec_layer_s3.c:907:SSL alert number 116",
            Alert::CertificateRequired,
        ),
        (
            "error:0A0004DF:SSL routines::reason(1247):ssl/record/rec_layer_s3.c:1605:SSL alert number 247",
            Alert::Unknown(247),
        ),
        ("tlsv1 alert internal error", Alert::InternalError),
        ("sslv3 alert unexpected message", Alert::UnexpectedMessage),
        (
            "tlsv13 alert certificate required",
            Alert::CertificateRequired,
        ),
        ("tlsv1 alert unknown ca", Alert::UnknownCa),
        ("tlsv1 unrecognized name", Alert::UnrecognizedName),
        (
            "tlsv1 alert no application protocol",
            Alert::NoApplicationProtocol,
        ),
        ("tlsv1 alert protocol version", Alert::ProtocolVersion),
        ("reason(1247)", Alert::Unknown(247)),
        ("reason(1080)", Alert::InternalError),
        (
            "record layer failure; tlsv1 alert decode error",
            Alert::DecodeError,
        ),
    ] {
        assert_eq!(cause(text), Cause::Alert(alert), "{text}");
    }
}

/// OpenSSL's queue, reached through the error rather than its text: an SSL routine's
/// failure (`no cipher match`) gives its reason code, also inside an `io::Error`.
#[cfg(tls_openssl)]
#[test]
fn reason_codes_from_the_error_queue() {
    const NO_CIPHER_MATCH: u32 = 185;
    let mut ctx =
        openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::tls()).expect("an SSL context");
    let Err(stack) = ctx.set_cipher_list("no such cipher") else {
        panic!("OpenSSL took a cipher list that names none");
    };
    assert!(queue_codes(&stack).contains(&NO_CIPHER_MATCH), "{stack}");
    let wrapped = std::io::Error::other(stack);
    assert!(queue_codes(&wrapped).contains(&NO_CIPHER_MATCH));
    assert_eq!(read_error(&wrapped).cause, Cause::Other);
    assert!(queue_codes(&std::io::Error::other("words")).is_empty());
}

#[test]
fn ends_and_others() {
    assert_eq!(cause("unexpected EOF"), Cause::Eof);
    assert_eq!(
        cause(
            "error:0A000126:SSL routines::unexpected eof while reading:ssl/record/rec_layer_s3.c:308:"
        ),
        Cause::Eof
    );
    for text in [
        "bad record mac",
        "reason(42)",
        "reason(2300)",
        "reason(",
        "decryption failed or bad record mac",
        "plain words",
        "",
    ] {
        assert_eq!(cause(text), Cause::Other, "{text}");
    }
    assert_eq!(read("plain words").reason, "plain words");
    assert_eq!(
        read(
            "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl/record/ssl3_record.c:354:"
        )
        .reason,
        "wrong version number"
    );
}

#[test]
fn what_a_server_reads_of_its_clients() {
    // A client speaking plain HTTP, or a proxy's CONNECT: not TLS. OpenSSL 3, then 1.1.
    for text in [
        "error:0A00009C:SSL routines:ssl3_get_record:http request:ssl/record/ssl3_record.c:345:",
        "error:0A00009B:SSL routines:ssl3_get_record:https proxy request:ssl/record/ssl3_record.c:349:",
        "error:1408F09C:SSL routines:ssl3_get_record:http request:ssl/record/ssl3_record.c:322:",
        "http request",
    ] {
        assert_eq!(cause(text), Cause::NotTls, "{text}");
    }
    // No version in common.
    for text in [
        "error:0A000102:SSL routines:tls_early_post_process_client_hello:unsupported protocol:ssl/statem/statem_srvr.c:1657:",
        "error:14209102:SSL routines:tls_early_post_process_client_hello:unsupported protocol:ssl/statem/statem_srvr.c:1661:",
        "unsupported protocol",
    ] {
        assert_eq!(cause(text), Cause::NoCommonVersion, "{text}");
    }
    // A required client certificate not sent.
    for text in [
        "error:0A0000C7:SSL routines:tls_process_client_certificate:peer did not return a certificate:ssl/statem/statem_srvr.c:3511:",
        "error:1417C0C7:SSL routines:tls_process_client_certificate:peer did not return a certificate:ssl/statem/statem_srvr.c:3671:",
    ] {
        let f = read(text);
        assert_eq!(f.cause, Cause::NoCertificate, "{text}");
        assert_eq!(f.reason, "peer did not return a certificate");
    }
}
