//! TCP: resolve a target, then connect to each address in turn until one answers, within
//! the connect deadline.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

use log::debug;

use crate::Error;
use crate::config::Config;
use crate::target::{parse_target_or, show_target};

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
        timeout: config.connect_timeout(),
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
