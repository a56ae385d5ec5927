//! The server side of `make bench`, and the two helpers that feed and check the pipes.
//!
//! ```text
//! bench_server serve --mode sink|source|answer|echo [--bytes N] [--plain]
//!                    --ca-out FILE --port-file FILE --log FILE
//! bench_server gen N         # N bytes of the benchmark pattern to stdout
//! bench_server count [--out FILE]   # bytes and sha256 of stdin, one JSON line
//! ```
//!
//! It is rustls, not OpenSSL, so that no client is measured against its own library, and it
//! offers exactly one suite (TLS 1.3 `TLS13_AES_128_GCM_SHA256`) so every client negotiates the
//! same one; each connection's log line names what was negotiated and the harness checks it.
//! The certificate (ECDSA P-256) is made at start; only the CA certificate is written, never a
//! key.
//!
//! Modes, one JSON line per connection in the log:
//! - `sink`: counts and hashes (sha256) everything until the client's close_notify or EOF,
//!   then answers with close_notify;
//! - `source`: sends `--bytes` of the pattern, then close_notify, then waits for the client;
//! - `answer`: reads one line, sends it back, then close_notify (one request, one reply);
//! - `echo`: echoes until the client's close_notify and answers it at once.
//!
//! `--plain` serves the same modes over plain TCP (the loopback limit).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};

#[path = "support/local_pki.rs"]
mod local_pki;
use local_pki::{LocalPki, local_pki};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Large socket and pipe reads: rustls alone reads the socket 4 KiB at a time, which would make
/// the server, not the client, pay most of the syscalls.
const IO_BUFFER: usize = 256 * 1024;
/// The pattern repeats with this period; random-looking so no layer can compress it.
const PATTERN_BLOCK: usize = 1024 * 1024;
/// How long a finished connection waits for the client's goodbye before closing anyway.
const LINGER: Duration = Duration::from_secs(10);

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_server: error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") => {
            let n = args.get(1).ok_or("gen needs a byte count")?.parse()?;
            generate(n)
        }
        Some("count") => count(args.get(1..).unwrap_or_default()),
        Some("serve") => serve(&args[1..]),
        _ => Err("usage: bench_server serve|gen|count ...".into()),
    }
}

fn pattern() -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = Vec::with_capacity(PATTERN_BLOCK);
    while block.len() < PATTERN_BLOCK {
        // xorshift64: cheap, deterministic, and no byte value is favoured.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        block.extend_from_slice(&state.to_le_bytes());
    }
    block
}

/// Raw stdout: Rust's line-buffered `Stdout` would split every write at a newline byte.
fn raw_stdout() -> io::Result<File> {
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

fn generate(mut n: u64) -> Result<()> {
    let block = pattern();
    let mut out = raw_stdout()?;
    while n > 0 {
        let k = n.min(block.len() as u64) as usize;
        out.write_all(&block[..k])?;
        n -= k as u64;
    }
    Ok(())
}

fn count(args: &[String]) -> Result<()> {
    let mut out_path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out_path = Some(it.next().ok_or("--out needs a file")?.clone()),
            _ => return Err(format!("unknown argument {a:?}").into()),
        }
    }
    let mut input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut buf = vec![0u8; IO_BUFFER];
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let line = format!(
        "{{\"bytes\":{total},\"sha256\":\"{}\"}}\n",
        hex(&hasher.finalize())
    );
    match out_path {
        Some(p) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?
            .write_all(line.as_bytes())?,
        None => io::stdout().write_all(line.as_bytes())?,
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Sink,
    Source,
    Answer,
    Echo,
}

struct Options {
    mode: Mode,
    bytes: u64,
    plain: bool,
}

