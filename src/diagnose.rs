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
use crate::config::Config;
pub(crate) use crate::config::Trust as Settings;
use crate::error::CertificateProblem;
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
                let tcp = match config.proxy() {
                    None => crate::connect::connect_tcp(config, target, default_port, deadline),
                    Some(proxy) => {
                        crate::proxy::tunnel(config, proxy, target, default_port, deadline)
                    }
                }
                .map_err(|e| e.to_string())?;
                let timeout = config.connect_timeout();
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

/// Connects once more to `addr` (see [`Redial`]) and finds out why the certificate was rejected; `reported` is
/// the verification failure the first connection ended with, e.g. `certificate has expired`.
/// `None` when nothing reliable was learned within the time left before `deadline`.
pub(crate) fn diagnose(
    settings: &Settings,
    addr: Redial<'_>,
    name: &str,
    deadline: Instant,
    reported: &str,
) -> Option<CertificateProblem> {
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
mod imp {
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant, SystemTime};

    use log::debug;
    use openssl::nid::Nid;
    use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode, SslVersion};
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509, X509NameRef, X509Ref, X509VerifyResult};

    use super::{Redial, Settings};
    use crate::certificate::system_time;
    use crate::config::TlsVersion;
    use crate::error::CertificateProblem;

    // X509_V_ERR_* of OpenSSL's x509_vfy.h: stable numbers since OpenSSL 0.9.
    const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
    const CERT_NOT_YET_VALID: i32 = 9;
    const CERT_HAS_EXPIRED: i32 = 10;
    const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
    const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
    const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
    const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
    const HOSTNAME_MISMATCH: i32 = 62;
    const IP_ADDRESS_MISMATCH: i32 = 64;

    /// One complaint of the verification: at which depth, what, about which certificate.
    struct Finding {
        depth: u32,
        error: X509VerifyResult,
        cert: Option<X509>,
    }

    pub(super) fn diagnose(
        settings: &Settings,
        addr: Redial<'_>,
        name: &str,
        deadline: Instant,
        reported: &str,
    ) -> Option<CertificateProblem> {
        let (findings, sent) = match connect(settings, addr, name, deadline) {
            Ok(seen) => seen,
            Err(e) => {
                debug!("certificate diagnosis of {addr} failed: {e}");
                return None;
            }
        };
        let first = findings.first()?;
        // The same failure as the first connection's, or the facts are about another one.
        if first.error.error_string() != reported {
            debug!(
                "certificate diagnosis of {addr}: found {:?}, not {reported:?}",
                first.error.error_string()
            );
            return None;
        }
        let cert = first.cert.as_deref().or(sent.first().map(|c| &**c))?;
        let problem = match first.error.as_raw() {
            CERT_NOT_YET_VALID | CERT_HAS_EXPIRED => CertificateProblem::Dates {
                depth: first.depth,
                subject: subject(cert.subject_name()),
                not_before: system_time(cert.not_before())?,
                not_after: system_time(cert.not_after())?,
                now: SystemTime::now(),
            },
            HOSTNAME_MISMATCH | IP_ADDRESS_MISMATCH => {
                let leaf = sent.first().map_or(cert, |c| &**c);
                let names = alt_names(leaf);
                let common_name = names
                    .is_empty()
                    .then(|| common_name(leaf.subject_name()))
                    .flatten();
                CertificateProblem::NameMismatch {
                    expected: name.to_string(),
                    names,
                    common_name,
                }
            }
            UNABLE_TO_GET_ISSUER_CERT
            | UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | UNABLE_TO_VERIFY_LEAF_SIGNATURE => {
                let issuer = cert.issuer_name().to_der().ok()?;
                let issuer_sent = sent.iter().any(|c| {
                    c.subject_name()
                        .to_der()
                        .is_ok_and(|subject| subject == issuer)
                });
                if issuer_sent {
                    // Sent, yet not found as the issuer: some other fault (a wrong key, a
                    // broken extension) that these facts would not explain.
                    return None;
                }
                if let Some(file) = (first.depth == 0)
                    .then(|| holding_file(settings, cert))
                    .flatten()
                {
                    return Some(CertificateProblem::CaFileHoldsLeaf {
                        file,
                        subject: subject(cert.subject_name()),
                        issuer: subject(cert.issuer_name()),
                    });
                }
                // Only for the server's own certificate: an intermediate's published issuer
                // is as often a root that is simply not trusted here.
                if let Some(url) = (first.depth == 0).then(|| ca_issuers(cert)).flatten() {
                    return Some(CertificateProblem::MissingIntermediate {
                        subject: subject(cert.subject_name()),
                        issuer: subject(cert.issuer_name()),
                        url,
                    });
                }
                CertificateProblem::IncompleteChain {
                    depth: first.depth,
                    subject: subject(cert.subject_name()),
                    issuer: subject(cert.issuer_name()),
                }
            }
            SELF_SIGNED_CERT_IN_CHAIN => CertificateProblem::UntrustedRoot {
                root: subject(cert.subject_name()),
            },
            DEPTH_ZERO_SELF_SIGNED_CERT => CertificateProblem::SelfSigned {
                subject: subject(cert.subject_name()),
            },
            _ => return None,
        };
        Some(problem)
    }

    /// The diagnostic connection: every verification complaint, and the chain the server sent.
    fn connect(
        settings: &Settings,
        addr: Redial<'_>,
        name: &str,
        deadline: Instant,
    ) -> Result<(Vec<Finding>, Vec<X509>), String> {
        let findings = Arc::new(Mutex::new(Vec::new()));
        let connector = connector(settings, Arc::clone(&findings)).map_err(|e| e.to_string())?;
        let socket = addr.connect(deadline)?;
        let _ = socket.set_nodelay(true);
        let stream = Bounded { socket, deadline };
        let ssl = connector.configure().map_err(|e| e.to_string())?;
        let sent_chain = |ssl: &openssl::ssl::SslRef| -> Vec<X509> {
            ssl.peer_cert_chain()
                .map(|chain| chain.iter().map(X509Ref::to_owned).collect())
                .unwrap_or_default()
        };
        let sent = match ssl.connect(name, stream) {
            Ok(mut tls) => {
                let sent = sent_chain(tls.ssl());
                // close_notify, TCP FIN, then the server's answer: a clean close on both
                // sides, and nothing left unread to turn our close into a reset.
                let first = tls.shutdown();
                let _ = tls.get_ref().socket.shutdown(Shutdown::Write);
                let second = tls.shutdown();
                debug!("diagnostic connection to {addr} closed: {first:?}, {second:?}");
                sent
            }
            Err(HandshakeError::Failure(mid)) | Err(HandshakeError::WouldBlock(mid)) => {
                debug!(
                    "diagnostic handshake with {addr} did not finish: {}",
                    mid.error()
                );
                sent_chain(mid.ssl())
            }
            Err(HandshakeError::SetupFailure(e)) => return Err(e.to_string()),
        };
        let findings =
            std::mem::take(&mut *findings.lock().unwrap_or_else(PoisonError::into_inner));
        Ok((findings, sent))
    }

    /// Trust what native-tls's connector does; record instead of refuse.
    fn connector(
        settings: &Settings,
        findings: Arc<Mutex<Vec<Finding>>>,
    ) -> Result<SslConnector, openssl::error::ErrorStack> {
        let mut builder = SslConnector::builder(SslMethod::tls())?;
        if settings.system_roots {
            // As native-tls adds them, after OpenSSL's default paths; a failure only means
            // fewer roots, as it does there.
            let probe = openssl_probe::probe();
            if let Some(file) = &probe.cert_file {
                let _ = builder.load_verify_locations(Some(file), None);
            }
            for dir in &probe.cert_dir {
                let _ = builder.load_verify_locations(None, Some(dir));
            }
        } else {
            builder.set_cert_store(X509StoreBuilder::new()?.build());
        }
        for (_, der) in &settings.roots {
            let _ = builder.cert_store_mut().add_cert(X509::from_der(der)?);
        }
        let version = |v: TlsVersion| match v {
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        };
        builder.set_min_proto_version(settings.min_version.map(version))?;
        builder.set_max_proto_version(settings.max_version.map(version))?;
        builder.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
            if !ok {
                let finding = Finding {
                    depth: ctx.error_depth(),
                    error: ctx.error(),
                    cert: ctx.current_cert().map(X509Ref::to_owned),
                };
                findings
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(finding);
            }
            true
        });
        Ok(builder.build())
    }

    /// A socket whose every read and write ends by `deadline`, so the whole diagnosis does.
    struct Bounded {
        socket: TcpStream,
        deadline: Instant,
    }

    impl Bounded {
        fn left(&self) -> io::Result<Duration> {
            match self.deadline.saturating_duration_since(Instant::now()) {
                d if d.is_zero() => Err(io::ErrorKind::TimedOut.into()),
                d => Ok(d),
            }
        }
    }

    impl Read for Bounded {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.socket.set_read_timeout(Some(self.left()?))?;
            self.socket.read(buf)
        }
    }

    impl Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.socket.set_write_timeout(Some(self.left()?))?;
            self.socket.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.socket.flush()
        }
    }

    /// The CA file that holds `cert` itself (the same subject and key), which OpenSSL does
    /// not take as a root of trust since it was not issued by itself.
    fn holding_file(settings: &Settings, cert: &X509Ref) -> Option<String> {
        let subject = cert.subject_name().to_der().ok()?;
        let key = cert.public_key().ok()?;
        settings.roots.iter().find_map(|(file, der)| {
            let root = X509::from_der(der).ok()?;
            let same = root.subject_name().to_der().ok()? == subject
                && root.public_key().ok()?.public_eq(&key);
            same.then(|| file.clone())
        })
    }

    /// The first `CA Issuers` URL of the certificate's Authority Information Access: where
    /// its issuer's certificate is published, which public CAs write into what they issue.
    fn ca_issuers(cert: &X509Ref) -> Option<String> {
        cert.authority_info()?.iter().find_map(|access| {
            let uri = (access.method().nid() == Nid::AD_CA_ISSUERS)
                .then(|| access.location().uri())
                .flatten()?;
            // The server's bytes, bound for a terminal: nothing but printable ASCII.
            Some(
                uri.chars()
                    .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                    .collect(),
            )
        })
    }

    /// The common name, or else the whole subject as `O=..., OU=...`.
    fn subject(name: &X509NameRef) -> String {
        if let Some(cn) = common_name(name) {
            return cn;
        }
        name.entries()
            .map(|e| {
                let key = e.object().nid().short_name().unwrap_or("?");
                let value = e.data().to_string().unwrap_or_else(|_| "?".into());
                format!("{key}={value}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn common_name(name: &X509NameRef) -> Option<String> {
        let entry = name.entries_by_nid(Nid::COMMONNAME).next()?;
        entry.data().to_string().ok()
    }

    /// `DNS:name` and `IP:address` entries, in the certificate's order.
    fn alt_names(cert: &X509Ref) -> Vec<String> {
        let Some(names) = cert.subject_alt_names() else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| {
                if let Some(dns) = n.dnsname() {
                    return Some(format!("DNS:{dns}"));
                }
                let ip = match n.ipaddress()? {
                    &[a, b, c, d] => std::net::IpAddr::from([a, b, c, d]),
                    bytes => std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
                };
                Some(format!("IP:{ip}"))
            })
            .collect()
    }
}

#[cfg(any(target_os = "windows", target_vendor = "apple"))]
mod imp {
    use std::time::Instant;

    use super::{Redial, Settings};
    use crate::error::CertificateProblem;

    pub(super) fn diagnose(
        _: &Settings,
        _: Redial<'_>,
        _: &str,
        _: Instant,
        _: &str,
    ) -> Option<CertificateProblem> {
        None
    }
}
