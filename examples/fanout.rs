//! Many connections in one process: opens N connections, sends a line on each and waits for
//! its echo, holds them idle, closes them all gracefully, and prints a summary whose last
//! line is `key=value` pairs.
//!
//! Two modes of the library's API, which cost different things, and two yardsticks:
//!
//! - `--mode stream` (the default): N [`Stream`]s and **no thread per connection**. A few
//!   connector threads make the connections and end; while idle the process has one thread;
//!   the main thread closes every stream in turn (`--closers 1`). What a connection costs
//!   here is the TLS state and the socket, nothing else.
//! - `--mode connection`: N [`Connection`]s, **one reader thread each** (events API); they
//!   are closed by 8 threads in parallel. Each thread adds its stack's touched pages and 4
//!   memory mappings (its stack and guard page, Rust's signal stack and its guard page).
//! - `--mode native`: N plain `native_tls::TlsStream<TcpStream>`s, the yardstick for a
//!   `Stream`'s memory: made, used and held the same way, closed from one thread with
//!   `shutdown()` (close_notify; it does not wait for the server's answer).
//! - `--mode native-thread`: the same native-tls streams, each owned by a thread blocked in
//!   `read` (the stack size a `Connection`'s reader gets), closed by 8 threads with the
//!   recipe this crate automates: a flag, `shutdown(Read)` to wake the thread, close_notify
//!   from it, then a join. The least a thread per connection costs, and the yardstick for a
//!   `Connection`'s memory and close time.
//!
//! ```text
//! cargo run --release --example fanout -- --ca-file ca.pem --server-stats 127.0.0.1:9001 \
//!     127.0.0.1:9000 10000 [--mode stream|connection|native|native-thread]
//! ```
//!
//! `make fanout N=10000` starts the local server (`tests/peers/fanout_server.py`), runs this
//! once per mode and stops the server. `server_saw_close_notify` and `truncated` are the
//! server's own counts, asked on its stats port (`--server-stats`): how many connections
//! ended with the client's close_notify, and how many with a bare TCP FIN. `threads` is the
//! process's thread count while idle, `threads_per_conn` what the connections added to it.
//!
//! Only the public library API is used; `rlimit` (a dev-dependency) raises the open-file
//! limit when N needs it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gracetls::{CloseReport, Config, Connection, Event, Outcome, Stream};
use native_tls::{TlsConnector, TlsStream};

/// Open N TLS connections, hold them idle, close them all with close_notify.
#[derive(Parser, Debug)]
struct Args {
    /// HOST:PORT of the TLS server.
    target: String,
    /// How many connections.
    connections: usize,
    /// What each connection is: a `Stream` (no thread) or a `Connection` (a reader thread).
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    mode: Mode,
    /// Trust the CA certificates in this PEM file.
    #[arg(long)]
    ca_file: Option<String>,
    /// The name verified against the certificate (default: the target's host).
    #[arg(long)]
    servername: Option<String>,
    /// How long to hold the connections idle (measures idle CPU over this time): seconds,
    /// or a number with `s` or `ms`.
    #[arg(long, value_parser = parse_secs, default_value = "10s")]
    idle: Duration,
    /// Threads that connect in parallel.
    #[arg(long, default_value_t = 16)]
    connectors: usize,
    /// Threads that close in parallel (default: 1 for streams, 8 for connections; measured
    /// for connections at 3,000 on 2 cores when each had two threads: 8 closed all in
    /// 566 ms, 64 in 808 ms, 512 in 845 ms).
    #[arg(long)]
    closers: Option<usize>,
    /// Stack size of each connection's reader thread, in bytes (default: the library's).
    #[arg(long)]
    thread_stack: Option<usize>,
    /// Bounds connect plus handshake of each connection.
    #[arg(long, value_parser = parse_secs, default_value = "30s")]
    connect_timeout: Duration,
    /// HOST:PORT of the server's stats port (fanout_server.py --stats-port).
    #[arg(long)]
    server_stats: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `gracetls::Stream`: no thread of its own.
    Stream,
    /// `gracetls::Connection`: one reader thread.
    Connection,
    /// `native_tls::TlsStream<TcpStream>`, for comparison.
    Native,
    /// `native_tls::TlsStream` owned by a thread blocked in `read`, for comparison.
    NativeThread,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::Connection => "connection",
            Mode::Native => "native",
            Mode::NativeThread => "native-thread",
        }
    }

    /// Threads each connection owns.
    fn threads(self) -> u64 {
        match self {
            Mode::Stream | Mode::Native => 0,
            Mode::Connection | Mode::NativeThread => 1,
        }
    }
}

