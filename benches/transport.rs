//! The cost of gracetls's concurrency design, in process: the same bytes through gracetls and
//! through a plain blocking native-tls `TlsStream<TcpStream>`, both against one rustls server
//! thread on 127.0.0.1, both directions.
//!
//! - `upload` / `download`: a [`gracetls::Connection`] (its reader thread, events) in 64 KiB
//!   writes, against `TlsStream` in the same writes.
//! - `copy_upload` / `copy_download`: a [`gracetls::Stream`] used as `std::io` code uses it,
//!   `io::copy` through `&Stream` with 8 KiB writes and 8 KiB reads, against `TlsStream` with
//!   the same calls.
//! - `stream_upload_64k` / `stream_download_64k`: `&Stream` written in 64 KiB writes and read
//!   with 64 KiB reads, against `TlsStream` with the same calls.
//! - `cpu_upload_8k`, `cpu_upload_64k`, `cpu_download_8k`, `cpu_download_64k`: `&Stream`
//!   against `TlsStream` with the same calls (writes of 8 or 64 KiB, reads of 8 or 64 KiB),
//!   measured in the calling thread's CPU time ([`ThreadCpu`]) instead of wall time: the
//!   client's cost per byte without the server's, which wall time on a shared machine blurs.
//!
//! Per iteration: upload sends `CHUNK` bytes and waits for the server's one-byte receipt;
//! download asks with one byte and reads `CHUNK` bytes. The connection stays up across
//! iterations, so the handshake is not measured.
//!
//! `cargo bench --bench transport`; bench/report reads target/criterion/*/*/new/estimates.json.

use std::hint::black_box;
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use gracetls::{Config, Connection, Event, Stream};
use native_tls::{Certificate, TlsConnector, TlsStream};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

#[cfg(unix)]
#[path = "support/thread_cpu.rs"]
mod thread_cpu;
#[cfg(unix)]
use thread_cpu::ThreadCpu;

/// Bytes per iteration: large enough that the per-iteration round trip is noise.
const CHUNK: usize = 8 * 1024 * 1024;
/// What a client hands over per call, as the command line does with stdin.
const WRITE: usize = 64 * 1024;
/// The `copy_*` groups' writes and reads: `std::io::copy`'s own buffer size.
const SMALL_IO: usize = 8 * 1024;

struct Server {
    port: u16,
    ca_file: PathBuf,
    ca_pem: Vec<u8>,
}

/// A rustls server: each connection starts with `U` (sink, one receipt byte per `CHUNK`) or
/// `D` (one `CHUNK` per request byte).
fn start_server() -> Server {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let dir = std::env::temp_dir().join(format!("gracetls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, cert.pem()).expect("write CA");

    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            thread::spawn(move || {
                let _ = serve(socket, config);
            });
        }
    });
    Server {
        port,
        ca_pem: cert.pem().into_bytes(),
        ca_file,
    }
}

fn serve(socket: TcpStream, config: Arc<ServerConfig>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    // Big reads: rustls alone reads 4 KiB per syscall and the server would set the pace.
    let mut tls = rustls::StreamOwned::new(conn, BufferedSocket::new(socket)?);
    let mut buf = vec![0u8; 256 * 1024];
    let mut mode = [0u8; 1];
    tls.read_exact(&mut mode)?;
    if mode[0] == b'U' {
        let mut got = 0;
        loop {
            let n = tls.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            got += n;
            while got >= CHUNK {
                got -= CHUNK;
                tls.write_all(b"k")?;
                tls.flush()?;
            }
        }
    }
    let data = vec![0x5au8; CHUNK];
    loop {
        if tls.read(&mut mode)? == 0 {
            return Ok(());
        }
        tls.write_all(&data)?;
        tls.flush()?;
    }
}

/// Socket reads through a 256 KiB buffer, writes straight through.
struct BufferedSocket {
    read: BufReader<TcpStream>,
    write: TcpStream,
}

