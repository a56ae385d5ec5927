//! The SOCKS5 tunnel (RFC 1928), with user name and password (RFC 1929) when the proxy URL
//! has them. Every answer has a known length, read exactly: nothing of the server's TLS is
//! consumed. A target given by name is sent as that name (ATYP 3), so the proxy resolves it.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Bounded, Proxy, Refusal, garbled};
use crate::error::ProxyRefusal;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASSWORD: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// Asks `proxy` on `socket` for a tunnel to `host:port`.
pub(super) fn connect(
    socket: &mut Bounded<'_>,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), Refusal> {
    let greeting: &[u8] = match proxy.credentials {
        Some(_) => &[VERSION, 2, NO_AUTH, USER_PASSWORD],
        None => &[VERSION, 1, NO_AUTH],
    };
    socket.write_all(greeting)?;
    let mut choice = [0u8; 2];
    socket.read_exact(&mut choice)?;
    if choice[0] != VERSION {
        return Err(not_socks5(&choice));
    }
    match (choice[1], &proxy.credentials) {
        (NO_AUTH, _) => {}
        (USER_PASSWORD, Some((user, password))) => authenticate(socket, user, password)?,
        (NO_ACCEPTABLE, None) => {
            return Err(Refusal::Refused(
                ProxyRefusal::CredentialsRequired,
                "it accepts no connection without authentication (give a user name and password: socks5://USER:PASSWORD@HOST:PORT)".into(),
            ));
        }
        (NO_ACCEPTABLE, Some(_)) => {
            return Err(Refusal::Refused(
                ProxyRefusal::CredentialsRefused,
                "it accepts neither no authentication nor a user name and password".into(),
            ));
        }
        (method, _) => {
            return Err(garbled(format!(
                "it chose authentication method {method}, which was not offered"
            )));
        }
    }
    socket.write_all(&request(host, port)?)?;
    // VER REP RSV ATYP, then the bound address, whose length ATYP gives, and the port.
    let mut reply = [0u8; 4];
    socket.read_exact(&mut reply)?;
    if reply[0] != VERSION {
        return Err(not_socks5(&reply));
    }
    if reply[1] != 0 {
        // Network or host unreachable, refused by the target: the proxy tried and failed.
        let refusal = match reply[1] {
            3..=5 => ProxyRefusal::TargetUnreachable,
            _ => ProxyRefusal::Other,
        };
        return Err(Refusal::Refused(
            refusal,
            format!("{} (SOCKS5 reply {})", reply_name(reply[1]), reply[1]),
        ));
    }
    let rest = match reply[3] {
        ATYP_IPV4 => 4 + 2,
        ATYP_IPV6 => 16 + 2,
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            socket.read_exact(&mut len)?;
            usize::from(len[0]) + 2
        }
        other => {
            return Err(garbled(format!(
                "its answer has an unknown address type {other}"
            )));
        }
    };
    let mut bound = [0u8; 255 + 2];
    socket.read_exact(&mut bound[..rest])?;
    Ok(())
}

/// The user name and password exchange of RFC 1929.
fn authenticate(socket: &mut Bounded<'_>, user: &str, password: &str) -> Result<(), Refusal> {
    let (user, password) = (user.as_bytes(), password.as_bytes());
    // Proxy::parse refuses longer ones; a bound here too rather than a silent wrap.
    let (Ok(user_len), Ok(password_len)) = (u8::try_from(user.len()), u8::try_from(password.len()))
    else {
        return Err(Refusal::Refused(
            ProxyRefusal::Other,
            "the user name or password is longer than SOCKS5 allows (255 bytes)".into(),
        ));
    };
    let mut message = vec![1, user_len];
    message.extend_from_slice(user);
    message.push(password_len);
    message.extend_from_slice(password);
    socket.write_all(&message)?;
    let mut status = [0u8; 2];
    socket.read_exact(&mut status)?;
    if status[0] != 1 {
        return Err(garbled(format!(
            "its answer to the user name and password is not SOCKS5's: {}",
            status.escape_ascii()
        )));
    }
    if status[1] != 0 {
        return Err(Refusal::Refused(
            ProxyRefusal::CredentialsRefused,
            "the user name and password were refused".into(),
        ));
    }
    Ok(())
}

