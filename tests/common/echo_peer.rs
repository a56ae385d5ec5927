//! What the JSSE and Go echo peers have in common: both are an external
//! process that follows the echo-peer protocol of [`super::peer`] and is built
//! by the test run, so one [`EchoPeer`] runs either; [`EchoStack`] holds what
//! differs (its name and version). How to build and start each stays in
//! `super::jsse` and `super::gopeer`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::peer::{How, ServerEnd, TlsPeer, Verdict};
use super::{Capture, Dump, Fnv1a, Proc, Tls, WAIT, describe_status, show_bytes, wait_listening};

/// Bound for compiling a peer (a cold Go build compiles the standard library).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// What sets one echo peer apart from another at run time.
pub trait EchoStack {
    /// Column label of the interop table.
    const NAME: &'static str;
    /// Names the peer's process in failure messages.
    const PROCESS: &'static str;
    /// Version string of the stack, for the table header (asked once).
    fn version() -> String;
}

/// A running echo server of stack `S`.
pub struct EchoPeer<S> {
    proc: Proc,
    port: u16,
    tls: Tls,
    out: Capture,
    err: Capture,
    /// The command line, for failure messages.
    program: String,
    args: Vec<String>,
    /// VERDICT lines already returned by `next_verdict`.
    verdicts_taken: usize,
    stack: PhantomData<S>,
}

impl<S: EchoStack> EchoPeer<S> {
    /// Starts `cmd` (its arguments already set, `tls` among them) with piped
    /// output and waits, bounded by `start_timeout`, for its `LISTENING
    /// <port>` line; panics with its output if it never comes.
    pub fn spawn(mut cmd: Command, tls: Tls, start_timeout: Duration) -> EchoPeer<S> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = cmd.get_program().to_string_lossy().into_owned();
        let args = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut proc = Proc::spawn(S::PROCESS, &mut cmd)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", S::PROCESS));
        let out = Capture::new();
        out.attach(
            proc.child_mut()
                .stdout
                .take()
                .expect("the peer's stdout is piped"),
        );
        let err = Capture::new();
        err.attach(
            proc.child_mut()
                .stderr
                .take()
                .expect("the peer's stderr is piped"),
        );
        let mut peer = EchoPeer {
            proc,
            port: 0,
            tls,
            out,
            err,
            program,
            args,
            verdicts_taken: 0,
            stack: PhantomData,
        };
        match wait_listening(&peer.out, start_timeout) {
            Some(p) => peer.port = p,
            None => panic!("{} did not print LISTENING{}", S::PROCESS, peer.dump()),
        }
        peer
    }

    /// Every VERDICT line so far (without the prefix).
    pub fn verdict_lines(&self) -> Vec<String> {
        verdict_lines(&self.out.bytes())
    }
}

impl<S: EchoStack> TlsPeer for EchoPeer<S> {
    fn name(&self) -> &'static str {
        S::NAME
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
            ServerEnd::CloseNotify => How::Line("srv-close"),
            ServerEnd::Truncate => How::Line("srv-truncate"),
        }
    }
    fn act(&mut self, end: ServerEnd) {
        panic!(
            "{} is an echo peer: {end:?} is played by a line, never by act()",
            S::NAME
        );
    }
    /// A missing VERDICT is returned as `Verdict::Error` (not a panic), so
    /// that the interop table shows it in the cell; the dump has the details.
    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        let want = self.verdicts_taken + 1;
        let mut line = None;
        let mut ended = false;
        self.out.wait_until(timeout, |b, eof| {
            line = verdict_lines(b).into_iter().nth(want - 1);
            ended = eof;
            line.is_some() || eof
        });
        match line {
            Some(l) => {
                self.verdicts_taken = want;
                Verdict::parse(&l)
            }
            None if ended => Verdict::Error(format!(
                "the peer exited before VERDICT #{want} (its stdout ended)"
            )),
            None => Verdict::Error(format!("no VERDICT #{want} within {timeout:?}")),
        }
    }
    fn version(&self) -> String {
        // Asking the toolchain costs a process start (a JVM: a second), and
        // the table asks once per cell. A `static` in this generic function
        // is one for all stacks, hence the map.
        static VERSIONS: Mutex<BTreeMap<&str, String>> = Mutex::new(BTreeMap::new());
        let mut versions = VERSIONS.lock().unwrap_or_else(|e| e.into_inner());
        versions.entry(S::NAME).or_insert_with(S::version).clone()
    }
}

