//! The close of a [`Stream`], from any thread, bounded by the close timeout, with no thread
//! of its own to join. The sequence and why each step is there: docs/design.md, "The close,
//! step by step".

use std::io;
use std::net::Shutdown;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::{CloseState, Inner, lock};
use crate::Error;
use crate::acked::{Acked, acked};
use crate::config::CloseMode;
use crate::format::format_duration;
use crate::outbound::is_timeout;
use crate::report::{CloseReport, Outcome};

/// How long past the close timeout the close waits for a reader to leave the read side: the
/// shutdown that wakes it has been made, so this is scheduling, not the network.
const DRAIN_GRACE: Duration = Duration::from_millis(250);

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

        let first = lock(&self.first_error).clone();
        let error = first.as_ref().map(|(message, _, _)| message.clone());
        let outcome = if timed_out {
            Outcome::CloseTimeout
        } else if self.flags.tls_failed.load(Ordering::SeqCst) {
            Outcome::Error
        } else if self.flags.peer_eof.load(Ordering::SeqCst) {
            // The peer's TCP stream ended without close_notify: that is how it ended, also
            // when our close_notify then met a reset (a peer that closed with our data
            // unread, such as TLS 1.3 session tickets); the socket error stays in the report.
            Outcome::Truncated
        } else if error.is_some() {
            Outcome::Error
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
            error_kind: first.as_ref().map(|&(_, kind, _)| kind),
            alert: first.and_then(|(_, _, alert)| alert),
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
    pub(super) fn peer_ended(&self) -> bool {
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
                            alert: None,
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
                let error = self.io_error(crate::error::Operation::WriteCloseNotify, e);
                self.record_error(&error);
                CloseNotify::Failed(error.to_string())
            }
        };
        let _ = self.socket.shutdown(Shutdown::Write);
        sent
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
