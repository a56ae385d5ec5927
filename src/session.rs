//! What was negotiated: TLS version, cipher suite, ALPN protocol, the server's certificate and
//! the two addresses, and the one line that says it in a log.
//!
//! native-tls tells the ALPN result and the certificate but not the version or the cipher
//! suite. Both travel in clear in the ServerHello (TLS 1.2 and 1.3 alike), and every byte the
//! server sends passes through our transport first, so the record layer's `HelloScan` reads them there; the names are here.

use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;

use crate::certificate::Certificate;

/// The facts of an established TLS session.
///
/// ```no_run
/// use gracetls::{Config, Stream};
///
/// let stream = Stream::connect(&Config::new(), "example.com:443")?;
/// let session = stream.session();
/// println!(
///     "{} {} alpn={:?}",
///     session.version().unwrap_or("?"),
///     session.cipher_suite().unwrap_or("?"),
///     session.alpn_protocol()
/// );
/// # Ok::<(), gracetls::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Session {
    pub(crate) version: Option<&'static str>,
    pub(crate) cipher_suite: Option<String>,
    pub(crate) alpn: Option<Vec<u8>>,
    /// The peer's certificate as the TLS library holds it (another reference, not a copy),
    /// read into [`Certificate`] only when asked: most connections never ask, and a read
    /// certificate (its DER, names and dates) is most of a kilobyte per connection.
    pub(crate) peer_x509: Option<native_tls::Certificate>,
    pub(crate) peer_certificate: OnceLock<Option<Certificate>>,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) local_addr: Option<SocketAddr>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("version", &self.version)
            .field("cipher_suite", &self.cipher_suite)
            .field("alpn", &self.alpn)
            .field("peer_certificate", &self.peer_certificate())
            .field("peer_addr", &self.peer_addr)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl Session {
    /// `TLSv1.3` or `TLSv1.2` (older ones by the same pattern), as the server chose it.
    pub fn version(&self) -> Option<&str> {
        self.version
    }

    /// The cipher suite by its IANA name, such as `TLS_AES_128_GCM_SHA256`; a suite this
    /// crate has no name for reads `0xC0FF`.
    pub fn cipher_suite(&self) -> Option<&str> {
        self.cipher_suite.as_deref()
    }

    /// The ALPN protocol the server chose, if any (`b"h2"`, `b"http/1.1"`).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// The server's certificate (the leaf: native-tls gives no chain), read: subject,
    /// issuer, dates, names, fingerprint, DER and PEM. `None` where native-tls does not use
    /// OpenSSL (Windows, Apple), which is what reads it.
    pub fn peer_certificate(&self) -> Option<&Certificate> {
        self.peer_certificate
            .get_or_init(|| {
                let der = self.peer_x509.as_ref()?.to_der().ok()?;
                Certificate::from_der(der)
            })
            .as_ref()
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// Our end's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

/// One line for a log: `TLSv1.3 TLS_AES_128_GCM_SHA256, ALPN h2; certificate subject
/// "CN=example.com", ...` (the certificate as its [`Display`](Certificate#impl-Display-for-Certificate)
/// writes it), or `...; no certificate`.
impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}, ALPN ",
            self.version().unwrap_or("(version unknown)"),
            self.cipher_suite().unwrap_or("(cipher suite unknown)")
        )?;
        match &self.alpn {
            Some(alpn) => write!(f, "{}", String::from_utf8_lossy(alpn).escape_debug())?,
            None => f.write_str("none")?,
        }
        match self.peer_certificate() {
            Some(cert) => write!(f, "; certificate {cert}"),
            None => f.write_str("; no certificate"),
        }
    }
}

pub(crate) fn version_name(version: u16) -> &'static str {
    match version {
        0x0304 => "TLSv1.3",
        0x0303 => "TLSv1.2",
        0x0302 => "TLSv1.1",
        0x0301 => "TLSv1",
        _ => "unknown",
    }
}

/// IANA names of the suites OpenSSL 3 offers by default, and a few more.
pub(crate) fn suite_name(suite: u16) -> String {
    let name = match suite {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0xC02B => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xC02C => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xC02F => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xC030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xCCA8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCA9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCAA => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0x009E => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009F => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0xC023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xC027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xC009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xC013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        _ => return format!("0x{suite:04X}"),
    };
    name.to_string()
}
