//! Whether the server's TCP has acknowledged every byte we sent, our close_notify and FIN
//! included: on Linux, the kernel's count of sequence numbers sent (or queued) and not yet
//! acknowledged (what `SIOCOUTQ` reports). It is asked for the one connection through the
//! socket diagnostics (`platform::unacknowledged`); where that finds nothing, from the
//! `tx_queue` of the socket's line in `/proc/net/tcp` or `/proc/net/tcp6`, found by the
//! socket's inode. Both keep the crate free of `unsafe`: neither `std`, `socket2`, `nix` nor
//! `rustix` has a safe `TCP_INFO` or `SIOCOUTQ`.

use std::net::{IpAddr, SocketAddr, TcpStream};

use crate::platform;

/// What the kernel says about the bytes we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acked {
    /// Every byte (and the FIN, if sent) was acknowledged.
    All,
    /// So many sequence numbers still wait for their acknowledgement.
    Pending(u64),
    /// The connection is no longer in the kernel's table (a reset ended it): what it had not
    /// acknowledged cannot be known any more.
    Gone,
    /// This system does not tell.
    Unknown,
}

/// Asks the kernel now; cheap enough to poll. `ends` are the connection's local and peer
/// addresses, for when the socket no longer says them (after a reset): once both sides' FINs
/// are acknowledged the kernel keeps the connection as a TIME_WAIT entry, found by them.
pub(crate) fn acked(socket: &TcpStream, ends: Option<(SocketAddr, SocketAddr)>) -> Acked {
    let ends = socket
        .local_addr()
        .ok()
        .zip(socket.peer_addr().ok())
        .or(ends);
    // This one connection first (a hash lookup in the kernel); the tables below list every
    // socket of the system, 30 ms a read with 20,000 connections open.
    if let Some((local, peer)) = ends {
        match platform::unacknowledged(local, peer) {
            Ok(Some(0)) => return Acked::All,
            Ok(Some(pending)) => return Acked::Pending(pending),
            // "No such connection" is also the answer of a kernel without TCP diagnostics:
            // only the table may call the connection gone.
            Ok(None) | Err(_) => {}
        }
    }
    let Some(inode) = platform::socket_inode(socket) else {
        return Acked::Unknown;
    };
    let inode = inode.as_str();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        if let Some(pending) = tx_queue(&text, inode) {
            return if pending == 0 {
                Acked::All
            } else {
                Acked::Pending(pending)
            };
        }
        if let Some((local, peer)) = ends {
            if time_wait(&text, local, peer) {
                return Acked::All;
            }
        }
    }
    if readable {
        Acked::Gone
    } else {
        Acked::Unknown
    }
}

/// An address as the table writes it: the address's 32-bit words in the machine's byte
/// order, then the port, in hex.
fn table_address(addr: SocketAddr) -> String {
    let octets: Vec<u8> = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    let mut out = String::new();
    for word in octets.chunks(4) {
        let word = u32::from_ne_bytes([word[0], word[1], word[2], word[3]]);
        out.push_str(&format!("{word:08X}"));
    }
    out.push_str(&format!(":{:04X}", addr.port()));
    out
}

/// Whether the table holds the connection `local`-`peer` in TIME_WAIT (state 06): both
/// FINs sent and acknowledged.
fn time_wait(table: &str, local: SocketAddr, peer: SocketAddr) -> bool {
    let (local, peer) = (table_address(local), table_address(peer));
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&local.as_str())
            && fields.get(2) == Some(&peer.as_str())
            && fields.get(3) == Some(&"06")
    })
}

/// The `tx_queue` of the line whose inode is `inode`, in a `/proc/net/tcp` table.
fn tx_queue(table: &str, inode: &str) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9) != Some(&inode) {
            return None;
        }
        let (tx, _) = fields.get(4)?.split_once(':')?;
        u64::from_str_radix(tx, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_by_inode() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n   \
            1: 0100007F:9C40 0100007F:1F90 04 0000001B:00000000 01:00000014 00000000     0        0 2222 1 0 20 4 30 10 -1\n";
        assert_eq!(tx_queue(table, "2222"), Some(27));
        assert_eq!(tx_queue(table, "1111"), Some(0));
        assert_eq!(tx_queue(table, "3333"), None);
        if cfg!(target_endian = "little") {
            let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
            let peer: SocketAddr = "127.0.0.1:8080".parse().unwrap();
            assert_eq!(table_address(local), "0100007F:9C40");
            let waiting = table.replace(" 04 ", " 06 ");
            assert!(time_wait(&waiting, local, peer));
            assert!(!time_wait(table, local, peer));
        }
    }

    /// Bytes the peer does not read wait in our send queue: the kernel's count of them, asked
    /// for the one connection, is the table's, and says the close would not be acknowledged.
    #[test]
    fn a_full_send_queue_is_counted_as_the_table_counts_it() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        let ends = (a.local_addr().unwrap(), a.peer_addr().unwrap());
        let Some(inode) = platform::socket_inode(&a) else {
            println!("SKIP: this system does not tell what its peer acknowledged");
            return;
        };
        if platform::unacknowledged(ends.0, ends.1).is_err() {
            println!("SKIP: this system has no socket diagnostics to ask");
            return;
        }
        a.set_nonblocking(true).unwrap();
        let chunk = [7u8; 64 * 1024];
        let mut sent = 0usize;
        // Bounded: the two sockets' buffers take a few MiB at most.
        for _ in 0..10_000 {
            match a.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let in_table = tx_queue(&table, &inode).unwrap();
        let asked = platform::unacknowledged(ends.0, ends.1).unwrap();
        assert_eq!(asked, Some(in_table), "sent {sent}");
        assert!(
            in_table > 0 && in_table <= sent as u64,
            "{in_table} of {sent}"
        );
        assert_eq!(acked(&a, None), Acked::Pending(in_table));
        drop(b);
    }

    #[test]
    fn a_loopback_connection_is_acknowledged() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        if platform::socket_inode(&a).is_none() {
            println!("SKIP: this system does not tell what its peer acknowledged");
            return;
        }
        let (mut b, _) = listener.accept().unwrap();
        a.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).unwrap();
        let started = std::time::Instant::now();
        while acked(&a, None) != Acked::All {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{:?}",
                acked(&a, None)
            );
            std::thread::yield_now();
        }
        drop(b);
        drop(listener);
    }
}
