//! Connection options, and how they become a `native_tls::TlsConnector`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use native_tls::{Certificate, Identity, Protocol, TlsConnector};

use crate::diagnose;
use crate::error::{SetupInput, SetupProblem};
use crate::{CloseReport, Error, Proxy};

/// A TLS protocol version that can bound the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    fn protocol(self) -> Protocol {
        match self {
            TlsVersion::Tls12 => Protocol::Tlsv12,
            TlsVersion::Tls13 => Protocol::Tlsv13,
        }
    }
}

impl std::str::FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(format!("unknown TLS version {s:?}: use 1.2 or 1.3")),
        }
    }
}

/// How a connection is closed: by [`Stream::close`](crate::Stream::close),
/// [`Connection::close`](crate::Connection::close), and by `Drop` of the last
/// [`Stream`](crate::Stream) handle or of the [`Connection`](crate::Connection). The
/// half-close ([`Stream::shutdown_write`](crate::Stream::shutdown_write)) is the same in
/// both modes: close_notify now, the read side left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CloseMode {
    /// Send queued data and close_notify, then deliver what the server still sends (an
    /// answer to our close_notify, such as FTP's `211 Logout.`) until its close_notify or its
    /// TCP FIN, which a fast close takes as its answer; a server that does neither holds the
    /// close for the close timeout, and that is no failure. Then stop reading and close.
    #[default]
    Fast,
    /// Send queued data and close_notify, then keep delivering data until the server's
    /// close_notify (or its end of stream), bounded by the close timeout.
    Wait,
}

/// Stack size of a [`Connection`](crate::Connection)'s reader thread, unless
/// [`Config::thread_stack_size`] says otherwise: 64 KiB.
///
/// Measured: every integration test (bulk data, a TLS 1.3 KeyUpdate, a TLS 1.2 renegotiation
/// that verifies the server's certificate again on the reader thread) passes with 16 KiB in
/// a debug build, so this leaves four times that. Only the pages a thread touches are
/// resident (12 to 16 KiB per thread, measured); the size bounds address space, not memory.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// Everything a [`Connection`](crate::Connection) needs to know before it connects.
///
/// Built with chained setters; every setter documents its default. A setting's getter is
/// the setter's name with `get_` before it ([`get_connect_timeout`](Self::get_connect_timeout)
/// for [`connect_timeout`](Self::connect_timeout)), as `std::process::Command` names its
/// getters (`get_args` for `arg`): the plain name is the setter's.
///
/// ```
/// use std::time::Duration;
/// use gracetls::{CloseMode, Config, TlsVersion};
///
/// let config = Config::new()
///     .ca_file("ca.pem")
///     .servername("localhost")
///     .min_version(TlsVersion::Tls12)
///     .connect_timeout(Duration::from_secs(5))
///     .close_mode(CloseMode::Wait);
/// assert_eq!(config.get_close_timeout(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    ca_files: Vec<Source>,
    insecure: bool,
    servername: Option<String>,
    identity: Option<(Source, Source)>,
    alpn: Vec<String>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    connect_timeout: Duration,
    close_timeout: Duration,
    close_mode: CloseMode,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    reader_stack_size: usize,
    system_roots: bool,
    proxy: Option<Proxy>,
    /// The connector built from the fields above, shared by every connection made with this
    /// `Config` and its clones. Building one loads the system roots (about 1 MiB and tens of
    /// milliseconds each time), so many connections must not each build their own. Every
    /// setter of what the connector is built from (roots, identity, versions, ALPN,
    /// verification) starts a new, empty cache; the others (timeouts, close mode, proxy,
    /// server name, stack size) keep it.
    connector: Arc<OnceLock<Connector>>,
    on_close: Option<OnClose>,
}

/// What [`Config::on_close`] was given.
#[derive(Clone)]
pub(crate) struct OnClose(pub(crate) Arc<dyn Fn(&CloseReport) + Send + Sync>);

impl std::fmt::Debug for OnClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnClose(..)")
    }
}

/// A native-tls connector, and what a diagnosis of its certificate failures needs to trust
/// the same (see [`diagnose`]).
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) tls: TlsConnector,
    pub(crate) diagnosis: Arc<diagnose::Settings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ca_files: Vec::new(),
            insecure: false,
            servername: None,
            identity: None,
            alpn: Vec::new(),
            min_version: None,
            max_version: None,
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            close_mode: CloseMode::Fast,
            read_timeout: None,
            write_timeout: None,
            reader_stack_size: DEFAULT_STACK_SIZE,
            system_roots: true,
            proxy: None,
            connector: Arc::default(),
            on_close: None,
        }
    }
}

