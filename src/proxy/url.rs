//! What a proxy URL says ([`Proxy`]): its kind, host, port and credentials.

use std::fmt;
use std::str::FromStr;

use super::kind::ProxyKind;
use crate::Error;
use crate::target::{parse_target, show_target};

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
    pub(crate) kind: ProxyKind,
    host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, String)>,
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
    pub(crate) fn authority(&self) -> String {
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
