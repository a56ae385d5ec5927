//! Connection options: [`Config`], a builder that documents every default. How it becomes a
//! TLS connector is in `connector`, the client key's conversion in `key`.

mod connector;
mod key;

use connector::Source;
pub(crate) use connector::{Connector, Trust};

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::{CloseReport, Proxy};

/// A TLS protocol version that can bound the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
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
/// [`Config::with_thread_stack_size`] says otherwise: 64 KiB.
///
/// Measured: every integration test (bulk data, a TLS 1.3 KeyUpdate, a TLS 1.2 renegotiation
/// that verifies the server's certificate again on the reader thread) passes with 16 KiB in
/// a debug build, so this leaves four times that. Only the pages a thread touches are
/// resident (12 to 16 KiB per thread, measured); the size bounds address space, not memory.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// Everything a [`Connection`](crate::Connection) needs to know before it connects.
///
/// Built with chained setters named `with_*`; every setter documents its default. A
/// setting's getter has the plain name: [`connect_timeout`](Self::connect_timeout) reads what
/// [`with_connect_timeout`](Self::with_connect_timeout) set.
///
/// ```
/// use std::time::Duration;
/// use gracetls::{CloseMode, Config, TlsVersion};
///
/// let config = Config::new()
///     .with_ca_file("ca.pem")
///     .with_servername("localhost")
///     .with_min_version(TlsVersion::Tls12)
///     .with_connect_timeout(Duration::from_secs(5))
///     .with_close_mode(CloseMode::Wait);
/// assert_eq!(config.close_timeout(), Duration::from_secs(2));
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

/// What [`Config::with_on_close`] was given.
#[derive(Clone)]
pub(crate) struct OnClose(pub(crate) Arc<dyn Fn(&CloseReport) + Send + Sync>);

impl std::fmt::Debug for OnClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnClose(..)")
    }
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
    /// [`with_system_roots`](Self::with_system_roots) is `false`).
    /// Default: none. The file is read when the first connection is made with this `Config`
    /// (or a clone of it); later connections share what was read then.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(Source::File(path.into()));
        self.connector = Arc::default();
        self
    }

    /// Adds the certificates of PEM text to the trusted roots, like
    /// [`with_ca_file`](Self::with_ca_file) without a file. Default: none.
    ///
    /// ```
    /// let config = gracetls::Config::new().with_ca_pem(b"-----BEGIN CERTIFICATE-----\n...".to_vec());
    /// ```
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_files.push(Source::Pem(pem.into().into()));
        self.connector = Arc::default();
        self
    }

    /// Whether the system's root certificates are trusted, besides those of
    /// [`with_ca_file`](Self::with_ca_file). Default: `true`.
    ///
    /// With `false`, only the CA files are trusted. native-tls (OpenSSL) still parses the
    /// system bundle while it builds the connector, tens of milliseconds once per `Config`;
    /// a short-lived program that never needs it can point `SSL_CERT_FILE` at `/dev/null`
    /// before it starts any thread, as the `gracetls` command does.
    pub fn with_system_roots(mut self, trust: bool) -> Self {
        self.system_roots = trust;
        self.connector = Arc::default();
        self
    }

    /// Accepts any certificate and any name: **no protection against an active attacker**.
    /// Default: `false`.
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self.connector = Arc::default();
        self
    }

    /// The name sent as SNI and verified against the certificate. Default: the target's host.
    pub fn with_servername(mut self, name: impl Into<String>) -> Self {
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
    pub fn with_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((Source::File(cert.into()), Source::File(key.into())));
        self.connector = Arc::default();
        self
    }

    /// A client certificate chain and its private key as PEM text, like
    /// [`with_identity`](Self::with_identity) without files. Default: none.
    pub fn with_identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((
            Source::Pem(cert.into().into()),
            Source::Pem(key.into().into()),
        ));
        self.connector = Arc::default();
        self
    }

    /// ALPN protocols to offer, in order of preference. Default: none.
    pub fn with_alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self.connector = Arc::default();
        self
    }

    /// The lowest TLS version accepted. Default: the TLS library's (TLS 1.2 with OpenSSL 3).
    pub fn with_min_version(mut self, version: TlsVersion) -> Self {
        self.min_version = Some(version);
        self.connector = Arc::default();
        self
    }

    /// The highest TLS version offered. Default: the TLS library's (TLS 1.3).
    pub fn with_max_version(mut self, version: TlsVersion) -> Self {
        self.max_version = Some(version);
        self.connector = Arc::default();
        self
    }

    /// Bounds TCP connect (all addresses) plus the TLS handshake. Default: 10 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds the whole close; past it the socket is closed hard. Default: 2 s.
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How [`Stream::close`](crate::Stream::close), [`Connection::close`](crate::Connection::close)
    /// and `Drop` close. Default:
    /// [`CloseMode::Fast`].
    pub fn with_close_mode(mut self, mode: CloseMode) -> Self {
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
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Bounds how long a `write` on a [`Stream`](crate::Stream) this configuration connects
    /// waits for the server to take data, as
    /// [`Stream::set_write_timeout`](crate::Stream::set_write_timeout) does after the
    /// handshake. Default: none, a write waits as long as the server does not read.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
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
    /// let config = Config::new().with_on_close(move |report| {
    ///     if report.outcome() != Outcome::Clean {
    ///         let _ = tx.lock().map(|tx| tx.send(report.clone()));
    ///     }
    /// });
    /// // Every connection made with `config`, however it ends, sends an unclean report to `rx`.
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn with_on_close(
        mut self,
        callback: impl Fn(&CloseReport) + Send + Sync + 'static,
    ) -> Self {
        self.on_close = Some(OnClose(Arc::new(callback)));
        self
    }

    /// Stack size of a [`Connection`](crate::Connection)'s reader thread. Default:
    /// [`DEFAULT_STACK_SIZE`] (64 KiB), four times what the TLS paths were measured to need.
    pub fn with_thread_stack_size(mut self, bytes: usize) -> Self {
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
    /// let config = gracetls::Config::new().with_proxy("http://127.0.0.1:8888".parse()?);
    /// assert_eq!(config.proxy().map(|p| p.port()), Some(8888));
    /// # Ok::<(), gracetls::Error>(())
    /// ```
    pub fn with_proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The proxy connections go through, if any.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The close timeout.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// The close mode.
    pub fn close_mode(&self) -> CloseMode {
        self.close_mode
    }

    /// The read timeout a new [`Stream`](crate::Stream) starts with, if any.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The write timeout a new [`Stream`](crate::Stream) starts with, if any.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    /// Whether verification is off.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The name sent as SNI and verified, if set (otherwise the target's host is).
    pub fn servername(&self) -> Option<&str> {
        self.servername.as_deref()
    }

    pub(crate) fn on_close_callback(&self) -> Option<OnClose> {
        self.on_close.clone()
    }

    /// The stack size of a [`Connection`](crate::Connection)'s reader thread.
    pub fn thread_stack_size(&self) -> usize {
        self.reader_stack_size
    }
}