impl BufferedSocket {
    fn new(socket: TcpStream) -> io::Result<Self> {
        Ok(Self {
            read: BufReader::with_capacity(256 * 1024, socket.try_clone()?),
            write: socket,
        })
    }
}

impl Read for BufferedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for BufferedSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.write.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gracetls_connect(server: &Server, mode: u8) -> Connection {
    let config = Config::new().with_ca_file(&server.ca_file);
    let conn = Connection::connect(&config, &format!("localhost:{}", server.port))
        .expect("gracetls connect");
    conn.send(&[mode]).expect("send mode");
    conn
}

fn stream_connect(server: &Server, mode: u8) -> Stream {
    let config = Config::new().with_ca_file(&server.ca_file);
    let stream =
        Stream::connect(&config, &format!("localhost:{}", server.port)).expect("gracetls connect");
    (&stream).write_all(&[mode]).expect("send mode");
    stream
}

fn native_connect(server: &Server, mode: u8) -> TlsStream<TcpStream> {
    let ca = Certificate::from_pem(&server.ca_pem).expect("CA");
    let connector = TlsConnector::builder()
        .add_root_certificate(ca)
        .build()
        .expect("connector");
    let socket = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let mut tls = connector.connect("localhost", socket).expect("handshake");
    tls.write_all(&[mode]).expect("send mode");
    tls
}

/// Waits for `n` bytes of events; panics on anything else, so a broken run cannot look fast.
fn gracetls_receive(conn: &Connection, n: usize) {
    let mut got = 0;
    while got < n {
        match conn.events().recv_timeout(Duration::from_secs(30)) {
            Ok(Event::Data(data)) => got += black_box(data).len(),
            other => panic!("gracetls: expected data, got {other:?}"),
        }
    }
    assert_eq!(got, n, "gracetls received more than asked");
}

/// `n` bytes of 0xa5, at most [`SMALL_IO`] per read: `io::copy` then writes 8 KiB at a time.
struct Source {
    left: usize,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(SMALL_IO).min(self.left);
        buf[..n].fill(0xa5);
        self.left -= n;
        Ok(n)
    }
}

/// `CHUNK` bytes up with `io::copy`, then the server's receipt.
fn copy_up(mut writer: impl Read + Write) {
    let sent = io::copy(&mut Source { left: CHUNK }, &mut writer).expect("copy up");
    assert_eq!(sent, CHUNK as u64);
    writer.read_exact(&mut [0u8; 1]).expect("receipt");
}

/// `data` (`CHUNK` bytes) up in writes of `write` bytes, then the server's receipt.
fn write_up(mut writer: impl Read + Write, data: &[u8], write: usize) {
    for piece in data.chunks(write) {
        writer.write_all(piece).expect("write");
    }
    writer.read_exact(&mut [0u8; 1]).expect("receipt");
}

/// Asks for `CHUNK` bytes and reads them in reads of `buf.len()`.
fn copy_down(mut reader: impl Read + Write, buf: &mut [u8]) {
    reader.write_all(b"g").expect("request");
    let mut got = 0;
    while got < CHUNK {
        let n = reader.read(buf).expect("read");
        assert!(n > 0, "the stream ended early");
        got += black_box(n);
    }
}

/// Both directions measure the same way: CHUNK bytes per iteration, few long samples.
fn group<'a, M: Measurement>(c: &'a mut Criterion<M>, name: &str) -> BenchmarkGroup<'a, M> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(CHUNK as u64));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g
}

/// `Stream` against `TlsStream` reading CHUNK bytes in reads of `buf.len()`.
fn download<M: Measurement>(c: &mut Criterion<M>, server: &Server, name: &str, buf: &mut [u8]) {
    let mut down = group(c, name);
    {
        let stream = stream_connect(server, b'D');
        down.bench_function("stream", |b| b.iter(|| copy_down(&stream, buf)));
        stream.close();
    }
    {
        let mut tls = native_connect(server, b'D');
        down.bench_function("tlsstream", |b| b.iter(|| copy_down(&mut tls, buf)));
        let _ = tls.shutdown();
    }
    down.finish();
}

