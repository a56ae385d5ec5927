//! `--starttls` and `--crlf` against real servers started by the tests on 127.0.0.1: Postfix
//! (SMTP), Dovecot (IMAP, POP3, LMTP). For each protocol, a command is exchanged over TLS,
//! then the session is ended by stdin EOF, SIGINT and `~.`: the exit code and report are the
//! documented ones, and the server's own log says the TLS session ended without an error.
//! Each server's referee is shown to tell a close_notify from a bare FIN: `openssl s_client
//! -starttls` killed hard (the kernel's FIN, no close_notify) makes the same log say so.
//! See tests/common/postfix.rs and tests/common/dovecot.rs for what each server logs.

#[allow(unused_macros)]
mod common;

use common::dovecot::*;
use common::postfix::*;
use common::*;
use std::time::{Duration, Instant};

/// How a test ends a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    StdinEof,
    Sigint,
    Escape,
}

const ENDINGS: [Ending; 3] = [Ending::StdinEof, Ending::Sigint, Ending::Escape];

/// A protocol as a test drives it: a command to send over TLS and the end of its answer.
struct Dialogue {
    proto: &'static str,
    port: u16,
    command: &'static str,
    /// Waits for the end of the answer in what stdout got so far.
    answered: fn(&[u8]) -> bool,
}

/// The final line of a multi-line `250` reply (`250-...` lines, then `250 ...`).
fn reply_250_done(out: &[u8]) -> bool {
    contains(out, b"\n250 ") || out.starts_with(b"250 ")
}

/// One session with `--starttls PROTO --crlf`: the command, its answer, then `ending`. Asserts
/// the exit, the report (close_notify sent, the command's bytes with CRLF) and that the
/// answer came over TLS; returns the client.
fn run_session(pki: &Pki, d: &Dialogue, ending: Ending, srv: &dyn Dump) -> Client {
    let mut flags = vec!["--starttls", d.proto, "--crlf", "--quiet-time", "500ms"];
    if ending == Ending::Escape {
        flags.extend(["--escape", "~"]);
    }
    let mut c = Client::spawn(client_args(pki, "127.0.0.1", d.port, &flags));
    c.write_stdin(d.command.as_bytes(), &[srv]);
    assert!(
        c.stdout.wait_until(WAIT, |b, eof| (d.answered)(b) || eof)
            && (d.answered)(&c.stdout_bytes()),
        "{} never answered {:?} over TLS{}{}",
        d.proto,
        d.command,
        c.dump(),
        srv.dump()
    );
    let sent = d.command.replace('\n', "\r\n").len();
    let st = match ending {
        Ending::StdinEof => {
            c.close_stdin();
            let st = c.wait_exit(WAIT, &[srv]);
            c.assert_code(st, 0, &[srv]);
            c.assert_report(
                &clean_close("stdin-eof", &[("bytes_out", json!(sent))]),
                &[srv],
            );
            st
        }
        Ending::Sigint => {
            c.signal(SIGINT);
            let st = c.wait_exit(WAIT, &[srv]);
            c.assert_signal(st, SIGINT, &[srv]);
            c.assert_report(
                &report_fields(
                    "signal",
                    "clean",
                    &[
                        ("signal", json!("SIGINT")),
                        ("close_notify_sent", json!(true)),
                        ("bytes_out", json!(sent)),
                    ],
                    130,
                ),
                &[srv],
            );
            st
        }
        Ending::Escape => {
            c.write_stdin(b"~.\n", &[srv]);
            let st = c.wait_exit(WAIT, &[srv]);
            c.assert_code(st, 0, &[srv]);
            c.assert_report(
                &clean_close("escape", &[("bytes_out", json!(sent))]),
                &[srv],
            );
            st
        }
    };
    c.assert_no_panic(&[srv]);
    println!(
        "STARTTLS {} ending={ending:?} {} in {} ms",
        d.proto,
        describe_status(Some(st)),
        c.started.elapsed().as_millis()
    );
    c
}

