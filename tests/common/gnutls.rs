//! gnutls-serv --echo as a peer; its debug log is the referee.
//!
//! Measured with gnutls-serv 3.7.9: a client that leaves without close_notify
//! makes it print `Error: The TLS connection was non-properly terminated.`; a
//! clean close prints nothing at `-d 2`, so the peer runs at `-d 5`, where the
//! record layer logs `Alert[1|0] - Close notify - was received`. Every
//! connection ends with exactly one of those lines or another `Error...` line,
//! so the n-th such line is the verdict on the n-th connection that ended
//! (the session pointers in the log are reused, so they do not identify a
//! connection).
//!
//! gnutls-serv has no option to bind an address: it listens on every IPv4 and
//! IPv6 address of the host; the tests only ever connect to 127.0.0.1.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::peer::{How, ServerEnd, TlsPeer, Verdict};
use super::{
    Capture, CertFiles, Dump, Proc, SIGKILL, Tls, WAIT, describe_status, free_port, have_tool,
    show_bytes,
};

pub const GNUTLS_SERV: &str = "gnutls-serv";

/// The record-layer line (at `-d 5` or more) for the client's close_notify.
pub const GNUTLS_CLOSE_NOTIFY: &str = "Alert[1|0] - Close notify - was received";
/// The line for a client that ended TCP without close_notify.
pub const GNUTLS_NOT_PROPERLY: &str = "The TLS connection was non-properly terminated.";

pub struct GnutlsServ {
    proc: Proc,
    port: u16,
    tls: Tls,
    /// stdout and stderr, interleaved as `2>&1` would.
    pub log: Capture,
    args: Vec<String>,
    /// Verdicts already handed out by `next_verdict`.
    consumed: usize,
    /// Set once the harness killed the server to truncate.
    killed: bool,
    version: String,
}

impl GnutlsServ {
    pub fn start(cert: &CertFiles, tls: Tls) -> Option<GnutlsServ> {
        if !have_tool(GNUTLS_SERV, "gnutls-bin") {
            return None;
        }
        let version = gnutls_version();
        let priority = match tls {
            Tls::V12 => "NORMAL:-VERS-ALL:+VERS-TLS1.2",
            Tls::V13 => "NORMAL:-VERS-ALL:+VERS-TLS1.3",
        };
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let args: Vec<String> = vec![
                "--echo".into(),
                "-p".into(),
                port.to_string(),
                "--x509certfile".into(),
                cert.cert.display().to_string(),
                "--x509keyfile".into(),
                cert.key.display().to_string(),
                "-d".into(),
                "5".into(),
                "--priority".into(),
                priority.into(),
            ];
            // One pipe for both streams keeps the order of the verdict lines
            // (stdout) and the record-layer lines (stderr); exec keeps the
            // PID, so the kill reaches gnutls-serv itself.
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg("exec stdbuf -oL \"$0\" \"$@\" 2>&1")
                .arg(GNUTLS_SERV)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut proc = Proc::spawn("gnutls-serv", &mut cmd)
                .unwrap_or_else(|e| panic!("cannot start {GNUTLS_SERV}: {e}"));
            let log = Capture::new();
            log.attach(proc.child_mut().stdout.take().expect("piped stdout"));
            log.attach(proc.child_mut().stderr.take().expect("piped stderr"));
            let srv = GnutlsServ {
                proc,
                port,
                tls,
                log,
                args,
                consumed: 0,
                killed: false,
                version: version.clone(),
            };
            // IPv4 is bound first; connections queue in its backlog even
            // before the accept loop runs.
            if srv
                .log
                .wait_for(&format!("IPv4 0.0.0.0 port {port}...done"), WAIT)
            {
                return Some(srv);
            }
            let _ = writeln!(failures, "attempt {attempt} (port {port}):{}", srv.dump());
        }
        panic!("gnutls-serv did not start after 5 attempts:\n{failures}");
    }

    /// Number of connections the log shows as started.
    fn started(log: &str) -> usize {
        log.lines()
            .filter(|l| {
                l.starts_with("* Accepted connection") || l.starts_with("Error in handshake")
            })
            .count()
    }
}

/// The verdicts in the log, in the order the connections ended.
pub fn gnutls_verdicts(log: &str) -> Vec<Verdict> {
    let mut out = Vec::new();
    for line in log.lines() {
        if line.contains(GNUTLS_CLOSE_NOTIFY) {
            out.push(Verdict::CloseNotify);
        } else if let Some(rest) = line.strip_prefix("Error: ") {
            if rest.contains(GNUTLS_NOT_PROPERLY) {
                out.push(Verdict::BareFin);
            } else {
                out.push(Verdict::Error(rest.trim().to_string()));
            }
        } else if line.starts_with("Error in handshake") {
            out.push(Verdict::Error(line.trim().to_string()));
        }
    }
    out
}

fn gnutls_version() -> String {
    let out = Command::new(GNUTLS_SERV)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    let text = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => return format!("GnuTLS ? ({e})"),
    };
    match text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
    {
        Some(v) => format!("GnuTLS {v}"),
        None => format!("GnuTLS ? ({text:?})"),
    }
}

impl TlsPeer for GnutlsServ {
    fn name(&self) -> &'static str {
        "gnutls-serv"
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
            ServerEnd::CloseNotify => {
                How::Cannot("gnutls-serv --echo closes only after the client")
            }
            ServerEnd::Truncate => How::Act,
        }
    }
    fn act(&mut self, end: ServerEnd) {
        assert_eq!(end, ServerEnd::Truncate, "gnutls-serv cannot play {end:?}");
        // The kernel closes the sockets of a killed process with a FIN and no
        // TLS record: a truncation the client must notice.
        self.proc.signal(SIGKILL);
        self.killed = true;
        if self.proc.wait_timeout(WAIT).is_none() {
            panic!("gnutls-serv survived SIGKILL for {WAIT:?}{}", self.dump());
        }
    }
    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        let want = self.consumed + 1;
        self.log.wait_until(timeout, |b, eof| {
            gnutls_verdicts(&String::from_utf8_lossy(b)).len() >= want || eof
        });
        let log = self.log.text();
        let mut verdicts = gnutls_verdicts(&log);
        if self.killed && self.log.is_eof() {
            // Connections open when it was killed were never judged.
            let open = Self::started(&log).saturating_sub(verdicts.len());
            verdicts.extend(std::iter::repeat_n(Verdict::NotJudged, open));
        }
        match verdicts.get(self.consumed) {
            Some(v) => {
                self.consumed += 1;
                v.clone()
            }
            None if self.log.is_eof() => Verdict::Error(format!(
                "gnutls-serv ended ({}) without judging connection {want}",
                describe_status(self.proc.status())
            )),
            None => Verdict::Error(format!(
                "gnutls-serv judged no connection {want} within {timeout:?}"
            )),
        }
    }
    fn version(&self) -> String {
        self.version.clone()
    }
}

impl Dump for GnutlsServ {
    fn dump(&self) -> String {
        format!(
            "\n\n===== gnutls-serv {} (pid {}) =====\n{}\n----- output (stdout+stderr) -----\n{}\n",
            self.args.join(" "),
            self.proc.pid(),
            describe_status(self.proc.status()),
            show_bytes(&self.log.bytes(), 24_000)
        )
    }
}
