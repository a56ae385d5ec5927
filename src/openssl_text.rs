//! The one place that reads OpenSSL's error text. native-tls hands its failures over as text
//! only, such as
//! `error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1890: (self-signed certificate)`;
//! this module turns that text into numbers (OpenSSL's reason codes, X.509 verification
//! codes, alert numbers), from which the rest of the crate builds typed errors. Where the code
//! is in the text (`0A000086`), the code decides; the words are the fallback, and every
//! wording recognised here has a test, OpenSSL 1.1's, 3.0's and later 3.x's where they differ.

use crate::alert::Alert;

/// What one failure's text says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// OpenSSL's reasons, without codes and file names (`certificate verify failed`), or the
    /// text itself when it holds none: for messages only.
    pub(crate) reason: String,
    /// What the reasons mean.
    pub(crate) cause: Cause,
}

/// What a failure is, as far as OpenSSL's text tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The server's certificate was rejected: `detail` is the verification result OpenSSL
    /// gives in parentheses (`self-signed certificate`), `code` its `X509_V_ERR_*` number
    /// where the wording is known.
    Verify { code: Option<i32>, detail: String },
    /// The server sent this alert.
    Alert(Alert),
    /// The bytes that came back are not TLS.
    NotTls,
    /// The peer's stream ended in the middle of the exchange.
    Eof,
    /// No TLS version both sides allow (`unsupported protocol`).
    NoCommonVersion,
    /// A client sent no certificate to a server that requires one.
    NoCertificate,
    /// Anything else: only the reason says what.
    Other,
}

/// OpenSSL's library number of its SSL routines (`ERR_LIB_SSL`).
const LIB_SSL: u32 = 20;
/// OpenSSL's reason code of a received alert is this plus the alert's number
/// (`SSL_AD_REASON_OFFSET`).
const ALERT_OFFSET: u32 = 1000;

// SSL_R_* reason codes of OpenSSL's ssl.h / sslerr.h, the same in 1.1 and 3.x.
const CERTIFICATE_VERIFY_FAILED: u32 = 134;
const HTTPS_PROXY_REQUEST: u32 = 155;
const HTTP_REQUEST: u32 = 156;
const PEER_DID_NOT_RETURN_A_CERTIFICATE: u32 = 199;
const UNSUPPORTED_PROTOCOL: u32 = 258;
const PACKET_LENGTH_TOO_LONG: u32 = 198;
const UNKNOWN_PROTOCOL: u32 = 252;
const WRONG_VERSION_NUMBER: u32 = 267;
const UNEXPECTED_EOF_WHILE_READING: u32 = 294;
const RECORD_LAYER_FAILURE: u32 = 313;

/// What the SSL reason codes and words mean, the codes first.
const REASONS: [(u32, &str, Cause); 10] = [
    (
        CERTIFICATE_VERIFY_FAILED,
        "certificate verify failed",
        Cause::Other,
    ),
    (WRONG_VERSION_NUMBER, "wrong version number", Cause::NotTls),
    (
        PACKET_LENGTH_TOO_LONG,
        "packet length too long",
        Cause::NotTls,
    ),
    // Later OpenSSL 3 releases, whose new record layer says this of bytes that are not
    // TLS (3.0 has no words for the code: `reason(313)`).
    (RECORD_LAYER_FAILURE, "record layer failure", Cause::NotTls),
    (UNKNOWN_PROTOCOL, "unknown protocol", Cause::NotTls),
    // What a server reads when a client speaks plain HTTP to it, or a proxy's CONNECT.
    (HTTP_REQUEST, "http request", Cause::NotTls),
    (HTTPS_PROXY_REQUEST, "https proxy request", Cause::NotTls),
    (
        UNSUPPORTED_PROTOCOL,
        "unsupported protocol",
        Cause::NoCommonVersion,
    ),
    (
        PEER_DID_NOT_RETURN_A_CERTIFICATE,
        "peer did not return a certificate",
        Cause::NoCertificate,
    ),
    (
        UNEXPECTED_EOF_WHILE_READING,
        "unexpected eof while reading",
        Cause::Eof,
    ),
];

