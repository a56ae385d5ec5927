//! The TLS alerts a server can end a connection or a handshake with, by their number on the
//! wire (RFC 8446 §6, RFC 5246 §7.2, RFC 7301), and their names as people read them.

use std::fmt;

/// The description of an alert the server sent: why it ended the connection or the
/// handshake. [`Display`](fmt::Display) gives its name as TLS writes it, with spaces
/// (`internal error`), or `alert N` for a number TLS does not define.
///
/// ```
/// use gracetls::Alert;
///
/// assert_eq!(Alert::from(80), Alert::InternalError);
/// assert_eq!(Alert::InternalError.to_string(), "internal error");
/// assert_eq!(Alert::from(247).to_string(), "alert 247");
/// assert_eq!(Alert::from(247).number(), 247);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Alert {
    /// 0: the sender will send nothing more.
    CloseNotify,
    /// 10: a message arrived that was not expected at that point.
    UnexpectedMessage,
    /// 20: a record failed its integrity check.
    BadRecordMac,
    /// 21: a record could not be decrypted (TLS 1.0 and older).
    DecryptionFailed,
    /// 22: a record was longer than TLS allows.
    RecordOverflow,
    /// 30: decompression failed (TLS 1.2 and older).
    DecompressionFailure,
    /// 40: no acceptable set of parameters (versions, ciphers, a certificate) was found.
    HandshakeFailure,
    /// 41: no certificate (SSL 3.0 only).
    NoCertificate,
    /// 42: a certificate was corrupt or its signature did not verify.
    BadCertificate,
    /// 43: a certificate was of a type the receiver does not support.
    UnsupportedCertificate,
    /// 44: a certificate was revoked by its issuer.
    CertificateRevoked,
    /// 45: a certificate has expired or is not yet valid.
    CertificateExpired,
    /// 46: a certificate was unacceptable for another reason.
    CertificateUnknown,
    /// 47: a field of a handshake message was out of range or inconsistent.
    IllegalParameter,
    /// 48: the certificate's CA is not trusted by the receiver.
    UnknownCa,
    /// 49: a valid certificate was received, but access was refused.
    AccessDenied,
    /// 50: a message could not be decoded.
    DecodeError,
    /// 51: a cryptographic check of the handshake failed.
    DecryptError,
    /// 60: export restriction (TLS 1.0 only).
    ExportRestriction,
    /// 70: the receiver speaks none of the versions offered.
    ProtocolVersion,
    /// 71: the receiver wants stronger parameters than were offered.
    InsufficientSecurity,
    /// 80: the receiver failed for a reason of its own.
    InternalError,
    /// 86: a downgrade was detected.
    InappropriateFallback,
    /// 90: the sender cancelled the handshake.
    UserCanceled,
    /// 100: renegotiation refused.
    NoRenegotiation,
    /// 109: a required extension was missing.
    MissingExtension,
    /// 110: an extension appeared where it must not.
    UnsupportedExtension,
    /// 111: a certificate could not be obtained from a URL.
    CertificateUnobtainable,
    /// 112: the receiver serves no host of the name sent (SNI).
    UnrecognizedName,
    /// 113: an invalid OCSP response was sent.
    BadCertificateStatusResponse,
    /// 114: a certificate's hash did not match.
    BadCertificateHashValue,
    /// 115: the pre-shared key identity is unknown.
    UnknownPskIdentity,
    /// 116: the receiver requires a client certificate and got none.
    CertificateRequired,
    /// 120: the receiver speaks none of the application protocols offered (ALPN).
    NoApplicationProtocol,
    /// A number TLS does not define.
    Unknown(u8),
}

