//! The interop matrix: every exit path of `gracetls` against independent TLS
//! stacks, each refereed by its own stack (see `tests/common/peer.rs`).
//!
//! One test per column (peer x TLS version) runs every row (exit path) with a
//! fresh server, asserts what the server saw, the client's exit status and
//! its JSON report, and writes the column to
//! `target/tmp/interop/<column>.json`; `make interop` turns those files into
//! the Markdown table in docs/INTEROP.md (`tests/interop_table.py`). A cell
//! that fails does not stop the column: every cell is filled, then the test
//! fails listing the bad ones.

#[macro_use]
mod common;

use common::peer::{How, PySsl, ServerEnd, TlsPeer, Verdict};
use common::*;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitStatus;

/// The data line each row sends (or has the server send) before ending.
/// Longer than 2 bytes: the Go referee tells a TLS 1.3 close_notify record by
/// its length (19), and a 2-byte payload would make a record of that length.
const LINE: &str = "hello from the gracetls interop matrix";

/// `--quiet-time` of the default-mode row.
const QUIET: &str = "300ms";

/// The rows: every way a session can end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    EofWait,
    EofHalfClose,
    EofClose,
    EofIgnore,
    Escape,
    Signal(i32),
    QuitOn,
    Server(ServerEnd),
}

const ROWS: [Row; 11] = [
    Row::EofWait,
    Row::EofHalfClose,
    Row::EofClose,
    Row::EofIgnore,
    Row::Escape,
    Row::Signal(SIGINT),
    Row::Signal(SIGTERM),
    Row::Signal(SIGHUP),
    Row::QuitOn,
    Row::Server(ServerEnd::CloseNotify),
    Row::Server(ServerEnd::Truncate),
];

impl Row {
    fn label(self) -> String {
        match self {
            Row::EofWait => "stdin EOF, `--on-eof wait` (default)".into(),
            Row::EofHalfClose => "stdin EOF, `--on-eof half-close`".into(),
            Row::EofClose => "stdin EOF, `--on-eof close`".into(),
            Row::EofIgnore => "stdin EOF, `--on-eof ignore`, then SIGTERM".into(),
            Row::Escape => "`~.` on stdin".into(),
            Row::Signal(sig) => signal_name(sig).to_string(),
            Row::QuitOn => "`--quit-on bye`, the server sends `bye`".into(),
            Row::Server(ServerEnd::CloseNotify) => "the server sends close_notify".into(),
            Row::Server(ServerEnd::Truncate) => "the server drops TCP (no close_notify)".into(),
        }
    }

    fn client_flags(self) -> &'static [&'static str] {
        match self {
            // The default mode; a short quiet time, since echo servers never
            // close by themselves.
            Row::EofWait => &["--quiet-time", QUIET],
            Row::EofHalfClose => &["--on-eof", "half-close"],
            Row::EofClose => &["--on-eof", "close"],
            // The escape is on by default only when stdin is a terminal.
            Row::Escape => &["--escape", "~"],
            // -vv: the client logs that it stays connected, an event to wait for.
            Row::EofIgnore => &["--on-eof", "ignore", "-vv"],
            Row::QuitOn => &["--quit-on", "bye"],
            _ => &[],
        }
    }

    /// The report's `end` for this row, where the row decides it: what
    /// finished the close that stdin EOF started.
    fn end(self) -> Option<&'static str> {
        match self {
            Row::EofWait => Some("quiet"),
            Row::EofHalfClose => Some("server-close-notify"),
            _ => None,
        }
    }

    /// The report's `trigger` for this row.
    fn trigger(self) -> &'static str {
        match self {
            Row::EofWait | Row::EofHalfClose | Row::EofClose => "stdin-eof",
            Row::EofIgnore | Row::Signal(_) => "signal",
            Row::Escape => "escape",
            Row::QuitOn => "quit-line",
            Row::Server(ServerEnd::CloseNotify) => "peer-close-notify",
            Row::Server(ServerEnd::Truncate) => "peer-eof",
        }
    }
}

