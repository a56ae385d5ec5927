//! The accept thread and the connection threads: the accept loop waits for a free slot and
//! a client, and each connection's thread runs the handshake, the program's handler and the
//! close, then gives its slot back and its report to whoever waits for it.

use super::*;

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(super) fn accept_loop(self: Arc<Self>, socket: &TcpListener) {
        let max = self.config.max_connections();
        loop {
            {
                let mut state = lock(&self.state);
                while state.slots.len() >= max && !self.stopping() {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
            if self.stopping() {
                return;
            }
            let (connection, peer) = match socket.accept() {
                Ok(accepted) => accepted,
                Err(_) if self.stopping() => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or memory, or a client gone before we took it: wait
                    // a little (a shutdown ends the wait) rather than spin.
                    warn!("accept on {} failed: {e}", self.local_addr);
                    self.pause(ACCEPT_BACKOFF);
                    continue;
                }
            };
            if self.stopping() {
                // Accepted as the shutdown began: never served, closed without TLS.
                return;
            }
            self.start_connection(connection, peer);
        }
    }

    fn pause(&self, pause: Duration) {
        let state = lock(&self.state);
        if !self.stopping() {
            let _ = self.changed.wait_timeout(state, pause);
        }
    }

    fn start_connection(self: &Arc<Self>, socket: TcpStream, peer: SocketAddr) {
        let accepted = Instant::now();
        let id = {
            let mut state = lock(&self.state);
            let id = state.next_id;
            state.next_id += 1;
            state.slots.insert(
                id,
                Slot {
                    peer,
                    accepted,
                    phase: Phase::Handshake(socket.try_clone().ok()),
                    // Accepted as the shutdown began: drained and reported with the others.
                    draining: self.stopping(),
                    closed: None,
                    reported: false,
                    cut: false,
                },
            );
            id
        };
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("gracetls-conn".into())
            .stack_size(self.config.thread_stack_size())
            .spawn(move || shared.serve(id, socket));
        if let Err(e) = spawned {
            warn!("no thread for the connection from {peer}: {e}; closing it");
            lock(&self.state).slots.remove(&id);
            self.pause(ACCEPT_BACKOFF);
        }
    }

    /// A connection's thread: handshake, handler, close, report.
    fn serve(&self, id: u64, socket: TcpStream) {
        let stream = match Stream::accept(&self.config, socket) {
            Ok(stream) => stream,
            Err(e) => {
                let cut = lock(&self.state).slots.get(&id).is_some_and(|s| s.cut);
                let text = if cut {
                    "the handshake had not finished when the drain timeout passed".to_string()
                } else {
                    crate::unversioned::with_causes(&e)
                };
                info!("handshake with a client failed: {text}");
                self.finish(id, None, Some(text), None);
                return;
            }
        };
        let run = {
            let mut state = lock(&self.state);
            if let (Some(slot), Ok(handle)) = (state.slots.get_mut(&id), stream.try_clone()) {
                slot.phase = Phase::Open(handle);
            }
            // A handshake that ended just as the shutdown began: it was not seen open, so
            // it is closed here rather than served.
            !self.stopping()
        };
        let mut handler_error = None;
        if run {
            handler_error = match catch_unwind(AssertUnwindSafe(|| (self.handler)(&stream))) {
                Ok(Ok(())) => None,
                // A write the shutdown's close refused: the close is the story, not the
                // handler.
                Ok(Err(e)) if self.stopping() && is_closed(&e) => None,
                Ok(Err(e)) => Some(format!("the handler failed: {e}")),
                Err(_) => Some("the handler panicked".to_string()),
            };
            if let Some(text) = &handler_error {
                warn!("{}: {text}", stream.target());
            }
        }
        let report = stream.close();
        self.finish(id, Some(report), None, handler_error);
    }

    fn finish(
        &self,
        id: u64,
        close: Option<CloseReport>,
        handshake_error: Option<String>,
        handler_error: Option<String>,
    ) {
        let (report, reported) = {
            let state = lock(&self.state);
            let Some(slot) = state.slots.get(&id) else {
                return;
            };
            let report = ConnectionReport {
                peer_addr: slot.peer,
                duration: slot.accepted.elapsed(),
                close,
                handshake_error,
                handler_error,
            };
            (report, slot.reported)
        };
        // The program hears of the end while the connection still holds its slot: when
        // `open_connections` drops, its report has been delivered.
        if !reported {
            if let Some(callback) = self.config.on_report_callback() {
                callback(&report);
            }
        }
        let mut state = lock(&self.state);
        if state.slots.remove(&id).is_some_and(|slot| slot.draining) {
            state.drained.push(report);
        }
        drop(state);
        self.changed.notify_all();
    }
}

/// Whether `e` is a write refused because the connection was closed.
fn is_closed(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .is_some_and(|inner| matches!(inner, Error::Closed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send_sync() {
        fn is<T: Send + Sync>() {}
        is::<Listener>();
        is::<ConnectionReport>();
        is::<ServerConfig>();
    }

    #[test]
    fn a_refused_write_is_told_from_other_errors() {
        let closed = io::Error::new(io::ErrorKind::BrokenPipe, Error::Closed);
        assert!(is_closed(&closed));
        assert!(!is_closed(&io::Error::from(io::ErrorKind::BrokenPipe)));
    }
}
