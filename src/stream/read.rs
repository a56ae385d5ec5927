//! The read side of a [`Stream`]: decrypting what the transport holds, reading the socket
//! only when TLS needs more, and telling the server's close_notify from its bare end.

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Inner, ReadBuffer, Stream, lock};
use crate::Error;
use crate::error::Operation;
use crate::error::Truncation;
use crate::outbound::is_timeout;
use crate::read_size::{LARGE_READ, SMALL_READ};
use crate::transport::Starved;

/// Answers to the server (KeyUpdate replies, renegotiation messages) waiting for the socket
/// past which a reader that made more waits for them to be written instead of reading on.
const OUTBOUND_LIMIT: usize = 1024 * 1024;

/// How often a reader that holds ciphertext nobody else writes offers it to the socket again
/// while it waits for the server: first, and at most (doubling in between).
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// What one decryption pass found.
pub(super) enum Step {
    Data(usize),
    End { at_eof: bool, cut: bool },
    Need,
    Failed(io::Error),
}

impl Inner {
    pub(super) fn read_plain(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut reading = lock(&self.reading);
        if reading.stash_pos < reading.stash.len() {
            let n = buf.len().min(reading.stash.len() - reading.stash_pos);
            buf[..n].copy_from_slice(&reading.stash[reading.stash_pos..reading.stash_pos + n]);
            reading.stash_pos += n;
            if reading.stash_pos == reading.stash.len() {
                reading.stash = Vec::new();
                reading.stash_pos = 0;
            }
            return Ok(n);
        }
        self.read_locked(&mut reading, buf)
    }

