//! The close of a [`Stream`], from any thread, bounded by the close timeout, with no thread
//! of its own to join. The sequence and why each step is there: docs/design.md, "The close,
//! step by step".

use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::{PoisonError, TryLockError};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::{CloseState, Inner, lock};
use crate::Error;
use crate::acked::{Acked, acked};
use crate::config::{CloseMode, format_duration};
use crate::outbound::is_timeout;
use crate::read_size::SMALL_READ;
use crate::report::{CloseReport, Outcome};

/// How long past the close timeout the close waits for a reader to leave the read side: the
/// shutdown that wakes it has been made, so this is scheduling, not the network.
const DRAIN_GRACE: Duration = Duration::from_millis(250);
/// Most plaintext a waiting close keeps for readers that have not taken it yet.
const STASH_LIMIT: usize = 1024 * 1024;

impl Inner {
    /// Closes gracefully with the configured [`CloseMode`], bounded by the close timeout, and
    /// reports how it went. Callable from any thread, also while others are blocked in
    /// `read` (it then returns `Ok(0)`) or `write` (it returns an error). Every call returns
    /// the report of the first; a second caller waits for it.
    pub fn close(&self) -> CloseReport {
        {
            let mut state = lock(&self.closing);
            loop {
                match &*state {
                    CloseState::Closed(report) => return report.clone(),
                    CloseState::Closing => {
                        state = self
                            .closed
                            .wait(state)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    CloseState::Open => {
                        *state = CloseState::Closing;
                        break;
                    }
                }
            }
        }
        let report = self.run_close(self.close_mode);
        *lock(&self.closing) = CloseState::Closed(report.clone());
        self.closed.notify_all();
        report
    }

    /// The half-close: sends close_notify and a TCP FIN now, after what was written before,
    /// and leaves the read side open, so the server's data and its close_notify can still be
    /// read. Writing fails from here on. Bounded by the close timeout.
    ///
    /// `Ok` means our close_notify was handed to the socket (by this call or an earlier
    /// one), or the server had already sent its own and closed, so nothing is lost. An error
    /// says why it was not: the close timeout passed first (`TimedOut`), the connection or
    /// its TLS session had failed.
    pub fn shutdown_write(&self) -> io::Result<()> {
        if !self.flags.write_closed.swap(true, Ordering::SeqCst) {
            debug!("half-close of {}", self.target);
            // A writer waiting for the server's handshake message wakes and fails.
            self.progressed();
        }
        let deadline = Instant::now() + self.close_timeout;
        match self.send_close_notify(deadline) {
            CloseNotify::Sent | CloseNotify::PeerClosedFirst => Ok(()),
            CloseNotify::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "close_notify to {} not written within {}",
                    self.target,
                    format_duration(self.close_timeout)
                ),
            )),
            CloseNotify::Failed(text) => Err(io::Error::other(text)),
        }
    }

    fn run_close(&self, mode: CloseMode) -> CloseReport {
        let started = Instant::now();
        let deadline = started + self.close_timeout;
        let step = |what: &str| {
            debug!(
                "close +{:.3} ms: {what}",
                started.elapsed().as_secs_f64() * 1e3
            )
        };
        step(&format!("started ({mode:?})"));
        // Writes from now on fail; a writer waiting for the server's handshake message wakes.
        self.flags.write_closed.store(true, Ordering::SeqCst);
        if mode == CloseMode::Fast {
            self.flags.fast_closing.store(true, Ordering::SeqCst);
        }
        self.progressed();
        let mut timed_out = false;

        // 1. What was written before the close goes out first, while readers keep reading:
        //    a server that is writing may read only after its writes get through.
        let mark = self.out.push(&[], 0);
        match self
            .out
            .flush_until(&self.socket, mark, true, Some(deadline))
        {
            Ok(true) => step("written data sent"),
            Ok(false) => timed_out = true,
            Err(e) if is_timeout(e.kind()) => timed_out = true,
            Err(e) => step(&format!("written data not sent: {e}")),
        }
        // 2. close_notify and FIN. Readers keep reading: whatever the server still sends
        //    (an answer to our close_notify, say FTP's "211 Logout.") is delivered.
        let mut sent = false;
        if !timed_out {
            match self.send_close_notify(deadline) {
                CloseNotify::Sent => {
                    sent = true;
                    step("close_notify sent, write side shut");
                }
                CloseNotify::PeerClosedFirst => step("the server had closed first"),
                CloseNotify::Failed(e) => step(&format!("no close_notify: {e}")),
                CloseNotify::TimedOut => timed_out = true,
            }
        }
        // 3. The server's end, its data delivered to readers meanwhile: wait mode needs its
        //    close_notify (else the close times out); a fast close also takes its FIN, and
        //    the close timeout passing is no failure (the server owes no answer).
        if !timed_out && !self.peer_ended() && (sent || mode == CloseMode::Wait) {
            step("waiting for the server's end");
            let ended = self.await_peer_end(deadline);
            if mode == CloseMode::Wait {
                timed_out = !ended;
            } else if !ended {
                step("the server neither answered nor closed within the close timeout");
            }
        }
        // 4. Clean means acknowledged: without the server's close_notify, only its TCP's
        //    acknowledgement of our close_notify (and FIN) says it arrived. A reset after a
        //    lost segment, say, drops it unread; the kernel's count tells.
        let mut unconfirmed = None;
        if !timed_out && sent && !self.close_notify_received() {
            match self.await_acknowledgement(deadline) {
                Acked::All => step("our close_notify was acknowledged"),
                Acked::Unknown => step("this system does not say whether it was acknowledged"),
                other => {
                    step(&format!("our close_notify was not acknowledged: {other:?}"));
                    unconfirmed = Some(other);
                }
            }
        }
        if timed_out {
            warn!(
                "close of {} did not finish within {}; closing the socket hard",
                self.target,
                format_duration(self.close_timeout)
            );
            self.flags.stopping.store(true, Ordering::SeqCst);
            let _ = self.socket.shutdown(Shutdown::Both);
            self.out
                .fail(io::ErrorKind::BrokenPipe, "the connection was closed hard");
            self.progressed();
        } else {
            // The close has ended: every reader still blocked in recv returns now (Ok(0)).
            self.stop_reading();
        }
        if self.drain(deadline.max(Instant::now()) + DRAIN_GRACE) {
            step("what had arrived was read");
        } else {
            step("a reader held the read side past the close timeout; nothing drained");
        }

        let (error, alert) = lock(&self.first_error).clone().unzip();
        let outcome = if timed_out {
            Outcome::CloseTimeout
        } else if self.flags.tls_failed.load(Ordering::SeqCst) || error.is_some() {
            Outcome::Error
        } else if self.flags.peer_eof.load(Ordering::SeqCst) {
            Outcome::Truncated
        } else if let Some(acked) = unconfirmed {
            warn!(
                "close of {}: close_notify was sent but {} did not acknowledge it within {}: it may not have arrived",
                self.target,
                match acked {
                    Acked::Gone => "the connection was reset before the server's TCP",
                    _ => "the server's TCP",
                },
                format_duration(self.close_timeout)
            );
            Outcome::Unconfirmed
        } else {
            Outcome::Clean
        };
        let report = CloseReport {
            outcome,
            close_notify_sent: self.flags.close_notify_sent.load(Ordering::SeqCst),
            close_notify_received: self.flags.close_notify_received.load(Ordering::SeqCst),
            bytes_in: self.counters.bytes_in.load(Ordering::SeqCst),
            bytes_out: self.out.plain_written(),
            bytes_dropped: self.counters.bytes_dropped.load(Ordering::SeqCst),
            close_duration: started.elapsed(),
            error,
            alert: alert.flatten(),
        };
        info!(
            "closed {}: {}, close_notify {} / {}, in {} ms",
            self.target,
            outcome.name(),
            if report.close_notify_sent {
                "sent"
            } else {
                "not sent"
            },
            if report.close_notify_received {
                "received"
            } else {
                "not received"
            },
            report.close_duration.as_millis()
        );
        report
    }

    /// Polls the kernel until the server's TCP acknowledged everything we sent, the
    /// connection is gone, or `deadline` (asked at least once).
    fn await_acknowledgement(&self, deadline: Instant) -> Acked {
        let mut pause = Duration::from_millis(1);
        loop {
            let ends = self.session.local_addr.zip(self.session.peer_addr);
            let mut acked = acked(&self.socket, ends);
            if acked == Acked::Gone {
                // Out of the table without TIME_WAIT: the server closed first and acknowledged
                // our FIN (LAST_ACK done, everything acknowledged), or a reset ended it, which
                // leaves its error on the socket.
                let fin = self.flags.peer_fin.load(Ordering::SeqCst)
                    || self.flags.peer_eof.load(Ordering::SeqCst);
                if fin && matches!(self.socket.take_error(), Ok(None)) {
                    acked = Acked::All;
                }
            }
            if !matches!(acked, Acked::Pending(_)) || Instant::now() >= deadline {
                return acked;
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Whether the server's side has ended: its close_notify, its FIN, or a failure.
    fn peer_ended(&self) -> bool {
        self.flags.close_notify_received.load(Ordering::SeqCst)
            || self.flags.peer_eof.load(Ordering::SeqCst)
            || self.flags.peer_fin.load(Ordering::SeqCst)
            || self.flags.tls_failed.load(Ordering::SeqCst)
            || lock(&self.first_error).is_some()
    }

    /// Queues close_notify after everything TLS wrote before it, seals the queue (RFC 8446
    /// §6.1: nothing after close_notify, not even a KeyUpdate reply OpenSSL would still make),
    /// writes it, and shuts the socket for writing. A second caller (the half-close, then the
    /// close) waits for the same write, or tries it again if the first one timed out.
    fn send_close_notify(&self, deadline: Instant) -> CloseNotify {
        let mark = {
            let mut tls = self.tls();
            if self.flags.close_notify_sent.load(Ordering::SeqCst) {
                return CloseNotify::Sent;
            }
            if self.flags.tls_failed.load(Ordering::SeqCst) {
                return CloseNotify::Failed("the TLS session had failed".into());
            }
            match self.flags.close_notify_mark.load(Ordering::SeqCst) {
                0 => {
                    if let Err(e) = tls.shutdown() {
                        // A close that sends no close_notify is never clean (OpenSSL refuses
                        // while a handshake is under way: "shutdown while in init").
                        debug!("close_notify not made: {e}");
                        let error = Error::Tls {
                            target: self.target.clone(),
                            reason: format!(
                                "close_notify could not be sent: {}",
                                crate::error::tls_reason(&e.to_string()).0
                            ),
                        };
                        self.record_error(&error);
                        return CloseNotify::Failed(error.to_string());
                    }
                    let Some(mark) = self.queue_tls_output(&mut tls) else {
                        return CloseNotify::Failed("TLS made no close_notify".into());
                    };
                    self.out.seal();
                    self.flags.close_notify_mark.store(mark, Ordering::SeqCst);
                    mark
                }
                mark => mark,
            }
        };
        let sent = match self
            .out
            .flush_until(&self.socket, mark, true, Some(deadline))
        {
            Ok(true) => {
                self.flags.close_notify_sent.store(true, Ordering::SeqCst);
                debug!("close_notify sent to {}", self.target);
                CloseNotify::Sent
            }
            Ok(false) => return CloseNotify::TimedOut,
            Err(e) if is_timeout(e.kind()) => return CloseNotify::TimedOut,
            // The server said goodbye first and may close as soon as it did (nginx does): a
            // failed answer then loses nothing and is not an error.
            Err(e) if self.close_notify_received() => {
                debug!("close_notify answer not sent, the server had closed: {e}");
                CloseNotify::PeerClosedFirst
            }
            Err(e) => {
                let error = self.io_error("writing close_notify to", e);
                self.record_error(&error);
                CloseNotify::Failed(error.to_string())
            }
        };
        let _ = self.socket.shutdown(Shutdown::Write);
        sent
    }

    /// Waits until the server's side ends or `deadline`. A thread that is reading sees the end
    /// and wakes us; while none is, this thread reads, and keeps what it reads for the next
    /// `read` (up to [`STASH_LIMIT`]; past it, it stops reading and the server waits).
    fn await_peer_end(&self, deadline: Instant) -> bool {
        let mut scratch = vec![0u8; 16 * 1024];
        loop {
            if self.peer_ended() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let seen = *lock(&self.progress);
            let mut reading = match self.reading.try_lock() {
                Ok(reading) if reading.stash.len() < STASH_LIMIT => reading,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                _ => {
                    let progress = lock(&self.progress);
                    if *progress == seen {
                        let wait = left.min(Duration::from_millis(100));
                        let _ = self.progressed.wait_timeout(progress, wait);
                    }
                    continue;
                }
            };
            let _ = self
                .socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.read_locked(&mut reading, &mut scratch) {
                Ok(0) => return true,
                Ok(n) => {
                    reading.stash.extend_from_slice(&scratch[..n]);
                    drop(reading);
                    self.progressed();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// The flag, then `shutdown(Read)`: a reader blocked in recv returns, and knows the 0 is
    /// ours.
    fn stop_reading(&self) {
        self.flags.stopping.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(Shutdown::Read);
        self.progressed();
    }

    /// At the end of every close, reads what already arrived without waiting (the read side
    /// is shut, so an empty socket reads 0): unread bytes at close would make the kernel
    /// send a reset. Plaintext among them, and what the transport still held, is counted as
    /// dropped; a close_notify is recorded. It takes the read side's lock, so a reader still
    /// inside `read` (one the shutdown just woke) finishes, and is counted, before the report
    /// is made; but it waits for that lock only until `limit`, and says whether it got it.
    fn drain(&self, limit: Instant) -> bool {
        let mut reading = loop {
            match self.reading.try_lock() {
                Ok(reading) => break reading,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    if Instant::now() >= limit {
                        return false;
                    }
                    // The holder was just woken by the shutdown and leaves within a
                    // decryption: a short poll, not a wait on a signal it may never send.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        let _ = self.socket.set_nonblocking(true);
        // An idle reader holds no buffer of its own.
        let mut small = [0u8; SMALL_READ];
        let buf: &mut [u8] = if reading.buf.is_empty() {
            &mut small
        } else {
            &mut reading.buf
        };
        for _ in 0..64 {
            self.drop_decrypted();
            let n = match (&*self.socket).read(buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.tls().get_mut().feed(&buf[..n]);
        }
        self.drop_decrypted();
        true
    }

    /// Decrypts what the transport holds, counting the plaintext as dropped.
    fn drop_decrypted(&self) {
        let mut plain = [0u8; 4096];
        let mut tls = self.tls();
        loop {
            match tls.read(&mut plain) {
                Ok(0) => {
                    if !self.flags.tls_failed.load(Ordering::SeqCst) && !tls.get_ref().is_eof() {
                        self.flags
                            .close_notify_received
                            .store(true, Ordering::SeqCst);
                        debug!("close: the server's close_notify had arrived");
                    }
                    return;
                }
                Ok(k) => {
                    self.counters
                        .bytes_dropped
                        .fetch_add(k as u64, Ordering::SeqCst);
                }
                Err(_) => return,
            }
        }
    }
}

/// What became of our close_notify.
enum CloseNotify {
    /// Handed to the socket, by this call or an earlier one.
    Sent,
    /// Not written: the server had sent its close_notify and closed.
    PeerClosedFirst,
    /// Not written within the close timeout; it stays queued for a later try.
    TimedOut,
    /// Not made or not written; the text says why.
    Failed(String),
}
