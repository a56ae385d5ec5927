//! The coordinator: one `select!` over stdin's end, stdout's end, signals, the quiet timer
//! and the close, which reads like the table of exit paths.

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, after, never, select};
use gracetls::{CloseReport, Outcome, Stream, unversioned::format_duration};
use log::{debug, info, warn};

use super::args::{Args, Escape, OnEof};
use super::hints::print_error;
use super::io::{Input, Output, spawn_output, spawn_stdin};
use super::lines::LineMatcher;
use super::report::{Closed, Ended, Ending, Trigger, emit_report, finish, not_connected};
use super::signals::{Signal, die};

/// The state of one connection's end, driven by one `select!`.
pub(crate) struct Coordinator {
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
    /// Fires when `--idle-timeout` may have passed.
    idle_rx: Receiver<Instant>,
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
    /// Starts the stdin and stdout threads. If one cannot start, the stream is closed (with
    /// close_notify) and the error says so.
    pub(crate) fn new(
        args: Args,
        stream: Arc<Stream>,
        signals: Receiver<Signal>,
        started: Instant,
    ) -> io::Result<Self> {
        // As ssh does: the escape is for a person at a terminal. From a pipe or a file, a line
        // `~.` is data unless --escape asks for it.
        let escape = match args.escape {
            Some(Escape(escape)) => escape,
            None if io::stdin().is_terminal() => Some(b'~'),
            None => None,
        };
        let threads = spawn_stdin(Arc::clone(&stream), escape, args.crlf).and_then(|input_rx| {
            let quit = args.quit_on.as_deref().map(LineMatcher::new);
            Ok((input_rx, spawn_output(Arc::clone(&stream), quit)?))
        });
        let (input_rx, output_rx) = match threads {
            Ok(rxs) => rxs,
            Err(e) => {
                // A stdin thread that did start ends when its next write fails.
                stream.close();
                return Err(e);
            }
        };
        Ok(Coordinator {
            started,
            signals,
            stream,
            closing: false,
            input_rx,
            output_rx,
            closed_rx: never(),
            quiet_rx: never(),
            idle_rx: args.server.idle_timeout.map_or_else(never, after),
            trigger: None,
            end: None,
            failure: None,
            error_printed: false,
            args,
        })
    }

    pub(crate) fn run(mut self) -> ExitCode {
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
                recv(self.idle_rx) -> _ => self.idle_check(),
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
        let mut report = report.map_or_else(
            || not_connected(Ended::Closed(Outcome::Error), None),
            |r| Closed::from(&r),
        );
        if let Some(failure) = self.failure.take() {
            report.outcome = Ended::Closed(Outcome::Error);
            report.error.get_or_insert(failure);
        }
        if self.end == Some(QUIET)
            && report.bytes_dropped > 0
            && report.outcome == Ended::Closed(Outcome::Clean)
        {
            // The server began to answer just as the quiet time ended: not a clean end.
            warn!(
                "{} bytes from the server arrived as the quiet time ended and were dropped; raise --quiet-time",
                report.bytes_dropped
            );
            report.outcome = Ended::Closed(Outcome::Truncated);
        }
        let (trigger, trigger_at) = self.trigger.unwrap_or((Trigger::Error, self.started));
        let ending = Ending {
            trigger,
            end: self.end,
            session: Some(self.stream.session()),
            started: self.started,
            trigger_at,
        };
        finish(&self.args, ending, report)
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
                let half_close = move || {
                    if let Err(e) = stream.shutdown_write() {
                        warn!("half-close: {e}");
                    }
                };
                if let Err(e) = thread::Builder::new().spawn(half_close) {
                    warn!("no thread for the half-close ({e}); closing instead");
                    self.close(Trigger::StdinEof);
                }
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

    /// `--idle-timeout` may have passed: close if nothing moved either way for that long,
    /// else wait for what is left of it after the last data.
    fn idle_check(&mut self) {
        self.idle_rx = never();
        let Some(limit) = self.args.server.idle_timeout else {
            return;
        };
        if self.closing {
            return;
        }
        let idle = self.stream.idle_time();
        if idle < limit {
            self.idle_rx = after(limit - idle);
            return;
        }
        info!("no data either way for {}: closing", format_duration(limit));
        self.close(Trigger::IdleTimeout);
    }

    /// Starts the close on its own thread, so signals are still heard while it runs.
    fn close(&mut self, trigger: Trigger) {
        if std::mem::replace(&mut self.closing, true) {
            return;
        }
        self.quiet_rx = never();
        self.idle_rx = never();
        // A stdin EOF that a signal cuts short is ended by the signal; otherwise the first
        // trigger is what started the end, and this one is how it ended.
        let trigger = match (self.trigger, trigger) {
            (_, Trigger::Signal(_)) | (None, _) => trigger,
            (Some((first, _)), then) => {
                if self.end.is_none() && then != first {
                    self.end = Some(end_name(then, self.args.server.listen.is_some()));
                }
                first
            }
        };
        if !matches!(self.trigger, Some((t, _)) if t == trigger) {
            self.trigger = Some((trigger, Instant::now()));
        }
        // The time before the TLS close (the quiet time, the server's answer to a
        // half-close) is said here, so that the `closed ... in N ms` line that follows, which
        // counts the TLS close alone, is not read as the whole end.
        match (self.end, self.trigger) {
            (Some(end), Some((_, at))) => info!(
                "closing: {}, then {end} ({} ms after {}); the TLS close starts",
                trigger.name(),
                at.elapsed().as_millis(),
                trigger.name()
            ),
            (Some(end), None) => info!("closing: {}, then {end}", trigger.name()),
            (None, _) => info!("closing: {}", trigger.name()),
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stream = Arc::clone(&self.stream);
        let spawned = thread::Builder::new().spawn({
            let tx = tx.clone();
            move || {
                let _ = tx.send(stream.close());
            }
        });
        if let Err(e) = spawned {
            // Without a thread of its own the close runs here: signals wait for it, and it
            // is bounded by the close timeout all the same.
            warn!("no thread for the close ({e}); closing on the main thread");
            let _ = tx.send(self.stream.close());
        }
        self.closed_rx = rx;
    }

    /// A signal while a close runs: end at once, without waiting for the goodbye.
    fn abort(&self, sig: Signal) -> ! {
        warn!("{} during the close: ending at once", sig.name());
        let report = not_connected(Ended::Aborted, None);
        let close_from = self.trigger.map_or(self.started, |(_, at)| at);
        let ending = Ending {
            trigger: Trigger::Signal(sig),
            end: None,
            session: Some(self.stream.session()),
            started: self.started,
            trigger_at: close_from,
        };
        emit_report(&self.args, &ending, &report, 128 + sig.number());
        die(sig)
    }
}

/// The report's `end` when nothing moved for the quiet time after stdin EOF.
const QUIET: &str = "quiet";

/// The report's `end` for what finished an end that stdin EOF began, naming the peer as
/// what it is: the server, or under `--listen` the client.
fn end_name(then: Trigger, listening: bool) -> &'static str {
    match (then, listening) {
        (Trigger::PeerCloseNotify, false) => "server-close-notify",
        (Trigger::PeerEof, false) => "server-eof",
        (Trigger::PeerCloseNotify, true) => "client-close-notify",
        (Trigger::PeerEof, true) => "client-eof",
        (other, _) => other.name(),
    }
}