/// What a column starts for one row: `None` when the peer's program is
/// missing outside CI (`have_tool` already printed SKIP).
type Start = fn(&Pki, Tls, Row) -> Option<Box<dyn TlsPeer>>;

struct Column {
    /// Short label, also the JSON file name.
    key: &'static str,
    /// The peer's own name ([`TlsPeer::name`]); rows a stand-in plays say so.
    name: &'static str,
    start: Start,
    /// Where this peer departs from the protocol, what gracetls does instead.
    quirk: fn(Row) -> Option<Quirk>,
}

/// A measured deviation of a peer, and the result gracetls gives for it.
/// The cell still asserts everything, against these expectations.
struct Quirk {
    /// Expected exit code (instead of 0).
    code: Option<i32>,
    /// Expected report outcome (instead of `clean`).
    outcome: Option<&'static str>,
    /// Expected server verdict (instead of close_notify).
    verdict: Option<Verdict>,
    /// What the peer does, for the cell.
    note: &'static str,
    /// Phrases the client's one-line message may contain; it must contain
    /// one of them (none: not checked).
    messages: &'static [&'static str],
    /// Expected report `end` (instead of the row's own).
    end: Option<&'static str>,
}

fn no_quirk(_row: Row) -> Option<Quirk> {
    None
}

fn nginx_quirk(row: Row) -> Option<Quirk> {
    match row {
        // nginx closes TCP after reading close_notify without sending its own
        // (it sets no_send_shutdown on any read end). gracetls cannot tell
        // that from a cut connection, so the half-close ends as a possible
        // truncation, by design.
        //
        // Which message names it is a race inside gracetls: the writer thread
        // marks close_notify as sent only after its write returned, and nginx
        // answers with its FIN so fast that the reader thread can see that
        // FIN first (about 2 runs in 10 for TLS 1.3) and say "without
        // close_notify" instead of "without answering our close_notify".
        // Exit code, outcome, bytes and nginx's verdict are certain.
        Row::EofHalfClose => Some(Quirk {
            code: Some(3),
            outcome: Some("truncated"),
            verdict: None,
            note: "nginx never answers close_notify; gracetls reports possible truncation",
            messages: &[
                "closed TCP without answering our close_notify",
                "closed TCP without close_notify",
            ],
            end: Some("server-eof"),
        }),
        // After its own close_notify nginx closes at once, without reading
        // the client's answer.
        Row::Server(ServerEnd::CloseNotify) => Some(Quirk {
            code: None,
            outcome: None,
            verdict: Some(Verdict::NotJudged),
            note: "nginx closes without reading the answer",
            messages: &[],
            end: None,
        }),
        _ => None,
    }
}

fn start_s_server(pki: &Pki, tls: Tls, row: Row) -> Option<Box<dyn TlsPeer>> {
    if !have_tool(OPENSSL, "openssl") {
        return None;
    }
    Some(match row {
        // s_server cannot send close_notify on command; the Python `ssl`
        // module (the same OpenSSL) plays that row for this column.
        Row::Server(ServerEnd::CloseNotify) => Box::new(PySsl::start(
            &pki.server,
            tls,
            Some(ServerEnd::CloseNotify),
            LINE,
        )),
        _ => Box::new(SServer::start(pki, tls)),
    })
}

fn start_nginx(pki: &Pki, tls: Tls, _row: Row) -> Option<Box<dyn TlsPeer>> {
    Some(Box::new(common::nginx::Nginx::start(&pki.server, tls)?))
}

fn start_gnutls(pki: &Pki, tls: Tls, _row: Row) -> Option<Box<dyn TlsPeer>> {
    Some(Box::new(common::gnutls::GnutlsServ::start(
        &pki.server,
        tls,
    )?))
}

fn start_rustls(pki: &Pki, tls: Tls, _row: Row) -> Option<Box<dyn TlsPeer>> {
    Some(Box::new(common::rustls_peer::RustlsPeer::start(
        &pki.server,
        tls,
    )))
}

fn start_jsse(pki: &Pki, tls: Tls, _row: Row) -> Option<Box<dyn TlsPeer>> {
    Some(Box::new(common::jsse::JssePeer::start(&pki.server, tls)?))
}

