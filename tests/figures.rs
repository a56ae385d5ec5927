//! The hostile-server figures, run at two sizes. `cargo test` runs them small (what must
//! hold: bytes exact, memory bounded, one-line errors); `make figures` runs them at full size
//! in release mode (`GRACETLS_FIGURES=full`) and docs/robustness.md quotes its `FIGURE`
//! lines. Speed is printed, never asserted.

// The harness defines `per_version!`; these runs pick their versions themselves.
#![allow(unused_macros)]

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::hostile::{Act, HostileServer, Reads, pattern};
use common::*;

/// The client's peak RSS allowed in every run here.
const RSS_LIMIT_KIB: u64 = 20 * 1024;

/// Whether to run at full size.
fn full() -> bool {
    std::env::var("GRACETLS_FIGURES").is_ok_and(|v| v == "full")
}

/// `small` in an ordinary test run, `full` under `make figures`.
fn size(small: u64, full_size: u64) -> u64 {
    if full() { full_size } else { small }
}

/// User plus system CPU seconds `pid` has used so far (/proc/PID/stat, in clock ticks).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux when it cannot say).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Writes `total` bytes of `u` to the client's stdin in 64 KiB chunks, then closes it;
/// counts what was written.
fn feed(c: &mut Client, total: u64) -> Arc<AtomicU64> {
    let fed = Arc::new(AtomicU64::new(0));
    let mut stdin = c.stdin.take().expect("stdin is piped");
    let fed2 = fed.clone();
    thread::spawn(move || {
        let chunk = vec![b'u'; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if stdin.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n as u64;
            fed2.fetch_add(n as u64, Ordering::SeqCst);
        }
    });
    fed
}

/// Polls the client's VmHWM until `done` says so or `limit` passes; returns the peak seen.
fn watch_hwm(pid: u32, limit: Duration, mut done: impl FnMut() -> bool) -> (u64, bool) {
    let started = Instant::now();
    let mut hwm = 0;
    while started.elapsed() < limit {
        if let Some(kib) = vm_kib(pid, "VmHWM:") {
            hwm = hwm.max(kib);
        }
        if done() {
            return (hwm, true);
        }
        thread::sleep(Duration::from_millis(20));
    }
    (hwm, false)
}

/// The server sends `len` bytes as 1-byte records; the client must deliver them exactly.
#[test]
fn one_byte_records() {
    let len = size(256 * 1024, 20 * 1024 * 1024);
    let pki = Pki::new();
    let script = vec![Act::Records { len, size: 1 }, Act::CloseNotify, Act::Hold];
    let srv = HostileServer::start(&pki.server, Reads::Yes, script);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--on-eof", "ignore"],
    ));
    let pid = c.proc.pid();
    let t0 = Instant::now();
    let mut cpu = 0.0;
    let limit = Duration::from_secs(if full() { 600 } else { 60 });
    let (hwm, delivered) = watch_hwm(pid, limit, || {
        cpu = cpu_seconds(pid).unwrap_or(cpu);
        c.stdout.len() as u64 >= len
    });
    assert!(
        delivered,
        "{} of {len} bytes within {limit:?}{}",
        c.stdout.len(),
        c.dump()
    );
    let took = t0.elapsed();
    let st = c.wait_exit(WAIT, &[&srv]);
    c.assert_code(st, 0, &[&srv]);
    let out = c.stdout_bytes();
    assert!(
        out == pattern(0, len as usize),
        "the 1-byte records arrived altered{}",
        c.dump()
    );
    let mib = len as f64 / (1024.0 * 1024.0);
    println!(
        "FIGURE one_byte_records MiB={mib} exact=yes cpu_s={cpu:.2} cpu_s_per_MiB={:.3} wall_s={:.2} hwm_kib={hwm}",
        cpu / mib,
        took.as_secs_f64()
    );
    assert!(hwm < RSS_LIMIT_KIB, "peak RSS {hwm} KiB{}", c.dump());
}

