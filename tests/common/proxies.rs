//! Real proxies for the proxy tests: `tinyproxy` (HTTP CONNECT) and `microsocks` (SOCKS5,
//! RFC 1928 with RFC 1929 user and password), each run as this test's own process on
//! 127.0.0.1 with everything in a temporary directory, and its log as the referee.
//!
//! tinyproxy runs in the foreground (`-d`) with its own config file; with no `LogFile` it
//! logs to stdout, a line at a time, which [`Capture`] reads as it comes. As root it warns
//! that no `User` is set and keeps running as the current user: nothing system-wide is
//! touched (no pid file, no log file under /var). It logs each tunnel as
//! `Request (file descriptor N): CONNECT host:port HTTP/1.1` and
//! `Established connection to host "host" ...`, and a refusal as
//! `Refused CONNECT method on port N` or an authentication failure.
//!
//! microsocks takes everything on its command line (`-i`, `-p`, `-u`, `-P`), runs in the
//! foreground as whoever starts it, and logs each tunnel as
//! `client[N] 127.0.0.1: connected to host:port`, with the host as the client sent it: a
//! name stays a name, which shows the proxy, not the client, resolved it. It prints nothing
//! when it starts, so readiness is a successful TCP connect to its port while it still runs.
//! Chosen over dante-server: one small process with no config file and no privilege
//! settings, where danted wants a config naming interfaces, methods and the users it
//! switches to.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    Capture, Dump, Proc, TempDir, WAIT, describe_status, dumps, free_port, have_tool, show_bytes,
};

/// What a tinyproxy instance allows.
#[derive(Default)]
pub struct TinyproxyRules {
    /// Ports CONNECT may reach (`ConnectPort`); tinyproxy refuses the others with 403.
    pub connect_ports: Vec<u16>,
    /// `BasicAuth USER PASSWORD`: clients must give these.
    pub basic_auth: Option<(&'static str, &'static str)>,
}

/// A running tinyproxy; killed (by its PID) on drop.
pub struct Tinyproxy {
    pub proc: Proc,
    pub port: u16,
    /// Its stdout and stderr: the log.
    pub log: Capture,
    conf: String,
    _dir: TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy with `rules`, or `None` (after a SKIP line) when it is not installed.
    pub fn start(rules: &TinyproxyRules) -> Option<Tinyproxy> {
        if !have_tool("tinyproxy", "tinyproxy") {
            return None;
        }
        let dir = TempDir::new("tinyproxy");
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let mut conf = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Info\nMaxClients 20\n\
                 Allow 127.0.0.1\n"
            );
            for p in &rules.connect_ports {
                let _ = writeln!(conf, "ConnectPort {p}");
            }
            if let Some((user, password)) = rules.basic_auth {
                let _ = writeln!(conf, "BasicAuth {user} {password}");
            }
            let path = dir.write("tinyproxy.conf", conf.as_bytes());
            let mut cmd = Command::new("tinyproxy");
            cmd.arg("-d")
                .arg("-c")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut proc = Proc::spawn("tinyproxy", &mut cmd)
                .unwrap_or_else(|e| panic!("cannot start tinyproxy: {e}"));
            let log = Capture::new();
            log.attach(proc.child_mut().stdout.take().expect("tinyproxy stdout"));
            log.attach(proc.child_mut().stderr.take().expect("tinyproxy stderr"));
            let ready = log.wait_until(WAIT, |b, eof| {
                eof || super::contains(b, b"Accepting connections")
                    || super::contains(b, b"Could not create listening")
            });
            if ready && log.contains("Accepting connections") {
                return Some(Tinyproxy {
                    proc,
                    port,
                    log,
                    conf,
                    _dir: dir,
                });
            }
            proc.kill();
            let _ = writeln!(
                failures,
                "attempt {attempt} (port {port}, {}):\n{}",
                describe_status(proc.status()),
                show_bytes(&log.bytes(), 4_000)
            );
        }
        panic!("tinyproxy did not start after 5 attempts:\n{failures}");
    }

    /// `http://127.0.0.1:PORT`, with `user:password@` when given.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((user, password)) => format!("http://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Waits for `pat` in the log; panics with `ctx` if it does not come.
    pub fn expect_log(&self, pat: &str, ctx: &[&dyn Dump]) {
        if !self.log.wait_for(pat, WAIT) {
            panic!(
                "tinyproxy never logged {pat:?}{}{}",
                dumps(ctx),
                self.dump()
            );
        }
    }

    /// The log lines that contain `pat`.
    pub fn lines_with(&self, pat: &str) -> Vec<String> {
        lines_with(&self.log, pat)
    }
}

