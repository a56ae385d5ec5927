//! The rustls referee client: connects, prints `READY` once the ready text has arrived and one
//! `VERDICT` line saying how the server ended the connection (the protocol is in
//! `tests/referees/referee.py`).
//!
//! rustls is its own judge: its reader returns `Ok(0)` only after the peer's close_notify and
//! fails with `UnexpectedEof` when TCP ends without it.
//!
//! Built as the example `referee_rustls` (`cargo build --example referee_rustls`) for the
//! comparison script; the tests run [`referee`] in process.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// What the referee is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub ca: std::path::PathBuf,
    /// `"1.2"` or `"1.3"`.
    pub tls: String,
    pub timeout: Duration,
    /// Send close_notify once ready, and judge the server's answer.
    pub close: bool,
    pub ready_text: String,
}

/// Runs the referee, giving each line it prints (`READY`, then `VERDICT ...`) to `say`.
pub fn referee(o: &Options, say: &mut dyn FnMut(String)) {
    match session(o, say) {
        Ok(line) | Err(line) => say(line),
    }
}

fn session(o: &Options, say: &mut dyn FnMut(String)) -> Result<String, String> {
    let pem = std::fs::read(&o.ca).map_err(|e| format!("VERDICT error {}: {e}", o.ca.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("VERDICT error CA: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("VERDICT error CA: {e}"))?;
    }
    let version: &[&rustls::SupportedProtocolVersion] = if o.tls == "1.2" {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    // An explicit provider: the process-wide default may be unset.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(version)
        .map_err(|e| format!("VERDICT error config: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(|e| format!("VERDICT error {e}"))?;
    let conn =
        ClientConnection::new(Arc::new(config), name).map_err(|e| format!("VERDICT error {e}"))?;
    let deadline = Instant::now() + o.timeout;
    let addr = (o.host.as_str(), o.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("VERDICT error cannot resolve {}", o.host))?;
    let tcp = TcpStream::connect_timeout(&addr, o.timeout)
        .map_err(|e| format!("VERDICT error connect: {e}"))?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut got = Vec::new();
    let mut ready = false;
    let mut buf = vec![0u8; 65536];
    let mut close = o.close;
    loop {
        if ready && close {
            close = false;
            tls.conn.send_close_notify();
            tls.flush()
                .map_err(|e| format!("VERDICT error close_notify: {e}"))?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok("VERDICT open rustls: still connected at the timeout".into());
        }
        let _ = tls.sock.set_read_timeout(Some(left));
        match tls.read(&mut buf) {
            Ok(0) => return Ok("VERDICT close_notify read() returned Ok(0)".into()),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if !ready && contains(&got, o.ready_text.as_bytes()) {
                    ready = true;
                    say("READY".into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Ok(format!("VERDICT bare_fin UnexpectedEof: {e}"));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Ok(format!("VERDICT reset {e}"));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok("VERDICT open rustls: still connected at the timeout".into());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Ok(format!("VERDICT error {e}")),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The command line: the same options as `referee.py`'s clients.
#[allow(dead_code)] // the tests include this file for `referee` alone
fn main() {
    let mut o = Options {
        host: "127.0.0.1".into(),
        port: 0,
        ca: Default::default(),
        tls: "1.3".into(),
        timeout: Duration::from_secs(15),
        close: false,
        ready_text: "hello".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--host" => o.host = value(),
            "--port" => o.port = value().parse().unwrap_or(0),
            "--ca" => o.ca = value().into(),
            "--tls" => o.tls = value(),
            "--timeout" => {
                o.timeout = Duration::from_secs_f64(value().parse().unwrap_or(15.0));
            }
            "--ready-text" => o.ready_text = value(),
            "--close" => o.close = true,
            other => {
                println!("VERDICT error unknown argument {other}");
                return;
            }
        }
    }
    let stdout = io::stdout();
    referee(&o, &mut |line| {
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
}
