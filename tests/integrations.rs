//! The integration examples (`examples/ureq_connector.rs`, ...) run as built, against real
//! servers, and the servers' logs say how each connection ended.
//!
//! Each test builds its example first (`cargo build --example NAME`: a no-op when
//! `cargo test` already built the examples), then runs it as a child with bounded waits.

#![allow(unused_macros)]

#[macro_use]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::dovecot::{DOVECOT_CLOSE_NOTIFY, DOVECOT_SSL_ERROR, Dovecot};
use common::nginx_http::{NginxHttp, STATIC_BODY, UPSTREAM_DELAY};
use common::*;

/// Builds example `name` with the profile of this test and returns its path.
fn example(name: &str) -> PathBuf {
    let dir = PathBuf::from(GRACETLS).with_file_name("examples");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // What cargo set for this test (the package's CARGO_PKG_*, CARGO_MANIFEST_DIR, ...) would
    // look like a changed environment to the build scripts that watch it: a rebuild each run.
    for (var, _) in std::env::vars_os() {
        let keep = ["CARGO_HOME", "CARGO_TARGET_DIR"].map(std::ffi::OsString::from);
        if var.to_string_lossy().starts_with("CARGO_") && !keep.contains(&var) {
            cargo.env_remove(var);
        }
    }
    if dir.parent().and_then(|p| p.file_name()) == Some("release".as_ref()) {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "cargo build --example {name}: {status}");
    dir.join(name)
}

/// Runs an example to its end (bounded by [`WAIT`]) and returns it with its output.
fn run(name: &str, args: &[String], ctx: &[&dyn Dump]) -> Tool {
    let mut t = Tool::spawn(example(name).to_str().expect("UTF-8 path"), args);
    drop(t.stdin.take());
    let st = t.proc.wait_timeout(WAIT);
    assert!(
        t.out.wait_eof(WAIT) && t.err.wait_eof(WAIT),
        "no end of output{}{}",
        t.dump(),
        dumps(ctx)
    );
    assert!(
        st.is_some_and(|s| s.success()),
        "example {name} failed{}{}",
        t.dump(),
        dumps(ctx)
    );
    t
}

/// ureq 2 with the gracetls connector fetches from nginx; ureq's pool drops the connection
/// with the agent, and nginx logs the close_notify of a keep-alive client.
#[test]
fn ureq_connector_against_nginx() {
    let pki = Pki::new();
    let Some(ng) = NginxHttp::start(&pki.server) else {
        return;
    };
    let uri = "/static/ureq";
    let url = format!("https://localhost:{}{uri}", ng.port);
    let ca = pki.ca.display().to_string();
    let t = run("ureq_connector", &[url, "--ca-file".into(), ca], &[&ng]);
    assert_eq!(t.out.text(), STATIC_BODY, "{}{}", t.dump(), ng.dump());
    assert!(t.err.text().contains("Clean"), "{}", t.dump());
    let access = ng.access_for(uri, WAIT, &[&t]);
    assert_eq!(access.status, 200, "{}{}", t.dump(), ng.dump());
    assert!(
        ng.wait_conn_log(access.conn, "closed keepalive connection", WAIT),
        "nginx never saw the close_notify of *{}{}{}",
        access.conn,
        t.dump(),
        ng.dump()
    );
    let bad: Vec<String> = ng
        .conn_log(access.conn)
        .into_iter()
        .filter(|l| l.contains("[crit]") || l.contains("[error]") || l.contains("unexpected eof"))
        .collect();
    assert!(bad.is_empty(), "nginx logged errors: {bad:#?}{}", ng.dump());
}

