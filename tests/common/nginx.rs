//! nginx (stream module) terminating TLS in front of a plain TCP echo backend.
//!
//! The backend runs in the test process: it echoes lines, and on the line
//! `srv-close` it closes its TCP connection, which makes nginx end the client
//! session with SSL_shutdown (close_notify, then close at once: nginx does not
//! wait for the client's answer, so it cannot judge it).
//!
//! # The referee, and why nginx runs with a preloaded shim
//! nginx 1.22 sets `SSL_OP_IGNORE_UNEXPECTED_EOF` on every context, so OpenSSL
//! reports a bare FIN exactly like a close_notify (`SSL_get_error: 6`, "peer
//! shutdown SSL cleanly", measured at `debug`), and `ssl_conf_command` cannot
//! clear it (OpenSSL 3.0 has no `IgnoreUnexpectedEOF` option name). A tiny
//! `LD_PRELOAD` library, compiled at run time, drops that one bit from
//! `SSL_CTX_set_options`; nginx then logs at `crit`
//! `SSL_read() failed (SSL: error:0A000126:SSL routines::unexpected eof while
//! reading) while proxying and reading from client` for a bare FIN, and
//! nothing for a close_notify. Everything else is stock nginx.
//!
//! Per connection (`*N`, keyed with the worker's PID) the session ends with
//! `client disconnected, bytes ...` or `upstream disconnected, bytes ...` at
//! `info`, or with an error `while SSL handshaking`.
//!
//! Truncation: nginx always sends close_notify, so the harness kills the
//! worker (SIGKILL, by the PID the master logged, checked to be a child of
//! our master); the kernel then closes the socket with a bare FIN.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::peer::{How, ServerEnd, TlsPeer, Verdict};
use super::rustls_peer::{LineEcho, Next};
use super::{
    Capture, CertFiles, Dump, Proc, SIGKILL, SIGTERM, TempDir, Tls, WAIT, describe_status,
    free_port, have_tool, show_bytes,
};

pub const NGINX: &str = "nginx";
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx's line for a client that left without close_notify (with the shim).
pub const NGINX_UNEXPECTED_EOF: &str = "unexpected eof while reading";

const SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
/* SSL_OP_IGNORE_UNEXPECTED_EOF is SSL_OP_BIT(7) in OpenSSL 3. */
typedef uint64_t (*set_options_fn)(void *, uint64_t);
uint64_t SSL_CTX_set_options(void *ctx, uint64_t op) {
    static set_options_fn real;
    if (!real) real = (set_options_fn)dlsym(RTLD_NEXT, "SSL_CTX_set_options");
    return real(ctx, op & ~((uint64_t)1 << 7));
}
"#;

/// The plain TCP echo backend behind nginx.
struct Backend {
    port: u16,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend 127.0.0.1:0");
        let port = listener.local_addr().expect("backend address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let (stop, sockets, threads) = (stop.clone(), sockets.clone(), threads.clone());
            thread::spawn(move || {
                for s in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(s) = s else { continue };
                    if let Ok(clone) = s.try_clone() {
                        sockets.lock().unwrap().push(clone);
                    }
                    let h = thread::spawn(move || echo_backend(s));
                    threads.lock().unwrap().push(h);
                }
            })
        };
        Backend {
            port,
            stop,
            sockets,
            threads,
            acceptor: Some(acceptor),
        }
    }
}

fn echo_backend(mut s: TcpStream) {
    let mut echo = LineEcho::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut out = Vec::new();
        let next = echo.feed(&buf[..n], &mut out);
        if s.write_all(&out).is_err() {
            break;
        }
        match next {
            Next::Continue => {}
            // nginx answers the upstream's FIN by ending the client session.
            Next::ServerClose => break,
            // Only the worker's death truncates; the line is just echoed.
            Next::Truncate => {
                if s.write_all(b"srv-truncate\n").is_err() {
                    break;
                }
            }
        }
    }
    let _ = s.shutdown(Shutdown::Both);
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.threads.lock().unwrap().drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
    }
}

