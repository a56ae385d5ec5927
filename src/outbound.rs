//! Ciphertext on its way to the socket: one queue, filled in the order TLS made it, written
//! by whichever thread gets to it first, and never under the TLS lock.
//!
//! Every thread that makes ciphertext (a writer encrypting, a reader whose decryption made a
//! TLS 1.3 KeyUpdate reply or a TLS 1.2 renegotiation message, the close) appends it here
//! while it still holds the TLS lock, so the queue's order is the order TLS wrote. Writing it
//! to the socket happens after that lock is released: one thread at a time is the flusher and
//! writes everything queued, including what others appended while it wrote.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Above this, a flushed buffer's memory is given back rather than kept for the next batch.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Debug, Default)]
struct State {
    queue: Vec<u8>,
    /// The last batch's buffer, kept for the next one.
    spare: Vec<u8>,
    /// A thread is writing a batch to the socket now.
    flushing: bool,
    /// After our close_notify nothing more may reach the wire (RFC 8446 §6.1): appends are
    /// dropped.
    sealed: bool,
    /// Bytes ever appended and ever written, so a writer can wait for its own bytes.
    queued_total: u64,
    written_total: u64,
    /// The plaintext those bytes carry: counted as sent in the same step that counts the
    /// ciphertext written, so a report after a flush misses none of it.
    queued_plain: u64,
    written_plain: u64,
    /// The socket write failed: the error's kind and text, for every later flush.
    failed: Option<(io::ErrorKind, String)>,
}

/// The queue of ciphertext for one socket.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    state: Mutex<State>,
    changed: Condvar,
}

impl Outbound {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends ciphertext that carries `plain` bytes of application data; call it with the
    /// TLS lock held. Returns the total queued after it, the mark
    /// [`flush_to`](Self::flush_to) waits for.
    pub(crate) fn push(&self, bytes: &[u8], plain: usize) -> u64 {
        let mut st = self.lock();
        if !bytes.is_empty() && !st.sealed {
            st.queue.extend_from_slice(bytes);
            st.queued_total += bytes.len() as u64;
            st.queued_plain += plain as u64;
        }
        st.queued_total
    }

    /// Like [`push`](Self::push), taking the ciphertext out of `bytes` (left empty): when
    /// nothing waits, the two buffers are traded and nothing is copied.
    pub(crate) fn push_from(&self, bytes: &mut Vec<u8>, plain: usize) -> u64 {
        let mut st = self.lock();
        if !bytes.is_empty() && !st.sealed {
            st.queued_total += bytes.len() as u64;
            st.queued_plain += plain as u64;
            if st.queue.is_empty() {
                std::mem::swap(&mut st.queue, bytes);
            } else {
                st.queue.extend_from_slice(bytes);
            }
        }
        bytes.clear();
        st.queued_total
    }

    /// Application data whose ciphertext is on the socket.
    pub(crate) fn plain_written(&self) -> u64 {
        self.lock().written_plain
    }

    /// From now on appends are dropped: our close_notify was queued.
    pub(crate) fn seal(&self) {
        self.lock().sealed = true;
    }

    /// Bytes appended but not yet written.
    pub(crate) fn pending(&self) -> usize {
        let st = self.lock();
        (st.queued_total - st.written_total) as usize
    }

    /// Writes queued ciphertext until everything up to `mark` is on the socket: this thread
    /// becomes the flusher if nobody is, or waits for the one that is. With `wait` false it
    /// returns at once when another thread is flushing (that thread writes our bytes too):
    /// a reader must not wait behind a writer blocked on a full socket.
    pub(crate) fn flush_to(&self, socket: &TcpStream, mark: u64, wait: bool) -> io::Result<()> {
        self.flush_until(socket, mark, wait, None).map(|_| ())
    }

