//! One interface over every TLS server the interop matrix runs against.
//!
//! Each implementation is a real TLS stack that nobody here wrote (or, for
//! rustls, a thin server over it) plus a *referee*: the way that stack itself
//! tells a client's close_notify from a bare TCP FIN. The matrix harness in
//! `tests/interop.rs` drives `gracetls` through every exit path against each
//! peer and asks the peer what it saw.
//!
//! # The echo-peer protocol
//! The peers written for these tests (JSSE, Go, rustls, the nginx backend)
//! share one small protocol, so the harness treats them alike:
//! - they listen on 127.0.0.1 (port 0 or a given one) and print
//!   `LISTENING <port>` once ready (the in-process rustls peer reports the
//!   port directly);
//! - they serve any number of connections, one after another or at once;
//! - every line the client sends is echoed back, except two command lines:
//!   `srv-close` (the server sends close_notify, then reads until the
//!   client's answer or EOF and judges it) and `srv-truncate` (the server
//!   shuts TCP down without close_notify);
//! - when a connection ends, they print exactly one line
//!   `VERDICT close_notify|bare_fin|error <detail>` (flushed at once).

use std::time::Duration;

use super::{Dump, PyPeer, SS_CLOSE_NOTIFY_READ, SServer, Tls, contains};

/// How a connection ended, as the server's own TLS stack saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The client sent close_notify (first, or as the answer to the server's).
    CloseNotify,
    /// The connection ended with a TCP FIN and no close_notify.
    BareFin,
    /// The server logged an error (text as logged).
    Error(String),
    /// The server could not judge (it was killed to cause a truncation).
    NotJudged,
}

impl Verdict {
    /// Parses the `<what> <detail>` part of an echo-peer `VERDICT` line.
    pub fn parse(rest: &str) -> Verdict {
        let rest = rest.trim();
        let (what, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        match what {
            "close_notify" => Verdict::CloseNotify,
            "bare_fin" => Verdict::BareFin,
            _ => Verdict::Error(format!("{what} {detail}").trim().to_string()),
        }
    }
}

/// The two ways a server can end a connection itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEnd {
    /// Send close_notify (the client must answer it and exit 0).
    CloseNotify,
    /// Close TCP without close_notify (the client must report truncation).
    Truncate,
}

/// How a peer plays a server-initiated end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// The client sends this line (through its stdin); the server reacts.
    Line(&'static str),
    /// The harness calls [`TlsPeer::act`] while the client is connected.
    Act,
    /// This peer cannot play it; the reason goes into the table cell.
    Cannot(&'static str),
}

/// A TLS server under test. Implementations kill what they started on drop.
pub trait TlsPeer: Dump {
    /// Column label, e.g. `"gnutls-serv"` (the harness adds the version).
    fn name(&self) -> &'static str;
    /// The TLS version this instance was started with.
    fn tls(&self) -> Tls;
    /// Where the client connects (127.0.0.1).
    fn port(&self) -> u16;
    /// Makes the server send `line` (with `\n`) to the client on the current
    /// connection. Returns false for echo peers: the harness then has the
    /// client send the line and it comes back as the echo.
    fn say(&mut self, line: &str) -> bool;
    /// How this peer plays `end`.
    fn how(&self, end: ServerEnd) -> How;
    /// Plays `end` (only called when [`TlsPeer::how`] returned [`How::Act`]).
    /// May leave the peer unusable (a killed process): the harness plays
    /// [`ServerEnd::Truncate`] last.
    fn act(&mut self, end: ServerEnd);
    /// Waits (bounded by `timeout`) until the server has finished judging the
    /// next connection that ended, in the order they ended, and returns its
    /// verdict. A connection the server itself truncated yields
    /// [`Verdict::NotJudged`] or [`Verdict::BareFin`], whatever the peer saw.
    fn next_verdict(&mut self, timeout: Duration) -> Verdict;
    /// Version string of the stack, for the table header (e.g. `OpenSSL 3.0.17`).
    fn version(&self) -> String;
}

// ---------------------------------------------------------------------------
// OpenSSL peers that the core suite already drives.

fn openssl_version() -> String {
    std::process::Command::new(super::OPENSSL)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("openssl version: {e}"))
}

