//! A TLS echo server for the demo: it echoes what it receives, answers a `bye` line with a
//! `quit` line, and logs for each connection whether the client said goodbye with
//! close_notify or just dropped TCP.
//!
//! Its certificate is made at start (rcgen) for `localhost` and `127.0.0.1`, signed by a
//! throw-away CA written to the `--ca-out` file for the client to trust.
//!
//! ```text
//! cargo run --example demo_server -- [--addr 127.0.0.1:0] [--ca-out demo-ca.pem] [--port-file FILE]
//! ```
//!
//! Like the client, it runs TLS over `gracetls::unversioned::MemoryTransport`: native-tls alone
//! cannot tell a client's close_notify from a vanished client.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

use gracetls::unversioned::MemoryTransport;
use native_tls::{HandshakeError, Identity, TlsAcceptor, TlsStream};

#[path = "support/local_pki.rs"]
mod local_pki;
use local_pki::{LocalPki, local_pki};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("demo_server: error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut addr = "127.0.0.1:0".to_string();
    let mut ca_out = "demo-ca.pem".to_string();
    let mut port_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => addr = value()?,
            "--ca-out" => ca_out = value()?,
            "--port-file" => port_file = Some(value()?),
            _ => return Err(format!("unknown argument {arg:?}").into()),
        }
    }
    let (ca_pem, identity) = make_certificates()?;
    std::fs::write(&ca_out, ca_pem)?;
    let acceptor = TlsAcceptor::new(identity)?;
    let listener = TcpListener::bind(&addr)?;
    let local = listener.local_addr()?;
    if let Some(path) = port_file {
        std::fs::write(path, local.port().to_string())?;
    }
    println!("demo_server: listening on {local}, CA in {ca_out}");
    for (n, stream) in listener.incoming().enumerate() {
        let stream = stream?;
        let acceptor = acceptor.clone();
        thread::spawn(move || {
            let id = n + 1;
            let verdict = serve(&acceptor, stream, id).unwrap_or_else(|e| format!("ERROR {e}"));
            println!("demo_server: [conn {id}] {verdict}");
        });
    }
    Ok(())
}

fn make_certificates() -> Result<(String, Identity)> {
    let LocalPki {
        ca_pem,
        leaf,
        leaf_key,
    } = local_pki("gracetls demo CA")?;
    let identity =
        Identity::from_pkcs8(leaf.pem().as_bytes(), leaf_key.serialize_pem().as_bytes())?;
    Ok((ca_pem, identity))
}

/// Serves one connection; returns the verdict on how the client left.
fn serve(acceptor: &TlsAcceptor, mut socket: TcpStream, id: usize) -> Result<String> {
    let peer = socket.peer_addr()?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut tls = handshake(acceptor, &mut socket, &mut buf)?;
    println!("demo_server: [conn {id}] {peer} connected");
    let mut line = Vec::new();
    loop {
        let n = read_socket(&mut socket, &mut buf)?;
        if n == 0 {
            tls.get_mut().feed_eof();
        } else {
            tls.get_mut().feed(&buf[..n]);
        }
        let mut plain = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut plain) {
                // Everything fed so far is decrypted before the end of stream is fed, so an
                // end while the transport is not at EOF can only be the client's close_notify.
                Ok(0) if !tls.get_ref().is_eof() => {
                    tls.shutdown()?;
                    let out = tls.get_mut().take_outbound();
                    socket.write_all(&out)?;
                    let _ = socket.shutdown(Shutdown::Write);
                    return Ok(
                        "client sent close_notify; answered with close_notify: CLEAN".into(),
                    );
                }
                Ok(0) => {
                    return Ok("client closed TCP WITHOUT close_notify: unexpected eof".into());
                }
                Ok(k) => {
                    tls.write_all(&plain[..k])?;
                    for &b in &plain[..k] {
                        if b == b'\n' {
                            if line.strip_suffix(b"\r").unwrap_or(&line) == b"bye" {
                                println!("demo_server: [conn {id}] got bye, sending quit");
                                tls.write_all(b"quit\n")?;
                            }
                            line.clear();
                        } else if line.len() < 64 {
                            line.push(b);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        let out = tls.get_mut().take_outbound();
        socket.write_all(&out)?;
    }
}

fn handshake(
    acceptor: &TlsAcceptor,
    socket: &mut TcpStream,
    buf: &mut [u8],
) -> Result<TlsStream<MemoryTransport>> {
    let mut result = acceptor.accept(MemoryTransport::new());
    loop {
        match result {
            Ok(mut tls) => {
                socket.write_all(&tls.get_mut().take_outbound())?;
                return Ok(tls);
            }
            Err(HandshakeError::Failure(e)) => return Err(format!("handshake failed: {e}").into()),
            Err(HandshakeError::WouldBlock(mut mid)) => {
                socket.write_all(&mid.get_mut().take_outbound())?;
                let n = read_socket(socket, buf)?;
                if n == 0 {
                    return Err("client left during the handshake".into());
                }
                mid.get_mut().feed(&buf[..n]);
                result = mid.handshake();
            }
        }
    }
}

fn read_socket(socket: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match socket.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
