//! The clear-text dialogue every protocol's upgrade is made of: our lines out, the server's
//! answers in, each bounded in length, all of it before one deadline, and never a byte read
//! past the server's last answer.
//!
//! Reads peek at what the socket holds and then take exactly the part up to the end of the
//! answer (a line's `\n`, an XML tag's `>`, PostgreSQL's one byte). What lies beyond stays in
//! the socket: after the upgrade, that is the server's TLS, and it belongs to the handshake.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use log::info;

use super::protocol::one_line;
use super::{Problem, Protocol, Transcript};
use crate::Error;

/// Longest line (or XML tag) the server may send, `\n` included.
pub(super) const MAX_LINE: usize = 8 * 1024;
/// Most the server may send in the whole exchange.
pub(super) const MAX_TOTAL: usize = 256 * 1024;
/// Characters of a server's answer quoted in an error message.
const MAX_QUOTED: usize = 300;
/// One peek.
const CHUNK: usize = 4 * 1024;

pub(super) struct Dialogue<'a> {
    socket: &'a TcpStream,
    target: &'a str,
    protocol: Protocol,
    deadline: Instant,
    timeout: Duration,
    step: &'static str,
    /// Bytes taken from the server so far.
    read: usize,
    transcript: Vec<String>,
    /// What the server sent of an answer that never ended (the read failed before its end):
    /// a timeout quotes it.
    partial: Vec<u8>,
}

