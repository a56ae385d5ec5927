//! Proxies a connection can go through: what a proxy URL says ([`Proxy`]), and the tunnel
//! through it (HTTP CONNECT in `http`, SOCKS5 in `socks5`). The tunnel is a plain TCP
//! stream to the target on which TLS then runs end to end: the proxy sees only ciphertext,
//! and the certificate is checked against the target's name, never the proxy's.
//!
//! Setting up the tunnel is part of connecting, so it is bounded by the connect timeout, and
//! every read of the proxy's answer is bounded in size and stops at the end of that answer:
//! the bytes after it are the server's TLS.

mod http;
mod socks5;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::str::FromStr;
use std::time::{Duration, Instant};

use log::info;

use crate::Error;
use crate::config::{Config, format_duration};
use crate::connect::{Tcp, connect_tcp, show_target};
use crate::error::{Operation, ProxyRefusal};
use crate::target::{parse_target, parse_target_or};

/// Which protocol a [`Proxy`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy, asked with `CONNECT host:port` (RFC 9110 §9.3.6).
    Http,
    /// A SOCKS5 proxy (RFC 1928), with user name and password (RFC 1929) when given.
    Socks5,
}

impl ProxyKind {
    /// How messages name a proxy of this kind: `proxy` or `SOCKS5 proxy`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ProxyKind::Http => "proxy",
            ProxyKind::Socks5 => "SOCKS5 proxy",
        }
    }
}

/// A proxy to reach the server through, parsed from a URL:
/// `http://[USER:PASSWORD@]HOST:PORT` (HTTP CONNECT) or `socks5://[USER:PASSWORD@]HOST:PORT`
/// (`socks5h://` is taken as the same). The port is required. User name and password may be
/// percent-encoded (`%40` for `@`, `%3A` for `:`).
///
/// Through a SOCKS5 proxy a target given by name is sent as that name, and the proxy
/// resolves it; an address is sent as an address. Through an HTTP proxy the target always
/// goes in the `CONNECT` line as written.
///
/// `Display` and `Debug` never show the password.
///
/// ```
/// use gracetls::{Proxy, ProxyKind};
///
/// let proxy: Proxy = "http://alice:s%40cret@127.0.0.1:8888".parse()?;
/// assert_eq!(proxy.kind(), ProxyKind::Http);
/// assert_eq!((proxy.host(), proxy.port()), ("127.0.0.1", 8888));
/// assert_eq!(proxy.username(), Some("alice"));
/// assert_eq!(proxy.to_string(), "http://alice@127.0.0.1:8888");
///
/// let err = "socks4://127.0.0.1:1080".parse::<Proxy>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid proxy \"socks4://127.0.0.1:1080\": unknown scheme (http:// and socks5:// are supported)"
/// );
/// # Ok::<(), gracetls::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl Proxy {
    /// Parses a proxy URL; see the type's documentation for the forms accepted.
    pub fn parse(url: &str) -> Result<Proxy, Error> {
        let invalid = |reason| Error::InvalidProxy {
            proxy: without_password(url),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected http://HOST:PORT or socks5://HOST:PORT"))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks5" | "socks5h" => ProxyKind::Socks5,
            "https" => {
                return Err(invalid(
                    "TLS to the proxy itself is not supported; use http:// (the tunnel carries TLS end to end)",
                ));
            }
            _ => {
                return Err(invalid(
                    "unknown scheme (http:// and socks5:// are supported)",
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(invalid("a proxy URL has no path"));
        }
        let (userinfo, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => (Some(userinfo), authority),
            None => (None, rest),
        };
        let credentials = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let user =
                    percent_decode(user).ok_or_else(|| invalid("bad %-escape in the user name"))?;
                let password = percent_decode(password)
                    .ok_or_else(|| invalid("bad %-escape in the password"))?;
                if user.is_empty() {
                    return Err(invalid("empty user name before '@'"));
                }
                if kind == ProxyKind::Socks5 && (user.len() > 255 || password.len() > 255) {
                    return Err(invalid(
                        "SOCKS5 allows at most 255 bytes of user name and of password",
                    ));
                }
                Some((user, password))
            }
        };
        if !authority.contains(':') || authority.ends_with(']') {
            return Err(invalid("the port is required: HOST:PORT"));
        }
        let (host, port) = parse_target(authority).map_err(|e| match e {
            Error::InvalidTarget { reason, .. } => invalid(reason),
            other => other,
        })?;
        Ok(Proxy {
            kind,
            host,
            port,
            credentials,
        })
    }

    /// The protocol it speaks.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// Its host name or address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name given, if any.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }

    /// `host:port`, with an IPv6 host in brackets.
    fn authority(&self) -> String {
        show_target(&self.host, self.port)
    }
}

impl FromStr for Proxy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Proxy, Error> {
        Proxy::parse(s)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
        };
        match self.username() {
            Some(user) => write!(
                f,
                "{scheme}://{}@{}",
                percent_encode(user),
                self.authority()
            ),
            None => write!(f, "{scheme}://{}", self.authority()),
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({self})")
    }
}

