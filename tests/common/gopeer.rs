//! The Go crypto/tls echo peer (tests/peers/goecho), built by the test run.
//!
//! It follows the echo-peer protocol of [`super::peer`]. crypto/tls returns
//! `io.EOF` both for a close_notify and for a bare FIN at a record boundary,
//! so the peer watches the client's TLS record headers on the raw socket and
//! judges with two rules that must agree (see the top of `main.go`): the last
//! record is a close_notify (TLS 1.3: application_data of length 19; TLS 1.2:
//! an alert), and crypto/tls reported EOF before the socket itself did.
//!
//! [`GoPeer::start`] returns `None` when `go` is missing outside CI
//! (`have_tool` printed SKIP); under `CI=true` it panics instead.
//!
//! The binary is built once per test process into
//! `$CARGO_TARGET_TMPDIR/peers/goecho-<hash of the sources>`, offline (no
//! module proxy: the peer uses the standard library only), with the Go build
//! cache also under the target directory, so nothing outside it is touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::jsse::{
    build_fresh, dump_peer, echo_how, next_verdict, peers_dir, run_bounded, run_ok,
    spawn_echo_peer, verdict_lines,
};
use super::peer::{How, ServerEnd, TlsPeer, Verdict};
use super::{Capture, CertFiles, Dump, Proc, Tls, WAIT};

/// The Go module of the peer.
pub const GOECHO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/goecho");

/// A running Go echo server.
pub struct GoPeer {
    proc: Proc,
    port: u16,
    tls: Tls,
    out: Capture,
    err: Capture,
    args: Vec<String>,
    /// VERDICT lines already returned by `next_verdict`.
    verdicts_taken: usize,
}

impl GoPeer {
    /// Builds (once) and starts the server for `cert`, pinned to `tls`.
    /// `None`: Go is not installed and this is not CI (SKIP printed).
    pub fn start(cert: &CertFiles, tls: Tls) -> Option<GoPeer> {
        if !have_go() {
            return None;
        }
        let bin = goecho_binary();
        let args: Vec<String> = vec![
            "--cert".into(),
            cert.cert.display().to_string(),
            "--key".into(),
            cert.key.display().to_string(),
            "--tls".into(),
            tls.number().into(),
        ];
        let mut cmd = Command::new(&bin);
        cmd.args(&args);
        let (proc, out, err, port) = spawn_echo_peer("goecho", &mut cmd, WAIT);
        let peer = GoPeer {
            proc,
            port: port.unwrap_or(0),
            tls,
            out,
            err,
            args,
            verdicts_taken: 0,
        };
        if port.is_none() {
            panic!("goecho did not print LISTENING{}", peer.dump());
        }
        Some(peer)
    }

    /// Every VERDICT line so far (without the prefix).
    pub fn verdict_lines(&self) -> Vec<String> {
        verdict_lines(&self.out.bytes())
    }
}

fn have_go() -> bool {
    super::have_tool("go", "golang-go")
}

impl TlsPeer for GoPeer {
    fn name(&self) -> &'static str {
        "Go crypto/tls"
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
        panic!("goecho is an echo peer: {end:?} is played by a line, never by act()");
    }
    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        next_verdict(&self.out, &mut self.verdicts_taken, timeout)
    }
    fn version(&self) -> String {
        static VERSION: OnceLock<String> = OnceLock::new();
        VERSION
            .get_or_init(|| {
                // `go version go1.19.8 linux/amd64` -> `go1.19.8`.
                let mut cmd = Command::new("go");
                go_env(&mut cmd).arg("version");
                let (_, out, err) = run_bounded("go version", &mut cmd, WAIT);
                let text = format!("{out}{err}");
                text.split_whitespace()
                    .find(|w| w.starts_with("go1"))
                    .map(str::to_string)
                    .unwrap_or_else(|| text.trim().to_string())
            })
            .clone()
    }
}

impl Dump for GoPeer {
    fn dump(&self) -> String {
        dump_peer(
            "goecho",
            &self.args,
            &self.proc,
            &self.out,
            &self.err,
            self.verdicts_taken,
        )
    }
}

/// Keeps the Go toolchain inside the target directory and offline.
fn go_env(cmd: &mut Command) -> &mut Command {
    let dir = peers_dir();
    cmd.env("GOCACHE", dir.join("go-cache"))
        .env("GOPATH", dir.join("go-path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "on")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .env("GOTOOLCHAIN", "local")
        // No C compiler needed: the pure-Go resolver and runtime do.
        .env("CGO_ENABLED", "0")
}

/// The built binary; builds on first use in this process.
fn goecho_binary() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(GOECHO_DIR);
            let main = dir.join("main.go");
            let gomod = dir.join("go.mod");
            build_fresh("goecho", &[&main, &gomod], |tmp| {
                let mut cmd = Command::new("go");
                go_env(&mut cmd)
                    .current_dir(dir)
                    .arg("build")
                    .arg("-o")
                    .arg(tmp)
                    .arg(".");
                run_ok("go build", &mut cmd)
            })
        })
        .clone()
        .unwrap_or_else(|e| panic!("cannot build the Go peer: {e}"))
}
