//! A handshake's socket side, the same for a client's and a server's: what TLS wrote goes
//! out, then what the peer sent comes in, each socket call bounded by what is left of the
//! handshake's deadline. The thread doing the handshake owns the socket, so these calls
//! may block; no lock is held.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::error::Operation;

/// Why an exchange stopped.
pub(crate) enum Stop {
    /// The deadline passed.
    TimedOut,
    /// The socket failed doing this.
    Io(Operation, io::Error),
}

/// The socket of one handshake and its deadline.
pub(crate) struct Exchange<'a> {
    socket: &'a mut TcpStream,
    deadline: Instant,
    buf: Vec<u8>,
}

impl<'a> Exchange<'a> {
    pub(crate) fn new(socket: &'a mut TcpStream, deadline: Instant) -> Self {
        Exchange {
            socket,
            deadline,
            buf: vec![0u8; 16 * 1024],
        }
    }

    /// The socket, for what the handshake's owner does with it outside the exchange.
    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        self.socket
    }

    /// What is left of the deadline; `None` once it has passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        Some(self.deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// Writes all of `out`, within the deadline (at least a millisecond, so a handshake
    /// that has just finished still gets its last flight out).
    pub(crate) fn send(&mut self, out: &[u8]) -> Result<(), Stop> {
        if out.is_empty() {
            return Ok(());
        }
        let bound = self
            .remaining()
            .unwrap_or_default()
            .max(Duration::from_millis(1));
        self.socket
            .set_write_timeout(Some(bound))
            .map_err(|e| Stop::Io(Operation::Write, e))?;
        self.socket
            .write_all(out)
            .map_err(|e| stop(Operation::Write, e))
    }

    /// Reads what the peer sent next, within the deadline: `Ok` of the bytes, empty at the
    /// end of its stream.
    pub(crate) fn receive(&mut self) -> Result<&[u8], Stop> {
        let bound = self.remaining().ok_or(Stop::TimedOut)?;
        self.socket
            .set_read_timeout(Some(bound))
            .map_err(|e| Stop::Io(Operation::Read, e))?;
        let n = loop {
            match self.socket.read(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stop(Operation::Read, e)),
                Ok(n) => break n,
            }
        };
        Ok(&self.buf[..n])
    }
}

/// A socket timeout is the deadline passing; anything else is the socket's failure.
fn stop(op: Operation, e: io::Error) -> Stop {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        Stop::TimedOut
    } else {
        Stop::Io(op, e)
    }
}
