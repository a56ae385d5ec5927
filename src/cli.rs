//! The command line: arguments, the stdin and stdout threads, signals, and the coordinator
//! whose one `select!` reads like the table of exit paths.
//!
//! Data never passes through the coordinator: the stdin thread feeds the connection's
//! bounded queue (after taking out the escape command), and the output thread writes the
//! server's data to stdout (watching for the quit line). Both tell the coordinator only how
//! their side ended, so it never blocks on anything but its `select!`, and a server that
//! stops reading or a stdout that stops draining cannot make signals unresponsive.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crossbeam_channel::{Receiver, Sender, never, select, unbounded};
use gracetls::lines::{EscapeFilter, LineMatcher};
use gracetls::{
    CloseMode, CloseReport, Config, Connection, Error, Event, ExitReport, Outcome, Signal,
    TlsVersion, Trigger, parse_duration,
};
use log::{debug, info, warn};

const EXIT_CODES: &str = "\
Exit codes:
  0    clean: close_notify sent (and received where the close waited for it)
  1    error: connect, certificate, handshake, reset, TLS failure
  2    usage: bad arguments
  3    the server's stream ended without close_notify (possible truncation)
  4    the close did not finish within --close-timeout; the socket was closed hard
  SIGINT, SIGTERM, SIGHUP: the goodbye is sent, then gracetls ends by that same signal
  (a shell shows 130, 143, 129). A second signal, or one before the TLS session is up,
  ends it at once.

Local command: ~. alone on a line of stdin closes the connection (see --escape).";

/// A TLS client that always says goodbye: stdin to the server, the server to stdout, and
/// close_notify on every way out.
#[derive(Debug, Parser)]
#[command(name = "gracetls", version, after_help = EXIT_CODES)]
struct Args {
    /// The server, HOST[:PORT]; port 443 by default, IPv6 as [::1]:8443.
    #[arg(value_name = "HOST[:PORT]")]
    target: String,

    /// Trust the CA certificates in this PEM file instead of the system roots (repeatable).
    #[arg(long, value_name = "PEM")]
    ca_file: Vec<PathBuf>,

    /// With --ca-file: trust the system roots as well.
    #[arg(long, requires = "ca_file")]
    system_roots: bool,

    /// Accept any certificate and any name (unsafe: no protection against interception).
    #[arg(long)]
    insecure: bool,

    /// The name sent as SNI and checked against the certificate [default: HOST].
    #[arg(long, value_name = "NAME")]
    servername: Option<String>,

    /// Client certificate chain (PEM); needs --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,

    /// Client private key (PKCS#8 PEM); needs --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,

    /// ALPN protocols to offer, comma-separated (e.g. h2,http/1.1).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    alpn: Vec<String>,

    /// Lowest TLS version: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION")]
    tls_min: Option<TlsVersion>,

    /// Highest TLS version: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION")]
    tls_max: Option<TlsVersion>,

    /// Bound on TCP connect plus TLS handshake (e.g. 500ms, 2s, 1m).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,

    /// Bound on the whole close; past it the socket is closed hard (exit 4).
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    close_timeout: Duration,

    /// After sending close_notify, wait for the server's (delivering its data meanwhile).
    #[arg(long)]
    close_wait: bool,

    /// What stdin EOF does.
    #[arg(long, value_enum, value_name = "MODE", default_value = "half-close")]
    on_eof: OnEof,

    /// Escape character of the local command (CHAR then '.' alone on a line), or 'none'.
    #[arg(long, value_name = "CHAR|none", default_value = "~", value_parser = parse_escape)]
    escape: Escape,

    /// Close after the server sends a line equal to LINE (CR/LF stripped); it is delivered.
    #[arg(long, value_name = "LINE")]
    quit_on: Option<String>,

    /// One line on stderr at exit saying how the connection ended.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "none")]
    report: ReportFormat,

    /// -v: how the connection ended; -vv: every shutdown step with its time. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnEof {
    /// Send close_notify at once, keep delivering the server's data until it closes.
    HalfClose,
    /// Close at once.
    Close,
    /// Stay connected until the server closes or a signal.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    None,
    Text,
    Json,
}

#[derive(Debug, Clone, Copy)]
struct Escape(Option<u8>);

fn parse_escape(text: &str) -> Result<Escape, String> {
    match text.as_bytes() {
        b"none" => Ok(Escape(None)),
        [b] if b.is_ascii() && *b != b'\n' && *b != b'.' => Ok(Escape(Some(*b))),
        _ => Err(format!(
            "invalid escape {text:?}: one ASCII character (not '.') or 'none'"
        )),
    }
}

/// How the stdin side ended; its data went to the connection.
enum Input {
    Eof,
    Escape,
}

