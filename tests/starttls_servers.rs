//! `--starttls` against real servers the tests start on 127.0.0.1: PostgreSQL (its
//! SSLRequest), vsftpd (FTP `AUTH TLS`) and Prosody (XMPP STARTTLS).
//!
//! For each: a command exchanged over TLS, then each ending (stdin EOF, SIGINT, `~.`, and the
//! protocol's own goodbye; SIGINT and `~.` again with TLS 1.2), with the exit code, the bytes
//! both ways and the server's own log as the referee (how each server tells a close_notify
//! from a bare TCP FIN is in its harness, `tests/common/`); a server without TLS is a one-line
//! error and exit 1. The referees themselves are checked
//! first with `openssl s_client -starttls`: its stdin EOF sends close_notify, SIGKILL leaves a
//! bare FIN, and the server must tell the two apart.

#[allow(unused_macros)]
mod common;

use std::time::{Duration, Instant};

use common::peer::Verdict;
use common::postgres::{PgSsl, Postgres};
use common::prosody::Prosody;
use common::vsftpd::Vsftpd;
use common::*;

/// A server that speaks a STARTTLS protocol and judges how each session's TLS ended.
trait StarttlsServer: Dump {
    fn port(&self) -> u16;
    /// How the `n`-th session (from 0) ended, once it has.
    fn wait_verdict(&self, n: usize, timeout: Duration) -> Verdict;
    /// Everything it logged so far.
    fn log_text(&self) -> String;
}

impl StarttlsServer for Postgres {
    fn port(&self) -> u16 {
        self.port
    }
    fn wait_verdict(&self, n: usize, timeout: Duration) -> Verdict {
        Postgres::wait_verdict(self, n, timeout)
    }
    fn log_text(&self) -> String {
        self.log.text()
    }
}

impl StarttlsServer for Vsftpd {
    fn port(&self) -> u16 {
        self.port
    }
    fn wait_verdict(&self, n: usize, timeout: Duration) -> Verdict {
        Vsftpd::wait_verdict(self, n, timeout)
    }
    fn log_text(&self) -> String {
        self.log.text()
    }
}

impl StarttlsServer for Prosody {
    fn port(&self) -> u16 {
        self.port
    }
    fn wait_verdict(&self, n: usize, timeout: Duration) -> Verdict {
        Prosody::wait_verdict(self, n, timeout)
    }
    fn log_text(&self) -> String {
        self.log.text()
    }
}

/// One protocol: what to send once TLS is up and what in the answer says it was understood.
struct Exchange {
    /// `--starttls` and `s_client -starttls` name.
    proto: &'static str,
    /// Sent over TLS. Its last byte is `\n`, so that `~.` after it is alone on a line.
    input: Vec<u8>,
    /// How the server's answer begins.
    first: &'static str,
    /// How it ends once the command was understood (awaited).
    answer: &'static str,
    /// The answer is exactly `first` then `answer` (nothing in it varies from run to run).
    whole: bool,
    /// The protocol's own goodbye, after which the server ends the session.
    goodbye: &'static [u8],
    /// What the server sends last after it, if anything.
    farewell: &'static str,
    /// Whether the server then sends close_notify (exit 0) or only closes TCP (exit 3).
    goodbye_close_notify: bool,
}

/// PostgreSQL: StartupMessage for user and database `postgres` (trust), a simple Query
/// `SELECT 42`, then an empty-ish CopyData, which a server not in COPY accepts and ignores:
/// the only message a client may send in that state whose last byte can be `\n`.
fn postgres_exchange() -> Exchange {
    let mut input = Vec::new();
    let mut body = 196_608_i32.to_be_bytes().to_vec(); // protocol 3.0
    body.extend_from_slice(b"user\0postgres\0database\0postgres\0\0");
    input.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    input.extend_from_slice(&body);
    let mut message = |kind: u8, body: &[u8]| {
        input.push(kind);
        input.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        input.extend_from_slice(body);
    };
    message(b'Q', b"SELECT 42 AS answer\0");
    message(b'd', b"\n");
    Exchange {
        proto: "postgres",
        input,
        // AuthenticationOk (trust), then parameters and the key, which vary.
        first: "R\x00\x00\x00\x08\x00\x00\x00\x00",
        // The DataRow's text "42", CommandComplete, then ReadyForQuery, idle.
        answer: "\x00\x02\x34\x32C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I",
        whole: false,
        // Terminate: the backend ends, and its exit sends close_notify.
        goodbye: b"X\x00\x00\x00\x04",
        farewell: "",
        goodbye_close_notify: true,
    }
}

