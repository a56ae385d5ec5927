//! PostgreSQL started by the test: `initdb` into a temporary directory, then `postgres` in the
//! foreground on a free 127.0.0.1 port, its Unix socket in the same directory, TLS on with the
//! test's certificate (`ssl=on`, or off for the refusal case), everything it logs in a file.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI does), both programs run
//! as the `postgres` system user (the Debian package creates it) by uid and gid set on the
//! command itself, so the PID the test holds is the postmaster's own; otherwise as the test's
//! own user. The directory and the key copy are handed to that user (the key 0600, which the
//! server checks).
//!
//! # The referee
//! With `log_connections`, `log_disconnections` and `log_min_messages=debug1`, each session
//! is a backend PID in brackets: `connection received`, `connection authorized: ... SSL
//! enabled (protocol=TLSv1.3, ...)`, then at its end
//! - after the client's close_notify: `DEBUG:  unexpected EOF on client connection` (the TLS
//!   read returned a clean zero), then `LOG:  disconnection: session time: ...`;
//! - after a bare TCP FIN (or a reset): `LOG:  could not receive data from client: Connection
//!   reset by peer` first (OpenSSL's unexpected EOF, which PostgreSQL reports as a reset),
//!   then the same two lines.
//!
//! A client that sends Terminate (`X`) first ends with no line but the disconnection; the
//! tests leave that to the user, as the protocol's goodbye is theirs.
//!
//! Shutdown: SIGQUIT (immediate shutdown, which also removes its shared memory), then the
//! [`Proc`] guard's SIGKILL if it did not exit in time.

use super::daemon::{
    command_as, daemon_user, give_to, poll_until, server_cert_copy, versioned_tool,
};
use super::peer::Verdict;
use super::*;

/// Where Debian installs each PostgreSQL version (`15/bin/postgres`).
const PG_LIB: &str = "/usr/lib/postgresql";
/// What the postmaster logs once it accepts connections.
pub const PG_READY: &str = "database system is ready to accept connections";
/// What a backend logs when the TLS stream ended without close_notify.
pub const PG_BARE_CLOSE: &str = "could not receive data from client";

pub struct Postgres {
    pub proc: Proc,
    pub port: u16,
    pub log: LogFile,
    /// Data directory, socket, certificate copy and log; removed on drop.
    dir: TempDir,
}

/// TLS on or off in the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PgSsl {
    On,
    Off,
}

impl Postgres {
    /// initdb, then the server with `ssl`; `None` (after a SKIP line) when PostgreSQL is not
    /// installed outside CI.
    pub fn start(cert: &CertFiles, ssl: PgSsl) -> Option<Postgres> {
        let (Some(initdb), Some(postgres)) = (
            versioned_tool(PG_LIB, "initdb"),
            versioned_tool(PG_LIB, "postgres"),
        ) else {
            have_tool(&format!("{PG_LIB}/VERSION/bin/postgres"), "postgresql");
            return None;
        };
        let user = daemon_user("postgres");
        let dir = TempDir::new("postgres");
        give_to(dir.path(), user, 0o755);
        let data = dir.path().join("data");
        let out = command_as(&initdb, user, dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", initdb.display()));
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}{}",
            describe_status(Some(out.status)),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let certs = server_cert_copy(cert, &dir, user);
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let log = LogFile::new(dir.path().join(format!("postgres-{port}.log")));
            let file = std::fs::File::create(&log.path).expect("create the postgres log");
            let ssl_on = if ssl == PgSsl::On { "on" } else { "off" };
            let mut cmd = command_as(&postgres, user, dir.path());
            cmd.arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(dir.path())
                .args(["-c", &format!("port={port}")])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", &format!("ssl={ssl_on}")])
                .args(["-c", &format!("ssl_cert_file={}", certs.cert.display())])
                .args(["-c", &format!("ssl_key_file={}", certs.key.display())])
                .args(["-c", "log_connections=on", "-c", "log_disconnections=on"])
                .args(["-c", "log_min_messages=debug1"])
                .args(["-c", "log_line_prefix=%m [%p] "])
                .args(["-c", "logging_collector=off", "-c", "fsync=off"])
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("dup the log file"))
                .stderr(file);
            let mut proc = Proc::spawn("postgres", &mut cmd)
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", postgres.display()));
            poll_until(WAIT, || log.text().contains(PG_READY) || proc.has_exited());
            if log.text().contains(PG_READY) && !proc.has_exited() {
                return Some(Postgres {
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
                show_bytes(log.text().as_bytes(), 4_000)
            );
            stop(&mut proc);
        }
        panic!("postgres did not start after 5 attempts:\n{failures}");
    }

    /// Waits until a session (the `n`-th, from 0) has logged its disconnection, and says how
    /// its TLS ended (see the module docs).
    pub fn wait_verdict(&self, n: usize, timeout: Duration) -> Verdict {
        let mut verdict = None;
        poll_until(timeout, || {
            verdict = pg_verdicts(&self.log.text()).get(n).cloned();
            verdict.is_some()
        });
        verdict.unwrap_or_else(|| {
            panic!(
                "postgres logged no end of session {n} within {timeout:?}{}",
                self.dump()
            )
        })
    }

    /// The log lines of the `n`-th session, for reports.
    pub fn session_lines(&self, n: usize) -> Vec<String> {
        let text = self.log.text();
        let Some(pid) = sessions(&text).get(n).copied() else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| line_pid(l) == Some(pid))
            .map(|l| l.to_string())
            .collect()
    }

    /// The data directory (for a test that wants to look at it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Immediate shutdown (SIGQUIT), bounded; the guard kills it if that did not end it.
fn stop(proc: &mut Proc) {
    if !proc.has_exited() {
        proc.signal(SIGQUIT);
        proc.wait_timeout(WAIT);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&mut self.proc);
    }
}

/// The `[pid]` of a log line.
fn line_pid(line: &str) -> Option<u32> {
    let open = line.find(" [")?;
    let rest = &line[open + 2..];
    rest[..rest.find(']')?].parse().ok()
}

/// Backend PIDs in the order their connections came.
fn sessions(text: &str) -> Vec<u32> {
    text.lines()
        .filter(|l| l.contains("LOG:  connection received:"))
        .filter_map(line_pid)
        .collect()
}

/// How each session ended, in the order the connections came, for those that have ended.
pub fn pg_verdicts(text: &str) -> Vec<Verdict> {
    let mut out = Vec::new();
    for pid in sessions(text) {
        let lines: Vec<&str> = text.lines().filter(|l| line_pid(l) == Some(pid)).collect();
        if !lines.iter().any(|l| l.contains("LOG:  disconnection:")) {
            break;
        }
        let problem = lines.iter().find(|l| {
            l.contains("ERROR:")
                || l.contains("FATAL:")
                || l.contains("WARNING:")
                || l.contains("SSL error")
                || l.contains("could not")
        });
        out.push(match problem {
            Some(l) if l.contains(PG_BARE_CLOSE) => Verdict::BareFin,
            Some(l) => Verdict::Error(l.to_string()),
            None => Verdict::CloseNotify,
        });
    }
    out
}

impl Dump for Postgres {
    fn dump(&self) -> String {
        format!(
            "\n\n===== postgres on 127.0.0.1:{} (pid {}, {}) =====\n{}",
            self.port,
            self.proc.pid(),
            describe_status(self.proc.status()),
            self.log.dump()
        )
    }
}
