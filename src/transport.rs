//! The in-memory transport that TLS runs over.
//!
//! native-tls's `TlsStream` cannot be split into a read half and a write half, and a
//! `Mutex<TlsStream<TcpStream>>` whose reader blocks inside `read()` holds the lock across a
//! blocking socket call: the first write from another thread then waits forever. So TLS never
//! touches the socket here. [`MemoryTransport`] is a `Read + Write` pair of buffers: the reader
//! thread pushes the ciphertext it received into it and decrypts until `WouldBlock`, and whoever
//! encrypts takes the ciphertext out and writes it to the socket after releasing the lock (a
//! writer's ciphertext, while the outbound queue is idle, goes out with a send that never
//! waits as TLS writes it; see `direct`).
//!
//! Owning the transport also answers the question native-tls cannot: an end of stream is
//! reported to TLS only after every byte received before it was decrypted, so an `Ok(0)` from
//! TLS while [`MemoryTransport::is_eof`] is still false is the peer's close_notify, and an
//! `Ok(0)` after it is a truncation.

mod direct;

pub(crate) use direct::Starved;

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use crate::record::{HelloScan, RecordCursor};
use direct::{DIRECT_MIN, Direct, HEADER};

/// A buffer pair that TLS reads ciphertext from and writes ciphertext to.
///
/// `read` returns `WouldBlock` while the inbound buffer is empty and no end of stream was fed,
/// and `Ok(0)` once it was; `write` always succeeds and appends to the outbound buffer.
///
/// ```
/// use std::io::{ErrorKind, Read, Write};
/// use gracetls::unversioned::MemoryTransport;
///
/// let mut t = MemoryTransport::new();
/// let mut buf = [0u8; 8];
/// assert_eq!(t.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
/// t.feed(b"abc");
/// assert_eq!(t.read(&mut buf).unwrap(), 3);
/// t.feed_eof();
/// assert_eq!(t.read(&mut buf).unwrap(), 0);
/// t.write_all(b"out").unwrap();
/// assert_eq!(t.take_outbound(), b"out");
/// ```
#[derive(Debug, Default)]
pub struct MemoryTransport {
    /// Unread ciphertext is `inbound[read_pos..inbound_end]`; the rest of the vector is
    /// initialised spare room, so a buffer handed in by [`feed_buffer`](Self::feed_buffer)
    /// can be handed back out without being zeroed again.
    inbound: Vec<u8>,
    read_pos: usize,
    inbound_end: usize,
    eof: bool,
    outbound: Vec<u8>,
    records: RecordCursor,
    spill: Option<Spill>,
    hello: HelloScan,
    /// The socket, once the handshake is over, for receiving large records straight into
    /// TLS's buffer (see `direct`).
    direct: Option<Direct>,
    /// Whether the read under way may receive from the socket: only the thread that holds
    /// the read side may, so that ciphertext is fed in the order it arrived.
    direct_now: bool,
}

/// A handle on the ciphertext TLS writes during the handshake, which outlives the transport.
///
/// native-tls hands back no stream when a handshake fails, yet OpenSSL has just written the
/// alert that tells the server why (say, `unknown CA`). Without this the alert would be
/// dropped with the transport and the server would log a bare `unexpected eof`.
#[derive(Debug, Clone, Default)]
pub struct Spill(Arc<Mutex<Vec<u8>>>);

impl Spill {
    /// Takes what was written since the last take.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Above this, [`MemoryTransport::shrink`] gives an emptied buffer's memory back, so an idle
/// connection does not keep the peak size of a burst. It holds what one small read (4 KiB)
/// brings.
const KEEP_CAPACITY: usize = 4 * 1024;

impl MemoryTransport {
    /// An empty transport: nothing to read, nothing written, no end of stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport whose outbound ciphertext goes to the returned [`Spill`] until
    /// [`end_spill`](Self::end_spill), for a handshake that may fail.
    ///
    /// ```
    /// use std::io::Write;
    /// use gracetls::unversioned::MemoryTransport;
    ///
    /// let (mut t, spill) = MemoryTransport::spilling();
    /// t.write_all(b"alert").unwrap();
    /// drop(t);
    /// assert_eq!(spill.take(), b"alert");
    /// ```
    pub fn spilling() -> (Self, Spill) {
        let spill = Spill::default();
        let t = MemoryTransport {
            spill: Some(spill.clone()),
            ..Self::default()
        };
        (t, spill)
    }

