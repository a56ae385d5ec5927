//! [`ServerConfig`]: what the server side of a connection needs ([`Stream::accept`] and
//! [`Listener`](crate::Listener)): its certificate and key, the handshake bound, and the same
//! close settings and timeouts as the client's [`Config`].
//!
//! [`Stream::accept`]: crate::Stream::accept

pub(crate) mod acceptor;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::{CloseMode, Config, TlsVersion};
use crate::error::{SetupInput, SetupProblem};
use crate::{CloseReport, ConnectionReport, Error};
use acceptor::Acceptor;

/// Default for [`ServerConfig::with_max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default for [`ServerConfig::with_thread_stack_size`]: a [`Listener`](crate::Listener)'s
/// connection threads run the program's handler, whose needs the library cannot know.
pub const DEFAULT_HANDLER_STACK_SIZE: usize = 256 * 1024;

/// The server side's settings: a builder, every default documented.
///
/// The certificate and key come from PEM files ([`identity`](Self::with_identity)), PEM bytes
/// ([`identity_pem`](Self::with_identity_pem)) or a PKCS#12 archive
/// ([`pkcs12`](Self::with_pkcs12), [`pkcs12_file`](Self::with_pkcs12_file)). They are read and
/// checked by [`check`](Self::check) or by the first handshake, once, and the TLS setup is
/// shared by every connection accepted with this `ServerConfig` and its clones.
///
/// Clients may be required to show a certificate signed by a CA of the program's
/// ([`client_ca_file`](Self::with_client_ca_file)); the client's certificate is then
/// [`Session::peer_certificate`](crate::Session::peer_certificate).
///
/// Where native-tls runs on OpenSSL (Linux, the BSDs), the server is OpenSSL's own, TLS 1.2
/// and 1.3: native-tls's OpenSSL server turns TLS 1.3 off and cannot ask for a client
/// certificate. On Windows and Apple systems it is native-tls's, and a client CA is an
/// error there.
///
/// ```
/// use std::time::Duration;
/// use gracetls::{CloseMode, ServerConfig};
///
/// let config = ServerConfig::new()
///     .with_identity("cert.pem", "key.pem")
///     .with_handshake_timeout(Duration::from_secs(5))
///     .with_close_mode(CloseMode::Wait);
/// assert_eq!(config.close_timeout(), Duration::from_secs(2));
/// assert_eq!(config.max_connections(), 1024);
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) identity: Option<Source>,
    pub(crate) alpn: Vec<String>,
    pub(crate) client_cas: Vec<Bytes>,
    pub(crate) min_version: Option<TlsVersion>,
    pub(crate) max_version: Option<TlsVersion>,
    handshake_timeout: Duration,
    close_timeout: Duration,
    close_mode: CloseMode,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    max_connections: usize,
    stack_size: usize,
    on_close: Option<OnClose>,
    on_report: Option<OnReport>,
    /// Built on first use from the settings above and shared with clones; every setter of
    /// what it is built from starts a new one.
    acceptor: Arc<OnceLock<Acceptor>>,
}

/// What [`ServerConfig::with_on_close`] was given.
type OnClose = Arc<dyn Fn(&CloseReport) + Send + Sync>;
/// What [`ServerConfig::with_on_report`] was given.
pub(crate) type OnReport = Arc<dyn Fn(&ConnectionReport) + Send + Sync>;

/// Where the server's certificate and key come from. Never printed: it holds a private key.
#[derive(Clone)]
pub(crate) enum Source {
    Pem { cert: Bytes, key: Bytes },
    Pkcs12 { archive: Bytes, password: String },
}

#[derive(Clone)]
pub(crate) enum Bytes {
    File(PathBuf),
    Memory(Arc<[u8]>),
}

impl Bytes {
    pub(crate) fn read(&self, input: SetupInput) -> Result<Vec<u8>, Error> {
        match self {
            Bytes::File(path) => std::fs::read(path).map_err(|e| {
                let reason = match e.kind() {
                    std::io::ErrorKind::NotFound => "there is no such file".to_string(),
                    std::io::ErrorKind::PermissionDenied => {
                        "permission denied: it cannot be read".to_string()
                    }
                    _ => e.to_string(),
                };
                setup_as(SetupProblem::Unreadable, input, self, reason)
            }),
            Bytes::Memory(bytes) => Ok(bytes.to_vec()),
        }
    }

    pub(crate) fn label(&self) -> String {
        match self {
            Bytes::File(path) => path.display().to_string(),
            Bytes::Memory(_) => "(in memory)".into(),
        }
    }
}

