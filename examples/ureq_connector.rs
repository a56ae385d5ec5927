//! ureq 2 with gracetls as its TLS: a `ureq::TlsConnector` that wraps the `TcpStream` ureq
//! dialed with [`gracetls::Stream::from_tcp`]. ureq pools the connection and drops it with
//! the agent; gracetls's `Drop` then sends close_notify, and `Config::with_on_close` prints how
//! the close went. Exits 0 only on a 2xx answer and a clean close.
//!
//! ```text
//! cargo run --example ureq_connector -- https://localhost:8443/ --ca-file /tmp/pki/ca.pem
//! ```

use std::error::Error;
use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use gracetls::{Config, Outcome, Stream};
use ureq::ReadWrite;

pub struct Gracetls(pub Config);

/// The TLS stream, and ureq's own stream for `socket()`: a `Stream` cannot lend a
/// `&TcpStream`, so ureq gets the one it dialed, a second descriptor of the same socket.
/// Through it ureq sets each request's timeout (shared by both descriptors, so gracetls's
/// reads obey it, also on a reused connection) and peeks an idle pooled connection for a
/// close; it reads nothing.
#[derive(Debug)]
struct Tls(Stream, Box<dyn ReadWrite>);

impl ureq::TlsConnector for Gracetls {
    fn connect(
        &self,
        host: &str,
        tcp: Box<dyn ReadWrite>,
    ) -> Result<Box<dyn ReadWrite>, ureq::Error> {
        let socket = tcp
            .socket()
            .ok_or_else(|| io::Error::other("no TCP socket"))?;
        let tls = Stream::from_tcp(&self.0, socket.try_clone()?, host).map_err(io::Error::from)?;
        Ok(Box::new(Tls(tls, tcp)))
    }
}

impl ReadWrite for Tls {
    fn socket(&self) -> Option<&TcpStream> {
        self.1.socket()
    }
}

impl io::Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl io::Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, config) = match &args[..] {
        [url] => (url, Config::new()),
        [url, flag, ca] if flag == "--ca-file" => (url, Config::new().with_ca_file(ca)),
        _ => return Err("usage: ureq_connector URL [--ca-file CA.pem]".into()),
    };
    let outcome = Arc::new(Mutex::new(None));
    let config = config.with_on_close({
        let outcome = Arc::clone(&outcome);
        move |report| {
            eprintln!("closed: {report:?}");
            *outcome.lock().expect("no panic while held") = Some(report.outcome());
        }
    });
    let agent = ureq::AgentBuilder::new()
        .tls_connector(Arc::new(Gracetls(config)))
        .build();
    print!("{}", agent.get(url).call()?.into_string()?);
    drop(agent); // closes the pooled connection
    match *outcome.lock().expect("no panic while held") {
        Some(Outcome::Clean) => Ok(()),
        other => Err(format!("not a clean close: {other:?}").into()),
    }
}