    /// Stops spilling: what the spill still holds, and every later write, stays in the
    /// transport's own outbound buffer again.
    pub fn end_spill(&mut self) {
        if let Some(spill) = self.spill.take() {
            let mut held = spill.take();
            held.append(&mut self.outbound);
            self.outbound = held;
        }
    }

    /// Appends ciphertext received from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        if self.read_pos == self.inbound_end {
            self.read_pos = 0;
            self.inbound_end = 0;
        }
        self.records.advance(data);
        self.hello.feed(data);
        let end = self.inbound_end + data.len();
        if end <= self.inbound.len() {
            self.inbound[self.inbound_end..end].copy_from_slice(data);
        } else {
            self.inbound.truncate(self.inbound_end);
            self.inbound.extend_from_slice(data);
        }
        self.inbound_end = end;
    }

    /// Feeds `buf[..n]` like [`feed`](Self::feed), but when everything fed before was read
    /// it takes `buf` itself instead of copying it, and puts its previous buffer in `buf`
    /// (any length, contents unspecified) for the caller's next read. While data flows the
    /// transport is drained on every pass, so a reader and the transport trade two buffers
    /// and no ciphertext is copied on the way in.
    ///
    /// ```
    /// use std::io::Read;
    /// use gracetls::unversioned::MemoryTransport;
    ///
    /// let mut t = MemoryTransport::new();
    /// let mut buf = b"abcdef".to_vec();
    /// t.feed_buffer(&mut buf, 3);
    /// let mut out = [0u8; 8];
    /// assert_eq!(t.read(&mut out).unwrap(), 3);
    /// assert_eq!(&out[..3], b"abc");
    /// ```
    pub fn feed_buffer(&mut self, buf: &mut Vec<u8>, n: usize) {
        if n == 0 {
            return;
        }
        if self.read_pos < self.inbound_end {
            self.feed(&buf[..n]);
            return;
        }
        self.records.advance(&buf[..n]);
        self.hello.feed(&buf[..n]);
        std::mem::swap(&mut self.inbound, buf);
        self.read_pos = 0;
        self.inbound_end = n;
    }

    /// Gives back the memory of emptied buffers above a small size, for a connection whose
    /// burst of data is over. While data flows they keep their size: the inbound buffer is
    /// refilled on every socket read.
    ///
    /// ```
    /// use std::io::Read;
    /// use gracetls::unversioned::MemoryTransport;
    ///
    /// let mut t = MemoryTransport::new();
    /// t.feed(&vec![1u8; 65536]);
    /// let mut out = vec![0u8; 65536];
    /// t.read(&mut out).unwrap();
    /// t.shrink();
    /// assert_eq!(t.pending_inbound(), 0);
    /// ```
    pub fn shrink(&mut self) {
        if self.read_pos == self.inbound_end && self.inbound.capacity() > KEEP_CAPACITY {
            self.inbound = Vec::new();
            self.read_pos = 0;
            self.inbound_end = 0;
        }
        if self.outbound.is_empty() && self.outbound.capacity() > KEEP_CAPACITY {
            self.outbound = Vec::new();
        }
    }

    /// Whether the bytes fed so far end inside a TLS record (a header or a body is
    /// incomplete). After [`feed_eof`](Self::feed_eof) this means the peer's data was cut.
    ///
    /// ```
    /// use gracetls::unversioned::MemoryTransport;
    ///
    /// let mut t = MemoryTransport::new();
    /// t.feed(&[23, 3, 3, 0, 4, b'a', b'b']);
    /// assert!(t.inside_record());
    /// t.feed(b"cd");
    /// assert!(!t.inside_record());
    /// ```
    pub fn inside_record(&self) -> bool {
        self.records.inside_record()
    }

    /// Records the peer's end of stream (TCP FIN): once the inbound buffer is drained, `read`
    /// returns `Ok(0)` instead of `WouldBlock`.
    pub fn feed_eof(&mut self) {
        self.eof = true;
    }

    /// Whether [`feed_eof`](Self::feed_eof) was called.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// The TLS version and cipher suite the server's ServerHello chose, once it passed.
    pub fn server_hello(&self) -> Option<(&'static str, String)> {
        self.hello.result()
    }

    /// Puts in the scan of the ServerHello a server made itself: on the server side the
    /// peer's first bytes are a ClientHello, and what was negotiated is in our own.
    pub(crate) fn set_hello(&mut self, hello: HelloScan) {
        self.hello = hello;
    }

    /// Ciphertext fed but not yet read by TLS.
    pub fn pending_inbound(&self) -> usize {
        self.inbound_end - self.read_pos
    }

    /// Whether TLS wrote ciphertext that has not been taken yet.
    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
            || self.spill.as_ref().is_some_and(|s| {
                !s.0.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_empty()
            })
    }

    /// Lends `buf` (its contents are dropped) as the buffer TLS writes its next ciphertext
    /// to, with room for `additional` bytes, so encrypting a large batch neither starts from
    /// an empty vector nor regrows it. Ciphertext already waiting keeps its own buffer.
    ///
    /// ```
    /// use std::io::Write;
    /// use gracetls::unversioned::MemoryTransport;
    ///
    /// let mut t = MemoryTransport::new();
    /// t.lend_outbound(Vec::with_capacity(64), 32);
    /// t.write_all(b"out").unwrap();
    /// assert_eq!(t.take_outbound(), b"out");
    /// ```
    pub fn lend_outbound(&mut self, mut buf: Vec<u8>, additional: usize) {
        if self.spill.is_none() && self.outbound.is_empty() && buf.capacity() > 0 {
            buf.clear();
            self.outbound = buf;
        }
        self.outbound.reserve(additional);
    }

    /// The buffer TLS writes its ciphertext to, once the handshake's spill has ended: a
    /// caller can trade it for another instead of copying it out.
    pub(crate) fn outbound_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.outbound
    }

    /// Receives what TLS asks for from the socket, without waiting, when the record it is
    /// reading is large; `WouldBlock` otherwise, with what the reader must do in `starved`.
    fn read_direct(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(direct) = self.direct.as_mut() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        if !self.direct_now || self.records.last_len() < DIRECT_MIN {
            direct.starved = Starved::Declined;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.inbound.len() < HEADER {
            self.inbound.resize(HEADER, 0);
        }
        let (after, _) = self.inbound.split_at_mut(HEADER);
        match direct.recv(buf, after) {
            Ok(n) if n > 0 => {
                let body = n.min(buf.len());
                self.records.advance(&buf[..body]);
                self.records.advance(&after[..n - body]);
                self.read_pos = 0;
                self.inbound_end = n - body;
                Ok(body)
            }
            // The end of the stream, our own shutdown: the reader's own read tells them apart.
            Ok(_) => {
                direct.starved = Starved::Declined;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => {
                direct.starved = match e.kind() {
                    io::ErrorKind::WouldBlock => Starved::Drained,
                    io::ErrorKind::Interrupted | io::ErrorKind::Unsupported => Starved::Declined,
                    _ => Starved::Failed(e),
                };
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }

    /// Takes all ciphertext TLS wrote so far, in order.
    pub fn take_outbound(&mut self) -> Vec<u8> {
        match &self.spill {
            Some(spill) => spill.take(),
            None => std::mem::take(&mut self.outbound),
        }
    }
}

impl Read for MemoryTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = &self.inbound[self.read_pos..self.inbound_end];
        if available.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                self.read_direct(buf)
            };
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.read_pos += n;
        let cap = self.inbound.capacity();
        if self.read_pos == self.inbound_end && cap > HEADER * 8 && cap <= KEEP_CAPACITY {
            // A small read's buffer, drained: an idle connection keeps none (the handshake's
            // and the last small read's were about 4 KiB per connection). Large buffers are
            // traded with the reader while data flows; `shrink` gives them back.
            self.inbound = Vec::new();
            self.read_pos = 0;
            self.inbound_end = 0;
        }
        Ok(n)
    }
}

impl Write for MemoryTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.spill {
            Some(spill) => spill
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf),
            None => {
                let sent = match &self.direct {
                    Some(direct) if self.outbound.is_empty() => direct.send(buf),
                    _ => 0,
                };
                self.outbound.extend_from_slice(&buf[sent..]);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
