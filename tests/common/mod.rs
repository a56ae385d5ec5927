//! Shared helpers for gracetls's integration tests.
//!
//! Real peers only: `openssl s_server -state` (the referee) and the Python
//! peer in `tests/peers/tls_peer.py`. Certificates are generated at run time
//! with rcgen into a temporary directory. Every process a test starts lives in
//! a [`Proc`] guard that kills it (by its own PID, never by name) on drop, also
//! when the test panics. Every wait is bounded and event-driven: output is
//! collected by reader threads into a [`Capture`] (Mutex + Condvar), process
//! exits are reported by a waiter thread through a channel.

#![allow(dead_code)]

pub mod echo_peer;
pub mod gnutls;
pub mod gopeer;
pub mod hostile;
pub mod jsse;
pub mod netns;
pub mod nginx;
pub mod nginx_http;
pub mod peer;
pub mod proxy;
pub mod rustls_peer;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use serde_json::{Value, json};

/// Path of the binary under test.
/// One `#[test]` per TLS version for each scenario function `fn(Tls)`.
macro_rules! per_version {
    ($($name:ident => $f:expr;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn tls1_3() {
                ($f)(Tls::V13)
            }
            #[test]
            fn tls1_2() {
                ($f)(Tls::V12)
            }
        }
    )*};
}

pub const GRACETLS: &str = env!("CARGO_BIN_EXE_gracetls");
/// Path of the Python peer.
pub const TLS_PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/tls_peer.py");
/// The referee.
pub const OPENSSL: &str = "/usr/bin/openssl";

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGUSR1: i32 = 10;

/// Default bound for "this should happen promptly" waits.
pub const WAIT: Duration = Duration::from_secs(10);

/// What `openssl s_server -state` prints when the client's close_notify arrives.
pub const SS_CLOSE_NOTIFY_READ: &str = "SSL3 alert read:warning:close notify";
/// What `openssl s_server -state` prints when it sends its own close_notify.
pub const SS_CLOSE_NOTIFY_WRITE: &str = "SSL3 alert write:warning:close notify";
/// Printed (and flushed) by s_server when a connection ended cleanly.
pub const SS_DONE: &str = "DONE\n";

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGKILL => "SIGKILL",
        SIGTERM => "SIGTERM",
        SIGUSR1 => "SIGUSR1",
        _ => "SIG?",
    }
}

// ---------------------------------------------------------------------------
// A tiny bit of libc, declared by hand (no extra dev-dependency): kill(2) to
// deliver signals, and waitid(2) with WNOWAIT so a waiter thread can learn
// that a child exited WITHOUT reaping it. Only the owning `Proc` reaps, so a
// PID is never signalled after it could have been reused. Linux only.
mod sys {
    use std::os::raw::{c_int, c_uint};

    /// Opaque, correctly sized and aligned `siginfo_t` (128 bytes on Linux).
    #[repr(C, align(8))]
    pub struct SigInfo(pub [u8; 128]);

    pub const P_PID: c_int = 1;
    pub const WEXITED: c_int = 4;
    pub const WNOWAIT: c_int = 0x0100_0000;

    unsafe extern "C" {
        pub safe fn kill(pid: c_int, sig: c_int) -> c_int;
        pub unsafe fn waitid(
            idtype: c_int,
            id: c_uint,
            infop: *mut SigInfo,
            options: c_int,
        ) -> c_int;
    }
}

