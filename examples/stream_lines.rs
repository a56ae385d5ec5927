//! `BufRead::lines()` over a [`gracetls::Stream`] on one thread, closed from another: the
//! blocked read returns `Ok(0)`, the loop ends, and the server gets close_notify. Exits 0 only
//! on a clean close.
//!
//! ```text
//! python3 tests/peers/fanout_server.py --certs-dir /tmp/pki   # an echo server: READY PORT STATS
//! cargo run --example stream_lines -- localhost:PORT /tmp/pki/ca.pem
//! ```

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use gracetls::{Config, Outcome, Stream};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(ca)) = (args.next(), args.next()) else {
        return Err("usage: stream_lines HOST:PORT CA.pem".into());
    };
    let stream = Arc::new(Stream::connect(&Config::new().with_ca_file(ca), &target)?);
    let (line_tx, line_rx) = mpsc::channel();
    let reader = thread::spawn({
        let stream = Arc::clone(&stream);
        move || {
            for line in BufReader::new(&*stream).lines() {
                let line = line?;
                println!("< {line}");
                let _ = line_tx.send(line);
            }
            Ok::<_, std::io::Error>(()) // the server's close_notify, or our close
        }
    });
    for line in ["hello", "world"] {
        writeln!(&*stream, "{line}")?;
    }
    for _ in 0..2 {
        line_rx.recv_timeout(Duration::from_secs(10))?;
    }
    // The reader is blocked in read(): close from this thread.
    let report = stream.close();
    reader.join().expect("the reader thread")?;
    println!("{report:?}");
    if report.outcome() != Outcome::Clean {
        return Err(format!("not a clean close: {:?}", report.outcome()).into());
    }
    Ok(())
}