/// `openssl s_client -starttls PROTO` sends the command, gets the answer, and is killed hard:
/// the kernel sends a FIN and no close_notify. The server's log must then show `want`;
/// returns the log's mark from before the session.
fn bare_fin_referee(pki: &Pki, d: &Dialogue, log: &LogFile, want: &str, srv: &dyn Dump) -> usize {
    let mark = log.mark();
    let args: Vec<String> = [
        "s_client",
        "-quiet",
        "-starttls",
        d.proto,
        "-connect",
        &format!("127.0.0.1:{}", d.port),
        "-CAfile",
        &pki.ca.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut t = Tool::spawn(OPENSSL, &args);
    {
        use std::io::Write;
        let stdin = t.stdin.as_mut().expect("s_client stdin");
        let line = d.command.replace('\n', "\r\n");
        if let Err(e) = stdin.write_all(line.as_bytes()) {
            panic!("cannot write to s_client: {e}{}{}", t.dump(), srv.dump());
        }
    }
    assert!(
        t.out.wait_until(WAIT, |b, eof| (d.answered)(b) || eof) && (d.answered)(&t.out.bytes()),
        "s_client never got the answer{}{}",
        t.dump(),
        srv.dump()
    );
    t.proc.kill();
    assert!(
        log.wait_for_since(mark, want, WAIT),
        "the server did not log {want:?} for a bare FIN: it cannot tell one from a close_notify{}{}",
        t.dump(),
        srv.dump()
    );
    mark
}

// ---------------------------------------------------------------------------
// Postfix

fn smtp(port: u16) -> Dialogue {
    Dialogue {
        proto: "smtp",
        port,
        command: "EHLO test.example\n",
        answered: reply_250_done,
    }
}

/// SMTP through Postfix: EHLO over TLS (its reply no longer offers STARTTLS: TLS is up),
/// then each ending; Postfix logs the TLS session and no TLS error, only the `lost
/// connection after EHLO` of any client that leaves without QUIT.
#[test]
fn smtp_postfix_endings() {
    let pki = Pki::new();
    let Some(pf) = Postfix::start(&pki.server) else {
        return;
    };
    let d = smtp(pf.port);
    for ending in ENDINGS {
        let mark = pf.log.mark();
        let c = run_session(&pki, &d, ending, &pf);
        assert!(
            !c.stdout_text().contains("STARTTLS"),
            "the EHLO reply over TLS offers STARTTLS again: was it sent in clear?{}{}",
            c.dump(),
            pf.dump()
        );
        let line = pf.assert_clean_tls_end(mark, &[&c]);
        assert!(line.contains("starttls=1"), "{line}{}", pf.dump());
        println!("POSTFIX smtp ending={ending:?}: {line}");
    }
    // The referee tells a bare FIN apart.
    let mark = bare_fin_referee(&pki, &d, &pf.log, POSTFIX_UNEXPECTED_EOF, &pf);
    let log = pf.session_log(mark, &[]);
    println!(
        "POSTFIX smtp bare FIN (s_client killed): {} / {}",
        log.lines()
            .find(|l| l.contains(POSTFIX_UNEXPECTED_EOF))
            .unwrap_or_default(),
        disconnect_line(&log)
    );
}

/// The dialogue of a mail, one line at a time with LF endings, and the answer each waits for.
const MAIL: [(&str, &str); 6] = [
    ("EHLO test.example\n", "\n250 "),
    ("MAIL FROM:<sender@localhost>\n", "250 2.1.0"),
    ("RCPT TO:<user@localhost>\n", "250 2.1.5"),
    ("DATA\n", "354 "),
    (
        "Subject: crlf\n\nsent with LF line ends\n.\n",
        "250 2.0.0 Ok: queued",
    ),
    ("QUIT\n", "221 "),
];

/// `--crlf`: an SMTP dialogue typed with LF endings reaches each `250`, the `354` of DATA,
/// the queued mail and the `221` of QUIT; Postfix then closes with its close_notify (exit 0)
/// and logs every command and no lost connection.
#[test]
fn smtp_postfix_crlf_dialogue() {
    let pki = Pki::new();
    let Some(pf) = Postfix::start(&pki.server) else {
        return;
    };
    let mark = pf.log.mark();
    let started = Instant::now();
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        pf.port,
        &["--starttls", "smtp", "--crlf"],
    ));
    let mut sent = 0;
    for (line, answer) in &MAIL {
        c.write_stdin(line.as_bytes(), &[&pf]);
        sent += line.replace('\n', "\r\n").len();
        assert!(
            c.stdout.wait_for(answer, WAIT),
            "no {answer:?} after {line:?}{}{}",
            c.dump(),
            pf.dump()
        );
    }
    let st = c.wait_exit(WAIT, &[&pf]);
    c.assert_code(st, 0, &[&pf]);
    c.assert_report(
        &report_fields(
            "peer-close-notify",
            "clean",
            &[
                ("close_notify_sent", json!(true)),
                ("close_notify_received", json!(true)),
                ("bytes_out", json!(sent)),
            ],
            0,
        ),
        &[&pf],
    );
    let line = pf.assert_clean_tls_end(mark, &[&c]);
    let log = pf.log.since(mark);
    assert!(
        !log.contains("lost connection"),
        "Postfix lost the connection although QUIT was sent{}{}",
        c.dump(),
        pf.dump()
    );
    assert!(
        line.contains("mail=1 rcpt=1 data=1 quit=1"),
        "{line}{}",
        pf.dump()
    );
    println!(
        "POSTFIX smtp --crlf dialogue: exit 0 in {} ms: {line}",
        started.elapsed().as_millis()
    );
}