/// How the stdout side saw the connection end; its data went to stdout.
enum Output {
    PeerCloseNotify,
    PeerEof,
    Failed(Error),
    QuitLine,
    StdoutClosed,
    /// Every event was handled and stdout flushed.
    Drained,
}

/// Keeps OpenSSL from parsing the system CA bundle when this run does not trust it.
///
/// Building a native-tls connector parses the system bundle twice (OpenSSL's default paths,
/// then openssl-probe's), about 60 ms of the 70 ms a short session took; the connector then
/// drops those roots anyway when `--ca-file` replaces them. OpenSSL reads the bundle's path
/// from `SSL_CERT_FILE`, and setting it is the only way in.
#[allow(unsafe_code)]
fn skip_system_bundle() {
    // SAFETY: `run` calls this first, before this process has started any thread (logging,
    // the signal watcher and the connection come later), so nothing reads the environment
    // while it changes.
    unsafe { std::env::set_var("SSL_CERT_FILE", "/dev/null") };
}

/// Runs the command line and returns its exit code; ends the process by a signal instead
/// where one ended the connection.
pub fn run() -> ExitCode {
    let started = Instant::now();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if !args.system_roots && (!args.ca_file.is_empty() || args.insecure) {
        skip_system_bundle();
    }
    init_logging(args.verbose);
    // A target that cannot be parsed is a usage error, like any other bad argument.
    if let Err(e) = gracetls::parse_target(&args.target) {
        print_error(&e);
        return ExitCode::from(2);
    }
    let signals = match watch_signals() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("gracetls: error: cannot watch signals: {e}");
            return ExitCode::from(1);
        }
    };
    if args.insecure {
        warn!(
            "--insecure: the server's certificate and name are not checked; anyone on the path can read and change this connection"
        );
    }
    let config = config_from(&args);

    // Connect on a helper thread so a signal during a stalled handshake ends us at once.
    let (connected_tx, connected_rx) = crossbeam_channel::bounded(1);
    {
        let config = config.clone();
        let target = args.target.clone();
        thread::spawn(move || {
            let _ = connected_tx.send(Connection::connect(&config, &target));
        });
    }
    let conn = select! {
        recv(connected_rx) -> result => match result {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                print_error(&e);
                let report = not_connected(Trigger::Error, Outcome::Error, Some(e.to_string()));
                return finish(&args, report, started, started);
            }
            Err(_) => {
                eprintln!("gracetls: error: the connect thread ended without an answer");
                return ExitCode::from(1);
            }
        },
        recv(signals) -> sig => {
            let sig = sig.unwrap_or(Signal::Int);
            debug!("{} before the TLS session was up: ending at once", sig.name());
            let report = not_connected(Trigger::Signal(sig), Outcome::Aborted, None);
            return finish(&args, report, started, Instant::now());
        }
    };
    Coordinator::new(args, config, conn, signals, started).run()
}

fn config_from(args: &Args) -> Config {
    let mut config = Config::new()
        .insecure(args.insecure)
        .alpn(args.alpn.iter().cloned())
        .connect_timeout(args.connect_timeout)
        .close_timeout(args.close_timeout)
        .close_mode(if args.close_wait {
            CloseMode::Wait
        } else {
            CloseMode::Fast
        });
    for ca in &args.ca_file {
        config = config.ca_file(ca);
    }
    if !args.ca_file.is_empty() {
        config = config.system_roots(args.system_roots);
    }
    if let Some(name) = &args.servername {
        config = config.servername(name);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        config = config.identity(cert, key);
    }
    if let Some(v) = args.tls_min {
        config = config.min_version(v);
    }
    if let Some(v) = args.tls_max {
        config = config.max_version(v);
    }
    config
}

/// The state of one connection's end, driven by one `select!`.
struct Coordinator {
    args: Args,
    config: Config,
    started: Instant,
    signals: Receiver<Signal>,
    conn: Option<Connection>,
    input_rx: Receiver<Input>,
    output_rx: Receiver<Output>,
    closed_rx: Receiver<CloseReport>,
    /// What started the end, and when; a half-close has one before the close itself.
    trigger: Option<(Trigger, Instant)>,
    /// Set when the close starts: input read after it is not sent.
    input_closed: Arc<AtomicBool>,
    error_printed: bool,
}

impl Coordinator {
    fn new(
        args: Args,
        config: Config,
        conn: Connection,
        signals: Receiver<Signal>,
        started: Instant,
    ) -> Self {
        let input_closed = Arc::new(AtomicBool::new(false));
        let input_rx = spawn_stdin(conn.sender(), args.escape.0, Arc::clone(&input_closed));
        let output_rx = spawn_output(
            conn.events().clone(),
            args.quit_on.as_deref().map(LineMatcher::new),
        );
        Coordinator {
            args,
            config,
            started,
            signals,
            conn: Some(conn),
            input_rx,
            output_rx,
            closed_rx: never(),
            trigger: None,
            input_closed,
            error_printed: false,
        }
    }