pub struct Nginx {
    master: Proc,
    port: u16,
    tls: Tls,
    /// Everything master and workers log (`error_log stderr info`).
    pub log: Capture,
    /// The worker serving connections now.
    worker: u32,
    conf: String,
    consumed: usize,
    version: String,
    backend: Backend,
    /// Holds nginx.conf, the pid file and the shim; dropped last.
    dir: TempDir,
}

impl Nginx {
    pub fn start(cert: &CertFiles, tls: Tls) -> Option<Nginx> {
        if !have_tool(NGINX, "nginx") || !have_tool("cc", "gcc") {
            return None;
        }
        if !Path::new(STREAM_MODULE).exists() && !have_tool(STREAM_MODULE, "libnginx-mod-stream") {
            return None;
        }
        let dir = TempDir::new("nginx");
        let shim = build_shim(&dir);
        let version = nginx_version();
        let backend = Backend::start();
        let protocol = match tls {
            Tls::V12 => "TLSv1.2",
            Tls::V13 => "TLSv1.3",
        };
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let d = dir.path().display();
            let conf = format!(
                "load_module {STREAM_MODULE};\n\
                 worker_processes 1;\n\
                 pid {d}/nginx.pid;\n\
                 error_log stderr info;\n\
                 events {{ worker_connections 64; }}\n\
                 stream {{\n  server {{\n    listen 127.0.0.1:{port} ssl;\n\
                 \x20   ssl_certificate {};\n    ssl_certificate_key {};\n\
                 \x20   ssl_protocols {protocol};\n\
                 \x20   proxy_pass 127.0.0.1:{};\n  }}\n}}\n",
                cert.cert.display(),
                cert.key.display(),
                backend.port
            );
            let conf_path = dir.write("nginx.conf", conf.as_bytes());
            let log = Capture::new();
            let (mut master, worker) = start_master(&dir, &conf_path, &shim, &log, &log);
            match worker {
                Some(w) => {
                    return Some(Nginx {
                        master,
                        port,
                        tls,
                        log,
                        worker: w,
                        conf,
                        consumed: 0,
                        version,
                        backend,
                        dir,
                    });
                }
                _ => {
                    master.kill();
                    let _ = writeln!(
                        failures,
                        "attempt {attempt} (port {port}, {}, worker {worker:?}):\n{}",
                        describe_status(master.status()),
                        show_bytes(&log.bytes(), 4_000)
                    );
                }
            }
        }
        panic!("nginx did not start after 5 attempts:\n{failures}");
    }

    /// PIDs of the running children of the master (its workers).
    fn workers(&self) -> Vec<u32> {
        children(self.master.pid())
    }
}

/// Compiles the shim (see the module docs) into `dir`; returns the `.so` path.
/// Starts an nginx master on `conf_path` under the shim, its stdout into `out` and its stderr
/// into `err` (the same capture for both is fine), and waits for its first worker: the master
/// binds before it forks, so a worker of this master means it listens. `None` as the worker
/// when none appeared (the port was taken, say): the caller kills the master and retries.
pub fn start_master(
    dir: &TempDir,
    conf_path: &Path,
    shim: &Path,
    out: &Capture,
    err: &Capture,
) -> (Proc, Option<u32>) {
    let mut cmd = Command::new(NGINX);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(conf_path)
        .args(["-e", "stderr", "-g", "daemon off;"])
        .env("LD_PRELOAD", shim)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut master = Proc::spawn("nginx master", &mut cmd)
        .unwrap_or_else(|e| panic!("cannot start {NGINX}: {e}"));
    out.attach(master.child_mut().stdout.take().expect("piped stdout"));
    err.attach(master.child_mut().stderr.take().expect("piped stderr"));
    let mut worker = None;
    err.wait_until(WAIT, |b, eof| {
        worker = started_workers(&String::from_utf8_lossy(b)).last().copied();
        worker.is_some() || eof
    });
    let worker = worker.filter(|&w| is_child_of(w, master.pid()));
    (master, worker)
}