    /// Decrypts into `buf`, reading the socket when TLS needs more; the caller holds the
    /// read side's lock.
    pub(super) fn read_locked(
        &self,
        reading: &mut ReadBuffer,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        loop {
            let step = match reading.deferred.take() {
                Some(step) => step,
                None => self.decrypt(buf),
            };
            match step {
                Step::Data(mut n) => {
                    // Records that are already here go into the same buffer: a server that
                    // sends small records then costs the caller one call per socket read,
                    // not one per record (20 MiB of 1-byte records: 20 million stdout
                    // writes otherwise).
                    while n < buf.len() && self.tls().get_ref().pending_inbound() > 0 {
                        match self.decrypt(&mut buf[n..]) {
                            Step::Data(more) => n += more,
                            Step::Need => break,
                            other => {
                                reading.deferred = Some(other);
                                break;
                            }
                        }
                    }
                    self.note_data(Some(&self.counters.bytes_in), n);
                    return Ok(n);
                }
                Step::Need => {}
                Step::End { .. } if self.stopping() => return Ok(0),
                Step::End { at_eof, cut } => return self.read_ended(at_eof, cut),
                Step::Failed(e) => {
                    self.flags.tls_failed.store(true, Ordering::SeqCst);
                    let error = Error::tls(&self.target, &e);
                    self.record_error(&error);
                    self.progressed();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
            if self.stopping() {
                return Ok(0);
            }
            match self.read_socket(reading) {
                Ok(()) => self.progressed(),
                Err(_) if self.stopping() => return Ok(0),
                // A read timeout the caller set on the socket: not the connection's failure,
                // named like a write's.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(e.kind(), self.io_error(Operation::Read, e)));
                }
                Err(e) => {
                    let error = self.io_error(Operation::Read, e);
                    self.record_error(&error);
                    self.progressed();
                    let kind = match &error {
                        Error::Io { source, .. } => source.kind(),
                        _ => io::ErrorKind::Other,
                    };
                    return Err(io::Error::new(kind, error));
                }
            }
        }
    }

    /// One decryption into `buf` from what the transport holds, without touching the
    /// socket's read side. What TLS wrote meanwhile (a KeyUpdate's answer, a renegotiation
    /// message) is queued in order and written only as far as the socket takes it now: a
    /// reader never waits on the socket for a writer's data, since the server may itself be
    /// blocked writing to us and read nothing until we read (see the module docs of
    /// `stream` for who waits on whom).
    pub(super) fn decrypt(&self, buf: &mut [u8]) -> Step {
        let (step, answered) = {
            let mut tls = self.tls();
            // Every caller holds the read side: the transport may receive for TLS.
            tls.get_mut().allow_direct(true);
            let result = tls.read(buf);
            tls.get_mut().allow_direct(false);
            let answered = tls.get_ref().has_outbound();
            if answered {
                self.out.push_answer(tls.get_mut().outbound_buffer());
            }
            let step = match result {
                Ok(0) => Step::End {
                    at_eof: tls.get_ref().is_eof(),
                    cut: tls.get_ref().inside_record(),
                },
                Ok(n) => Step::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Need,
                Err(e) => Step::Failed(e),
            };
            (step, answered)
        };
        if answered {
            if self.out.pending_answers() > OUTBOUND_LIMIT {
                // A server that asks for answers and never reads them (a KeyUpdate flood):
                // past the limit the reader waits for the socket, so it stops reading and the
                // server's writes wait in turn. Only our own answers count: a server that
                // reads at all takes them long before (one KeyUpdate per 64 KiB it sends is
                // 27 bytes per 64 KiB). A failure shows at the next write.
                let mark = self.out.push(&[], 0);
                let _ = self.out.flush_to(&self.socket, mark, true);
            } else {
                self.out.try_flush(&self.socket);
            }
        }
        step
    }

    /// Waits until a read would find something without waiting for the socket: plaintext
    /// or an end kept from an earlier read, ciphertext the transport holds, or a readable
    /// socket (data, its end, our own shutdown). Only for a caller whose last read did not
    /// fill its buffer, so TLS holds no decrypted record part. A failure is left for the
    /// read that follows, which meets it again and reports it.
    pub(super) fn wait_readable(&self) {
        let reading = lock(&self.reading);
        let ready = reading.stash_pos < reading.stash.len()
            || reading.deferred.is_some()
            || !reading.buf.is_empty()
            || self.stopping()
            || self.tls().get_ref().pending_inbound() > 0;
        if !ready {
            let _ = self.recv(&mut [0u8; 1], true);
        }
    }

    /// TLS reported the end of the server's stream. The transport shows TLS the TCP end only
    /// after everything before it was decrypted, so an end while it is not at EOF is the
    /// server's close_notify, and one after it a truncation.
    pub(super) fn read_ended(&self, at_eof: bool, cut: bool) -> io::Result<usize> {
        if self.flags.tls_failed.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Error::Tls {
                    target: self.target.clone(),
                    reason: "the TLS session had already failed".into(),
                    alert: None,
                },
            ));
        }
        if !at_eof {
            if !self
                .flags
                .close_notify_received
                .swap(true, Ordering::SeqCst)
            {
                log::debug!("{} sent close_notify", self.target);
                self.progressed();
            }
            return Ok(0);
        }
        if !cut
            && self.flags.fast_closing.load(Ordering::SeqCst)
            && self.flags.close_notify_mark.load(Ordering::SeqCst) > 0
        {
            // A fast close takes the server's FIN after our close_notify as its answer:
            // everything before it was whole and was delivered.
            if !self.flags.peer_fin.swap(true, Ordering::SeqCst) {
                log::debug!("{} closed TCP after our close_notify", self.target);
                self.progressed();
            }
            return Ok(0);
        }
        let how = if cut {
            Truncation::MidRecord
        } else if self.flags.close_notify_mark.load(Ordering::SeqCst) > 0 {
            // Seen with nginx, which never answers close_notify: everything up to the FIN
            // was whole, but nothing says it was all the server meant to send.
            Truncation::Unanswered
        } else {
            Truncation::NoCloseNotify
        };
        let error = Error::Truncated {
            target: self.target.clone(),
            how,
        };
        if !self.flags.peer_eof.swap(true, Ordering::SeqCst) {
            log::warn!("{error}");
            self.progressed();
        }
        Err(io::Error::new(io::ErrorKind::UnexpectedEof, error))
    }

    /// One socket read, fed to TLS: data, or the end of the stream. Small reads go through
    /// the stack, so an idle connection holds no read buffer; while data flows the reader
    /// and the transport trade two large buffers, so the ciphertext is not copied once more
    /// on its way to TLS.
    pub(super) fn read_socket(&self, reading: &mut ReadBuffer) -> io::Result<()> {
        // Taken into a binding: the TLS lock must be released before the socket is touched.
        let starved = self.tls().get_mut().take_starved();
        match starved {
            Starved::Declined => {}
            Starved::Failed(e) => return Err(e),
            // TLS receives the record itself once it is there; an end reads as 0 here too,
            // and then goes through the read below, which tells the server's FIN from ours.
            Starved::Drained => {
                if self.recv(&mut [0u8; 1], true)? > 0 {
                    return Ok(());
                }
            }
        }
        if reading.buf.is_empty() {
            // Zeroed here only: 4 KiB cleared per 64 KiB read costs 1% while data flows.
            let mut small = [0u8; SMALL_READ];
            let n = self.recv(&mut small, false)?;
            self.fed(reading, n, Some(&small))
        } else {
            let n = self.recv(&mut reading.buf, false)?;
            self.fed(reading, n, None)
        }
    }

    /// Hands the `n` bytes a socket read brought to TLS (from `small`, or else from the
    /// reader's large buffer) and sizes the next read.
    fn fed(&self, reading: &mut ReadBuffer, n: usize, small: Option<&[u8]>) -> io::Result<()> {
        let size = small.map_or(reading.buf.len(), <[u8]>::len);
        if n == 0 && self.stopping() {
            // Our own shutdown(Read) reads as 0 too; the flag set before it tells them apart.
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        {
            let mut tls = self.tls();
            if n == 0 {
                tls.get_mut().feed_eof();
            } else if let Some(small) = small {
                // A burst's large buffers, drained by now, are not kept for a trickle.
                tls.get_mut().shrink();
                tls.get_mut().feed(&small[..n]);
            } else {
                tls.get_mut().feed_buffer(&mut reading.buf, n);
            }
            if reading.size.update(size, n) && !reading.size.is_large() {
                reading.buf = Vec::new();
                tls.get_mut().shrink();
            }
        }
        // Small reads go through the stack: only a large one keeps a buffer here.
        let want = if reading.size.is_large() {
            LARGE_READ
        } else {
            0
        };
        // What the transport traded back may be of any length: sized outside the TLS lock.
        if reading.buf.len() != want {
            reading.buf.resize(want, 0);
        }
        Ok(())
    }
}

