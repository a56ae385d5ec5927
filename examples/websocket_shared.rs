//! A WebSocket client (tungstenite) over one `Stream` shared by `try_clone()`: a thread that
//! only reads, a thread that only writes, and the main thread, which closes the stream once
//! every echo came back, while the reader is blocked in `read`. The server gets close_notify.
//! Exits 0 only on a clean close.
//!
//! ```text
//! cargo run --example websocket_server -- --ca-out /tmp/ws-ca.pem   # prints its port
//! cargo run --example websocket_shared -- localhost:PORT /tmp/ws-ca.pem
//! ```

use std::error::Error;
use std::sync::mpsc;
use std::thread;

use gracetls::{Config, Outcome, Stream};
use tungstenite::Message;
use tungstenite::protocol::{Role, WebSocket};

const MESSAGES: [&str; 3] = ["one", "two", "three"];

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(ca)) = (args.next(), args.next()) else {
        return Err("usage: websocket_shared HOST:PORT CA.pem".into());
    };
    let stream = Stream::connect(&Config::new().with_ca_file(ca), &target)?;
    let (mut reading, _) = tungstenite::client(format!("ws://{target}/"), stream.try_clone()?)
        .map_err(|e| e.to_string())?;
    let mut writing = WebSocket::from_raw_socket(stream.try_clone()?, Role::Client, None);

    let (echoes, echoed) = mpsc::channel();
    let reader = thread::spawn(move || {
        while let Ok(message) = reading.read() {
            let _ = echoes.send(message);
        }
    });
    let writer = thread::spawn(move || -> tungstenite::Result<()> {
        MESSAGES
            .iter()
            .try_for_each(|m| writing.send(Message::text(*m)))
    });
    writer.join().expect("the writing thread")?;
    for _ in MESSAGES {
        println!("< {}", echoed.recv()?);
    }
    let report = stream.close(); // the reader is blocked in `read`: it returns Ok(0)
    reader.join().expect("the reading thread");
    println!("{report:?}");
    if report.outcome() != Outcome::Clean {
        return Err(format!("not a clean close: {:?}", report.outcome()).into());
    }
    Ok(())
}