/// The CONNECT request: an address as an address, a name as a name.
fn request(host: &str, port: u16) -> Result<Vec<u8>, Refusal> {
    let mut message = vec![VERSION, CMD_CONNECT, 0];
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        message.push(ATYP_IPV4);
        message.extend_from_slice(&ip.octets());
    } else if let Ok(ip) = host.parse::<Ipv6Addr>() {
        message.push(ATYP_IPV6);
        message.extend_from_slice(&ip.octets());
    } else {
        let Ok(len) = u8::try_from(host.len()) else {
            return Err(Refusal::Refused(
                ProxyRefusal::Other,
                "the target's name is longer than SOCKS5 allows (255 bytes)".into(),
            ));
        };
        message.push(ATYP_DOMAIN);
        message.push(len);
        message.extend_from_slice(host.as_bytes());
    }
    message.extend_from_slice(&port.to_be_bytes());
    Ok(message)
}

fn not_socks5(answer: &[u8]) -> Refusal {
    garbled(format!(
        "its answer is not SOCKS5: {}",
        answer.escape_ascii()
    ))
}

/// The meaning of a SOCKS5 reply code (RFC 1928 §6).
fn reply_name(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by the target",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown reply code",
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    /// Runs `connect` against a scripted proxy that reads what the client sends at each step
    /// and answers with `answers` in turn; returns the result and the bytes the client had
    /// not read when it returned.
    fn scripted(url: &str, answers: Vec<Vec<u8>>) -> (Result<(), Refusal>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ours = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (mut theirs, _) = listener.accept().expect("accept");
        let proxy = Proxy::parse(url).expect("proxy URL");
        let script = thread::spawn(move || {
            for answer in answers {
                let _ = theirs.read(&mut [0u8; 512]);
                let _ = theirs.write_all(&answer);
            }
        });
        let mut socket = Bounded {
            socket: &ours,
            deadline: Instant::now() + Duration::from_secs(5),
            timeout: Duration::from_secs(5),
        };
        let result = connect(&mut socket, &proxy, "localhost", 443);
        script.join().expect("script");
        let mut rest = Vec::new();
        (&ours).read_to_end(&mut rest).expect("the rest");
        (result, rest)
    }

    #[test]
    fn reads_exactly_the_reply() {
        let (result, rest) = scripted(
            "socks5://u:p@127.0.0.1:1",
            vec![
                vec![5, USER_PASSWORD],
                vec![1, 0],
                [&[5, 0, 0, ATYP_DOMAIN, 4][..], b"host\x01\xbbTLS"].concat(),
            ],
        );
        assert!(result.is_ok());
        assert_eq!(rest, b"TLS");
    }

    #[test]
    fn names_the_reply() {
        let (result, _) = scripted(
            "socks5://127.0.0.1:1",
            vec![vec![5, NO_AUTH], vec![5, 2, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0]],
        );
        let Err(Refusal::Refused(refusal, reason)) = result else {
            panic!("not refused")
        };
        assert_eq!(refusal, ProxyRefusal::Other);
        assert_eq!(reason, "connection not allowed by ruleset (SOCKS5 reply 2)");
        let (result, _) = scripted("socks5://127.0.0.1:1", vec![b"HTTP/1.1 400".to_vec()]);
        let Err(Refusal::Io(e)) = result else {
            panic!("not an I/O error")
        };
        assert_eq!(e.to_string(), "its answer is not SOCKS5: HT");
        let (result, _) = scripted("socks5://127.0.0.1:1", vec![vec![5]]);
        let Err(Refusal::Io(e)) = result else {
            panic!("not an I/O error")
        };
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn names_and_addresses() {
        let Ok(by_name) = request("localhost", 443) else {
            panic!("request refused")
        };
        assert_eq!(by_name, b"\x05\x01\x00\x03\x09localhost\x01\xbb");
        let Ok(v4) = request("127.0.0.1", 1) else {
            panic!("request refused")
        };
        assert_eq!(v4, [5, 1, 0, 1, 127, 0, 0, 1, 0, 1]);
        let Ok(v6) = request("::1", 1) else {
            panic!("request refused")
        };
        assert_eq!(v6.len(), 4 + 16 + 2);
        assert_eq!(v6[3], ATYP_IPV6);
        assert!(request(&"a".repeat(256), 1).is_err());
    }
}
