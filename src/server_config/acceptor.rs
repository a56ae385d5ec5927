//! How a [`ServerConfig`] becomes a TLS server, and the server's handshake taken one step at a
//! time over the in-memory transport.
//!
//! Where native-tls runs on OpenSSL, the server is OpenSSL's own `SslAcceptor` (Mozilla's
//! intermediate profile, version 5: TLS 1.2 and 1.3): native-tls builds its OpenSSL server
//! from the older profile, which turns TLS 1.3 off, and offers no way to turn it back on.
//! Elsewhere (Windows, Apple) the server is native-tls's, as the platform gives it.

use crate::Error;
use crate::config::TlsVersion;
use crate::error::{SetupInput, SetupProblem};
use crate::server_config::{Bytes, ServerConfig, Source, setup, setup_as};
use crate::tls::TlsStream;
use crate::transport::MemoryTransport;

/// A TLS server setup, built once per [`ServerConfig`] and shared by its connections.
#[derive(Clone)]
pub(crate) struct Acceptor(Server);

#[cfg(tls_openssl)]
type Server = openssl::ssl::SslAcceptor;
#[cfg(not(tls_openssl))]
type Server = native_tls::TlsAcceptor;

#[cfg(tls_openssl)]
type MidServer = openssl::ssl::MidHandshakeSslStream<MemoryTransport>;
#[cfg(not(tls_openssl))]
type MidServer = native_tls::MidHandshakeTlsStream<MemoryTransport>;

/// Where a handshake stands after a step. One is made per handshake step and matched at
/// once, so its size does not matter (native-tls's session is large on some systems).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step {
    Done(TlsStream<MemoryTransport>),
    /// It failed; what the TLS library said.
    Failed(String),
    /// It waits for the client's next bytes (or for ours to be sent).
    Again(Mid),
}

/// A handshake under way.
pub(crate) struct Mid(MidServer);

impl Mid {
    pub(crate) fn transport(&mut self) -> &mut MemoryTransport {
        self.0.get_mut()
    }

    pub(crate) fn resume(self) -> Step {
        step(self.0.handshake())
    }
}

impl Acceptor {
    /// Starts the server's handshake over `transport`.
    pub(crate) fn start(&self, transport: MemoryTransport) -> Step {
        step(self.0.accept(transport))
    }

