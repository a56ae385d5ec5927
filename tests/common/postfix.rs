//! Postfix as the SMTP server of the STARTTLS tests, started by the test as root in a temp
//! directory of its own, touching nothing of the system's mail setup.
//!
//! # How it runs without /etc/postfix
//! `postfix -c DIR start-fg` with a `main.cf` and `master.cf` in DIR: `queue_directory` and
//! `data_directory` inside DIR (postfix-script creates the queue's subdirectories and warns
//! that DIR is not owned by root, which is harmless), `meta_directory = /etc/postfix` for the
//! package's `postfix-files`, and `maillog_file` (Postfix 3.4+, through the `postlog`
//! service; `maillog_file_prefixes` must allow the path) so that the log is a file and
//! syslog is not needed. No service is chrooted. start-fg runs master as a child of
//! postfix-script, so the harness stops it with `postfix -c DIR stop`, then kills what it
//! spawned. Two smtpd listeners: one offers STARTTLS (`smtpd_tls_security_level = may`,
//! the test's certificate), one has TLS off. Mail is accepted for any user at localhost and
//! discarded. `smtpd_forbid_bare_newline = yes` (Postfix 3.9's default, and 3.7.10's fix
//! for SMTP smuggling), with no network excluded (3.7 excludes `$mynetworks`), makes it
//! refuse a line that ends in a bare LF, as a strict server does.
//!
//! # The referee
//! Postfix 3.7 sets `SSL_OP_IGNORE_UNEXPECTED_EOF`, so a client that drops TCP without
//! close_notify is logged exactly like one that sent it. As for nginx
//! ([`super::nginx::build_shim`]), smtpd runs with a preloaded shim that clears that one
//! option (`import_environment` passes `LD_PRELOAD` to the daemons); it then logs
//! `warning: TLS library problem: error:0A000126:SSL routines::unexpected eof while
//! reading` for a bare FIN, and nothing for a close_notify. Every session ends with
//! `disconnect from localhost[127.0.0.1] ... commands=N`; one that ended without `QUIT` is
//! also `lost connection after CMD` (the protocol's goodbye, not TLS's).

use super::*;

pub const POSTFIX: &str = "/usr/sbin/postfix";
/// Postfix's line for a TLS client that left without close_notify (with the shim).
pub const POSTFIX_UNEXPECTED_EOF: &str = "unexpected eof while reading";
/// Postfix's lines for any TLS failure on an established session.
pub const POSTFIX_TLS_ERRORS: [&str; 4] = [
    "TLS library problem",
    "SSL_accept error",
    "unexpected eof",
    "SSL_read error",
];

pub struct Postfix {
    proc: Proc,
    /// The smtpd that offers STARTTLS.
    pub port: u16,
    /// The smtpd with TLS off.
    pub plain_port: u16,
    pub log: LogFile,
    out: Capture,
    dir: TempDir,
}

impl Postfix {
    /// Starts Postfix with `cert`; `None` (after a SKIP line) where Postfix or cc is missing
    /// outside CI.
    pub fn start(cert: &CertFiles) -> Option<Postfix> {
        if !needs_root("Postfix") {
            return None;
        }
        if !have_tool(POSTFIX, "postfix") || !have_tool("cc", "gcc") {
            return None;
        }
        let mut failures = String::new();
        for attempt in 1..=3 {
            match Postfix::try_start(cert) {
                Ok(pf) => return Some(pf),
                Err(why) => {
                    let _ = writeln!(failures, "attempt {attempt}: {why}");
                }
            }
        }
        panic!("Postfix did not start:\n{failures}");
    }