/// FTP: anonymous login (no password asked: `no_anon_password`) and `PWD`.
fn ftp_exchange() -> Exchange {
    Exchange {
        proto: "ftp",
        input: b"USER anonymous\r\nPWD\r\n".to_vec(),
        first: "230 Login successful.\r\n",
        answer: "257 \"/\" is the current directory\r\n",
        whole: true,
        // vsftpd answers QUIT and closes the control connection without close_notify.
        goodbye: b"QUIT\r\n",
        farewell: "221 Goodbye.\r\n",
        goodbye_close_notify: false,
    }
}

/// XMPP: the new stream header RFC 6120 wants after TLS; the answer's features now offer
/// SASL mechanisms (withheld before TLS, as encryption is required).
fn xmpp_exchange() -> Exchange {
    Exchange {
        proto: "xmpp",
        input: b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
                 xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\n"
            .to_vec(),
        first: "<?xml version='1.0'?><stream:stream ",
        // The mechanisms come in no fixed order.
        answer: "</mechanisms></stream:features>",
        whole: false,
        // Prosody closes its stream too, then TLS with close_notify.
        goodbye: b"</stream:stream>",
        farewell: "</stream:stream>",
        goodbye_close_notify: true,
    }
}

// ---------------------------------------------------------------------------
// The referees, checked with openssl s_client.

/// `openssl s_client -starttls PROTO` to `server`, trusting the test CA.
fn s_client(pki: &Pki, ex: &Exchange, port: u16, tls: Tls) -> Tool {
    let version = match tls {
        Tls::V12 => "-tls1_2",
        Tls::V13 => "-tls1_3",
    };
    let mut args: Vec<String> = [
        "s_client",
        version,
        "-brief",
        "-nocommands",
        "-starttls",
        ex.proto,
        "-verify_return_error",
        "-verify_hostname",
        "localhost",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["-CAfile".into(), pki.ca.display().to_string()]);
    args.extend(["-connect".into(), format!("127.0.0.1:{port}")]);
    if ex.proto == "xmpp" {
        args.extend(["-xmpphost".into(), "localhost".into()]);
    }
    Tool::spawn(OPENSSL, &args)
}

/// s_client exchanges `ex` over TLS, then ends with stdin EOF (close_notify) or with SIGKILL
/// (a bare FIN), with TLS 1.3 (sessions 0 and 1) and TLS 1.2 (2 and 3); the server must log
/// them apart.
fn check_referee(pki: &Pki, server: &dyn StarttlsServer, ex: &Exchange) {
    for (n, (tls, kill, want)) in [
        (Tls::V13, false, Verdict::CloseNotify),
        (Tls::V13, true, Verdict::BareFin),
        (Tls::V12, false, Verdict::CloseNotify),
        (Tls::V12, true, Verdict::BareFin),
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = s_client(pki, ex, server.port(), tls);
        {
            use std::io::Write;
            let stdin = t.stdin.as_mut().expect("s_client stdin");
            if let Err(e) = stdin.write_all(&ex.input) {
                panic!("cannot write to s_client: {e}{}{}", t.dump(), server.dump());
            }
        }
        assert!(
            t.out.wait_for(ex.answer, WAIT),
            "s_client -starttls {} never got {:?}{}{}",
            ex.proto,
            ex.answer,
            t.dump(),
            server.dump()
        );
        if kill {
            t.proc.signal(SIGKILL);
        } else {
            t.stdin = None;
        }
        assert!(
            t.proc.wait_timeout(WAIT).is_some(),
            "s_client did not end{}{}",
            t.dump(),
            server.dump()
        );
        let got = server.wait_verdict(n, WAIT);
        let how = if kill { "SIGKILL" } else { "stdin EOF" };
        assert_eq!(
            got,
            want,
            "{} TLS {}: s_client ended by {how}, the server's log says {got:?}{}{}",
            ex.proto,
            tls.number(),
            t.dump(),
            server.dump()
        );
        println!(
            "REFEREE {} TLS {} s_client {how}: {got:?}",
            ex.proto,
            tls.number()
        );
    }
}

