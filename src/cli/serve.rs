//! `gracetls --listen --keep-open --exec CMD`: many clients at once on the library's
//! `Listener`, each with its own CMD (`exec.rs`), at most `--max-conns`; on SIGTERM or SIGINT
//! a drain, then the end by that signal.
//!
//! The drain is `Listener::shutdown`: it stops accepting at once, cuts off handshakes in
//! progress and closes every open connection with close_notify at the same time, waiting
//! for the clients' answers up to `--drain-timeout`. Each session hears of the drain first
//! (a channel whose sender is dropped), so its report says `drain` and its CMD is killed. A
//! second signal ends the process at once. One report line per connection with `--report`,
//! as each ends; a client whose handshake failed gets one too.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use gracetls::{ConnectionReport, Listener, ServerConfig, Stream};
use log::{info, warn};

use super::args::{Args, ReportFormat};
use super::exec::{ConnEnd, exec_session};
use super::hints::print_error;
use super::report::{json_string, session_json};
use super::signals::{Signal, die};

/// Serves until a signal, drains, and ends by that signal.
pub(crate) fn run(
    args: Args,
    config: ServerConfig,
    socket: TcpListener,
    signals: Receiver<Signal>,
    started: Instant,
) -> ExitCode {
    let args = Arc::new(args);
    // Dropped when the drain begins: every session's `recv` on it then returns at once.
    let (drain_tx, drain_rx) = crossbeam_channel::bounded::<()>(0);
    let config = config.on_report({
        let args = Arc::clone(&args);
        move |r: &ConnectionReport| {
            if r.close_report().is_none() {
                handshake_failed(&args, r);
            }
        }
    });
    let sessions = Arc::new(Sessions::default());
    let handler = {
        let (args, sessions) = (Arc::clone(&args), Arc::clone(&sessions));
        move |stream: &Stream| {
            sessions.begin();
            serve_one(stream, &args, &drain_rx);
            sessions.end();
            Ok(())
        }
    };
    let listener = match Listener::from_tcp(socket, &config, handler) {
        Ok(listener) => listener,
        Err(e) => {
            print_error(&e);
            return ExitCode::from(1);
        }
    };
    let sig = signals.recv().unwrap_or(Signal::Term);
    // A second signal ends the process at once, drain or not.
    let _ = thread::Builder::new()
        .name("gracetls-signals-2".into())
        .spawn(move || {
            if let Ok(again) = signals.recv() {
                warn!("{} during the drain: ending at once", again.name());
                die(again);
            }
        });
    let drain_started = Instant::now();
    info!(
        "{}: draining {} connection(s): no new clients, close_notify to each, at most {}",
        sig.name(),
        listener.open_connections(),
        gracetls::unversioned::format_duration(args.server.drain_timeout)
    );
    drop(drain_tx);
    let reports = listener.shutdown();
    // Every close has ended (or been cut) by now; what is left of a session is killing its
    // CMD and writing its report line, which must not be lost to the exit.
    sessions.wait_idle(Duration::from_secs(1));
    let clean = reports
        .iter()
        .filter(|r| r.outcome() == gracetls::Outcome::Clean)
        .count();
    info!(
        "drained {} connection(s) in {} ms, {clean} clean; ran {} ms",
        reports.len(),
        drain_started.elapsed().as_millis(),
        started.elapsed().as_millis()
    );
    die(sig)
}

/// How many sessions have not written their report yet.
#[derive(Default)]
struct Sessions {
    running: Mutex<usize>,
    ended: Condvar,
}

