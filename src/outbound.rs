//! Ciphertext on its way to the socket: one queue, filled in the order TLS made it, written
//! by whichever thread gets to it first, and never under the TLS lock.
//!
//! Every thread that makes ciphertext (a writer encrypting, a reader whose decryption made a
//! TLS 1.3 KeyUpdate reply or a TLS 1.2 renegotiation message, the close) appends it here
//! while it still holds the TLS lock, so the queue's order is the order TLS wrote. Writing it
//! to the socket happens after that lock is released: one thread at a time is the flusher and
//! writes everything queued, including what others appended while it wrote. Its one socket
//! call under the TLS lock is [`Outbound::send_direct`]: a writer's ciphertext sent as TLS
//! writes it, only while the queue is idle, with a send that never waits.
//!
//! The invariant that keeps the connection moving: every queued byte has a thread that will
//! offer it to the socket. A writer stays in [`Outbound::flush_to`] until its own bytes are
//! out (or its socket write times out); the flusher writes until the queue is empty before it
//! stops being the flusher; a reader offers its answers with [`Outbound::try_flush`], which
//! never waits, and re-offers whatever nobody writes ([`Outbound::orphaned`]) while it waits
//! for the server. A socket write timeout ends that call only: the bytes it did not write
//! stay at the head of the queue, counted exactly.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::platform::send_now;

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
    /// Where each append of application data or of a reader's answer ends in the ciphertext
    /// stream, with the plaintext and answer totals up to it: the written totals move only
    /// past whole appends, so a flush that stops partway never counts plaintext whose
    /// ciphertext is not all out.
    marks: VecDeque<Mark>,
    /// Ciphertext readers appended (TLS's answers to the server: KeyUpdate replies,
    /// renegotiation messages), ever and written.
    queued_answers: u64,
    written_answers: u64,
    /// The socket write failed (not a timeout): the error's kind and text, for every later
    /// flush.
    failed: Option<(io::ErrorKind, String)>,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    end: u64,
    plain: u64,
    answers: u64,
}

impl State {
    fn note(&mut self, plain: usize, answer: usize) {
        if plain > 0 || answer > 0 {
            self.queued_plain += plain as u64;
            self.queued_answers += answer as u64;
            self.marks.push_back(Mark {
                end: self.queued_total,
                plain: self.queued_plain,
                answers: self.queued_answers,
            });
            // All of it may be out already, sent while TLS wrote it (`send_direct`).
            self.settle();
        }
    }

    /// Counts as written the plaintext and answers of every append whose last byte is out.
    fn settle(&mut self) {
        while let Some(&mark) = self.marks.front() {
            if mark.end > self.written_total {
                break;
            }
            self.written_plain = mark.plain;
            self.written_answers = mark.answers;
            self.marks.pop_front();
        }
    }

    /// Takes the queue out as a batch to write; this thread is the flusher until
    /// [`finish_batch`](Self::finish_batch).
    fn take_batch(&mut self) -> Vec<u8> {
        self.flushing = true;
        let spare = std::mem::take(&mut self.spare);
        std::mem::replace(&mut self.queue, spare)
    }

