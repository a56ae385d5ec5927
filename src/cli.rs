//! The command line: arguments, the stdin and stdout threads, signals, and the coordinator
//! whose one `select!` reads like the table of exit paths.
//!
//! Data never passes through the coordinator: the stdin thread feeds the connection's
//! bounded queue (after taking out the escape command), and the output thread writes the
//! server's data to stdout (watching for the quit line). Both tell the coordinator only how
//! their side ended, so it never blocks on anything but its `select!`, and a server that
//! stops reading or a stdout that stops draining cannot make signals unresponsive.

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crossbeam_channel::{Receiver, after, never, select, unbounded};
use gracetls::lines::{EscapeFilter, LineMatcher};
use gracetls::{
    CloseMode, CloseReport, Config, Error, ExitReport, Outcome, Signal, Stream, TlsVersion,
    Trigger, format_duration, parse_duration,
};
use log::{debug, info, warn};

const EXIT_CODES: &str = "\
At stdin EOF (--on-eof):
  wait        the default: send nothing, keep printing the server's data, and end when the
              server sends close_notify (answered, exit 0), drops TCP (exit 3), or when no
              data has moved either way for --quiet-time (close_notify, exit 0)
  half-close  send close_notify and a TCP FIN at once, keep reading until the server closes;
              many servers (nginx among them) take that as the client leaving and cancel
              or cut the answer
  close       close at once (close_notify); what the server sends later is not read
  ignore      stay connected until the server closes or a signal

Exit codes:
  0    clean: close_notify sent (and received where the close waited for it)
  1    error: connect, certificate, handshake, reset, TLS failure, writing stdout
  2    usage: bad arguments (nothing was sent)
  3    the server's stream ended without close_notify (possible truncation), or data
       arrived just as the quiet time ended and was dropped
  4    the close did not finish within --close-timeout; the socket was closed hard
  SIGINT, SIGTERM, SIGHUP, SIGQUIT: the goodbye is sent, then gracetls ends by that same
  signal (a shell shows 130, 143, 129, 131). A second signal, or one before the TLS session
  is up, ends it at once.

Local command: ~. alone on a line closes the connection, when stdin is a terminal (see --escape).";

/// A TLS client that always says goodbye: stdin to the server, the server to stdout, and
/// close_notify on every way out.
#[derive(Debug, Parser)]
#[command(name = "gracetls", version, after_help = EXIT_CODES)]
struct Args {
    /// The server, HOST[:PORT]; port 443 by default, IPv6 as [::1]:8443; https://HOST[:PORT] too.
    #[arg(value_name = "HOST[:PORT]")]
    target: String,

    /// Anything after the target: refused with a hint (`HOST PORT` is one word, `HOST:PORT`).
    #[arg(hide = true)]
    extra: Vec<String>,

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

    /// Client private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --cert.
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
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true)]
    connect_timeout: Duration,

    /// Bound on the whole close; past it the socket is closed hard (exit 4).
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_timeout, allow_hyphen_values = true)]
    close_timeout: Duration,

    /// After sending close_notify, wait for the server's (delivering its data meanwhile).
    #[arg(long)]
    close_wait: bool,

    /// What stdin EOF does (see "At stdin EOF" below).
    #[arg(long, value_enum, value_name = "MODE", default_value = "wait")]
    on_eof: OnEof,

    /// With --on-eof wait: after stdin EOF, close once no data has moved either way this long.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_timeout, allow_hyphen_values = true)]
    quiet_time: Duration,

    /// Escape character of the local command (CHAR then '.' alone on a line), or 'none'
    /// [default: '~' when stdin is a terminal, none when it is a pipe or a file].
    #[arg(long, value_name = "CHAR|none", value_parser = parse_escape)]
    escape: Option<Escape>,

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