/// A file or PEM text that cannot be used for what it contains.
pub(crate) fn setup(input: SetupInput, source: &Bytes, reason: impl std::fmt::Display) -> Error {
    setup_as(SetupProblem::Invalid, input, source, reason)
}

pub(crate) fn setup_as(
    problem: SetupProblem,
    input: SetupInput,
    source: &Bytes,
    reason: impl std::fmt::Display,
) -> Error {
    Error::Setup {
        what: format!("{input} {}", source.label()),
        reason: reason.to_string(),
        input,
        problem,
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let identity = match &self.identity {
            None => "none".to_string(),
            Some(Source::Pem { cert, key }) => format!("{} + {}", cert.label(), key.label()),
            Some(Source::Pkcs12 { archive, .. }) => format!("PKCS#12 {}", archive.label()),
        };
        f.debug_struct("ServerConfig")
            .field("identity", &identity)
            .field("alpn", &self.alpn)
            .field(
                "client_cas",
                &self.client_cas.iter().map(Bytes::label).collect::<Vec<_>>(),
            )
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("close_mode", &self.close_mode)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            identity: None,
            alpn: Vec::new(),
            client_cas: Vec::new(),
            min_version: None,
            max_version: None,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            close_mode: CloseMode::Fast,
            read_timeout: None,
            write_timeout: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            stack_size: DEFAULT_HANDLER_STACK_SIZE,
            on_close: None,
            on_report: None,
            acceptor: Arc::default(),
        }
    }
}

impl ServerConfig {
    /// The defaults: no certificate yet (one is required), no ALPN, the TLS library's
    /// version range, 10 s handshake timeout, 2 s close timeout, fast close, no read or write
    /// timeout, at most 1,024 connections at once in a [`Listener`](crate::Listener).
    pub fn new() -> Self {
        Self::default()
    }

    /// The certificate chain (PEM, the server's own certificate first) and its private key
    /// (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted), as files, read when
    /// [`check`](Self::check) or the first handshake runs. Default: none; a handshake
    /// without one fails with [`Error::Setup`].
    pub fn with_identity(self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.with_source(Source::Pem {
            cert: Bytes::File(cert.into()),
            key: Bytes::File(key.into()),
        })
    }

    /// Like [`identity`](Self::with_identity), with the PEM text itself.
    pub fn with_identity_pem(self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.with_source(Source::Pem {
            cert: Bytes::Memory(cert.into().into()),
            key: Bytes::Memory(key.into().into()),
        })
    }

    /// A PKCS#12 archive (DER bytes, as `openssl pkcs12 -export` writes) holding the key and
    /// the certificate chain, and its password (`""` for none).
    pub fn with_pkcs12(self, archive: impl Into<Vec<u8>>, password: &str) -> Self {
        self.with_source(Source::Pkcs12 {
            archive: Bytes::Memory(archive.into().into()),
            password: password.to_string(),
        })
    }

    /// Like [`pkcs12`](Self::with_pkcs12), read from a file.
    pub fn with_pkcs12_file(self, path: impl Into<PathBuf>, password: &str) -> Self {
        self.with_source(Source::Pkcs12 {
            archive: Bytes::File(path.into()),
            password: password.to_string(),
        })
    }

    fn with_source(mut self, identity: Source) -> Self {
        self.identity = Some(identity);
        self.acceptor = Arc::default();
        self
    }

