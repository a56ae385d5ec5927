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

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

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

/// The socket a transport may receive from, and what its last refused read found.
#[derive(Debug)]
pub(super) struct Direct {
    socket: Arc<TcpStream>,
    pub(super) starved: Starved,
}

impl Direct {
    pub(super) fn new(socket: Arc<TcpStream>) -> Self {
        Direct {
            socket,
            starved: Starved::Declined,
        }
    }

    /// One receive that never waits, into `body` first and then `after`.
    pub(super) fn recv(&self, body: &mut [u8], after: &mut [u8]) -> io::Result<usize> {
        recv_now(&self.socket, body, after)
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