mod referee {
    use super::*;

    #[test]
    fn postgres() {
        let pki = Pki::new();
        let Some(pg) = Postgres::start(&pki.server, PgSsl::On) else {
            return;
        };
        check_referee(&pki, &pg, &postgres_exchange());
        for n in 0..4 {
            println!("postgres session {n}: {:#?}", pg.session_lines(n));
        }
    }

    #[test]
    fn ftp() {
        let pki = Pki::new();
        let Some(ftp) = Vsftpd::start(&pki.server, true) else {
            return;
        };
        check_referee(&pki, &ftp, &ftp_exchange());
    }

    /// vsftpd's session processes are not the test's children: dropping the harness must kill
    /// them too, also while a client is still connected (a test that failed midway).
    #[test]
    fn ftp_sessions_end_with_the_server() {
        let pki = Pki::new();
        let Some(ftp) = Vsftpd::start(&pki.server, true) else {
            return;
        };
        let mut s = std::net::TcpStream::connect(("127.0.0.1", ftp.port)).expect("connect");
        let greeting = read_some(&mut s, WAIT).expect("the 220 greeting");
        assert!(greeting.starts_with(b"220 "), "{greeting:?}{}", ftp.dump());
        let sessions = common::daemon::descendants(ftp.proc.pid());
        assert!(!sessions.is_empty(), "no session process{}", ftp.dump());
        drop(ftp);
        let left: Vec<u32> = sessions
            .into_iter()
            .filter(|&p| common::daemon::alive(p))
            .collect();
        assert!(
            left.is_empty(),
            "vsftpd sessions {left:?} outlived the server"
        );
    }

    #[test]
    fn xmpp() {
        let pki = Pki::new();
        let Some(xmpp) = Prosody::start(&pki.server, true) else {
            return;
        };
        check_referee(&pki, &xmpp, &xmpp_exchange());
        println!("prosody: {:#?}", xmpp.disconnect_lines());
    }
}

// ---------------------------------------------------------------------------
// gracetls --starttls through each ending.

/// How the test ends the session once the answer is in.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// stdin closed: the default `--on-eof wait` closes after `--quiet-time` (2 s).
    StdinEof,
    /// SIGINT: fast close, then death by SIGINT.
    Sigint,
    /// `~.` alone on a line, with `--escape '~'` as stdin is a pipe: fast close, exit 0.
    Escape,
    /// The protocol's own goodbye: the server ends the session.
    Goodbye,
}