    fn try_start(cert: &CertFiles) -> Result<Postfix, String> {
        let dir = TempDir::new("postfix");
        let shim = super::nginx::build_shim(&dir);
        let (port, plain_port) = (free_port(), free_port());
        let d = dir.path().display();
        for sub in ["queue", "data"] {
            std::fs::create_dir_all(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        let status = Command::new("chown")
            .args(["postfix"])
            .arg(dir.path().join("data"))
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("chown postfix data failed".into());
        }
        dir.write(
            "main.cf",
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {d}/queue\n\
                 data_directory = {d}/data\n\
                 meta_directory = /etc/postfix\n\
                 mail_owner = postfix\n\
                 setgid_group = postdrop\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 myhostname = localhost\n\
                 mydestination = localhost\n\
                 mynetworks = 127.0.0.0/8\n\
                 alias_maps =\n\
                 alias_database =\n\
                 local_recipient_maps =\n\
                 local_transport = discard:\n\
                 default_transport = discard:\n\
                 smtputf8_enable = no\n\
                 maillog_file = {d}/maillog\n\
                 maillog_file_prefixes = {d}\n\
                 import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C \
                 POSTLOG_SERVICE POSTLOG_HOSTNAME LD_PRELOAD={}\n\
                 smtpd_tls_cert_file = {}\n\
                 smtpd_tls_key_file = {}\n\
                 smtpd_tls_security_level = may\n\
                 smtpd_tls_loglevel = 1\n\
                 smtpd_forbid_bare_newline = yes\n\
                 smtpd_forbid_bare_newline_exclusions =\n",
                shim.display(),
                cert.cert.display(),
                cert.key.display()
            )
            .as_bytes(),
        );
        dir.write(
            "master.cf",
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n\
                 127.0.0.1:{plain_port} inet n - n - - smtpd -o smtpd_tls_security_level=none\n\
                 cleanup unix n - n - 0 cleanup\n\
                 qmgr unix n - n 300 1 qmgr\n\
                 rewrite unix - - n - - trivial-rewrite\n\
                 bounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\n\
                 trace unix - - n - 0 bounce\n\
                 verify unix - - n - 1 verify\n\
                 flush unix n - n 1000? 0 flush\n\
                 proxymap unix - - n - - proxymap\n\
                 showq unix n - n - - showq\n\
                 error unix - - n - - error\n\
                 retry unix - - n - - error\n\
                 discard unix - - n - - discard\n\
                 anvil unix - - n - 1 anvil\n\
                 scache unix - - n - 1 scache\n\
                 postlog unix-dgram n - n - 1 postlogd\n\
                 tlsmgr unix - - n 1000? 1 tlsmgr\n"
            )
            .as_bytes(),
        );
        let mut cmd = Command::new(POSTFIX);
        cmd.arg("-c")
            .arg(dir.path())
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("postfix start-fg", &mut cmd)
            .map_err(|e| format!("cannot run postfix: {e}"))?;
        let out = Capture::new();
        out.attach(proc.child_mut().stdout.take().expect("piped stdout"));
        out.attach(proc.child_mut().stderr.take().expect("piped stderr"));
        let log = LogFile::new(dir.path().join("maillog"));
        let mut pf = Postfix {
            proc,
            port,
            plain_port,
            log,
            out,
            dir,
        };
        let started = pf.log.wait_since(0, WAIT, |t| {
            t.contains("daemon started") || t.contains("fatal:")
        });
        let text = pf.log.text();
        if !started || text.contains("fatal:") || pf.proc.has_exited() {
            return Err(format!(
                "{}\n{}",
                describe_status(pf.proc.status()),
                pf.dump()
            ));
        }
        Ok(pf)
    }

    /// What one session logged, from `mark` until its `disconnect from` line (waited for).
    pub fn session_log(&self, mark: usize, ctx: &[&dyn Dump]) -> String {
        assert!(
            self.log.wait_for_since(mark, "disconnect from", WAIT),
            "Postfix logged no `disconnect from`{}{}",
            self.dump(),
            dumps(ctx)
        );
        self.log.since(mark)
    }

    /// Asserts that the session logged since `mark` was TLS and ended without a TLS error;
    /// returns its `disconnect from` line.
    pub fn assert_clean_tls_end(&self, mark: usize, ctx: &[&dyn Dump]) -> String {
        let log = self.session_log(mark, ctx);
        assert!(
            log.contains("TLS connection established"),
            "Postfix logged no TLS session{}{}",
            self.dump(),
            dumps(ctx)
        );
        for error in POSTFIX_TLS_ERRORS {
            assert!(
                !log.contains(error),
                "Postfix logged {error:?}: the TLS session did not end cleanly{}{}",
                self.dump(),
                dumps(ctx)
            );
        }
        disconnect_line(&log)
    }
}

/// The `disconnect from ...` part of a session's log.
pub fn disconnect_line(log: &str) -> String {
    log.lines()
        .find_map(|l| l.find("disconnect from").map(|at| l[at..].to_string()))
        .unwrap_or_default()
}

impl Dump for Postfix {
    fn dump(&self) -> String {
        format!(
            "\n\n===== postfix (config {}) =====\n{}\n----- output -----\n{}{}",
            self.dir.path().display(),
            describe_status(self.proc.status()),
            self.out.text(),
            self.log.dump()
        )
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // master is postfix-script's child, not ours: `postfix stop` ends it (and the
        // script with it); our own process is killed if that did not do it.
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.dir.path())
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if self.proc.wait_timeout(WAIT).is_none() {
            self.proc.kill();
        }
    }
}
