//! How durations and errors read in a message: `2s`, `500ms`; an error with its causes on
//! one line.

use std::io;
use std::time::Duration;

/// Formats a duration for a message: `2s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The message with its causes, one line: the error's own words, then `: ` and each error
/// of its `source()` chain, an I/O error in the words a person at the terminal reads
/// (`connection refused`, `connection reset by the server`). What the command line prints and
/// what a [`CloseReport`](crate::CloseReport) carries.
///
/// ```
/// use std::io;
/// let e = gracetls::Error::Connect {
///     target: "127.0.0.1:1".into(),
///     source: io::ErrorKind::ConnectionRefused.into(),
/// };
/// assert_eq!(e.to_string(), "cannot connect to 127.0.0.1:1");
/// assert_eq!(
///     gracetls::unversioned::with_causes(&e),
///     "cannot connect to 127.0.0.1:1: connection refused"
/// );
/// ```
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: a chain is short, but a careless error type could loop.
    for _ in 0..16 {
        let Some(cause) = source else { break };
        text.push_str(": ");
        match cause.downcast_ref::<io::Error>() {
            Some(io) => text.push_str(&io_cause(io)),
            None => text.push_str(&cause.to_string()),
        }
        source = cause.source();
    }
    text
}

/// An I/O error as the person at the terminal reads it.
fn io_cause(error: &io::Error) -> String {
    if error.get_ref().is_some() {
        return error.to_string();
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::BrokenPipe => "connection closed by the server (broken pipe)".into(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }
}