/// A duration that bounds something: more than zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
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
fn check_usage(args: &Args) -> Result<(), String> {
    if let Some(word) = args.extra.first() {
        if word.parse::<u16>().is_ok() && !args.target.contains(':') {
            return Err(format!(
                "unexpected argument {word:?}: HOST and PORT are one argument, {}:{word}",
                args.target
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
    if args.servername.as_deref().is_some_and(str::is_empty) {
        return Err(
            "--servername is empty: give the name to send as SNI and to check the certificate against"
                .into(),
        );
    }
    Ok(())
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
    /// The reader of stdout went away (EPIPE): a normal end, like `head`.
    StdoutClosed,
    /// Writing stdout failed otherwise (ENOSPC, EIO): the server's data is being lost.
    StdoutFailed(io::Error),
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
    if let Err(message) = check_usage(&args) {
        eprintln!("gracetls: error: {message}");
        return ExitCode::from(2);
    }
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
            let _ = connected_tx.send(Stream::connect(&config, &target));
        });
    }
    let stream = select! {
        recv(connected_rx) -> result => match result {
            Ok(Ok(stream)) => Arc::new(stream),
            Ok(Err(e)) => {
                print_error(&e);
                let report = not_connected(Trigger::Error, Outcome::Error, Some(e.to_string()));
                return finish(&args, report, None, started, started);
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
            return finish(&args, report, None, started, Instant::now());
        }
    };
    Coordinator::new(args, stream, signals, started).run()
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
    started: Instant,
    signals: Receiver<Signal>,
    stream: Arc<Stream>,
    /// The close has started: a second signal ends the process at once.
    closing: bool,
    input_rx: Receiver<Input>,
    output_rx: Receiver<Output>,
    closed_rx: Receiver<CloseReport>,
    /// Fires when the quiet time after stdin EOF may have passed (`--on-eof wait`).
    quiet_rx: Receiver<Instant>,
    /// What started the end, and when; stdin EOF (wait or half-close) comes before the close.
    trigger: Option<(Trigger, Instant)>,
    /// What finished an end that `trigger` only began (the report's `end`).
    end: Option<&'static str>,
    /// A failure of ours, not the connection's (stdout could not be written): the report
    /// says error whatever the close did.
    failure: Option<String>,
    error_printed: bool,
}

impl Coordinator {
    fn new(args: Args, stream: Arc<Stream>, signals: Receiver<Signal>, started: Instant) -> Self {
        // As ssh does: the escape is for a person at a terminal. From a pipe or a file, a line
        // `~.` is data unless --escape asks for it.
        let escape = match args.escape {
            Some(Escape(escape)) => escape,
            None if io::stdin().is_terminal() => Some(b'~'),
            None => None,
        };
        let input_rx = spawn_stdin(Arc::clone(&stream), escape);
        let output_rx = spawn_output(
            Arc::clone(&stream),
            args.quit_on.as_deref().map(LineMatcher::new),
        );
        Coordinator {
            args,
            started,
            signals,
            stream,
            closing: false,
            input_rx,
            output_rx,
            closed_rx: never(),
            quiet_rx: never(),
            trigger: None,
            end: None,
            failure: None,
            error_printed: false,
        }
    }

    fn run(mut self) -> ExitCode {
        let mut report = None;
        let mut drained = false;
        while report.is_none() || !drained {
            select! {
                recv(self.input_rx) -> input => self.input(input.ok()),
                recv(self.output_rx) -> output => match output {
                    Ok(Output::PeerCloseNotify) => {
                        self.input_first();
                        self.close(Trigger::PeerCloseNotify);
                    }
                    Ok(Output::PeerEof) => {
                        self.input_first();
                        self.close(Trigger::PeerEof);
                    }
                    Ok(Output::QuitLine) => self.close(Trigger::QuitLine),
                    Ok(Output::StdoutClosed) => self.close(Trigger::StdoutClosed),
                    Ok(Output::StdoutFailed(e)) => {
                        let message = format!("cannot write the server's data to stdout: {e}");
                        eprintln!("gracetls: error: {message}; the rest of the session is not delivered");
                        self.error_printed = true;
                        self.failure = Some(message);
                        self.close(Trigger::Error);
                    }
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
                recv(self.quiet_rx) -> _ => self.quiet_check(),
                recv(self.signals) -> sig => {
                    let sig = sig.unwrap_or(Signal::Int);
                    if self.closing {
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
        let mut report =
            report.unwrap_or_else(|| not_connected(Trigger::Error, Outcome::Error, None));
        if let Some(failure) = self.failure.take() {
            report.outcome = Outcome::Error;
            report.error.get_or_insert(failure);
        }
        if self.end == Some(QUIET) && report.bytes_dropped > 0 && report.outcome == Outcome::Clean {
            // The server began to answer just as the quiet time ended: not a clean end.
            warn!(
                "{} bytes from the server arrived as the quiet time ended and were dropped; raise --quiet-time",
                report.bytes_dropped
            );
            report.outcome = Outcome::Truncated;
        }
        let trigger_at = self.trigger.map_or(self.started, |(_, at)| at);
        finish(&self.args, report, self.end, self.started, trigger_at)
    }

    fn input(&mut self, input: Option<Input>) {
        match input {
            Some(Input::Eof) => self.stdin_ended(),
            Some(Input::Escape) => self.close(Trigger::Escape),
            None => self.input_rx = never(),
        }
    }

    /// Takes what the stdin side already said before an end the server made: `select!`
    /// picks among ready channels at random, and a stdin EOF that came first must stay the
    /// trigger (the same input and server give the same report).
    fn input_first(&mut self) {
        if let Ok(input) = self.input_rx.try_recv() {
            self.input(Some(input));
        }
    }

    fn stdin_ended(&mut self) {
        if self.closing {
            return;
        }
        match self.args.on_eof {
            OnEof::Wait => {
                info!(
                    "stdin ended: waiting for the server; closing after {} without data",
                    format_duration(self.args.quiet_time)
                );
                self.trigger
                    .get_or_insert((Trigger::StdinEof, Instant::now()));
                self.quiet_rx = after(self.args.quiet_time);
            }
            OnEof::HalfClose => {
                info!("stdin ended: close_notify sent, still reading until the server closes");
                self.trigger
                    .get_or_insert((Trigger::StdinEof, Instant::now()));
                // Bounded by the close timeout, but it may wait for a blocked write: not on
                // this thread, which must keep hearing signals.
                let stream = Arc::clone(&self.stream);
                thread::spawn(move || {
                    if let Err(e) = stream.shutdown_write() {
                        warn!("half-close: {e}");
                    }
                });
            }
            OnEof::Close => self.close(Trigger::StdinEof),
            OnEof::Ignore => debug!("stdin ended; staying connected (--on-eof ignore)"),
        }
    }

    /// The quiet timer fired: close if nothing moved for the whole quiet time, else wait for
    /// what is left of it after the last data. The timer started at stdin EOF, so the quiet
    /// time never counts from before it.
    fn quiet_check(&mut self) {
        self.quiet_rx = never();
        if self.closing {
            return;
        }
        let quiet = self.args.quiet_time;
        let idle = self.stream.idle_time();
        if idle < quiet {
            self.quiet_rx = after(quiet - idle);
            return;
        }
        info!(
            "no data either way for {} after stdin ended: closing",
            format_duration(quiet)
        );
        self.end = Some(QUIET);
        self.close(Trigger::StdinEof);
    }

    /// Starts the close on its own thread, so signals are still heard while it runs.
    fn close(&mut self, trigger: Trigger) {
        if std::mem::replace(&mut self.closing, true) {
            return;
        }
        self.quiet_rx = never();
        // A stdin EOF that a signal cuts short is ended by the signal; otherwise the first
        // trigger is what started the end, and this one is how it ended.
        let trigger = match (self.trigger, trigger) {
            (_, Trigger::Signal(_)) | (None, _) => trigger,
            (Some((first, _)), then) => {
                if self.end.is_none() && then != first {
                    self.end = Some(end_name(then));
                }
                first
            }
        };
        if !matches!(self.trigger, Some((t, _)) if t == trigger) {
            self.trigger = Some((trigger, Instant::now()));
        }
        match self.end {
            Some(end) => info!("closing: {}, then {end}", trigger.name()),
            None => info!("closing: {}", trigger.name()),
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stream = Arc::clone(&self.stream);
        thread::spawn(move || {
            let mut report = stream.close();
            report.trigger = trigger;
            let _ = tx.send(report);
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
            None,
            self.started,
            close_from,
            128 + sig.number(),
        );
        die(sig)
    }
}

/// The report's `end` when nothing moved for the quiet time after stdin EOF.
const QUIET: &str = "quiet";

/// The report's `end` for what finished an end that stdin EOF began.
fn end_name(then: Trigger) -> &'static str {
    match then {
        Trigger::PeerCloseNotify => "server-close-notify",
        Trigger::PeerEof => "server-eof",
        other => other.name(),
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
        bytes_dropped: 0,
        close_duration: Duration::ZERO,
        error,
    }
}

/// Writes the report and ends: by the signal that ended the connection, or with the
/// outcome's exit code.
fn finish(
    args: &Args,
    report: CloseReport,
    end: Option<&'static str>,
    started: Instant,
    trigger_at: Instant,
) -> ExitCode {
    match report.trigger {
        Trigger::Signal(sig) => {
            emit_report(args, &report, end, started, trigger_at, 128 + sig.number());
            die(sig)
        }
        _ => {
            let code = report.outcome.exit_code();
            emit_report(args, &report, end, started, trigger_at, code);
            ExitCode::from(code as u8)
        }
    }
}

fn emit_report(
    args: &Args,
    close: &CloseReport,
    end: Option<&'static str>,
    started: Instant,
    trigger_at: Instant,
    exit_code: i32,
) {
    let report = ExitReport {
        close: close.clone(),
        end,
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
    // Other crates' debug lines (native-tls logs a failed `load_verify_locations` for every
    // connector) are not ours to show: -vv is gracetls's steps only. RUST_LOG overrides.
    let level = match verbose {
        0 => "warn",
        1 => "warn,gracetls=info",
        _ => "warn,gracetls=debug",
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
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
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

/// Reads stdin in chunks and writes them to the server, taking out the escape command. Once
/// the close has begun, writes fail and the thread ends: nothing read after it is sent.
fn spawn_stdin(stream: Arc<Stream>, escape: Option<u8>) -> Receiver<Input> {
    let (tx, rx) = unbounded();
    thread::spawn(move || {
        let mut filter = escape.map(EscapeFilter::new);
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::with_capacity(buf.len());
        let end = loop {
            let n = match stdin.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("reading stdin failed ({e}); treating it as end of input");
                    0
                }
            };
            out.clear();
            let escaped = match (&mut filter, n) {
                (Some(f), 0) => f.finish(&mut out),
                (Some(f), _) => f.feed(&buf[..n], &mut out),
                (None, _) => false,
            };
            let data = if filter.is_some() {
                &out[..]
            } else {
                &buf[..n]
            };
            if !data.is_empty() && (&*stream).write_all(data).is_err() {
                // The close began, or the connection failed: the output side reports which.
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

/// Reads the server's data and writes it to stdout, watching for the quit line, and reports
/// how the read side ended.
fn spawn_output(stream: Arc<Stream>, mut quit: Option<LineMatcher>) -> Receiver<Output> {
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
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let note = match (&*stream).read(&mut buf) {
                Ok(0) => {
                    if stream.close_notify_received() {
                        let _ = tx.send(Output::PeerCloseNotify);
                    }
                    break;
                }
                Ok(_) if discard => None,
                Ok(n) => {
                    let data = &buf[..n];
                    let end = quit.as_mut().and_then(|q| q.feed(data));
                    let shown = &data[..end.unwrap_or(data.len())];
                    match stdout.write_all(shown).and_then(|()| stdout.flush()) {
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                            debug!("stdout closed: {e}");
                            discard = true;
                            Some(Output::StdoutClosed)
                        }
                        Err(e) => {
                            discard = true;
                            Some(Output::StdoutFailed(e))
                        }
                        Ok(()) if end.is_some() => {
                            discard = true;
                            Some(Output::QuitLine)
                        }
                        Ok(()) => None,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    let _ = tx.send(Output::PeerEof);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                Err(e) => {
                    let _ = tx.send(Output::Failed(Error::from_io(e, stream.target())));
                    break;
                }
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