    fn run(mut self) -> ExitCode {
        let mut report = None;
        let mut drained = false;
        while report.is_none() || !drained {
            select! {
                recv(self.input_rx) -> input => match input {
                    Ok(Input::Eof) => self.stdin_ended(),
                    Ok(Input::Escape) => self.close(Trigger::Escape),
                    Err(_) => self.input_rx = never(),
                },
                recv(self.output_rx) -> output => match output {
                    Ok(Output::PeerCloseNotify) => self.close(Trigger::PeerCloseNotify),
                    Ok(Output::PeerEof) => self.close(Trigger::PeerEof),
                    Ok(Output::QuitLine) => self.close(Trigger::QuitLine),
                    Ok(Output::StdoutClosed) => self.close(Trigger::StdoutClosed),
                    Ok(Output::Failed(e)) => {
                        if !self.error_printed {
                            self.error_printed = true;
                            print_error(&e);
                        }
                        self.close(Trigger::Error);
                    }
                    Ok(Output::Drained) | Err(_) => {
                        drained = true;
                        self.output_rx = never();
                    }
                },
                recv(self.signals) -> sig => {
                    let sig = sig.unwrap_or(Signal::Int);
                    if self.conn.is_none() {
                        self.abort(sig);
                    }
                    self.close(Trigger::Signal(sig));
                },
                recv(self.closed_rx) -> closed => {
                    self.closed_rx = never();
                    report = closed.ok();
                    if report.is_none() {
                        eprintln!("gracetls: error: the close thread ended without a report");
                        return ExitCode::from(1);
                    }
                },
            }
        }
        let report = report.unwrap_or_else(|| not_connected(Trigger::Error, Outcome::Error, None));
        let trigger_at = self.trigger.map_or(self.started, |(_, at)| at);
        finish(&self.args, report, self.started, trigger_at)
    }

    fn stdin_ended(&mut self) {
        match self.args.on_eof {
            OnEof::HalfClose => {
                if let Some(conn) = &self.conn {
                    info!("stdin ended: close_notify sent, still reading until the server closes");
                    self.trigger
                        .get_or_insert((Trigger::StdinEof, Instant::now()));
                    conn.shutdown_write();
                }
            }
            OnEof::Close => self.close(Trigger::StdinEof),
            OnEof::Ignore => debug!("stdin ended; staying connected (--on-eof ignore)"),
        }
    }

    /// Starts the close on its own thread, so signals are still heard while it runs.
    fn close(&mut self, trigger: Trigger) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        self.input_closed.store(true, Ordering::SeqCst);
        // A half-close that a signal cuts short is ended by the signal; otherwise the first
        // trigger is what started the end.
        let trigger = match (self.trigger, trigger) {
            (_, Trigger::Signal(_)) | (None, _) => trigger,
            (Some((first, _)), _) => first,
        };
        if !matches!(self.trigger, Some((t, _)) if t == trigger) {
            self.trigger = Some((trigger, Instant::now()));
        }
        let mode = self.config.get_close_mode();
        info!("closing: {}", trigger.name());
        let (tx, rx) = crossbeam_channel::bounded(1);
        thread::spawn(move || {
            let _ = tx.send(conn.close_as(trigger, mode));
        });
        self.closed_rx = rx;
    }

    /// A signal while a close runs: end at once, without waiting for the goodbye.
    fn abort(&self, sig: Signal) -> ! {
        warn!("{} during the close: ending at once", sig.name());
        let report = not_connected(Trigger::Signal(sig), Outcome::Aborted, None);
        let close_from = self.trigger.map_or(self.started, |(_, at)| at);
        emit_report(
            &self.args,
            &report,
            self.started,
            close_from,
            128 + sig.number(),
        );
        die(sig)
    }
}

fn not_connected(trigger: Trigger, outcome: Outcome, error: Option<String>) -> CloseReport {
    CloseReport {
        trigger,
        outcome,
        close_notify_sent: false,
        close_notify_received: false,
        bytes_in: 0,
        bytes_out: 0,
        close_duration: Duration::ZERO,
        error,
    }
}

/// Writes the report and ends: by the signal that ended the connection, or with the
/// outcome's exit code.
fn finish(args: &Args, report: CloseReport, started: Instant, trigger_at: Instant) -> ExitCode {
    match report.trigger {
        Trigger::Signal(sig) => {
            emit_report(args, &report, started, trigger_at, 128 + sig.number());
            die(sig)
        }
        _ => {
            let code = report.outcome.exit_code();
            emit_report(args, &report, started, trigger_at, code);
            ExitCode::from(code as u8)
        }
    }
}

