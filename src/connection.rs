//! [`Connection`]: a [`Stream`] with one reader thread that turns what the server sends into
//! [`Event`]s, for programs that would rather wait on a channel (with `select!`, next to
//! their own channels) than block in `read`.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};
use log::debug;

use crate::Error;
use crate::config::Config;
use crate::error::Operation;
use crate::read_size::ReadSize;
use crate::report::CloseReport;
use crate::stream::Stream;

/// How many chunks may wait for the program before the reader stops reading the socket:
/// while nobody takes events, the server's writes wait (backpressure, never loss).
const QUEUE_CHUNKS: usize = 8;

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

/// A TLS client connection whose data arrives as [`Event`]s, read by its one thread.
///
/// Writing goes straight to the [`Stream`] from the calling thread:
/// [`send`](Connection::send), or `Write` on [`stream()`](Connection::stream) from any
/// thread. [`close`](Connection::close) (and `Drop`) sends close_notify with the bounded
/// sequence in the crate docs and joins the reader.
///
/// ```no_run
/// use gracetls::{Config, Connection, Event};
///
/// let conn = Connection::connect(&Config::new().with_ca_file("ca.pem"), "localhost:4433")?;
/// conn.send(b"hello\n")?;
/// while let Ok(event) = conn.events().recv() {
///     match event {
///         Event::Data(bytes) => print!("{}", String::from_utf8_lossy(&bytes)),
///         _ => break, // the server's close_notify, its FIN, or an error
///     }
/// }
/// let report = conn.close();
/// # Ok::<(), gracetls::Error>(())
/// ```
pub struct Connection {
    stream: Arc<Stream>,
    events_rx: Receiver<Event>,
    /// Dropped when the close begins: from then on, events nobody takes are dropped.
    stop_tx: Option<Sender<()>>,
    reader: Option<JoinHandle<()>>,
    report: Option<CloseReport>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("stream", &self.stream)
            .field("closed", &self.report.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects as [`Stream::connect`] does and starts the reader thread.
    pub fn connect(config: &Config, target: &str) -> Result<Connection, Error> {
        Connection::with_stream(config, Stream::connect(config, target)?)
    }

    /// Starts the reader thread on an established stream (for one made with
    /// [`Stream::from_tcp`], say). The stream's read timeout is cleared: the reader waits for
    /// the server as long as it takes. If the thread cannot start, the stream is closed
    /// gracefully (close_notify) and the error says why.
    pub fn with_stream(config: &Config, stream: Stream) -> Result<Connection, Error> {
        // The reader waits for the server as long as it takes: a timed-out read would end
        // the connection ([`Config::with_read_timeout`] is for `Stream`s).
        let _ = stream.set_read_timeout(None);
        let stream = Arc::new(stream);
        let (events_tx, events_rx) = bounded(QUEUE_CHUNKS);
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let spawned = {
            let stream = Arc::clone(&stream);
            thread::Builder::new()
                .name("gracetls-reader".into())
                .stack_size(config.thread_stack_size())
                .spawn(move || read_loop(&stream, &events_tx, &stop_rx))
        };
        match spawned {
            Ok(reader) => Ok(Connection {
                stream,
                events_rx,
                stop_tx: Some(stop_tx),
                reader: Some(reader),
                report: None,
            }),
            Err(e) => {
                // Nothing runs on the stream yet: close it here, with close_notify.
                stream.close();
                Err(Error::Thread {
                    what: "the connection's reader thread",
                    source: e,
                })
            }
        }
    }

    /// `host:port` of the server.
    pub fn target(&self) -> &str {
        self.stream.target()
    }

    /// The stream underneath: `Write for &Stream` from other threads, the session, the
    /// idle time. Reading it here would take data from the reader thread's events.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Data and ends from the server, in order. Clone it to read from another thread. The
    /// queue holds a few chunks: while nobody takes them, the reader stops reading the
    /// socket and the server's writes wait (backpressure, never loss).
    pub fn events(&self) -> &crate::Receiver<Event> {
        &self.events_rx
    }

    /// Sends `data`, returning once it is handed to the socket; blocks while the server does
    /// not read. Fails once close_notify was sent ([`Error::Closed`]) or the connection failed.
    pub fn send(&self, data: &[u8]) -> Result<(), Error> {
        (&*self.stream)
            .write_all(data)
            .map_err(|e| Error::from_io(e, Operation::Write, self.stream.target()))
    }

    /// Half-close: sends close_notify and a TCP FIN after what was sent, and keeps
    /// delivering the server's data until its close_notify or end of stream. As
    /// [`Stream::shutdown_write`].
    pub fn shutdown_write(&self) -> Result<(), Error> {
        self.stream.shutdown_write()
    }

    /// How long no application data has moved either way ([`Stream::idle_time`]).
    pub fn idle_time(&self) -> Duration {
        self.stream.idle_time()
    }

    /// Closes with the configured [`CloseMode`](crate::CloseMode), bounded by the close
    /// timeout, joins the reader and reports how it went. Data that arrives during the close
    /// goes to other holders of [`events`](Connection::events); with none, it is dropped.
    pub fn close(mut self) -> CloseReport {
        self.finish()
    }

    fn finish(&mut self) -> CloseReport {
        if let Some(report) = &self.report {
            return report.clone();
        }
        // Nobody may be taking events any more: the reader drops what finds no room and goes
        // on reading, so a waiting close still sees the server's close_notify.
        self.stop_tx = None;
        let report = self.stream.close();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.report = Some(report.clone());
        report
    }
}

impl Drop for Connection {
    /// Closes gracefully with the configured mode, bounded by the close timeout.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Delivers an event, waiting for room until the close begins; after that, an event that
/// finds no room is dropped.
fn deliver(events: &Sender<Event>, stop: &Receiver<()>, event: Event) {
    if let Err(TrySendError::Full(event)) = events.try_send(event) {
        select! {
            send(events, event) -> _ => {},
            recv(stop) -> _ => {},
        }
    }
}

fn read_loop(stream: &Stream, events: &Sender<Event>, stop: &Receiver<()>) {
    // Sized as a `Stream` sizes its socket reads: small while idle, large while data flows.
    let mut size = ReadSize::default();
    // Kept only while data flows. At a trickle, the reader waits for the server with no
    // buffer (an idle connection holds none) and hands the one it read into to the event.
    let mut buf = Vec::new();
    // Whether the last read filled its buffer: TLS may hold the rest of a record, which
    // the socket would not announce.
    let mut filled = false;
    loop {
        if !filled && !size.is_large() {
            stream.wait_readable();
        }
        if buf.len() != size.get() {
            buf = vec![0u8; size.get()];
        }
        match (&*stream).read(&mut buf) {
            Ok(n) if n > 0 => {
                filled = n == buf.len();
                deliver_data(events, stop, &mut buf, &mut size, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            ended => {
                deliver_end(stream, events, stop, ended);
                return;
            }
        }
    }
}

/// Delivers the `n` bytes a read brought into `buf`. While data flows the buffer is kept and
/// its bytes copied; at a trickle (or when the read size changes) the buffer itself goes.
fn deliver_data(
    events: &Sender<Event>,
    stop: &Receiver<()>,
    buf: &mut Vec<u8>,
    size: &mut ReadSize,
    n: usize,
) {
    let resized = size.update(buf.len(), n);
    let data = if size.is_large() && !resized {
        buf[..n].to_vec()
    } else {
        let mut data = std::mem::take(buf);
        data.truncate(n);
        data.shrink_to_fit();
        data
    };
    deliver(events, stop, Event::Data(data));
}

/// Delivers how the server's stream ended: its close_notify, its bare end, or an error.
fn deliver_end(
    stream: &Stream,
    events: &Sender<Event>,
    stop: &Receiver<()>,
    ended: io::Result<usize>,
) {
    let event = match ended {
        // Our own close ends the read with 0 too: only the server's close_notify is news.
        Ok(_) => stream
            .close_notify_received()
            .then_some(Event::PeerCloseNotify),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Event::PeerEof),
        Err(e) => Some(Event::Error(Error::from_io(
            e,
            Operation::Read,
            stream.target(),
        ))),
    };
    if let Some(event) = event {
        deliver(events, stop, event);
    }
    debug!("reader ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send() {
        fn is_send<T: Send>() {}
        is_send::<Connection>();
        is_send::<Event>();
    }
}
