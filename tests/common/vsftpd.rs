//! vsftpd started by the test: standalone (`listen=YES`, `background=NO`) on a free 127.0.0.1
//! port, anonymous login only, explicit FTPS (`AUTH TLS`) with the test's certificate, its
//! config, empty chroot and anonymous root in a temporary directory, and its log in a file
//! there (`vsftpd_log_file`, `log_ftp_protocol=YES`, `debug_ssl=YES`).
//!
//! vsftpd runs as root (without root the tests that need it print SKIP), as it is meant to (it forks a process per session and drops to the
//! `ftp` user for anonymous sessions); only the listener is our child, so the sessions it
//! forked are killed by PID on drop, before it.
//!
//! # The referee
//! Per session the log has `CONNECT`, every command and reply, and `SSL version: TLSv1.3,
//! SSL cipher: ...` once TLS is up. At the end:
//! - after the client's close_notify: **nothing** (vsftpd ends the session without a word);
//! - after a bare TCP FIN: `DEBUG: Client "127.0.0.1", "Control connection terminated
//!   without SSL shutdown."`.
//!
//! So a clean end is read as "the session's processes are gone and it logged no such line":
//! [`Vsftpd::wait_verdict`] waits for the listener to have no child left first.

use super::daemon::{descendants, kill_descendants, listening, poll_until};
use super::peer::Verdict;
use super::*;

pub const VSFTPD: &str = "/usr/sbin/vsftpd";
/// What vsftpd logs when the control connection ended without close_notify.
pub const VSFTPD_BARE_CLOSE: &str = "Control connection terminated without SSL shutdown";

pub struct Vsftpd {
    pub proc: Proc,
    pub port: u16,
    pub log: LogFile,
    dir: TempDir,
}

impl Vsftpd {
    /// vsftpd with TLS (`tls`) or without it, for the refusal case; `None` (after a SKIP line)
    /// when vsftpd is not installed outside CI.
    pub fn start(cert: &CertFiles, tls: bool) -> Option<Vsftpd> {
        if !have_tool(VSFTPD, "vsftpd") || !needs_root("vsftpd") {
            return None;
        }
        let dir = TempDir::new("vsftpd");
        let empty = dir.path().join("empty");
        let anon = dir.path().join("anon");
        for d in [&empty, &anon] {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let log = LogFile::new(dir.path().join(format!("vsftpd-{port}.log")));
            let ssl = if tls {
                format!(
                    "ssl_enable=YES\nallow_anon_ssl=YES\nforce_anon_logins_ssl=YES\n\
                     force_anon_data_ssl=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n\
                     ssl_ciphers=HIGH\nrequire_ssl_reuse=NO\n",
                    cert.cert.display(),
                    cert.key.display()
                )
            } else {
                "ssl_enable=NO\n".to_string()
            };
            let conf = format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 background=NO\nanonymous_enable=YES\nno_anon_password=YES\nanon_root={}\n\
                 local_enable=NO\nwrite_enable=NO\nsecure_chroot_dir={}\n{ssl}\
                 debug_ssl=YES\nlog_ftp_protocol=YES\nxferlog_enable=YES\n\
                 xferlog_std_format=NO\nvsftpd_log_file={}\ndual_log_enable=NO\n\
                 syslog_enable=NO\nseccomp_sandbox=NO\n",
                anon.display(),
                empty.display(),
                log.path.display()
            );
            let conf_path = dir.write(&format!("vsftpd-{port}.conf"), conf.as_bytes());
            let out = Capture::new();
            let mut cmd = Command::new(VSFTPD);
            cmd.arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut proc = Proc::spawn("vsftpd", &mut cmd)
                .unwrap_or_else(|e| panic!("cannot start {VSFTPD}: {e}"));
            out.attach(proc.child_mut().stdout.take().expect("piped stdout"));
            out.attach(proc.child_mut().stderr.take().expect("piped stderr"));
            // It logs nothing at start; it listens, or it exits (say, the port was taken).
            let up = poll_until(WAIT, || listening(port) || proc.has_exited());
            if up && !proc.has_exited() {
                return Some(Vsftpd {
                    proc,
                    port,
                    log,
                    dir,
                });
            }
            let _ = writeln!(
                failures,
                "attempt {attempt} (port {port}, {}):\n{}",
                describe_status(proc.status()),
                show_bytes(&out.bytes(), 4_000)
            );
            proc.kill();
        }
        panic!("vsftpd did not start after 5 attempts:\n{failures}");
    }

    /// Waits until every session has ended (no process left below the listener), then says
    /// how the `n`-th (from 0) ended its TLS session (see the module docs).
    pub fn wait_verdict(&self, n: usize, timeout: Duration) -> Verdict {
        let pid = self.proc.pid();
        let gone = poll_until(timeout, || descendants(pid).is_empty());
        assert!(
            gone,
            "vsftpd sessions still running after {timeout:?}: {:?}{}",
            descendants(pid),
            self.dump()
        );
        vsftpd_verdicts(&self.log.text())
            .get(n)
            .cloned()
            .unwrap_or_else(|| panic!("vsftpd logged no session {n}{}", self.dump()))
    }

    /// The directory holding the config, the chroot and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        if !self.proc.has_exited() {
            kill_descendants(self.proc.pid());
        }
    }
}

/// The `[pid N]` of a log line.
fn line_pid(line: &str) -> Option<u32> {
    let rest = &line[line.find("[pid ")? + 5..];
    rest[..rest.find(']')?].parse().ok()
}

/// How each session in the log ended, in the order they connected. A session is its
/// `CONNECT` line's PID and what follows until the next `CONNECT` (after login, vsftpd goes
/// on in other processes of the same session).
pub fn vsftpd_verdicts(text: &str) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    let judge = |lines: &[&str]| {
        if !lines.iter().any(|l| l.contains("\"SSL version: ")) {
            return Verdict::Error("no TLS session logged".to_string());
        }
        let odd = lines.iter().find(|l| {
            (l.contains("] DEBUG: ") && !l.contains("\"SSL version: ")) || l.contains(" FAIL ")
        });
        match odd {
            Some(l) if l.contains(VSFTPD_BARE_CLOSE) => Verdict::BareFin,
            Some(l) => Verdict::Error(l.to_string()),
            None => Verdict::CloseNotify,
        }
    };
    for line in text.lines() {
        if line.contains("] CONNECT: ") && line_pid(line).is_some() {
            if let Some(lines) = current.take() {
                out.push(judge(&lines));
            }
            current = Some(Vec::new());
        }
        if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some(lines) = current {
        out.push(judge(&lines));
    }
    out
}

impl Dump for Vsftpd {
    fn dump(&self) -> String {
        format!(
            "\n\n===== vsftpd on 127.0.0.1:{} (pid {}, {}) =====\n{}",
            self.port,
            self.proc.pid(),
            describe_status(self.proc.status()),
            self.log.dump()
        )
    }
}