impl Inner {
    /// One socket read. While ciphertext waits that no thread is writing (an answer the full
    /// socket did not take, what a timed-out write left), the read wakes every few
    /// milliseconds to offer it to the socket again, without waiting: a server that waits
    /// for our handshake message reads, so the socket soon takes it, and nobody else may be
    /// there to write it. The socket's read timeout (the caller's, or a waiting close's) is
    /// kept as the bound and restored after.
    /// With `peek`, it waits until the socket is readable and leaves the bytes there.
    fn recv(&self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        // The timeout found on the socket and the deadline it sets, once this read changed it.
        let mut saved: Option<(Option<Duration>, Option<Instant>)> = None;
        let mut interval = POLL_FIRST;
        let result = loop {
            let owed = self.out.orphaned() && {
                self.out.try_flush(&self.socket);
                self.out.orphaned()
            };
            if owed || saved.is_some() {
                let (_, deadline) = *saved.get_or_insert_with(|| {
                    let timeout = self.socket.read_timeout().unwrap_or(None);
                    (timeout, timeout.map(|t| Instant::now() + t))
                });
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left == Some(Duration::ZERO) {
                    break Err(io::ErrorKind::WouldBlock.into());
                }
                let wait = match (owed, left) {
                    (true, Some(left)) => Some(left.min(interval)),
                    (true, None) => Some(interval),
                    (false, left) => left,
                };
                let _ = self
                    .socket
                    .set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))));
            }
            let got = if peek {
                self.socket.peek(buf)
            } else {
                (&*self.socket).read(buf)
            };
            match got {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if owed && is_timeout(e.kind()) => {
                    interval = (interval * 2).min(POLL_MAX);
                }
                other => break other,
            }
        };
        if let Some((timeout, _)) = saved {
            let _ = self.socket.set_read_timeout(timeout);
        }
        result
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_plain(buf)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_plain(buf)
    }
}