    /// Counts `written` bytes of `batch` as written and puts the rest back at the head of
    /// the queue, before what was appended meanwhile.
    fn finish_batch(&mut self, mut batch: Vec<u8>, written: usize) {
        self.flushing = false;
        self.written_total += written as u64;
        self.settle();
        if written < batch.len() {
            batch.drain(..written);
            batch.extend_from_slice(&self.queue);
            self.queue.clear();
            std::mem::swap(&mut self.queue, &mut batch);
            if self.spare.capacity() == 0 && batch.capacity() <= KEEP_CAPACITY {
                self.spare = batch;
            }
        } else if batch.capacity() <= KEEP_CAPACITY && self.spare.capacity() == 0 {
            batch.clear();
            self.spare = batch;
        }
    }
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
            st.note(plain, 0);
        }
        st.queued_total
    }

    /// Like [`push`](Self::push), taking the ciphertext out of `bytes` (left empty): when
    /// nothing waits, the two buffers are traded and nothing is copied.
    pub(crate) fn push_from(&self, bytes: &mut Vec<u8>, plain: usize) -> u64 {
        self.push_from_as(bytes, plain, false)
    }

    /// Like [`push_from`](Self::push_from), for what TLS wrote while a reader decrypted: an
    /// answer the server asked for, counted apart (see [`pending_answers`](Self::pending_answers)).
    pub(crate) fn push_answer(&self, bytes: &mut Vec<u8>) -> u64 {
        self.push_from_as(bytes, 0, true)
    }

    fn push_from_as(&self, bytes: &mut Vec<u8>, plain: usize, answer: bool) -> u64 {
        let mut st = self.lock();
        if st.sealed {
            // Nothing may follow close_notify.
        } else if bytes.is_empty() {
            // Every byte of this ciphertext went with `send_direct`: only its plaintext is
            // left to count, as written at once.
            st.note(plain, 0);
        } else {
            st.queued_total += bytes.len() as u64;
            st.note(plain, if answer { bytes.len() } else { 0 });
            if st.queue.is_empty() {
                std::mem::swap(&mut st.queue, bytes);
            } else {
                st.queue.extend_from_slice(bytes);
            }
        }
        bytes.clear();
        st.queued_total
    }

    /// Sends ciphertext TLS is writing now straight from TLS's buffer, without waiting, when
    /// the queue is idle (nothing queued, nobody flushing, not sealed, no error): the order on
    /// the wire stays TLS's, and what is sent is counted as queued and written in one step.
    /// Returns how much the socket took; the caller queues the rest with the TLS lock still
    /// held. The state stays locked across the send, which never waits, so no thread sees the
    /// bytes neither queued nor written.
    pub(crate) fn send_direct(&self, socket: &TcpStream, bytes: &[u8]) -> usize {
        let mut st = self.lock();
        if st.flushing || !st.queue.is_empty() || st.sealed || st.failed.is_some() {
            return 0;
        }
        let sent = loop {
            match send_now(socket, bytes) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The flush that writes the rest meets the error again and records it.
                Err(_) => break 0,
            }
        };
        st.queued_total += sent as u64;
        st.written_total += sent as u64;
        sent
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

    /// Readers' answers appended but not yet written.
    pub(crate) fn pending_answers(&self) -> usize {
        let st = self.lock();
        (st.queued_answers - st.written_answers) as usize
    }

    /// Writes what the socket takes now, without ever waiting: returns at once when another
    /// thread is flushing (it writes what is queued, ours included, before it stops being the
    /// flusher), and leaves what the socket does not take at the head of the queue.
    pub(crate) fn try_flush(&self, socket: &TcpStream) {
        let mut st = self.lock();
        if st.flushing || st.queue.is_empty() || st.failed.is_some() {
            return;
        }
        let batch = st.take_batch();
        drop(st);
        let mut written = 0;
        let mut result = Ok(());
        while written < batch.len() {
            match send_now(socket, &batch[written..]) {
                Ok(0) => {
                    result = Err(io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let mut st = self.lock();
        st.finish_batch(batch, written);
        if let Err(e) = result {
            if !is_timeout(e.kind()) && st.failed.is_none() {
                st.failed = Some((e.kind(), e.to_string()));
            }
        }
        self.changed.notify_all();
    }

    /// Whether ciphertext waits that no thread is writing: left by a flush that timed out,
    /// or a reader's answer to the server queued while nobody flushed. A writer writes it
    /// before it encrypts anything of its own, so a timeout there consumes nothing.
    pub(crate) fn orphaned(&self) -> bool {
        let st = self.lock();
        !st.flushing && !st.queue.is_empty()
    }

    /// Writes queued ciphertext until everything up to `mark` is on the socket: this thread
    /// becomes the flusher if nobody is, or waits for the one that is. With `wait` false it
    /// returns at once when another thread is flushing (that thread writes our bytes too):
    /// a reader must not wait behind a writer blocked on a full socket.
    ///
    /// A socket write that times out (the caller's write timeout) is that call's error, not
    /// the connection's: the bytes it did not write stay at the head of the queue, counted
    /// exactly, for the next flush. Any other error fails every later flush.
    pub(crate) fn flush_to(&self, socket: &TcpStream, mark: u64, wait: bool) -> io::Result<()> {
        self.flush_until(socket, mark, wait, None).map(|_| ())
    }

    /// Like [`flush_to`](Self::flush_to), bounded by `deadline`: waiting for another flusher
    /// stops there (`Ok(false)`), and our own socket writes get what is left of it as their
    /// write timeout (a timeout fails with `WouldBlock` or `TimedOut`).
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
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                // Only the flusher writes, so the socket's write timeout is ours to set.
                let _ = socket.set_write_timeout(Some(left.max(Duration::from_millis(1))));
            }
            flusher = true;
            let batch = st.take_batch();
            drop(st);
            let (written, result) = write_some(socket, &batch);
            st = self.lock();
            st.finish_batch(batch, written);
            self.changed.notify_all();
            match result {
                Ok(()) => {}
                Err(e) if is_timeout(e.kind()) => return Err(e),
                Err(e) => st.failed = Some((e.kind(), e.to_string())),
            }
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

/// A socket write timeout's error, as `TcpStream` reports it (`WouldBlock` on Unix).
pub(crate) fn is_timeout(kind: io::ErrorKind) -> bool {
    matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Writes `bytes` until done or an error; returns how many were written either way.
fn write_some(mut socket: &TcpStream, bytes: &[u8]) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < bytes.len() {
        match socket.write(&bytes[written..]) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests;
