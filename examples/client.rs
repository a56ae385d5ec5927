//! The library in a synchronous program: connect, send lines from one thread while another
//! prints what the server sends, then close gracefully and print the close report.
//!
//! ```text
//! cargo run --example client -- HOST:PORT CA.pem
//! ```
//!
//! It closes once the server sends a `quit` line, as in `make demo`: against
//! `openssl s_server -brief -accept 4433 -cert cert.pem -key key.pem`, type `quit` there
//! when `bye` arrives.

use std::io::Write;
use std::sync::Arc;
use std::thread;

use gracetls::{Config, Connection, Event};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(ca)) = (args.next(), args.next()) else {
        eprintln!("usage: client HOST:PORT CA.pem");
        std::process::exit(2);
    };
    let conn = match Connection::connect(&Config::new().with_ca_file(ca), &target) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("client: {e}");
            std::process::exit(1);
        }
    };
    // Write from another thread while this one waits for events: the reader never holds
    // the TLS lock while it waits for the server, so neither side blocks the other.
    let stream = Arc::clone(conn.stream());
    let writer = thread::spawn(move || {
        for line in ["hello\n", "bye\n"] {
            if (&*stream).write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut received = Vec::new();
    // Read until the server's "quit", its answer to "bye", then close.
    while !received.ends_with(b"quit\n") {
        match conn.events().recv() {
            Ok(Event::Data(bytes)) => {
                print!("{}", String::from_utf8_lossy(&bytes));
                received.extend_from_slice(&bytes);
            }
            Ok(other) => {
                println!("({other:?})");
                break;
            }
            Err(_) => break,
        }
    }
    let _ = writer.join();
    let report = conn.close();
    println!("{report:?}");
}