    #[cfg(tls_openssl)]
    pub(crate) fn build(config: &ServerConfig) -> Result<Acceptor, Error> {
        use openssl::ssl::{AlpnError, SslAcceptor, SslMethod, SslVersion};

        let failed = |e: openssl::error::ErrorStack| Error::Setup {
            what: "the TLS server configuration".into(),
            reason: crate::error::tls_reason(&e.to_string()).0,
            input: SetupInput::Tls,
            problem: SetupProblem::Invalid,
        };
        let (key, chain) = identity(config)?;
        let mut builder =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(failed)?;
        builder.set_private_key(&key).map_err(failed)?;
        let mut chain = chain.into_iter();
        if let Some(leaf) = chain.next() {
            builder.set_certificate(&leaf).map_err(failed)?;
        }
        for cert in chain {
            builder.add_extra_chain_cert(cert).map_err(failed)?;
        }
        builder.check_private_key().map_err(failed)?;
        if !config.client_cas.is_empty() {
            require_client_certificates(&mut builder, &config.client_cas)?;
        }
        let version = |v: TlsVersion| match v {
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        };
        if let Some(min) = config.min_version {
            builder
                .set_min_proto_version(Some(version(min)))
                .map_err(failed)?;
        }
        if let Some(max) = config.max_version {
            builder
                .set_max_proto_version(Some(version(max)))
                .map_err(failed)?;
        }
        if !config.alpn.is_empty() {
            let mut ours = Vec::new();
            for protocol in &config.alpn {
                let len = u8::try_from(protocol.len())
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Error::Setup {
                        what: format!("the ALPN protocol {protocol:?}"),
                        reason: "an ALPN name is 1 to 255 bytes long".into(),
                        input: SetupInput::Tls,
                        problem: SetupProblem::Invalid,
                    })?;
                ours.push(len);
                ours.extend_from_slice(protocol.as_bytes());
            }
            builder.set_alpn_protos(&ours).map_err(failed)?;
            // Our order of preference; the name returned is a slice of the client's list,
            // which is what the callback may borrow.
            builder.set_alpn_select_callback(move |_, client| {
                let chosen = openssl::ssl::select_next_proto(&ours, client)
                    .map(<[u8]>::to_vec)
                    .ok_or(AlpnError::NOACK)?;
                client
                    .windows(chosen.len())
                    .find(|w| *w == chosen.as_slice())
                    .ok_or(AlpnError::NOACK)
            });
        }
        Ok(Acceptor(builder.build()))
    }

    #[cfg(not(tls_openssl))]
    pub(crate) fn build(config: &ServerConfig) -> Result<Acceptor, Error> {
        use native_tls::{Identity, Protocol, TlsAcceptor};

        if !config.client_cas.is_empty() {
            return Err(Error::Setup {
                what: "the client CA".into(),
                reason:
                    "this system's TLS library (native-tls) cannot ask a client for a certificate"
                        .into(),
                input: SetupInput::CaFile,
                problem: SetupProblem::Invalid,
            });
        }

        let failed = |e: native_tls::Error| crate::error::tls_reason(&e.to_string()).0;
        let identity = match &config.identity {
            None => return Err(no_identity()),
            Some(Source::Pem { cert, key }) => {
                let cert_pem = cert.read(SetupInput::ServerCertificate)?;
                let key_pem = key.read(SetupInput::ServerKey)?;
                if is_encrypted(&key_pem) {
                    return Err(encrypted(key));
                }
                Identity::from_pkcs8(&cert_pem, &key_pem)
                    .map_err(|e| setup(SetupInput::ServerKey, key, failed(e)))?
            }
            Some(Source::Pkcs12 { archive, password }) => {
                let der = archive.read(SetupInput::Pkcs12Archive)?;
                Identity::from_pkcs12(&der, password)
                    .map_err(|e| setup(SetupInput::Pkcs12Archive, archive, failed(e)))?
            }
        };
        let protocol = |v: TlsVersion| match v {
            TlsVersion::Tls12 => Protocol::Tlsv12,
            TlsVersion::Tls13 => Protocol::Tlsv13,
        };
        let mut builder = TlsAcceptor::builder(identity);
        builder
            .min_protocol_version(config.min_version.map(protocol))
            .max_protocol_version(config.max_version.map(protocol));
        if !config.alpn.is_empty() {
            builder.accept_alpn(config.alpn.as_slice());
        }
        builder.build().map(Acceptor).map_err(|e| Error::Setup {
            what: "the TLS server configuration".into(),
            reason: failed(e),
            input: SetupInput::Tls,
            problem: SetupProblem::Invalid,
        })
    }
}

/// Asks every client for a certificate and refuses the handshake without one signed by a CA
/// of `cas`.
#[cfg(tls_openssl)]
fn require_client_certificates(
    builder: &mut openssl::ssl::SslAcceptorBuilder,
    cas: &[Bytes],
) -> Result<(), Error> {
    use openssl::ssl::SslVerifyMode;
    use openssl::x509::X509;
    use openssl::x509::store::X509StoreBuilder;

    let reason = |e: openssl::error::ErrorStack| crate::error::tls_reason(&e.to_string()).0;
    let failed = |e| Error::Setup {
        what: "the client CA".into(),
        reason: reason(e),
        input: SetupInput::CaFile,
        problem: SetupProblem::Invalid,
    };
    let mut store = X509StoreBuilder::new().map_err(failed)?;
    for source in cas {
        let pem = source.read(SetupInput::CaFile)?;
        let certs =
            X509::stack_from_pem(&pem).map_err(|e| setup(SetupInput::CaFile, source, reason(e)))?;
        if certs.is_empty() {
            return Err(setup(
                SetupInput::CaFile,
                source,
                "no PEM certificate in it",
            ));
        }
        for cert in certs {
            // Named in the CertificateRequest, so a client with several picks the right one.
            builder.add_client_ca(&cert).map_err(failed)?;
            store.add_cert(cert).map_err(failed)?;
        }
    }
    builder
        .set_verify_cert_store(store.build())
        .map_err(failed)?;
    builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    Ok(())
}

#[cfg(tls_openssl)]
fn step(
    result: Result<
        openssl::ssl::SslStream<MemoryTransport>,
        openssl::ssl::HandshakeError<MemoryTransport>,
    >,
) -> Step {
    use openssl::ssl::HandshakeError;
    use openssl::x509::X509VerifyResult;

    match result {
        Ok(tls) => Step::Done(TlsStream::OpenSsl(tls)),
        Err(HandshakeError::WouldBlock(mid)) => Step::Again(Mid(mid)),
        Err(HandshakeError::Failure(mid)) => {
            let mut text = mid.error().to_string();
            let verify = mid.ssl().verify_result();
            if verify != X509VerifyResult::OK {
                text.push_str(&format!(" ({})", verify.error_string()));
            }
            Step::Failed(text)
        }
        Err(HandshakeError::SetupFailure(e)) => Step::Failed(e.to_string()),
    }
}