/// One open connection of either mode.
// A run holds one kind only, so every slot of its Vec is that kind's size anyway; boxing the
// stream would add an allocation and a pointer per connection to what is measured.
#[allow(clippy::large_enum_variant)]
enum Held {
    Stream(Stream),
    Connection(Connection),
    Native(TlsStream<TcpStream>),
    NativeThread(NativeThread),
}

impl Held {
    /// Closes gracefully (close_notify) and releases the socket.
    fn close(self) -> Closed {
        match self {
            // The drop that follows releases the socket.
            Held::Stream(stream) => stream.close().into(),
            Held::Connection(conn) => conn.close().into(),
            Held::Native(mut tls) => {
                let sent = tls.shutdown().is_ok();
                Closed::Native(sent)
            }
            Held::NativeThread(held) => Closed::Native(held.close()),
        }
    }
}

/// How one close went: a gracetls report, or whether native-tls sent close_notify.
enum Closed {
    Report(CloseReport),
    Native(bool),
}

impl From<CloseReport> for Closed {
    fn from(report: CloseReport) -> Self {
        Closed::Report(report)
    }
}

/// Descriptors the process needs besides one per connection (stdio, the runtime, the stats
/// connection, files under /proc).
const FD_SLACK: u64 = 64;
/// How long each connection waits for its echo.
const ECHO_WAIT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = Args::parse();
    let n = args.connections;
    let mode = args.mode;
    if let Err(message) = raise_fd_limit(n as u64 + FD_SLACK) {
        eprintln!("fanout: {message}");
        return ExitCode::from(2);
    }
    if let Err(message) = check_threads(n, mode).and_then(|()| check_map_count(n, mode)) {
        eprintln!("fanout: {message}");
        return ExitCode::from(2);
    }
    let mut config = Config::new()
        .with_connect_timeout(args.connect_timeout)
        .with_close_timeout(Duration::from_secs(5));
    if let Some(ca) = &args.ca_file {
        config = config.with_ca_file(ca);
    }
    if let Some(name) = &args.servername {
        config = config.with_servername(name);
    }
    if let Some(bytes) = args.thread_stack {
        config = config.with_thread_stack_size(bytes);
    }
    let native = match (mode, native_connector(&args)) {
        (Mode::Native | Mode::NativeThread, Err(message)) => {
            eprintln!("fanout: {message}");
            return ExitCode::from(2);
        }
        (_, connector) => connector.ok(),
    };
    let server_before = match args.server_stats.as_deref().map(|a| server_stats(a, None)) {
        Some(Ok(stats)) => Some(stats),
        Some(Err(e)) => {
            eprintln!("fanout: cannot read the server's stats: {e}");
            return ExitCode::from(1);
        }
        None => None,
    };

    let rss_start = status_kib("VmRSS:");
    let threads_start = status_kib("Threads:");
    eprintln!(
        "fanout: {n} connections ({}, {} thread(s) each) to {} with {} connector threads",
        mode.name(),
        mode.threads(),
        args.target,
        args.connectors
    );

    // Connect: a bounded pool of threads takes the next index until N are done. The first
    // connection goes alone: a wrong CA file or a dead server should stop the run at once,
    // not fail N times.
    let started = Instant::now();
    let next = AtomicUsize::new(1);
    let failures: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let no_echo = AtomicUsize::new(0);
    let mut conns: Vec<Held> = Vec::with_capacity(n);
    if n > 0 {
        match open_one(&config, native.as_ref(), &args.target, 0, mode) {
            Ok((conn, echoed)) => {
                if !echoed {
                    no_echo.fetch_add(1, Ordering::Relaxed);
                }
                conns.push(conn);
            }
            Err(cause) => {
                eprintln!("fanout: the first connection failed, stopping: {cause}");
                return ExitCode::from(1);
            }
        }
    }
    thread::scope(|s| {
        let workers: Vec<_> = (0..args.connectors.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        match open_one(&config, native.as_ref(), &args.target, i, mode) {
                            Ok((conn, echoed)) => {
                                if !echoed {
                                    no_echo.fetch_add(1, Ordering::Relaxed);
                                }
                                mine.push(conn);
                            }
                            Err(cause) => {
                                let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                                *f.entry(cause.replace(&args.target, "TARGET")).or_default() += 1;
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        for w in workers {
            if let Ok(mine) = w.join() {
                conns.extend(mine);
            }
        }
    });
    let connect_s = started.elapsed().as_secs_f64();
    let connected = conns.len();
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let failed: usize = failures.values().sum();
    eprintln!(
        "fanout: connected {connected} of {n} in {connect_s:.2} s ({:.0}/s), failed {failed}",
        connected as f64 / connect_s.max(1e-9)
    );
    for (cause, count) in &failures {
        eprintln!("fanout:   failed {count}: {cause}");
    }

    // Idle: the connector threads have ended; a Connection's reader is blocked in read(), a
    // Stream has nobody reading it.
    let threads = status_kib("Threads:");
    let threads_per_conn = threads.saturating_sub(threads_start) as f64 / connected.max(1) as f64;
    let maps = map_count();
    let cpu_before = process_cpu_s();
    thread::sleep(args.idle);
    let idle_cpu = process_cpu_s() - cpu_before;
    let rss_idle = status_kib("VmRSS:");
    eprintln!(
        "fanout: idle {:.0} s: {threads} threads ({threads_per_conn:.2} per connection), \
         {maps} memory mappings, RSS {rss_idle} KiB ({:.1} KiB per connection above the \
         {rss_start} KiB at start), CPU {idle_cpu:.3} s",
        args.idle.as_secs_f64(),
        rss_idle.saturating_sub(rss_start) as f64 / connected.max(1) as f64,
    );

    // Close all: each close sends close_notify (and joins a Connection's reader); the
    // closers each take a share.
    let closers = args.closers.unwrap_or(match mode {
        Mode::Stream | Mode::Native => 1,
        Mode::Connection | Mode::NativeThread => 8,
    });
    let close_started = Instant::now();
    let tally = close_all(conns, closers);
    let close_all_ms = close_started.elapsed().as_millis();
    let peak_rss = status_kib("VmHWM:");
    eprintln!(
        "fanout: closed {} in {close_all_ms} ms with {closers} closer thread(s): close_notify \
         sent {}, received {}, outcomes {:?}",
        tally.closed, tally.close_notify_sent, tally.close_notify_received, tally.outcomes
    );

    // The server's view: wait (bounded, server-side) until it has seen every close.
    let mut server_close_notify = String::from("?");
    let mut truncated = String::from("?");
    let mut server_ok = true;
    if let (Some(addr), Some(before)) = (&args.server_stats, &server_before) {
        let ended_before = ended(before);
        match server_stats(addr, Some((ended_before + connected as u64, 10_000))) {
            Ok(after) => {
                let diff = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
                eprintln!(
                    "fanout: server saw close_notify {}, FIN without close_notify {}, reset {}, \
                     error {}, handshake failed {}",
                    diff("close_notify"),
                    diff("eof"),
                    diff("reset"),
                    diff("error"),
                    diff("hs_failed")
                );
                server_ok = diff("close_notify") == connected as u64
                    && diff("eof") + diff("reset") + diff("error") == 0;
                server_close_notify = diff("close_notify").to_string();
                truncated = diff("eof").to_string();
            }
            Err(e) => {
                eprintln!("fanout: cannot read the server's stats: {e}");
                server_ok = false;
            }
        }
    }

    let per_conn = peak_rss as f64 / n.max(1) as f64;
    println!(
        "fanout ({}): {connected}/{n} connected, {failed} failed, peak RSS {peak_rss} KiB \
         ({per_conn:.1} KiB per connection), {threads} threads while idle \
         ({threads_per_conn:.2} per connection), idle CPU {idle_cpu:.3} s, all closed in \
         {close_all_ms} ms",
        mode.name()
    );
    println!(
        "mode={} connections={n} connected={connected} failed={failed} close_notify_sent={} \
         server_saw_close_notify={server_close_notify} truncated={truncated} \
         close_notify_received={} echo_missing={} peak_rss_kib={peak_rss} \
         peak_rss_per_conn_kib={per_conn:.1} threads={threads} \
         threads_per_conn={threads_per_conn:.2} maps={maps} idle_cpu_s={idle_cpu:.3} \
         closers={closers} close_all_ms={close_all_ms} connect_rate={:.0}",
        mode.name(),
        tally.close_notify_sent,
        tally.close_notify_received,
        no_echo.load(Ordering::Relaxed),
        connected as f64 / connect_s.max(1e-9),
    );
    // native-tls's closes cannot be clean; for them the server's count is the referee.
    let expected = match mode {
        Mode::Stream | Mode::Connection => "clean",
        Mode::Native | Mode::NativeThread => "close_notify-written",
    };
    let ended_well = tally.outcomes.get(expected).copied().unwrap_or(0);
    if connected == n && failed == 0 && ended_well == connected && server_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Connects, sends a line, waits for its echo (bounded for a `Connection`; a `Stream`'s read
/// has no timeout, and the local server always answers or closes). `Err` carries the cause.
fn open_one(
    config: &Config,
    native: Option<&Native>,
    target: &str,
    i: usize,
    mode: Mode,
) -> Result<(Held, bool), String> {
    let line = format!("hello from connection {i}\n");
    let mut got = Vec::new();
    let held = match mode {
        Mode::Stream => {
            let stream = Stream::connect(config, target).map_err(|e| e.to_string())?;
            (&stream)
                .write_all(line.as_bytes())
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 256];
            while got.len() < line.len() {
                match (&stream).read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                }
            }
            Held::Stream(stream)
        }
        Mode::Connection => {
            let conn = Connection::connect(config, target).map_err(|e| e.to_string())?;
            conn.send(line.as_bytes()).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + ECHO_WAIT;
            while got.len() < line.len() {
                match conn.events().recv_deadline(deadline) {
                    Ok(Event::Data(bytes)) => got.extend_from_slice(&bytes),
                    Ok(_) | Err(_) => break,
                }
            }
            Held::Connection(conn)
        }
        Mode::Native => {
            let socket = TcpStream::connect(target).map_err(|e| e.to_string())?;
            let _ = socket.set_nodelay(true);
            Held::Native(native_open(native, target, socket, &line, &mut got)?)
        }
        Mode::NativeThread => {
            let socket = Arc::new(TcpStream::connect(target).map_err(|e| e.to_string())?);
            let _ = socket.set_nodelay(true);
            let stopping = Arc::new(AtomicBool::new(false));
            let waking = Waking {
                socket: Arc::clone(&socket),
                stopping: Arc::clone(&stopping),
            };
            let tls = native_open(native, target, waking, &line, &mut got)?;
            let reader = thread::Builder::new()
                .name("native-reader".into())
                .stack_size(config.thread_stack_size())
                .spawn(move || native_read_loop(tls))
                .map_err(|e| format!("cannot start a reader thread: {e}"))?;
            Held::NativeThread(NativeThread {
                socket,
                stopping,
                reader,
            })
        }
    };
    Ok((held, got == line.as_bytes()))
}

/// Handshakes with native-tls over `socket`, sends `line` and reads its echo into `got`.
fn native_open<S: Read + Write + std::fmt::Debug + 'static>(
    native: Option<&Native>,
    target: &str,
    socket: S,
    line: &str,
    got: &mut Vec<u8>,
) -> Result<TlsStream<S>, String> {
    let native = native.ok_or("no native-tls connector")?;
    let host = native
        .servername
        .as_deref()
        .unwrap_or_else(|| target.rsplit_once(':').map_or(target, |(host, _)| host));
    let mut tls = native
        .connector
        .connect(host, socket)
        .map_err(|e| e.to_string())?;
    tls.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 256];
    while got.len() < line.len() {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    Ok(tls)
}

/// A `native-thread` connection: the socket (to wake the reader), the flag that tells the
/// reader the wake-up is ours, and the reader, which owns the TLS stream.
struct NativeThread {
    socket: Arc<TcpStream>,
    stopping: Arc<AtomicBool>,
    reader: JoinHandle<bool>,
}

impl NativeThread {
    /// The recipe: the flag, `shutdown(Read)` so the blocked read returns, close_notify
    /// from the reader, the join. Whether close_notify was written; it waits for no answer.
    fn close(self) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(std::net::Shutdown::Read);
        self.reader.join().unwrap_or(false)
    }
}

