//! `io::copy` a file up through `&Stream` while another thread copies the answer down into a
//! file: the upload ends with a half-close (close_notify), the download at the server's
//! close_notify. Exits 0 only on a clean close.
//!
//! ```text
//! python3 tests/peers/fanout_server.py --certs-dir /tmp/pki   # an echo server: READY PORT STATS
//! head -c 200M /dev/urandom > /tmp/up.bin
//! cargo run --release --example copy -- localhost:PORT /tmp/pki/ca.pem /tmp/up.bin /tmp/down.bin
//! cmp /tmp/up.bin /tmp/down.bin
//! ```

use std::error::Error;
use std::fs::File;
use std::io;
use std::thread;

use gracetls::{Config, Outcome, Stream};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, ca, input, output] = &args[..] else {
        return Err("usage: copy HOST:PORT CA.pem INPUT OUTPUT".into());
    };
    let stream = Stream::connect(&Config::new().with_ca_file(ca), target)?;
    let (mut input, mut output) = (File::open(input)?, File::create(output)?);
    let (up, down) = thread::scope(|s| {
        let up = s.spawn(|| {
            let sent = io::copy(&mut input, &mut &stream)?;
            stream.shutdown_write()?;
            Ok::<_, io::Error>(sent)
        });
        let down = io::copy(&mut &stream, &mut output);
        (up.join().expect("the upload thread"), down)
    });
    let report = stream.close();
    println!("up {} bytes, down {} bytes, {report:?}", up?, down?);
    if report.outcome() != Outcome::Clean {
        return Err(format!("not a clean close: {:?}", report.outcome()).into());
    }
    Ok(())
}