fn emit_report(
    args: &Args,
    close: &CloseReport,
    started: Instant,
    trigger_at: Instant,
    exit_code: i32,
) {
    let report = ExitReport {
        close: close.clone(),
        close_duration: trigger_at.elapsed(),
        duration: started.elapsed(),
        exit_code,
    };
    let line = match args.report {
        ReportFormat::None => return,
        ReportFormat::Text => report.to_text(),
        ReportFormat::Json => report.to_json(),
    };
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Ends the process by `sig` with its default disposition, as if it had never been caught,
/// so the parent (a shell loop) sees death by that signal.
fn die(sig: Signal) -> ! {
    // Not stdout: the output thread may hold its lock in a blocked write, and it flushes
    // after every write anyway.
    let _ = io::stderr().lock().flush();
    let _ = signal_hook::low_level::emulate_default_handler(sig.number());
    std::process::exit(128 + sig.number())
}

fn print_error(e: &Error) {
    match e.hint() {
        Some(hint) => eprintln!("gracetls: error: {e}; {hint}"),
        None => eprintln!("gracetls: error: {e}"),
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(|buf, record| {
            let level = match record.level() {
                log::Level::Warn => "warning".to_string(),
                l => l.as_str().to_ascii_lowercase(),
            };
            writeln!(buf, "gracetls: {level}: {}", record.args())
        })
        .init();
}

fn watch_signals() -> io::Result<Receiver<Signal>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let (tx, rx) = unbounded();
    thread::Builder::new()
        .name("gracetls-signals".into())
        .spawn(move || {
            for number in signals.forever() {
                if let Some(sig) = Signal::from_number(number) {
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            }
        })?;
    Ok(rx)
}

/// Reads stdin in chunks into the connection's bounded queue, taking out the escape command.
fn spawn_stdin(
    data_tx: Sender<Vec<u8>>,
    escape: Option<u8>,
    closed: Arc<AtomicBool>,
) -> Receiver<Input> {
    let (tx, rx) = unbounded();
    thread::spawn(move || {
        let mut filter = escape.map(EscapeFilter::new);
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        let end = loop {
            let n = match stdin.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("reading stdin failed ({e}); treating it as end of input");
                    0
                }
            };
            let mut out = Vec::with_capacity(n);
            let escaped = match (&mut filter, n) {
                (Some(f), 0) => f.finish(&mut out),
                (Some(f), _) => f.feed(&buf[..n], &mut out),
                (None, _) => {
                    out.extend_from_slice(&buf[..n]);
                    false
                }
            };
            if closed.load(Ordering::SeqCst) {
                return;
            }
            if !out.is_empty() && data_tx.send(out).is_err() {
                return;
            }
            if escaped {
                debug!("escape command read");
                break Input::Escape;
            }
            if n == 0 {
                break Input::Eof;
            }
        };
        let _ = tx.send(end);
    });
    rx
}

/// Writes the server's data to stdout, watching for the quit line, and reports how the
/// connection's read side ended.
fn spawn_output(events: Receiver<Event>, mut quit: Option<LineMatcher>) -> Receiver<Output> {
    let (tx, rx) = unbounded();
    thread::spawn(move || {
        // Unbuffered, one write per chunk: `Stdout` is line-buffered, which splits binary data
        // into two writes per chunk (up to the last newline, then the rest).
        let mut stdout: Box<dyn Write> = match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Box::new(std::fs::File::from(fd)),
            Err(_) => Box::new(io::stdout().lock()),
        };
        // After the quit line or a closed stdout, the rest is read and dropped so the
        // connection never waits on us.
        let mut discard = false;
        for event in events {
            let note = match event {
                Event::Data(_) if discard => None,
                Event::Data(data) => {
                    let end = quit.as_mut().and_then(|q| q.feed(&data));
                    let shown = &data[..end.unwrap_or(data.len())];
                    match stdout.write_all(shown).and_then(|()| stdout.flush()) {
                        Err(e) => {
                            debug!("stdout closed: {e}");
                            discard = true;
                            Some(Output::StdoutClosed)
                        }
                        Ok(()) if end.is_some() => {
                            discard = true;
                            Some(Output::QuitLine)
                        }
                        Ok(()) => None,
                    }
                }
                Event::PeerCloseNotify => Some(Output::PeerCloseNotify),
                Event::PeerEof => Some(Output::PeerEof),
                Event::Error(e) => Some(Output::Failed(e)),
                _ => None,
            };
            if let Some(note) = note {
                let _ = tx.send(note);
            }
        }
        let _ = stdout.flush();
        let _ = tx.send(Output::Drained);
    });
    rx
}