/// The socket as native-tls sees it in `native-thread` mode. After our own
/// `shutdown(Read)` a read returns 0; reported as end of stream, OpenSSL would fail the
/// session and send no close_notify, so it is reported as "would block" instead.
#[derive(Debug)]
struct Waking {
    socket: Arc<TcpStream>,
    stopping: Arc<AtomicBool>,
}

impl Read for Waking {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (&*self.socket).read(buf)?;
        if n == 0 && self.stopping.load(Ordering::SeqCst) {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Write for Waking {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.socket).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.socket).flush()
    }
}

/// A `native-thread` reader: blocks in `read` until our wake-up, then sends close_notify.
/// The buffer is small and on the stack: the least a reader can hold.
fn native_read_loop(mut tls: TlsStream<Waking>) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tls.read(&mut buf) {
            Ok(n) if n > 0 => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && tls.get_ref().stopping.load(Ordering::SeqCst) =>
            {
                return tls.shutdown().is_ok();
            }
            // The server ended or failed: no close_notify of ours is due.
            _ => return false,
        }
    }
}

/// Closes every connection, `closers` threads each taking a share (1: this thread alone).
fn close_all(mut conns: Vec<Held>, closers: usize) -> Tally {
    let mut tally = Tally::default();
    if closers <= 1 {
        for conn in conns {
            tally.add(&conn.close());
        }
        return tally;
    }
    let chunk = conns.len().div_ceil(closers).max(1);
    let mut batches: Vec<Vec<Held>> = Vec::new();
    while !conns.is_empty() {
        let rest = conns.split_off(conns.len().min(chunk));
        batches.push(std::mem::replace(&mut conns, rest));
    }
    thread::scope(|s| {
        let handles: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                s.spawn(move || {
                    let mut t = Tally::default();
                    for conn in batch {
                        t.add(&conn.close());
                    }
                    t
                })
            })
            .collect();
        for h in handles {
            if let Ok(t) = h.join() {
                tally.merge(&t);
            }
        }
    });
    tally
}

