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

use super::echo_peer::{EchoPeer, EchoStack, build_fresh, peers_dir, run_bounded, run_ok};
use super::{CertFiles, Tls, WAIT, cert_args, have_tool};

/// The Go module of the peer.
pub const GOECHO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/goecho");

/// Go's crypto/tls, as an [`EchoStack`].
pub struct GoTls;

/// A running Go echo server.
pub type GoPeer = EchoPeer<GoTls>;

impl EchoStack for GoTls {
    const NAME: &'static str = "Go crypto/tls";
    const PROCESS: &'static str = "goecho";

    fn version() -> String {
        // `go version go1.19.8 linux/amd64` -> `go1.19.8`.
        let mut cmd = Command::new("go");
        go_env(&mut cmd).arg("version");
        let (_, out, err) = run_bounded("go version", &mut cmd, WAIT);
        let text = format!("{out}{err}");
        text.split_whitespace()
            .find(|w| w.starts_with("go1"))
            .map(str::to_string)
            .unwrap_or_else(|| text.trim().to_string())
    }
}

impl GoPeer {
    /// Builds (once) and starts the server for `cert`, pinned to `tls`.
    /// `None`: Go is not installed and this is not CI (SKIP printed).
    pub fn start(cert: &CertFiles, tls: Tls) -> Option<GoPeer> {
        if !have_tool("go", "golang-go") {
            return None;
        }
        let mut cmd = Command::new(goecho_binary());
        cmd.args(cert_args(cert, tls));
        Some(EchoPeer::spawn(cmd, tls, WAIT))
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
