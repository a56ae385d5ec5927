//! Prosody started by the test: one VirtualHost `localhost`, client connections (c2s) on a
//! free 127.0.0.1 port and no other port (no s2s, HTTP or direct TLS), STARTTLS with the
//! test's certificate and encryption required, its data, pid file and debug log in a
//! temporary directory.
//!
//! Prosody will not run as root: when the tests run as root it runs as the `prosody` system
//! user (the Debian package creates it) by uid and gid set on the command, so the PID the test
//! holds is Prosody's own; otherwise as the test's own user. The directory and the certificate
//! copy are handed to that user.
//!
//! # The referee
//! At `debug` level each client session logs `Client connected`, the STARTTLS exchange, `TLS
//! handshake complete (TLSv1.3 with ...)`, `Stream encrypted (...)`, and at its end one `info`
//! line:
//! - after the client's close_notify: `Client disconnected: connection closed` (Prosody
//!   answers it with its own close_notify);
//! - after a bare TCP FIN: `Client disconnected: unexpected eof while reading` (with `Read
//!   error, closing (unexpected eof while reading)` at debug).

use super::daemon::{command_as, daemon_user, give_to, poll_until, server_cert_copy};
use super::peer::Verdict;
use super::*;

pub const PROSODY: &str = "/usr/bin/prosody";
/// Prosody's line when a client session ends, followed by the reason.
pub const PROSODY_DISCONNECTED: &str = "Client disconnected: ";
/// The reason after a close_notify.
pub const PROSODY_CLEAN: &str = "connection closed";
/// The reason after a bare TCP FIN.
pub const PROSODY_BARE_CLOSE: &str = "unexpected eof while reading";

pub struct Prosody {
    pub proc: Proc,
    pub port: u16,
    pub log: LogFile,
    dir: TempDir,
}

impl Prosody {
    /// Prosody offering STARTTLS (`tls`), or with its TLS module off, for the refusal case;
    /// `None` (after a SKIP line) when Prosody is not installed outside CI.
    pub fn start(cert: &CertFiles, tls: bool) -> Option<Prosody> {
        if !have_tool(PROSODY, "prosody") {
            return None;
        }
        let user = daemon_user("prosody");
        let dir = TempDir::new("prosody");
        give_to(dir.path(), user, 0o755);
        let d = dir.path();
        for sub in ["data", "certs"] {
            let p = d.join(sub);
            std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
            give_to(&p, user, 0o750);
        }
        let certs = server_cert_copy(cert, &dir, user);
        let (modules, require) = if tls {
            ("\"tls\", ", "true")
        } else {
            ("", "false")
        };
        let disabled = if tls { "" } else { ", \"tls\"" };
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let log = LogFile::new(d.join(format!("prosody-{port}.log")));
            let conf = format!(
                "pidfile = \"{d}/prosody.pid\"\n\
                 data_path = \"{d}/data\"\n\
                 certificates = \"{d}/certs\"\n\
                 plugin_paths = {{}}\n\
                 log = {{ debug = \"{log}\" }}\n\
                 interfaces = {{ \"127.0.0.1\" }}\n\
                 c2s_ports = {{ {port} }}\n\
                 c2s_direct_tls_ports = {{}}\n\
                 legacy_ssl_ports = {{}}\n\
                 s2s_ports = {{}}\n\
                 s2s_direct_tls_ports = {{}}\n\
                 component_ports = {{}}\n\
                 http_ports = {{}}\n\
                 https_ports = {{}}\n\
                 modules_enabled = {{ {modules}\"saslauth\", \"disco\", \"ping\" }}\n\
                 modules_disabled = {{ \"s2s\", \"offline\"{disabled} }}\n\
                 c2s_require_encryption = {require}\n\
                 authentication = \"internal_plain\"\n\
                 ssl = {{ certificate = \"{}\", key = \"{}\" }}\n\
                 VirtualHost \"localhost\"\n",
                certs.cert.display(),
                certs.key.display(),
                d = d.display(),
                log = log.path.display(),
            );
            let conf_path = dir.write(&format!("prosody-{port}.cfg.lua"), conf.as_bytes());
            let out = Capture::new();
            let mut cmd = command_as(Path::new(PROSODY), user, d);
            cmd.arg("--config")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut proc = Proc::spawn("prosody", &mut cmd)
                .unwrap_or_else(|e| panic!("cannot start {PROSODY}: {e}"));
            out.attach(proc.child_mut().stdout.take().expect("piped stdout"));
            out.attach(proc.child_mut().stderr.take().expect("piped stderr"));
            let active = format!("Activated service 'c2s' on [127.0.0.1]:{port}");
            poll_until(WAIT, || {
                let t = log.text();
                t.contains(&active) || t.contains("Failed to open server port") || proc.has_exited()
            });
            let text = log.text();
            if text.contains(&active) && !proc.has_exited() {
                return Some(Prosody {
                    proc,
                    port,
                    log,
                    dir,
                });
            }
            let _ = writeln!(
                failures,
                "attempt {attempt} (port {port}, {}):\n{}\n{}",
                describe_status(proc.status()),
                show_bytes(&out.bytes(), 2_000),
                show_bytes(text.as_bytes(), 4_000)
            );
            proc.kill();
        }
        panic!("prosody did not start after 5 attempts:\n{failures}");
    }

    /// Waits until the `n`-th (from 0) client session has ended and says how its TLS ended
    /// (see the module docs).
    pub fn wait_verdict(&self, n: usize, timeout: Duration) -> Verdict {
        let mut verdict = None;
        poll_until(timeout, || {
            verdict = prosody_verdicts(&self.log.text()).get(n).cloned();
            verdict.is_some()
        });
        verdict.unwrap_or_else(|| {
            panic!(
                "prosody logged no end of session {n} within {timeout:?}{}",
                self.dump()
            )
        })
    }

    /// The `Client disconnected: ...` lines, for reports.
    pub fn disconnect_lines(&self) -> Vec<String> {
        self.log
            .text()
            .lines()
            .filter(|l| l.contains(PROSODY_DISCONNECTED))
            .map(|l| l.to_string())
            .collect()
    }

    /// The directory holding the config, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// How each client session ended, in the order they ended.
pub fn prosody_verdicts(text: &str) -> Vec<Verdict> {
    text.lines()
        .filter_map(|l| Some(l.split_once(PROSODY_DISCONNECTED)?.1.trim()))
        .map(|reason| match reason {
            PROSODY_CLEAN => Verdict::CloseNotify,
            PROSODY_BARE_CLOSE => Verdict::BareFin,
            other => Verdict::Error(other.to_string()),
        })
        .collect()
}

impl Dump for Prosody {
    fn dump(&self) -> String {
        format!(
            "\n\n===== prosody on 127.0.0.1:{} (pid {}, {}) =====\n{}",
            self.port,
            self.proc.pid(),
            describe_status(self.proc.status()),
            self.log.dump()
        )
    }
}
