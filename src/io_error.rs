//! Errors across the `std::io` boundary: a [`Stream`](crate::Stream) speaks `io::Error`, whose
//! inner error is this crate's [`Error`] where one says more than the kind.

use std::io;

use crate::Error;
use crate::error::Operation;
use crate::starttls::Problem;

impl From<Error> for io::Error {
    /// An `io::Error` of the closest kind, carrying the [`Error`] itself (its message, hint
    /// and `source()` stay reachable through `get_ref` and `downcast`).
    ///
    /// ```
    /// use std::io;
    /// let e: io::Error = gracetls::Error::Closed.into();
    /// assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    /// assert!(e.get_ref().is_some_and(|inner| inner.is::<gracetls::Error>()));
    /// ```
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::Io { source, .. }
            | Error::Connect { source, .. }
            | Error::Proxy { source, .. }
            | Error::Thread { source, .. } => source.kind(),
            Error::ProxyRefused { .. } => io::ErrorKind::ConnectionRefused,
            Error::Resolve { .. } => io::ErrorKind::NotFound,
            Error::ConnectTimeout { .. } => io::ErrorKind::TimedOut,
            Error::InvalidTarget { .. }
            | Error::InvalidProxy { .. }
            | Error::Setup { .. }
            | Error::KeyMismatch { .. } => io::ErrorKind::InvalidInput,
            Error::Closed => io::ErrorKind::BrokenPipe,
            Error::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Error::Starttls { problem, .. } => match problem {
                Problem::Io(source) => source.kind(),
                Problem::Timeout { .. } => io::ErrorKind::TimedOut,
                Problem::Closed => io::ErrorKind::UnexpectedEof,
                _ => io::ErrorKind::InvalidData,
            },
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

impl Error {
    /// The [`Error`] inside an `io::Error` that a [`Stream`](crate::Stream) returned, or, for
    /// one with none (a read timeout the caller set, say), an [`Error::Io`] saying what was
    /// being done (`op`) and with whom (`target`).
    ///
    /// ```
    /// use std::io;
    /// use gracetls::Error;
    /// use gracetls::error::Operation;
    ///
    /// let e = Error::from_io(io::Error::from(Error::Closed), Operation::Write, "h:1");
    /// assert!(matches!(e, Error::Closed));
    /// let e = Error::from_io(io::ErrorKind::TimedOut.into(), Operation::Write, "h:1");
    /// assert!(matches!(e, Error::Io { op: Operation::Write, .. }));
    /// ```
    pub fn from_io(error: io::Error, op: Operation, target: &str) -> Error {
        let io = |source| Error::Io {
            target: target.to_string(),
            op,
            source,
        };
        if error.get_ref().is_none_or(|inner| !inner.is::<Error>()) {
            return io(error);
        }
        let kind = error.kind();
        match error.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => io(io::Error::new(kind, other)),
            None => io(kind.into()),
        }
    }
}