#[cfg(not(tls_openssl))]
fn step(
    result: Result<
        native_tls::TlsStream<MemoryTransport>,
        native_tls::HandshakeError<MemoryTransport>,
    >,
) -> Step {
    match result {
        Ok(tls) => Step::Done(tls.into()),
        Err(native_tls::HandshakeError::WouldBlock(mid)) => Step::Again(Mid(mid)),
        Err(native_tls::HandshakeError::Failure(e)) => Step::Failed(e.to_string()),
    }
}

/// The private key and the certificate chain (the server's own first), read and checked:
/// a wrong pair is named by its two sources.
#[cfg(tls_openssl)]
fn identity(
    config: &ServerConfig,
) -> Result<
    (
        openssl::pkey::PKey<openssl::pkey::Private>,
        Vec<openssl::x509::X509>,
    ),
    Error,
> {
    use openssl::pkcs12::Pkcs12;
    use openssl::pkey::PKey;
    use openssl::x509::X509;

    let reason = |e: openssl::error::ErrorStack| crate::error::tls_reason(&e.to_string()).0;
    match &config.identity {
        None => Err(no_identity()),
        Some(Source::Pem { cert, key }) => {
            let cert_pem = cert.read(SetupInput::ServerCertificate)?;
            let key_pem = key.read(SetupInput::ServerKey)?;
            if is_encrypted(&key_pem) {
                return Err(encrypted(key));
            }
            // An empty passphrase, never OpenSSL's default callback, which would prompt on
            // the terminal.
            let private = PKey::private_key_from_pem_passphrase(&key_pem, b"").map_err(|e| {
                setup(
                    SetupInput::ServerKey,
                    key,
                    format!("no PEM private key in it ({})", reason(e)),
                )
            })?;
            let chain = X509::stack_from_pem(&cert_pem)
                .map_err(|e| setup(SetupInput::ServerCertificate, cert, reason(e)))?;
            let Some(first) = chain.first() else {
                return Err(setup(
                    SetupInput::ServerCertificate,
                    cert,
                    "no PEM certificate in it",
                ));
            };
            if !first
                .public_key()
                .is_ok_and(|public| public.public_eq(&private))
            {
                return Err(setup(
                    SetupInput::ServerKey,
                    key,
                    format!(
                        "it does not match the server certificate {}: they hold different public keys",
                        cert.label()
                    ),
                ));
            }
            Ok((private, chain))
        }
        Some(Source::Pkcs12 { archive, password }) => {
            let der = archive.read(SetupInput::Pkcs12Archive)?;
            let wrong = |e| {
                setup(
                    SetupInput::Pkcs12Archive,
                    archive,
                    format!("{} (a wrong password, or not a PKCS#12 archive)", reason(e)),
                )
            };
            let parsed = Pkcs12::from_der(&der)
                .and_then(|p| p.parse2(password))
                .map_err(wrong)?;
            let (Some(private), Some(leaf)) = (parsed.pkey, parsed.cert) else {
                return Err(setup(
                    SetupInput::Pkcs12Archive,
                    archive,
                    "it holds no private key with its certificate",
                ));
            };
            let mut chain = vec![leaf];
            chain.extend(parsed.ca.into_iter().flatten());
            Ok((private, chain))
        }
    }
}

fn no_identity() -> Error {
    Error::Setup {
        what: "the server configuration".into(),
        reason: "it has no certificate and key; give them with ServerConfig::with_identity, identity_pem or pkcs12".into(),
        input: SetupInput::ServerCertificate,
        problem: SetupProblem::Invalid,
    }
}

fn encrypted(key: &Bytes) -> Error {
    setup_as(
        SetupProblem::Convert,
        SetupInput::ServerKey,
        key,
        "it is encrypted; decrypt it with `openssl pkcs8 -topk8 -nocrypt`",
    )
}

fn is_encrypted(key_pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(key_pem);
    text.contains(concat!("-----BEGIN ", "ENCRYPTED PRIVATE KEY-----"))
        || text.contains("Proc-Type: 4,ENCRYPTED")
}