#[derive(Default)]
struct Tally {
    closed: usize,
    close_notify_sent: usize,
    close_notify_received: usize,
    outcomes: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn add(&mut self, closed: &Closed) {
        let report = match closed {
            Closed::Report(report) => report,
            Closed::Native(sent) => {
                self.closed += 1;
                self.close_notify_sent += usize::from(*sent);
                // native-tls neither waits for an answer nor asks the kernel whether its
                // close_notify arrived: written is all it can say, and that is not clean.
                let name = if *sent {
                    "close_notify-written"
                } else {
                    "no-close_notify"
                };
                *self.outcomes.entry(name).or_default() += 1;
                return;
            }
        };
        self.closed += 1;
        self.close_notify_sent += usize::from(report.close_notify_sent());
        self.close_notify_received += usize::from(report.close_notify_received());
        let name = match report.outcome() {
            Outcome::Clean => "clean",
            Outcome::Truncated => "truncated",
            Outcome::CloseTimeout => "close-timeout",
            Outcome::Unconfirmed => "unconfirmed",
            Outcome::Error => "error",
            _ => "other",
        };
        *self.outcomes.entry(name).or_default() += 1;
    }

    fn merge(&mut self, other: &Tally) {
        self.closed += other.closed;
        self.close_notify_sent += other.close_notify_sent;
        self.close_notify_received += other.close_notify_received;
        for (k, v) in &other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
    }
}

