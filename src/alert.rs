//! The alert a server ended the connection with, by name.
//!
//! OpenSSL reports a received alert as a reason such as `tlsv1 alert internal error`, and one
//! it has no name for as `reason(1247)`: its code for a received alert is 1000 plus the
//! alert's number. A person needs the alert's name, or, when TLS defines none, its number
//! said as such, not OpenSSL's code.

/// OpenSSL's offset of a received alert's number in its reason codes (`SSL_AD_REASON_OFFSET`).
const REASON_OFFSET: u32 = 1000;

/// The alert named in an OpenSSL reason text, if the reason is a received alert: the name
/// as TLS writes it with spaces (`internal error`), or `alert 247` for a number TLS does
/// not define.
pub(crate) fn received_alert(reason: &str) -> Option<String> {
    reason.split("; ").find_map(one_reason)
}

fn one_reason(reason: &str) -> Option<String> {
    if let Some((prefix, name)) = reason.split_once(" alert ") {
        // `sslv3 alert …`, `tlsv1 alert …`, `tlsv13 alert …`: OpenSSL's received alerts.
        let prefix = prefix.trim();
        if prefix.starts_with("sslv3") || prefix.starts_with("tlsv1") {
            return Some(name.trim().to_string());
        }
    }
    let code: u32 = reason
        .trim()
        .strip_prefix("reason(")?
        .strip_suffix(')')?
        .parse()
        .ok()?;
    let number = u8::try_from(code.checked_sub(REASON_OFFSET)?).ok()?;
    Some(match name(number) {
        Some(name) => name.to_string(),
        None => format!("alert {number}"),
    })
}

/// Whether TLS defines an alert of this number (for the wording around an undefined one).
pub(crate) fn is_defined(alert: &str) -> bool {
    !alert.starts_with("alert ")
}

/// The alerts of RFC 8446 §6, RFC 5246 §7.2 and RFC 7301, named the way OpenSSL names them.
fn name(number: u8) -> Option<&'static str> {
    Some(match number {
        0 => "close notify",
        10 => "unexpected message",
        20 => "bad record mac",
        21 => "decryption failed",
        22 => "record overflow",
        30 => "decompression failure",
        40 => "handshake failure",
        41 => "no certificate",
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "certificate revoked",
        45 => "certificate expired",
        46 => "certificate unknown",
        47 => "illegal parameter",
        48 => "unknown ca",
        49 => "access denied",
        50 => "decode error",
        51 => "decrypt error",
        60 => "export restriction",
        70 => "protocol version",
        71 => "insufficient security",
        80 => "internal error",
        86 => "inappropriate fallback",
        90 => "user canceled",
        100 => "no renegotiation",
        109 => "missing extension",
        110 => "unsupported extension",
        111 => "certificate unobtainable",
        112 => "unrecognized name",
        113 => "bad certificate status response",
        114 => "bad certificate hash value",
        115 => "unknown psk identity",
        116 => "certificate required",
        120 => "no application protocol",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_alerts_openssl_names() {
        assert_eq!(
            received_alert("tlsv1 alert internal error").as_deref(),
            Some("internal error")
        );
        assert_eq!(
            received_alert("sslv3 alert unexpected message").as_deref(),
            Some("unexpected message")
        );
        assert_eq!(
            received_alert("tlsv13 alert certificate required").as_deref(),
            Some("certificate required")
        );
    }

    #[test]
    fn numbers_an_alert_tls_does_not_define() {
        let alert = received_alert("reason(1247)");
        assert_eq!(alert.as_deref(), Some("alert 247"));
        assert!(!is_defined("alert 247"));
        assert_eq!(
            received_alert("reason(1080)").as_deref(),
            Some("internal error")
        );
    }

    #[test]
    fn other_reasons_are_not_alerts() {
        for reason in [
            "bad record mac",
            "reason(42)",
            "reason(2300)",
            "reason(",
            "decryption failed or bad record mac",
            "wrong version number",
            "",
        ] {
            assert_eq!(received_alert(reason), None, "{reason}");
        }
        assert_eq!(
            received_alert("record layer failure; tlsv1 alert decode error").as_deref(),
            Some("decode error")
        );
    }
}