    /// Requires every client to show a certificate signed by one of the CA certificates in
    /// this PEM file (read when [`check`](Self::check) or the first handshake runs); a
    /// client without one fails the handshake. May be given more than once. Default: none,
    /// no client certificate is asked for.
    pub fn with_client_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_cas.push(Bytes::File(path.into()));
        self.acceptor = Arc::default();
        self
    }

    /// Like [`client_ca_file`](Self::with_client_ca_file), with the PEM text itself.
    pub fn with_client_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_cas.push(Bytes::Memory(pem.into().into()));
        self.acceptor = Arc::default();
        self
    }

    /// The ALPN protocols the server accepts, most preferred first (`h2`, `http/1.1`).
    /// Default: none, ALPN is not answered.
    pub fn with_alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self.acceptor = Arc::default();
        self
    }

    /// The lowest TLS version accepted. Default: TLS 1.2.
    pub fn with_min_version(mut self, version: TlsVersion) -> Self {
        self.min_version = Some(version);
        self.acceptor = Arc::default();
        self
    }

    /// The highest TLS version accepted. Default: the TLS library's (TLS 1.3 with OpenSSL).
    pub fn with_max_version(mut self, version: TlsVersion) -> Self {
        self.max_version = Some(version);
        self.acceptor = Arc::default();
        self
    }

    /// Bounds the TLS handshake of each accepted connection, so a client that stalls in
    /// the middle of it (or never starts) cannot hold a thread or a slot for long.
    /// Default: 10 s.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Bounds every close, as [`Config::close_timeout`] does for a client. It is also the
    /// [`Listener`](crate::Listener)'s drain timeout: its
    /// [`shutdown`](crate::Listener::shutdown) closes every connection at once, each within
    /// this bound. Default: 2 s.
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How a connection is closed, as [`Config::close_mode`]: [`CloseMode::Fast`] (the
    /// default) takes the client's TCP FIN as its answer to our close_notify;
    /// [`CloseMode::Wait`] waits for the client's close_notify itself.
    pub fn with_close_mode(mut self, mode: CloseMode) -> Self {
        self.close_mode = mode;
        self
    }

    /// Bounds how long a `read` waits for the client, as
    /// [`Stream::set_read_timeout`](crate::Stream::set_read_timeout) does after the
    /// handshake. Default: none.
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Bounds how long a `write` waits for the client to take data, as
    /// [`Stream::set_write_timeout`](crate::Stream::set_write_timeout). Default: none.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Called with the [`CloseReport`] of every connection accepted with this configuration,
    /// once, when its close ends, as [`Config::with_on_close`]. Default: none.
    pub fn with_on_close(
        mut self,
        callback: impl Fn(&CloseReport) + Send + Sync + 'static,
    ) -> Self {
        self.on_close = Some(Arc::new(callback));
        self
    }

    /// Called by a [`Listener`](crate::Listener) with the [`ConnectionReport`] of each of its
    /// connections when it ends, on that connection's thread: the client's address, the
    /// outcome, the bytes, how long it lasted; also for a client whose handshake failed.
    /// Those the shutdown drains are also in what [`Listener::shutdown`](crate::Listener::shutdown)
    /// returns. Default: none (each end is logged at `info`). It should be quick and must not
    /// panic.
    pub fn with_on_report(
        mut self,
        callback: impl Fn(&ConnectionReport) + Send + Sync + 'static,
    ) -> Self {
        self.on_report = Some(Arc::new(callback));
        self
    }

    pub(crate) fn on_report_callback(&self) -> Option<&OnReport> {
        self.on_report.as_ref()
    }

    /// How many connections a [`Listener`](crate::Listener) serves at once, handshakes
    /// included. The next client waits in the kernel's accept queue (its connect succeeds,
    /// its handshake waits) until a connection ends. Default: 1,024. Zero is taken as one.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Stack size of a [`Listener`](crate::Listener)'s connection threads, which run the
    /// handler. Default: [`DEFAULT_HANDLER_STACK_SIZE`] (256 KiB; only touched pages are
    /// resident).
    pub fn with_thread_stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The close timeout, also the drain timeout.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// The close mode.
    pub fn close_mode(&self) -> CloseMode {
        self.close_mode
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    /// The most connections a `Listener` serves at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub(crate) fn thread_stack_size(&self) -> usize {
        self.stack_size
    }

    /// Reads and checks the certificate and key and builds the TLS setup, without a client:
    /// a server reports a bad file when it starts. The result is kept for the connections
    /// accepted with this `ServerConfig` and its clones.
    ///
    /// ```
    /// let err = gracetls::ServerConfig::new()
    ///     .with_identity_pem(b"not a certificate".to_vec(), b"not a key".to_vec())
    ///     .check()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("server key (in memory)"), "{err}");
    /// ```
    pub fn check(&self) -> Result<(), Error> {
        self.acceptor().map(|_| ())
    }

    pub(crate) fn acceptor(&self) -> Result<Acceptor, Error> {
        if let Some(acceptor) = self.acceptor.get() {
            return Ok(acceptor.clone());
        }
        let built = Acceptor::build(self)?;
        Ok(self.acceptor.get_or_init(|| built).clone())
    }

    /// The client-side [`Config`] that carries the settings a [`Stream`](crate::Stream)
    /// keeps after its handshake (close, timeouts, the report's callback).
    pub(crate) fn stream_settings(&self) -> Config {
        let mut config = Config::new()
            .with_close_timeout(self.close_timeout)
            .with_close_mode(self.close_mode);
        if let Some(timeout) = self.read_timeout {
            config = config.with_read_timeout(timeout);
        }
        if let Some(timeout) = self.write_timeout {
            config = config.with_write_timeout(timeout);
        }
        if let Some(callback) = &self.on_close {
            let callback = Arc::clone(callback);
            config = config.with_on_close(move |report| callback(report));
        }
        config
    }
}