/// X.509 verification results (`X509_V_ERR_*`, stable numbers since OpenSSL 0.9) as
/// OpenSSL words them, each wording it has used.
const VERIFY: [(i32, &str); 14] = [
    (2, "unable to get issuer certificate"),
    (9, "certificate is not yet valid"),
    // Later OpenSSL 3 releases (3.0 says the first half only).
    (
        9,
        "certificate is not yet valid or the system clock is incorrect",
    ),
    (10, "certificate has expired"),
    (18, "self-signed certificate"),
    // OpenSSL 1.1.
    (18, "self signed certificate"),
    (19, "self-signed certificate in certificate chain"),
    (19, "self signed certificate in certificate chain"),
    (20, "unable to get local issuer certificate"),
    (21, "unable to verify the first certificate"),
    (22, "certificate chain too long"),
    // `Hostname mismatch` in older releases, `hostname mismatch` in recent ones (3.0.19).
    (62, "hostname mismatch"),
    (64, "IP address mismatch"),
    (23, "certificate revoked"),
];

/// Reads a failure of the TLS library: the reason codes of OpenSSL's error queue where the
/// error carries it (through `source()`, or inside an `io::Error`), and its text for the
/// rest (the words for messages, the verification result).
pub(crate) fn read_error(error: &(dyn std::error::Error + 'static)) -> Failure {
    let text = error.to_string();
    let queue = queue_codes(error);
    let (reason, detail, codes) = split(&text);
    classify(reason, detail, if queue.is_empty() { codes } else { queue })
}

/// Reads one failure's text (a native-tls error's `to_string()`).
pub(crate) fn read(text: &str) -> Failure {
    let (reason, detail, codes) = split(text);
    classify(reason, detail, codes)
}

fn classify(reason: String, detail: Option<String>, codes: Vec<u32>) -> Failure {
    // The codes first, then the words; an alert before anything else: what the server said
    // is the cause, what OpenSSL noticed afterwards its consequence.
    let found: Vec<Cause> = codes
        .iter()
        .filter_map(|&code| by_code(code))
        .chain(reason.split("; ").filter_map(by_words))
        .collect();
    let cause = found
        .iter()
        .find(|c| matches!(c, Cause::Alert(_)))
        .or(found.first())
        .cloned()
        .unwrap_or(Cause::Other);
    let cause = match (cause, detail) {
        (Cause::Other, _) if !is_verify_failure(&reason, &codes) => Cause::Other,
        (Cause::Other, Some(detail)) => Cause::Verify {
            code: verify_code(&detail),
            detail,
        },
        (Cause::Other, None) => Cause::Verify {
            code: None,
            detail: reason.clone(),
        },
        (cause, _) => cause,
    };
    Failure { reason, cause }
}

/// The `X509_V_ERR_*` number of a verification result in OpenSSL's words.
pub(crate) fn verify_code(detail: &str) -> Option<i32> {
    let detail = detail.trim();
    VERIFY
        .iter()
        .find(|(_, words)| words.eq_ignore_ascii_case(detail))
        .map(|&(code, _)| code)
}

fn is_verify_failure(reason: &str, codes: &[u32]) -> bool {
    codes.contains(&CERTIFICATE_VERIFY_FAILED)
        || reason
            .split("; ")
            .any(|r| r.eq_ignore_ascii_case("certificate verify failed"))
}

fn by_code(code: u32) -> Option<Cause> {
    if let Some(number) = code.checked_sub(ALERT_OFFSET) {
        return u8::try_from(number)
            .ok()
            .map(|n| Cause::Alert(Alert::from(n)));
    }
    REASONS
        .iter()
        .find(|(c, _, cause)| *c == code && *cause != Cause::Other)
        .map(|(_, _, cause)| cause.clone())
}

/// The meaning of one reason in words: OpenSSL's own, or `reason(N)` for a code it has no
/// words for, or native-tls's `unexpected EOF`.
fn by_words(reason: &str) -> Option<Cause> {
    let reason = reason.trim();
    if let Some(code) = reason
        .strip_prefix("reason(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
    {
        return by_code(code);
    }
    if reason.eq_ignore_ascii_case("unexpected EOF") {
        return Some(Cause::Eof);
    }
    if let Some(cause) = REASONS
        .iter()
        .find(|(_, words, cause)| reason.eq_ignore_ascii_case(words) && *cause != Cause::Other)
    {
        return Some(cause.2.clone());
    }
    alert_in_words(reason).map(Cause::Alert)
}

/// A received alert as OpenSSL words it: `sslv3 alert handshake failure`,
/// `tlsv1 alert internal error`, `tlsv13 alert certificate required`, and for a few alerts
/// without `alert`: `tlsv1 unrecognized name`.
fn alert_in_words(reason: &str) -> Option<Alert> {
    let (prefix, name) = reason.split_once(' ')?;
    if !matches!(prefix, "sslv3" | "tlsv1" | "tlsv13") {
        return None;
    }
    let name = name.strip_prefix("alert ").unwrap_or(name);
    Alert::from_name(name)
}

/// The reason codes of the SSL routines in OpenSSL's error queue, as the error carries it:
/// an `ErrorStack` somewhere in its `source()` chain (a handshake's failure), or an
/// `ssl::Error` inside an `io::Error` (a read's or a write's).
#[cfg(tls_openssl)]
fn queue_codes(error: &(dyn std::error::Error + 'static)) -> Vec<u32> {
    let codes = |stack: &openssl::error::ErrorStack| -> Vec<u32> {
        stack
            .errors()
            .iter()
            .filter(|e| u32::try_from(e.library_code()) == Ok(LIB_SSL))
            .filter_map(|e| u32::try_from(e.reason_code()).ok())
            .collect()
    };
    let mut next = Some(error);
    // A short chain: native-tls wraps the queue two deep.
    for _ in 0..8 {
        let Some(e) = next else { break };
        if let Some(stack) = e.downcast_ref::<openssl::error::ErrorStack>() {
            return codes(stack);
        }
        if let Some(stack) = e
            .downcast_ref::<openssl::ssl::Error>()
            .and_then(openssl::ssl::Error::ssl_error)
        {
            return codes(stack);
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    Vec::new()
}

#[cfg(not(tls_openssl))]
fn queue_codes(_: &(dyn std::error::Error + 'static)) -> Vec<u32> {
    Vec::new()
}

/// The reasons, the verification detail in parentheses, and the SSL reason codes of a text
/// made of lines such as `error:CODE:library:function:reason:file:line:data`, joined by `, `.
fn split(text: &str) -> (String, Option<String>, Vec<u32>) {
    let (body, detail) = match (text.rfind(" ("), text.ends_with(')')) {
        (Some(i), true) => (&text[..i], Some(text[i + 2..text.len() - 1].to_string())),
        _ => (text, None),
    };
    let mut reasons = Vec::new();
    let mut codes = Vec::new();
    for line in body.split(", ") {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 5 || !fields[0].ends_with("error") {
            continue;
        }
        reasons.push(fields[4]);
        if let Some(code) = ssl_reason_code(fields[1]) {
            codes.push(code);
        }
    }
    let reason = if reasons.is_empty() {
        body.trim().to_string()
    } else {
        reasons.join("; ")
    };
    (reason, detail, codes)
}

/// The reason of an SSL-library error code in hex: OpenSSL 3 packs the library into bits
/// 23..31 and the reason below; OpenSSL 1.1 packs the library into bits 24..31, a function
/// into 12..23 and the reason below.
fn ssl_reason_code(hex: &str) -> Option<u32> {
    let code = u32::from_str_radix(hex, 16).ok()?;
    if (code >> 23) & 0xff == LIB_SSL {
        Some(code & 0x7f_ffff)
    } else if code >> 24 == LIB_SSL {
        Some(code & 0xfff)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
