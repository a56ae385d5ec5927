//! The Java JSSE echo peer (tests/peers/JsseEchoServer.java), built by the test run.
//!
//! It follows the echo-peer protocol of [`super::peer`]. The referee is JSSE
//! itself, run with `-Dcom.sun.net.ssl.requireCloseNotify=true`: the client's
//! close_notify makes `read()` return -1, a TCP FIN without it throws
//! `SSLProtocolException: Remote host terminated the connection`.
//!
//! [`JssePeer::start`] returns `None` when `java`/`javac` are missing outside
//! CI (`have_tool` printed SKIP); under `CI=true` it panics instead.
//!
//! The classes are compiled once per test process (a [`OnceLock`]) into
//! `$CARGO_TARGET_TMPDIR/peers/jsse-<hash of the source>/`: a changed source
//! gets a new directory, so a stale build is never used, and several test
//! binaries building at once each compile into a private directory and
//! `rename` it into place (the loser of the race drops its copy).
//!
//! This file also holds the small build and run helpers the Go peer
//! (`super::gopeer`) shares.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::peer::{How, ServerEnd, TlsPeer, Verdict};
use super::{
    Capture, CertFiles, Dump, Fnv1a, Proc, Tls, WAIT, describe_status, have_tool, show_bytes,
};

/// The Java source of the peer.
pub const JSSE_SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/JsseEchoServer.java"
);

/// Bound for compiling a peer (a cold Go build compiles the standard library).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Bound for a JVM to start and print `LISTENING` on a busy 2-core machine.
const JVM_START: Duration = Duration::from_secs(30);

/// A running JSSE echo server.
pub struct JssePeer {
    proc: Proc,
    port: u16,
    tls: Tls,
    out: Capture,
    err: Capture,
    args: Vec<String>,
    /// VERDICT lines already returned by `next_verdict`.
    verdicts_taken: usize,
}

impl JssePeer {
    /// Builds (once) and starts the server for `cert`, pinned to `tls`.
    /// `None`: Java is not installed and this is not CI (SKIP printed).
    pub fn start(cert: &CertFiles, tls: Tls) -> Option<JssePeer> {
        if !have_tool("java", "openjdk-17-jdk-headless")
            || !have_tool("javac", "openjdk-17-jdk-headless")
        {
            return None;
        }
        let classes = jsse_classes();
        let args: Vec<String> = vec![
            "-Dcom.sun.net.ssl.requireCloseNotify=true".into(),
            // Starts faster and stays small: many JVMs may run at once.
            "-XX:TieredStopAtLevel=1".into(),
            "-XX:+UseSerialGC".into(),
            "-Xmx128m".into(),
            "-cp".into(),
            classes.display().to_string(),
            "JsseEchoServer".into(),
            "--cert".into(),
            cert.cert.display().to_string(),
            "--key".into(),
            cert.key.display().to_string(),
            "--tls".into(),
            tls.number().into(),
        ];
        let mut cmd = Command::new("java");
        cmd.args(&args);
        let (proc, out, err, port) = spawn_echo_peer("JsseEchoServer", &mut cmd, JVM_START);
        let peer = JssePeer {
            proc,
            port: port.unwrap_or(0),
            tls,
            out,
            err,
            args,
            verdicts_taken: 0,
        };
        if port.is_none() {
            panic!("JsseEchoServer did not print LISTENING{}", peer.dump());
        }
        Some(peer)
    }

    /// Every VERDICT line so far (without the prefix).
    pub fn verdict_lines(&self) -> Vec<String> {
        verdict_lines(&self.out.bytes())
    }
}