impl<S> Dump for EchoPeer<S> {
    fn dump(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "\n\n===== {} {} (pid {}) =====\n{}; {} verdict(s) taken\n----- stdout -----\n{}\n----- stderr -----\n{}\n",
            self.program,
            self.args.join(" "),
            self.proc.pid(),
            describe_status(self.proc.status()),
            self.verdicts_taken,
            show_bytes(&self.out.bytes(), 8_000),
            show_bytes(&self.err.bytes(), 8_000)
        );
        s
    }
}

/// The `VERDICT ` lines (complete ones only) of an echo peer's stdout,
/// without the prefix.
fn verdict_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.strip_prefix("VERDICT "))
        .map(|l| l.trim_end().to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// Building and running the peers' toolchains.

/// Directory for built peers, shared by all test binaries.
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("peers")
}

/// Returns `peers/<label>-<hash of sources>`, building it with `build(tmp)`
/// when missing. `build` creates `tmp` (a file or a directory); it is
/// renamed into place atomically, so a concurrent builder in another process
/// never sees half a build. Content-addressed rather than mtime-compared: an
/// edited source always gets a fresh build, and two builders never replace
/// each other's output while it is in use.
pub fn build_fresh(
    label: &str,
    sources: &[&Path],
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let mut h = Fnv1a::new();
    for src in sources {
        let bytes =
            std::fs::read(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
        h.update(src.display().to_string().as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    let dir = peers_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let out = dir.join(format!("{label}-{:016x}", h.finish()));
    if out.exists() {
        return Ok(out);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{label}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    remove_any(&tmp);
    let built = build(&tmp);
    if let Err(e) = built {
        remove_any(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &out) {
        remove_any(&tmp);
        // Another process renamed its identical build into place first.
        if !out.exists() {
            return Err(format!(
                "rename {} -> {}: {e}",
                tmp.display(),
                out.display()
            ));
        }
    }
    Ok(out)
}

fn remove_any(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// Runs `cmd` to completion within [`BUILD_TIMEOUT`]; Err carries its output.
pub fn run_ok(what: &str, cmd: &mut Command) -> Result<(), String> {
    let (st, out, err) = run_bounded(what, cmd, BUILD_TIMEOUT);
    match st {
        Some(st) if st.success() => Ok(()),
        st => Err(format!(
            "{what} failed ({}): {cmd:?}\n----- stdout -----\n{out}\n----- stderr -----\n{err}",
            describe_status(st)
        )),
    }
}

/// Runs `cmd` (stdin closed, output captured), killing it after `timeout`.
/// Returns its status (`None`: killed at the bound), stdout and stderr.
pub fn run_bounded(
    what: &str,
    cmd: &mut Command,
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = match Proc::spawn(what, cmd) {
        Ok(p) => p,
        Err(e) => return (None, String::new(), format!("cannot start {what}: {e}")),
    };
    let out = Capture::new();
    let err = Capture::new();
    if let Some(p) = proc.child_mut().stdout.take() {
        out.attach(p);
    }
    if let Some(p) = proc.child_mut().stderr.take() {
        err.attach(p);
    }
    let st = proc.wait_timeout(timeout);
    if st.is_none() {
        proc.kill();
    }
    out.wait_eof(WAIT);
    err.wait_eof(WAIT);
    (st, out.text(), err.text())
}
