//! `openssl s_server -state`, the referee of the exit-path tests, and the TLS versions and ports the servers use.

use super::*;

/// TLS protocol version used by a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    V12,
    V13,
}

impl Tls {
    pub fn s_server_flag(self) -> &'static str {
        match self {
            Tls::V12 => "-tls1_2",
            Tls::V13 => "-tls1_3",
        }
    }
    pub fn number(self) -> &'static str {
        match self {
            Tls::V12 => "1.2",
            Tls::V13 => "1.3",
        }
    }
    /// As Python's `SSLSocket.version()` names it.
    pub fn python_name(self) -> &'static str {
        match self {
            Tls::V12 => "TLSv1.2",
            Tls::V13 => "TLSv1.3",
        }
    }
}

/// `program` run under a command prefix such as `ip netns exec NAME` (which
/// execs it in place: same PID), or directly when `prefix` is empty.
pub fn command_in(prefix: &[&str], program: &str) -> Command {
    match prefix.split_first() {
        None => Command::new(program),
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(program);
            cmd
        }
    }
}

/// A command prefix as the start of a command line in a dump ("" if none).
pub fn prefix_text(prefix: &[String]) -> String {
    prefix.iter().map(|p| format!("{p} ")).collect()
}

/// A port that was free a moment ago (bind 127.0.0.1:0, then release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// `openssl s_server -state`, one connection at a time, stdin kept open.
pub struct SServer {
    pub proc: Proc,
    pub port: u16,
    pub tls: Tls,
    stdin: Option<ChildStdin>,
    /// stdout and stderr of s_server, interleaved as `2>&1` would.
    pub log: Capture,
    args: Vec<String>,
    /// Command prefix it runs under (e.g. `ip netns exec NAME`), if any.
    prefix: Vec<String>,
}

impl SServer {
    pub fn start(pki: &Pki, tls: Tls) -> SServer {
        SServer::start_with(&pki.server, tls, &[])
    }

    pub fn start_with(cert: &CertFiles, tls: Tls, extra: &[&str]) -> SServer {
        let mut failures = String::new();
        for attempt in 1..=5 {
            let port = free_port();
            let srv = SServer::launch(&[], port, cert, tls, extra);
            if srv.log.wait_for("ACCEPT", WAIT) {
                return srv;
            }
            let _ = writeln!(
                failures,
                "attempt {attempt} (port {port}) failed:{}",
                srv.dump()
            );
        }
        panic!("openssl s_server did not start after 5 attempts:\n{failures}");
    }

    /// Like [`SServer::start_with`], but s_server runs under a command
    /// `prefix` such as `ip netns exec NAME` (see `netns.rs`), listening on
    /// 127.0.0.1:`port`. The caller picks the port: [`free_port`] probes the
    /// test's own network namespace, while in a fresh one every port is free.
    pub fn start_in(
        prefix: &[&str],
        port: u16,
        cert: &CertFiles,
        tls: Tls,
        extra: &[&str],
    ) -> SServer {
        let srv = SServer::launch(prefix, port, cert, tls, extra);
        if !srv.log.wait_for("ACCEPT", WAIT) {
            panic!("openssl s_server did not start:{}", srv.dump());
        }
        srv
    }

