//! How a connection ended: what started the end, how the goodbye went, and how to say so in
//! one line of text or JSON.

use std::fmt::Write as _;
use std::time::Duration;

/// A signal that ends a connection gracefully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// SIGINT (Ctrl-C), number 2.
    Int,
    /// SIGTERM, number 15.
    Term,
    /// SIGHUP, number 1.
    Hup,
    /// SIGQUIT (Ctrl-\\), number 3.
    Quit,
}

impl Signal {
    /// The signal's number on Linux.
    pub fn number(self) -> i32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Quit => 3,
            Signal::Term => 15,
        }
    }

    /// The signal for a number, if it is one of those above.
    pub fn from_number(n: i32) -> Option<Signal> {
        match n {
            1 => Some(Signal::Hup),
            2 => Some(Signal::Int),
            3 => Some(Signal::Quit),
            15 => Some(Signal::Term),
            _ => None,
        }
    }

    /// `SIGINT`, `SIGTERM`, `SIGHUP` or `SIGQUIT`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Quit => "SIGQUIT",
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }
}

/// What started the end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
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
    /// The program asked for the close ([`Connection::close`](crate::Connection::close) or drop).
    Requested,
}

impl Trigger {
    /// The name used in reports: `stdin-eof`, `escape`, `signal`, ...
    pub fn name(self) -> &'static str {
        match self {
            Trigger::StdinEof => "stdin-eof",
            Trigger::Escape => "escape",
            Trigger::Signal(_) => "signal",
            Trigger::QuitLine => "quit-line",
            Trigger::PeerCloseNotify => "peer-close-notify",
            Trigger::PeerEof => "peer-eof",
            Trigger::StdoutClosed => "stdout-closed",
            Trigger::Error => "error",
            Trigger::Requested => "requested",
        }
    }
}

/// How the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// close_notify was sent (and, where the close waited for it, received).
    Clean,
    /// The server's stream ended without close_notify: data may be missing.
    Truncated,
    /// The close did not finish within the close timeout; the socket was closed hard.
    CloseTimeout,
    /// The close was cut short on purpose (a second signal): no goodbye.
    Aborted,
    /// The connection failed.
    Error,
}

impl Outcome {
    /// The name used in reports: `clean`, `truncated`, ...
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Truncated => "truncated",
            Outcome::CloseTimeout => "close-timeout",
            Outcome::Aborted => "aborted",
            Outcome::Error => "error",
        }
    }

    /// The process exit code for this outcome when no signal ends the process:
    /// 0 clean, 1 error, 3 truncated, 4 close timed out. An aborted close ends by a signal;
    /// 1 stands for it where a code is needed anyway.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Clean => 0,
            Outcome::Error | Outcome::Aborted => 1,
            Outcome::Truncated => 3,
            Outcome::CloseTimeout => 4,
        }
    }
}

/// What a finished close reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReport {
    /// What started the end.
    pub trigger: Trigger,
    /// How it went.
    pub outcome: Outcome,
    /// Whether our close_notify was handed to the socket.
    pub close_notify_sent: bool,
    /// Whether the server's close_notify was read.
    pub close_notify_received: bool,
    /// Plaintext bytes received from the server.
    pub bytes_in: u64,
    /// Plaintext bytes sent to the server.
    pub bytes_out: u64,
    /// Plaintext bytes that reached us during a fast close, after reading had stopped, and
    /// were not delivered. A fast close drops them by design; a count above zero says the
    /// server was still sending.
    pub bytes_dropped: u64,
    /// From the start of the close to its end.
    pub close_duration: Duration,
    /// The error, if the connection failed.
    pub error: Option<String>,
}

