//! Where to connect: `HOST[:PORT]`, `[IPv6]:PORT`, or an `https://` style URL, checked before
//! any connection is made so that a mistyped target is a usage error, not a network one.

use std::net::Ipv6Addr;

use crate::Error;

/// URL schemes that name a TLS service, with their default ports. Any other scheme (`http`,
/// `ws`, ...) is refused: those services are not TLS on their default port.
const TLS_SCHEMES: &[(&str, u16)] = &[
    ("https", 443),
    ("wss", 443),
    ("smtps", 465),
    ("ldaps", 636),
    ("ftps", 990),
    ("imaps", 993),
    ("pop3s", 995),
];

/// Splits a target into host and port: `HOST[:PORT]` (port 443 by default), `[IPv6]:PORT` or
/// a bare IPv6 address, or a URL of a TLS scheme, `https://HOST[:PORT][/]`, whose port
/// defaults to the scheme's.
///
/// Refused: port 0, a host with spaces, control characters or stray brackets, more than one `:` outside brackets unless the whole is one IPv6 address,
/// an IPv6 address whose last group could be a port (`::1:4434`: write `[::1]:4434`), a
/// non-TLS scheme, and a URL path (nothing here would send it).
///
/// ```
/// use gracetls::parse_target;
///
/// assert_eq!(parse_target("example.com").unwrap(), ("example.com".into(), 443));
/// assert_eq!(parse_target("[::1]:8443").unwrap(), ("::1".into(), 8443));
/// assert_eq!(parse_target("https://localhost:8443/").unwrap(), ("localhost".into(), 8443));
/// assert_eq!(parse_target("imaps://mail.example").unwrap(), ("mail.example".into(), 993));
/// assert!(parse_target("host:http").is_err());
/// assert!(parse_target("::1:4434").is_err());
/// assert!(parse_target("localhost:0").is_err());
/// ```
pub fn parse_target(target: &str) -> Result<(String, u16), Error> {
    parse_target_or(target, 443)
}

/// [`parse_target`] with `default_port` for a target that names none (and no URL scheme).
pub(crate) fn parse_target_or(target: &str, default_port: u16) -> Result<(String, u16), Error> {
    let invalid = |reason| Error::InvalidTarget {
        target: target.to_string(),
        reason,
    };
    let (authority, default_port) = match target.split_once("://") {
        Some((scheme, rest)) => {
            let port = TLS_SCHEMES
                .iter()
                .find(|(name, _)| scheme.eq_ignore_ascii_case(name))
                .map(|&(_, port)| port)
                .ok_or_else(|| {
                    invalid(
                        "not a TLS scheme (https, wss, imaps, pop3s, smtps, ldaps and ftps are)",
                    )
                })?;
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            if !path.is_empty() {
                return Err(invalid(
                    "a URL path cannot be sent: gracetls sends stdin as it is",
                ));
            }
            (authority, port)
        }
        None => (target, default_port),
    };
    let (host, port) = split_host_port(authority).map_err(invalid)?;
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    // Never a name, and through an HTTP proxy a CR or LF would end the CONNECT line.
    if host.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("a host cannot hold spaces or control characters"));
    }
    if host.contains(['[', ']']) {
        return Err(invalid(
            "brackets go around a whole IPv6 address, [ADDRESS]:PORT",
        ));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) => return Err(invalid("port 0 cannot be connected to")),
            Ok(port) => port,
            Err(_) => return Err(invalid("the port must be a number from 1 to 65535")),
        },
    };
    Ok((host.to_string(), port))
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing ']'")?;
        return match after {
            "" => Ok((host, None)),
            _ => Ok((
                host,
                Some(after.strip_prefix(':').ok_or("expected ':' after ']'")?),
            )),
        };
    }
    match authority.matches(':').count() {
        0 => Ok((authority, None)),
        1 => Ok(authority
            .split_once(':')
            .map_or((authority, None), |(h, p)| (h, Some(p)))),
        _ if authority.parse::<Ipv6Addr>().is_err() => {
            Err("more than one ':' (an IPv6 address goes in brackets)")
        }
        _ => {
            // `::1:4434` is both an address and `::1` with port 4434: make the user say which.
            let ambiguous = authority.rsplit_once(':').is_some_and(|(before, last)| {
                last.len() <= 5
                    && last.bytes().all(|b| b.is_ascii_digit())
                    && before.parse::<Ipv6Addr>().is_ok()
            });
            if ambiguous {
                Err("an IPv6 address with a port needs brackets, [ADDRESS]:PORT")
            } else {
                Ok((authority, None))
            }
        }
    }
}

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn show_target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(target: &str) -> (String, u16) {
        parse_target(target).unwrap_or_else(|e| panic!("{target}: {e}"))
    }

    #[test]
    fn accepted() {
        assert_eq!(ok("h:1"), ("h".into(), 1));
        assert_eq!(ok("::1"), ("::1".into(), 443));
        assert_eq!(ok("fe80::1"), ("fe80::1".into(), 443));
        assert_eq!(ok("[::1]"), ("::1".into(), 443));
        assert_eq!(ok("[::1]:4434"), ("::1".into(), 4434));
        assert_eq!(ok("https://h"), ("h".into(), 443));
        assert_eq!(ok("HTTPS://h:8443"), ("h".into(), 8443));
        assert_eq!(ok("https://[::1]:8443/"), ("::1".into(), 8443));
        assert_eq!(ok("pop3s://h"), ("h".into(), 995));
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            ":443",
            "h:70000",
            "h:0",
            "h:",
            "[::1]x",
            "::1:4434",
            "2001:db8::1:443",
            "a:b:c",
            "http://h",
            "https://h/index.html",
            "https://",
            "a b:1",
            "h\r\nX-Injected: 1",
            "h\t:1",
            "[[h]:1",
            "h]:1",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
