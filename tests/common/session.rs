//! A client connected to a test server with the PKI both use, the report fields tests assert, and data patterns and hashes.

use super::*;

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
