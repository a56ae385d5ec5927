//! What differs between the systems gracetls runs on, in one place; no other module names a
//! target. (Whether native-tls runs on OpenSSL, and so whether OpenSSL's own API is there,
//! is `cfg(tls_openssl)`, which build.rs sets.)

use std::io;
use std::net::{SocketAddr, TcpStream};

#[cfg(target_os = "linux")]
mod sock_diag;

/// Sequence numbers the TCP connection `local`-`peer` sent and its peer has not acknowledged
/// yet (a FIN counts one), asked of the kernel for that one connection: Linux's socket
/// diagnostics. `Ok(None)`: the kernel says it has no such connection. An error: this system
/// cannot say.
#[cfg(target_os = "linux")]
pub(crate) fn unacknowledged(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u64>> {
    sock_diag::unacknowledged(local, peer)
}

/// See the Linux version: elsewhere nothing is asked.
#[cfg(not(target_os = "linux"))]
pub(crate) fn unacknowledged(_local: SocketAddr, _peer: SocketAddr) -> io::Result<Option<u64>> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The socket's inode, by which `/proc/net/tcp` names its connection; `None` where the
/// system keeps no such table (all but Linux).
#[cfg(target_os = "linux")]
pub(crate) fn socket_inode(socket: &TcpStream) -> Option<String> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let inode = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
    Some(inode.to_string())
}

/// See the Linux version: elsewhere the kernel's table is not read.
#[cfg(not(target_os = "linux"))]
pub(crate) fn socket_inode(_socket: &TcpStream) -> Option<String> {
    None
}

/// One `send` that never waits: what the socket takes now, or `WouldBlock`.
#[cfg(unix)]
pub(crate) fn send_now(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // No SIGPIPE for a peer that is gone, as std's own writes ask on these systems.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    const NO_SIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    const NO_SIGNAL: libc::c_int = 0;
    socket2::SockRef::from(socket).send_with_flags(bytes, libc::MSG_DONTWAIT | NO_SIGNAL)
}

/// Without a non-blocking send, a reader writes nothing: writers and the close do.
#[cfg(not(unix))]
pub(crate) fn send_now(_socket: &TcpStream, _bytes: &[u8]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Whether shutting a listening socket down wakes a thread blocked in its `accept` (Linux
/// does, at once); where it does not, the [`Listener`](crate::Listener) connects to itself.
pub(crate) const SHUTDOWN_WAKES_ACCEPT: bool = cfg!(target_os = "linux");
