//! Child processes that are always killed by their own PID, and how an exit is described.

use super::*;

/// A child process that is always killed (SIGKILL, by its PID) on drop unless
/// it already exited. Exit is observed by a waiter thread (waitid WNOWAIT),
/// so waiting with a timeout needs no polling and no sleeping.
pub struct Proc {
    pub name: String,
    child: Child,
    exited: Receiver<()>,
    status: Option<ExitStatus>,
    /// When the waiter thread saw the exit (set on first observation).
    exited_at: Option<Instant>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> io::Result<Proc> {
        let child = cmd.spawn()?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            wait_exit_noreap(pid);
            let _ = tx.send(());
        });
        Ok(Proc {
            name: name.to_string(),
            child,
            exited: rx,
            status: None,
            exited_at: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `sig` to this process. Panics if it already exited and was reaped.
    pub fn signal(&mut self, sig: i32) {
        if self.status.is_some() {
            panic!(
                "{}: cannot send {}: the process already exited ({:?})",
                self.name,
                signal_name(sig),
                self.status
            );
        }
        // Not reaped yet (only we reap), so the PID is still ours.
        let rc = sys::kill(self.pid() as i32, sig);
        assert_eq!(
            rc,
            0,
            "{}: kill({}, {}) failed: {}",
            self.name,
            self.pid(),
            signal_name(sig),
            io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        match self.exited.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                self.exited_at = Some(Instant::now());
                let st = self.child.wait().expect("reap child");
                self.status = Some(st);
                Some(st)
            }
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    pub fn exited_at(&self) -> Option<Instant> {
        self.exited_at
    }

    /// Has it exited (without blocking)?
    pub fn has_exited(&mut self) -> bool {
        self.wait_timeout(Duration::ZERO).is_some()
    }

    /// Kills (SIGKILL) and reaps it, if still running.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.status = Some(st);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn describe_status(st: Option<ExitStatus>) -> String {
    match st {
        None => "still running".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
            _ => format!("{s:?}"),
        },
    }
}

/// Runs `test` of this test binary alone, in a child process with `env` set, and fails unless
/// it ran and passed: for scenarios that count the process's threads or descriptors, which are
/// exact only with nothing else running. The test itself is `#[ignore]`d and returns at once
/// without `env`. Gives what it printed.
pub fn run_alone(test: &str, env: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env, "1")
        .output()
        .expect("run the scenario in a child process");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{test} failed:\n{text}");
    assert!(text.contains("1 passed"), "{test} did not run:\n{text}");
    text
}

/// A field of /proc/PID/status in KiB: `VmHWM:` (the peak resident set), `VmRSS:`.
pub fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
