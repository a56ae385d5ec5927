//! The Python `ssl` peer (tests/peers/tls_peer.py) and the other Python servers started the same way.

use super::*;

/// `--cert`, `--key` and `--tls`, as the Python, JSSE and Go peers take them.
pub fn cert_args(cert: &CertFiles, tls: Tls) -> [String; 6] {
    [
        "--cert".into(),
        cert.cert.display().to_string(),
        "--key".into(),
        cert.key.display().to_string(),
        "--tls".into(),
        tls.number().into(),
    ]
}

/// Waits for a peer's `LISTENING <port>` line on `out`; None if its output
/// ended or `timeout` passed first.
pub fn wait_listening(out: &Capture, timeout: Duration) -> Option<u16> {
    let mut port = None;
    out.wait_until(timeout, |b, eof| {
        port = String::from_utf8_lossy(b)
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .find_map(|l| l.strip_prefix("LISTENING "))
            .and_then(|p| p.trim().parse::<u16>().ok());
        port.is_some() || eof
    });
    port
}

/// The Python peer (`tests/peers/tls_peer.py`), one connection.
pub struct PyPeer {
    pub proc: Proc,
    pub port: u16,
    pub out: Capture,
    pub err: Capture,
    args: Vec<String>,
    /// Command prefix it runs under, if any.
    prefix: Vec<String>,
}

impl PyPeer {
    /// `mode` is one of the peer's modes; `extra` adds e.g. `--payload-bytes N`.
    pub fn start(cert: &CertFiles, tls: Tls, mode: &str, extra: &[&str]) -> PyPeer {
        PyPeer::start_in(&[], cert, tls, mode, extra)
    }

    /// Like [`PyPeer::start`], under a command `prefix` such as
    /// `ip netns exec NAME` (see `netns.rs`).
    pub fn start_in(
        prefix: &[&str],
        cert: &CertFiles,
        tls: Tls,
        mode: &str,
        extra: &[&str],
    ) -> PyPeer {
        let mut args: Vec<String> = cert_args(cert, tls).into();
        args.extend(["--mode".into(), mode.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        PyPeer::spawn(prefix, TLS_PEER, args)
    }

    /// Another Python server of the same conventions (`LISTENING <port>`, one connection, a
    /// `VERDICT` line), such as [`STARTTLS_PEER`], with its `--cert`, `--key` and `--tls`.
    pub fn start_script(script: &str, cert: &CertFiles, tls: Tls) -> PyPeer {
        PyPeer::spawn(&[], script, cert_args(cert, tls).into())
    }

    fn spawn(prefix: &[&str], script: &str, script_args: Vec<String>) -> PyPeer {
        let mut args = vec![script.to_string()];
        args.extend(script_args);
        let name = Path::new(script)
            .file_name()
            .map_or_else(|| script.to_string(), |n| n.to_string_lossy().into_owned());
        let mut cmd = command_in(prefix, "python3");
        cmd.args(&args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc =
            Proc::spawn(&name, &mut cmd).unwrap_or_else(|e| panic!("cannot start python3: {e}"));
        let out = Capture::new();
        out.attach(proc.child_mut().stdout.take().unwrap());
        let err = Capture::new();
        err.attach(proc.child_mut().stderr.take().unwrap());
        let mut peer = PyPeer {
            proc,
            port: 0,
            out,
            err,
            args,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
        };
        match wait_listening(&peer.out, WAIT) {
            Some(p) => peer.port = p,
            None => panic!("{name} did not print LISTENING{}", peer.dump()),
        }
        peer
    }

    /// Waits for a line starting with `prefix`; returns it. Panics with `ctx`.
    pub fn expect_line(&self, prefix: &str, timeout: Duration, ctx: &[&dyn Dump]) -> String {
        let mut found = None;
        self.out.wait_until(timeout, |b, eof| {
            let text = String::from_utf8_lossy(b);
            found = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(|l| l.trim_end().to_string())
                .find(|l| l.starts_with(prefix));
            found.is_some() || eof
        });
        found.unwrap_or_else(|| {
            panic!(
                "{} printed no line starting with {prefix:?} within {timeout:?}{}{}",
                self.proc.name,
                dumps(ctx),
                self.dump()
            )
        })
    }

    /// Sends SIGUSR1 (the `stall` mode then sends a `quit` line).
    pub fn signal_usr1(&mut self) {
        self.proc.signal(SIGUSR1);
    }

    /// Asserts the peer's verdict, dumping both sides on a mismatch.
    pub fn assert_verdict(&self, expected: &str, ctx: &[&dyn Dump]) {
        let verdict = self.verdict(ctx);
        assert_eq!(verdict, expected, "{}{}", dumps(ctx), self.dump());
    }

    /// The peer's VERDICT line (without the `VERDICT ` prefix).
    pub fn verdict(&self, ctx: &[&dyn Dump]) -> String {
        self.expect_line("VERDICT ", WAIT, ctx)["VERDICT ".len()..].to_string()
    }
}

impl Dump for PyPeer {
    fn dump(&self) -> String {
        format!(
            "\n\n===== {}python3 {} (pid {}) =====\n{}\n----- stdout -----\n{}\n----- stderr -----\n{}\n",
            prefix_text(&self.prefix),
            self.args.join(" "),
            self.proc.pid(),
            describe_status(self.proc.status()),
            show_bytes(&self.out.bytes(), 8_000),
            show_bytes(&self.err.bytes(), 8_000)
        )
    }
}