fn start_go(pki: &Pki, tls: Tls, _row: Row) -> Option<Box<dyn TlsPeer>> {
    Some(Box::new(common::gopeer::GoPeer::start(&pki.server, tls)?))
}

/// One filled cell.
struct Cell {
    ok: bool,
    text: String,
    /// The peer's quirk, when the cell expected one (a footnote in the table).
    note: Option<&'static str>,
    close_ms: Option<u64>,
    /// The full failure message, for the test output.
    detail: String,
}

fn exit_text(st: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => signal_name(sig).to_string(),
        _ => format!("{st:?}"),
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::CloseNotify => "close_notify".into(),
        Verdict::BareFin => "bare FIN".into(),
        Verdict::Error(e) => format!("error: {e}"),
        Verdict::NotJudged => "not judged".into(),
    }
}

/// Runs one row against a fresh peer; panics (caught by the caller) on any
/// deviation, with every participant's dump.
fn play(
    pki: &Pki,
    peer: &mut dyn TlsPeer,
    row: Row,
    quirk: Option<&Quirk>,
) -> Result<(String, Option<u64>), String> {
    let end = match row {
        Row::Server(end) => Some(end),
        _ => None,
    };
    if let Some(end) = end {
        if let How::Cannot(why) = peer.how(end) {
            return Err(why.to_string());
        }
    }
    let mut c = Client::spawn(client_args(
        pki,
        "127.0.0.1",
        peer.port(),
        row.client_flags(),
    ));
    // Data first, so every close happens on a live session.
    if !peer.say(LINE) {
        c.write_stdin(format!("{LINE}\n").as_bytes(), &[&*peer]);
    }
    if !c.stdout.wait_for(LINE, WAIT) {
        panic!("the line never came back{}{}", c.dump(), peer.dump());
    }
    match row {
        Row::EofWait | Row::EofHalfClose | Row::EofClose => c.close_stdin(),
        Row::EofIgnore => {
            c.close_stdin();
            if !c.stderr.wait_for("staying connected", WAIT) {
                panic!("no `staying connected` log line{}{}", c.dump(), peer.dump());
            }
            c.signal(SIGTERM);
        }
        Row::Escape => c.write_stdin(b"~.\n", &[&*peer]),
        Row::Signal(sig) => c.signal(sig),
        Row::QuitOn => {
            if !peer.say("bye") {
                c.write_stdin(b"bye\n", &[&*peer]);
            }
        }
        Row::Server(end) => match peer.how(end) {
            How::Line(line) => c.write_stdin(format!("{line}\n").as_bytes(), &[&*peer]),
            How::Act => peer.act(end),
            How::Cannot(_) => unreachable!("handled above"),
        },
    }
    let st = c.wait_exit(WAIT, &[&*peer]);
    c.assert_no_panic(&[&*peer]);
    match row {
        Row::EofIgnore => c.assert_signal(st, SIGTERM, &[&*peer]),
        Row::Signal(sig) => c.assert_signal(st, sig, &[&*peer]),
        Row::Server(ServerEnd::Truncate) => c.assert_code(st, 3, &[&*peer]),
        _ => c.assert_code(st, quirk.and_then(|q| q.code).unwrap_or(0), &[&*peer]),
    }
    let outcome = match row {
        Row::Server(ServerEnd::Truncate) => "truncated",
        _ => quirk.and_then(|q| q.outcome).unwrap_or("clean"),
    };
    let report = c.assert_report(
        &[
            ("trigger", json!(row.trigger())),
            ("outcome", json!(outcome)),
        ],
        &[&*peer],
    );
    let phrases = quirk.map_or(&[][..], |q| q.messages);
    if !phrases.is_empty() {
        let stderr = c.stderr_text();
        assert!(
            phrases.iter().any(|p| stderr.contains(p)),
            "the client's message says none of {phrases:?}{}{}",
            c.dump(),
            peer.dump()
        );
    }
    if let Some(end) = quirk.and_then(|q| q.end).or(row.end()) {
        c.assert_report(&[("end", json!(end))], &[&*peer]);
    }
    if matches!(row, Row::EofWait | Row::EofHalfClose | Row::EofClose) {
        // No byte lost: the line came back whole, and nothing else.
        let want = format!("{LINE}\n");
        assert_eq!(
            c.stdout_text(),
            want,
            "stdout after stdin EOF{}{}",
            c.dump(),
            peer.dump()
        );
        c.assert_report(&[("bytes_in", json!(want.len()))], &[&*peer]);
    }
    let close_ms = report.get("close_ms").and_then(Value::as_u64);
    if row == Row::Server(ServerEnd::Truncate) {
        return Ok((format!("truncation reported · {}", exit_text(st)), close_ms));
    }
    assert_eq!(
        report.get("close_notify_sent"),
        Some(&json!(true)),
        "the report says no close_notify was sent{}{}",
        c.dump(),
        peer.dump()
    );
    let verdict = peer.next_verdict(WAIT);
    let expected = quirk
        .and_then(|q| q.verdict.clone())
        .unwrap_or(Verdict::CloseNotify);
    assert_eq!(
        verdict,
        expected,
        "{} did not see what it should of the client's close{}{}",
        peer.name(),
        c.dump(),
        peer.dump()
    );
    Ok((
        format!("{} · {}", verdict_text(&verdict), exit_text(st)),
        close_ms,
    ))
}

