//! Proxies a connection can go through: what a proxy URL says ([`Proxy`], in `url`), and
//! the tunnel through it (HTTP CONNECT in `http`, SOCKS5 in `socks5`). The tunnel is a plain TCP
//! stream to the target on which TLS then runs end to end: the proxy sees only ciphertext,
//! and the certificate is checked against the target's name, never the proxy's.
//!
//! Setting up the tunnel is part of connecting, so it is bounded by the connect timeout, and
//! every read of the proxy's answer is bounded in size and stops at the end of that answer:
//! the bytes after it are the server's TLS.

mod http;
mod kind;
mod socks5;
mod url;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use log::info;

use crate::Error;
use crate::config::Config;
use crate::connect::{Tcp, connect_tcp};
use crate::error::{Operation, ProxyRefusal};
use crate::format::format_duration;
use crate::target::{parse_target_or, show_target};

pub use kind::ProxyKind;
pub use url::Proxy;

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
    let timeout = config.connect_timeout();
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