/// The server sends `key_updates` KeyUpdate(update_requested) while the client uploads
/// `upload` bytes: every byte arrives, and memory stays bounded.
#[test]
fn key_updates_during_upload() {
    let key_updates = size(5_000, 200_000);
    let upload = size(8 * 1024 * 1024, 100 * 1024 * 1024);
    let pki = Pki::new();
    let script = vec![
        Act::Flood {
            max: key_updates,
            secs: Duration::from_secs(if full() { 300 } else { 60 }),
            data_every: 16,
        },
        Act::Data(b"flood over\n".to_vec()),
        Act::AwaitClientCloseNotify,
        Act::CloseNotify,
        Act::Hold,
    ];
    let mut srv = HostileServer::start(&pki.server, Reads::Yes, script);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--on-eof", "half-close"],
    ));
    let pid = c.proc.pid();
    let t0 = Instant::now();
    let fed = feed(&mut c, upload);
    let limit = Duration::from_secs(if full() { 600 } else { 120 });
    let (hwm, exited) = watch_hwm(pid, limit, || c.proc.has_exited());
    assert!(exited, "no exit within {limit:?}{}{}", c.dump(), srv.dump());
    let st = c.wait_exit(WAIT, &[&srv]);
    srv.stop();
    let seen = srv.seen(WAIT, &[&c]);
    println!(
        "FIGURE key_updates_during_upload key_updates={} upload_MiB={} received={} exact={} exit={:?} wall_s={:.1} hwm_kib={hwm}",
        seen.key_updates_sent,
        upload / (1024 * 1024),
        seen.client_bytes,
        seen.client_bytes == upload,
        st.code(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(fed.load(Ordering::SeqCst), upload, "{}", c.dump());
    assert_eq!(seen.key_updates_sent, key_updates, "{seen:?}{}", srv.dump());
    assert_eq!(seen.client_bytes, upload, "{seen:?}{}", c.dump());
    assert!(seen.client_close_notify, "{seen:?}");
    assert!(hwm < RSS_LIMIT_KIB, "peak RSS {hwm} KiB{}", c.dump());
}

/// What s_server prints when a renegotiation its `r` command began has completed.
const FINISHED: &str = "SSL_do_handshake -> 1";

/// `openssl s_server` renegotiates `rounds` times (TLS 1.2, its `r` command) while the client
/// uploads: the upload arrives whole and the client's memory stays flat.
#[test]
fn renegotiations_during_upload() {
    let rounds = size(50, 1_500) as usize;
    let pki = Pki::new();
    let mut srv = SServer::start_with(&pki.server, Tls::V12, &[]);
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        srv.port,
        &["--on-eof", "ignore"],
    ));
    srv.expect_log("CIPHER", WAIT, &[&c]);
    let pid = c.proc.pid();
    // A steady upload, 16 KiB every 5 ms, for as long as the renegotiations last: s_server
    // reads its commands only when the socket is idle, so a saturating upload would starve
    // the renegotiations.
    let stop = Arc::new(AtomicBool::new(false));
    let fed = Arc::new(AtomicU64::new(0));
    let mut stdin = c.stdin.take().expect("stdin is piped");
    let uploader = {
        let (stop, fed) = (stop.clone(), fed.clone());
        thread::spawn(move || {
            // `~` appears nowhere in s_server's own lines, so the log counts what arrived.
            let chunk = vec![b'~'; 16 * 1024];
            let started = Instant::now();
            while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(900) {
                if stdin.write_all(&chunk).is_err() {
                    break;
                }
                fed.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
            stdin
        })
    };
    let t0 = Instant::now();
    let mut rss_at_tenth = 0;
    let mut hwm = 0;
    // Where in s_server's log the last completed renegotiation's line ended: each round
    // searches only what came after it (the log grows by the upload).
    let mut seen_to = 0;
    for round in 1..=rounds {
        // The next renegotiation starts only once this one has completed.
        srv.command("r");
        assert!(
            srv.log.wait_until(WAIT, |log, _| {
                match find(&log[seen_to.min(log.len())..], FINISHED.as_bytes()) {
                    Some(at) => {
                        seen_to += at + FINISHED.len();
                        true
                    }
                    None => false,
                }
            }),
            "renegotiation {round} did not finish{}{}",
            c.dump(),
            srv.dump()
        );
        if round == rounds / 10 {
            rss_at_tenth = vm_kib(pid, "VmRSS:").unwrap_or(0);
        }
        hwm = hwm.max(vm_kib(pid, "VmHWM:").unwrap_or(0));
        assert!(
            !c.proc.has_exited(),
            "the client exited at round {round}{}",
            c.dump()
        );
    }
    let rss_end = vm_kib(pid, "VmRSS:").unwrap_or(0);
    stop.store(true, Ordering::SeqCst);
    let stdin = uploader.join().expect("the uploader");
    drop(stdin);
    let uploaded = fed.load(Ordering::SeqCst);
    // stdin has ended (ignored: the connection stays); wait for the server to have printed
    // every uploaded byte before SIGTERM: what still sits in the pipe or in s_server's stdout
    // buffer at the signal is not the connection's loss.
    let tildes = |log: &[u8]| log.iter().filter(|&&b| b == b'~').count() as u64;
    srv.log.wait_until(WAIT, |log, _| tildes(log) >= uploaded);
    c.signal(SIGTERM);
    let st = c.wait_exit(WAIT, &[&srv]);
    let received = tildes(&srv.log.bytes());
    let handshakes = count(&srv.log.bytes(), FINISHED.as_bytes());
    println!(
        "FIGURE renegotiations rounds={rounds} handshakes={handshakes} uploaded_MiB={:.1} received_exact={} rss_at_tenth_kib={rss_at_tenth} rss_end_kib={rss_end} hwm_kib={hwm} wall_s={:.1} exit={:?}",
        uploaded as f64 / (1024.0 * 1024.0),
        received == uploaded,
        t0.elapsed().as_secs_f64(),
        st.code()
    );
    c.assert_no_panic(&[&srv]);
    assert_eq!(
        received,
        uploaded,
        "the server did not get the whole upload{}",
        c.dump()
    );
    assert!(
        rss_end <= rss_at_tenth + 1024,
        "the client's RSS grew from {rss_at_tenth} KiB to {rss_end} KiB{}",
        c.dump()
    );
    assert!(hwm < RSS_LIMIT_KIB, "peak RSS {hwm} KiB{}", c.dump());
}