impl Sessions {
    fn begin(&self) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    }

    fn end(&self) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.ended.notify_all();
    }

    fn wait_idle(&self, bound: Duration) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .ended
            .wait_timeout_while(running, bound, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// One client: its CMD, then the report line.
fn serve_one(stream: &Stream, args: &Args, drain: &Receiver<()>) {
    let started = Instant::now();
    let shared = match stream.try_clone() {
        Ok(clone) => Arc::new(clone),
        Err(e) => {
            warn!("{}: cannot share the connection: {e}", stream.target());
            return;
        }
    };
    let cmd = args.server.exec.as_deref().unwrap_or("cat");
    let end = exec_session(&shared, cmd, drain);
    let r = &end.report;
    info!(
        "{}: {} close after {}: close_notify {}, {}",
        stream.target(),
        r.outcome().name(),
        end.trigger.name(),
        sent(r.close_notify_sent()),
        received(r.close_notify_received())
    );
    let line = match args.report {
        ReportFormat::None => return,
        ReportFormat::Json => conn_json(stream, &end, started),
        ReportFormat::Text => conn_text(stream, &end, started),
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The report of a client whose handshake did not finish.
fn handshake_failed(args: &Args, r: &ConnectionReport) {
    let error = r
        .handshake_error()
        .unwrap_or("the handshake did not finish");
    let line = match args.report {
        ReportFormat::None => return,
        ReportFormat::Json => format!(
            r#"{{"client":{},"trigger":"handshake","outcome":"{}","close_notify_sent":false,"close_notify_received":false,"bytes_in":0,"bytes_out":0,"bytes_dropped":0,"tls_close_ms":0,"duration_ms":{},"exec_status":null,"error":{},"alert":null,"session":null}}"#,
            json_string(&r.peer_addr().to_string()),
            r.outcome().name(),
            r.duration().as_millis(),
            json_string(error),
        ),
        ReportFormat::Text => format!(
            "gracetls: client {}: handshake failed: {error}",
            r.peer_addr()
        ),
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn sent(yes: bool) -> &'static str {
    if yes { "sent" } else { "not sent" }
}

fn received(yes: bool) -> &'static str {
    if yes { "received" } else { "not received" }
}

/// One connection's report as one JSON object on one line.
fn conn_json(stream: &Stream, end: &ConnEnd, started: Instant) -> String {
    let r = &end.report;
    let opt = |text: Option<&str>| text.map_or("null".to_string(), json_string);
    let status = end
        .status
        .and_then(|s| s.code())
        .map_or("null".to_string(), |c| c.to_string());
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        r#"{{"client":{},"trigger":"{}","outcome":"{}","close_notify_sent":{},"close_notify_received":{},"bytes_in":{},"bytes_out":{},"bytes_dropped":{},"tls_close_ms":{},"duration_ms":{},"exec_status":{},"error":{},"alert":{},"session":{}}}"#,
        json_string(stream.target().trim_start_matches("client ")),
        end.trigger.name(),
        r.outcome().name(),
        r.close_notify_sent(),
        r.close_notify_received(),
        r.bytes_in(),
        r.bytes_out(),
        r.bytes_dropped(),
        r.close_duration().as_millis(),
        started.elapsed().as_millis(),
        status,
        opt(end.error.as_deref().or(r.error())),
        r.alert()
            .map_or("null".to_string(), |a| json_string(&a.to_string())),
        session_json(stream.session()),
    );
    s
}

/// One connection's report in one line for a person.
fn conn_text(stream: &Stream, end: &ConnEnd, started: Instant) -> String {
    let r = &end.report;
    let mut line = format!(
        "gracetls: {}: {} close after {}: close_notify {}, {}; {} bytes in, {} bytes out; TLS close {} ms; total {} ms",
        stream.target(),
        r.outcome().name(),
        end.trigger.name(),
        if r.close_notify_sent() {
            "sent"
        } else {
            "not sent"
        },
        if r.close_notify_received() {
            "received"
        } else {
            "not received"
        },
        r.bytes_in(),
        r.bytes_out(),
        r.close_duration().as_millis(),
        started.elapsed().as_millis()
    );
    if let Some(code) = end.status.and_then(|s| s.code()) {
        let _ = write!(line, "; command exit {code}");
    }
    if let Some(e) = end.error.as_deref().or(r.error()) {
        let _ = write!(line, "; error: {e}");
    }
    line
}