/// Each alert with its number and name, the one table both directions read.
const ALERTS: [(Alert, u8, &str); 34] = [
    (Alert::CloseNotify, 0, "close notify"),
    (Alert::UnexpectedMessage, 10, "unexpected message"),
    (Alert::BadRecordMac, 20, "bad record mac"),
    (Alert::DecryptionFailed, 21, "decryption failed"),
    (Alert::RecordOverflow, 22, "record overflow"),
    (Alert::DecompressionFailure, 30, "decompression failure"),
    (Alert::HandshakeFailure, 40, "handshake failure"),
    (Alert::NoCertificate, 41, "no certificate"),
    (Alert::BadCertificate, 42, "bad certificate"),
    (Alert::UnsupportedCertificate, 43, "unsupported certificate"),
    (Alert::CertificateRevoked, 44, "certificate revoked"),
    (Alert::CertificateExpired, 45, "certificate expired"),
    (Alert::CertificateUnknown, 46, "certificate unknown"),
    (Alert::IllegalParameter, 47, "illegal parameter"),
    (Alert::UnknownCa, 48, "unknown ca"),
    (Alert::AccessDenied, 49, "access denied"),
    (Alert::DecodeError, 50, "decode error"),
    (Alert::DecryptError, 51, "decrypt error"),
    (Alert::ExportRestriction, 60, "export restriction"),
    (Alert::ProtocolVersion, 70, "protocol version"),
    (Alert::InsufficientSecurity, 71, "insufficient security"),
    (Alert::InternalError, 80, "internal error"),
    (Alert::InappropriateFallback, 86, "inappropriate fallback"),
    (Alert::UserCanceled, 90, "user canceled"),
    (Alert::NoRenegotiation, 100, "no renegotiation"),
    (Alert::MissingExtension, 109, "missing extension"),
    (Alert::UnsupportedExtension, 110, "unsupported extension"),
    (
        Alert::CertificateUnobtainable,
        111,
        "certificate unobtainable",
    ),
    (Alert::UnrecognizedName, 112, "unrecognized name"),
    (
        Alert::BadCertificateStatusResponse,
        113,
        "bad certificate status response",
    ),
    (
        Alert::BadCertificateHashValue,
        114,
        "bad certificate hash value",
    ),
    (Alert::UnknownPskIdentity, 115, "unknown psk identity"),
    (Alert::CertificateRequired, 116, "certificate required"),
    (Alert::NoApplicationProtocol, 120, "no application protocol"),
];

impl Alert {
    /// Its number on the wire.
    pub fn number(self) -> u8 {
        match self {
            Alert::Unknown(n) => n,
            known => ALERTS
                .iter()
                .find(|(a, _, _)| *a == known)
                .map_or(0, |&(_, n, _)| n),
        }
    }

    /// Its name as TLS writes it, with spaces; `None` for a number TLS does not define.
    pub fn name(self) -> Option<&'static str> {
        ALERTS
            .iter()
            .find(|(a, _, _)| *a == self)
            .map(|&(_, _, name)| name)
    }

    /// The alert of that name (as [`name`](Self::name) gives it, any case), if TLS defines one.
    pub(crate) fn from_name(name: &str) -> Option<Alert> {
        ALERTS
            .iter()
            .find(|(_, _, n)| n.eq_ignore_ascii_case(name.trim()))
            .map(|&(a, _, _)| a)
    }
}

impl From<u8> for Alert {
    fn from(number: u8) -> Alert {
        ALERTS
            .iter()
            .find(|&&(_, n, _)| n == number)
            .map_or(Alert::Unknown(number), |&(a, _, _)| a)
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "alert {}", self.number()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_round_trips() {
        for n in 0..=255u8 {
            assert_eq!(Alert::from(n).number(), n);
        }
        for (alert, _, name) in ALERTS {
            assert_eq!(Alert::from_name(name), Some(alert));
            assert_eq!(alert.to_string(), name);
        }
        assert_eq!(Alert::from(247), Alert::Unknown(247));
        assert_eq!(Alert::from(247).name(), None);
        assert_eq!(Alert::from_name("no such alert"), None);
    }
}