/// What `--mode native` connects with: the connector, trusting `--ca-file` as gracetls does,
/// and the name to verify.
struct Native {
    connector: TlsConnector,
    servername: Option<String>,
}

fn native_connector(args: &Args) -> Result<Native, String> {
    let mut builder = TlsConnector::builder();
    if let Some(ca) = &args.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {ca}: {e}"))?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| format!("{ca} is not a PEM certificate: {e}"))?;
        builder.add_root_certificate(cert);
    }
    let connector = builder
        .build()
        .map_err(|e| format!("cannot make a native-tls connector: {e}"))?;
    Ok(Native {
        connector,
        servername: args.servername.clone(),
    })
}

/// Raises the soft open-file limit to `needed` (within the hard limit), or says how to raise
/// the hard limit.
fn raise_fd_limit(needed: u64) -> Result<(), String> {
    use rlimit::Resource;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)
        .map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        return Err(format!(
            "{needed} open files needed but the hard limit is {hard}: raise it (as root, \
             `ulimit -Hn {needed}` in the shell that runs this, or a `* hard nofile {needed}` \
             line in /etc/security/limits.conf and a new login), or use fewer connections"
        ));
    }
    rlimit::setrlimit(Resource::NOFILE, needed, hard)
        .map_err(|e| format!("cannot raise the open-file limit to {needed}: {e}"))?;
    eprintln!("fanout: raised the open-file limit from {soft} to {needed} (hard limit {hard})");
    Ok(())
}

