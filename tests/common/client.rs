//! The gracetls binary under test: spawned with piped stdin, captured stdout and stderr, and assertions on its exit and report; the other command-line tools as referee clients.

use super::*;

/// Where a [`Client`]'s stdout goes.
enum StdoutTo {
    /// Into [`Client::stdout`].
    Capture,
    /// Into [`Client::stdout_pipe`], for the test to read.
    Raw,
    /// To `/dev/full`.
    DevFull,
}

/// A running `gracetls`, stdin piped (kept open until closed explicitly).
pub struct Client {
    pub proc: Proc,
    pub args: Vec<String>,
    pub stdin: Option<ChildStdin>,
    /// Captured stdout (empty when the test took the raw pipe).
    pub stdout: Capture,
    /// The raw stdout pipe, when spawned with [`Client::spawn_raw_stdout`].
    pub stdout_pipe: Option<ChildStdout>,
    pub stderr: Capture,
    pub started: Instant,
    /// Command prefix it runs under, if any.
    prefix: Vec<String>,
}

impl Client {
    pub fn spawn<I, S>(args: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::spawn_inner(&[], args, StdoutTo::Capture, None)
    }

    /// Like [`Client::spawn`], with `input` as the whole of stdin, end included, from the
    /// first read on, as `printf ... | gracetls` gives it (a pipe written and then closed by
    /// the test could let the server answer between the write and the close).
    pub fn spawn_with_input<I, S>(args: I, input: &[u8]) -> Client
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let dir = TempDir::new("stdin");
        let path = dir.write("stdin", input);
        let file = std::fs::File::open(&path).expect("open the stdin file");
        Client::spawn_inner(&[], args, StdoutTo::Capture, Some(file))
    }

    /// Like [`Client::spawn`], with stdout on `/dev/full`: every write to it fails with
    /// ENOSPC.
    pub fn spawn_stdout_full(args: Vec<String>) -> Client {
        Client::spawn_inner(&[], args, StdoutTo::DevFull, None)
    }

    /// Like [`Client::spawn`], under a command `prefix` such as
    /// `ip netns exec NAME` (see `netns.rs`); the PID is still gracetls's.
    pub fn spawn_in<I, S>(prefix: &[&str], args: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::spawn_inner(prefix, args, StdoutTo::Capture, None)
    }

    /// Like `spawn`, but the test reads stdout itself from `stdout_pipe`.
    pub fn spawn_raw_stdout<I, S>(args: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::spawn_inner(&[], args, StdoutTo::Raw, None)
    }

    fn spawn_inner<I, S>(
        prefix: &[&str],
        args: I,
        stdout_to: StdoutTo,
        stdin_file: Option<std::fs::File>,
    ) -> Client
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_string()).collect();
        let mut cmd = command_in(prefix, GRACETLS);
        cmd.args(args.iter().map(OsStr::new))
            .env_remove("RUST_LOG")
            .env("RUST_BACKTRACE", "1")
            .stderr(Stdio::piped());
        match stdin_file {
            Some(file) => cmd.stdin(file),
            None => cmd.stdin(Stdio::piped()),
        };
        match stdout_to {
            StdoutTo::DevFull => cmd.stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .expect("open /dev/full"),
            ),
            StdoutTo::Capture | StdoutTo::Raw => cmd.stdout(Stdio::piped()),
        };
        let started = Instant::now();
        let mut proc = Proc::spawn("gracetls", &mut cmd)
            .unwrap_or_else(|e| panic!("cannot start {GRACETLS}: {e}"));
        let stdin = proc.child_mut().stdin.take();
        let stdout = Capture::new();
        let mut stdout_pipe = None;
        match (stdout_to, proc.child_mut().stdout.take()) {
            (StdoutTo::Raw, pipe) => stdout_pipe = pipe,
            (_, Some(pipe)) => stdout.attach(pipe),
            (_, None) => {}
        }
        let stderr = Capture::new();
        stderr.attach(proc.child_mut().stderr.take().unwrap());
        Client {
            proc,
            args,
            stdin,
            stdout,
            stdout_pipe,
            stderr,
            started,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Writes to the client's stdin (panics with `ctx` on error).
    pub fn write_stdin(&mut self, b: &[u8], ctx: &[&dyn Dump]) {
        let res = match self.stdin.as_mut() {
            Some(s) => s.write_all(b).and_then(|_| s.flush()),
            None => Err(io::Error::other("stdin already closed")),
        };
        if let Err(e) = res {
            panic!(
                "cannot write to gracetls's stdin: {e}{}{}",
                self.dump(),
                dumps(ctx)
            );
        }
    }

    /// Closes the client's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn signal(&mut self, sig: i32) {
        self.proc.signal(sig);
    }

    /// Waits for the client to exit, then for its output pipes to reach EOF.
    /// Panics with all dumps on timeout.
    pub fn wait_exit(&mut self, timeout: Duration, ctx: &[&dyn Dump]) -> ExitStatus {
        match self.proc.wait_timeout(timeout) {
            Some(st) => {
                // Output written just before exit may still be in flight.
                self.stderr.wait_eof(WAIT);
                if self.stdout_pipe.is_none() {
                    self.stdout.wait_eof(WAIT);
                }
                st
            }
            None => panic!(
                "gracetls did not exit within {timeout:?}{}{}",
                self.dump(),
                dumps(ctx)
            ),
        }
    }

    pub fn stdout_bytes(&self) -> Vec<u8> {
        self.stdout.bytes()
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Non-empty stderr lines that are not the JSON report.
    pub fn message_lines(&self) -> Vec<String> {
        self.stderr_text()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('{'))
            .map(|l| l.to_string())
            .collect()
    }

    /// The `--report json` object: the last stderr line starting with `{`.
    pub fn report(&self, ctx: &[&dyn Dump]) -> Value {
        let text = self.stderr_text();
        let Some(line) = text.lines().rev().find(|l| l.starts_with('{')) else {
            panic!("no JSON report line on stderr{}{}", self.dump(), dumps(ctx));
        };
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "the report line is not JSON ({e}): {line}{}{}",
                self.dump(),
                dumps(ctx)
            )
        })
    }

    /// Asserts the client exited normally with `code`.
    pub fn assert_code(&self, st: ExitStatus, code: i32, ctx: &[&dyn Dump]) {
        assert_eq!(
            st.code(),
            Some(code),
            "expected exit code {code}, got {}{}{}",
            describe_status(Some(st)),
            self.dump(),
            dumps(ctx)
        );
    }

    /// Asserts the client died by `sig` (not an exit code).
    pub fn assert_signal(&self, st: ExitStatus, sig: i32, ctx: &[&dyn Dump]) {
        assert_eq!(
            st.signal(),
            Some(sig),
            "expected death by {}, got {}{}{}",
            signal_name(sig),
            describe_status(Some(st)),
            self.dump(),
            dumps(ctx)
        );
    }

    /// Asserts stderr has no panic message.
    pub fn assert_no_panic(&self, ctx: &[&dyn Dump]) {
        assert!(
            !self.stderr_text().contains("panicked"),
            "gracetls panicked{}{}",
            self.dump(),
            dumps(ctx)
        );
    }

    /// Asserts each `(field, value)` of the JSON report.
    pub fn assert_report(&self, expected: &[(&str, Value)], ctx: &[&dyn Dump]) -> Value {
        let report = self.report(ctx);
        let mut wrong = String::new();
        for (field, want) in expected {
            match report.get(*field) {
                Some(got) if got == want => {}
                Some(got) => {
                    let _ = writeln!(wrong, "  {field}: expected {want}, got {got}");
                }
                None => {
                    let _ = writeln!(wrong, "  {field}: expected {want}, field missing");
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "JSON report differs:\n{wrong}report: {report}{}{}",
            self.dump(),
            dumps(ctx)
        );
        report
    }
}

impl Dump for Client {
    fn dump(&self) -> String {
        format!(
            "\n\n===== {}gracetls {} (pid {}) =====\n{}\n----- stdout ({} bytes) -----\n{}\n----- stderr -----\n{}\n",
            prefix_text(&self.prefix),
            self.args.join(" "),
            self.proc.pid(),
            describe_status(self.proc.status()),
            self.stdout.len(),
            show_bytes(&self.stdout.bytes(), 4_000),
            show_bytes(&self.stderr.bytes(), 16_000)
        )
    }
}

/// A TLS client other than gracetls (socat, ncat), run by a referee check:
/// stdin piped, output captured, killed on drop like every [`Proc`].
pub struct Tool {
    what: String,
    pub proc: Proc,
    /// Dropping it is the tool's stdin EOF.
    pub stdin: Option<ChildStdin>,
    pub out: Capture,
    pub err: Capture,
}

impl Tool {
    pub fn spawn(program: &str, args: &[String]) -> Tool {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(program, &mut cmd)
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdin = proc.child_mut().stdin.take();
        let out = Capture::new();
        out.attach(proc.child_mut().stdout.take().expect("piped stdout"));
        let err = Capture::new();
        err.attach(proc.child_mut().stderr.take().expect("piped stderr"));
        Tool {
            what: format!("{program} {}", args.join(" ")),
            proc,
            stdin,
            out,
            err,
        }
    }
}

impl Dump for Tool {
    fn dump(&self) -> String {
        format!(
            "\n\n===== {} (pid {}) =====\n{}\n----- stdout -----\n{}\n----- stderr -----\n{}\n",
            self.what,
            self.proc.pid(),
            describe_status(self.proc.status()),
            show_bytes(&self.out.bytes(), 4_000),
            show_bytes(&self.err.bytes(), 4_000)
        )
    }
}

/// A free-form note in a failure message.
pub struct Note(pub String);

impl Dump for Note {
    fn dump(&self) -> String {
        format!("\n\n===== note =====\n{}\n", self.0)
    }
}