/// tungstenite over one `Stream` shared by a reading and a writing thread, closed from the
/// main thread while the reader is blocked: every echo arrives, and the server (rustls)
/// reads close_notify.
#[test]
fn websocket_shared_against_websocket_server() {
    let dir = TempDir::new("websocket");
    let ca = dir.path().join("ca.pem").display().to_string();
    let server_path = example("websocket_server");
    let server = Tool::spawn(
        server_path.to_str().expect("UTF-8 path"),
        &["--ca-out".into(), ca.clone()],
    );
    assert!(
        server.out.wait_for("listening on 127.0.0.1:", WAIT),
        "{}",
        server.dump()
    );
    let text = server.out.text();
    let port = text
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {text:?}"));
    let t = run(
        "websocket_shared",
        &[format!("localhost:{port}"), ca],
        &[&server],
    );
    assert!(
        t.out.text().starts_with("< one\n< two\n< three\n"),
        "{}",
        t.dump()
    );
    assert!(
        server
            .out
            .wait_for("#0: client sent close_notify: CLEAN", WAIT),
        "the server never read close_notify{}{}",
        t.dump(),
        server.dump()
    );
}

/// The `imap` crate over STARTTLS against Dovecot: LOGIN, SELECT INBOX, LOGOUT, then the
/// close; Dovecot logs the session's logout and our close_notify, and no TLS error.
#[test]
fn imap_against_dovecot() {
    let pki = Pki::new();
    let Some(dv) = Dovecot::start(&pki.server) else {
        return;
    };
    let mark = dv.log.mark();
    let args = [
        format!("localhost:{}", dv.imap),
        "alice".into(),
        "pass".into(),
        pki.ca.display().to_string(),
    ];
    let t = run("imap", &args, &[&dv]);
    assert!(
        t.out.text().starts_with("INBOX: 0 messages\n"),
        "{}",
        t.dump()
    );
    assert!(t.out.contains("outcome: Clean"), "{}", t.dump());
    assert!(
        dv.log
            .wait_for_since(mark, "Disconnected: Logged out", WAIT),
        "Dovecot logged no logout{}{}",
        t.dump(),
        dv.dump()
    );
    let log = dv.log.since(mark);
    assert!(
        log.contains(DOVECOT_CLOSE_NOTIFY)
            && !log.contains(DOVECOT_SSL_ERROR)
            && !log.contains("Error:")
            && !log.contains("no auth attempts"),
        "Dovecot did not log a clean end{}{}",
        t.dump(),
        dv.dump()
    );
}

/// The example's connector, in process: ureq's per-request timeout reaches a pooled
/// connection through `ReadWrite::socket()` (ureq sets it on the socket before each read),
/// so a slow answer on a reused connection fails at the timeout, not when the answer comes.
#[allow(dead_code)]
#[path = "../examples/ureq_connector.rs"]
mod ureq_connector;

#[test]
fn ureq_timeout_on_a_reused_connection() {
    let pki = Pki::new();
    let Some(ng) = NginxHttp::start(&pki.server) else {
        return;
    };
    let timeout = UPSTREAM_DELAY / 4;
    let config = gracetls::Config::new().with_ca_file(&pki.ca);
    let agent = ureq::AgentBuilder::new()
        .tls_connector(std::sync::Arc::new(ureq_connector::Gracetls(config)))
        .build();
    let base = format!("https://localhost:{}", ng.port);
    // The first request's timeout is long, and ureq leaves what remains of it on the socket:
    // only a socket() that reaches the socket lets the second request's short one replace it.
    let body = agent
        .get(&format!("{base}/static/first"))
        .timeout(UPSTREAM_DELAY * 5)
        .call();
    assert_eq!(
        body.ok().and_then(|r| r.into_string().ok()).as_deref(),
        Some(STATIC_BODY),
        "{}",
        ng.dump()
    );
    let started = Instant::now();
    let slow = agent
        .get(&format!("{base}/slow/second"))
        .timeout(timeout)
        .call();
    let took = started.elapsed();
    eprintln!("UREQ a {timeout:?} timeout on a reused connection ended the request after {took:?}");
    assert!(
        slow.is_err() && took >= timeout && took < UPSTREAM_DELAY,
        "a {timeout:?} timeout ended the slow request after {took:?}: {slow:?}{}",
        ng.dump()
    );
    let first = ng.access_for("/static/first", WAIT, &[]);
    let second = ng.access_for("/slow/second", WAIT + UPSTREAM_DELAY, &[]);
    assert_eq!(
        first.conn,
        second.conn,
        "not the reused connection{}",
        ng.dump()
    );
}