/// The connections' threads plus a few: checks the per-user and system-wide limits.
fn check_threads(n: usize, mode: Mode) -> Result<(), String> {
    use rlimit::Resource;
    let needed = mode.threads() * n as u64 + 256;
    let (soft, hard) = rlimit::getrlimit(Resource::NPROC)
        .map_err(|e| format!("cannot read the process limit: {e}"))?;
    if soft < needed {
        if hard < needed {
            return Err(format!(
                "{needed} threads needed but the per-user limit is {hard}: raise it (`ulimit -Hu`, \
                 or an `nproc` line in /etc/security/limits.conf), or use fewer connections"
            ));
        }
        rlimit::setrlimit(Resource::NPROC, needed, hard)
            .map_err(|e| format!("cannot raise the process limit to {needed}: {e}"))?;
        eprintln!("fanout: raised the thread/process limit from {soft} to {needed}");
    }
    for file in ["/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"] {
        let limit: u64 = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX);
        if limit < needed {
            return Err(format!(
                "{needed} threads needed but {file} is {limit}: raise it (sysctl) or use fewer \
                 connections"
            ));
        }
    }
    Ok(())
}

/// Memory mappings per thread, measured: its stack with a guard page, and the signal stack
/// with a guard page that Rust gives every thread.
const MAPS_PER_THREAD: u64 = 4;

/// The kernel's per-process cap on memory mappings (65,530 by default) is what limits
/// threads first: with a reader thread per connection, about 16,000 connections fit under
/// it. A `Stream` adds no mapping of its own (its memory comes from the heap).
fn check_map_count(n: usize, mode: Mode) -> Result<(), String> {
    let limit: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let needed = map_count() + MAPS_PER_THREAD * mode.threads() * n as u64 + 1024;
    if needed > limit {
        return Err(format!(
            "{n} connections in {} mode need about {needed} memory mappings ({MAPS_PER_THREAD} per \
             thread, {} thread(s) per connection) but vm.max_map_count is {limit}: raise it as \
             root with `sysctl -w vm.max_map_count={}` (or a line in /etc/sysctl.d/), use \
             --mode stream, or use fewer connections",
            mode.name(),
            mode.threads(),
            needed.next_power_of_two()
        ));
    }
    Ok(())
}

/// The process's memory mappings now.
fn map_count() -> u64 {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count() as u64)
        .unwrap_or(0)
}

/// `10`, `10s`, `1.5s` or `500ms`: a duration for the command line.
fn parse_secs(text: &str) -> Result<Duration, String> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| Duration::from_secs_f64(v * scale))
        .ok_or_else(|| format!("{text:?} is not a duration: give seconds (10, 1.5s) or 500ms"))
}

/// A numeric field of /proc/self/status (kB for the memory fields).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU of the whole process (all threads), from /proc/self/stat.
fn process_cpu_s() -> f64 {
    // utime and stime are fields 14 and 15, in USER_HZ (100 on Linux); the command name in
    // field 2 may contain spaces, so count from after its closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Asks the server's stats port; with `Some((n, ms))` the server answers once n connections
/// have ended (or after ms).
fn server_stats(addr: &str, wait: Option<(u64, u64)>) -> std::io::Result<BTreeMap<String, u64>> {
    let mut stream = TcpStream::connect(addr)?;
    let timeout = wait.map_or(5_000, |(_, ms)| ms + 5_000);
    stream.set_read_timeout(Some(Duration::from_millis(timeout)))?;
    match wait {
        Some((n, ms)) => writeln!(stream, "closed {n} {ms}")?,
        None => writeln!(stream, "now")?,
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

fn ended(stats: &BTreeMap<String, u64>) -> u64 {
    ["close_notify", "eof", "reset", "error"]
        .iter()
        .map(|k| stats.get(*k).unwrap_or(&0))
        .sum()
}
