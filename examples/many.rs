//! Many `Stream`s to one server (1,000 by default), a line echoed on each, then all closed
//! from this one thread, each with close_notify. The server's own count is the referee.
//! Exits 0 only if every close was clean.
//!
//! ```text
//! python3 tests/peers/fanout_server.py --certs-dir /tmp/pki   # READY PORT STATS
//! cargo run --release --example many -- localhost:PORT /tmp/pki/ca.pem 1000
//! echo now | nc 127.0.0.1 STATS                               # close_notify=1000
//! ```

use std::error::Error;
use std::io::{Read, Write};

use gracetls::{Config, Outcome, Stream};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(ca)) = (args.next(), args.next()) else {
        return Err("usage: many HOST:PORT CA.pem [N]".into());
    };
    let n: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    rlimit::increase_nofile_limit(n as u64 + 64)?;
    let config = Config::new().with_ca_file(ca); // one connector, shared by every connection
    let streams = (0..n)
        .map(|_| Stream::connect(&config, &target))
        .collect::<Result<Vec<_>, _>>()?;
    for mut stream in &streams {
        stream.write_all(b"ping\n")?;
        stream.read_exact(&mut [0u8; 5])?;
    }
    let clean = streams
        .iter()
        .map(Stream::close)
        .filter(|report| report.outcome() == Outcome::Clean)
        .count();
    println!("{clean} of {n} closed cleanly");
    if clean != n {
        return Err(format!("{} closes were not clean", n - clean).into());
    }
    Ok(())
}
