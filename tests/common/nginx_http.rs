//! nginx as an HTTPS server (`http {}`), for `tests/http.rs`.
//!
//! One nginx (a master and one worker, from a fresh prefix in a temporary
//! directory) listens on 127.0.0.1 with TLS 1.2 and 1.3 and serves two
//! locations:
//! - `/static` answers [`STATIC_BODY`] itself (`return 200`);
//! - `/slow` is proxied to [`Upstream`], a thread in the test process that
//!   speaks just enough HTTP/1.0 to answer [`SLOW_BODY`] (with
//!   `Content-Length`) [`UPSTREAM_DELAY`] after the request came in.
//!
//! Keep-alive is nginx's default (75 s). The client pins the TLS version
//! (`--tls-min`/`--tls-max`); the access log says which one was used.
//!
//! # What the tests read
//! - The **access log** goes to nginx's stdout, one [`Access`] line per
//!   request (`ACCESS conn=.. n=.. status=.. proto=.. tls=.. uri=..`), written
//!   when nginx finishes the request: `status` is 499 when nginx gave up
//!   because the client went away first.
//! - The **error log** goes to stderr at `info`; every line about a
//!   connection carries `*N`, the same number as the access log's `conn=`.
//!   nginx is started with the shim of `nginx.rs` (it clears
//!   `SSL_OP_IGNORE_UNEXPECTED_EOF`), so a client that leaves a keep-alive
//!   connection with close_notify makes nginx log `client 127.0.0.1 closed
//!   keepalive connection` and nothing else, while a bare TCP FIN makes it log
//!   `[crit] ... SSL_read() failed ... unexpected eof while reading`.
//!
//! Every process here is ours: the master is a [`Proc`], its workers are
//! killed by PID only after checking they are its children.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::nginx::{NGINX, build_shim, children, nginx_version, start_master};
use super::{
    Capture, CertFiles, Dump, Proc, SIGKILL, SIGTERM, TempDir, WAIT, describe_status, dumps,
    free_port, have_tool, show_bytes,
};

/// What `/static` answers.
pub const STATIC_BODY: &str = "gracetls static body: every byte, then a goodbye\n";
/// What `/slow` answers (through the proxy), [`UPSTREAM_DELAY`] late.
pub const SLOW_BODY: &str = "gracetls slow body: one second late, still whole\n";
/// How long the upstream waits before it answers.
pub const UPSTREAM_DELAY: Duration = Duration::from_secs(1);

/// One access-log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// nginx's connection number (`*N` in the error log).
    pub conn: u64,
    /// The request's number on its connection.
    pub n: u64,
    pub status: u16,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub proto: String,
    /// `TLSv1.2` or `TLSv1.3`.
    pub tls: String,
    pub uri: String,
}

impl Access {
    /// Parses a line written with the `gracetls` log format.
    pub fn parse(line: &str) -> Option<Access> {
        let rest = line.trim_end().strip_prefix("ACCESS ")?;
        let mut fields = rest.split(' ').filter_map(|f| f.split_once('='));
        let mut next = |key: &str| {
            fields
                .next()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        };
        Some(Access {
            conn: next("conn")?.parse().ok()?,
            n: next("n")?.parse().ok()?,
            status: next("status")?.parse().ok()?,
            proto: next("proto")?,
            tls: next("tls")?,
            uri: next("uri")?,
        })
    }
}

/// The HTTP/1.0 upstream behind `/slow`, a thread per connection.
pub struct Upstream {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// Request lines received, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// Answers written without a socket error.
    answered: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream 127.0.0.1:0");
        let port = listener.local_addr().expect("upstream address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let answered = Arc::new(AtomicUsize::new(0));
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let (stop, requests, answered, threads) = (
                stop.clone(),
                requests.clone(),
                answered.clone(),
                threads.clone(),
            );
            thread::spawn(move || {
                for s in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(s) = s else { continue };
                    let (requests, answered) = (requests.clone(), answered.clone());
                    let h = thread::spawn(move || serve_slow(s, &requests, &answered));
                    threads.lock().unwrap().push(h);
                }
            })
        };
        Upstream {
            port,
            stop,
            requests,
            answered,
            threads,
            acceptor: Some(acceptor),
        }
    }

    /// The request lines received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// How many answers were written without a socket error.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

/// Reads one request head, waits [`UPSTREAM_DELAY`] (the point of `/slow`),
/// answers, and reads until nginx closes.
fn serve_slow(mut s: TcpStream, requests: &Mutex<Vec<String>>, answered: &AtomicUsize) {
    if s.set_read_timeout(Some(WAIT)).is_err() {
        return;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !super::contains(&head, b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    requests.lock().unwrap().push(line);
    thread::sleep(UPSTREAM_DELAY);
    let answer = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{SLOW_BODY}",
        SLOW_BODY.len()
    );
    if s.write_all(answer.as_bytes()).is_ok() {
        answered.fetch_add(1, Ordering::SeqCst);
    }
    let _ = s.shutdown(Shutdown::Write);
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        let threads: Vec<_> = self.threads.lock().unwrap().drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
    }
}

