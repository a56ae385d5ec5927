//! A WebSocket echo server for the `websocket` example: rustls, then `tungstenite::accept`;
//! it echoes messages and logs for each connection how it ended, as rustls saw it: the
//! client's close_notify, or TCP closed without it.
//!
//! ```text
//! cargo run --example websocket_server -- [--ca-out ws-ca.pem]
//! ```

use std::error::Error;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

#[path = "support/local_pki.rs"]
mod local_pki;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let ca_out = match (args.next().as_deref(), args.next()) {
        (Some("--ca-out"), Some(path)) => path,
        (None, _) => "ws-ca.pem".to_string(),
        _ => return Err("usage: websocket_server [--ca-out FILE]".into()),
    };
    let pki = local_pki::local_pki("gracetls websocket_server CA")?;
    std::fs::write(&ca_out, &pki.ca_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(pki.leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.leaf_key.serialize_der())),
        )?;
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!(
        "websocket_server: listening on {}, CA in {ca_out}",
        listener.local_addr()?
    );
    for (n, socket) in listener.incoming().enumerate() {
        let config = Arc::clone(&config);
        let socket = socket?;
        thread::spawn(move || println!("#{n}: {}", serve(socket, config)));
    }
    Ok(())
}

fn serve(socket: TcpStream, config: Arc<ServerConfig>) -> String {
    let conn = match ServerConnection::new(config) {
        Ok(conn) => conn,
        Err(e) => return format!("ERROR {e}"),
    };
    let mut ws = match tungstenite::accept(StreamOwned::new(conn, socket)) {
        Ok(ws) => ws,
        Err(e) => return format!("ERROR handshake: {e}"),
    };
    let ended = loop {
        match ws.read() {
            Ok(message) if message.is_close() => {} // tungstenite answers it
            Ok(message) => {
                if let Err(e) = ws.send(message) {
                    break e;
                }
            }
            Err(e) => break e,
        }
    };
    // What rustls reads after that tells how TLS ended: Ok(0) after the client's close_notify.
    match io::copy(ws.get_mut(), &mut io::sink()) {
        Ok(_) => format!("client sent close_notify: CLEAN (WebSocket: {ended})"),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            format!("client closed TCP WITHOUT close_notify (WebSocket: {ended})")
        }
        Err(e) => format!("ERROR {e} (WebSocket: {ended})"),
    }
}