/// Without `--crlf`, the same LF-ended mail never ends: Postfix takes the commands, but only
/// CRLF.CRLF ends DATA, so `.` + LF is a line of the message, no `250 ... queued` comes (the
/// test waits 2 s) and the QUIT after it is text too. `~.` ends the session; Postfix logs
/// `lost connection after DATA` and no TLS error.
#[test]
fn smtp_postfix_without_crlf_data_never_ends() {
    let pki = Pki::new();
    let Some(pf) = Postfix::start(&pki.server) else {
        return;
    };
    let mark = pf.log.mark();
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        pf.port,
        &["--starttls", "smtp", "--escape", "~"],
    ));
    for (line, answer) in &MAIL[..4] {
        c.write_stdin(line.as_bytes(), &[&pf]);
        assert!(
            c.stdout.wait_for(answer, WAIT),
            "no {answer:?} after {line:?}{}{}",
            c.dump(),
            pf.dump()
        );
    }
    c.write_stdin(MAIL[4].0.as_bytes(), &[&pf]);
    c.write_stdin(MAIL[5].0.as_bytes(), &[&pf]);
    assert!(
        !c.stdout.wait_for("queued", Duration::from_secs(2)),
        "Postfix ended DATA at a bare LF dot line{}{}",
        c.dump(),
        pf.dump()
    );
    c.write_stdin(b"~.\n", &[&pf]);
    let st = c.wait_exit(WAIT, &[&pf]);
    c.assert_code(st, 0, &[&pf]);
    let line = pf.assert_clean_tls_end(mark, &[&c]);
    let log = pf.log.since(mark);
    assert!(
        log.contains("lost connection after DATA"),
        "Postfix did not see the session end inside DATA{}{}",
        c.dump(),
        pf.dump()
    );
    println!("POSTFIX smtp without --crlf: no end of DATA within 2 s; ~. then exit 0: {line}");
}

/// A server that does not offer STARTTLS (Postfix's smtpd with TLS off) is exit 1 and one
/// line naming it, what it offers and what to check; one that never greets is a timeout
/// naming the step.
#[test]
fn smtp_without_starttls_is_one_line_exit_1() {
    let pki = Pki::new();
    let Some(pf) = Postfix::start(&pki.server) else {
        return;
    };
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        pf.plain_port,
        &["--starttls", "smtp"],
    ));
    let st = c.wait_exit(WAIT, &[&pf]);
    c.assert_code(st, 1, &[&pf]);
    let lines = c.message_lines();
    let want = format!(
        "gracetls: error: 127.0.0.1:{} does not offer STARTTLS: its EHLO reply lists PIPELINING, SIZE",
        pf.plain_port
    );
    assert!(
        lines.len() == 1 && lines[0].starts_with(&want) && lines[0].contains("check the port"),
        "expected one line starting {want:?}{}{}",
        c.dump(),
        pf.dump()
    );
    println!("NO STARTTLS: {}", lines[0]);

    let silent = TestListener::start();
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        silent.port,
        &["--starttls", "smtp", "--connect-timeout", "500ms"],
    ));
    let _held = silent.accept(WAIT, &[&c]);
    let st = c.wait_exit(WAIT, &[]);
    c.assert_code(st, 1, &[]);
    let lines = c.message_lines();
    let want = format!(
        "gracetls: error: STARTTLS timeout: 127.0.0.1:{} did not send the SMTP greeting within 500ms",
        silent.port
    );
    assert!(
        lines.len() == 1 && lines[0].starts_with(&want),
        "expected one line starting {want:?}{}",
        c.dump()
    );
    println!("SILENT: {}", lines[0]);
}

// ---------------------------------------------------------------------------
// Dovecot

/// What Dovecot logged for one session, from `mark` to its disconnect line.
fn dovecot_session_log(dv: &Dovecot, mark: usize, proto: &str, c: &dyn Dump) -> String {
    let end = if proto == "lmtp" {
        "Disconnect from"
    } else {
        "Disconnected"
    };
    assert!(
        dv.log.wait_for_since(mark, end, WAIT),
        "Dovecot logged no {end:?}{}{}",
        c.dump(),
        dv.dump()
    );
    dv.log.since(mark)
}