/// Plays `row` against a fresh peer of `col`; returns the cell and, when the
/// column's own peer played it, that peer's version.
fn run_cell(pki: &Pki, col: &Column, tls: Tls, row: Row) -> Option<(Cell, Option<String>)> {
    let mut peer = (col.start)(pki, tls, row)?;
    let name = peer.name();
    let quirk = (col.quirk)(row);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        play(pki, &mut *peer, row, quirk.as_ref())
    }));
    let mark = if quirk.is_some() { "⚠️" } else { "✅" };
    let cell = match result {
        Ok(Ok((text, close_ms))) => Cell {
            ok: true,
            text: format!("{mark} {text}"),
            note: quirk.as_ref().map(|q| q.note),
            close_ms,
            detail: String::new(),
        },
        Ok(Err(why)) => Cell {
            ok: true,
            text: format!("n/a: {why}"),
            note: None,
            close_ms: None,
            detail: String::new(),
        },
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            let first = msg.lines().next().unwrap_or("failed").to_string();
            Cell {
                ok: false,
                text: format!("❌ {first}"),
                note: None,
                close_ms: None,
                detail: msg,
            }
        }
    };
    let cell = if name == col.name {
        cell
    } else {
        Cell {
            text: format!("{} (played by {name})", cell.text),
            ..cell
        }
    };
    let version = (name == col.name).then(|| peer.version());
    Some((cell, version))
}

fn results_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("interop")
}

/// Runs a whole column and writes its JSON; fails if any cell failed.
fn column(col: Column, tls: Tls) {
    let pki = Pki::new();
    let mut cells = Vec::new();
    let mut failures = String::new();
    let mut version = String::new();
    for row in ROWS {
        let Some((cell, peer_version)) = run_cell(&pki, &col, tls, row) else {
            return;
        };
        if version.is_empty() {
            version = peer_version.unwrap_or_default();
        }
        println!(
            "{} {} | {} | {}{}{}",
            col.key,
            tls.number(),
            row.label(),
            cell.text,
            cell.note.map(|n| format!(" ({n})")).unwrap_or_default(),
            cell.close_ms
                .map(|ms| format!(" (close {ms} ms)"))
                .unwrap_or_default()
        );
        if !cell.ok {
            failures.push_str(&format!(
                "\n### {} / {}\n{}\n",
                row.label(),
                tls.number(),
                cell.detail
            ));
        }
        cells.push(json!({
            "row": row.label(),
            "ok": cell.ok,
            "text": cell.text,
            "note": cell.note,
            "close_ms": cell.close_ms,
        }));
    }
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create target/tmp/interop");
    let file = dir.join(format!("{}-{}.json", col.key, tls.number()));
    let doc = json!({
        "column": format!("{} {}", col.name, tls.number()),
        "key": col.key,
        "tls": tls.number(),
        "version": version,
        "cells": cells,
    });
    std::fs::write(&file, serde_json::to_string_pretty(&doc).expect("json"))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
    assert!(
        failures.is_empty(),
        "cells failed in column {} {}:{failures}",
        col.key,
        tls.number()
    );
}

