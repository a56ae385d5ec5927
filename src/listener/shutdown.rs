//! The [`Listener`](super::Listener)'s shutdown, on the caller's thread: stop accepting,
//! close every open connection at once (each on a short-lived closer thread, since a close
//! waits up to the close timeout for its client), let handshakes under way finish or cut them
//! off at the drain timeout, and collect one report per connection.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{info, warn};

use super::{CLOSER_STACK, HANDLER_GRACE, Phase, Shared, State, lock};
use crate::Stream;
use crate::connection_report::ConnectionReport;

impl Shared {
    /// The shutdown: stop accepting, cut handshakes off, close every open connection at
    /// once, collect the reports.
    pub(super) fn drain(
        self: &Arc<Self>,
        accepting: &Mutex<Option<JoinHandle<()>>>,
    ) -> Vec<ConnectionReport> {
        let started = Instant::now();
        {
            // One step under the lock: every connection open now is drained and reported,
            // also one that sees the flag and closes itself before the loop below.
            let mut state = lock(&self.state);
            self.stopping.store(true, Ordering::SeqCst);
            for slot in state.slots.values_mut() {
                slot.draining = true;
            }
        }
        self.changed.notify_all();
        self.wake_accept();
        if let Some(handle) = lock(accepting).take() {
            let _ = handle.join();
        }
        let close_timeout = self.config.close_timeout();
        let mut closing = Vec::new();
        {
            let mut state = lock(&self.state);
            info!(
                "shutting down {}: draining {} connections",
                self.local_addr,
                state.slots.len()
            );
            for (&id, slot) in state.slots.iter_mut() {
                slot.draining = true;
                // A handshake under way is left to finish (a TLS 1.3 client whose side is
                // done waits for nothing more and would read a bare FIN as a truncation);
                // its thread then closes it as a shutdown does. Those still unfinished at
                // the drain timeout are cut off below.
                if let Phase::Open(stream) = &slot.phase {
                    if let Ok(handle) = stream.try_clone() {
                        closing.push((id, handle));
                    }
                }
            }
        }
        let mut inline = Vec::new();
        for (id, stream) in closing {
            let shared = Arc::clone(self);
            let spawned = thread::Builder::new()
                .name("gracetls-close".into())
                .stack_size(CLOSER_STACK)
                .spawn(move || shared.close_one(id, &stream));
            if let Err(e) = spawned {
                // Out of threads: closed here, after the others have started.
                warn!("no thread to close a connection during the shutdown: {e}");
                inline.push(id);
            }
        }
        for id in inline {
            let stream = match &lock(&self.state).slots.get(&id).map(|s| &s.phase) {
                Some(Phase::Open(stream)) => stream.try_clone().ok(),
                _ => None,
            };
            if let Some(stream) = stream {
                self.close_one(id, &stream);
            }
        }
        let mut state = self.wait_drained(started + close_timeout);
        for slot in state.slots.values_mut().filter(|s| s.draining) {
            if let Phase::Handshake(socket) = &mut slot.phase {
                if let Some(socket) = socket.take() {
                    slot.cut = true;
                    let _ = socket.shutdown(Shutdown::Both);
                }
            }
        }
        drop(state);
        let mut state = self.wait_drained(started + close_timeout + HANDLER_GRACE);
        let mut reports = std::mem::take(&mut state.drained);
        // Connections whose handler has not returned: the close's report if a closer made
        // one, and a word about the handler.
        for slot in state.slots.values_mut().filter(|s| s.draining) {
            slot.draining = false;
            // Reported here, and not again when the handler returns at last.
            slot.reported = true;
            reports.push(ConnectionReport {
                peer_addr: slot.peer,
                duration: slot.accepted.elapsed(),
                close: slot.closed.clone(),
                handshake_error: matches!(slot.phase, Phase::Handshake(_)).then(|| {
                    "the handshake had not finished when the drain timeout passed".to_string()
                }),
                handler_error: Some("the handler had not returned when the shutdown ended".into()),
            });
        }
        drop(state);
        info!(
            "shut down in {} ms: {} connections, {} clean",
            started.elapsed().as_millis(),
            reports.len(),
            reports
                .iter()
                .filter(|r| r.outcome() == crate::Outcome::Clean)
                .count()
        );
        reports
    }

    /// Waits until every connection the shutdown drains has ended, or `deadline`.
    fn wait_drained(&self, deadline: Instant) -> MutexGuard<'_, State> {
        let mut state = lock(&self.state);
        while state.slots.values().any(|s| s.draining) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state
    }

    /// A closer thread of the shutdown: the close, then its report into the slot (for a
    /// handler that does not return).
    fn close_one(&self, id: u64, stream: &Stream) {
        let report = stream.close();
        if let Some(slot) = lock(&self.state).slots.get_mut(&id) {
            slot.closed = Some(report);
        }
        self.changed.notify_all();
    }

    /// Wakes the accept thread out of `accept`: shutting the listening socket down makes a
    /// blocked `accept` fail at once on Linux. Where it does not, a connection to ourselves
    /// does it (the loop sees the flag and drops it).
    fn wake_accept(&self) {
        let Some(waker) = lock(&self.waker).take() else {
            return;
        };
        let shut = socket2::SockRef::from(&waker).shutdown(Shutdown::Both);
        if shut.is_err() || !crate::platform::SHUTDOWN_WAKES_ACCEPT {
            let mut addr = self.local_addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }
}
