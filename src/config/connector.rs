//! How a [`Config`] becomes a native-tls connector: the CA files and the client identity read
//! and checked, and the result kept for every connection made with that `Config`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use native_tls::{Certificate, Identity, Protocol, TlsConnector};

use super::key::pkcs8_key;
use super::{Config, TlsVersion};
use crate::Error;
use crate::error::{SetupInput, SetupProblem};

/// A native-tls connector, and what a diagnosis of its certificate failures needs to trust
/// the same.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) tls: TlsConnector,
    pub(crate) diagnosis: Arc<Trust>,
}

/// What the diagnostic connection needs to trust what the first one did.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(tls_openssl), allow(dead_code))]
pub(crate) struct Trust {
    /// The CA files' certificates (DER), as read when the connector was built, each with
    /// the name of its file.
    pub(crate) roots: Vec<(String, Vec<u8>)>,
    /// Whether the system's roots are trusted too.
    pub(crate) system_roots: bool,
    pub(crate) min_version: Option<TlsVersion>,
    pub(crate) max_version: Option<TlsVersion>,
}

/// Where a certificate or key comes from: a file read when the first connection is made, or
/// PEM text given in memory.
#[derive(Clone)]
pub(super) enum Source {
    File(PathBuf),
    Pem(Arc<[u8]>),
}

impl std::fmt::Debug for Source {
    /// Never prints the PEM itself: it may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Pem(pem) => write!(f, "PEM ({} bytes)", pem.len()),
        }
    }
}

impl TlsVersion {
    fn protocol(self) -> Protocol {
        match self {
            TlsVersion::Tls12 => Protocol::Tlsv12,
            TlsVersion::Tls13 => Protocol::Tlsv13,
        }
    }
}

impl Config {
    /// Reads and checks everything this configuration names (CA certificates, the client
    /// certificate and key) and builds its TLS setup, without connecting: a program can report
    /// a bad file when it starts rather than at its first connection. The result is kept for
    /// the connections made with this `Config` and its clones.
    ///
    /// ```
    /// let err = gracetls::Config::new().with_ca_pem(b"not a certificate".to_vec()).check().unwrap_err();
    /// assert!(err.to_string().contains("CA file"), "{err}");
    /// ```
    pub fn check(&self) -> Result<(), Error> {
        self.connector().map(|_| ())
    }

    /// The connector for this configuration, built on first use and then shared.
    pub(crate) fn connector(&self) -> Result<Connector, Error> {
        if let Some(connector) = self.connector.get() {
            return Ok(connector.clone());
        }
        // Two threads that get here at once both build one; the first stored is kept.
        let built = self.build_connector()?;
        Ok(self.connector.get_or_init(|| built).clone())
    }