/// Each ending against one Dovecot protocol, then the bare-FIN referee.
fn dovecot_endings(d: fn(&Dovecot) -> Dialogue) {
    let pki = Pki::new();
    let Some(dv) = Dovecot::start(&pki.server) else {
        return;
    };
    let d = d(&dv);
    for ending in ENDINGS {
        let mark = dv.log.mark();
        let c = run_session(&pki, &d, ending, &dv);
        let log = dovecot_session_log(&dv, mark, d.proto, &c);
        assert!(
            !log.contains(DOVECOT_SSL_ERROR) && log.contains(DOVECOT_CLOSE_NOTIFY),
            "Dovecot did not log our close_notify, or logged a TLS error{}{}",
            c.dump(),
            dv.dump()
        );
        let line = log
            .lines()
            .find(|l| l.contains("Disconnect"))
            .unwrap_or_default()
            .to_string();
        if d.proto != "lmtp" {
            assert!(
                line.contains(" TLS, ") && !line.contains("TLS: "),
                "the login process did not see a clean TLS end: {line}{}",
                dv.dump()
            );
        }
        println!("DOVECOT {} ending={ending:?}: {line}", d.proto);
    }
    let mark = bare_fin_referee(&pki, &d, &dv.log, DOVECOT_SSL_ERROR, &dv);
    let log = dovecot_session_log(&dv, mark, d.proto, &Note(String::new()));
    let line = log
        .lines()
        .find(|l| l.contains("Disconnect"))
        .unwrap_or_default();
    assert!(
        d.proto == "lmtp" || line.contains("TLS: Connection closed"),
        "the login process did not name the bare FIN: {line}{}",
        dv.dump()
    );
    println!("DOVECOT {} bare FIN (s_client killed): {line}", d.proto);
}

/// IMAP through Dovecot: `a NOOP` over TLS.
#[test]
fn imap_dovecot_endings() {
    dovecot_endings(|dv| Dialogue {
        proto: "imap",
        port: dv.imap,
        command: "a NOOP\n",
        answered: |b| contains(b, b"a OK"),
    });
}

/// POP3 through Dovecot: `CAPA` over TLS, which no longer lists STLS.
#[test]
fn pop3_dovecot_endings() {
    dovecot_endings(|dv| Dialogue {
        proto: "pop3",
        port: dv.pop3,
        command: "CAPA\n",
        answered: |b| contains(b, b"\r\n.\r\n") && !contains(b, b"STLS"),
    });
}

/// LMTP through Dovecot: `LHLO` over TLS.
#[test]
fn lmtp_dovecot_endings() {
    dovecot_endings(|dv| Dialogue {
        proto: "lmtp",
        port: dv.lmtp,
        command: "LHLO test.example\n",
        answered: reply_250_done,
    });
}

/// A certificate rejected after STARTTLS is diagnosed like any other: the second connection
/// repeats the STARTTLS exchange before its ClientHello (sent to the clear-text port, a
/// ClientHello is garbage to the server and nothing is learned), so the error gives the
/// certificate's dates.
#[test]
fn smtp_expired_certificate_is_diagnosed_after_starttls() {
    let pki = Pki::new();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let (expired, _) = pki.leaf("expired", params);
    let Some(pf) = Postfix::start(&expired) else {
        return;
    };
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        pf.port,
        &["--starttls", "smtp"],
    ));
    let st = c.wait_exit(WAIT, &[&pf]);
    c.assert_code(st, 1, &[&pf]);
    let lines = c.message_lines();
    assert!(
        lines.len() == 1
            && lines[0].contains("has expired: it was valid from 2020-01-01 00:00:00 UTC until 2021-01-01 00:00:00 UTC"),
        "expected one line with the certificate's dates{}{}",
        c.dump(),
        pf.dump()
    );
    println!("EXPIRED AFTER STARTTLS: {}", lines[0]);
}

// ---------------------------------------------------------------------------
// A greeting of another protocol, and a server that stops mid-answer: scripted servers of
// this test's own (a few lines of clear text, no TLS), since no real server is needed to
// greet.

/// A server on 127.0.0.1 that sends `greeting`, then answers every chunk the client sends
/// that ends a line with `answer` (nothing when it is empty), until the client closes.
fn greeter(greeting: &'static [u8], answer: &'static [u8]) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        let Ok((mut socket, _)) = listener.accept() else {
            return;
        };
        // Bounded: the thread ends when the client goes or after this long.
        let _ = socket.set_read_timeout(Some(WAIT));
        if socket.write_all(greeting).is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = socket.read(&mut buf) {
            if buf[..n].contains(&b'\n') && !answer.is_empty() && socket.write_all(answer).is_err()
            {
                return;
            }
        }
    });
    port
}