/// The URL as messages may show it: the password, if any, replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// A user name as a URL holds it: anything but letters, digits and `-._~` as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` escapes decoded; `None` for a broken escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            // from_str_radix alone would take a sign: `%+1`.
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A TCP connection to `proxy`, and through it a tunnel to `target`, before `deadline`. The
/// target shown in messages names the proxy too.
pub(crate) fn tunnel(
    config: &Config,
    proxy: &Proxy,
    target: &str,
    default_port: u16,
    deadline: Instant,
) -> Result<Tcp, Error> {
    let (host, port) = parse_target_or(target, default_port)?;
    let target = show_target(&host, port);
    let failed = |op, source| Error::Proxy {
        kind: proxy.kind,
        proxy: proxy.authority(),
        target: target.clone(),
        op,
        source,
    };
    let timeout = config.get_connect_timeout();
    let tcp =
        connect_tcp(config, &proxy.authority(), proxy.port, deadline).map_err(|e| match e {
            Error::Connect { source, .. } | Error::Resolve { source, .. } => {
                failed(Operation::Connect, source)
            }
            Error::ConnectTimeout { .. } => failed(Operation::Connect, timed_out(timeout)),
            other => other,
        })?;
    let mut socket = Bounded {
        socket: &tcp.socket,
        deadline,
        timeout,
    };
    let result = match proxy.kind {
        ProxyKind::Http => http::connect(&mut socket, proxy, &host, port),
        ProxyKind::Socks5 => socks5::connect(&mut socket, proxy, &host, port),
    };
    match result {
        Ok(()) => {}
        Err(Refusal::Refused(refusal, reason)) => {
            return Err(Error::ProxyRefused {
                kind: proxy.kind,
                proxy: proxy.authority(),
                target,
                refusal,
                reason,
            });
        }
        Err(Refusal::Io(source)) => return Err(failed(Operation::Talk, source)),
    }
    info!(
        "{} {} opened a tunnel to {target}",
        proxy.kind.label(),
        proxy.authority()
    );
    Ok(Tcp {
        socket: tcp.socket,
        host,
        target: format!("{target} via {} {}", proxy.kind.label(), proxy.authority()),
    })
}

/// Why a tunnel was not set up: the proxy said no (with its reason, for people), or talking
/// to it failed (closed, timed out, an answer that is not its protocol).
enum Refusal {
    Refused(ProxyRefusal, String),
    Io(io::Error),
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Refusal {
        Refusal::Io(e)
    }
}

/// An answer that does not follow the proxy's protocol.
fn garbled(what: String) -> Refusal {
    Refusal::Io(io::Error::new(io::ErrorKind::InvalidData, what))
}

fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "no answer within {} (the connect timeout)",
            format_duration(timeout)
        ),
    )
}

/// The proxy's socket with every read and write bounded by what is left of the connect
/// deadline; a read of 0 bytes (the proxy closed) is an `UnexpectedEof` error.
struct Bounded<'a> {
    socket: &'a TcpStream,
    deadline: Instant,
    timeout: Duration,
}

impl Bounded<'_> {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(self.timeout));
        }
        Ok(left)
    }

    fn bounded<T>(&self, result: io::Result<T>) -> io::Result<T> {
        match result {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(timed_out(self.timeout))
            }
            other => other,
        }
    }

    /// Reads at most `buf.len()` bytes, at least one.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.socket.set_read_timeout(Some(self.left()?))?;
            let result = self.socket.read(buf);
            match self.bounded(result) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn read_exact(&mut self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_some(buf)?;
            buf = &mut buf[n..];
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.socket.set_write_timeout(Some(self.left()?))?;
        let result = self.socket.write_all(buf);
        self.bounded(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let p = Proxy::parse("socks5://[::1]:1080").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Socks5, "::1", 1080)
        );
        assert_eq!(p.to_string(), "socks5://[::1]:1080");
        let p = Proxy::parse("SOCKS5H://u%3Ax:p%40ss@proxy.example:9/").unwrap();
        assert_eq!(p.credentials, Some(("u:x".into(), "p@ss".into())));
        assert_eq!(p.host(), "proxy.example");
        let p = Proxy::parse("http://user@h:1").unwrap();
        assert_eq!(p.credentials, Some(("user".into(), String::new())));
        let p = Proxy::parse("http://a%3Ab%40c:pw@h:1").unwrap();
        assert_eq!(p.to_string(), "http://a%3Ab%40c@h:1");
    }

    #[test]
    fn refuses() {
        for bad in [
            "127.0.0.1:8888",
            "http://127.0.0.1",
            "http://[::1]",
            "http://h:0",
            "http://h:x",
            "http://h:1/path",
            "https://h:1",
            "ftp://h:1",
            "http://:pw@h:1",
            "http://u:%zz@h:1",
            "http://:1",
            "http://u:%+1@h:1",
            "",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn messages_hide_the_password() {
        let err = Proxy::parse("http://alice:secret@h")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("alice:***@h"), "{err}");
        let p = Proxy::parse("http://alice:secret@h:1").unwrap();
        assert!(!format!("{p} {p:?}").contains("secret"));
    }
}
