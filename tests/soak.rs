//! Soak: sequential connect, send, echo, close cycles through the library against the local
//! fanout server (`tests/peers/fanout_server.py`). At the end the process has the same open
//! descriptors and threads as at the start, its RSS is within [`RSS_SLACK_KIB`], and the
//! server saw close_notify on every connection.
//!
//! `make test` runs 2,000 cycles; `make soak` runs 100,000 in release mode
//! (`GRACETLS_SOAK_CYCLES` sets the count).

#[allow(unused_macros)]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Capture, Pki, Proc, WAIT};
use gracetls::{Config, Connection, Event, Outcome};

const DEFAULT_CYCLES: usize = 2_000;
/// Cycles before the first measurement: the first connections allocate what every later one
/// reuses (malloc arenas, OpenSSL's tables, the connector).
const WARMUP: usize = 50;
/// How much RSS may grow over the soak: allocator fragmentation, not a leak. A leak of one
/// buffer per connection would be 4 KiB x 100,000 = 400 MiB.
const RSS_SLACK_KIB: u64 = 2048;

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/fanout_server.py");

struct FanoutServer {
    /// Kills the server (by its PID) when the test ends, also on a panic.
    _proc: Proc,
    out: Capture,
    err: Capture,
    port: u16,
    stats_port: u16,
}

impl FanoutServer {
    fn start(pki: &Pki) -> FanoutServer {
        let mut cmd = Command::new("python3");
        cmd.arg(SERVER)
            .arg("--cert")
            .arg(&pki.server.cert)
            .arg("--key")
            .arg(&pki.server.key)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("fanout_server.py", &mut cmd)
            .unwrap_or_else(|e| panic!("cannot start python3: {e}"));
        let out = Capture::new();
        out.attach(proc.child_mut().stdout.take().expect("piped stdout"));
        let err = Capture::new();
        err.attach(proc.child_mut().stderr.take().expect("piped stderr"));
        let mut ports = None;
        out.wait_until(WAIT, |b, eof| {
            ports = String::from_utf8_lossy(b).lines().find_map(|l| {
                let mut w = l.strip_prefix("READY ")?.split_whitespace();
                Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
            });
            ports.is_some() || eof
        });
        let Some((port, stats_port)) = ports else {
            panic!(
                "fanout_server.py did not start:\n{}\n{}",
                out.text(),
                err.text()
            );
        };
        FanoutServer {
            _proc: proc,
            out,
            err,
            port,
            stats_port,
        }
    }

    /// The server's counters once `ended` connections have ended (it answers when they
    /// have, or after its own timeout).
    fn stats_when_ended(&self, ended: usize) -> BTreeMap<String, u64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.stats_port)).expect("stats port");
        s.set_read_timeout(Some(WAIT + Duration::from_secs(5)))
            .expect("timeout");
        writeln!(s, "closed {ended} {}", WAIT.as_millis()).expect("stats request");
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .expect("stats answer");
        line.split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    fn logs(&self) -> String {
        format!(
            "server stdout:\n{}\nserver stderr:\n{}",
            self.out.text(),
            self.err.text()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    fds: usize,
    threads: u64,
    rss_kib: u64,
}

fn usage() -> Usage {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    Usage {
        fds: std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .count(),
        threads: field("Threads:"),
        rss_kib: field("VmRSS:"),
    }
}

/// A joined thread may still be listed for a moment while the kernel releases it: wait,
/// bounded and without sleeping, for the count to come back down.
fn usage_settled(start: Usage) -> Usage {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = usage();
        if (now.threads <= start.threads && now.fds <= start.fds) || Instant::now() > deadline {
            return now;
        }
        std::thread::yield_now();
    }
}

fn cycle(config: &Config, target: &str, i: usize, server: &FanoutServer) {
    let conn = Connection::connect(config, target)
        .unwrap_or_else(|e| panic!("cycle {i}: connect: {e}\n{}", server.logs()));
    let line = format!("soak cycle {i}\n");
    conn.send(line.as_bytes())
        .unwrap_or_else(|e| panic!("cycle {i}: send: {e}"));
    let deadline = Instant::now() + WAIT;
    let mut echoed = Vec::new();
    while echoed.len() < line.len() {
        match conn.events().recv_deadline(deadline) {
            Ok(Event::Data(bytes)) => echoed.extend_from_slice(&bytes),
            other => panic!("cycle {i}: no echo: {other:?}\n{}", server.logs()),
        }
    }
    assert_eq!(echoed, line.as_bytes(), "cycle {i}");
    let report = conn.close();
    assert!(
        report.outcome() == Outcome::Clean && report.close_notify_sent(),
        "cycle {i}: {report:?}"
    );
}

#[test]
fn soak_connect_send_close_leaves_nothing_behind() {
    let cycles: usize = std::env::var("GRACETLS_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let pki = Pki::new();
    let server = FanoutServer::start(&pki);
    let target = format!("127.0.0.1:{}", server.port);
    let config = Config::new()
        .with_ca_file(&pki.ca)
        .with_close_timeout(Duration::from_secs(5));

    for i in 0..WARMUP {
        cycle(&config, &target, i, &server);
    }
    let start = usage_settled(usage());
    let started = Instant::now();
    for i in 0..cycles {
        cycle(&config, &target, WARMUP + i, &server);
        if cycles >= 10 && (i + 1) % (cycles / 10) == 0 {
            eprintln!(
                "soak: {} cycles, {:.0}/s, {:?}",
                i + 1,
                (i + 1) as f64 / started.elapsed().as_secs_f64(),
                usage()
            );
        }
    }
    let end = usage_settled(start);
    let total = WARMUP + cycles;
    let stats = server.stats_when_ended(total);
    eprintln!(
        "soak: {cycles} cycles in {:.1} s; start {start:?}; end {end:?}; server {stats:?}",
        started.elapsed().as_secs_f64()
    );
    // Nothing may grow. Fewer at the end is no leak: the start can still count the last
    // warm-up connection's reader while the kernel releases it (seen once in CI: 6, then 5).
    assert!(
        end.fds <= start.fds,
        "open descriptors: start {start:?}, end {end:?}"
    );
    assert!(
        end.threads <= start.threads,
        "threads: start {start:?}, end {end:?}"
    );
    assert!(
        end.rss_kib <= start.rss_kib + RSS_SLACK_KIB,
        "RSS grew by more than {RSS_SLACK_KIB} KiB: start {start:?}, end {end:?}"
    );
    let get = |k: &str| stats.get(k).copied().unwrap_or(u64::MAX);
    assert_eq!(
        get("close_notify"),
        total as u64,
        "not every close carried close_notify: {stats:?}\n{}",
        server.logs()
    );
    for k in ["eof", "reset", "error", "hs_failed", "open"] {
        assert_eq!(get(k), 0, "{k}: {stats:?}\n{}", server.logs());
    }
}
