//! A TLS connection driven by two threads, and its bounded close.
//!
//! TLS state lives behind one mutex and runs over a [`MemoryTransport`]; no thread ever holds
//! that lock across a socket call:
//!
//! - the **reader** blocks in `read()` on the socket (one descriptor, shared), then, under the lock,
//!   feeds the ciphertext and decrypts until `WouldBlock`, and delivers the plaintext as
//!   [`Event`]s after releasing it;
//! - the **writer** takes plaintext from a bounded channel, encrypts it under the lock, and
//!   writes the ciphertext after releasing it. It is the only thread that writes to the socket,
//!   so ciphertext the reader makes (a TLS 1.3 KeyUpdate reply, an alert) reaches the wire in
//!   the order TLS made it: the reader leaves it in the transport and wakes the writer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, Sender, TrySendError, bounded, select, unbounded,
};
use log::{debug, info, warn};
use native_tls::TlsStream;

use crate::Error;
use crate::config::{CloseMode, Config};
use crate::error::tls_reason;
use crate::report::{CloseReport, Outcome, Trigger};
use crate::target::parse_target;
use crate::transport::MemoryTransport;

/// How many chunks may wait in each direction before the sender blocks. With reads of up to
/// 64 KiB this bounds a connection's queued data to about half a MiB each way.
const QUEUE_CHUNKS: usize = 8;
/// Plaintext the writer encrypts under one hold of the lock and writes with one socket call,
/// when that much is already queued.
const BATCH_BYTES: usize = 256 * 1024;
/// One socket read while data flows: a full TLS record and more.
const LARGE_READ: usize = 64 * 1024;
/// What a reader keeps while data trickles or the connection is idle: one page. A read that
/// fills it means data is flowing, and the reader switches to [`LARGE_READ`]. With
/// thousands of mostly idle connections, a 64 KiB buffer each would be most of the memory.
const SMALL_READ: usize = 4 * 1024;
/// A reader with the large buffer gives it back after waiting this long for data: the one
/// wakeup a burst costs. Idle readers with the small buffer wait without a timeout.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// What the reader delivers, in the order it happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Plaintext from the server.
    Data(Vec<u8>),
    /// The server sent close_notify; everything it sent before was delivered. The server
    /// sends nothing more; answer with [`Connection::close`].
    PeerCloseNotify,
    /// The server's TCP stream ended without close_notify: what it sent may be truncated.
    PeerEof,
    /// The connection failed; no more data will come.
    Error(Error),
}

/// How the reader thread ended, for the close.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReaderEnd {
    /// Our own `shutdown(Read)` or hard close.
    Stopped,
    CloseNotify,
    Eof,
    Failed(String),
}

enum Control {
    /// Send everything queued, then acknowledge.
    Flush(Sender<()>),
    /// Send everything queued, then close_notify and a TCP FIN, then acknowledge.
    CloseNotify(Option<Sender<Result<(), String>>>),
}

struct Shared {
    target: String,
    tls: Mutex<TlsStream<MemoryTransport>>,
    /// One descriptor per connection, shared by the reader (the only one that reads while it
    /// runs), the writer (the only one that writes) and the close: `&TcpStream` reads and
    /// writes, so no `try_clone` copies are needed, which would triple the descriptors.
    socket: TcpStream,
    /// Set before our own `shutdown(Read)`, so the reader tells it from the server's FIN.
    stopping: AtomicBool,
    write_closed: AtomicBool,
    close_notify_sent: AtomicBool,
    close_notify_received: AtomicBool,
    /// The TLS session hit a fatal error: no close_notify can follow.
    tls_failed: AtomicBool,
    /// The writer waits for the reader to feed TLS (a TLS 1.2 renegotiation).
    writer_stalled: AtomicBool,
    /// The writer is waiting for work, holding no chunk: a close with an empty queue then
    /// has nothing to flush and skips that hand-off (10,000 closes at once, one each).
    writer_idle: AtomicBool,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Plaintext read by a fast close's final drain, after the reader stopped: not delivered.
    bytes_dropped: AtomicU64,
    /// When the connection started; [`last_data`](Self::last_data) counts from it.
    born: Instant,
    /// Nanoseconds from `born` to the last application data read from or written to the
    /// socket, for [`Connection::idle_time`].
    last_data: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    /// The TLS state. A panic elsewhere cannot leave it half-updated in a way that matters
    /// more than closing the connection, so a poisoned lock is taken as it is.
    fn tls(&self) -> MutexGuard<'_, TlsStream<MemoryTransport>> {
        self.tls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record_error(&self, error: &Error) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(error.to_string());
        }
    }

    fn note_data(&self) {
        let nanos = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_data.fetch_max(nanos, Ordering::Relaxed);
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            target: self.target.clone(),
            op,
            source,
        }
    }
}