impl Dump for Tinyproxy {
    fn dump(&self) -> String {
        format!(
            "\n\n===== tinyproxy port {} (pid {}, {}) =====\n{}----- log -----\n{}\n",
            self.port,
            self.proc.pid(),
            describe_status(self.proc.status()),
            self.conf,
            show_bytes(&self.log.bytes(), 16_000)
        )
    }
}

/// A running microsocks; killed (by its PID) on drop.
pub struct Microsocks {
    pub proc: Proc,
    pub port: u16,
    /// Its stdout and stderr: the log.
    pub log: Capture,
    args: Vec<String>,
}

impl Microsocks {
    /// Starts microsocks, requiring `credentials` when given, or `None` (after a SKIP line)
    /// when it is not installed.
    pub fn start(credentials: Option<(&str, &str)>) -> Option<Microsocks> {
        if !have_tool("microsocks", "microsocks") {
            return None;
        }
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let mut args = vec![
                "-i".to_string(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ];
            if let Some((user, password)) = credentials {
                args.extend(["-u".into(), user.into(), "-P".into(), password.into()]);
            }
            let mut cmd = Command::new("microsocks");
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut proc = Proc::spawn("microsocks", &mut cmd)
                .unwrap_or_else(|e| panic!("cannot start microsocks: {e}"));
            let log = Capture::new();
            log.attach(proc.child_mut().stdout.take().expect("microsocks stdout"));
            log.attach(proc.child_mut().stderr.take().expect("microsocks stderr"));
            if listening(&mut proc, port) {
                return Some(Microsocks {
                    proc,
                    port,
                    log,
                    args,
                });
            }
            proc.kill();
            let _ = writeln!(
                failures,
                "attempt {attempt} (port {port}, {}):\n{}",
                describe_status(proc.status()),
                show_bytes(&log.bytes(), 4_000)
            );
        }
        panic!("microsocks did not start after 5 attempts:\n{failures}");
    }

    /// `socks5://127.0.0.1:PORT`, with `user:password@` when given.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((user, password)) => {
                format!("socks5://{user}:{password}@127.0.0.1:{}", self.port)
            }
            None => format!("socks5://127.0.0.1:{}", self.port),
        }
    }

    /// Waits for `pat` in the log; panics with `ctx` if it does not come.
    pub fn expect_log(&self, pat: &str, ctx: &[&dyn Dump]) {
        if !self.log.wait_for(pat, WAIT) {
            panic!(
                "microsocks never logged {pat:?}{}{}",
                dumps(ctx),
                self.dump()
            );
        }
    }

    /// The log lines that contain `pat`.
    pub fn lines_with(&self, pat: &str) -> Vec<String> {
        lines_with(&self.log, pat)
    }
}

/// Whether `proc` listens on `port`: a TCP connect succeeds while it still runs (bounded by
/// [`WAIT`], one attempt every 10 ms).
fn listening(proc: &mut Proc, port: u16) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if proc.has_exited() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return !proc.has_exited();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

impl Dump for Microsocks {
    fn dump(&self) -> String {
        format!(
            "\n\n===== microsocks {} (pid {}, {}) =====\n----- log -----\n{}\n",
            self.args.join(" "),
            self.proc.pid(),
            describe_status(self.proc.status()),
            show_bytes(&self.log.bytes(), 16_000)
        )
    }
}

fn lines_with(log: &Capture, pat: &str) -> Vec<String> {
    log.text()
        .lines()
        .filter(|l| l.contains(pat))
        .map(str::to_string)
        .collect()
}