/// Runs `gracetls --starttls PROTO` with `extra` against `port`; asserts exit 1 with one line
/// on stderr holding `phrases`, within `bound`.
fn starttls_error(proto: &str, port: u16, extra: &[&str], phrases: &[String], bound: Duration) {
    let mut args = vec!["--starttls", proto];
    args.extend(extra);
    let target = format!("127.0.0.1:{port}");
    args.push(&target);
    let mut c = Client::spawn(args);
    let st = c.wait_exit(WAIT, &[]);
    let took = c
        .proc
        .exited_at()
        .map_or(Duration::MAX, |at| at - c.started);
    c.assert_no_panic(&[]);
    c.assert_code(st, 1, &[]);
    let lines = c.message_lines();
    assert_eq!(lines.len(), 1, "one line on stderr{}", c.dump());
    for phrase in phrases {
        assert!(
            lines[0].contains(phrase.as_str()),
            "the error line lacks {phrase:?}: {:?}{}",
            lines[0],
            c.dump()
        );
    }
    assert!(took < bound, "the error took {took:?}{}", c.dump());
}

/// FTP and SMTP both greet with 220: `--starttls ftp` against an SMTP server names SMTP and
/// the option to use.
#[test]
fn ftp_against_an_smtp_server_names_smtp() {
    let port = greeter(
        b"220 localhost ESMTP Exim 4.97 Mon, 07 Dec 2026 07:00:00 +0000\r\n",
        b"500 unrecognised command\r\n",
    );
    starttls_error(
        "ftp",
        port,
        &[],
        &[format!(
            "gracetls: error: 127.0.0.1:{port} speaks SMTP, not FTP: it greeted with \"220 localhost ESMTP Exim 4.97 Mon, 07 Dec 2026 07:00:00 +0000\"; to talk to that server, use --starttls smtp; otherwise check the port"
        )],
        Duration::from_secs(5),
    );
}

/// The same against Postfix itself.
#[test]
fn ftp_against_postfix_names_smtp() {
    let pki = Pki::new();
    let Some(pf) = Postfix::start(&pki.server) else {
        return;
    };
    let mut c = Client::spawn(client_args(
        &pki,
        "127.0.0.1",
        pf.port,
        &["--starttls", "ftp"],
    ));
    let st = c.wait_exit(WAIT, &[&pf]);
    c.assert_code(st, 1, &[&pf]);
    let lines = c.message_lines();
    let want = format!(
        "gracetls: error: 127.0.0.1:{} speaks SMTP, not FTP: it greeted with \"220 ",
        pf.port
    );
    assert!(
        lines.len() == 1
            && lines[0].starts_with(&want)
            && lines[0].contains(" ESMTP ")
            && lines[0].ends_with(
                "; to talk to that server, use --starttls smtp; otherwise check the port"
            ),
        "expected one line starting {want:?}{}{}",
        c.dump(),
        pf.dump()
    );
    println!("FTP TO SMTP: {}", lines[0]);
}

/// `--starttls xmpp` against an FTP server: the FTP server greets and waits for a line that
/// XMPP never ends. gracetls does not wait out the timeout (10 s here): a greeting that is
/// not XML ends the exchange at once, naming what the server is.
#[test]
fn xmpp_against_an_ftp_server_names_ftp() {
    let port = greeter(b"220 (vsFTPd 3.0.5)\r\n", b"");
    starttls_error(
        "xmpp",
        port,
        &[],
        &[format!(
            "gracetls: error: 127.0.0.1:{port} speaks FTP, not XMPP: it greeted with \"220 (vsFTPd 3.0.5)\"; to talk to that server, use --starttls ftp"
        )],
        Duration::from_secs(5),
    );
}

/// A server that stops in the middle of its answer: the timeout quotes the last line it sent.
#[test]
fn a_starttls_timeout_quotes_the_last_line() {
    let port = greeter(b"220 mail.example ready\r\n", b"250-mail.example\r\n");
    starttls_error(
        "smtp",
        port,
        &["--connect-timeout", "1s"],
        &[format!(
            "gracetls: error: STARTTLS timeout: 127.0.0.1:{port} did not answer SMTP EHLO within 1s; the last line it sent was \"250-mail.example\"; "
        )],
        Duration::from_secs(5),
    );
}
