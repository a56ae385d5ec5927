//! Why the server's certificate was rejected, in facts: its dates, the names it holds, the
//! issuer the server did not send. This module owns the second, diagnostic connection that
//! learns them, and the trust settings it needs to see what the first one saw.
//!
//! A second connection because native-tls gives nothing back when verification fails: the
//! handshake ends with OpenSSL's one-line reason and no certificate, and in TLS 1.3 the
//! certificates travel encrypted, so the bytes of the first handshake cannot tell either. So,
//! after a verification failure, this module connects once more to the same address (through
//! the same proxy, when there is one, to the same target), bounded
//! by what remains of the connect timeout, with the `openssl` crate directly: the same roots
//! (the CA files as read for the first connection, and the system's where they are trusted),
//! the same name and versions, and a verify callback that records every (depth, error,
//! certificate) and lets the handshake finish, so that the chain the server sent can be read.
//! Nothing is sent on it: it ends with close_notify at once, so the server logs a clean close.
//! It never presents the client certificate: the server is not trusted, and who we are is
//! none of its business (a server that requires one will log that it got none). Its first
//! recorded error must be the one the first connection failed with; otherwise the facts would
//! be about something else, and none are given.
//!
//! Where native-tls does not use OpenSSL (Windows, Apple), there is no diagnosis: the error
//! keeps the TLS library's reason alone.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::Proxy;
use crate::config::{Config, TlsVersion};
use crate::error::CertificateError;
use crate::starttls::Starttls;

/// Where the diagnostic connection goes: to the address the first connection reached,
/// through the same proxy to the same target (the proxy's own address would get a
/// ClientHello it does not expect), or the same way again with the same STARTTLS exchange
/// first (a ClientHello in the clear part of a protocol is garbage to its server).
#[derive(Clone, Copy)]
pub(crate) enum Redial<'a> {
    /// The address the first connection's socket is connected to.
    Same,
    Direct(SocketAddr),
    Proxied {
        config: &'a Config,
        proxy: &'a Proxy,
        target: &'a str,
        default_port: u16,
    },
    Starttls {
        config: &'a Config,
        target: &'a str,
        starttls: &'a Starttls,
        name: &'a str,
    },
}

impl Redial<'_> {
    #[cfg_attr(any(target_os = "windows", target_vendor = "apple"), allow(dead_code))]
    fn connect(&self, deadline: Instant) -> Result<TcpStream, String> {
        match *self {
            // Resolved to `Direct` by the handshake, which holds the socket.
            Redial::Same => Err("no address to connect to".into()),
            Redial::Direct(addr) => {
                let left = deadline.saturating_duration_since(Instant::now());
                TcpStream::connect_timeout(&addr, left).map_err(|e| e.to_string())
            }
            Redial::Proxied {
                config,
                proxy,
                target,
                default_port,
            } => crate::proxy::tunnel(config, proxy, target, default_port, deadline)
                .map(|tcp| tcp.socket)
                .map_err(|e| e.to_string()),
            Redial::Starttls {
                config,
                target,
                starttls,
                name,
            } => {
                let default_port = starttls.protocol().default_port();
                let tcp = match config.get_proxy() {
                    None => crate::connect::connect_tcp(config, target, default_port, deadline),
                    Some(proxy) => {
                        crate::proxy::tunnel(config, proxy, target, default_port, deadline)
                    }
                }
                .map_err(|e| e.to_string())?;
                let timeout = config.get_connect_timeout();
                starttls
                    .negotiate_until(&tcp.socket, name, &tcp.target, deadline, timeout)
                    .map_err(|e| e.to_string())?;
                Ok(tcp.socket)
            }
        }
    }
}

impl fmt::Display for Redial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Redial::Same => write!(f, "the same address"),
            Redial::Direct(addr) => write!(f, "{addr}"),
            Redial::Proxied { proxy, target, .. } => write!(f, "{target} via {proxy}"),
            Redial::Starttls {
                target, starttls, ..
            } => write!(f, "{target} after {} STARTTLS", starttls.protocol()),
        }
    }
}

/// A diagnosis gives up after this long even when the connect timeout leaves more: a server
/// that serves one connection at a time may never answer the second, and the person at the
/// terminal is waiting for the error.
const LIMIT: Duration = Duration::from_secs(3);

/// What the diagnostic connection needs to trust what the first one did.
#[derive(Debug, Clone, Default)]
#[cfg_attr(any(target_os = "windows", target_vendor = "apple"), allow(dead_code))]
pub(crate) struct Settings {
    /// The CA files' certificates (DER), as read when the connector was built, each with
    /// the name of its file.
    pub(crate) roots: Vec<(String, Vec<u8>)>,
    /// Whether the system's roots are trusted too.
    pub(crate) system_roots: bool,
    pub(crate) min_version: Option<TlsVersion>,
    pub(crate) max_version: Option<TlsVersion>,
}

/// Connects once more to `addr` (see [`Redial`]) and finds out why the certificate was
/// rejected; `reported` is the verification failure the first connection ended with, as
/// OpenSSL numbers it (`X509_V_ERR_CERT_HAS_EXPIRED`, 10). `None` when nothing reliable was
/// learned within the time left before `deadline`.
pub(crate) fn diagnose(
    settings: &Settings,
    addr: Redial<'_>,
    name: &str,
    deadline: Instant,
    reported: i32,
) -> Option<CertificateError> {
    let started = Instant::now();
    let bound = deadline.saturating_duration_since(started).min(LIMIT);
    if bound < Duration::from_millis(50) {
        log::debug!("no time left to diagnose the certificate of {addr}");
        return None;
    }
    let found = imp::diagnose(settings, addr, name, started + bound, reported);
    log::debug!(
        "certificate diagnosis of {addr} took {} ms: {found:?}",
        started.elapsed().as_millis()
    );
    found
}

#[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
#[path = "diagnose/openssl.rs"]
mod imp;

#[cfg(any(target_os = "windows", target_vendor = "apple"))]
mod imp {
    use std::time::Instant;

    use super::{Redial, Settings};
    use crate::error::CertificateError;

    pub(super) fn diagnose(
        _: &Settings,
        _: Redial<'_>,
        _: &str,
        _: Instant,
        _: i32,
    ) -> Option<CertificateError> {
        None
    }
}
