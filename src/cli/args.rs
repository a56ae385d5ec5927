//! The command line's arguments: what clap parses, what it cannot check, and the `Config`
//! they make.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum, ValueHint};
use gracetls::starttls::Protocol;
use gracetls::{CloseMode, Config, Proxy, TlsVersion};

use super::duration::parse_duration;
use super::listen_args::ServerArgs;

const EXIT_CODES: &str = "\
At stdin EOF (--on-eof):
  wait        the default: send nothing, keep printing the server's data, and end when the
              server sends close_notify (answered, exit 0), drops TCP (exit 3), or when no
              data has moved either way for --quiet-time (close_notify, exit 0)
  half-close  send close_notify and a TCP FIN at once, keep reading until the server closes;
              many servers (nginx among them) take that as the client leaving and cancel
              or cut the answer
  close       close at once (close_notify); what the server sends until its close_notify
              or its end is still printed
  ignore      stay connected until the server closes or a signal

Exit codes:
  0    clean: close_notify sent (and received where the close waited for it)
  1    error: connect, proxy refused or failed, STARTTLS not offered or refused,
       certificate, handshake, reset, TLS failure, writing stdout
  2    usage: bad arguments, or a --ca-file, --cert or --key that cannot be used (all are
       checked before connecting: nothing was sent)
  3    the server's stream ended without close_notify (possible truncation), or data
       arrived just as the quiet time ended and was dropped
  4    the close did not finish within --close-timeout; the socket was closed hard
  5    close_notify was sent, but neither the server's close_notify nor its TCP's
       acknowledgement came back within --close-timeout: it may not have arrived
  SIGINT, SIGTERM, SIGHUP, SIGQUIT: the goodbye is sent, then gracetls ends by that same
  signal (a shell shows 130, 143, 129, 131). A second signal, or one before the TLS session
  is up, ends it at once.

Local command: ~. alone on a line closes the connection, when stdin is a terminal (see --escape).

Server mode: gracetls --listen [HOST:]PORT --cert PEM --key PEM serves one client, stdin to
it and it to stdout, with the same exit paths, codes and report (--ca-file: client
certificates required, signed by a CA in that file). With
--keep-open --exec CMD it serves many, each with its own CMD, and on SIGTERM or SIGINT drains
them (close_notify to each, at most --drain-timeout) and ends by that signal.

The server's certificate: gracetls --show-cert HOST | openssl x509 -noout -enddate";

/// A TLS client that always says goodbye: stdin to the server, the server to stdout, and
/// close_notify on every way out; with --listen, the server that does.
#[derive(Debug, Parser)]
#[command(name = "gracetls", version, after_help = EXIT_CODES)]
pub(crate) struct Args {
    /// The server, HOST[:PORT]; port 443 by default, IPv6 as [::1]:8443; https://HOST[:PORT] too.
    #[arg(value_name = "HOST[:PORT]", value_hint = ValueHint::Hostname, required_unless_present = "listen")]
    pub(crate) target: Option<String>,

    /// Anything after the target: refused with a hint (`HOST PORT` is one word, `HOST:PORT`).
    #[arg(hide = true)]
    pub(crate) extra: Vec<String>,

    /// Trust the CA certificates in this PEM file instead of the system roots (repeatable).
    #[arg(long, value_name = "PEM", value_hint = ValueHint::FilePath)]
    pub(crate) ca_file: Vec<PathBuf>,

    /// With --ca-file: trust the system roots as well.
    #[arg(long, requires = "ca_file")]
    pub(crate) system_roots: bool,

    /// Accept any certificate and any name (unsafe: no protection against interception).
    #[arg(long)]
    pub(crate) insecure: bool,

    /// The name sent as SNI and checked against the certificate [default: HOST].
    #[arg(long, value_name = "NAME", value_hint = ValueHint::Hostname)]
    pub(crate) servername: Option<String>,

    /// Certificate chain (PEM): the client's, or with --listen the server's; needs --key.
    #[arg(long, value_name = "PEM", requires = "key", value_hint = ValueHint::FilePath)]
    pub(crate) cert: Option<PathBuf>,

    /// The private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1); needs --cert.
    #[arg(long, value_name = "PEM", requires = "cert", value_hint = ValueHint::FilePath)]
    pub(crate) key: Option<PathBuf>,

    /// ALPN protocols to offer, comma-separated (e.g. h2,http/1.1).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_hint = ValueHint::Other)]
    pub(crate) alpn: Vec<String>,

    /// Lowest TLS version: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION")]
    pub(crate) tls_min: Option<TlsVersion>,

    /// Highest TLS version: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION")]
    pub(crate) tls_max: Option<TlsVersion>,

    /// Connect through this proxy: http://[USER:PASSWORD@]HOST:PORT (HTTP CONNECT) or
    /// socks5://[USER:PASSWORD@]HOST:PORT. TLS runs end to end through the tunnel and the
    /// certificate is checked against the target. No environment variable is read.
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    pub(crate) proxy: Option<String>,

    /// Start in clear and upgrade with STARTTLS: smtp, lmtp, imap, pop3, ftp, xmpp or postgres
    /// (EHLO/LHLO name localhost; XMPP domain: --servername or HOST). Without a port, the
    /// protocol's: 587, 24, 143, 110, 21, 5222, 5432.
    #[arg(long, value_name = "PROTO")]
    pub(crate) starttls: Option<Protocol>,

    /// Send each LF read from stdin as CRLF (a CRLF already there is kept as it is).
    #[arg(long)]
    pub(crate) crlf: bool,