/// Blocks until process `pid` (a child of this process) has exited, without
/// reaping it.
fn wait_exit_noreap(pid: u32) {
    loop {
        let mut info = sys::SigInfo([0; 128]);
        // SAFETY: `info` is a valid, writable buffer of the size and alignment
        // of siginfo_t; the call has no other memory effects.
        let rc = unsafe { sys::waitid(sys::P_PID, pid, &mut info, sys::WEXITED | sys::WNOWAIT) };
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

// ---------------------------------------------------------------------------

/// A temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("gracetls-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// All certificates a test may need, generated at run time.
pub struct Pki {
    /// Keeps the files alive; removed on drop.
    pub dir: TempDir,
    /// The CA the client is told to trust (`--ca-file`).
    pub ca: PathBuf,
    /// Leaf for DNS `localhost` + IP 127.0.0.1, signed by `ca`.
    pub server: CertFiles,
    /// A second, independent CA that the client does not trust.
    pub other_ca: PathBuf,
    /// Leaf for `localhost` + 127.0.0.1, signed by `other_ca` (untrusted).
    pub untrusted: CertFiles,
    /// Leaf for `wrong.example` only, signed by `ca`.
    pub wrong_name: CertFiles,
    /// Client certificate (clientAuth), signed by `ca`.
    pub client: CertFiles,
}

struct Ca {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn dn(common_name: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "gracetls tests");
    dn.push(rcgen::DnType::CommonName, common_name);
    dn
}

fn make_ca(common_name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name = dn(common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca {
        cert_pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

fn make_leaf(
    ca: &Ca,
    common_name: &str,
    names: &[&str],
    eku: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
    params.distinguished_name = dn(common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let dir = TempDir::new("pki");
        let ca = make_ca("gracetls test CA");
        let other = make_ca("gracetls OTHER (untrusted) CA");
        let write_pair = |name: &str, (cert, key): (String, String)| CertFiles {
            cert: dir.write(&format!("{name}.pem"), cert.as_bytes()),
            key: dir.write(&format!("{name}.key"), key.as_bytes()),
        };
        let server = write_pair(
            "server",
            make_leaf(&ca, "localhost", &["localhost", "127.0.0.1"], ServerAuth),
        );
        let untrusted = write_pair(
            "untrusted",
            make_leaf(&other, "localhost", &["localhost", "127.0.0.1"], ServerAuth),
        );
        let wrong_name = write_pair(
            "wrong-name",
            make_leaf(&ca, "wrong.example", &["wrong.example"], ServerAuth),
        );
        let client = write_pair(
            "client",
            make_leaf(&ca, "gracetls test client", &["client.example"], ClientAuth),
        );
        let ca_path = dir.write("ca.pem", ca.cert_pem.as_bytes());
        let other_ca = dir.write("other-ca.pem", other.cert_pem.as_bytes());
        Pki {
            ca: ca_path,
            server,
            other_ca,
            untrusted,
            wrong_name,
            client,
            dir,
        }
    }

    /// `--ca-file <test CA>`, as client arguments.
    pub fn ca_args(&self) -> Vec<String> {
        vec!["--ca-file".into(), self.ca.display().to_string()]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

// ---------------------------------------------------------------------------

/// Output of a child collected by reader threads, waitable by pattern.
#[derive(Clone, Default)]
pub struct Capture {
    inner: Arc<(Mutex<CapState>, Condvar)>,
}

#[derive(Default)]
struct CapState {
    buf: Vec<u8>,
    /// Number of attached readers still running.
    open: usize,
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }

    /// Starts a thread that appends everything read from `r` until EOF.
    pub fn attach<R: Read + Send + 'static>(&self, mut r: R) {
        {
            let mut st = self.inner.0.lock().unwrap();
            st.open += 1;
        }
        let cap = self.clone();
        thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let (lock, cv) = &*cap.inner;
                        lock.lock().unwrap().buf.extend_from_slice(&chunk[..n]);
                        cv.notify_all();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let (lock, cv) = &*cap.inner;
            lock.lock().unwrap().open -= 1;
            cv.notify_all();
        });
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.inner.0.lock().unwrap().buf.clone()
    }

    pub fn len(&self) -> usize {
        self.inner.0.lock().unwrap().buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    pub fn contains(&self, pat: &str) -> bool {
        contains(&self.inner.0.lock().unwrap().buf, pat.as_bytes())
    }

    pub fn is_eof(&self) -> bool {
        self.inner.0.lock().unwrap().open == 0
    }

    /// Waits until `pred(buffer, eof)` holds or `timeout` passes; returns
    /// whether it held.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&[u8], bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut st = lock.lock().unwrap();
        loop {
            if pred(&st.buf, st.open == 0) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Waits until `pat` appears (true), or EOF / timeout comes first (false).
    pub fn wait_for(&self, pat: &str, timeout: Duration) -> bool {
        let mut found = false;
        self.wait_until(timeout, |b, eof| {
            found = contains(b, pat.as_bytes());
            found || eof
        });
        found
    }

    /// Waits until `pat` appears at least `n` times.
    pub fn wait_for_count(&self, pat: &str, n: usize, timeout: Duration) -> bool {
        let mut ok = false;
        self.wait_until(timeout, |b, eof| {
            ok = count(b, pat.as_bytes()) >= n;
            ok || eof
        });
        ok
    }

    /// Waits until at least `n` bytes were captured.
    pub fn wait_len(&self, n: usize, timeout: Duration) -> bool {
        let mut ok = false;
        self.wait_until(timeout, |b, eof| {
            ok = b.len() >= n;
            ok || eof
        });
        ok
    }

    /// Waits until every attached reader saw EOF.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |_, eof| eof)
    }
}

/// Shows at most `max` bytes of `b`: head and tail when it is longer.
pub fn show_bytes(b: &[u8], max: usize) -> String {
    if b.len() <= max {
        return String::from_utf8_lossy(b).into_owned();
    }
    let half = max / 2;
    format!(
        "{}\n[... {} bytes elided ...]\n{}",
        String::from_utf8_lossy(&b[..half]),
        b.len() - 2 * half,
        String::from_utf8_lossy(&b[b.len() - half..])
    )
}

// ---------------------------------------------------------------------------

/// Anything that can describe itself for a failure message.
pub trait Dump {
    fn dump(&self) -> String;
}

/// Joins the dumps of several participants (client, server, peer).
pub fn dumps(parts: &[&dyn Dump]) -> String {
    let mut s = String::new();
    for p in parts {
        s.push_str(&p.dump());
    }
    s
}

// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------

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
fn prefix_text(prefix: &[String]) -> String {
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

// ---------------------------------------------------------------------------

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
        let mut args: Vec<String> = vec![TLS_PEER.into()];
        args.extend(cert_args(cert, tls));
        args.extend(["--mode".into(), mode.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = command_in(prefix, "python3");
        cmd.args(&args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("tls_peer.py", &mut cmd)
            .unwrap_or_else(|e| panic!("cannot start python3: {e}"));
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
            None => panic!("tls_peer.py did not print LISTENING{}", peer.dump()),
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
                "tls_peer.py printed no line starting with {prefix:?} within {timeout:?}{}{}",
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

// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------

/// Standard client arguments: trust the test CA, JSON report, extra flags,
/// then `HOST:PORT`.
pub fn client_args(pki: &Pki, host: &str, port: u16, extra: &[&str]) -> Vec<String> {
    let mut args = pki.ca_args();
    args.push("--report".into());
    args.push("json".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("{host}:{port}"));
    args
}

/// A server a [`Session`] client can connect to.
pub trait TestServer: Dump {
    fn port(&self) -> u16;
}

impl TestServer for SServer {
    fn port(&self) -> u16 {
        self.port
    }
}

impl TestServer for PyPeer {
    fn port(&self) -> u16 {
        self.port
    }
}

/// A client connected to a test server, with the PKI both use.
///
/// The fields are declared in the order the locals they replace were
/// dropped: the client is killed before its server, and the certificate
/// files go last.
pub struct Session<S> {
    pub c: Client,
    pub srv: S,
    pub pki: Pki,
}

impl<S: TestServer> Session<S> {
    /// Fresh PKI, the server `start` makes with it, then the client (see
    /// [`client_args`]) with `flags`, connecting to `host`.
    pub fn start(host: &str, start: impl FnOnce(&Pki) -> S, flags: &[&str]) -> Self {
        Session::start_with(Client::spawn, host, start, flags)
    }

    /// Like [`Session::start`], the test reading stdout itself
    /// ([`Client::spawn_raw_stdout`]).
    pub fn start_raw_stdout(host: &str, start: impl FnOnce(&Pki) -> S, flags: &[&str]) -> Self {
        Session::start_with(Client::spawn_raw_stdout, host, start, flags)
    }

    pub fn start_with(
        spawn: fn(Vec<String>) -> Client,
        host: &str,
        start: impl FnOnce(&Pki) -> S,
        flags: &[&str],
    ) -> Self {
        let pki = Pki::new();
        let srv = start(&pki);
        let c = spawn(client_args(&pki, host, srv.port(), flags));
        Session { c, srv, pki }
    }

    /// Waits for the client's exit, dumping the server too on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.c.wait_exit(timeout, &[&self.srv])
    }
}

impl Session<SServer> {
    /// s_server with the test leaf; the client connects to 127.0.0.1.
    pub fn s_server(tls: Tls, flags: &[&str]) -> Self {
        Session::start("127.0.0.1", |pki| SServer::start(pki, tls), flags)
    }
}

impl Session<PyPeer> {
    /// The Python peer in `mode` with the test leaf; the client connects to
    /// 127.0.0.1.
    pub fn peer(tls: Tls, mode: &str, peer_args: &[&str], flags: &[&str]) -> Self {
        Session::start(
            "127.0.0.1",
            |pki| PyPeer::start(&pki.server, tls, mode, peer_args),
            flags,
        )
    }

    /// Like [`Session::peer`], the test reading stdout itself.
    pub fn peer_raw_stdout(tls: Tls, mode: &str, peer_args: &[&str], flags: &[&str]) -> Self {
        Session::start_raw_stdout(
            "127.0.0.1",
            |pki| PyPeer::start(&pki.server, tls, mode, peer_args),
            flags,
        )
    }
}

/// The client's dump, then the server's: what assertion messages end with.
impl<S: Dump> Dump for Session<S> {
    fn dump(&self) -> String {
        format!("{}{}", self.c.dump(), self.srv.dump())
    }
}

/// The `--report json` fields [`Client::assert_report`] checks for a
/// session that ended by `trigger` with `outcome`, `more`, then `exit_code`.
pub fn report_fields<'a>(
    trigger: &str,
    outcome: &str,
    more: &[(&'a str, Value)],
    exit_code: i32,
) -> Vec<(&'a str, Value)> {
    let mut fields = vec![("trigger", json!(trigger)), ("outcome", json!(outcome))];
    fields.extend_from_slice(more);
    fields.push(("exit_code", json!(exit_code)));
    fields
}

/// [`report_fields`] of the most common ending: outcome `clean` after the
/// client sent its close_notify, exit 0.
pub fn clean_close<'a>(trigger: &str, more: &[(&'a str, Value)]) -> Vec<(&'a str, Value)> {
    let mut all = vec![("close_notify_sent", json!(true))];
    all.extend_from_slice(more);
    report_fields(trigger, "clean", &all, 0)
}

/// The peer's deterministic payload (see tls_peer.py `pattern`).
pub fn payload_pattern(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(format!("{i:08} gracetls payload line\n").as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// Describes how two byte strings differ (length, first differing offset).
pub fn diff_summary(got: &[u8], want: &[u8]) -> String {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    format!(
        "got {} bytes (fnv1a {:016x}), want {} bytes (fnv1a {:016x}), first difference at {}",
        got.len(),
        fnv1a(got),
        want.len(),
        fnv1a(want),
        match first {
            Some(i) => i.to_string(),
            None if got.len() == want.len() => "none".to_string(),
            None => format!(
                "{} (one is a prefix of the other)",
                got.len().min(want.len())
            ),
        }
    )
}

/// 64-bit FNV-1a.
pub fn fnv1a(b: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.update(b);
    h.finish()
}

#[derive(Clone, Copy)]
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    pub fn update(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a::new()
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), for bulk transfers.
pub struct PatternStream {
    state: u64,
}

impl PatternStream {
    pub fn new(seed: u64) -> PatternStream {
        PatternStream { state: seed | 1 }
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

// ---------------------------------------------------------------------------

/// A plain TCP listener on 127.0.0.1 run by the test itself (for "silent"
/// and "not TLS" servers). Accepted sockets are delivered over a channel.
pub struct TestListener {
    pub port: u16,
    accepted: Receiver<TcpStream>,
}

impl TestListener {
    pub fn start() -> TestListener {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        // The thread ends when the test drops the receiver and a further
        // connection comes, or with the test binary; it holds only a socket.
        thread::spawn(move || {
            for s in l.incoming() {
                match s {
                    Ok(s) => {
                        if tx.send(s).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        TestListener { port, accepted: rx }
    }

    /// Waits for the next accepted connection.
    pub fn accept(&self, timeout: Duration, ctx: &[&dyn Dump]) -> TcpStream {
        self.accepted.recv_timeout(timeout).unwrap_or_else(|e| {
            panic!(
                "the test listener on port {} accepted nothing within {timeout:?} ({e}){}",
                self.port,
                dumps(ctx)
            )
        })
    }
}

/// Reads at least one byte (e.g. the ClientHello) from `s`, bounded.
pub fn read_some(s: &mut TcpStream, timeout: Duration) -> io::Result<Vec<u8>> {
    s.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = s.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Sum of `voluntary_ctxt_switches` over all threads of `pid`.
pub fn voluntary_ctxt_switches(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = match std::fs::read_to_string(entry?.path().join("status")) {
            Ok(s) => s,
            // A thread may end between read_dir and the read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                total += v.trim().parse::<u64>().map_err(io::Error::other)?;
            }
        }
    }
    Ok(total)
}

/// Waits on a channel with a bound, panicking with `what` and `ctx`.
pub fn recv_within<T>(rx: &Receiver<T>, timeout: Duration, what: &str, ctx: &[&dyn Dump]) -> T {
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(e) => panic!("{what}: nothing within {timeout:?} ({e}){}", dumps(ctx)),
    }
}

// ---------------------------------------------------------------------------

/// True when `CI=true`: a missing peer is then a failure, never a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether the external program `program` (a path or a name on PATH) can be
/// run. Outside CI a missing one prints a SKIP line naming `make deps` and
/// returns false; under `CI=true` it panics.
pub fn have_tool(program: &str, package: &str) -> bool {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if found {
        return true;
    }
    let msg = format!("{program} not found (Debian package {package}); run `make deps`");
    if under_ci() {
        panic!("CI=true and {msg}");
    }
    eprintln!("SKIP: {msg}");
    println!("SKIP: {msg}");
    false
}
