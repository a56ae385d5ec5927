//! What was negotiated: TLS version, cipher suite, ALPN protocol, the server's certificate and
//! the two addresses, and the one line that says it in a log.
//!
//! native-tls tells the ALPN result and the certificate but not the version or the cipher
//! suite. Both travel in clear in the ServerHello (TLS 1.2 and 1.3 alike), and every byte the
//! server sends passes through our transport first, so [`HelloScan`] reads them there.

use std::fmt;
use std::net::SocketAddr;

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
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub(crate) version: Option<&'static str>,
    pub(crate) cipher_suite: Option<String>,
    pub(crate) alpn: Option<Vec<u8>>,
    pub(crate) peer_certificate: Option<Certificate>,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) local_addr: Option<SocketAddr>,
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
        self.peer_certificate.as_ref()
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
        match &self.peer_certificate {
            Some(cert) => write!(f, "; certificate {cert}"),
            None => f.write_str("; no certificate"),
        }
    }
}

/// Most a ServerHello scan keeps: far more than any ServerHello, little enough to bound a
/// hostile server's effort.
const SCAN_LIMIT: usize = 20 * 1024;

/// Finds the ServerHello in the server's first bytes (reassembled across records, which a
/// server may cut as small as it likes) and reads the version and cipher suite from it.
#[derive(Debug, Default)]
pub(crate) struct HelloScan {
    raw: Vec<u8>,
    done: bool,
    found: Option<(u16, u16)>,
}

impl HelloScan {
    /// Takes the next bytes from the server; cheap once the ServerHello was found.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        let room = SCAN_LIMIT.saturating_sub(self.raw.len());
        self.raw.extend_from_slice(&data[..data.len().min(room)]);
        match server_hello(&self.raw) {
            Scan::Found(version, suite) => {
                self.found = Some((version, suite));
                self.finish();
            }
            Scan::NotHello => self.finish(),
            Scan::Incomplete if self.raw.len() >= SCAN_LIMIT => self.finish(),
            Scan::Incomplete => {}
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.raw = Vec::new();
    }

    /// The version's name and the cipher suite's, once found.
    pub(crate) fn result(&self) -> Option<(&'static str, String)> {
        self.found
            .map(|(version, suite)| (version_name(version), suite_name(suite)))
    }
}

enum Scan {
    Found(u16, u16),
    Incomplete,
    NotHello,
}

/// Reassembles the first handshake message from the leading handshake records of `raw` and
/// parses it if it is a complete ServerHello.
fn server_hello(raw: &[u8]) -> Scan {
    let mut message = Vec::new();
    let mut rest = raw;
    while rest.len() >= 5 && !complete(&message) {
        if rest[0] != 22 {
            return Scan::NotHello;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let body = &rest[5..];
        let take = len.min(body.len());
        message.extend_from_slice(&body[..take]);
        if take < len {
            break;
        }
        rest = &body[len..];
    }
    if !message.is_empty() && message[0] != 2 {
        return Scan::NotHello;
    }
    if !complete(&message) {
        return Scan::Incomplete;
    }
    let len = message_len(&message);
    parse_server_hello(&message[4..4 + len]).map_or(Scan::NotHello, |(v, s)| Scan::Found(v, s))
}

fn message_len(message: &[u8]) -> usize {
    usize::from(message[1]) << 16 | usize::from(message[2]) << 8 | usize::from(message[3])
}

/// Whether `message` holds a whole handshake message (4-byte header, then its length).
fn complete(message: &[u8]) -> bool {
    message.len() >= 4 && message.len() >= 4 + message_len(message)
}

/// `legacy_version, random[32], session_id<0..32>, cipher_suite, compression, extensions`;
/// the `supported_versions` extension (43), when present, holds the real version.
fn parse_server_hello(body: &[u8]) -> Option<(u16, u16)> {
    let mut r = Reader(body);
    let mut version = r.u16()?;
    r.skip(32)?;
    let sid = usize::from(r.u8()?);
    r.skip(sid)?;
    let suite = r.u16()?;
    r.u8()?;
    if let Some(ext_len) = r.u16() {
        let mut exts = Reader(r.take(usize::from(ext_len))?);
        while let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) {
            let data = exts.take(usize::from(len))?;
            if kind == 43 && data.len() == 2 {
                version = u16::from_be_bytes([data[0], data[1]]);
            }
        }
    }
    Some((version, suite))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

fn version_name(version: u16) -> &'static str {
    match version {
        0x0304 => "TLSv1.3",
        0x0303 => "TLSv1.2",
        0x0302 => "TLSv1.1",
        0x0301 => "TLSv1",
        _ => "unknown",
    }
}

/// IANA names of the suites OpenSSL 3 offers by default, and a few more.
fn suite_name(suite: u16) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.3 ServerHello: legacy version 1.2, suite 0x1301, supported_versions 1.3.
    fn hello13() -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0x13, 0x01, 0x00]);
        body.extend_from_slice(&[0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
        let mut msg = vec![2, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        msg
    }

    fn records(msg: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in msg.chunks(size) {
            out.extend_from_slice(&[22, 3, 3, 0, piece.len() as u8]);
            out.extend_from_slice(piece);
        }
        out
    }

    #[test]
    fn finds_version_and_suite_however_cut() {
        for size in [1, 3, 50, 200] {
            let wire = records(&hello13(), size);
            for feed in [1, 7, wire.len()] {
                let mut scan = HelloScan::default();
                for chunk in wire.chunks(feed) {
                    scan.feed(chunk);
                }
                assert_eq!(
                    scan.result(),
                    Some(("TLSv1.3", "TLS_AES_128_GCM_SHA256".into())),
                    "records of {size}, fed {feed} at a time"
                );
            }
        }
    }

    #[test]
    fn gives_up_on_what_is_not_a_server_hello() {
        let mut scan = HelloScan::default();
        scan.feed(&[21, 3, 3, 0, 2, 2, 40]);
        assert_eq!(scan.result(), None);
        assert!(scan.done);
        let mut scan = HelloScan::default();
        scan.feed(&vec![22; SCAN_LIMIT + 10]);
        assert!(scan.done);
    }
}