/// Garbage before the handshake: a raw TCP server answers the ClientHello with `bytes`.
fn garbage_before_handshake(label: &str, bytes: &'static [u8]) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("address").port();
    let server = thread::spawn(move || {
        let (mut sock, _) = listener.accept().ok()?;
        let mut hello = [0u8; 5];
        sock.read_exact(&mut hello).ok()?;
        sock.write_all(bytes).ok()?;
        // Hold the connection until the client leaves: the error is the client's own.
        let _ = sock.set_read_timeout(Some(WAIT));
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest);
        Some(())
    });
    let pki = Pki::new();
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", port, &[]));
    let t0 = Instant::now();
    let st = c.wait_exit(WAIT, &[]);
    let took = t0.elapsed();
    let _ = server.join();
    garbage_verdict(label, &c, st, took, &[]);
}

/// Garbage after the handshake, from the hostile server.
fn garbage_after_handshake(label: &str, garbage: Act) {
    let pki = Pki::new();
    let srv = HostileServer::start(&pki.server, Reads::Yes, vec![garbage, Act::Hold]);
    let mut c = Client::spawn(client_args(&pki, "127.0.0.1", srv.port, &[]));
    let t0 = Instant::now();
    let st = c.wait_exit(WAIT, &[&srv]);
    let took = t0.elapsed();
    garbage_verdict(label, &c, st, took, &[&srv]);
}

fn garbage_verdict(
    label: &str,
    c: &Client,
    st: std::process::ExitStatus,
    took: Duration,
    ctx: &[&dyn Dump],
) {
    let lines = c.message_lines();
    println!(
        "FIGURE garbage case={label} exit={:?} ms_from_start={} line={:?}",
        st.code(),
        took.as_millis(),
        lines.first().map(String::as_str).unwrap_or("")
    );
    c.assert_no_panic(ctx);
    c.assert_code(st, 1, ctx);
    assert_eq!(
        lines.len(),
        1,
        "one line naming the error: {lines:#?}{}",
        c.dump()
    );
}

#[test]
fn garbage_is_one_line_at_once() {
    garbage_before_handshake(
        "http-answer",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    );
    garbage_before_handshake("zeros", &[0u8; 64]);
    garbage_before_handshake("record-too-long", &[22, 3, 3, 0xff, 0xff, 2, 0, 0, 0]);
    garbage_before_handshake("alert-in-clear", &[21, 3, 3, 0, 2, 2, 40]);
    garbage_before_handshake("sslv2-hello", &[0x80, 0x2e, 0x01, 0x03, 0x01]);
    garbage_after_handshake(
        "random-bytes",
        Act::Raw((0..200u32).map(|i| (i * 37 % 256) as u8).collect()),
    );
    garbage_after_handshake(
        "oversized-record",
        Act::Raw({
            let mut r = vec![23, 3, 3, 0x48, 0x01];
            r.extend(std::iter::repeat_n(0u8, 0x4801));
            r
        }),
    );
    garbage_after_handshake("bad-tag", Act::BadTag(b"tampered\n".to_vec()));
    garbage_after_handshake("empty-records", Act::Empty(100_000));
    garbage_after_handshake(
        "handshake-record-in-clear",
        Act::Raw(vec![22, 3, 3, 0, 4, 1, 0, 0, 0]),
    );
}
