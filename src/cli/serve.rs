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

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use gracetls::{CloseReport, ConnectionReport, Listener, ServerConfig, Session, Stream};
use log::{info, warn};

use super::args::{Args, ReportFormat};
use super::exec::exec_session;
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
    let sessions = Arc::new(Sessions::default());
    let config = config.with_on_report({
        let (args, sessions) = (Arc::clone(&args), Arc::clone(&sessions));
        move |r: &ConnectionReport| match r.close_report() {
            None => handshake_failed(&args, r),
            Some(close) => unserved(&args, &sessions, r, close),
        }
    });
    let handler = {
        let (args, sessions) = (Arc::clone(&args), Arc::clone(&sessions));
        move |stream: &Stream| {
            sessions.begin();
            serve_one(stream, &args, &drain_rx, &sessions);
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
    sessions.draining.store(true, Ordering::SeqCst);
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

/// How many sessions have not written their report yet, and which clients have one.
#[derive(Default)]
struct Sessions {
    running: Mutex<usize>,
    ended: Condvar,
    reported: Mutex<HashSet<String>>,
    draining: AtomicBool,
}

impl Sessions {
    /// Whether the line of `client` is this caller's to write: true the first time.
    fn claim(&self, client: &str) -> bool {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        reported.insert(client.to_string())
    }

    fn forget(&self, client: &str) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        reported.remove(client);
    }

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
fn serve_one(stream: &Stream, args: &Args, drain: &Receiver<()>, sessions: &Sessions) {
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
    let client = stream.target().trim_start_matches("client ");
    sessions.claim(client);
    Line {
        client,
        trigger: end.trigger.name(),
        report: r,
        duration: started.elapsed(),
        exec_status: end.status.and_then(|s| s.code()),
        error: end.error.as_deref(),
        session: Some(stream.session()),
    }
    .write(args.report);
}

/// The last word on every connection: its line if the session wrote none (its handshake
/// ended as the drain began, so the listener closed it without running CMD). The client's
/// mark is dropped either way, so a later client on the same port gets its own line.
fn unserved(args: &Args, sessions: &Sessions, r: &ConnectionReport, close: &CloseReport) {
    let client = r.peer_addr().to_string();
    let written = !sessions.claim(&client);
    sessions.forget(&client);
    if written {
        return;
    }
    let draining = sessions.draining.load(Ordering::SeqCst);
    Line {
        client: &client,
        trigger: if draining { "drain" } else { "error" },
        report: close,
        duration: r.duration(),
        exec_status: None,
        error: r.handler_error(),
        session: None,
    }
    .write(args.report);
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

/// What one connection's report line says.
struct Line<'a> {
    client: &'a str,
    trigger: &'a str,
    report: &'a CloseReport,
    duration: Duration,
    exec_status: Option<i32>,
    error: Option<&'a str>,
    session: Option<&'a Session>,
}

impl Line<'_> {
    fn write(&self, format: ReportFormat) {
        let line = match format {
            ReportFormat::None => return,
            ReportFormat::Json => self.json(),
            ReportFormat::Text => self.text(),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// One JSON object on one line.
    fn json(&self) -> String {
        let r = self.report;
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            r#"{{"client":{},"trigger":"{}","outcome":"{}","close_notify_sent":{},"close_notify_received":{},"bytes_in":{},"bytes_out":{},"bytes_dropped":{},"tls_close_ms":{},"duration_ms":{},"exec_status":{},"error":{},"alert":{},"session":{}}}"#,
            json_string(self.client),
            self.trigger,
            r.outcome().name(),
            r.close_notify_sent(),
            r.close_notify_received(),
            r.bytes_in(),
            r.bytes_out(),
            r.bytes_dropped(),
            r.close_duration().as_millis(),
            self.duration.as_millis(),
            self.exec_status
                .map_or("null".to_string(), |c| c.to_string()),
            self.error
                .or(r.error())
                .map_or("null".to_string(), json_string),
            r.alert()
                .map_or("null".to_string(), |a| json_string(&a.to_string())),
            self.session.map_or("null".to_string(), session_json),
        );
        s
    }

    /// One line for a person.
    fn text(&self) -> String {
        let r = self.report;
        let mut line = format!(
            "gracetls: client {}: {} close after {}: close_notify {}, {}; {} bytes in, {} bytes out; TLS close {} ms; total {} ms",
            self.client,
            r.outcome().name(),
            self.trigger,
            sent(r.close_notify_sent()),
            received(r.close_notify_received()),
            r.bytes_in(),
            r.bytes_out(),
            r.close_duration().as_millis(),
            self.duration.as_millis()
        );
        if let Some(code) = self.exec_status {
            let _ = write!(line, "; command exit {code}");
        }
        if let Some(e) = self.error.or(r.error()) {
            let _ = write!(line, "; error: {e}");
        }
        line
    }
}
