//! Dovecot as the IMAP, POP3 and LMTP server of the STARTTLS tests: `dovecot -c CONFIG -F`
//! (the master in the foreground, a child of the test), every path in a temp directory:
//! `base_dir`, `state_dir`, `log_path`, the certificate; a static passdb and userdb, so no
//! system account or /etc/dovecot file is read. Listeners on free ports of 127.0.0.1, the
//! implicit-TLS ones off; `ssl = yes` makes each offer STARTTLS (IMAP, POP3 `STLS`, LMTP).
//!
//! # The referee
//! `verbose_ssl = yes`: every TLS alert and error is logged. A client's close_notify gives
//! `Debug: SSL alert: close notify` twice (the client's, read; Dovecot's answer, written);
//! a client that drops TCP without it gives `Debug: SSL error: Connection closed` first.
//! The login processes (imap-login, pop3-login) also say it in their disconnect line:
//! `Disconnected: Connection closed (no auth attempts in 0 secs): user=<>, rip=127.0.0.1,
//! lip=127.0.0.1, TLS, session=<...>` after a close_notify, `..., TLS: Connection closed,
//! session=<...>` after a bare FIN. LMTP says `Disconnect from 127.0.0.1: Connection closed
//! (state=READY)` in both cases; only its `SSL error` line tells them apart.

use super::*;

pub const DOVECOT: &str = "/usr/sbin/dovecot";
/// Dovecot's line (verbose_ssl) for a TLS client that left without close_notify.
pub const DOVECOT_SSL_ERROR: &str = "SSL error";
/// Dovecot's line (verbose_ssl) for a close_notify, read or written.
pub const DOVECOT_CLOSE_NOTIFY: &str = "SSL alert: close notify";

pub struct Dovecot {
    proc: Proc,
    pub imap: u16,
    pub pop3: u16,
    pub lmtp: u16,
    pub log: LogFile,
    out: Capture,
    dir: TempDir,
}

impl Dovecot {
    /// Starts Dovecot with `cert`; `None` (after a SKIP line) where it is missing outside CI.
    pub fn start(cert: &CertFiles) -> Option<Dovecot> {
        if !needs_root("Dovecot") {
            return None;
        }
        // One server speaks all three, and it does not start with a protocol missing (a
        // package `make deps` could not install beside another POP3 or IMAP server).
        let parts = [
            ("/usr/lib/dovecot/imap-login", "dovecot-imapd"),
            ("/usr/lib/dovecot/pop3-login", "dovecot-pop3d"),
            ("/usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
            (DOVECOT, "dovecot-core"),
        ];
        if !parts
            .iter()
            .all(|(program, package)| have_tool(program, package))
        {
            return None;
        }
        let mut failures = String::new();
        for attempt in 1..=3 {
            match Dovecot::try_start(cert) {
                Ok(dv) => return Some(dv),
                Err(why) => {
                    let _ = writeln!(failures, "attempt {attempt}: {why}");
                }
            }
        }
        panic!("Dovecot did not start:\n{failures}");
    }

    fn try_start(cert: &CertFiles) -> Result<Dovecot, String> {
        let dir = TempDir::new("dovecot");
        let (imap, pop3, lmtp) = (free_port(), free_port(), free_port());
        // A logged-in session runs as `nobody` and makes its home and mail folders here.
        for sub in ["home", "mail"] {
            let path = dir.path().join(sub);
            std::fs::create_dir(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
                .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        }
        let d = dir.path().display();
        let dh = Path::new("/usr/share/dovecot/dh.pem");
        let dh_line = if dh.exists() {
            format!("ssl_dh = <{}\n", dh.display())
        } else {
            String::new()
        };
        let conf = dir.write(
            "dovecot.conf",
            format!(
                "base_dir = {d}/run\n\
                 state_dir = {d}/state\n\
                 log_path = {d}/dovecot.log\n\
                 info_log_path = {d}/dovecot.log\n\
                 debug_log_path = {d}/dovecot.log\n\
                 protocols = imap pop3 lmtp\n\
                 listen = 127.0.0.1\n\
                 ssl = yes\n\
                 ssl_cert = <{}\n\
                 ssl_key = <{}\n\
                 {dh_line}\
                 verbose_ssl = yes\n\
                 auth_mechanisms = plain\n\
                 passdb {{\n  driver = static\n  args = password=pass\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home/%u\n}}\n\
                 mail_location = maildir:{d}/mail/%u\n\
                 service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n\
                 \x20 inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
                 service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3}\n  }}\n\
                 \x20 inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
                 service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n\
                 \x20   port = {lmtp}\n  }}\n}}\n",
                cert.cert.display(),
                cert.key.display()
            )
            .as_bytes(),
        );
        let mut cmd = Command::new(DOVECOT);
        cmd.arg("-c")
            .arg(&conf)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc =
            Proc::spawn("dovecot", &mut cmd).map_err(|e| format!("cannot run dovecot: {e}"))?;
        let out = Capture::new();
        out.attach(proc.child_mut().stdout.take().expect("piped stdout"));
        out.attach(proc.child_mut().stderr.take().expect("piped stderr"));
        let log = LogFile::new(dir.path().join("dovecot.log"));
        let mut dv = Dovecot {
            proc,
            imap,
            pop3,
            lmtp,
            log,
            out,
            dir,
        };
        let started = dv.log.wait_since(0, WAIT, |t| {
            t.contains("starting up") || t.contains("Fatal:")
        });
        if !started || dv.log.text().contains("Fatal:") || dv.proc.has_exited() {
            return Err(format!(
                "{}\n{}",
                describe_status(dv.proc.status()),
                dv.dump()
            ));
        }
        // The master opens every listener before it logs its start; a connection that
        // comes before a login process is up waits in the listen queue.
        Ok(dv)
    }
}

impl Dump for Dovecot {
    fn dump(&self) -> String {
        format!(
            "\n\n===== dovecot (config {}/dovecot.conf) =====\n{}\n----- output -----\n{}{}",
            self.dir.path().display(),
            describe_status(self.proc.status()),
            self.out.text(),
            self.log.dump()
        )
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM: the master stops its services (they watch it and leave with it).
        if !self.proc.has_exited() {
            self.proc.signal(SIGTERM);
        }
        if self.proc.wait_timeout(WAIT).is_none() {
            self.proc.kill();
        }
    }
}