impl Config {
    /// The defaults: system roots, full verification, no client certificate, no ALPN, the TLS
    /// library's version range, 10 s connect timeout, 2 s close timeout, fast close.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the certificates of a PEM file to the trusted roots (the system roots stay unless
    /// [`system_roots`](Self::system_roots) is `false`).
    /// Default: none. The file is read when the first connection is made with this `Config`
    /// (or a clone of it); later connections share what was read then.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(Source::File(path.into()));
        self.connector = Arc::default();
        self
    }

    /// Adds the certificates of PEM text to the trusted roots, like
    /// [`ca_file`](Self::ca_file) without a file. Default: none.
    ///
    /// ```
    /// let config = gracetls::Config::new().ca_pem(b"-----BEGIN CERTIFICATE-----\n...".to_vec());
    /// ```
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_files.push(Source::Pem(pem.into().into()));
        self.connector = Arc::default();
        self
    }

    /// Whether the system's root certificates are trusted, besides those of
    /// [`ca_file`](Self::ca_file). Default: `true`.
    ///
    /// With `false`, only the CA files are trusted. native-tls (OpenSSL) still parses the
    /// system bundle while it builds the connector, tens of milliseconds once per `Config`;
    /// a short-lived program that never needs it can point `SSL_CERT_FILE` at `/dev/null`
    /// before it starts any thread, as the `gracetls` command does.
    pub fn system_roots(mut self, trust: bool) -> Self {
        self.system_roots = trust;
        self.connector = Arc::default();
        self
    }

    /// Accepts any certificate and any name: **no protection against an active attacker**.
    /// Default: `false`.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self.connector = Arc::default();
        self
    }

    /// The name sent as SNI and verified against the certificate. Default: the target's host.
    pub fn servername(mut self, name: impl Into<String>) -> Self {
        self.servername = Some(name.into());
        self
    }

    /// A client certificate chain and its private key, both PEM files. Default: none.
    ///
    /// The key may be PKCS#8 (a `PRIVATE KEY` PEM block), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`); the last two are converted to PKCS#8 in memory where the TLS
    /// library is OpenSSL (elsewhere the error gives the command that converts the file). It
    /// must not be encrypted, and it must belong to the chain's first certificate: both are
    /// checked when the first connection is made.
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((Source::File(cert.into()), Source::File(key.into())));
        self.connector = Arc::default();
        self
    }

    /// A client certificate chain and its private key as PEM text, like
    /// [`identity`](Self::identity) without files. Default: none.
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((
            Source::Pem(cert.into().into()),
            Source::Pem(key.into().into()),
        ));
        self.connector = Arc::default();
        self
    }

    /// ALPN protocols to offer, in order of preference. Default: none.
    pub fn alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self.connector = Arc::default();
        self
    }

    /// The lowest TLS version accepted. Default: the TLS library's (TLS 1.2 with OpenSSL 3).
    pub fn min_version(mut self, version: TlsVersion) -> Self {
        self.min_version = Some(version);
        self.connector = Arc::default();
        self
    }

    /// The highest TLS version offered. Default: the TLS library's (TLS 1.3).
    pub fn max_version(mut self, version: TlsVersion) -> Self {
        self.max_version = Some(version);
        self.connector = Arc::default();
        self
    }

    /// Bounds TCP connect (all addresses) plus the TLS handshake. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds the whole close; past it the socket is closed hard. Default: 2 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How [`Stream::close`](crate::Stream::close), [`Connection::close`](crate::Connection::close)
    /// and `Drop` close. Default:
    /// [`CloseMode::Fast`].
    pub fn close_mode(mut self, mode: CloseMode) -> Self {
        self.close_mode = mode;
        self
    }

    /// Bounds how long a `read` on a [`Stream`](crate::Stream) this configuration connects
    /// waits for the server, as [`Stream::set_read_timeout`](crate::Stream::set_read_timeout)
    /// does after the handshake. Default: none, a read waits as long as it takes. The
    /// handshake is bounded by the connect timeout alone.
    ///
    /// A [`Connection`](crate::Connection) ignores it: its reader thread waits for the
    /// server as long as it takes.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Bounds how long a `write` on a [`Stream`](crate::Stream) this configuration connects
    /// waits for the server to take data, as
    /// [`Stream::set_write_timeout`](crate::Stream::set_write_timeout) does after the
    /// handshake. Default: none, a write waits as long as the server does not read.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Called with the [`CloseReport`] of every connection this configuration makes, once,
    /// when its close ends, on the thread that closed it: also for a close done by `Drop`
    /// (a connection pool that drops its streams, a `Stream` that goes out of scope), whose
    /// report would otherwise be lost. Default: none. A later call replaces the earlier.
    ///
    /// The callback runs inside the close, so it should be quick and must not panic (a
    /// panic in `Drop` may abort the program). Every close is also logged at `info`
    /// (`closed HOST:PORT: OUTCOME, close_notify sent / received, in N ms`).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use gracetls::{CloseReport, Config, Outcome};
    ///
    /// let (tx, rx) = mpsc::channel::<CloseReport>();
    /// let tx = std::sync::Mutex::new(tx);
    /// let config = Config::new().on_close(move |report| {
    ///     if report.outcome() != Outcome::Clean {
    ///         let _ = tx.lock().map(|tx| tx.send(report.clone()));
    ///     }
    /// });
    /// // Every connection made with `config`, however it ends, sends an unclean report to `rx`.
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn on_close(mut self, callback: impl Fn(&CloseReport) + Send + Sync + 'static) -> Self {
        self.on_close = Some(OnClose(Arc::new(callback)));
        self
    }

    /// Stack size of a [`Connection`](crate::Connection)'s reader thread. Default:
    /// [`DEFAULT_STACK_SIZE`] (64 KiB), four times what the TLS paths were measured to need.
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.reader_stack_size = bytes;
        self
    }

    /// A proxy to connect through: [`Stream::connect`](crate::Stream::connect) and
    /// [`Connection::connect`](crate::Connection::connect) open a tunnel to the target through
    /// it (HTTP CONNECT or SOCKS5), within the connect timeout, and TLS runs end to end in that
    /// tunnel, the certificate checked against the target's name. Default: none (no
    /// environment variable is read).
    ///
    /// ```
    /// let config = gracetls::Config::new().proxy("http://127.0.0.1:8888".parse()?);
    /// assert_eq!(config.get_proxy().map(|p| p.port()), Some(8888));
    /// # Ok::<(), gracetls::Error>(())
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The proxy connections go through, if any.
    pub fn get_proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// The connect timeout.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The close timeout.
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// The close mode.
    pub fn get_close_mode(&self) -> CloseMode {
        self.close_mode
    }

    /// The read timeout a new [`Stream`](crate::Stream) starts with, if any.
    pub fn get_read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The write timeout a new [`Stream`](crate::Stream) starts with, if any.
    pub fn get_write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    /// Whether verification is off.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    pub(crate) fn get_servername(&self) -> Option<&str> {
        self.servername.as_deref()
    }

    pub(crate) fn on_close_callback(&self) -> Option<OnClose> {
        self.on_close.clone()
    }

    pub(crate) fn get_thread_stack_size(&self) -> usize {
        self.reader_stack_size
    }

    /// Reads and checks everything this configuration names (CA certificates, the client
    /// certificate and key) and builds its TLS setup, without connecting: a program can report
    /// a bad file when it starts rather than at its first connection. The result is kept for
    /// the connections made with this `Config` and its clones.
    ///
    /// ```
    /// let err = gracetls::Config::new().ca_pem(b"not a certificate".to_vec()).check().unwrap_err();
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
        let mut diagnosis = diagnose::Settings {
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

/// Where a certificate or key comes from: a file read when the first connection is made, or
/// PEM text given in memory.
#[derive(Clone)]
enum Source {
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

/// The client key as PKCS#8 PEM, which is all native-tls takes: PKCS#1 and SEC1 keys are
/// converted, and the key is checked against the chain's first certificate, so that a wrong
/// pair is named by its two files rather than by OpenSSL's `key values mismatch`.
#[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
fn pkcs8_key(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<Vec<u8>, Error> {
    use openssl::pkey::PKey;
    use openssl::x509::X509;

    if let Some(reason) = encrypted(key_path, key_pem) {
        return Err(setup_as(
            SetupProblem::Convert,
            key_path,
            SetupInput::ClientKey,
            reason,
        ));
    }
    // An empty passphrase, never OpenSSL's default callback, which would prompt on the
    // terminal for an encrypted key that slipped through.
    let key = PKey::private_key_from_pem_passphrase(key_pem, b"").map_err(|e| {
        let reason = crate::error::tls_reason(&e.to_string()).0;
        setup(
            key_path,
            SetupInput::ClientKey,
            format!("no PEM private key in it ({reason})"),
        )
    })?;
    let cert = X509::stack_from_pem(cert_pem)
        .map_err(|e| {
            let reason = crate::error::tls_reason(&e.to_string()).0;
            setup(cert_path, SetupInput::ClientCertificate, reason)
        })?
        .into_iter()
        .next()
        .ok_or_else(|| {
            let (problem, reason) = no_certificate(cert_path, cert_pem);
            setup_as(problem, cert_path, SetupInput::ClientCertificate, reason)
        })?;
    let matches = cert.public_key().is_ok_and(|public| public.public_eq(&key));
    if !matches {
        return Err(Error::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    key.private_key_to_pem_pkcs8().map_err(|e| {
        let reason = crate::error::tls_reason(&e.to_string()).0;
        setup(key_path, SetupInput::ClientKey, reason)
    })
}

/// Without OpenSSL at hand the key is taken as it is, and a PKCS#1 or SEC1 key is refused
/// with the command that converts it.
#[cfg(any(target_os = "windows", target_vendor = "apple"))]
fn pkcs8_key(
    _cert_path: &Path,
    _cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<Vec<u8>, Error> {
    if let Some(reason) = encrypted(key_path, key_pem) {
        return Err(setup_as(
            SetupProblem::Convert,
            key_path,
            SetupInput::ClientKey,
            reason,
        ));
    }
    let text = String::from_utf8_lossy(key_pem);
    for (marker, kind) in [
        (
            concat!("-----BEGIN ", "RSA PRIVATE KEY-----"),
            "a PKCS#1 RSA key",
        ),
        (
            concat!("-----BEGIN ", "EC PRIVATE KEY-----"),
            "a SEC1 EC key",
        ),
    ] {
        if text.contains(marker) {
            let path = key_path.display();
            return Err(setup_as(
                SetupProblem::Convert,
                key_path,
                SetupInput::ClientKey,
                format!(
                    "it is {kind}, and the TLS library takes PKCS#8 only; convert it with `openssl pkcs8 -topk8 -nocrypt -in {path} -out {path}.pk8` and pass {path}.pk8"
                ),
            ));
        }
    }
    Ok(key_pem.to_vec())
}

/// Why an encrypted key cannot be used, with the command that decrypts it; `None` if it is not
/// encrypted.
fn encrypted(key_path: &Path, key_pem: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(key_pem);
    if !(text.contains(concat!("-----BEGIN ", "ENCRYPTED PRIVATE KEY-----"))
        || text.contains("Proc-Type: 4,ENCRYPTED"))
    {
        return None;
    }
    let path = key_path.display();
    Some(format!(
        "it is encrypted, and gracetls asks for no passphrase; decrypt it with `openssl pkcs8 -topk8 -nocrypt -in {path} -out {path}.pk8` and pass {path}.pk8"
    ))
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
fn no_certificate(path: &Path, contents: &[u8]) -> (SetupProblem, String) {
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

fn setup(path: &Path, what: SetupInput, reason: impl std::fmt::Display) -> Error {
    setup_as(SetupProblem::Invalid, path, what, reason)
}

fn setup_as(
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

/// Formats a duration for a message: `2s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn only_connector_settings_drop_the_connector() {
        let config = Config::new();
        let kept = config
            .clone()
            .connect_timeout(Duration::from_secs(1))
            .close_timeout(Duration::from_secs(1))
            .close_mode(CloseMode::Wait)
            .read_timeout(Duration::from_secs(1))
            .write_timeout(Duration::from_secs(1))
            .servername("example.org")
            .thread_stack_size(1 << 20)
            .proxy("http://127.0.0.1:8888".parse().expect("proxy"));
        assert!(Arc::ptr_eq(&config.connector, &kept.connector));
        let dropped = config.clone().alpn(["h2"]);
        assert!(!Arc::ptr_eq(&config.connector, &dropped.connector));
    }

    #[test]
    fn missing_ca_file_names_the_file() {
        let err = Config::new()
            .ca_file("/nonexistent/ca.pem")
            .connector()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