/// gracetls `--starttls` to `server`: `ex.input` over TLS, the answer awaited, then `ending`.
/// Asserts the exit, the report, the bytes both ways, and the server's verdict on session `n`.
fn check_ending(
    pki: &Pki,
    server: &dyn StarttlsServer,
    ex: &Exchange,
    (ending, tls): (Ending, Tls),
    n: usize,
) {
    let mut extra = vec!["--starttls", ex.proto];
    if tls == Tls::V12 {
        extra.extend(["--tls-max", "1.2"]);
    }
    let tls12_before = server.log_text().matches("TLSv1.2").count();
    if ex.proto == "xmpp" {
        // The stream's domain and the certificate's name; the address stays 127.0.0.1.
        extra.extend(["--servername", "localhost"]);
    }
    if let Ending::Escape = ending {
        extra.extend(["--escape", "~"]);
    }
    let mut c = Client::spawn(client_args(pki, "127.0.0.1", server.port(), &extra));
    c.write_stdin(&ex.input, &[server]);
    assert!(
        c.stdout.wait_for(ex.answer, WAIT),
        "{}: gracetls never printed {:?}{}{}",
        ex.proto,
        ex.answer,
        c.dump(),
        server.dump()
    );
    let started = Instant::now();
    let mut sent = ex.input.clone();
    let mut last = ex.answer.to_string();
    // (trigger, outcome, exit code or the signal it dies by)
    let (trigger, outcome, exit) = match ending {
        Ending::StdinEof => {
            c.close_stdin();
            ("stdin-eof", "clean", Ok(0))
        }
        Ending::Sigint => {
            c.signal(SIGINT);
            ("signal", "clean", Err(SIGINT))
        }
        Ending::Escape => {
            c.write_stdin(b"~.\n", &[server]);
            ("escape", "clean", Ok(0))
        }
        Ending::Goodbye => {
            c.write_stdin(ex.goodbye, &[server]);
            sent.extend_from_slice(ex.goodbye);
            last.push_str(ex.farewell);
            match ex.goodbye_close_notify {
                true => ("peer-close-notify", "clean", Ok(0)),
                false => ("peer-eof", "truncated", Ok(3)),
            }
        }
    };
    let st = c.wait_exit(WAIT, &[server]);
    let took = started.elapsed();
    match exit {
        Ok(code) => c.assert_code(st, code, &[server]),
        Err(sig) => c.assert_signal(st, sig, &[server]),
    }
    c.assert_no_panic(&[server]);
    let out = c.stdout_bytes();
    let expected = [ex.first.as_bytes(), last.as_bytes()].concat();
    let exact = !ex.whole || out == expected;
    assert!(
        out.starts_with(ex.first.as_bytes()) && out.ends_with(last.as_bytes()) && exact,
        "{} {ending:?}: stdout is not the answer: {:?} ... {last:?}{}{}",
        ex.proto,
        ex.first,
        c.dump(),
        server.dump()
    );
    let report = c.assert_report(
        &[
            ("trigger", json!(trigger)),
            ("outcome", json!(outcome)),
            ("close_notify_sent", json!(true)),
            ("bytes_out", json!(sent.len())),
            ("bytes_in", json!(out.len())),
            ("bytes_dropped", json!(0)),
        ],
        &[server],
    );
    // After the server's own goodbye, "close_notify" means the session ended without a TLS
    // error in its log; otherwise it is the client's close_notify, read as such.
    let verdict = server.wait_verdict(n, WAIT);
    assert_eq!(
        verdict,
        Verdict::CloseNotify,
        "{} {ending:?}: the server's log says {verdict:?}{}{}",
        ex.proto,
        c.dump(),
        server.dump()
    );
    // Each of them names the version in its log (PostgreSQL `protocol=TLSv1.2`, vsftpd `SSL
    // version: TLSv1.2`, Prosody `TLS handshake complete (TLSv1.2 ...`).
    if tls == Tls::V12 {
        assert!(
            server.log_text().matches("TLSv1.2").count() > tls12_before,
            "{} with --tls-max 1.2: the server logged no TLSv1.2 session{}{}",
            ex.proto,
            c.dump(),
            server.dump()
        );
    }
    println!(
        "STARTTLS {} {ending:?} TLS{}: {} in {} ms (close_ms {}), {} bytes out, {} in; server: {verdict:?}",
        ex.proto,
        tls.number(),
        describe_status(Some(st)),
        took.as_millis(),
        report["close_ms"],
        sent.len(),
        out.len()
    );
}

/// Every ending, one session each, against one server, with TLS 1.3; then the fast closes
/// again with TLS 1.2.
fn check_endings(pki: &Pki, server: &dyn StarttlsServer, ex: &Exchange) {
    for (n, ending) in [
        (Ending::StdinEof, Tls::V13),
        (Ending::Sigint, Tls::V13),
        (Ending::Escape, Tls::V13),
        (Ending::Goodbye, Tls::V13),
        (Ending::Sigint, Tls::V12),
        (Ending::Escape, Tls::V12),
    ]
    .into_iter()
    .enumerate()
    {
        check_ending(pki, server, ex, ending, n);
    }
}

/// gracetls `--starttls` to a server that does not offer TLS: exit 1, one line that names
/// the protocol's refusal (`want`), nothing on stdout.
fn check_refused(pki: &Pki, server: &dyn StarttlsServer, proto: &str, want: &str) {
    let mut extra = vec!["--starttls", proto];
    if proto == "xmpp" {
        extra.extend(["--servername", "localhost"]);
    }
    let mut c = Client::spawn(client_args(pki, "127.0.0.1", server.port(), &extra));
    let st = c.wait_exit(WAIT, &[server]);
    c.assert_code(st, 1, &[server]);
    c.assert_no_panic(&[server]);
    let lines = c.message_lines();
    assert!(
        lines.len() == 1 && lines[0].contains(want),
        "{proto} without TLS: expected one line naming {want:?}, got {lines:?}{}{}",
        c.dump(),
        server.dump()
    );
    assert!(
        c.stdout_bytes().is_empty(),
        "{proto} without TLS: something reached stdout{}{}",
        c.dump(),
        server.dump()
    );
    println!("REFUSED {proto}: {}", lines[0]);
}