fn serve(args: &[String]) -> Result<()> {
    let mut mode = None;
    let (mut bytes, mut plain) = (0u64, false);
    let (mut ca_out, mut port_file, mut log_path) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--mode" => {
                mode = Some(match value()?.as_str() {
                    "sink" => Mode::Sink,
                    "source" => Mode::Source,
                    "answer" => Mode::Answer,
                    "echo" => Mode::Echo,
                    m => return Err(format!("unknown mode {m:?}").into()),
                })
            }
            "--bytes" => bytes = value()?.parse()?,
            "--plain" => plain = true,
            "--ca-out" => ca_out = Some(value()?),
            "--port-file" => port_file = Some(value()?),
            "--log" => log_path = Some(value()?),
            _ => return Err(format!("unknown argument {a:?}").into()),
        }
    }
    let options = Arc::new(Options {
        mode: mode.ok_or("--mode is required")?,
        bytes,
        plain,
    });
    let (ca_pem, config) = make_config()?;
    if let Some(p) = ca_out {
        std::fs::write(p, ca_pem)?;
    }
    let log: Box<dyn Write + Send> = match log_path {
        Some(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        None => Box::new(io::stdout()),
    };
    let log = Arc::new(Mutex::new(log));
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    // Written last and renamed into place: once the file exists, the server is ready.
    if let Some(p) = port_file {
        let tmp = format!("{p}.tmp");
        std::fs::write(&tmp, port.to_string())?;
        std::fs::rename(tmp, p)?;
    }
    let block = Arc::new(pattern());
    for (n, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else { continue };
        let (config, options, log, block) = (
            Arc::clone(&config),
            Arc::clone(&options),
            Arc::clone(&log),
            Arc::clone(&block),
        );
        thread::spawn(move || {
            let started = Instant::now();
            let line = match handle(stream, &config, &options, &block) {
                Ok(fields) => fields,
                Err(e) => format!("\"error\":{:?}", e.to_string()),
            };
            let line = format!(
                "{{\"conn\":{},\"ms\":{:.3},{line}}}\n",
                n + 1,
                started.elapsed().as_secs_f64() * 1e3
            );
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            let _ = log.write_all(line.as_bytes()).and_then(|()| log.flush());
        });
    }
    Ok(())
}

fn make_config() -> Result<(String, Arc<ServerConfig>)> {
    let LocalPki {
        ca_pem,
        leaf,
        leaf_key,
    } = local_pki("gracetls bench CA")?;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    Ok((ca_pem, Arc::new(config)))
}

/// How a read ended.
enum Got {
    Data(usize),
    CloseNotify,
    Eof,
}

impl Got {
    fn name(&self) -> &'static str {
        match self {
            Got::Data(_) => "data",
            Got::CloseNotify => "close_notify",
            Got::Eof => "eof",
        }
    }
}

/// One connection, TLS or plain, with the same calls for every mode.
struct Link {
    tls: Option<ServerConnection>,
    socket: TcpStream,
    input: BufReader<TcpStream>,
}

impl Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<Got> {
        let Some(tls) = &mut self.tls else {
            let n = self.input.read(buf)?;
            return Ok(if n == 0 { Got::Eof } else { Got::Data(n) });
        };
        loop {
            match tls.reader().read(buf) {
                Ok(0) => return Ok(Got::CloseNotify),
                Ok(n) => return Ok(Got::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Got::Eof),
                Err(e) => return Err(e),
            }
            tls.read_tls(&mut self.input)?;
            let processed = tls.process_new_packets();
            // Session tickets, KeyUpdate answers and alerts go out before we block again.
            while tls.wants_write() {
                tls.write_tls(&mut self.socket)?;
            }
            processed.map_err(io::Error::other)?;
        }
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return self.socket.write_all(data);
        };
        while !data.is_empty() {
            let n = tls.writer().write(data)?;
            data = &data[n..];
            while tls.wants_write() {
                tls.write_tls(&mut self.socket)?;
            }
        }
        Ok(())
    }

    /// close_notify (TLS) and FIN.
    fn finish(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            while tls.wants_write() {
                tls.write_tls(&mut self.socket)?;
            }
        }
        self.socket.shutdown(Shutdown::Write)
    }

    /// Reads until the client's goodbye, bounded, so closing does not answer it with a reset.
    fn linger(&mut self, buf: &mut [u8]) -> &'static str {
        let _ = self.socket.set_read_timeout(Some(LINGER));
        loop {
            match self.read(buf) {
                Ok(Got::Data(_)) => {}
                Ok(end) => return end.name(),
                Err(_) => return "error",
            }
        }
    }

    fn negotiated(&self) -> String {
        match &self.tls {
            None => "\"version\":\"plain\",\"suite\":null".into(),
            Some(tls) => format!(
                "\"version\":{:?},\"suite\":{:?}",
                tls.protocol_version()
                    .map_or("none".into(), |v| format!("{v:?}")),
                tls.negotiated_cipher_suite()
                    .map_or("none".into(), |s| format!("{:?}", s.suite()))
            ),
        }
    }
}