/// A [`CloseReport`] with what only the program knows: its exit code and running time.
#[derive(Debug, Clone)]
pub struct ExitReport {
    /// How the connection ended.
    pub close: CloseReport,
    /// What finished an end that the trigger only began: after stdin EOF,
    /// `server-close-notify`, `server-eof` or `quiet` (nothing moved for the quiet time).
    pub end: Option<&'static str>,
    /// From the trigger to the exit.
    pub close_duration: Duration,
    /// From start to exit.
    pub duration: Duration,
    /// As a shell shows it: 128 + the signal's number when the process ends by a signal.
    pub exit_code: i32,
}

impl ExitReport {
    fn signal(&self) -> Option<Signal> {
        match self.close.trigger {
            Trigger::Signal(s) => Some(s),
            _ => None,
        }
    }

    /// One JSON object on one line.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gracetls::{CloseReport, ExitReport, Outcome, Trigger};
    ///
    /// let close = CloseReport {
    ///     trigger: Trigger::StdinEof, outcome: Outcome::Clean,
    ///     close_notify_sent: true, close_notify_received: true,
    ///     bytes_in: 5, bytes_out: 6, bytes_dropped: 0, close_duration: Duration::from_millis(3),
    ///     error: None,
    /// };
    /// let report = ExitReport { close, end: Some("quiet"), close_duration: Duration::from_millis(4),
    ///     duration: Duration::from_millis(90), exit_code: 0 };
    /// assert!(report.to_json().starts_with(r#"{"trigger":"stdin-eof","end":"quiet","outcome":"clean","signal":null,"#));
    /// ```
    pub fn to_json(&self) -> String {
        let c = &self.close;
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            r#"{{"trigger":"{}","end":{},"outcome":"{}","signal":{},"close_notify_sent":{},"close_notify_received":{},"bytes_in":{},"bytes_out":{},"bytes_dropped":{},"close_ms":{},"duration_ms":{},"exit_code":{},"error":{}}}"#,
            c.trigger.name(),
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
            self.duration.as_millis(),
            self.exit_code,
            c.error.as_deref().map_or("null".to_string(), json_string),
        );
        s
    }

    /// One line for a person.
    pub fn to_text(&self) -> String {
        let c = &self.close;
        let mut by = match self.signal() {
            Some(s) => format!("signal {}", s.name()),
            None => c.trigger.name().to_string(),
        };
        if let Some(end) = self.end {
            let _ = write!(by, ", then {end}");
        }
        let yes = |b: bool| if b { "sent" } else { "not sent" };
        let mut line = format!(
            "gracetls: {} close after {by}: close_notify {}, {}; {} bytes in, {} bytes out; close {} ms, total {} ms; exit {}",
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

fn json_string(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(trigger: Trigger, error: Option<&str>) -> ExitReport {
        ExitReport {
            close: CloseReport {
                trigger,
                outcome: Outcome::Clean,
                close_notify_sent: true,
                close_notify_received: false,
                bytes_in: 1,
                bytes_out: 2,
                bytes_dropped: 0,
                close_duration: Duration::from_millis(3),
                error: error.map(str::to_string),
            },
            end: None,
            close_duration: Duration::from_millis(4),
            duration: Duration::from_millis(5),
            exit_code: 130,
        }
    }

    #[test]
    fn json_names_the_signal_and_escapes_errors() {
        let j = report(Trigger::Signal(Signal::Int), Some("a \"b\"\n\u{1}")).to_json();
        assert!(j.contains(r#""signal":"SIGINT""#), "{j}");
        assert!(j.contains(r#""error":"a \"b\"\n\u0001""#), "{j}");
        assert!(j.contains(r#""exit_code":130"#), "{j}");
        assert!(!j.contains('\n'));
    }

    #[test]
    fn text_is_one_line() {
        let t = report(Trigger::Escape, None).to_text();
        assert!(t.starts_with("gracetls: clean close after escape"), "{t}");
        assert!(!t.contains('\n'));
    }

    #[test]
    fn signal_numbers_round_trip() {
        for s in [Signal::Int, Signal::Term, Signal::Hup, Signal::Quit] {
            assert_eq!(Signal::from_number(s.number()), Some(s));
        }
    }
}