    fn build_connector(&self) -> Result<Connector, Error> {
        let mut builder = TlsConnector::builder();
        let mut diagnosis = Trust {
            system_roots: self.system_roots,
            min_version: self.min_version,
            max_version: self.max_version,
            ..Default::default()
        };
        for source in &self.ca_files {
            let pem = source.read(SetupInput::CaFile)?;
            let path = &source.label();
            let certs = Certificate::stack_from_pem(&pem)
                .map_err(|e| setup(path, SetupInput::CaFile, e))?;
            if certs.is_empty() {
                let (problem, reason) = no_certificate(path, &pem);
                return Err(setup_as(problem, path, SetupInput::CaFile, reason));
            }
            for cert in certs {
                let der = cert
                    .to_der()
                    .map_err(|e| setup(path, SetupInput::CaFile, e))?;
                diagnosis.roots.push((path.display().to_string(), der));
                builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &self.identity {
            let cert_pem = cert.read(SetupInput::ClientCertificate)?;
            let key_pem = key.read(SetupInput::ClientKey)?;
            let (cert, key) = (&cert.label(), &key.label());
            let key_pem = pkcs8_key(cert, &cert_pem, key, &key_pem)?;
            let identity = Identity::from_pkcs8(&cert_pem, &key_pem)
                .map_err(|e| setup(key, SetupInput::ClientIdentity, e))?;
            builder.identity(identity);
        }
        if !self.alpn.is_empty() {
            let protocols: Vec<&str> = self.alpn.iter().map(String::as_str).collect();
            builder.request_alpns(&protocols);
        }
        builder
            .disable_built_in_roots(!self.system_roots)
            .danger_accept_invalid_certs(self.insecure)
            .danger_accept_invalid_hostnames(self.insecure)
            .min_protocol_version(self.min_version.map(TlsVersion::protocol))
            .max_protocol_version(self.max_version.map(TlsVersion::protocol));
        let tls = builder.build().map_err(|e| Error::Setup {
            what: SetupInput::Tls.to_string(),
            reason: crate::error::tls_reason(&e.to_string()).0,
            input: SetupInput::Tls,
            problem: SetupProblem::Invalid,
        })?;
        Ok(Connector {
            tls,
            diagnosis: Arc::new(diagnosis),
        })
    }
}

impl Source {
    fn read(&self, what: SetupInput) -> Result<Vec<u8>, Error> {
        match self {
            Source::File(path) => read_file(path, what),
            Source::Pem(pem) => Ok(pem.to_vec()),
        }
    }

    /// How messages name it: the file's path, or `(PEM in memory)`.
    fn label(&self) -> PathBuf {
        match self {
            Source::File(path) => path.clone(),
            Source::Pem(_) => PathBuf::from("(PEM in memory)"),
        }
    }
}

fn read_file(path: &Path, what: SetupInput) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            io::ErrorKind::NotFound => "there is no such file".to_string(),
            io::ErrorKind::PermissionDenied => "permission denied: it cannot be read".to_string(),
            io::ErrorKind::IsADirectory => "it is a directory, not a file".to_string(),
            _ => e.to_string(),
        };
        setup_as(SetupProblem::Unreadable, path, what, reason)
    })
}

/// Why a file in which no PEM certificate was found is not one, from what it holds instead.
pub(super) fn no_certificate(path: &Path, contents: &[u8]) -> (SetupProblem, String) {
    let text = String::from_utf8_lossy(contents);
    let invalid = |reason: &str| (SetupProblem::Invalid, reason.to_string());
    if text.trim().is_empty() {
        return invalid("it is empty: no certificate in it");
    }
    // DER: an ASN.1 SEQUENCE, `0x30`, where PEM starts with text.
    if contents.first() == Some(&0x30) {
        let path = path.display();
        return (
            SetupProblem::Convert,
            format!(
                "no PEM certificate in it (it looks like DER); convert it with `openssl x509 -inform der -in {path} -out {path}.pem` and pass {path}.pem"
            ),
        );
    }
    if text.contains("PRIVATE KEY-----") {
        return invalid("it holds a private key, not a certificate");
    }
    if text.contains("-----BEGIN ") {
        return invalid(
            "no certificate in it: its PEM blocks are not certificates (no -----BEGIN CERTIFICATE-----)",
        );
    }
    invalid("no certificate in it: it is not PEM (no -----BEGIN CERTIFICATE----- line)")
}

pub(super) fn setup(path: &Path, what: SetupInput, reason: impl std::fmt::Display) -> Error {
    setup_as(SetupProblem::Invalid, path, what, reason)
}

pub(super) fn setup_as(
    problem: SetupProblem,
    path: &Path,
    input: SetupInput,
    reason: impl std::fmt::Display,
) -> Error {
    Error::Setup {
        what: format!("{input} {}", path.display()),
        reason: reason.to_string(),
        input,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::CloseMode;

    #[test]
    fn only_connector_settings_drop_the_connector() {
        let config = Config::new();
        let kept = config
            .clone()
            .with_connect_timeout(Duration::from_secs(1))
            .with_close_timeout(Duration::from_secs(1))
            .with_close_mode(CloseMode::Wait)
            .with_read_timeout(Duration::from_secs(1))
            .with_write_timeout(Duration::from_secs(1))
            .with_servername("example.org")
            .with_thread_stack_size(1 << 20)
            .with_on_close(|_| {})
            .with_proxy("http://127.0.0.1:8888".parse().expect("proxy"));
        assert!(Arc::ptr_eq(&config.connector, &kept.connector));
        let dropped = config.clone().with_alpn(["h2"]);
        assert!(!Arc::ptr_eq(&config.connector, &dropped.connector));
    }

    #[test]
    fn missing_ca_file_names_the_file() {
        let err = Config::new()
            .with_ca_file("/nonexistent/ca.pem")
            .connector()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
