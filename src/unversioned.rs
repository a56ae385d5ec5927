//! Plumbing that the `gracetls` command, the examples and the tests use from the inside. **Not
//! covered by semver**: anything here may change or go in any release. A program that uses
//! the library needs none of it.

use std::io;

pub use crate::config::format_duration;
pub use crate::transport::{MemoryTransport, Spill};
pub use crate::utc::{rfc3339 as format_rfc3339, utc as format_utc};

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