/// A TLS client connection with its own reader and writer threads.
///
/// Data arrives as [`Event`]s on [`events`](Connection::events); [`send`](Connection::send)
/// works from any thread, also while the reader is blocked. [`close`](Connection::close) (and
/// `Drop`) sends close_notify with the bounded sequence described in the crate docs.
pub struct Connection {
    shared: Arc<Shared>,
    data_tx: Option<Sender<Vec<u8>>>,
    control_tx: Option<Sender<Control>>,
    stop_tx: Option<Sender<()>>,
    events_rx: Receiver<Event>,
    reader_done: Receiver<ReaderEnd>,
    reader_end: Option<ReaderEnd>,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    close_timeout: Duration,
    close_mode: CloseMode,
    closed: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.shared.target)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `target` (`HOST[:PORT]`, port 443 by default), trying every resolved
    /// address in turn, and completes the TLS handshake, all within the connect timeout.
    pub fn connect(config: &Config, target: &str) -> Result<Connection, Error> {
        let started = Instant::now();
        let deadline = started + config.get_connect_timeout();
        let (host, port) = parse_target(target)?;
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let connector = config.connector()?;
        let timeout = || Error::ConnectTimeout {
            target: target.clone(),
            timeout: config.get_connect_timeout(),
        };
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|source| Error::Resolve {
                host: host.clone(),
                source,
            })?
            .collect();
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut socket = None;
        for addr in &addrs {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timeout());
            }
            match TcpStream::connect_timeout(addr, remaining) {
                Ok(s) => {
                    debug!("tcp connected to {addr}");
                    socket = Some(s);
                    break;
                }
                Err(e) => {
                    debug!("tcp connect to {addr} failed: {e}");
                    last_error = e;
                }
            }
        }
        let mut socket = match socket {
            Some(s) => s,
            None if matches!(
                last_error.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
            {
                return Err(timeout());
            }
            None => {
                return Err(Error::Connect {
                    target,
                    source: last_error,
                });
            }
        };
        // Small writes (a line, a close_notify) must not wait for delayed ACKs.
        let _ = socket.set_nodelay(true);
        let name = config.get_servername().unwrap_or(&host).to_string();
        let tls = crate::handshake::handshake(
            &connector,
            &name,
            &mut socket,
            deadline,
            &target,
            timeout,
        )?;
        socket
            .set_read_timeout(None)
            .and_then(|()| socket.set_write_timeout(None))
            .map_err(|e| Error::Io {
                target: target.clone(),
                op: "setting up",
                source: e,
            })?;
        info!(
            "connected to {target} ({}) in {} ms",
            socket
                .peer_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string()),
            started.elapsed().as_millis()
        );
        Self::start(config, target, socket, tls)
    }

    fn start(
        config: &Config,
        target: String,
        socket: TcpStream,
        tls: TlsStream<MemoryTransport>,
    ) -> Result<Connection, Error> {
        let thread_error = |e: io::Error| Error::Setup {
            what: "a connection thread".into(),
            reason: e.to_string(),
        };
        let shared = Arc::new(Shared {
            target,
            tls: Mutex::new(tls),
            socket,
            stopping: AtomicBool::new(false),
            write_closed: AtomicBool::new(false),
            close_notify_sent: AtomicBool::new(false),
            close_notify_received: AtomicBool::new(false),
            tls_failed: AtomicBool::new(false),
            writer_stalled: AtomicBool::new(false),
            writer_idle: AtomicBool::new(false),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            bytes_dropped: AtomicU64::new(0),
            born: Instant::now(),
            last_data: AtomicU64::new(0),
            first_error: Mutex::new(None),
        });
        let (events_tx, events_rx) = bounded(QUEUE_CHUNKS);
        let (data_tx, data_rx) = bounded(QUEUE_CHUNKS);
        let (control_tx, control_rx) = unbounded();
        let (kick_tx, kick_rx) = bounded(1);
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let (done_tx, reader_done) = bounded(1);

        let reader = {
            let shared = Arc::clone(&shared);
            let events_tx = events_tx.clone();
            let stop_rx = stop_rx.clone();
            thread::Builder::new()
                .name("gracetls-reader".into())
                .stack_size(config.get_thread_stack_size())
                .spawn(move || {
                    let end = read_loop(&shared, &events_tx, &stop_rx, &kick_tx);
                    debug!("reader ended: {end:?}");
                    let _ = done_tx.send(end);
                })
                .map_err(thread_error)?
        };
        let writer = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("gracetls-writer".into())
                .stack_size(config.get_thread_stack_size())
                .spawn(move || {
                    let mut writer = Writer {
                        shared: &shared,
                        socket: &shared.socket,
                        kick_rx: &kick_rx,
                        batch: Vec::new(),
                        spare: Vec::new(),
                    };
                    writer.run(&data_rx, &control_rx, &events_tx, &stop_rx);
                })
                .map_err(thread_error)?
        };
        Ok(Connection {
            shared,
            data_tx: Some(data_tx),
            control_tx: Some(control_tx),
            stop_tx: Some(stop_tx),
            events_rx,
            reader_done,
            reader_end: None,
            reader: Some(reader),
            writer: Some(writer),
            close_timeout: config.get_close_timeout(),
            close_mode: config.get_close_mode(),
            closed: false,
        })
    }

    /// `host:port` of the server.
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// Data and ends from the server, in order. Clone it to read from another thread; keep
    /// reading it while a close runs, or data that arrives meanwhile waits (bounded) and the
    /// close can time out. The queue holds a few chunks: while nobody reads it, the reader
    /// stops reading the socket and the server's writes wait (backpressure, never loss).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events_rx
    }

    /// Queues `data` for the server. Blocks while the queue is full, that is while the server
    /// does not read. Fails once close_notify was sent or the connection failed.
    pub fn send(&self, data: &[u8]) -> Result<(), Error> {
        if self.shared.write_closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        match &self.data_tx {
            Some(tx) => tx.send(data.to_vec()).map_err(|_| Error::Closed),
            None => Err(Error::Closed),
        }
    }

    /// A handle to queue data from other threads, or to wait for room with
    /// `crossbeam_channel::Select`. The queue is bounded: a full queue means the server is not
    /// reading. Data queued after close_notify is dropped.
    pub fn sender(&self) -> Sender<Vec<u8>> {
        match &self.data_tx {
            Some(tx) => tx.clone(),
            // Only `close` takes the sender, and it consumes the connection.
            None => bounded(0).0,
        }
    }

    /// How long no application data has moved either way: since the last plaintext was read
    /// from the server or written to the socket. Zero while data waits to be sent, so a
    /// server that is slow to read does not count as quiet. For a program that ends a
    /// conversation once the server has gone quiet.
    pub fn idle_time(&self) -> Duration {
        let pending = !self.shared.writer_idle.load(Ordering::SeqCst)
            || self.data_tx.as_ref().is_some_and(|tx| !tx.is_empty());
        if pending {
            return Duration::ZERO;
        }
        let last = Duration::from_nanos(self.shared.last_data.load(Ordering::Relaxed));
        self.shared.born.elapsed().saturating_sub(last)
    }

    /// Half-close: after the queued data, sends close_notify and a TCP FIN, and keeps
    /// delivering the server's data until its close_notify or end of stream. Returns at once.
    pub fn shutdown_write(&self) {
        if self.shared.write_closed.swap(true, Ordering::SeqCst) {
            return;
        }
        debug!("half-close requested");
        if let Some(tx) = &self.control_tx {
            let _ = tx.send(Control::CloseNotify(None));
        }
    }

    /// Closes with the configured [`CloseMode`], bounded by the close timeout, and reports
    /// how it went. Data that arrives during the close is delivered to other holders of
    /// [`events`](Connection::events); if there are none, it is dropped.
    pub fn close(self) -> CloseReport {
        let mode = self.close_mode;
        self.close_as(Trigger::Requested, mode)
    }

    /// Like [`close`](Connection::close), naming what started the end and how to close.
    pub fn close_as(mut self, trigger: Trigger, mode: CloseMode) -> CloseReport {
        self.finish(trigger, mode)
    }

    fn finish(&mut self, trigger: Trigger, mode: CloseMode) -> CloseReport {
        self.closed = true;
        let started = Instant::now();
        let deadline = started + self.close_timeout;
        let step = |what: &str| {
            debug!(
                "close +{:.3} ms: {what}",
                started.elapsed().as_secs_f64() * 1e3
            )
        };
        step(&format!("started by {} ({mode:?})", trigger.name()));
        // Nobody else reads events: let the reader drop them instead of waiting for room.
        self.events_rx = bounded(0).1;
        self.collect_reader_end();
        let mut timed_out = false;

        // 1. Send what was queued, while the reader keeps reading: a server that is writing
        //    may read only after its writes get through. An idle writer with an empty queue
        //    has nothing to flush; a chunk it takes at this very moment still goes out before
        //    close_notify (the writer works in order), and one queued later came after the
        //    close began.
        let nothing_queued = self.shared.writer_idle.load(Ordering::SeqCst)
            && self.data_tx.as_ref().is_none_or(Sender::is_empty);
        if nothing_queued {
            step("nothing queued");
        } else if let Some(control) = &self.control_tx {
            let (ack_tx, ack_rx) = bounded(1);
            if control.send(Control::Flush(ack_tx)).is_ok() {
                match ack_rx.recv_deadline(deadline) {
                    Ok(()) => step("queued data sent"),
                    Err(RecvTimeoutError::Timeout) => timed_out = true,
                    Err(RecvTimeoutError::Disconnected) => step("writer already gone"),
                }
            }
        }
        // 2. Fast close: stop the reader. The flag goes first so it knows the 0 is ours.
        if !timed_out && mode == CloseMode::Fast && self.reader_end.is_none() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            let _ = self.shared.socket.shutdown(Shutdown::Read);
            step("shutdown(Read) called");
            timed_out = !self.wait_reader(deadline);
            step("reader stopped");
        }
        // 3. close_notify and FIN.
        if !timed_out
            && !self.shared.close_notify_sent.load(Ordering::SeqCst)
            && !self.shared.tls_failed.load(Ordering::SeqCst)
        {
            self.shared.write_closed.store(true, Ordering::SeqCst);
            if let Some(control) = &self.control_tx {
                let (ack_tx, ack_rx) = bounded(1);
                if control.send(Control::CloseNotify(Some(ack_tx))).is_ok() {
                    match ack_rx.recv_deadline(deadline) {
                        Ok(Ok(())) => step("close_notify sent, write side shut"),
                        Ok(Err(e)) => step(&format!("close_notify not sent: {e}")),
                        Err(RecvTimeoutError::Timeout) => timed_out = true,
                        Err(RecvTimeoutError::Disconnected) => step("writer already gone"),
                    }
                }
            }
        }
        // 4. Wait mode: the server's close_notify, delivering data meanwhile.
        if !timed_out && self.reader_end.is_none() {
            step("waiting for the server's close_notify");
            timed_out = !self.wait_reader(deadline);
        }
        if timed_out {
            warn!(
                "close of {} did not finish within {}; closing the socket hard",
                self.shared.target,
                crate::config::format_duration(self.close_timeout)
            );
            self.shared.stopping.store(true, Ordering::SeqCst);
            let _ = self.shared.socket.shutdown(Shutdown::Both);
        } else if mode == CloseMode::Fast {
            self.drain();
        }
        // 5. Release and join the threads; every blocking call they make is undone by now.
        self.data_tx = None;
        self.control_tx = None;
        self.stop_tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if self.reader_end.is_none() {
            // Wait mode ended by the writer failing: nothing more is expected.
            self.shared.stopping.store(true, Ordering::SeqCst);
            let _ = self.shared.socket.shutdown(Shutdown::Both);
            self.wait_reader(Instant::now() + Duration::from_secs(1));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        step("threads joined, socket closing");

        let error = self
            .shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let outcome = if timed_out {
            Outcome::CloseTimeout
        } else if matches!(self.reader_end, Some(ReaderEnd::Failed(_))) {
            Outcome::Error
        } else if self.reader_end == Some(ReaderEnd::Eof) {
            Outcome::Truncated
        } else if error.is_some() || trigger == Trigger::Error {
            Outcome::Error
        } else {
            Outcome::Clean
        };
        let report = CloseReport {
            trigger,
            outcome,
            close_notify_sent: self.shared.close_notify_sent.load(Ordering::SeqCst),
            close_notify_received: self.shared.close_notify_received.load(Ordering::SeqCst),
            bytes_in: self.shared.bytes_in.load(Ordering::SeqCst),
            bytes_out: self.shared.bytes_out.load(Ordering::SeqCst),
            bytes_dropped: self.shared.bytes_dropped.load(Ordering::SeqCst),
            close_duration: started.elapsed(),
            error,
        };
        info!(
            "closed {}: {} after {}, close_notify {} / {}, in {} ms",
            self.shared.target,
            outcome.name(),
            trigger.name(),
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

    fn collect_reader_end(&mut self) {
        if self.reader_end.is_none() {
            self.reader_end = self.reader_done.try_recv().ok();
        }
    }

    /// Waits for the reader to end; `false` if the deadline passed first.
    fn wait_reader(&mut self, deadline: Instant) -> bool {
        if self.reader_end.is_some() {
            return true;
        }
        match self.reader_done.recv_deadline(deadline) {
            Ok(end) => {
                self.reader_end = Some(end);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.reader_end = Some(ReaderEnd::Stopped);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// After a fast close, reads what already arrived without waiting (the read side is shut,
    /// so an empty socket reads 0): unread bytes at close would make the kernel send a reset.
    /// A close_notify among them is recorded.
    fn drain(&self) {
        let mut socket = &self.shared.socket;
        if socket.set_nonblocking(true).is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        for _ in 0..64 {
            match socket.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut tls = self.shared.tls();
                    tls.get_mut().feed(&buf[..n]);
                    let mut plain = [0u8; 4096];
                    loop {
                        match tls.read(&mut plain) {
                            Ok(k) if k > 0 => {
                                self.shared
                                    .bytes_dropped
                                    .fetch_add(k as u64, Ordering::SeqCst);
                            }
                            Ok(_) => {
                                self.shared
                                    .close_notify_received
                                    .store(true, Ordering::SeqCst);
                                debug!("close: the server's close_notify had arrived");
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }
}

impl Drop for Connection {
    /// Closes gracefully with the configured mode, bounded by the close timeout.
    fn drop(&mut self) {
        if !self.closed {
            let mode = self.close_mode;
            self.finish(Trigger::Requested, mode);
        }
    }
}

/// Delivers an event. `false` only when the close tore the connection down while the event
/// waited for room; with no receiver left the event is dropped, and reading goes on so a
/// waiting close still sees the server's close_notify.
fn deliver(events: &Sender<Event>, stop: &Receiver<()>, event: Event) -> bool {
    match events.try_send(event) {
        Ok(()) | Err(TrySendError::Disconnected(_)) => true,
        Err(TrySendError::Full(event)) => select! {
            send(events, event) -> _ => true,
            recv(stop) -> _ => false,
        },
    }
}

fn read_loop(
    shared: &Shared,
    events: &Sender<Event>,
    stop: &Receiver<()>,
    kick: &Sender<()>,
) -> ReaderEnd {
    // The socket reads into `buf`. While data flows (large reads), `buf` then goes to the
    // transport in exchange for its previous buffer, so the ciphertext is not copied; small
    // reads are copied, so an idle connection keeps one small buffer, not two. Either way
    // `buf` then serves as the decryption scratch, then as the next read buffer. `size` is
    // the length a read asks for.
    let mut size = SMALL_READ;
    let mut buf = vec![0u8; size];
    // The first pass feeds nothing: the handshake may have left records in the transport
    // (data the server sent with its last handshake message), and they must not wait for the
    // server's next write.
    let mut fed = 0;
    let mut at_eof = false;
    loop {
        let (data, status, wake_writer, cut) = {
            let mut tls = shared.tls();
            if at_eof {
                tls.get_mut().feed_eof();
            } else if size > SMALL_READ {
                tls.get_mut().feed_buffer(&mut buf, fed);
                fit_read_buffer(&mut buf, size);
            } else {
                tls.get_mut().feed(&buf[..fed]);
            }
            let (data, status) = decrypt_available(&mut tls, &mut buf);
            if size == SMALL_READ {
                // What the handshake or a burst left in the transport is not kept while idle.
                tls.get_mut().shrink();
            }
            let wake = tls.get_mut().has_outbound() || shared.writer_stalled.load(Ordering::SeqCst);
            (data, status, wake, tls.get_ref().inside_record())
        };
        if wake_writer {
            let _ = kick.try_send(());
        }
        if !data.is_empty() {
            shared
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            shared.note_data();
            if !deliver(events, stop, Event::Data(data)) {
                return ReaderEnd::Stopped;
            }
        }
        match status {
            Ok(false) => {}
            // The transport reports the end of stream only after every byte before it was
            // decrypted, so an end seen while it is not at EOF is the server's close_notify.
            Ok(true) if !at_eof => {
                shared.close_notify_received.store(true, Ordering::SeqCst);
                debug!("server sent close_notify");
                deliver(events, stop, Event::PeerCloseNotify);
                return ReaderEnd::CloseNotify;
            }
            Ok(true) => {
                if cut {
                    warn!(
                        "truncated: {} closed TCP in the middle of a TLS record; the last data is incomplete",
                        shared.target
                    );
                } else if shared.close_notify_sent.load(Ordering::SeqCst) {
                    // Seen with nginx, which never answers close_notify: everything up to the
                    // FIN was whole, but nothing says it was all the server meant to send.
                    warn!(
                        "possible truncation: {} closed TCP without answering our close_notify (some servers, nginx among them, never answer)",
                        shared.target
                    );
                } else {
                    warn!(
                        "possible truncation: {} closed TCP without close_notify",
                        shared.target
                    );
                }
                deliver(events, stop, Event::PeerEof);
                return ReaderEnd::Eof;
            }
            Err(e) => {
                shared.tls_failed.store(true, Ordering::SeqCst);
                let error = Error::Tls {
                    target: shared.target.clone(),
                    reason: tls_reason(&e.to_string()).0,
                };
                return fail(shared, events, stop, error);
            }
        }
        // The last read filled the small buffer (its bytes were fed above): data is flowing.
        if fed == size
            && size < LARGE_READ
            && shared.socket.set_read_timeout(Some(SHRINK_AFTER)).is_ok()
        {
            size = LARGE_READ;
            buf = vec![0u8; size];
        }
        fed = loop {
            match (&shared.socket).read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if shared.stopping.load(Ordering::SeqCst) => return ReaderEnd::Stopped,
                Err(e)
                    if size > SMALL_READ
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    // The burst is over: give the large buffers back (ours and the one the
                    // transport holds), then wait for as long as it takes, without the timeout.
                    size = SMALL_READ;
                    buf = vec![0u8; size];
                    shared.tls().get_mut().shrink();
                    if let Err(e) = shared.socket.set_read_timeout(None) {
                        let error = shared.io_error("reading from", e);
                        return fail(shared, events, stop, error);
                    }
                }
                Err(e) => {
                    let error = shared.io_error("reading from", e);
                    return fail(shared, events, stop, error);
                }
            }
        };
        if fed == 0 {
            // Our own shutdown(Read) also reads as 0: the flag set before it tells them apart.
            if shared.stopping.load(Ordering::SeqCst) {
                return ReaderEnd::Stopped;
            }
            at_eof = true;
        }
    }
}

/// Makes `buf` a read buffer of `len` initialised bytes. A buffer traded with the transport
/// may come back empty (zeroed here once, then reused) or grown beyond `len` by copied feeds.
fn fit_read_buffer(buf: &mut Vec<u8>, len: usize) {
    if buf.capacity() > len {
        *buf = vec![0u8; len];
    } else {
        buf.resize(len, 0);
    }
}

/// Decrypts everything TLS can from what was fed, through `scratch`, which is initialised
/// once and reused: zeroing a fresh buffer before every `read` (one record each) would cost
/// as much as the copy out of it. `Ok(true)` when TLS reports the end.
fn decrypt_available(
    tls: &mut TlsStream<MemoryTransport>,
    scratch: &mut [u8],
) -> (Vec<u8>, io::Result<bool>) {
    let mut data = Vec::new();
    loop {
        match tls.read(scratch) {
            Ok(0) => return (data, Ok(true)),
            Ok(k) => {
                if data.is_empty() {
                    // Without read-ahead, TLS has consumed only the record it returned: what is
                    // left to decrypt now is at most what the transport still holds.
                    data.reserve_exact(k + tls.get_ref().pending_inbound());
                }
                data.extend_from_slice(&scratch[..k]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (data, Ok(false)),
            Err(e) => return (data, Err(e)),
        }
    }
}

fn fail(shared: &Shared, events: &Sender<Event>, stop: &Receiver<()>, error: Error) -> ReaderEnd {
    let text = error.to_string();
    debug!("reader failed: {text}");
    shared.record_error(&error);
    deliver(events, stop, Event::Error(error));
    ReaderEnd::Failed(text)
}

struct Writer<'a> {
    shared: &'a Shared,
    socket: &'a TcpStream,
    kick_rx: &'a Receiver<()>,
    /// The chunks of the batch being sent.
    batch: Vec<Vec<u8>>,
    /// The last batch's ciphertext buffer, kept for the next one while more data is queued.
    spare: Vec<u8>,
}

impl Writer<'_> {
    fn run(
        &mut self,
        data_rx: &Receiver<Vec<u8>>,
        control_rx: &Receiver<Control>,
        events: &Sender<Event>,
        stop: &Receiver<()>,
    ) {
        // The reader holds the other end: once it is gone, nothing will wake us again.
        let mut kick_rx = self.kick_rx.clone();
        let idle = &self.shared.writer_idle;
        let result = loop {
            idle.store(true, Ordering::SeqCst);
            let step = select! {
                recv(data_rx) -> msg => match msg {
                    Ok(data) => {
                        idle.store(false, Ordering::SeqCst);
                        self.send(data, data_rx, usize::MAX).map(|_| ())
                    }
                    Err(_) => break Ok(()),
                },
                recv(control_rx) -> msg => match msg {
                    Ok(Control::Flush(ack)) => {
                        let r = self.drain_queue(data_rx);
                        let _ = ack.send(());
                        r
                    }
                    Ok(Control::CloseNotify(ack)) => {
                        let r = self.drain_queue(data_rx).and_then(|()| self.close_notify());
                        if let Some(ack) = ack {
                            let _ = ack.send(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                        }
                        r
                    }
                    Err(_) => break Ok(()),
                },
                recv(kick_rx) -> msg => match msg {
                    Ok(()) => self.flush_tls(),
                    Err(_) => {
                        kick_rx = crossbeam_channel::never();
                        self.flush_tls()
                    }
                },
            };
            if let Err(e) = step {
                break Err(e);
            }
        };
        if let Err(error) = result {
            debug!("writer failed: {error}");
            if !self.shared.stopping.load(Ordering::SeqCst) {
                self.shared.record_error(&error);
                deliver(events, stop, Event::Error(error));
            }
        }
    }

    /// Sends what is queued now; what other threads queue meanwhile does not make the close
    /// wait longer.
    fn drain_queue(&mut self, data_rx: &Receiver<Vec<u8>>) -> Result<(), Error> {
        let mut left = data_rx.len();
        while left > 0 {
            match data_rx.try_recv() {
                Ok(data) => left -= 1 + self.send(data, data_rx, left - 1)?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Sends `first` and, in the same batch, up to `more` chunks already queued behind it (up
    /// to [`BATCH_BYTES`]); returns how many it took from the queue. The whole batch is
    /// encrypted under one hold of the lock and written with one socket call after releasing
    /// it: `tls.write` returns after each record, and a lock hand-off and `sendto` per 16 KiB
    /// record cost more than the encryption.
    fn send(
        &mut self,
        first: Vec<u8>,
        data_rx: &Receiver<Vec<u8>>,
        more: usize,
    ) -> Result<usize, Error> {
        let mut size = first.len();
        self.batch.clear();
        self.batch.push(first);
        while size < BATCH_BYTES && self.batch.len() <= more {
            match data_rx.try_recv() {
                Ok(data) => {
                    size += data.len();
                    self.batch.push(data);
                }
                Err(_) => break,
            }
        }
        let taken = self.batch.len() - 1;
        if self.shared.close_notify_sent.load(Ordering::SeqCst) {
            debug!("dropping {size} bytes queued after close_notify");
            self.batch.clear();
            return Ok(taken);
        }
        // Room for the ciphertext: each record adds a header, a tag and maybe padding.
        let room = size + (size / (16 * 1024) + self.batch.len()) * 64;
        let (mut chunk, mut offset) = (0, 0);
        while chunk < self.batch.len() {
            let (sent, stalled, failed, out) = {
                let mut tls = self.shared.tls();
                tls.get_mut()
                    .lend_outbound(std::mem::take(&mut self.spare), room);
                let mut sent = 0;
                let mut stalled = false;
                let mut failed = None;
                while let Some(data) = self.batch.get(chunk) {
                    if offset == data.len() {
                        chunk += 1;
                        offset = 0;
                        continue;
                    }
                    match tls.write(&data[offset..]) {
                        Ok(n) if n > 0 => {
                            offset += n;
                            sent += n;
                        }
                        Ok(_) => {
                            stalled = true;
                            break;
                        }
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
                self.shared.writer_stalled.store(stalled, Ordering::SeqCst);
                (sent, stalled, failed, tls.get_mut().take_outbound())
            };
            // What was encrypted before a failure goes out, as it did record by record.
            self.write_socket(&out)?;
            self.shared
                .bytes_out
                .fetch_add(sent as u64, Ordering::Relaxed);
            if sent > 0 {
                self.shared.note_data();
            }
            if let Some(e) = failed {
                self.shared.tls_failed.store(true, Ordering::SeqCst);
                return Err(Error::Tls {
                    target: self.shared.target.clone(),
                    reason: tls_reason(&e.to_string()).0,
                });
            }
            // Keep the buffer only while more is queued: an idle connection keeps no batch.
            if !data_rx.is_empty() {
                self.spare = out;
            }
            if stalled {
                // TLS needs the server's answer first (a renegotiation): the reader wakes us
                // after feeding it, or goes away with the connection.
                if self.kick_rx.recv().is_err() {
                    return Err(Error::Closed);
                }
            }
        }
        self.batch.clear();
        Ok(taken)
    }

    /// Writes ciphertext the reader left in the transport.
    fn flush_tls(&mut self) -> Result<(), Error> {
        let out = self.shared.tls().get_mut().take_outbound();
        self.write_socket(&out)
    }

    fn close_notify(&mut self) -> Result<(), Error> {
        if self.shared.close_notify_sent.load(Ordering::SeqCst) {
            return Ok(());
        }
        let out = {
            let mut tls = self.shared.tls();
            // With a memory transport the alert always fits; only a failed session refuses.
            if let Err(e) = tls.shutdown() {
                return Err(Error::Tls {
                    target: self.shared.target.clone(),
                    reason: tls_reason(&e.to_string()).0,
                });
            }
            tls.get_mut().take_outbound()
        };
        if let Err(e) = self.write_socket(&out) {
            // The server said goodbye first and may close as soon as it did (nginx does):
            // a failed answer then loses nothing and is not an error.
            if self.shared.close_notify_received.load(Ordering::SeqCst) {
                debug!("close_notify answer not sent, the server had closed: {e}");
                return Ok(());
            }
            return Err(e);
        }
        self.shared.close_notify_sent.store(true, Ordering::SeqCst);
        debug!("close_notify sent to {}", self.shared.target);
        let _ = self.socket.shutdown(Shutdown::Write);
        Ok(())
    }

    fn write_socket(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.socket
            .write_all(bytes)
            .map_err(|e| self.shared.io_error("writing to", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send() {
        fn is_send<T: Send>() {}
        is_send::<Connection>();
        is_send::<Event>();
    }

    #[test]
    fn targets() {
        assert_eq!(parse_target("h:1").unwrap(), ("h".into(), 1));
        assert_eq!(parse_target("::1").unwrap(), ("::1".into(), 443));
        assert_eq!(parse_target("[::1]").unwrap(), ("::1".into(), 443));
        assert!(parse_target("").is_err());
        assert!(parse_target(":443").is_err());
        assert!(parse_target("h:70000").is_err());
        assert!(parse_target("[::1]x").is_err());
    }
}
