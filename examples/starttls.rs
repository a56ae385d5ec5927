//! STARTTLS: the SMTP greeting, `EHLO` and `STARTTLS` in clear on a `TcpStream`, then TLS on
//! the same socket with [`gracetls::Stream::from_tcp`], one command over TLS, and a graceful
//! close. Exits 0 only on a clean close.
//!
//! ```text
//! python3 tests/peers/fanout_server.py --certs-dir /tmp/pki   # makes the certificates; stop it
//! python3 tests/peers/starttls_server.py --cert /tmp/pki/server.pem \
//!     --key /tmp/pki/server.key --tls 1.3                     # prints LISTENING PORT
//! cargo run --example starttls -- localhost:PORT /tmp/pki/ca.pem
//! cargo run --example starttls -- smtp.example.com:587        # a real server, system roots
//! ```

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use gracetls::{Config, Outcome, Stream};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(target), ca) = (args.next(), args.next()) else {
        return Err("usage: starttls HOST:PORT [CA.pem]".into());
    };
    let socket = TcpStream::connect(&target)?;
    let mut clear = BufReader::new(&socket);
    reply(&mut clear, "220")?;
    (&socket).write_all(b"EHLO gracetls.example\r\n")?;
    let offers = reply(&mut clear, "250")?;
    if !offers.iter().any(|l| l[4..].trim() == "STARTTLS") {
        return Err("the server does not offer STARTTLS".into());
    }
    (&socket).write_all(b"STARTTLS\r\n")?;
    reply(&mut clear, "220")?;
    // Whatever the server sent past its reply would be TLS's: none may be in our buffer.
    if !clear.buffer().is_empty() {
        return Err("the server spoke before the TLS handshake".into());
    }
    drop(clear);

    let host = target.rsplit_once(':').map_or(&*target, |(host, _)| host);
    let config = ca.map_or_else(Config::new, |ca| Config::new().with_ca_file(ca));
    let stream = Stream::from_tcp(&config, socket, host)?;
    println!("TLS: {:?}", stream.session().version());
    (&stream).write_all(b"EHLO gracetls.example\r\n")?;
    print!("< {}", reply(&mut BufReader::new(&stream), "")?.join("< "));
    let report = stream.close();
    println!("{report:?}");
    if report.outcome() != Outcome::Clean {
        return Err(format!("not a clean close: {:?}", report.outcome()).into());
    }
    Ok(())
}

/// One SMTP reply (`CODE-...` lines, then `CODE ...`) whose lines start with `code`.
fn reply(reader: &mut impl BufRead, code: &str) -> Result<Vec<String>, Box<dyn Error>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || !line.starts_with(code) || line.len() < 4 {
            return Err(format!("expected a {code} reply, got {line:?}").into());
        }
        let last = line.as_bytes()[3] != b'-';
        lines.push(line);
        if last {
            return Ok(lines);
        }
    }
}