impl<'a> Dialogue<'a> {
    pub(super) fn new(
        socket: &'a TcpStream,
        target: &'a str,
        protocol: Protocol,
        deadline: Instant,
        timeout: Duration,
    ) -> Dialogue<'a> {
        Dialogue {
            socket,
            target,
            protocol,
            deadline,
            timeout,
            step: "greeting",
            read: 0,
            transcript: Vec::new(),
            partial: Vec::new(),
        }
    }

    pub(super) fn into_transcript(self) -> Transcript {
        Transcript {
            lines: self.transcript,
        }
    }

    /// The step that errors from now on name.
    pub(super) fn step(&mut self, step: &'static str) {
        self.step = step;
    }

    /// The server's first line (its greeting), whole or not.
    pub(super) fn first_server_line(&self) -> Option<String> {
        let recorded = self
            .transcript
            .iter()
            .find_map(|line| line.strip_prefix("S: "))
            .map(str::to_string);
        recorded.or_else(|| {
            let text = String::from_utf8_lossy(&self.partial);
            let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
            Some(quote(line))
        })
    }

    /// The last line the server sent: of an answer it left unfinished, or else its last whole
    /// answer.
    fn last_server_line(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.partial);
        if let Some(line) = text.lines().map(str::trim).rfind(|l| !l.is_empty()) {
            return Some(quote(line));
        }
        self.transcript
            .iter()
            .rev()
            .find_map(|line| line.strip_prefix("S: "))
            .map(quote)
    }

    fn timeout(&self) -> Error {
        self.fail(Problem::Timeout {
            timeout: self.timeout,
            last: self.last_server_line(),
        })
    }

    pub(super) fn fail(&self, problem: Problem) -> Error {
        Error::Starttls {
            target: self.target.to_string(),
            protocol: self.protocol,
            step: self.step,
            problem,
        }
    }

    pub(super) fn not_offered(&self, said: String) -> Error {
        self.fail(Problem::NotOffered { said })
    }

    pub(super) fn refused(&self, reply: &str) -> Error {
        self.fail(Problem::Refused {
            reply: quote(reply),
        })
    }

    pub(super) fn unexpected(&self, reply: &str, expected: &'static str) -> Error {
        self.fail(Problem::Unexpected {
            reply: quote(reply),
            expected,
        })
    }

    /// Sends `line` and CRLF, as step `step`.
    pub(super) fn send_line(&mut self, step: &'static str, line: &str) -> Result<(), Error> {
        self.send(step, format!("{line}\r\n").as_bytes(), line)
    }

    /// Sends `bytes`, shown in the transcript as `shown`, as step `step`.
    pub(super) fn send(
        &mut self,
        step: &'static str,
        bytes: &[u8],
        shown: &str,
    ) -> Result<(), Error> {
        self.step = step;
        self.record('C', shown);
        let remaining = self.remaining()?;
        self.socket
            .set_write_timeout(Some(remaining))
            .and_then(|()| (&*self.socket).write_all(bytes))
            .map_err(|e| self.io_failure(e))
    }

    /// One line from the server, without its line end (`\n`, `\r\n`).
    pub(super) fn line(&mut self) -> Result<String, Error> {
        let raw = self.take(Some(b'\n'), MAX_LINE)?;
        let mut text = String::from_utf8_lossy(&raw).into_owned();
        while text.ends_with(['\n', '\r']) {
            text.pop();
        }
        self.record('S', &text);
        Ok(text)
    }

    /// The server's bytes up to and including the next `end` (an XML tag's `>`), at most
    /// [`MAX_LINE`], as text; recorded in the transcript unless it is only white space.
    pub(super) fn until(&mut self, end: u8) -> Result<String, Error> {
        let raw = self.take(Some(end), MAX_LINE)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        if !text.trim().is_empty() {
            self.record('S', text.trim());
        }
        Ok(text)
    }

    /// Waits for the server's first byte that is not white space and fails at once, quoting
    /// its line, when that byte cannot start XML: a server of a line protocol (FTP, SMTP)
    /// greeted, and waiting for a `>` would wait out the whole timeout. White space before it
    /// is taken.
    pub(super) fn expect_xml(&mut self, expected: &'static str) -> Result<(), Error> {
        let mut buf = [0u8; CHUNK];
        loop {
            let remaining = self.remaining()?;
            let peeked = self
                .socket
                .set_read_timeout(Some(remaining))
                .and_then(|()| self.socket.peek(&mut buf));
            let n = match peeked {
                Ok(0) => return Err(self.fail(Problem::Closed)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_failure(e)),
            };
            match buf[..n].iter().position(|b| !b.is_ascii_whitespace()) {
                Some(at) if buf[at] == b'<' => return Ok(()),
                Some(_) => {
                    let line = self.line()?;
                    return Err(self.unexpected(line.trim(), expected));
                }
                None => {
                    if self.read + n > MAX_TOTAL {
                        return Err(self.fail(Problem::TooLong { limit: MAX_TOTAL }));
                    }
                    (&*self.socket)
                        .read_exact(&mut buf[..n])
                        .map_err(|e| self.io_failure(e))?;
                    self.read += n;
                }
            }
        }
    }

    /// One byte from the server.
    pub(super) fn byte(&mut self) -> Result<u8, Error> {
        let raw = self.take(None, 1)?;
        let b = raw
            .first()
            .copied()
            .ok_or_else(|| self.fail(Problem::Closed))?;
        self.record('S', &quote(&(b as char).to_string()));
        Ok(b)
    }

    /// Takes bytes up to and including `end` (or `max` bytes when `end` is `None`), never
    /// more than were peeked at. What was taken of an answer that did not end is kept for
    /// the message.
    fn take(&mut self, end: Option<u8>, max: usize) -> Result<Vec<u8>, Error> {
        self.partial.clear();
        self.take_into_partial(end, max)?;
        Ok(std::mem::take(&mut self.partial))
    }

    fn take_into_partial(&mut self, end: Option<u8>, max: usize) -> Result<(), Error> {
        let mut buf = [0u8; CHUNK];
        loop {
            let room = CHUNK
                .min(max - self.partial.len())
                .min(MAX_TOTAL.saturating_sub(self.read));
            if room == 0 {
                return Err(self.fail(Problem::TooLong { limit: MAX_TOTAL }));
            }
            let remaining = self.remaining()?;
            let peeked = self
                .socket
                .set_read_timeout(Some(remaining))
                .and_then(|()| self.socket.peek(&mut buf[..room]));
            let n = match peeked {
                Ok(0) => return Err(self.fail(Problem::Closed)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_failure(e)),
            };
            let (n, done) = match end.and_then(|b| buf[..n].iter().position(|&x| x == b)) {
                Some(at) => (at + 1, true),
                None => (n, end.is_none()),
            };
            // What was peeked is in the socket's buffer: this read returns at once.
            (&*self.socket)
                .read_exact(&mut buf[..n])
                .map_err(|e| self.io_failure(e))?;
            self.read += n;
            self.partial.extend_from_slice(&buf[..n]);
            if done && (end.is_some() || self.partial.len() == max) {
                return Ok(());
            }
            if self.partial.len() >= max {
                return Err(self.fail(Problem::TooLong { limit: max }));
            }
        }
    }

    /// Time left before the deadline; none left is the timeout.
    fn remaining(&self) -> Result<Duration, Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout());
        }
        Ok(left)
    }

    fn io_failure(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timeout(),
            io::ErrorKind::UnexpectedEof => self.fail(Problem::Closed),
            _ => self.fail(Problem::Io(e)),
        }
    }

    /// Adds a line to the transcript and logs it (`info`), control characters escaped so
    /// that a server cannot drive the terminal of the person reading it.
    fn record(&mut self, who: char, text: &str) {
        let mut shown = String::with_capacity(text.len());
        for c in text.chars() {
            if c.is_control() {
                shown.extend(c.escape_default());
            } else {
                shown.push(c);
            }
        }
        info!("{} {who}: {shown}", self.protocol);
        self.transcript.push(format!("{who}: {shown}"));
    }
}

/// At most [`MAX_QUOTED`] characters of `text`, for a message, on one line.
pub(super) fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((at, _)) => format!("{}...", one_line(&text[..at])),
        None => one_line(text),
    }
}