    /// Like [`flush_to`](Self::flush_to), waiting for another flusher only until `deadline`:
    /// `Ok(false)` if it passed first. Our own socket write is bounded by the socket's write
    /// timeout, which the caller sets.
    pub(crate) fn flush_until(
        &self,
        socket: &TcpStream,
        mark: u64,
        wait: bool,
        deadline: Option<Instant>,
    ) -> io::Result<bool> {
        let mut st = self.lock();
        // Once this thread has been the flusher, it writes what others queued meanwhile too:
        // they returned at once (`wait` false) counting on it, and a TLS handshake message
        // left in the queue with nobody to write it stalls the connection for good (a
        // renegotiation's ClientHello did: the server waited for it, the writer for the server).
        let mut flusher = false;
        loop {
            if let Some((kind, text)) = &st.failed {
                return Err(io::Error::new(*kind, text.clone()));
            }
            if st.written_total >= mark && (!flusher || st.queue.is_empty()) {
                return Ok(true);
            }
            if st.flushing {
                if !wait {
                    return Ok(true);
                }
                st = match deadline {
                    None => self
                        .changed
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner),
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Ok(false);
                        }
                        self.changed
                            .wait_timeout(st, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                };
                continue;
            }
            st.flushing = true;
            flusher = true;
            let plain = st.queued_plain - st.written_plain;
            let spare = std::mem::take(&mut st.spare);
            let mut batch = std::mem::replace(&mut st.queue, spare);
            drop(st);
            let result = write_all(socket, &batch);
            st = self.lock();
            st.flushing = false;
            st.written_total += batch.len() as u64;
            if result.is_ok() {
                st.written_plain += plain;
            }
            if batch.capacity() <= KEEP_CAPACITY && st.spare.capacity() == 0 {
                batch.clear();
                st.spare = batch;
            }
            if let Err(e) = result {
                st.failed = Some((e.kind(), e.to_string()));
            }
            self.changed.notify_all();
        }
    }

    /// Fails every waiter and every later flush: the socket is being torn down.
    pub(crate) fn fail(&self, kind: io::ErrorKind, text: &str) {
        let mut st = self.lock();
        if st.failed.is_none() {
            st.failed = Some((kind, text.to_string()));
        }
        self.changed.notify_all();
    }
}

fn write_all(mut socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match socket.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn writes_in_order_and_seals() {
        let (a, mut b) = pair();
        let out = Outbound::default();
        out.push(b"one ", 2);
        let mark = out.push(b"two", 1);
        out.flush_to(&a, mark, true).unwrap();
        out.seal();
        let mark = out.push(b"after close_notify", 5);
        out.flush_to(&a, mark, true).unwrap();
        assert_eq!(out.pending(), 0);
        assert_eq!(out.plain_written(), 3);
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"one two");
    }

    #[test]
    fn a_failed_socket_fails_every_flush() {
        let (a, b) = pair();
        drop(b);
        let out = Outbound::default();
        out.fail(io::ErrorKind::BrokenPipe, "gone");
        let mark = out.push(b"x", 1);
        assert_eq!(
            out.flush_to(&a, mark, true).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    /// A reader that queues a handshake message while a writer is flushing returns at once
    /// (`wait` false); the writer must write it too before it stops being the flusher. Seen
    /// as a renegotiation that never finished: the ClientHello stayed in the queue.
    #[test]
    fn the_flusher_writes_what_was_queued_while_it_wrote() {
        let (a, mut b) = pair();
        let out = std::sync::Arc::new(Outbound::default());
        // More than the socket holds: the first flush blocks until `b` reads.
        let big = vec![b'w'; 16 * 1024 * 1024];
        let mark = out.push(&big, big.len());
        let writer = {
            let (out, a) = (out.clone(), a.try_clone().unwrap());
            std::thread::spawn(move || out.flush_to(&a, mark, true))
        };
        let started = std::time::Instant::now();
        while !out.lock().flushing {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            std::thread::yield_now();
        }
        let hello = out.push(b"HELLO", 0);
        out.flush_to(&a, hello, false).unwrap();
        let mut got = vec![0u8; big.len() + 5];
        b.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got[big.len()..], b"HELLO");
        writer.join().unwrap().unwrap();
    }
}
