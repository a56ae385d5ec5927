//! Reading the socket straight into TLS's own record buffer, without waiting.
//!
//! While large records flow, copying each one from a buffer of ours into OpenSSL's was a
//! fifth of a download's instructions. So when TLS asks for ciphertext that the transport
//! does not hold, and the record it is reading is large, the transport receives it from the
//! socket into TLS's buffer itself, with a receive that never waits (`MSG_DONTWAIT`): the TLS
//! lock is held here, and it is never held across a blocking socket call. The 5 bytes after
//! the record (the next record's header) are received into the transport in the same call,
//! so a stream of large records costs one system call each, and no copy.
//!
//! When nothing is there, TLS hears `WouldBlock`, and [`Starved`] tells the reader what to do
//! once it has let go of the lock: wait until the socket is readable (without reading it),
//! or read into its own buffer as before (small records, the end of the stream, our own
//! shutdown: those go through the one read that tells them apart), or report the error this
//! receive met.
//!
//! The send side mirrors it: while a writer encrypts and the outbound queue is idle, what TLS
//! writes is sent from TLS's own buffer with a send that never waits
//! ([`Outbound::send_direct`]), and only what the socket did not take is kept for the queue.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use super::MemoryTransport;
use crate::outbound::Outbound;

/// Records that announce at least this many bytes are received straight into TLS's buffer;
/// smaller ones are batched through the reader's buffer (one receive for many records costs
/// less than one receive each, copy included).
pub(super) const DIRECT_MIN: usize = 4 * 1024;
/// A TLS record header, received behind a record's body.
pub(super) const HEADER: usize = 5;

/// What the reader must do after TLS ran out of ciphertext.
#[derive(Debug, Default)]
pub enum Starved {
    /// Read the socket into the reader's buffer and feed it: the transport did not try.
    #[default]
    Declined,
    /// The socket had nothing: wait until it is readable, then decrypt again.
    Drained,
    /// The receive failed; the reader reports this error as its own read's.
    Failed(io::Error),
}

/// The socket a transport may receive from (and send to), and what its last refused read
/// found.
#[derive(Debug)]
pub(super) struct Direct {
    socket: Arc<TcpStream>,
    pub(super) starved: Starved,
    out: Arc<Outbound>,
    /// Whether the write under way may send straight to the socket (a writer's, while the
    /// outbound queue is idle): one copy fewer per byte uploaded.
    pub(super) sending: bool,
}

impl Direct {
    pub(super) fn new(socket: Arc<TcpStream>, out: Arc<Outbound>) -> Self {
        Direct {
            socket,
            starved: Starved::Declined,
            out,
            sending: false,
        }
    }

    /// Sends what TLS writes now without waiting, if the outbound queue is idle; returns how
    /// much the socket took (the caller keeps the rest, for the queue).
    pub(super) fn send(&self, bytes: &[u8]) -> usize {
        if !self.sending {
            return 0;
        }
        self.out.send_direct(&self.socket, bytes)
    }

    /// One receive that never waits, into `body` first and then `after`.
    pub(super) fn recv(&self, body: &mut [u8], after: &mut [u8]) -> io::Result<usize> {
        recv_now(&self.socket, body, after)
    }
}

impl MemoryTransport {
    /// Lets the transport receive large records from `socket` itself, straight into TLS's
    /// buffer, during the reads [`allow_direct`](Self::allow_direct) allows, and send to it
    /// while `out` is idle, during the writes [`allow_send`](Self::allow_send) allows.
    pub(crate) fn attach_socket(&mut self, socket: Arc<TcpStream>, out: Arc<Outbound>) {
        self.direct = Some(Direct::new(socket, out));
    }

    /// Whether the writes that follow may send to the attached socket.
    pub(crate) fn allow_send(&mut self, allow: bool) {
        if let Some(direct) = self.direct.as_mut() {
            direct.sending = allow;
        }
    }

    /// Whether the reads that follow may receive from the attached socket.
    pub(crate) fn allow_direct(&mut self, allow: bool) {
        self.direct_now = allow;
    }

    /// What the last read that found nothing asks of the reader; reset to
    /// [`Starved::Declined`].
    pub(crate) fn take_starved(&mut self) -> Starved {
        self.direct
            .as_mut()
            .map(|d| std::mem::take(&mut d.starved))
            .unwrap_or_default()
    }
}

#[cfg(unix)]
fn recv_now(socket: &TcpStream, body: &mut [u8], after: &mut [u8]) -> io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, RecvFlags, recvmsg};
    let mut slices = [io::IoSliceMut::new(body), io::IoSliceMut::new(after)];
    let got = recvmsg(
        socket,
        &mut slices,
        &mut RecvAncillaryBuffer::default(),
        RecvFlags::DONTWAIT,
    )?;
    Ok(got.bytes)
}

/// Without a receive that never waits, the reader reads for TLS, as it does for small
/// records.
#[cfg(not(unix))]
fn recv_now(_socket: &TcpStream, _body: &mut [u8], _after: &mut [u8]) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}