/// One session of `program` against a fresh peer: a line, then stdin EOF.
/// Returns what the peer's referee saw.
fn tool_session(pki: &Pki, col: &Column, tls: Tls, program: &str) -> Option<Verdict> {
    let mut peer = (col.start)(pki, tls, Row::EofClose)?;
    let args: Vec<String> = match program {
        "socat" => vec![
            "-".into(),
            format!(
                "OPENSSL:127.0.0.1:{},cafile={},verify=1",
                peer.port(),
                pki.ca.display()
            ),
        ],
        _ => vec!["--ssl".into(), "127.0.0.1".into(), peer.port().to_string()],
    };
    let mut t = Tool::spawn(program, &args);
    if !peer.say(LINE) {
        use std::io::Write;
        let stdin = t.stdin.as_mut().expect("tool stdin");
        if let Err(e) = stdin.write_all(format!("{LINE}\n").as_bytes()) {
            panic!("cannot write to {program}: {e}{}{}", t.dump(), peer.dump());
        }
    }
    assert!(
        t.out.wait_for(LINE, WAIT),
        "{program} never got the line{}{}",
        t.dump(),
        peer.dump()
    );
    t.stdin = None;
    assert!(
        t.proc.wait_timeout(WAIT).is_some(),
        "{program} did not exit after stdin EOF{}{}",
        t.dump(),
        peer.dump()
    );
    Some(peer.next_verdict(WAIT))
}

/// The referee check: a client that sends close_notify (socat) and one that
/// ends with a bare FIN (ncat --ssl: `shutdown(SHUT_WR)` on stdin EOF, then
/// its close_notify fails with EPIPE) must be told apart, or the column's
/// cells prove nothing.
fn referee(col: Column, tls: Tls) {
    if !have_tool("socat", "socat") || !have_tool("ncat", "ncat") {
        return;
    }
    let pki = Pki::new();
    let Some(v) = tool_session(&pki, &col, tls, "socat") else {
        return;
    };
    assert_eq!(v, Verdict::CloseNotify, "{} judged socat's close", col.key);
    let Some(v) = tool_session(&pki, &col, tls, "ncat") else {
        return;
    };
    assert_eq!(v, Verdict::BareFin, "{} judged ncat's bare FIN", col.key);
    println!(
        "{} {}: socat close_notify, ncat bare FIN",
        col.key,
        tls.number()
    );
}

/// A column without quirks.
fn plain(key: &'static str, name: &'static str, start: Start) -> Column {
    Column {
        key,
        name,
        start,
        quirk: no_quirk,
    }
}

per_version! {
    s_server => |tls| column(plain("s_server", "openssl s_server", start_s_server), tls);
    nginx => |tls| column(Column { quirk: nginx_quirk, ..plain("nginx", "nginx", start_nginx) }, tls);
    gnutls => |tls| column(plain("gnutls", "gnutls-serv", start_gnutls), tls);
    jsse => |tls| column(plain("jsse", "JSSE", start_jsse), tls);
    go => |tls| column(plain("go", "Go crypto/tls", start_go), tls);
    rustls => |tls| column(plain("rustls", "rustls", start_rustls), tls);
}

per_version! {
    referee_s_server => |tls| referee(plain("s_server", "openssl s_server", start_s_server), tls);
    referee_nginx => |tls| referee(plain("nginx", "nginx", start_nginx), tls);
    referee_gnutls => |tls| referee(plain("gnutls", "gnutls-serv", start_gnutls), tls);
    referee_jsse => |tls| referee(plain("jsse", "JSSE", start_jsse), tls);
    referee_go => |tls| referee(plain("go", "Go crypto/tls", start_go), tls);
    referee_rustls => |tls| referee(plain("rustls", "rustls", start_rustls), tls);
}