fn handle(
    socket: TcpStream,
    config: &Arc<ServerConfig>,
    options: &Options,
    block: &[u8],
) -> Result<String> {
    socket.set_nodelay(true)?;
    let input = BufReader::with_capacity(IO_BUFFER, socket.try_clone()?);
    let mut link = Link {
        tls: None,
        socket,
        input,
    };
    if !options.plain {
        let mut tls = ServerConnection::new(Arc::clone(config))?;
        tls.set_buffer_limit(Some(IO_BUFFER));
        while tls.is_handshaking() {
            let mut io = JoinedIo {
                read: &mut link.input,
                write: &mut link.socket,
            };
            tls.complete_io(&mut io)?;
        }
        link.tls = Some(tls);
    }
    let negotiated = link.negotiated();
    let mut buf = vec![0u8; IO_BUFFER];
    let fields = match options.mode {
        Mode::Sink => {
            let mut hasher = Sha256::new();
            let mut total = 0u64;
            let end = loop {
                match link.read(&mut buf)? {
                    Got::Data(n) => {
                        hasher.update(&buf[..n]);
                        total += n as u64;
                    }
                    end => break end.name(),
                }
            };
            let answer = answer(link.finish());
            format!(
                "\"mode\":\"sink\",\"bytes\":{total},\"sha256\":\"{}\",\"client_end\":\"{end}\",{answer}",
                hex(&hasher.finalize())
            )
        }
        Mode::Source => {
            let mut left = options.bytes;
            while left > 0 {
                let k = left.min(block.len() as u64) as usize;
                link.write_all(&block[..k])?;
                left -= k as u64;
            }
            link.finish()?;
            let end = link.linger(&mut buf);
            format!(
                "\"mode\":\"source\",\"bytes\":{},\"client_end\":\"{end}\"",
                options.bytes
            )
        }
        Mode::Answer => {
            let mut line = Vec::new();
            let mut end = "data";
            while !line.contains(&b'\n') {
                match link.read(&mut buf)? {
                    Got::Data(n) => line.extend_from_slice(&buf[..n]),
                    other => {
                        end = other.name();
                        break;
                    }
                }
            }
            link.write_all(&line)?;
            link.finish()?;
            if end == "data" {
                end = link.linger(&mut buf);
            }
            format!(
                "\"mode\":\"answer\",\"bytes\":{},\"client_end\":\"{end}\"",
                line.len()
            )
        }
        Mode::Echo => {
            let mut total = 0u64;
            let end = loop {
                match link.read(&mut buf)? {
                    Got::Data(n) => {
                        link.write_all(&buf[..n])?;
                        total += n as u64;
                    }
                    end => break end.name(),
                }
            };
            let answer = answer(link.finish());
            format!("\"mode\":\"echo\",\"bytes\":{total},\"client_end\":\"{end}\",{answer}")
        }
    };
    Ok(format!("{fields},{negotiated}"))
}

/// Our goodbye can race with a client that closes at once after its own (a fast close): the
/// reset that answers it says nothing about how the client left, so it is logged apart.
fn answer(result: io::Result<()>) -> String {
    match result {
        Ok(()) => "\"answer\":\"sent\"".into(),
        Err(e) => format!("\"answer\":{:?}", e.to_string()),
    }
}

/// The buffered read half and the raw write half as one stream, for the handshake.
struct JoinedIo<'a> {
    read: &'a mut BufReader<TcpStream>,
    write: &'a mut TcpStream,
}

impl Read for JoinedIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for JoinedIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write.flush()
    }
}
