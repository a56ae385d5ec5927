//! The diagnostic connection where native-tls uses OpenSSL: made with the `openssl` crate,
//! with a verify callback that records every complaint and lets the handshake finish, so
//! that the chain the server sent can be read and the failure explained in facts.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use log::debug;
use openssl::nid::Nid;
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509NameRef, X509Ref, X509VerifyResult};

use super::{Redial, Settings};
use crate::certificate::{common_name, system_time, x509_name};
use crate::config::TlsVersion;
use crate::error::{CertificateError, ChainEnd, Validity};

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
    reported: i32,
) -> Option<CertificateError> {
    let (findings, sent) = match connect(settings, addr, name, deadline) {
        Ok(seen) => seen,
        Err(e) => {
            debug!("certificate diagnosis of {addr} failed: {e}");
            return None;
        }
    };
    let first = findings.first()?;
    // The same failure as the first connection's, or the facts are about another one.
    if first.error.as_raw() != reported {
        debug!(
            "certificate diagnosis of {addr}: found {:?}, not X509_V_ERR {reported}",
            first.error.error_string()
        );
        return None;
    }
    let cert = first.cert.as_deref().or(sent.first().map(|c| &**c))?;
    let problem = match first.error.as_raw() {
        code @ (CERT_NOT_YET_VALID | CERT_HAS_EXPIRED) => {
            let dates = Validity::new(
                first.depth,
                subject(cert.subject_name()),
                system_time(cert.not_before())?,
                system_time(cert.not_after())?,
            );
            if code == CERT_HAS_EXPIRED {
                CertificateError::Expired(Some(dates))
            } else {
                CertificateError::NotYetValid(Some(dates))
            }
        }
        HOSTNAME_MISMATCH | IP_ADDRESS_MISMATCH => {
            let leaf = sent.first().map_or(cert, |c| &**c);
            let names = alt_names(leaf);
            let common_name = names
                .is_empty()
                .then(|| common_name(leaf.subject_name()))
                .flatten();
            CertificateError::NameMismatch {
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
                return Some(CertificateError::CaFileHoldsLeaf {
                    file,
                    subject: subject(cert.subject_name()),
                    issuer: subject(cert.issuer_name()),
                });
            }
            // Only for the server's own certificate: an intermediate's published issuer
            // is as often a root that is simply not trusted here.
            if let Some(url) = (first.depth == 0).then(|| ca_issuers(cert)).flatten() {
                return Some(CertificateError::IncompleteChain {
                    subject: subject(cert.subject_name()),
                    issuer: subject(cert.issuer_name()),
                    url,
                });
            }
            CertificateError::UnknownIssuer(Some(ChainEnd::new(
                first.depth,
                subject(cert.subject_name()),
                subject(cert.issuer_name()),
            )))
        }
        SELF_SIGNED_CERT_IN_CHAIN => CertificateError::UntrustedRoot {
            root: Some(subject(cert.subject_name())),
        },
        DEPTH_ZERO_SELF_SIGNED_CERT => CertificateError::SelfSigned {
            subject: Some(subject(cert.subject_name())),
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
    let findings = std::mem::take(&mut *findings.lock().unwrap_or_else(PoisonError::into_inner));
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
    common_name(name).unwrap_or_else(|| x509_name(name))
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