    /// Spawns s_server (not yet known to be listening).
    fn launch(prefix: &[&str], port: u16, cert: &CertFiles, tls: Tls, extra: &[&str]) -> SServer {
        let mut args: Vec<String> = vec![
            "s_server".into(),
            "-accept".into(),
            format!("127.0.0.1:{port}"),
            "-state".into(),
            "-cert".into(),
            cert.cert.display().to_string(),
            "-key".into(),
            cert.key.display().to_string(),
            tls.s_server_flag().into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        // `2>&1` for real (one pipe, one order): exec s_server from sh
        // (same PID, so signals and kills reach s_server itself).
        let mut cmd = command_in(prefix, "/bin/sh");
        cmd.arg("-c")
            .arg("exec stdbuf -oL \"$0\" \"$@\" 2>&1")
            .arg(OPENSSL)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("openssl s_server", &mut cmd)
            .unwrap_or_else(|e| panic!("cannot start {OPENSSL}: {e}"));
        let log = Capture::new();
        log.attach(proc.child_mut().stdout.take().unwrap());
        // Anything sh itself complains about lands in the log too.
        log.attach(proc.child_mut().stderr.take().unwrap());
        let stdin = proc.child_mut().stdin.take();
        SServer {
            proc,
            port,
            tls,
            stdin,
            log,
            args,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Sends one line to the client (s_server forwards its stdin).
    ///
    /// s_server treats some lines as commands (it looks at the FIRST
    /// character only: `q`/`Q` close, `P` sends plaintext garbage, `S` prints
    /// stats, ...), so data lines must not start with one of those letters.
    pub fn send_line(&mut self, line: &str) {
        self.send_lines(&[line]);
    }

    /// Sends several lines in ONE write (s_server then usually forwards them
    /// in one TLS record).
    pub fn send_lines(&mut self, lines: &[&str]) {
        let mut all = String::new();
        for line in lines {
            let first = line.chars().next().unwrap_or(' ');
            assert!(
                !"qQPSBrRkKcC".contains(first),
                "test bug: s_server would take the line {line:?} as a command"
            );
            all.push_str(line);
            all.push('\n');
        }
        self.write_stdin(all.as_bytes());
    }

    /// Sends an s_server command, e.g. `q` (close TCP without close_notify).
    pub fn command(&mut self, cmd: &str) {
        self.write_stdin(format!("{cmd}\n").as_bytes());
    }

    fn write_stdin(&mut self, b: &[u8]) {
        let stdin = self.stdin.as_mut().expect("s_server stdin is open");
        if let Err(e) = stdin.write_all(b).and_then(|_| stdin.flush()) {
            panic!("cannot write to s_server's stdin: {e}{}", self.dump());
        }
    }

    /// Waits for `pat` in s_server's output; panics with `ctx` on timeout.
    pub fn expect_log(&self, pat: &str, timeout: Duration, ctx: &[&dyn Dump]) {
        if !self.log.wait_for(pat, timeout) {
            panic!(
                "s_server never printed {pat:?} within {timeout:?}{}{}",
                dumps(ctx),
                self.dump()
            );
        }
    }

    /// Waits until s_server finished the current connection: it prints (and
    /// flushes) `DONE` after a clean end and `ERROR` after a failed one.
    /// (`CONNECTION CLOSED` is not usable: it stays in s_server's stdout
    /// buffer when stdout is a pipe.)
    pub fn expect_connection_end(&self, ctx: &[&dyn Dump]) {
        let ok = self.log.wait_until(WAIT, |b, eof| {
            contains(b, SS_DONE.as_bytes()) || contains(b, b"ERROR") || eof
        });
        let log = self.log.bytes();
        if !ok || !(contains(&log, SS_DONE.as_bytes()) || contains(&log, b"ERROR")) {
            panic!(
                "s_server never ended the connection (no DONE/ERROR) within {WAIT:?}{}{}",
                dumps(ctx),
                self.dump()
            );
        }
    }

    /// The referee's verdict on a client-initiated close: the client's
    /// close_notify was read and nothing went wrong.
    pub fn assert_client_closed_cleanly(&self, ctx: &[&dyn Dump]) {
        self.expect_connection_end(ctx);
        let log = self.log.text();
        assert!(
            log.contains(SS_CLOSE_NOTIFY_READ),
            "s_server did not see the client's close_notify ({SS_CLOSE_NOTIFY_READ:?} missing){}{}",
            dumps(ctx),
            self.dump()
        );
        assert!(
            !log.contains("ERROR"),
            "s_server logged ERROR for the client's close{}{}",
            dumps(ctx),
            self.dump()
        );
        assert!(
            !log.contains("unexpected eof"),
            "s_server logged `unexpected eof` for the client's close{}{}",
            dumps(ctx),
            self.dump()
        );
    }

    /// Everything the client sent, as s_server printed it (mixed with its own
    /// log lines).
    pub fn text(&self) -> String {
        self.log.text()
    }
}

impl Dump for SServer {
    fn dump(&self) -> String {
        format!(
            "\n\n===== {}openssl {} (pid {}) =====\n{}\n----- output (stdout+stderr) -----\n{}\n",
            prefix_text(&self.prefix),
            self.args.join(" "),
            self.proc.pid(),
            describe_status(self.proc.status()),
            show_bytes(&self.log.bytes(), 16_000)
        )
    }
}
