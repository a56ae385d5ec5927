//! The connection's state that every [`Stream`](crate::Stream) handle shares, and the small
//! steps the read, write and close paths all take on it.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::tls::TlsStream;

use super::ReadBuffer;
use crate::Error;
use crate::config::{CloseMode, OnClose};
use crate::error::{Alert, ErrorKind, Operation};
use crate::outbound::Outbound;
use crate::report::CloseReport;
use crate::session::Session;
use crate::transport::MemoryTransport;

/// The connection's state, shared by every handle [`Stream::try_clone`](crate::Stream::try_clone) made; dropping the
/// last handle drops it, which closes.
pub(crate) struct Inner {
    pub(super) target: String,
    /// Shared with the transport, which receives large records from it (never waiting).
    pub(super) socket: Arc<TcpStream>,
    pub(super) tls: Mutex<TlsStream<MemoryTransport>>,
    /// Held by the one thread reading the socket, with what it reads into.
    pub(super) reading: Mutex<ReadBuffer>,
    /// Shared with the transport, which sends a writer's ciphertext itself while it is idle.
    pub(super) out: Arc<Outbound>,
    /// Bumped whenever the read side makes progress (ciphertext fed, an end seen) or the
    /// close starts: writers waiting for a handshake message and a waiting close watch it.
    pub(super) progress: Mutex<u64>,
    pub(super) progressed: Condvar,
    pub(super) flags: Flags,
    pub(super) counters: Counters,
    /// The first error's message and, if the server sent one, its alert.
    pub(super) first_error: Mutex<Option<(String, ErrorKind, Option<Alert>)>>,
    pub(super) closing: Mutex<CloseState>,
    pub(super) closed: Condvar,
    pub(super) close_timeout: Duration,
    pub(super) close_mode: CloseMode,
    /// [`Config::with_on_close`](crate::Config::with_on_close), called once with the report of the first close.
    pub(super) on_close: Mutex<Option<OnClose>>,
    pub(super) session: Session,
}

#[derive(Default)]
pub(super) struct Flags {
    /// Set before our own `shutdown(Read)`, so a read of 0 is told from the server's FIN.
    pub(super) stopping: AtomicBool,
    /// No more application data may be encrypted: close_notify is coming or sent.
    pub(super) write_closed: AtomicBool,
    /// Where our close_notify ends in the outbound queue, once it is made (0 before): a
    /// server may answer it before our write returns, and a second closing thread (the half
    /// close, then the close) waits for that same write rather than making another.
    pub(super) close_notify_mark: AtomicU64,
    pub(super) close_notify_sent: AtomicBool,
    pub(super) close_notify_received: AtomicBool,
    /// The server's TCP stream ended without close_notify.
    pub(super) peer_eof: AtomicBool,
    /// The server's TCP stream ended, whole, after a fast close queued our close_notify:
    /// its answer, not a truncation.
    pub(super) peer_fin: AtomicBool,
    /// A fast close has begun: from its close_notify on, the server's FIN is its answer (a
    /// half-close alone waits for the server's close_notify).
    pub(super) fast_closing: AtomicBool,
    /// The TLS session hit a fatal error: no close_notify can follow, and an end TLS reports
    /// later is not the server's close_notify.
    pub(super) tls_failed: AtomicBool,
}

pub(super) struct Counters {
    pub(super) bytes_in: AtomicU64,
    pub(super) bytes_dropped: AtomicU64,
    pub(super) born: Instant,
    /// Nanoseconds from `born` to the last application data read or written.
    pub(super) last_data: AtomicU64,
}

pub(super) enum CloseState {
    Open,
    Closing,
    Closed(CloseReport),
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these half-updated in a way that matters more than
    // closing the connection, so a poisoned lock is taken as it is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// Closes as [`Stream::close`](crate::Stream::close) does, and hands the first report to the program's
    /// callback, if it gave one.
    pub(super) fn close_and_report(&self) -> CloseReport {
        let report = self.close();
        // Taken out of the lock first: a callback may close again (it gets the same report).
        let callback = lock(&self.on_close).take();
        if let Some(OnClose(callback)) = callback {
            callback(&report);
        }
        report
    }

    pub(super) fn close_notify_received(&self) -> bool {
        self.flags.close_notify_received.load(Ordering::SeqCst)
    }

    pub(super) fn tls(&self) -> MutexGuard<'_, TlsStream<MemoryTransport>> {
        lock(&self.tls)
    }

    /// Counts `n` bytes (sent bytes are counted by the outbound queue as it writes them) and
    /// remembers when data last moved.
    pub(super) fn note_data(&self, counter: Option<&AtomicU64>, n: usize) {
        if let Some(counter) = counter {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        let nanos = u64::try_from(self.counters.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.last_data.fetch_max(nanos, Ordering::Relaxed);
    }

    pub(super) fn stopping(&self) -> bool {
        self.flags.stopping.load(Ordering::SeqCst)
    }

    /// Wakes whoever waits on the read side's progress.
    pub(super) fn progressed(&self) {
        *lock(&self.progress) += 1;
        self.progressed.notify_all();
    }

    pub(super) fn record_error(&self, error: &Error) {
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some((
                crate::format::with_causes(error),
                error.kind(),
                error.alert(),
            ));
        }
    }

    /// Moves what TLS wrote into the outbound queue; call with the TLS lock held, so the
    /// queue keeps TLS's order. Returns the mark to flush to, if anything was queued.
    pub(super) fn queue_tls_output(&self, tls: &mut TlsStream<MemoryTransport>) -> Option<u64> {
        self.queue_tls_data(tls, 0)
    }

    /// Like [`queue_tls_output`](Self::queue_tls_output), for ciphertext that carries
    /// `plain` bytes of application data.
    pub(super) fn queue_tls_data(
        &self,
        tls: &mut TlsStream<MemoryTransport>,
        plain: usize,
    ) -> Option<u64> {
        // With `plain` > 0 and nothing left, the transport sent it all: the plaintext is
        // still counted by the queue.
        if !tls.get_ref().has_outbound() && plain == 0 {
            return None;
        }
        // The transport's buffer goes to the queue and the queue's empty one comes back: no
        // copy and no allocation per write while data flows.
        Some(self.out.push_from(tls.get_mut().outbound_buffer(), plain))
    }

    pub(super) fn io_error(&self, op: Operation, source: io::Error) -> Error {
        Error::Io {
            target: self.target.clone(),
            op,
            source,
        }
    }

    pub(super) fn closed_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, Error::Closed)
    }
}

impl Drop for Inner {
    /// Closes gracefully with the configured mode, bounded by the close timeout, when the
    /// last handle goes.
    fn drop(&mut self) {
        self.close_and_report();
    }
}
