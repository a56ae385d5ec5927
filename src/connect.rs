//! Getting to an established TLS session: resolve, TCP connect to each address in turn, then
//! the handshake over the in-memory transport, all within one connect deadline.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

use log::debug;
use native_tls::TlsStream;

use crate::Error;
use crate::config::Config;
use crate::diagnose::Redial;
use crate::target::parse_target_or;
use crate::transport::MemoryTransport;

/// A TCP connection to `target` (`HOST[:PORT]`), with the name to check the certificate
/// against and the target as messages show it (`host:port`, IPv6 in brackets).
pub(crate) struct Tcp {
    pub(crate) socket: TcpStream,
    pub(crate) host: String,
    pub(crate) target: String,
}

/// Resolves `target` (`default_port` if it names none) and connects to the first address that
/// answers before `deadline`.
pub(crate) fn connect_tcp(
    config: &Config,
    target: &str,
    default_port: u16,
    deadline: Instant,
) -> Result<Tcp, Error> {
    let (host, port) = parse_target_or(target, default_port)?;
    let target = show_target(&host, port);
    let timeout = || Error::ConnectTimeout {
        target: target.clone(),
        timeout: config.get_connect_timeout(),
    };
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|source| Error::Resolve {
            host: host.clone(),
            source,
        })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in &addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timeout());
        }
        match TcpStream::connect_timeout(addr, remaining) {
            Ok(socket) => {
                debug!("tcp connected to {addr}");
                return Ok(Tcp {
                    socket,
                    host,
                    target,
                });
            }
            Err(e) => {
                debug!("tcp connect to {addr} failed: {e}");
                last_error = e;
            }
        }
    }
    if matches!(
        last_error.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return Err(timeout());
    }
    Err(Error::Connect {
        target,
        source: last_error,
    })
}

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn show_target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The TLS handshake on `socket`, as `name`, before `deadline`; the socket is left blocking
/// with no timeouts. `redial` says how to reach the same server again for the diagnosis of a
/// rejected certificate; `None`: no second connection (the way is not known).
pub(crate) fn start_tls(
    config: &Config,
    socket: &mut TcpStream,
    name: &str,
    target: &str,
    deadline: Instant,
    redial: Option<Redial<'_>>,
) -> Result<TlsStream<MemoryTransport>, Error> {
    let connector = config.connector()?;
    let timeout = || Error::ConnectTimeout {
        target: target.to_string(),
        timeout: config.get_connect_timeout(),
    };
    // Small writes (a line, a close_notify) must not wait for delayed ACKs.
    let _ = socket.set_nodelay(true);
    let tls =
        crate::handshake::handshake(&connector, name, socket, deadline, target, timeout, redial)?;
    socket
        .set_read_timeout(None)
        .and_then(|()| socket.set_write_timeout(None))
        .map_err(|e| Error::Io {
            target: target.to_string(),
            op: crate::error::Operation::SetUp,
            source: e,
        })?;
    Ok(tls)
}
