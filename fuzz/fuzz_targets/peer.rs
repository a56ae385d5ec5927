//! A server on 127.0.0.1 that answers one connection with the fuzzer's bytes: it writes them
//! all, ends its side (FIN) and reads what the client sends until the client goes, so the
//! client sees exactly those bytes and then the end of the stream, never a reset.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A listener whose one connection gets `answer`; `None` if the loopback is unusable.
pub fn serve(answer: Vec<u8>) -> Option<(u16, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let port = listener.local_addr().ok()?.port();
    let server = thread::spawn(move || {
        let Ok((mut sock, _)) = listener.accept() else {
            return;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = sock.write_all(&answer);
        let _ = sock.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        while matches!(sock.read(&mut sink), Ok(n) if n > 0) {}
    });
    Some((port, server))
}

/// A client socket to `port`.
// Not every target that includes this module dials: `tunnel` connects through the library.
#[allow(dead_code)]
pub fn dial(port: u16) -> Option<TcpStream> {
    TcpStream::connect(("127.0.0.1", port)).ok()
}
