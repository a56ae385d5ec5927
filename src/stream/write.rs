//! The write side of a [`Stream`]: encrypting under the TLS lock, writing the ciphertext
//! after it is released, and waiting for the server when a handshake needs its part.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::{PoisonError, TryLockError};

use super::{Inner, Stream, lock};
use crate::Error;
use crate::error::Operation;
use crate::outbound::is_timeout;

/// Most plaintext one `write` call encrypts: it bounds the ciphertext a writer queues.
const MAX_WRITE: usize = 256 * 1024;

impl Inner {
    pub(super) fn write_plain(&self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let chunk = &data[..data.len().min(MAX_WRITE)];
        loop {
            // Ciphertext nobody is writing (what an earlier write left when its socket write
            // timed out) goes first, before this call consumes anything: a timeout here
            // returns an error with nothing of `data` taken.
            if self.out.orphaned() {
                let mark = self.out.push(&[], 0);
                if let Err(e) = self.out.flush_to(&self.socket, mark, true) {
                    return Err(self.write_failed(e));
                }
            }
            // Taken before the attempt: progress the reader makes after it (the server's
            // handshake fed in) must wake a wait below, or the wait could outlast it.
            let seen = *lock(&self.progress);
            let (sent, stalled, mark, failed) = {
                let mut tls = self.tls();
                // Checked under the lock: the close takes it to write close_notify, so no
                // data is encrypted after close_notify.
                if self.flags.write_closed.load(Ordering::SeqCst) {
                    return Err(self.closed_error());
                }
                let (mut sent, mut stalled, mut failed) = (0, false, None);
                // What the socket takes now goes straight from TLS's buffer; the rest joins
                // the queue below, in order.
                tls.get_mut().allow_send(true);
                while sent < chunk.len() {
                    match tls.write(&chunk[sent..]) {
                        Ok(0) => {
                            stalled = true;
                            break;
                        }
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            stalled = true;
                            break;
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                tls.get_mut().allow_send(false);
                (sent, stalled, self.queue_tls_data(&mut tls, sent), failed)
            };
            if let Some(mark) = mark {
                match self.out.flush_to(&self.socket, mark, true) {
                    Ok(()) => {}
                    // Encrypted is consumed: TLS cannot take it back. The rest of its
                    // ciphertext stays queued, exactly counted, and goes first with the next
                    // write or the close.
                    Err(e) if is_timeout(e.kind()) && sent > 0 => {
                        self.note_data(None, sent);
                        return Ok(sent);
                    }
                    Err(e) => return Err(self.write_failed(e)),
                }
            }
            if let Some(e) = failed {
                self.flags.tls_failed.store(true, Ordering::SeqCst);
                let error = Error::tls(&self.target, &e);
                self.record_error(&error);
                return Err(io::Error::new(io::ErrorKind::InvalidData, error));
            }
            if sent > 0 {
                self.note_data(None, sent);
                return Ok(sent);
            }
            if stalled {
                self.await_inbound(seen)?;
            }
        }
    }

    /// The error a `write` returns for a failed flush: a timeout as it is (the connection
    /// stays usable), the close's own end as [`Error::Closed`], anything else recorded as
    /// the connection's error.
    fn write_failed(&self, e: io::Error) -> io::Error {
        if is_timeout(e.kind()) {
            return e;
        }
        if self.stopping() || self.flags.write_closed.load(Ordering::SeqCst) {
            return self.closed_error();
        }
        let error = self.io_error(Operation::Write, e);
        self.record_error(&error);
        let kind = match &error {
            Error::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }

    /// Encryption waits for the server's part of a handshake (a TLS 1.2 renegotiation): the
    /// thread reading the socket feeds it (we wait until its progress counter moves past
    /// `seen`, read before the failed attempt); with no such thread, this one reads.
    pub(super) fn await_inbound(&self, seen: u64) -> io::Result<()> {
        match self.reading.try_lock() {
            Ok(mut reading) => {
                if let Err(e) = self.read_socket(&mut reading) {
                    if self.stopping() {
                        return Err(self.closed_error());
                    }
                    return Err(io::Error::new(e.kind(), self.io_error(Operation::Read, e)));
                }
                self.progressed();
            }
            Err(TryLockError::Poisoned(p)) => drop(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                let mut progress = lock(&self.progress);
                while *progress == seen {
                    progress = self
                        .progressed
                        .wait(progress)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        if self.flags.write_closed.load(Ordering::SeqCst) {
            return Err(self.closed_error());
        }
        Ok(())
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_plain(buf)
    }

    /// The slices go out together, as one TLS record where they fit in one.
    ///
    /// ```no_run
    /// use std::io::{IoSlice, Write};
    /// use gracetls::{Config, Stream};
    ///
    /// let stream = Stream::connect(&Config::new(), "example.com:443")?;
    /// let (head, body) = (b"HEAD / HTTP/1.1\r\n", b"Host: example.com\r\n\r\n");
    /// let n = (&stream).write_vectored(&[IoSlice::new(head), IoSlice::new(body)])?;
    /// assert_eq!(n, head.len() + body.len()); // both slices, in one record
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored_plain(bufs)
    }

    /// Every `write` hands its ciphertext to the socket before it returns.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Formats into one buffer first, so `writeln!(stream, ...)` is one TLS record, not one
    /// per piece.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        let text = fmt::format(args);
        self.write_all(text.as_bytes())
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_plain(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored_plain(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        (&*self).write_fmt(args)
    }
}
