//! What a [`Stream`] has in common with `TcpStream`: more handles to the same connection,
//! the close, timeouts, addresses, `TCP_NODELAY`, and the descriptor for polling.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Inner, Stream};
use crate::Error;
use crate::error::Operation;
use crate::report::CloseReport;

impl Stream {
    /// Closes gracefully with the configured [`CloseMode`](crate::CloseMode), bounded by the
    /// close timeout, and reports how it went. Callable from any thread and any handle
    /// ([`try_clone`](Self::try_clone)), also while others are blocked in `read` (it then
    /// returns `Ok(0)`) or `write` (it returns an error). Every call returns the report of the
    /// first; a second caller waits for it.
    ///
    /// The report also goes to [`Config::on_close`](crate::Config::on_close), once, as the
    /// report of a close done by `Drop` does.
    pub fn close(&self) -> CloseReport {
        self.inner.close_and_report()
    }

    /// The half-close: sends close_notify and a TCP FIN now, after what was written before,
    /// and leaves the read side open, so the server's data and its close_notify can still be
    /// read. Writing fails from here on. Bounded by the close timeout.
    ///
    /// It returns a [`gracetls::Error`](crate::Error), as
    /// [`Connection::shutdown_write`](crate::Connection::shutdown_write) does; `?` turns it
    /// into an `io::Error` where a function returns one.
    ///
    /// ```no_run
    /// use std::io::{Read, Write};
    /// use gracetls::{Config, Stream};
    ///
    /// let stream = Stream::connect(&Config::new(), "example.com:443")?;
    /// (&stream).write_all(b"the whole request")?;
    /// stream.shutdown_write()?; // the server sees the end of the request
    /// let mut answer = Vec::new();
    /// (&stream).read_to_end(&mut answer)?; // until the server's close_notify
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_write(&self) -> Result<(), Error> {
        self.inner
            .shutdown_write()
            .map_err(|e| Error::from_io(e, Operation::WriteCloseNotify, self.target()))
    }

    /// A second handle to the same connection, as `TcpStream::try_clone` gives: both read,
    /// write and close the one TLS session (a [`close`](Self::close) on either closes it for
    /// both), and the connection is closed, as by `Drop`, when the last handle is dropped.
    /// Timeouts and `TCP_NODELAY` belong to the connection, so a change made through one
    /// handle holds for all.
    ///
    /// It cannot fail (no descriptor is duplicated); it returns `io::Result` so that code
    /// written for `TcpStream` keeps its `?`.
    ///
    /// ```no_run
    /// use std::io::{BufRead, BufReader, Write};
    /// use gracetls::{Config, Stream};
    ///
    /// let stream = Stream::connect(&Config::new(), "example.com:443")?;
    /// let reader = stream.try_clone()?;
    /// let lines = std::thread::spawn(move || BufReader::new(reader).lines().count());
    /// (&stream).write_all(b"hello\n")?;
    /// stream.close(); // the reading handle's read returns Ok(0)
    /// lines.join().expect("reader thread");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(Stream {
            inner: Arc::clone(&self.inner),
        })
    }

    /// Bounds how long a `read` waits for the server: past it, `read` fails with
    /// `WouldBlock` (or `TimedOut`) and the connection stays usable, as with
    /// `TcpStream::set_read_timeout`. `None` (the default, unless
    /// [`Config::read_timeout`](crate::Config::read_timeout) says otherwise) waits as long as
    /// it takes; a read can also always be ended by [`close`](Self::close) from another
    /// thread. A zero duration is an error, as for `TcpStream`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use gracetls::{Config, Stream};
    ///
    /// let stream = Stream::connect(&Config::new(), "example.com:443")?;
    /// stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// assert_eq!(stream.read_timeout()?, Some(Duration::from_secs(5)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.socket.set_read_timeout(timeout)
    }

    /// Bounds how long a `write` waits for the server to take data: past it, `write` fails
    /// with `WouldBlock` (or `TimedOut`), as with `TcpStream::set_write_timeout`. `None` (the
    /// default, unless [`Config::write_timeout`](crate::Config::write_timeout) says
    /// otherwise) waits as long as the server does not read. The close sets its own bound,
    /// the close timeout. A zero duration is an error.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use gracetls::{Config, Stream};
    ///
    /// let stream = Stream::connect(&Config::new(), "example.com:443")?;
    /// stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// assert_eq!(stream.write_timeout()?, Some(Duration::from_secs(5)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.socket.set_write_timeout(timeout)
    }

    /// The read timeout: see [`set_read_timeout`](Self::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.socket.read_timeout()
    }

    /// The write timeout: see [`set_write_timeout`](Self::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.socket.write_timeout()
    }

    /// The address of the other end of the TCP connection: the server's, or the proxy's
    /// when the connection goes through one (the target's name is [`target`](Self::target)).
    ///
    /// ```no_run
    /// use gracetls::{Config, Stream};
    ///
    /// let stream = Stream::connect(&Config::new(), "127.0.0.1:4433")?;
    /// assert_eq!(stream.peer_addr()?.port(), 4433);
    /// println!("from {}", stream.local_addr()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.socket.peer_addr()
    }

    /// Our address on the TCP connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.socket.local_addr()
    }

    /// Sets `TCP_NODELAY`. **On by default** (from the handshake on, also for
    /// [`from_tcp`](Self::from_tcp)): each `write` is one TLS record sent at once, and a
    /// short one (a line, a close_notify) must not wait for the server's delayed ACK. Turn it
    /// off only for a program that makes many small writes and cares more for fewer packets
    /// than for latency (a `BufWriter` is usually the better answer).
    ///
    /// ```no_run
    /// use gracetls::{Config, Stream};
    ///
    /// let stream = Stream::connect(&Config::new(), "example.com:443")?;
    /// assert!(stream.nodelay()?);
    /// stream.set_nodelay(false)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.socket.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set: see [`set_nodelay`](Self::set_nodelay).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.socket.nodelay()
    }
}