/// `Stream` against `TlsStream` writing `data` (CHUNK bytes) in writes of `write` bytes.
fn upload<M: Measurement>(
    c: &mut Criterion<M>,
    server: &Server,
    name: &str,
    data: &[u8],
    write: usize,
) {
    let mut up = group(c, name);
    {
        let stream = stream_connect(server, b'U');
        up.bench_function("stream", |b| b.iter(|| write_up(&stream, data, write)));
        stream.close();
    }
    {
        let mut tls = native_connect(server, b'U');
        up.bench_function("tlsstream", |b| b.iter(|| write_up(&mut tls, data, write)));
        let _ = tls.shutdown();
    }
    up.finish();
}

fn transport(c: &mut Criterion) {
    let server = start_server();
    let data = vec![0xa5u8; CHUNK];

    let mut up = group(c, "upload");
    {
        let conn = gracetls_connect(&server, b'U');
        up.bench_function("connection", |b| {
            b.iter(|| {
                for piece in data.chunks(WRITE) {
                    conn.send(piece).expect("send");
                }
                gracetls_receive(&conn, 1);
            })
        });
        conn.close();
    }
    {
        let mut tls = native_connect(&server, b'U');
        let mut receipt = [0u8; 1];
        up.bench_function("tlsstream", |b| {
            b.iter(|| {
                for piece in data.chunks(WRITE) {
                    tls.write_all(piece).expect("write");
                }
                tls.read_exact(&mut receipt).expect("receipt");
            })
        });
        let _ = tls.shutdown();
    }
    up.finish();

    let mut down = group(c, "download");
    {
        let conn = gracetls_connect(&server, b'D');
        down.bench_function("connection", |b| {
            b.iter(|| {
                conn.send(b"g").expect("send");
                gracetls_receive(&conn, CHUNK);
            })
        });
        conn.close();
    }
    {
        let mut tls = native_connect(&server, b'D');
        let mut buf = vec![0u8; WRITE];
        down.bench_function("tlsstream", |b| {
            b.iter(|| {
                tls.write_all(b"g").expect("write");
                let mut got = 0;
                while got < CHUNK {
                    let n = tls.read(&mut buf).expect("read");
                    assert!(n > 0, "native-tls: stream ended early");
                    got += black_box(n);
                }
            })
        });
        let _ = tls.shutdown();
    }
    down.finish();

    let mut up = group(c, "copy_upload");
    {
        let stream = stream_connect(&server, b'U');
        up.bench_function("stream", |b| b.iter(|| copy_up(&stream)));
        stream.close();
    }
    {
        let mut tls = native_connect(&server, b'U');
        up.bench_function("tlsstream", |b| b.iter(|| copy_up(&mut tls)));
        let _ = tls.shutdown();
    }
    up.finish();

    upload(c, &server, "stream_upload_64k", &data, WRITE);

    download(c, &server, "copy_download", &mut [0u8; SMALL_IO]);
    download(c, &server, "stream_download_64k", &mut vec![0u8; WRITE]);
    let _ = std::fs::remove_dir_all(server.ca_file.parent().expect("temp dir"));
}

/// The `Stream` groups again, in the calling thread's CPU time: what the issue's "no more than
/// native-tls's CPU" is measured with.
#[cfg(unix)]
fn client_cpu(c: &mut Criterion<ThreadCpu>) {
    let server = start_server();
    let data = vec![0xa5u8; CHUNK];
    upload(c, &server, "cpu_upload_8k", &data, SMALL_IO);
    upload(c, &server, "cpu_upload_64k", &data, WRITE);
    download(c, &server, "cpu_download_8k", &mut [0u8; SMALL_IO]);
    download(c, &server, "cpu_download_64k", &mut vec![0u8; WRITE]);
    let _ = std::fs::remove_dir_all(server.ca_file.parent().expect("temp dir"));
}

criterion_group!(benches, transport);
#[cfg(unix)]
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = client_cpu
}
#[cfg(unix)]
criterion_main!(benches, cpu);
#[cfg(not(unix))]
criterion_main!(benches);
