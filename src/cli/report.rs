//! How the session ended, said in one line of text or JSON, and the exit code that goes with
//! it.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use gracetls::unversioned::format_rfc3339;
use gracetls::{CloseReport, Outcome, Session};

use super::args::{Args, ReportFormat};
use super::signals::{Signal, die};

/// What started the end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Local input ended.
    StdinEof,
    /// The local escape command (`~.`).
    Escape,
    /// A signal.
    Signal(Signal),
    /// The server sent the configured quit line.
    QuitLine,
    /// The server sent close_notify.
    PeerCloseNotify,
    /// The server's TCP stream ended without close_notify.
    PeerEof,
    /// Local output was closed.
    StdoutClosed,
    /// The connection failed.
    Error,
    /// `--show-cert`: the certificate was printed.
    ShowCert,
    /// `--idle-timeout`: no data moved either way for that long.
    IdleTimeout,
}

impl Trigger {
    /// The name used in reports: `stdin-eof`, `escape`, `signal`, ...
    pub(crate) fn name(self) -> &'static str {
        match self {
            Trigger::StdinEof => "stdin-eof",
            Trigger::Escape => "escape",
            Trigger::Signal(_) => "signal",
            Trigger::QuitLine => "quit-line",
            Trigger::PeerCloseNotify => "peer-close-notify",
            Trigger::PeerEof => "peer-eof",
            Trigger::StdoutClosed => "stdout-closed",
            Trigger::Error => "error",
            Trigger::ShowCert => "show-cert",
            Trigger::IdleTimeout => "idle-timeout",
        }
    }
}

/// How the command's connection ended: as the library's close said, or aborted, which only
/// the command does (a second signal during the close, a signal before the session was up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Closed(Outcome),
    /// Cut short on purpose: no goodbye.
    Aborted,
}

impl Ended {
    /// The name used in reports: the library's (`clean`, `truncated`, ...) or `aborted`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ended::Closed(outcome) => outcome.name(),
            Ended::Aborted => "aborted",
        }
    }
}

/// The process exit code for an outcome when no signal ends the process: 0 clean, 1 error,
/// 3 truncated, 4 close timed out, 5 close_notify sent but its arrival unconfirmed. An
/// aborted close ends by a signal; 1 stands for it where a code is needed anyway.
pub(crate) fn exit_code(ended: Ended) -> i32 {
    match ended {
        Ended::Closed(Outcome::Clean) => 0,
        Ended::Closed(Outcome::Truncated) => 3,
        Ended::Closed(Outcome::CloseTimeout) => 4,
        Ended::Closed(Outcome::Unconfirmed) => 5,
        _ => 1,
    }
}

/// The library's [`CloseReport`] as the command reports it, which it may amend: a failure
/// of its own (stdout closed, a certificate it could not print), data dropped at the quiet
/// time, an abort.
#[derive(Debug, Clone)]
pub(crate) struct Closed {
    pub(crate) outcome: Ended,
    pub(crate) close_notify_sent: bool,
    pub(crate) close_notify_received: bool,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_dropped: u64,
    pub(crate) close_duration: Duration,
    pub(crate) error: Option<String>,
    pub(crate) alert: Option<gracetls::Alert>,
}

impl From<&CloseReport> for Closed {
    fn from(r: &CloseReport) -> Closed {
        Closed {
            outcome: Ended::Closed(r.outcome()),
            close_notify_sent: r.close_notify_sent(),
            close_notify_received: r.close_notify_received(),
            bytes_in: r.bytes_in(),
            bytes_out: r.bytes_out(),
            bytes_dropped: r.bytes_dropped(),
            close_duration: r.close_duration(),
            error: r.error().map(str::to_string),
            alert: r.alert(),
        }
    }
}

/// A [`Closed`] with what only the program knows: its exit code and running time.
#[derive(Debug, Clone)]
pub(crate) struct ExitReport {
    /// What started the end.
    pub(crate) trigger: Trigger,
    /// How the connection ended.
    pub(crate) close: Closed,
    /// What finished an end that the trigger only began: after stdin EOF,
    /// `server-close-notify`, `server-eof` (`client-...` under `--listen`) or `quiet` (nothing
    /// moved for the quiet time).
    pub(crate) end: Option<&'static str>,
    /// From the trigger to the exit: what came before the TLS close (the quiet time, the
    /// server's answer to a half-close) and the TLS close itself, which is
    /// `close.close_duration` (the figure of the `-v` line `closed ...`).
    pub(crate) close_duration: Duration,
    /// From start to exit.
    pub(crate) duration: Duration,
    /// As a shell shows it: 128 + the signal's number when the process ends by a signal.
    pub(crate) exit_code: i32,
    /// What the handshake negotiated; `None` when there was no session.
    pub(crate) session: Option<Session>,
}

impl ExitReport {
    fn signal(&self) -> Option<Signal> {
        match self.trigger {
            Trigger::Signal(s) => Some(s),
            _ => None,
        }
    }