pub fn build_shim(dir: &TempDir) -> std::path::PathBuf {
    let src = dir.write("no_ignore_eof.c", SHIM_C.as_bytes());
    let out = dir.path().join("no_ignore_eof.so");
    let res = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc: {e}"));
    assert!(
        res.status.success(),
        "cc failed to build the nginx shim: {}\n{}",
        describe_status(Some(res.status)),
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// `nginx/1.22.1 (OpenSSL 3.0.x, IGNORE_UNEXPECTED_EOF cleared)`, for reports.
pub fn nginx_version() -> String {
    let out = match Command::new(NGINX).arg("-V").stdin(Stdio::null()).output() {
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => return format!("nginx ? ({e})"),
    };
    let nginx = out
        .lines()
        .find_map(|l| l.strip_prefix("nginx version: "))
        .unwrap_or("nginx ?")
        .to_string();
    // "built with OpenSSL X ... (running with OpenSSL Y ...)": Y is what runs.
    let openssl = out
        .split("running with OpenSSL ")
        .nth(1)
        .or_else(|| out.split("built with OpenSSL ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("?");
    format!("{nginx} (OpenSSL {openssl}, IGNORE_UNEXPECTED_EOF cleared)")
}

/// PIDs from the master's `start worker process <pid>` lines.
pub fn started_workers(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.split("start worker process ").nth(1))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Children of `pid`, from /proc (every thread's `children` list).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Whether `pid` is a running child of `parent`.
pub fn is_child_of(pid: u32, parent: u32) -> bool {
    children(parent).contains(&pid)
}

/// One parsed error-log line: `... [level] PID#TID: *N message`.
struct LogLine<'a> {
    level: &'a str,
    pid: u32,
    conn: Option<u64>,
    msg: &'a str,
    raw: &'a str,
}

fn parse_line(raw: &str) -> Option<LogLine<'_>> {
    let open = raw.find(" [")?;
    let rest = &raw[open + 2..];
    let close = rest.find("] ")?;
    let level = &rest[..close];
    let rest = &rest[close + 2..];
    let (pid, rest) = rest.split_once('#')?;
    let pid = pid.parse().ok()?;
    let (_, msg) = rest.split_once(": ")?;
    let (conn, msg) = match msg.strip_prefix('*') {
        Some(m) => {
            let (n, m) = m.split_once(' ')?;
            (n.parse().ok(), m)
        }
        None => (None, msg),
    };
    Some(LogLine {
        level,
        pid,
        conn,
        msg,
        raw,
    })
}

#[derive(Default)]
struct Session {
    bare_fin: bool,
    error: Option<String>,
}

/// The verdicts in the log, in the order the sessions ended.
pub fn nginx_verdicts(log: &str) -> Vec<Verdict> {
    let mut open: HashMap<(u32, u64), Session> = HashMap::new();
    let mut order: Vec<(u32, u64)> = Vec::new();
    let mut out = Vec::new();
    for raw in log.lines() {
        let Some(l) = parse_line(raw) else { continue };
        if let Some(n) = l.conn {
            let key = (l.pid, n);
            let s = open.entry(key).or_insert_with(|| {
                order.push(key);
                Session::default()
            });
            // A FIN inside the handshake is a failed handshake, not a
            // session left without close_notify.
            if l.msg.contains(NGINX_UNEXPECTED_EOF) && !l.msg.contains("while SSL handshaking") {
                s.bare_fin = true;
            } else if s.error.is_none()
                && (matches!(l.level, "crit" | "error" | "alert" | "emerg")
                    || l.msg.contains("failed")
                    || l.msg.contains("while SSL handshaking"))
            {
                s.error = Some(l.raw.to_string());
            }
            let end = if l.msg.starts_with("client disconnected, bytes") {
                Some(Verdict::CloseNotify)
            } else if l.msg.starts_with("upstream disconnected, bytes") {
                // nginx sent close_notify and closed without reading the answer.
                Some(Verdict::NotJudged)
            } else if l.msg.contains("while SSL handshaking") {
                Some(Verdict::Error(l.raw.to_string()))
            } else {
                None
            };
            if let Some(end) = end {
                let s = open.remove(&key).unwrap_or_default();
                order.retain(|k| *k != key);
                out.push(if s.bare_fin {
                    Verdict::BareFin
                } else if let Some(e) = s.error {
                    Verdict::Error(e)
                } else {
                    end
                });
            }
        } else if let Some(p) = l.msg.strip_prefix("worker process ") {
            // `worker process P exited on signal 9`: its sessions end unjudged.
            if let Some(dead) = p
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            {
                if p.contains("exited") {
                    for key in order.iter().filter(|k| k.0 == dead) {
                        open.remove(key);
                        out.push(Verdict::NotJudged);
                    }
                    order.retain(|k| k.0 != dead);
                }
            }
        }
    }
    out
}

impl TlsPeer for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }
    fn tls(&self) -> Tls {
        self.tls
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn say(&mut self, _line: &str) -> bool {
        false
    }
    fn how(&self, end: ServerEnd) -> How {
        match end {
            ServerEnd::CloseNotify => How::Line("srv-close"),
            ServerEnd::Truncate => How::Act,
        }
    }
    fn act(&mut self, end: ServerEnd) {
        assert_eq!(end, ServerEnd::Truncate, "nginx plays {end:?} by a line");
        let workers = self.workers();
        assert!(
            workers.contains(&self.worker),
            "nginx worker {} is not a child of master {} (children: {workers:?}){}",
            self.worker,
            self.master.pid(),
            self.dump()
        );
        // Safe against PID reuse: the worker is our master's child, and only
        // the master reaps it.
        let rc = super::sys::kill(self.worker as i32, SIGKILL) == 0;
        assert!(
            rc,
            "kill(worker {}, SIGKILL) failed{}",
            self.worker,
            self.dump()
        );
        let line = format!("worker process {} exited on signal 9", self.worker);
        if !self.log.wait_for(&line, WAIT) {
            panic!("nginx master never logged {line:?}{}", self.dump());
        }
        // The master starts a new worker at once; later sessions use it.
        let fresh = started_workers(&self.log.text()).last().copied();
        if let Some(w) = fresh {
            self.worker = w;
        }
    }
    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        let want = self.consumed + 1;
        self.log.wait_until(timeout, |b, eof| {
            nginx_verdicts(&String::from_utf8_lossy(b)).len() >= want || eof
        });
        match nginx_verdicts(&self.log.text()).get(self.consumed) {
            Some(v) => {
                self.consumed += 1;
                v.clone()
            }
            None => Verdict::Error(format!(
                "nginx ended no session {want} within {timeout:?} ({})",
                describe_status(self.master.status())
            )),
        }
    }
    fn version(&self) -> String {
        self.version.clone()
    }
}

impl Dump for Nginx {
    fn dump(&self) -> String {
        format!(
            "\n\n===== nginx master pid {} worker {} port {} backend {} ({}) =====\n{}\n----- log -----\n{}\n",
            self.master.pid(),
            self.worker,
            self.port,
            self.backend.port,
            describe_status(self.master.status()),
            self.conf,
            show_bytes(&self.log.bytes(), 16_000)
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.master.has_exited() {
            return;
        }
        // Fast shutdown: the master stops its workers, waits for them, exits.
        self.master.signal(SIGTERM);
        if self.master.wait_timeout(WAIT).is_some() {
            return;
        }
        // Kill the workers first: once the master is gone they would be
        // reparented and no longer provably ours.
        for w in self.workers() {
            let _ = super::sys::kill(w as i32, SIGKILL);
        }
        self.master.kill();
    }
}