impl TlsPeer for JssePeer {
    fn name(&self) -> &'static str {
        "JSSE"
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
        echo_how(end)
    }
    fn act(&mut self, end: ServerEnd) {
        panic!("JSSE is an echo peer: {end:?} is played by a line, never by act()");
    }
    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        next_verdict(&self.out, &mut self.verdicts_taken, timeout)
    }
    fn version(&self) -> String {
        static VERSION: OnceLock<String> = OnceLock::new();
        VERSION
            .get_or_init(|| {
                // `java -version` writes to stderr, e.g.
                // `openjdk version "17.0.21.1" 2026-11-17`.
                let (_, out, err) = run_bounded("java", Command::new("java").arg("-version"), WAIT);
                let text = format!("{err}{out}");
                let first = text.lines().next().unwrap_or("").trim();
                match first.split('"').nth(1) {
                    Some(v) if first.starts_with("openjdk") => format!("OpenJDK {v}"),
                    Some(v) => format!("Java {v}"),
                    None => first.to_string(),
                }
            })
            .clone()
    }
}

impl Dump for JssePeer {
    fn dump(&self) -> String {
        dump_peer(
            "java",
            &self.args,
            &self.proc,
            &self.out,
            &self.err,
            self.verdicts_taken,
        )
    }
}

/// The compiled classes' directory; compiles on first use in this process.
fn jsse_classes() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let src = Path::new(JSSE_SOURCE);
            build_fresh("jsse", &[src], |tmp| {
                std::fs::create_dir_all(tmp)
                    .map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
                let mut cmd = Command::new("javac");
                cmd.arg("-d").arg(tmp).arg(src);
                run_ok("javac", &mut cmd)
            })
        })
        .clone()
        .unwrap_or_else(|e| panic!("cannot build the JSSE peer: {e}"))
}

// ---------------------------------------------------------------------------
// Shared by the JSSE and Go peers.

/// `srv-close` / `srv-truncate`: what the echo peers understand.
pub fn echo_how(end: ServerEnd) -> How {
    match end {
        ServerEnd::CloseNotify => How::Line("srv-close"),
        ServerEnd::Truncate => How::Line("srv-truncate"),
    }
}

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

/// Spawns an echo peer with piped output and waits (bounded) for its
/// `LISTENING <port>` line. The port is `None` when it never came.
pub fn spawn_echo_peer(
    what: &str,
    cmd: &mut Command,
    start_timeout: Duration,
) -> (Proc, Capture, Capture, Option<u16>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(what, cmd).unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
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
    let mut port = None;
    out.wait_until(start_timeout, |b, eof| {
        port = String::from_utf8_lossy(b)
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .find_map(|l| l.strip_prefix("LISTENING "))
            .and_then(|p| p.trim().parse::<u16>().ok());
        port.is_some() || eof
    });
    (proc, out, err, port)
}

/// The `VERDICT ` lines (complete ones only) of an echo peer's stdout,
/// without the prefix.
pub fn verdict_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.strip_prefix("VERDICT "))
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// Waits for the VERDICT line after the `taken` already returned. A missing
/// one is returned as `Verdict::Error` (not a panic), so that the interop
/// table shows it in the cell; the peer's dump has the details.
pub fn next_verdict(out: &Capture, taken: &mut usize, timeout: Duration) -> Verdict {
    let want = *taken + 1;
    let mut line = None;
    let mut ended = false;
    out.wait_until(timeout, |b, eof| {
        line = verdict_lines(b).into_iter().nth(want - 1);
        ended = eof;
        line.is_some() || eof
    });
    match line {
        Some(l) => {
            *taken = want;
            Verdict::parse(&l)
        }
        None if ended => Verdict::Error(format!(
            "the peer exited before VERDICT #{want} (its stdout ended)"
        )),
        None => Verdict::Error(format!("no VERDICT #{want} within {timeout:?}")),
    }
}

/// The failure-message section of an echo peer.
pub fn dump_peer(
    program: &str,
    args: &[String],
    proc: &Proc,
    out: &Capture,
    err: &Capture,
    verdicts_taken: usize,
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "\n\n===== {program} {} (pid {}) =====\n{}; {verdicts_taken} verdict(s) taken\n----- stdout -----\n{}\n----- stderr -----\n{}\n",
        args.join(" "),
        proc.pid(),
        describe_status(proc.status()),
        show_bytes(&out.bytes(), 8_000),
        show_bytes(&err.bytes(), 8_000)
    );
    s
}