impl TlsPeer for SServer {
    fn name(&self) -> &'static str {
        "openssl s_server"
    }

    fn tls(&self) -> Tls {
        self.tls
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn say(&mut self, line: &str) -> bool {
        // Measured: stdin that s_server reads before its handshake is over is
        // forwarded, but then it stops forwarding stdin for good (about 1 run
        // in 8, openssl s_client as the client too). So wait for the
        // server's last handshake message first.
        let done = match self.tls {
            Tls::V13 => self
                .log
                .wait_for_count("write session ticket", 2, super::WAIT),
            Tls::V12 => self
                .log
                .wait_for("SSL_accept:SSLv3/TLS write finished", super::WAIT),
        };
        assert!(done, "s_server never finished its handshake{}", self.dump());
        self.send_line(line);
        true
    }

    fn how(&self, end: ServerEnd) -> How {
        match end {
            // `q` ends the connection with SSL_set_shutdown(), which marks the
            // session as shut down without sending anything.
            ServerEnd::CloseNotify => How::Cannot(
                "s_server has no command that sends close_notify (`q` drops TCP without it)",
            ),
            ServerEnd::Truncate => How::Act,
        }
    }

    fn act(&mut self, end: ServerEnd) {
        assert_eq!(end, ServerEnd::Truncate, "s_server can only truncate");
        self.command("q");
    }

    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        // s_server prints DONE after reading close_notify and ERROR after a
        // failed read; the error stack follows ERROR, hence the short grace
        // wait for the line that names it.
        let ended = self.log.wait_until(timeout, |b, eof| {
            contains(b, super::SS_DONE.as_bytes()) || contains(b, b"ERROR") || eof
        });
        let log = self.log.text();
        if !ended {
            return Verdict::Error(format!("no DONE/ERROR within {timeout:?}"));
        }
        if log.contains("ERROR") || log.contains("unexpected eof") {
            self.log.wait_for("error:", Duration::from_millis(500));
            let log = self.log.text();
            // OpenSSL's own name for a FIN without close_notify.
            if log.contains("unexpected eof while reading") {
                return Verdict::BareFin;
            }
            let detail = log
                .lines()
                .find(|l| l.contains("error:") || l.contains("unexpected eof"))
                .unwrap_or("ERROR");
            return Verdict::Error(detail.trim().to_string());
        }
        if log.contains(SS_CLOSE_NOTIFY_READ) {
            Verdict::CloseNotify
        } else {
            Verdict::BareFin
        }
    }

    fn version(&self) -> String {
        openssl_version()
    }
}

/// The Python `ssl` peer as a [`TlsPeer`]: one connection per process, in the
/// mode the path needs (`echo`, `send-close`, `send-truncate`).
pub struct PySsl {
    pub peer: PyPeer,
    tls: Tls,
    /// The line a `send-*` mode sends first (set with `--payload-text`).
    sends: Option<String>,
}

impl PySsl {
    /// `end` picks the mode: `None` echoes, `Some(end)` makes the server send
    /// `line` and then end the connection that way by itself.
    pub fn start(cert: &super::CertFiles, tls: Tls, end: Option<ServerEnd>, line: &str) -> PySsl {
        let payload = format!("{line}\\n");
        let (mode, extra): (&str, Vec<&str>) = match end {
            None => ("echo", vec![]),
            Some(ServerEnd::CloseNotify) => ("send-close", vec!["--payload-text", &payload]),
            Some(ServerEnd::Truncate) => ("send-truncate", vec!["--payload-text", &payload]),
        };
        PySsl {
            peer: PyPeer::start(cert, tls, mode, &extra),
            tls,
            sends: end.map(|_| line.to_string()),
        }
    }
}

impl Dump for PySsl {
    fn dump(&self) -> String {
        self.peer.dump()
    }
}

impl TlsPeer for PySsl {
    fn name(&self) -> &'static str {
        "Python ssl"
    }

    fn tls(&self) -> Tls {
        self.tls
    }

    fn port(&self) -> u16 {
        self.peer.port
    }

    fn say(&mut self, line: &str) -> bool {
        self.sends.as_deref() == Some(line)
    }

    fn how(&self, _end: ServerEnd) -> How {
        // The mode chosen at start already plays it right after `say`.
        How::Act
    }

    fn act(&mut self, _end: ServerEnd) {}

    fn next_verdict(&mut self, timeout: Duration) -> Verdict {
        let line = self.peer.expect_line("VERDICT ", timeout, &[]);
        let rest = line.trim_start_matches("VERDICT ").trim();
        let (what, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        match what {
            "client_close_notify" | "client_answered_close_notify" => Verdict::CloseNotify,
            "client_eof_without_close_notify" => Verdict::BareFin,
            "truncated_sent" => Verdict::NotJudged,
            _ => Verdict::Error(format!("{what} {detail}").trim().to_string()),
        }
    }

    fn version(&self) -> String {
        std::process::Command::new("python3")
            .args([
                "-c",
                "import ssl, sys; print(sys.version.split()[0], ssl.OPENSSL_VERSION)",
            ])
            .output()
            .map(|o| format!("Python {}", String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_else(|e| format!("python3: {e}"))
    }
}