mod postgres {
    use super::*;

    #[test]
    fn endings() {
        let pki = Pki::new();
        let Some(pg) = Postgres::start(&pki.server, PgSsl::On) else {
            return;
        };
        check_endings(&pki, &pg, &postgres_exchange());
        for n in 0..6 {
            println!("postgres session {n}: {:#?}", pg.session_lines(n));
        }
    }

    /// `ssl = off`: the server answers the SSLRequest with `N`.
    #[test]
    fn ssl_off_is_refused() {
        let pki = Pki::new();
        let Some(pg) = Postgres::start(&pki.server, PgSsl::Off) else {
            return;
        };
        check_refused(&pki, &pg, "postgres", "answered N to the SSLRequest");
    }
}

mod ftp {
    use super::*;

    #[test]
    fn endings() {
        let pki = Pki::new();
        let Some(ftp) = Vsftpd::start(&pki.server, true) else {
            return;
        };
        check_endings(&pki, &ftp, &ftp_exchange());
    }

    /// `ssl_enable=NO`: vsftpd answers `AUTH TLS` with a 530, as to any command before login.
    #[test]
    fn without_tls_is_refused() {
        let pki = Pki::new();
        let Some(ftp) = Vsftpd::start(&pki.server, false) else {
            return;
        };
        check_refused(
            &pki,
            &ftp,
            "ftp",
            "does not offer AUTH TLS: it answered AUTH TLS with \"530 Please login with USER and PASS.\"",
        );
    }

    /// `--starttls xmpp` against vsftpd: its greeting is named as FTP's, at once.
    #[test]
    fn xmpp_against_vsftpd_names_ftp() {
        let pki = Pki::new();
        let Some(ftp) = Vsftpd::start(&pki.server, true) else {
            return;
        };
        let started = std::time::Instant::now();
        check_refused(
            &pki,
            &ftp,
            "xmpp",
            "speaks FTP, not XMPP: it greeted with \"220 (vsFTPd ",
        );
        check_refused(
            &pki,
            &ftp,
            "xmpp",
            "; to talk to that server, use --starttls ftp",
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the exchange waited out the timeout{}",
            ftp.dump()
        );
    }
}

mod xmpp {
    use super::*;

    #[test]
    fn endings() {
        let pki = Pki::new();
        let Some(xmpp) = Prosody::start(&pki.server, true) else {
            return;
        };
        check_endings(&pki, &xmpp, &xmpp_exchange());
        println!("prosody: {:#?}", xmpp.disconnect_lines());
    }

    /// Without `--servername` the stream goes `to` HOST, here 127.0.0.1, which Prosody does
    /// not serve: its `host-unknown` stream error is exit 1 with one line naming it and
    /// `--servername`.
    #[test]
    fn unknown_domain_names_servername() {
        let pki = Pki::new();
        let Some(xmpp) = Prosody::start(&pki.server, true) else {
            return;
        };
        let args = client_args(&pki, "127.0.0.1", xmpp.port, &["--starttls", "xmpp"]);
        let mut c = Client::spawn(args);
        let st = c.wait_exit(WAIT, &[&xmpp]);
        c.assert_code(st, 1, &[&xmpp]);
        let lines = c.message_lines();
        assert!(
            lines.len() == 1
                && lines[0].contains("<host-unknown")
                && lines[0].contains("--servername"),
            "expected one line naming host-unknown and --servername, got {lines:?}{}{}",
            c.dump(),
            xmpp.dump()
        );
    }

    /// The TLS module off: the stream features offer no `<starttls/>`.
    #[test]
    fn without_starttls_is_refused() {
        let pki = Pki::new();
        let Some(xmpp) = Prosody::start(&pki.server, false) else {
            return;
        };
        check_refused(&pki, &xmpp, "xmpp", "stream features");
    }
}
