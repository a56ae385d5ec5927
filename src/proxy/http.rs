//! The HTTP CONNECT tunnel: one request, one answer whose header is read up to its blank
//! line and not one byte further (what follows is the server's TLS).

use super::{Bounded, Proxy, Refusal, garbled};
use crate::connect::show_target;
use crate::error::ProxyRefusal;

/// Most bytes of the proxy's answer header read before giving up on it.
const MAX_HEAD: usize = 16 * 1024;
/// Most interim (1xx) answers skipped before the final one; one more is taken as final.
const MAX_INTERIM: usize = 4;

/// Asks `proxy` on `socket` for a tunnel to `host:port`.
pub(super) fn connect(
    socket: &mut Bounded<'_>,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), Refusal> {
    let authority = show_target(host, port);
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: gracetls/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some((user, password)) = &proxy.credentials {
        let token = base64(format!("{user}:{password}").as_bytes());
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes())?;
    // Interim 1xx answers may come before the final one (RFC 9110 §15.2); a few at most.
    let mut status = status_line(&read_head(socket)?)?;
    for _ in 0..MAX_INTERIM {
        if !(100..200).contains(&status.code) {
            break;
        }
        status = status_line(&read_head(socket)?)?;
    }
    let code = status.code;
    if (200..300).contains(&code) {
        return Ok(());
    }
    let mut reason = format!("{code} {}", status.reason).trim_end().to_string();
    // tinyproxy answers wrong credentials with 401, not 407: both mean the same here.
    let refusal = match code {
        401 | 407 if proxy.credentials.is_some() => {
            reason.push_str(" (the user name and password given were refused)");
            ProxyRefusal::CredentialsRefused
        }
        407 => {
            reason.push_str(
                " (the proxy wants a user name and password: http://USER:PASSWORD@HOST:PORT)",
            );
            ProxyRefusal::CredentialsRequired
        }
        502 | 504 => {
            reason.push_str(&format!(" (the proxy could not reach {authority})"));
            ProxyRefusal::TargetUnreachable
        }
        // 5xx: the proxy tried and failed (tinyproxy: `500 Unable to connect`).
        500..=599 => ProxyRefusal::TargetUnreachable,
        _ => ProxyRefusal::Status(code),
    };
    Err(Refusal::Refused(refusal, reason))
}

struct Status {
    code: u16,
    reason: String,
}

/// The answer's status line, `HTTP/1.x CODE REASON`; the reason is kept to printable ASCII
/// and 100 characters, since it goes into a one-line message.
fn status_line(head: &[u8]) -> Result<Status, Refusal> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let not_http = || {
        garbled(format!(
            "its answer is not HTTP: {}",
            shown(&head[..head.len().min(64)])
        ))
    };
    let rest = line.strip_prefix(b"HTTP/1.").ok_or_else(not_http)?;
    let rest = rest.get(1..).ok_or_else(not_http)?;
    let rest = rest.strip_prefix(b" ").ok_or_else(not_http)?;
    let code = rest.get(..3).ok_or_else(not_http)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return Err(not_http());
    }
    let code = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let reason = rest.get(4..).unwrap_or_default();
    Ok(Status {
        code,
        reason: shown(&reason[..reason.len().min(100)]),
    })
}

/// Bytes for a one-line message: printable ASCII as it is, anything else escaped.
fn shown(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// The answer's header, up to and including its blank line. Each read asks for no more than
/// the shortest header end could still need, so nothing after that line is consumed.
fn read_head(socket: &mut Bounded<'_>) -> Result<Vec<u8>, Refusal> {
    let mut head = Vec::with_capacity(256);
    loop {
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(garbled(format!(
                "its answer's header is longer than {} KiB",
                MAX_HEAD / 1024
            )));
        }
        // A bare LF also ends a line (RFC 9112 §2.2): after a CR or LF the end may be one byte
        // away, otherwise at least two ("\n\n").
        let step = match head.last() {
            Some(b'\r' | b'\n') => 1,
            _ => 2,
        };
        let start = head.len();
        head.resize(start + step, 0);
        let n = socket.read_some(&mut head[start..])?;
        head.truncate(start + n);
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    /// A connected pair on 127.0.0.1: (ours, the proxy's end).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ours = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (theirs, _) = listener.accept().expect("accept");
        (ours, theirs)
    }

    #[test]
    fn reads_no_further_than_the_header() {
        for head in [
            &b"HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\n"[..],
            b"HTTP/1.0 200 OK\n\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
        ] {
            let (ours, mut theirs) = pair();
            // The answer and the server's first TLS bytes in one segment.
            theirs
                .write_all(&[head, &b"\x16\x03\x03TLS"[..]].concat())
                .expect("write");
            let mut socket = Bounded {
                socket: &ours,
                deadline: Instant::now() + Duration::from_secs(5),
                timeout: Duration::from_secs(5),
            };
            let Ok(read) = read_head(&mut socket) else {
                panic!("no header read")
            };
            assert_eq!(read, head);
            let mut rest = [0u8; 6];
            socket
                .read_exact(&mut rest)
                .expect("the bytes after the header");
            assert_eq!(&rest, b"\x16\x03\x03TLS");
            drop(theirs);
            assert_eq!((&ours).read(&mut [0u8; 1]).expect("EOF"), 0);
        }
    }

    #[test]
    fn interim_answers_are_skipped() {
        let (ours, mut theirs) = pair();
        let proxy = Proxy::parse("http://127.0.0.1:1").expect("proxy URL");
        theirs
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nTLS")
            .expect("write");
        let mut socket = Bounded {
            socket: &ours,
            deadline: Instant::now() + Duration::from_secs(5),
            timeout: Duration::from_secs(5),
        };
        assert!(connect(&mut socket, &proxy, "::1", 443).is_ok());
        let mut request = [0u8; 64];
        let n = theirs.read(&mut request).expect("the request");
        assert!(request[..n].starts_with(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"));
        let mut rest = [0u8; 3];
        socket
            .read_exact(&mut rest)
            .expect("the bytes after the answer");
        assert_eq!(&rest, b"TLS");
    }

    proptest! {
        #[test]
        fn any_answer_is_parsed_or_refused_without_panic(answer in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(status) = status_line(&answer) {
                prop_assert!(status.code <= 999);
                prop_assert!(status.reason.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
            }
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn status_lines() {
        let s = status_line(b"HTTP/1.1 403 Forbidden\r\n\r\n").ok().unwrap();
        assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
        let s = status_line(b"HTTP/1.0 200\r\n\r\n").ok().unwrap();
        assert_eq!((s.code, s.reason.as_str()), (200, ""));
        let s = status_line(b"HTTP/1.1 502 Bad\x1b[31m\r\n\r\n")
            .ok()
            .unwrap();
        assert_eq!(s.reason, "Bad\\x1b[31m");
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.",
            b"\n\n",
        ] {
            assert!(status_line(bad).is_err(), "{bad:?}");
        }
    }
}
