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

pub mod daemon;
pub mod dovecot;
pub mod echo_peer;
pub mod gnutls;
pub mod gopeer;
pub mod hostile;
pub mod jsse;
pub mod netns;
pub mod nginx;
pub mod nginx_http;
pub mod peer;
pub mod postfix;
pub mod postgres;
pub mod prosody;
pub mod proxies;
pub mod proxy;
pub mod rustls_peer;
pub mod vsftpd;

// The harness, one file per part. Each test binary uses a different part of it, so any one
// re-export may go unused in a given binary.
mod capture;
mod client;
mod listener;
mod logfile;
mod pki;
mod process;
mod pypeer;
mod s_server;
mod session;
mod skip;
#[allow(unused_imports)]
pub use {
    capture::*, client::*, listener::*, logfile::*, pki::*, process::*, pypeer::*, s_server::*,
    session::*, skip::*,
};

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
/// Path of the Python STARTTLS server (clear-text EHLO/STARTTLS, then TLS and an echo).
pub const STARTTLS_PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/starttls_server.py"
);
/// The referee.
pub const OPENSSL: &str = "/usr/bin/openssl";

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGKILL: i32 = 9;
pub const SIGSTOP: i32 = 19;
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