    /// One JSON object on one line.
    pub(crate) fn to_json(&self) -> String {
        let c = &self.close;
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            r#"{{"trigger":"{}","end":{},"outcome":"{}","signal":{},"close_notify_sent":{},"close_notify_received":{},"bytes_in":{},"bytes_out":{},"bytes_dropped":{},"close_ms":{},"tls_close_ms":{},"duration_ms":{},"exit_code":{},"error":{},"alert":{},"session":{}}}"#,
            self.trigger.name(),
            self.end.map_or("null".to_string(), json_string),
            c.outcome.name(),
            self.signal()
                .map_or("null".to_string(), |s| json_string(s.name())),
            c.close_notify_sent,
            c.close_notify_received,
            c.bytes_in,
            c.bytes_out,
            c.bytes_dropped,
            self.close_duration.as_millis(),
            c.close_duration.as_millis(),
            self.duration.as_millis(),
            self.exit_code,
            c.error.as_deref().map_or("null".to_string(), json_string),
            c.alert
                .map_or("null".to_string(), |a| json_string(&a.to_string())),
            self.session
                .as_ref()
                .map_or("null".to_string(), session_json),
        );
        s
    }

    /// One line for a person.
    pub(crate) fn to_text(&self) -> String {
        let c = &self.close;
        let trigger = match self.signal() {
            Some(s) => format!("signal {}", s.name()),
            None => self.trigger.name().to_string(),
        };
        let mut by = trigger.clone();
        if let Some(end) = self.end {
            let _ = write!(by, ", then {end}");
        }
        let yes = |b: bool| if b { "sent" } else { "not sent" };
        let mut line = format!(
            "gracetls: {} close after {by}: close_notify {}, {}; {} bytes in, {} bytes out; {} ms from {trigger} to exit, of which the TLS close {} ms; total {} ms; exit {}",
            c.outcome.name(),
            yes(c.close_notify_sent),
            if c.close_notify_received {
                "received"
            } else {
                "not received"
            },
            c.bytes_in,
            c.bytes_out,
            self.close_duration.as_millis(),
            c.close_duration.as_millis(),
            self.duration.as_millis(),
            self.exit_code,
        );
        if c.bytes_dropped > 0 {
            let _ = write!(line, "; {} bytes dropped", c.bytes_dropped);
        }
        if let Some(e) = &c.error {
            let _ = write!(line, "; error: {e}");
        }
        line
    }
}

/// `{"version":"TLSv1.3","cipher_suite":...,"alpn":"h2","certificate":{"subject":...}}`;
/// dates in RFC 3339, names as `DNS:...`, `IP:...`, the fingerprint as `openssl x509` prints
/// it.
pub(crate) fn session_json(session: &Session) -> String {
    let opt = |text: Option<&str>| text.map_or("null".to_string(), json_string);
    let alpn = session
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let certificate = session.peer_certificate().map_or("null".into(), |cert| {
        let names: Vec<String> = cert
            .subject_alt_names()
            .iter()
            .map(|name| json_string(&name.to_string()))
            .collect();
        format!(
            r#"{{"subject":{},"issuer":{},"not_before":"{}","not_after":"{}","subject_alt_names":[{}],"sha256_fingerprint":"{}"}}"#,
            json_string(cert.subject()),
            json_string(cert.issuer()),
            format_rfc3339(cert.not_before()),
            format_rfc3339(cert.not_after()),
            names.join(","),
            cert.sha256_fingerprint(),
        )
    });
    format!(
        r#"{{"version":{},"cipher_suite":{},"alpn":{},"certificate":{certificate}}}"#,
        opt(session.version()),
        opt(session.cipher_suite()),
        opt(alpn.as_deref()),
    )
}

pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The report of a session that never got to a close.
pub(crate) fn not_connected(outcome: Ended, error: Option<&gracetls::Error>) -> Closed {
    Closed {
        outcome,
        close_notify_sent: false,
        close_notify_received: false,
        bytes_in: 0,
        bytes_out: 0,
        bytes_dropped: 0,
        close_duration: Duration::ZERO,
        error: error.map(|e| gracetls::unversioned::with_causes(e)),
        alert: error.and_then(gracetls::Error::alert),
    }
}

/// When, how and with what the connection ended: what [`finish`] and [`emit_report`] say.
pub(crate) struct Ending<'a> {
    pub(crate) trigger: Trigger,
    /// What finished an end that the trigger only began (see [`ExitReport::end`]).
    pub(crate) end: Option<&'static str>,
    /// The session, when there was one.
    pub(crate) session: Option<&'a Session>,
    pub(crate) started: Instant,
    pub(crate) trigger_at: Instant,
}

impl Ending<'_> {
    /// An end without a session: the connection was never made.
    pub(crate) fn unconnected(trigger: Trigger, started: Instant, trigger_at: Instant) -> Self {
        Ending {
            trigger,
            end: None,
            session: None,
            started,
            trigger_at,
        }
    }
}

/// Writes the report and ends: by the signal that ended the connection, or with the
/// outcome's exit code.
pub(crate) fn finish(args: &Args, ending: Ending<'_>, report: Closed) -> ExitCode {
    match ending.trigger {
        Trigger::Signal(sig) => {
            emit_report(args, &ending, &report, 128 + sig.number());
            die(sig)
        }
        _ => {
            let code = exit_code(report.outcome);
            emit_report(args, &ending, &report, code);
            ExitCode::from(code as u8)
        }
    }
}

pub(crate) fn emit_report(args: &Args, ending: &Ending<'_>, close: &Closed, exit_code: i32) {
    let report = ExitReport {
        trigger: ending.trigger,
        close: close.clone(),
        end: ending.end,
        close_duration: ending.trigger_at.elapsed(),
        duration: ending.started.elapsed(),
        exit_code,
        session: ending.session.cloned(),
    };
    let line = match args.report {
        ReportFormat::None => return,
        ReportFormat::Text => report.to_text(),
        ReportFormat::Json => report.to_json(),
    };
    let _ = writeln!(io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests;