/// nginx with `http {}`; see the module docs.
pub struct NginxHttp {
    /// In a Mutex so that test threads can share the harness (`Proc` is not
    /// `Sync`); only `dump` and `drop` use it.
    master: Mutex<Proc>,
    pub port: u16,
    /// The access log (nginx's stdout).
    pub access: Capture,
    /// The error log at `info` (nginx's stderr), master and worker.
    pub log: Capture,
    pub upstream: Upstream,
    conf: String,
    version: String,
    /// Holds nginx.conf, the temp paths, the pid file and the shim; dropped last.
    dir: TempDir,
}

impl NginxHttp {
    /// Starts nginx; `None` when nginx or cc is missing outside CI.
    pub fn start(cert: &CertFiles) -> Option<NginxHttp> {
        if !have_tool(NGINX, "nginx") || !have_tool("cc", "gcc") {
            return None;
        }
        let dir = TempDir::new("nginx-http");
        let shim = build_shim(&dir);
        let version = nginx_version();
        let upstream = Upstream::start();
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let conf = config(&dir, cert, port, upstream.port);
            let conf_path = dir.write("nginx.conf", conf.as_bytes());
            let (access, log) = (Capture::new(), Capture::new());
            let (mut master, worker) = start_master(&dir, &conf_path, &shim, &access, &log);
            match worker {
                Some(_) => {
                    return Some(NginxHttp {
                        master: Mutex::new(master),
                        port,
                        access,
                        log,
                        upstream,
                        conf,
                        version,
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
        panic!("nginx (http) did not start after 5 attempts:\n{failures}");
    }

    /// Waits for the access-log line of `uri`; panics with `ctx` if none
    /// comes within `timeout`.
    pub fn access_for(&self, uri: &str, timeout: Duration, ctx: &[&dyn Dump]) -> Access {
        let find = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .filter_map(Access::parse)
                .find(|a| a.uri == uri)
        };
        let mut found = None;
        self.access.wait_until(timeout, |b, eof| {
            found = find(b);
            found.is_some() || eof
        });
        found.unwrap_or_else(|| {
            panic!(
                "nginx logged no request for {uri} within {timeout:?}{}{}",
                dumps(ctx),
                self.dump()
            )
        })
    }

    /// The error-log lines about connection `conn` so far.
    pub fn conn_log(&self, conn: u64) -> Vec<String> {
        let tag = format!(": *{conn} ");
        self.log
            .text()
            .lines()
            .filter(|l| l.contains(&tag))
            .map(str::to_string)
            .collect()
    }

    /// Waits until the error log has a line about `conn` containing `pat`.
    pub fn wait_conn_log(&self, conn: u64, pat: &str, timeout: Duration) -> bool {
        let tag = format!(": *{conn} ");
        let mut found = false;
        self.log.wait_until(timeout, |b, eof| {
            found = String::from_utf8_lossy(b)
                .lines()
                .any(|l| l.contains(&tag) && l.contains(pat));
            found || eof
        });
        found
    }

    /// nginx and OpenSSL versions, for summaries.
    pub fn version(&self) -> &str {
        &self.version
    }
}

fn config(dir: &TempDir, cert: &CertFiles, port: u16, upstream: u16) -> String {
    let d = dir.path().display();
    // Debian's compiled-in temp paths are under /var/lib/nginx: keep them here.
    let temps: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("  {t}_temp_path {d}/{t}_temp;\n"))
        .collect();
    format!(
        "worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log stderr info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20 log_format gracetls 'ACCESS conn=$connection n=$connection_requests status=$status proto=$server_protocol tls=$ssl_protocol uri=$request_uri';\n\
         \x20 access_log /dev/stdout gracetls;\n\
         {temps}\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port} ssl;\n\
         \x20   ssl_certificate {};\n\
         \x20   ssl_certificate_key {};\n\
         \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\
         \x20   location /static {{ return 200 \"{}\"; }}\n\
         \x20   location /slow {{ proxy_pass http://127.0.0.1:{upstream}; }}\n\
         \x20 }}\n\
         }}\n",
        cert.cert.display(),
        cert.key.display(),
        STATIC_BODY.escape_default(),
    )
}

impl Dump for NginxHttp {
    fn dump(&self) -> String {
        let master = self.master.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "\n\n===== nginx (http) master pid {} port {} upstream {} ({}) =====\n{}\n\
             ----- upstream requests: {:?}, answered {} -----\n\
             ----- access log -----\n{}\n----- error log -----\n{}\n",
            master.pid(),
            self.port,
            self.upstream.port,
            describe_status(master.status()),
            self.conf,
            self.upstream.requests(),
            self.upstream.answered(),
            show_bytes(&self.access.bytes(), 8_000),
            show_bytes(&self.log.bytes(), 16_000)
        )
    }
}

impl Drop for NginxHttp {
    fn drop(&mut self) {
        let master = self.master.get_mut().unwrap_or_else(|e| e.into_inner());
        if master.has_exited() {
            return;
        }
        // Fast shutdown: the master stops its workers, waits for them, exits.
        master.signal(SIGTERM);
        if master.wait_timeout(WAIT).is_some() {
            return;
        }
        // Kill the workers first: once the master is gone they would be
        // reparented and no longer provably ours.
        for w in children(master.pid()) {
            let _ = super::sys::kill(w as i32, SIGKILL);
        }
        master.kill();
    }
}
