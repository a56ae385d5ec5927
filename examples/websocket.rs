//! A WebSocket client (tungstenite) over `&Stream`: a message each way, then this thread
//! blocks in `read` until another thread closes the stream (on a line or the end of stdin):
//! the read ends at once and the server gets close_notify. Exits 0 only on a clean close.
//!
//! ```text
//! cargo run --example websocket_server -- --ca-out /tmp/ws-ca.pem   # prints its port
//! echo | cargo run --example websocket -- localhost:PORT /tmp/ws-ca.pem
//! ```

use std::error::Error;
use std::sync::Arc;
use std::thread;

use gracetls::{Config, Outcome, Stream};
use tungstenite::Message;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(ca)) = (args.next(), args.next()) else {
        return Err("usage: websocket HOST:PORT CA.pem".into());
    };
    let stream = Arc::new(Stream::connect(&Config::new().with_ca_file(ca), &target)?);
    let (mut ws, _) =
        tungstenite::client(format!("ws://{target}/"), &*stream).map_err(|e| e.to_string())?; // the error holds the borrowed stream
    ws.send(Message::text("hello over gracetls"))?;
    println!("< {}", ws.read()?);
    let closer = thread::spawn({
        let stream = Arc::clone(&stream);
        move || {
            let _ = std::io::stdin().read_line(&mut String::new());
            stream.close()
        }
    });
    // Blocks until the other thread closes: gracetls's Ok(0) without a WebSocket close
    // frame, which tungstenite reports as `ResetWithoutClosingHandshake`.
    println!("read ended: {:?}", ws.read());
    let report = closer.join().expect("the closing thread");
    println!("{report:?}");
    if report.outcome() != Outcome::Clean {
        return Err(format!("not a clean close: {:?}", report.outcome()).into());
    }
    Ok(())
}