    /// Bound on TCP connect (and the proxy's tunnel), the STARTTLS exchange and the TLS handshake (e.g. 500ms, 2s, 1m).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true, value_hint = ValueHint::Other)]
    pub(crate) connect_timeout: Duration,

    /// Bound on the whole close; past it the socket is closed hard (exit 4).
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_timeout, allow_hyphen_values = true, value_hint = ValueHint::Other)]
    pub(crate) close_timeout: Duration,

    /// After sending close_notify, wait for the server's (delivering its data meanwhile).
    #[arg(long)]
    pub(crate) close_wait: bool,

    /// What stdin EOF does (see "At stdin EOF" below).
    #[arg(long, value_enum, value_name = "MODE", default_value = "wait")]
    pub(crate) on_eof: OnEof,

    /// With --on-eof wait: after stdin EOF, close once no data has moved either way this long.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_timeout, allow_hyphen_values = true, value_hint = ValueHint::Other)]
    pub(crate) quiet_time: Duration,

    /// Escape character of the local command (CHAR then '.' alone on a line), or 'none'
    /// [default: '~' when stdin is a terminal, none when it is a pipe or a file].
    #[arg(long, value_name = "CHAR|none", value_parser = parse_escape)]
    pub(crate) escape: Option<Escape>,

    /// Close after the server sends a line equal to LINE (CR/LF stripped); it is delivered.
    #[arg(long, value_name = "LINE", value_hint = ValueHint::Other)]
    pub(crate) quit_on: Option<String>,

    /// Print the server's certificate as PEM on stdout, then close (close_notify) and exit 0.
    ///
    /// stdin is not read. Only the server's own certificate (no chain). A certificate that does
    /// not verify is refused as always; --insecure prints it anyway. Expiry check:
    /// gracetls --show-cert HOST | openssl x509 -noout -enddate
    #[arg(long)]
    pub(crate) show_cert: bool,

    /// One line on stderr at exit saying how the connection ended.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "none")]
    pub(crate) report: ReportFormat,

    /// The server mode's options.
    #[command(flatten)]
    pub(crate) server: ServerArgs,

    /// -v: the session (version, cipher, ALPN, certificate) and how the connection ended;
    /// -vv: every shutdown step with its time. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnEof {
    /// Send nothing; keep delivering the server's data; end when it closes or goes quiet.
    Wait,
    /// Send close_notify at once, keep delivering the server's data until it closes.
    HalfClose,
    /// Close at once.
    Close,
    /// Stay connected until the server closes or a signal.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    None,
    Text,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Escape(pub(crate) Option<u8>);

fn parse_escape(text: &str) -> Result<Escape, String> {
    match text.as_bytes() {
        b"none" => Ok(Escape(None)),
        [b] if b.is_ascii() && *b != b'\n' && *b != b'.' => Ok(Escape(Some(*b))),
        _ => Err(format!(
            "invalid escape {text:?}: one ASCII character (not '.') or 'none'"
        )),
    }
}

/// A duration that bounds something: more than zero.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    if text.trim_start().starts_with('-') {
        return Err("must be more than zero, e.g. 500ms, 2s, 1m".into());
    }
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be more than zero, e.g. 500ms, 2s, 1m".into()),
        d => Ok(d),
    }
}

/// Checks what clap cannot, before anything touches the network: a usage error is exit 2
/// with nothing sent.
pub(crate) fn check_usage(args: &Args) -> Result<(), String> {
    let target = args.target.as_deref().unwrap_or_default();
    if let Some(word) = args.extra.first() {
        if word.parse::<u16>().is_ok() && !target.contains(':') {
            return Err(format!(
                "unexpected argument {word:?}: HOST and PORT are one argument, {target}:{word}"
            ));
        }
        return Err(format!(
            "unexpected argument {word:?}: gracetls takes one HOST[:PORT]; data comes from stdin"
        ));
    }
    if let (Some(min), Some(max)) = (args.tls_min, args.tls_max) {
        if min == TlsVersion::Tls13 && max == TlsVersion::Tls12 {
            return Err(
                "--tls-min 1.3 is above --tls-max 1.2: no TLS version is left to use".into(),
            );
        }
    }
    // Parsed here rather than by clap, whose message would repeat the URL, password and all.
    if let Some(Err(e)) = args.proxy.as_deref().map(Proxy::parse) {
        return Err(format!(
            "--proxy: {e}; give http://HOST:PORT or socks5://HOST:PORT (USER:PASSWORD@ before HOST if needed)"
        ));
    }
    if args.servername.as_deref().is_some_and(str::is_empty) {
        return Err(
            "--servername is empty: give the name to send as SNI and to check the certificate against"
                .into(),
        );
    }
    Ok(())
}

pub(crate) fn config_from(args: &Args) -> Config {
    let mut config = Config::new()
        .with_insecure(args.insecure)
        .with_alpn(args.alpn.iter().cloned())
        .with_connect_timeout(args.connect_timeout)
        .with_close_timeout(args.close_timeout)
        .with_close_mode(if args.close_wait {
            CloseMode::Wait
        } else {
            CloseMode::Fast
        });
    for ca in &args.ca_file {
        config = config.with_ca_file(ca);
    }
    if !args.ca_file.is_empty() {
        config = config.with_system_roots(args.system_roots);
    }
    if let Some(name) = &args.servername {
        config = config.with_servername(name);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        config = config.with_identity(cert, key);
    }
    if let Some(v) = args.tls_min {
        config = config.with_min_version(v);
    }
    if let Some(v) = args.tls_max {
        config = config.with_max_version(v);
    }
    // check_usage refused a URL that does not parse.
    if let Some(Ok(proxy)) = args.proxy.as_deref().map(Proxy::parse) {
        config = config.with_proxy(proxy);
    }
    config
}
