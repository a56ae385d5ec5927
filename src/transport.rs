//! The in-memory transport that TLS runs over.
//!
//! native-tls's `TlsStream` cannot be split into a read half and a write half, and a
//! `Mutex<TlsStream<TcpStream>>` whose reader blocks inside `read()` holds the lock across a
//! blocking socket call: the first write from another thread then waits forever. So TLS never
//! touches the socket here. [`MemoryTransport`] is a `Read + Write` pair of buffers: the reader
//! thread pushes the ciphertext it received into it and decrypts until `WouldBlock`, and whoever
//! encrypts takes the ciphertext out and writes it to the socket after releasing the lock.
//!
//! Owning the transport also answers the question native-tls cannot: an end of stream is
//! reported to TLS only after every byte received before it was decrypted, so an `Ok(0)` from
//! TLS while [`MemoryTransport::is_eof`] is still false is the peer's close_notify, and an
//! `Ok(0)` after it is a truncation.

use std::io::{self, Read, Write};

/// A buffer pair that TLS reads ciphertext from and writes ciphertext to.
///
/// `read` returns `WouldBlock` while the inbound buffer is empty and no end of stream was fed,
/// and `Ok(0)` once it was; `write` always succeeds and appends to the outbound buffer.
///
/// ```
/// use std::io::{ErrorKind, Read, Write};
/// use gracetls::transport::MemoryTransport;
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
    inbound: Vec<u8>,
    read_pos: usize,
    eof: bool,
    outbound: Vec<u8>,
}

/// Above this, an emptied buffer gives its memory back, so an idle connection does not keep
/// the peak size of a burst. It holds what one small read (4 KiB) brings; while data flows
/// the buffer is emptied and refilled on every socket read, and allocating 64 KiB again costs
/// far less than the copy into it.
const KEEP_CAPACITY: usize = 4 * 1024;

impl MemoryTransport {
    /// An empty transport: nothing to read, nothing written, no end of stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends ciphertext received from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        if self.read_pos == self.inbound.len() {
            self.inbound.clear();
            self.read_pos = 0;
        }
        self.inbound.extend_from_slice(data);
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

    /// Ciphertext fed but not yet read by TLS.
    pub fn pending_inbound(&self) -> usize {
        self.inbound.len() - self.read_pos
    }

    /// Whether TLS wrote ciphertext that has not been taken yet.
    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// Takes all ciphertext TLS wrote so far, in order.
    pub fn take_outbound(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbound)
    }
}

impl Read for MemoryTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = &self.inbound[self.read_pos..];
        if available.is_empty() {
            if self.inbound.capacity() > KEEP_CAPACITY {
                self.inbound = Vec::new();
                self.read_pos = 0;
            }
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.read_pos += n;
        Ok(n)
    }
}

impl Write for MemoryTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_feeds_in_order() {
        let mut t = MemoryTransport::new();
        t.feed(b"hello ");
        t.feed(b"world");
        let mut buf = [0u8; 4];
        let mut got = Vec::new();
        loop {
            match t.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    break;
                }
            }
        }
        assert_eq!(got, b"hello world");
        assert_eq!(t.pending_inbound(), 0);
    }

    #[test]
    fn eof_only_after_buffered_bytes() {
        let mut t = MemoryTransport::new();
        t.feed(b"xy");
        t.feed_eof();
        let mut buf = [0u8; 1];
        assert_eq!(t.read(&mut buf).unwrap(), 1);
        assert_eq!(t.read(&mut buf).unwrap(), 1);
        assert_eq!(t.read(&mut buf).unwrap(), 0);
        assert!(t.is_eof());
    }

    #[test]
    fn large_buffer_is_released_when_drained() {
        let mut t = MemoryTransport::new();
        t.feed(&vec![7u8; 4 * KEEP_CAPACITY]);
        let mut buf = vec![0u8; 4 * KEEP_CAPACITY];
        assert_eq!(t.read(&mut buf).unwrap(), 4 * KEEP_CAPACITY);
        assert!(t.read(&mut buf).is_err());
        assert!(t.inbound.capacity() <= KEEP_CAPACITY);
    }
}
