//! Dialing: from a target to an established TLS session, within one connect deadline. TCP
//! directly or through the configured proxy's tunnel, the STARTTLS exchange where asked, then
//! the handshake over the in-memory transport; what a certificate diagnosis needs to reach
//! the same server again goes along.

use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Instant;

use crate::Error;
use crate::config::Config;
use crate::connect::{Tcp, connect_tcp};
use crate::diagnose::Redial;
use crate::session::Session;
use crate::starttls::Starttls;
use crate::tls::TlsStream;
use crate::transport::MemoryTransport;

/// An established TLS session, ready to become a [`Stream`](crate::Stream).
pub(crate) struct Dialed {
    /// The server as messages name it.
    pub(crate) target: String,
    pub(crate) socket: TcpStream,
    pub(crate) tls: TlsStream<MemoryTransport>,
    pub(crate) session: Session,
}

/// See [`Stream::connect`](crate::Stream::connect).
pub(crate) fn connect(config: &Config, target: &str) -> Result<Dialed, Error> {
    let started = Instant::now();
    let deadline = started + config.connect_timeout();
    let (mut tcp, proxied) = open(config, target, 443, deadline)?;
    let name = config.servername().unwrap_or(&tcp.host).to_string();
    let tls = start_tls(
        config,
        &mut tcp.socket,
        &name,
        &tcp.target,
        deadline,
        proxied,
    )?;
    Ok(dialed(tcp.target, tcp.socket, tls, started))
}

/// See [`Stream::connect_starttls`](crate::Stream::connect_starttls).
pub(crate) fn connect_starttls(
    config: &Config,
    target: &str,
    starttls: &Starttls,
) -> Result<Dialed, Error> {
    let started = Instant::now();
    let timeout = config.connect_timeout();
    let deadline = started + timeout;
    let default_port = starttls.protocol().default_port();
    let (mut tcp, _) = open(config, target, default_port, deadline)?;
    let name = config.servername().unwrap_or(&tcp.host).to_string();
    starttls.negotiate_until(&tcp.socket, &name, &tcp.target, deadline, timeout)?;
    let tls = start_tls(
        config,
        &mut tcp.socket,
        &name,
        &tcp.target,
        deadline,
        Some(Redial::Starttls {
            config,
            target,
            starttls,
            name: &name,
        }),
    )?;
    Ok(dialed(tcp.target, tcp.socket, tls, started))
}

/// See [`Stream::from_tcp`](crate::Stream::from_tcp).
pub(crate) fn from_tcp(
    config: &Config,
    socket: TcpStream,
    server_name: &str,
) -> Result<Dialed, Error> {
    let started = Instant::now();
    let deadline = started + config.connect_timeout();
    let mut socket = socket;
    let timeouts = (socket.read_timeout(), socket.write_timeout());
    let target = socket.peer_addr().map_or_else(
        |_| server_name.to_string(),
        |addr| format!("{server_name} ({addr})"),
    );
    let name = config.servername().unwrap_or(server_name).to_string();
    let tls = start_tls(config, &mut socket, &name, &target, deadline, None)?;
    if let (Ok(read), Ok(write)) = timeouts {
        let _ = socket.set_read_timeout(read);
        let _ = socket.set_write_timeout(write);
    }
    Ok(dialed(target, socket, tls, started))
}

/// The TCP connection to `target`, direct or through the configured proxy's tunnel, and how a
/// certificate diagnosis reaches the same server.
fn open<'a>(
    config: &'a Config,
    target: &'a str,
    default_port: u16,
    deadline: Instant,
) -> Result<(Tcp, Option<Redial<'a>>), Error> {
    Ok(match config.proxy() {
        None => (
            connect_tcp(config, target, default_port, deadline)?,
            Some(Redial::Same),
        ),
        Some(proxy) => (
            crate::proxy::tunnel(config, proxy, target, default_port, deadline)?,
            Some(Redial::Proxied {
                config,
                proxy,
                target,
                default_port,
            }),
        ),
    })
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
) -> Result<native_tls::TlsStream<MemoryTransport>, Error> {
    let connector = config.connector()?;
    let timeout = || Error::ConnectTimeout {
        target: target.to_string(),
        timeout: config.connect_timeout(),
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

/// The session's facts, logged in one line: where, how fast, and what was agreed.
pub(crate) fn dialed(
    target: String,
    socket: TcpStream,
    tls: impl Into<TlsStream<MemoryTransport>>,
    started: Instant,
) -> Dialed {
    let tls = tls.into();
    let (version, cipher_suite) = tls.get_ref().server_hello().unzip();
    let session = Session {
        version,
        cipher_suite,
        alpn: tls.negotiated_alpn().ok().flatten(),
        peer_x509: tls.peer_certificate().ok().flatten(),
        peer_certificate: OnceLock::new(),
        peer_addr: socket.peer_addr().ok(),
        local_addr: socket.local_addr().ok(),
    };
    // One line says how the connection was made: where, how fast, and what was agreed.
    log::info!(
        "connected to {target} ({}) in {} ms: {session}",
        session
            .peer_addr
            .map_or_else(|| "?".into(), |a| a.to_string()),
        started.elapsed().as_millis()
    );
    Dialed {
        target,
        socket,
        tls,
        session,
    }
}