/// The TCP socket's descriptor, for polling (`poll`, `epoll`, a readiness check such as
/// ureq's) and for socket options the `Stream` does not offer.
///
/// **The socket belongs to the `Stream`.** Poll it, read its options, set options that leave
/// the byte stream alone; never read from it, write to it, shut it down, close it, or switch
/// it to non-blocking mode: TLS records would be lost or cut, and the close could no longer
/// send close_notify. Readable does not mean a `read` will return data: what arrived may be
/// a TLS record that carries none (a session ticket, a KeyUpdate), or part of a record, and
/// data already decrypted may wait in the `Stream` while the socket is not readable.
///
/// ```no_run
/// # #[cfg(unix)] {
/// use std::os::fd::{AsFd, AsRawFd};
/// use gracetls::{Config, Stream};
///
/// let stream = Stream::connect(&Config::new(), "example.com:443")?;
/// let fd = stream.as_fd(); // borrowed: it cannot outlive the stream
/// println!("polling descriptor {}", fd.as_raw_fd());
/// # }
/// # Ok::<(), gracetls::Error>(())
/// ```
#[cfg(unix)]
impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.socket.as_fd()
    }
}

/// The TCP socket's descriptor: the same rules as for
/// [`AsFd`](#impl-AsFd-for-Stream): poll it or set options; never read, write, shut down,
/// close it or change its blocking mode.
#[cfg(unix)]
impl std::os::fd::AsRawFd for Stream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.socket.as_raw_fd()
    }
}

/// The TCP socket, for polling and socket options only: never read, write, shut down, close
/// it or change its blocking mode (see the Unix `AsFd`).
#[cfg(windows)]
impl std::os::windows::io::AsSocket for Stream {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.inner.socket.as_socket()
    }
}

/// The TCP socket, for polling and socket options only (see `AsSocket`).
#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for Stream {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.inner.socket.as_raw_socket()
    }
}

/// Most plaintext one vectored write gathers: what `write` takes at a time.
const MAX_GATHER: usize = 256 * 1024;

impl Inner {
    /// `write_vectored`: one slice goes as it is; several are gathered into one buffer (up
    /// to [`MAX_GATHER`]), so they make one record rather than one each. What is returned
    /// counts from the first slice on, as `write_vectored` must.
    pub(super) fn write_vectored_plain(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total = bufs
            .iter()
            .map(|b| b.len())
            .fold(0usize, usize::saturating_add);
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else {
            return Ok(0);
        };
        if first.len() == total {
            return self.write_plain(first);
        }
        let mut gathered = Vec::with_capacity(total.min(MAX_GATHER));
        for buf in bufs {
            let room = MAX_GATHER - gathered.len();
            if room == 0 {
                break;
            }
            gathered.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        self.write_plain(&gathered)
    }
}
