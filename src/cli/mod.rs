//! The `gracetls` command: arguments, the stdin and stdout threads, signals, the coordinator
//! whose one `select!` reads like the table of exit paths, and the report with its exit
//! code. Everything here is the command line's; the library knows none of it.
//!
//! Data never passes through the coordinator: the stdin thread writes to the stream (after
//! taking out the escape command), and the output thread reads it and writes stdout
//! (watching for the quit line). Both tell the coordinator only how their side ended, so it
//! never blocks on anything but its `select!`, and a server that stops reading or a stdout
//! that stops draining cannot make signals unresponsive.

mod args;
mod coordinator;
mod crlf;
mod duration;
mod exec;
mod generate;
mod hints;
mod io;
mod lines;
mod listen;
mod listen_args;
mod report;
mod serve;
mod show_cert;
mod signals;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::select;
use gracetls::starttls::Starttls;
use gracetls::{Outcome, Stream};
use log::{debug, warn};

use args::{check_usage, config_from};
use coordinator::Coordinator;
use generate::Parsed;
use hints::print_error;
use report::{Ended, Ending, Trigger, finish, not_connected};
use show_cert::show_cert;
use signals::{Signal, watch_signals};

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
    let args = match generate::parse() {
        Ok(Parsed::Run(args)) => *args,
        Ok(Parsed::Generate(kind)) => return generate::write(kind),
        // --help and --version, on stdout.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // In the words of every other error gracetls prints: `gracetls: error: ...`.
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("gracetls: error: {text}");
            return ExitCode::from(2);
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
    if args.server.listen.is_some() {
        return listen::run(args, started);
    }
    // clap requires a target without --listen.
    let target = args.target.clone().unwrap_or_default();
    // A target that cannot be parsed is a usage error, like any other bad argument.
    if let Err(e) = gracetls::parse_target(&target) {
        print_error(&e);
        return ExitCode::from(2);
    }
    // So is a file option that cannot be used: read and checked here, before any
    // connection, so that a wrong path is not hidden behind a server that is down.
    let config = config_from(&args);
    if let Err(e) = config.check() {
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

    // Connect on a helper thread so a signal during a stalled handshake ends us at once.
    let (connected_tx, connected_rx) = crossbeam_channel::bounded(1);
    {
        let config = config.clone();
        let starttls = args.starttls.map(Starttls::new);
        let connect = move || {
            let result = match &starttls {
                Some(starttls) => Stream::connect_starttls(&config, &target, starttls),
                None => Stream::connect(&config, &target),
            };
            let _ = connected_tx.send(result);
        };
        if let Err(e) = thread::Builder::new().spawn(connect) {
            eprintln!("gracetls: error: cannot start a thread to connect: {e}");
            return ExitCode::from(1);
        }
    }
    let stream = select! {
        recv(connected_rx) -> result => match result {
            Ok(Ok(stream)) => Arc::new(stream),
            Ok(Err(e)) => {
                print_error(&e);
                let report = not_connected(Ended::Closed(Outcome::Error), Some(&e));
                let ending = Ending::unconnected(Trigger::Error, started, started);
                return finish(&args, ending, report);
            }
            Err(_) => {
                eprintln!("gracetls: error: the connect thread ended without an answer");
                return ExitCode::from(1);
            }
        },
        recv(signals) -> sig => {
            let sig = sig.unwrap_or(Signal::Int);
            debug!("{} before the TLS session was up: ending at once", sig.name());
            let report = not_connected(Ended::Aborted, None);
            let ending = Ending::unconnected(Trigger::Signal(sig), started, Instant::now());
            return finish(&args, ending, report);
        }
    };
    if args.show_cert {
        return show_cert(&args, &stream, started);
    }
    match Coordinator::new(args, Arc::clone(&stream), signals, started) {
        Ok(coordinator) => coordinator.run(),
        Err(e) => {
            eprintln!(
                "gracetls: error: cannot start the stdin and stdout threads: {e}; the connection was closed"
            );
            ExitCode::from(1)
        }
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
