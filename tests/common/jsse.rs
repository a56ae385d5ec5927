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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::echo_peer::{EchoPeer, EchoStack, build_fresh, run_bounded, run_ok};
use super::{CertFiles, Tls, WAIT, cert_args, have_tool};

/// The Java source of the peer.
pub const JSSE_SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/JsseEchoServer.java"
);

/// Bound for a JVM to start and print `LISTENING` on a busy 2-core machine.
const JVM_START: Duration = Duration::from_secs(30);

/// The JSSE stack, as an [`EchoStack`].
pub struct Jsse;

/// A running JSSE echo server.
pub type JssePeer = EchoPeer<Jsse>;

impl EchoStack for Jsse {
    const NAME: &'static str = "JSSE";
    const PROCESS: &'static str = "JsseEchoServer";

    fn version() -> String {
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
    }
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
        let mut cmd = Command::new("java");
        cmd.args([
            "-Dcom.sun.net.ssl.requireCloseNotify=true",
            // Starts faster and stays small: many JVMs may run at once.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Xmx128m",
        ])
        .arg("-cp")
        .arg(jsse_classes())
        .arg("JsseEchoServer")
        .args(cert_args(cert, tls));
        Some(EchoPeer::spawn(cmd, tls, JVM_START))
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
