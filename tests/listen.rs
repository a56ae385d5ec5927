//! The server mode, refereed: `gracetls --listen` (one client, stdin and stdout) and
//! `--listen --keep-open --exec CMD` (many clients, a CMD each), ended every way a server
//! ends, with TLS 1.3 and 1.2, and each ending judged by clients of seven TLS stacks
//! (tests/referees/): `openssl s_client`, `gnutls-cli`, curl, Python `ssl`, Go
//! `crypto/tls`, rustls and Java JSSE. Each client says, by its own means, whether the
//! server's end came with close_notify; every cell asserts `close_notify` from the client
//! and, from the server's own report, that it sent one (and answered the client's).
//!
//! The endings: SIGTERM, SIGINT and SIGHUP to a `--listen`; its stdin's end (the default
//! `--on-eof wait`, after `--quiet-time`); the escape `~.`; `--idle-timeout`; the client's own close_notify,
//! answered; CMD exiting under `--keep-open`; and a drain (SIGTERM, SIGINT) under
//! `--keep-open`. The client's own close needs a client that can send close_notify and
//! still read: s_client, gnutls-cli and curl send it only as they exit, so those cells are
//! `n/a` and say so.
//!
//! `loss::` and `delay::` repeat every ending, TLS 1.3 and 1.2, with Python and Go as the
//! clients, under 5% TCP loss (a network namespace, root; see `common/netns.rs`) and 100 ms one-way
//! delay (the delaying proxy, `common/proxy.rs`), as the client's fault matrix does.
//!
//! Tests are named `<fault>::<ending>::<tls>::<client>`; each prints one `CELL` line.

// The shared `per_version!` is not used: this matrix names its own versions.
#[allow(unused_macros)]
mod common;
#[path = "referees/rustls.rs"]
mod rustls_referee;

use common::netns::{LossyNetns, netns_available};
use common::proxy::DelayProxy;
use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const REFEREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/referees/referee.py");
/// What the server sends each client: an HTTP/1.0 head (curl wants one) and the line the
/// referees wait for before the server is ended.
const GREETING: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nhello\n";
const GREETING_SH: &str = r"printf 'HTTP/1.0 200 OK\r\n\r\nhello\n'";
/// A JVM starting on a busy 2-core machine, or a handshake under loss.
const READY_WITHIN: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Referee {
    SClient,
    GnutlsCli,
    Curl,
    Python,
    Go,
    Rustls,
    Jsse,
}

impl Referee {
    fn name(self) -> &'static str {
        match self {
            Referee::SClient => "s_client",
            Referee::GnutlsCli => "gnutls-cli",
            Referee::Curl => "curl",
            Referee::Python => "python",
            Referee::Go => "go",
            Referee::Rustls => "rustls",
            Referee::Jsse => "jsse",
        }
    }

    /// Whether its tool is here; a missing one is a skip (a failure under CI).
    fn available(self) -> bool {
        have_tool("python3", "python3")
            && match self {
                Referee::SClient => have_tool("openssl", "openssl"),
                Referee::GnutlsCli => have_tool("gnutls-cli", "gnutls-bin"),
                Referee::Curl => have_tool("curl", "curl"),
                Referee::Go => have_tool("go", "golang-go"),
                Referee::Jsse => {
                    have_tool("java", "openjdk-17-jdk-headless")
                        && have_tool("javac", "openjdk-17-jdk-headless")
                }
                Referee::Python | Referee::Rustls => true,
            }
    }

    /// Whether it can send close_notify and then read the server's answer.
    fn can_close_first(self) -> bool {
        !matches!(self, Referee::SClient | Referee::GnutlsCli | Referee::Curl)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Sigterm,
    Sigint,
    Sighup,
    StdinEof,
    Escape,
    IdleTimeout,
    ClientClose,
    ExecExit,
    DrainSigterm,
    DrainSigint,
}

impl Ending {
    fn keep_open(self) -> bool {
        matches!(
            self,
            Ending::ExecExit | Ending::DrainSigterm | Ending::DrainSigint
        )
    }

    fn signal(self) -> Option<i32> {
        match self {
            Ending::Sigterm | Ending::DrainSigterm => Some(SIGTERM),
            Ending::Sigint | Ending::DrainSigint => Some(SIGINT),
            Ending::Sighup => Some(SIGHUP),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    Loss,
    Delay,
}

/// A referee client running; its `READY` and `VERDICT` lines arrive on `lines`.
struct RefereeRun {
    referee: Referee,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// Killed on drop.
    _proc: Option<Proc>,
    stderr: Capture,
}

impl RefereeRun {
    fn start(
        referee: Referee,
        prefix: &[&str],
        port: u16,
        ca: &Path,
        tls: Tls,
        close: bool,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let timeout = READY_WITHIN + Duration::from_secs(60);
        let stderr = Capture::new();
        if referee == Referee::Rustls {
            let options = rustls_referee::Options {
                host: "127.0.0.1".into(),
                port,
                ca: ca.to_path_buf(),
                tls: tls.number().into(),
                timeout,
                close,
                ready_text: "hello".into(),
            };
            std::thread::spawn(move || {
                rustls_referee::referee(&options, &mut |line| {
                    let _ = tx.send(line);
                })
            });
            return RefereeRun {
                referee,
                lines: rx,
                seen: Vec::new(),
                _proc: None,
                stderr,
            };
        }
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("python3");
                c
            }
            None => Command::new("python3"),
        };
        cmd.arg(REFEREE)
            .arg(referee.name())
            .args(["--port", &port.to_string(), "--tls", tls.number()])
            .arg("--ca")
            .arg(ca)
            .args(["--timeout", &timeout.as_secs().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if close {
            cmd.arg("--close");
        }
        let mut proc = Proc::spawn(referee.name(), &mut cmd)
            .unwrap_or_else(|e| panic!("cannot start the {} referee: {e}", referee.name()));
        let out = proc.child_mut().stdout.take().expect("piped stdout");
        stderr.attach(proc.child_mut().stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        RefereeRun {
            referee,
            lines: rx,
            seen: Vec::new(),
            _proc: Some(proc),
            stderr,
        }
    }

    /// The next line starting with `prefix`, within `within`.
    fn wait_line(&mut self, prefix: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        if let Some(line) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return Some(line.clone());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

impl Dump for RefereeRun {
    fn dump(&self) -> String {
        format!(
            "\n\n===== referee {} =====\n{}\n----- stderr -----\n{}\n",
            self.referee.name(),
            self.seen.join("\n"),
            show_bytes(&self.stderr.bytes(), 4_000)
        )
    }
}

/// `gracetls --listen 127.0.0.1:0 ...`, started, with the port it listens on.
fn start_server(pki: &Pki, tls: Tls, prefix: &[&str], extra: &[&str]) -> (Client, u16) {
    let mut args = vec![
        "--listen".to_string(),
        "127.0.0.1:0".into(),
        "--cert".into(),
        pki.server.cert.display().to_string(),
        "--key".into(),
        pki.server.key.display().to_string(),
        "--tls-min".into(),
        tls.number().into(),
        "--tls-max".into(),
        tls.number().into(),
        "-v".into(),
        "--report".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Client::spawn_in(prefix, &args);
    let marker = "listening on 127.0.0.1:";
    assert!(
        server.stderr.wait_for(marker, WAIT),
        "the server did not say where it listens{}",
        server.dump()
    );
    let text = server.stderr_text();
    let port = text
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {text:?}"));
    (server, port)
}

/// The per-connection JSON lines of a `--keep-open` server.
fn conn_reports(server: &Client) -> Vec<Value> {
    server
        .stderr_text()
        .lines()
        .filter(|l| l.starts_with("{\"client\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn cell(ending: Ending, tls: Tls, referee: Referee, fault: Fault) {
    let label = format!(
        "{fault:?} {ending:?} TLS {} {}",
        tls.number(),
        referee.name()
    );
    if !referee.available() {
        return;
    }
    if ending == Ending::ClientClose && !referee.can_close_first() {
        println!(
            "CELL {label}: n/a ({} sends close_notify only as it exits)",
            referee.name()
        );
        return;
    }
    let ns = match fault {
        Fault::Loss if !netns_available() => return,
        Fault::Loss => Some(LossyNetns::new(5)),
        _ => None,
    };
    let prefix: Vec<&str> = ns.as_ref().map(|n| n.prefix().to_vec()).unwrap_or_default();
    let pki = Pki::new();
    let slow = fault != Fault::None;
    let mut extra: Vec<String> = Vec::new();
    if slow {
        extra.extend(["--connect-timeout", "20s", "--close-timeout", "10s"].map(String::from));
    }
    match ending {
        Ending::StdinEof => extra.extend(["--quiet-time", "1s"].map(String::from)),
        // From a pipe the escape is data unless asked for, as on a terminal it is not.
        Ending::Escape => extra.extend(["--escape", "~"].map(String::from)),
        Ending::IdleTimeout => extra.extend(["--idle-timeout", "1s"].map(String::from)),
        Ending::ExecExit => {
            extra.extend(["--keep-open", "--exec"].map(String::from));
            extra.push(format!("{GREETING_SH}; sleep 1"));
        }
        Ending::DrainSigterm | Ending::DrainSigint => {
            extra.extend(["--keep-open", "--exec"].map(String::from));
            extra.push(format!("{GREETING_SH}; exec sleep 60"));
            extra.extend(["--drain-timeout", if slow { "10s" } else { "3s" }].map(String::from));
        }
        _ => {}
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (mut server, port) = start_server(&pki, tls, &prefix, &extra);
    if !ending.keep_open() {
        server.write_stdin(GREETING, &[]);
    }
    let proxy =
        (fault == Fault::Delay).then(|| DelayProxy::start(port, Duration::from_millis(100)));
    let client_port = proxy.as_ref().map_or(port, |p| p.port);
    let close_first = ending == Ending::ClientClose;
    let mut referee = RefereeRun::start(referee, &prefix, client_port, &pki.ca, tls, close_first);
    let ready = referee.wait_line("READY", READY_WITHIN);
    assert!(
        ready.is_some(),
        "{label}: the client never got the greeting{}",
        dumps(&[&referee, &server])
    );
    let triggered = Instant::now();
    match ending {
        Ending::StdinEof => server.close_stdin(),
        Ending::Escape => server.write_stdin(b"~.\n", &[&referee]),
        _ => {
            if let Some(sig) = ending.signal() {
                server.signal(sig);
            }
        }
    }
    let within = Duration::from_secs(if slow { 40 } else { 15 });
    let verdict = referee.wait_line("VERDICT", within);
    let Some(verdict) = verdict else {
        panic!(
            "{label}: no verdict within {within:?}{}",
            dumps(&[&referee, &server])
        );
    };
    let seen_ms = triggered.elapsed().as_millis();
    let what = verdict.split_whitespace().nth(1).unwrap_or("");
    assert_eq!(
        what,
        "close_notify",
        "{label}: the client saw {verdict}{}",
        dumps(&[&referee, &server])
    );

    // The server's side: how it ended, and its report.
    if ending == Ending::ExecExit {
        // The connection ended; the server goes on until told to stop.
        assert!(
            server.stderr.wait_for("{\"client\"", WAIT),
            "{label}: no connection report{}",
            dumps(&[&referee, &server])
        );
        server.signal(SIGTERM);
    }
    let status = server.wait_exit(within, &[&referee]);
    let ctx: [&dyn Dump; 2] = [&referee, &server];
    server.assert_no_panic(&ctx);
    match ending.signal() {
        Some(sig) => server.assert_signal(status, sig, &ctx),
        None if ending == Ending::ExecExit => server.assert_signal(status, SIGTERM, &ctx),
        None => server.assert_code(status, 0, &ctx),
    }
    if ending.keep_open() {
        let reports = conn_reports(&server);
        assert_eq!(
            reports.len(),
            1,
            "{label}: one report per connection{}",
            dumps(&ctx)
        );
        let r = &reports[0];
        let trigger = if ending == Ending::ExecExit {
            "exec-exit"
        } else {
            "drain"
        };
        assert_eq!(r["trigger"], trigger, "{label}: {r}{}", dumps(&ctx));
        assert_eq!(r["close_notify_sent"], true, "{label}: {r}{}", dumps(&ctx));
    } else {
        let trigger = match ending {
            Ending::StdinEof => "stdin-eof",
            Ending::Escape => "escape",
            Ending::IdleTimeout => "idle-timeout",
            Ending::ClientClose => "peer-close-notify",
            _ => "signal",
        };
        let mut expected = vec![
            ("trigger", json!(trigger)),
            ("close_notify_sent", json!(true)),
        ];
        if ending == Ending::ClientClose {
            expected.push(("close_notify_received", json!(true)));
        }
        server.assert_report(&expected, &ctx);
    }
    println!(
        "CELL {label}: client {what} {seen_ms} ms after the trigger; server {}",
        describe_status(Some(status))
    );
}

macro_rules! clients {
    ($fault:expr, $ending:expr, $tls:expr; $($client:ident => $r:expr,)*) => {$(
        #[test]
        fn $client() {
            cell($ending, $tls, $r, $fault)
        }
    )*};
}

macro_rules! every_client {
    ($fault:expr, $ending:expr, $tls:expr) => {
        clients! { $fault, $ending, $tls;
            s_client => Referee::SClient,
            gnutls_cli => Referee::GnutlsCli,
            curl => Referee::Curl,
            python => Referee::Python,
            go => Referee::Go,
            rustls => Referee::Rustls,
            jsse => Referee::Jsse,
        }
    };
}

macro_rules! some_clients {
    ($fault:expr, $ending:expr, $tls:expr) => {
        clients! { $fault, $ending, $tls;
            python => Referee::Python,
            go => Referee::Go,
        }
    };
}

macro_rules! endings {
    ($fault:expr, $clients:ident; $($name:ident => $ending:expr,)*) => {$(
        mod $name {
            use super::*;
            mod tls1_3 {
                use super::*;
                $clients!($fault, $ending, Tls::V13);
            }
            mod tls1_2 {
                use super::*;
                $clients!($fault, $ending, Tls::V12);
            }
        }
    )*};
}

/// Every ending of the matrix, for the clients `$clients` names, under `$fault`.
macro_rules! every_ending {
    ($fault:expr, $clients:ident) => {
        endings! { $fault, $clients;
            sigterm => Ending::Sigterm,
            sigint => Ending::Sigint,
            sighup => Ending::Sighup,
            stdin_eof => Ending::StdinEof,
            escape => Ending::Escape,
            idle_timeout => Ending::IdleTimeout,
            client_close => Ending::ClientClose,
            exec_exit => Ending::ExecExit,
            drain_sigterm => Ending::DrainSigterm,
            drain_sigint => Ending::DrainSigint,
        }
    };
}

mod clean {
    use super::*;
    every_ending!(Fault::None, every_client);
}

mod loss {
    use super::*;
    every_ending!(Fault::Loss, some_clients);
}

mod delay {
    use super::*;
    every_ending!(Fault::Delay, some_clients);
}

/// `--ca-file` with `--listen` requires a client certificate signed by that CA: the client
/// mode with `--cert` is served (and the report shows its certificate), one without is
/// passed over with a warning, as any failed handshake is.
#[test]
fn client_certificate_required() {
    let pki = Pki::new();
    let ca = pki.ca.display().to_string();
    let (mut server, port) = start_server(&pki, Tls::V13, &[], &["--ca-file", &ca]);
    server.write_stdin(GREETING, &[]);
    let target = format!("localhost:{port}");
    let mut anonymous = Client::spawn(["--ca-file", &ca, &target]);
    let status = anonymous.wait_exit(WAIT, &[&server]);
    anonymous.assert_code(status, 1, &[&server]);
    assert!(
        server.stderr.wait_for("waiting for the next client", WAIT),
        "{}",
        server.dump()
    );
    let cert = pki.client.cert.display().to_string();
    let key = pki.client.key.display().to_string();
    let mut client = Client::spawn(["--ca-file", &ca, "--cert", &cert, "--key", &key, &target]);
    assert!(
        client.stdout.wait_for("hello", WAIT),
        "{}",
        dumps(&[&client, &server])
    );
    client.close_stdin();
    let status = client.wait_exit(WAIT, &[&server]);
    client.assert_code(status, 0, &[&server]);
    let status = server.wait_exit(WAIT, &[&client]);
    server.assert_code(status, 0, &[&client]);
    let report = server.assert_report(&[("close_notify_sent", json!(true))], &[&client]);
    let subject = &report["session"]["certificate"]["subject"];
    assert!(subject.as_str().is_some_and(|s| !s.is_empty()), "{report}");
}

const TLS_CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/tls_clients.py");

/// `--keep-open --exec` with many clients connected, each with its own CMD, drained on
/// SIGTERM: every client sees close_notify (its own verdict), the server reports a clean
/// `drain` per connection, and ends by SIGTERM within the drain timeout.
/// `GRACETLS_LISTEN_DRAIN_CLIENTS` sets how many (default 100).
#[test]
fn drain_many_clients() {
    if !have_tool("python3", "python3") {
        return;
    }
    let n: usize = std::env::var("GRACETLS_LISTEN_DRAIN_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let pki = Pki::new();
    let max = (n + 10).to_string();
    let (mut server, port) = start_server(
        &pki,
        Tls::V13,
        &[],
        &[
            "--keep-open",
            "--exec",
            "exec sleep 120",
            "--max-conns",
            &max,
            "--drain-timeout",
            "10s",
        ],
    );
    let mut cmd = Command::new("python3");
    cmd.arg(TLS_CLIENTS)
        .args([
            "--port",
            &port.to_string(),
            "--behave",
            "polite",
            "-n",
            &n.to_string(),
        ])
        .args(["--timeout", "120"])
        .arg("--ca")
        .arg(&pki.ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut clients = Proc::spawn("tls_clients.py", &mut cmd).expect("start python3");
    let out = Capture::new();
    out.attach(clients.child_mut().stdout.take().expect("piped stdout"));
    let within = Duration::from_secs(120);
    assert!(
        out.wait_for("READY", within),
        "clients not ready: {}{}",
        out.text(),
        server.dump()
    );
    // Every session is up once the server has started every CMD: -v logs each connection.
    assert!(
        server
            .stderr
            .wait_for_count("connected to client", n, within),
        "not all {n} clients connected{}",
        server.dump()
    );
    let pid = server.proc.pid();
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Threads:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    let rss_kib = vm_kib(pid, "VmRSS:").unwrap_or(0);
    let triggered = Instant::now();
    server.signal(SIGTERM);
    let status = server.wait_exit(within, &[]);
    let drain = triggered.elapsed();
    server.assert_signal(status, SIGTERM, &[]);
    assert!(
        out.wait_for("DONE", within),
        "clients did not finish: {}",
        out.text()
    );
    let verdicts: Vec<Value> = out
        .text()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let clean_clients = verdicts
        .iter()
        .filter(|v| v["verdict"] == "close_notify")
        .count();
    let reports = conn_reports(&server);
    let clean_server = reports
        .iter()
        .filter(|r| {
            r["trigger"] == "drain" && r["outcome"] == "clean" && r["close_notify_sent"] == true
        })
        .count();
    println!(
        "DRAIN {n} clients: SIGTERM to exit {} ms; before it {threads} threads, {rss_kib} KiB RSS; clients saw close_notify: {clean_client}/{n}; server clean drains: {clean_server}/{}",
        drain.as_millis(),
        reports.len(),
        clean_client = clean_clients
    );
    assert_eq!(clean_clients, n, "client verdicts: {}", out.text());
    if clean_server != n {
        // Which clients have no clean drain line, and what the server said of them.
        let text = server.stderr_text();
        let missing: Vec<String> = verdicts
            .iter()
            .filter_map(|v| v["local_port"].as_u64())
            .map(|p| format!("127.0.0.1:{p}"))
            .filter(|c| {
                !reports
                    .iter()
                    .any(|r| r["client"] == c.as_str() && r["outcome"] == "clean")
            })
            .map(|c| {
                let said: Vec<&str> = text.lines().filter(|l| l.contains(&c)).collect();
                format!("{c}: {said:?}")
            })
            .collect();
        panic!(
            "{clean_server} clean drains of {n}; without one:\n{}",
            missing.join("\n")
        );
    }
    assert!(
        drain < Duration::from_secs(11),
        "the drain took {drain:?}, past its 10 s bound"
    );
}

/// The client's own ends, judged by the server: a bare FIN is exit 3 with `possible
/// truncation` naming the client; a client that sends garbage instead of a ClientHello is a
/// warning, and the server waits for the next client.
#[test]
fn client_truncation_is_exit_3() {
    if !have_tool("python3", "python3") {
        return;
    }
    let pki = Pki::new();
    // Nothing sent to the client: data it left unread would make its kernel reset, not
    // end, the connection.
    let (mut server, port) = start_server(&pki, Tls::V12, &[], &[]);
    for behave in ["garbage", "truncate"] {
        let mut cmd = Command::new("python3");
        cmd.arg(TLS_CLIENTS)
            .args([
                "--port",
                &port.to_string(),
                "--behave",
                behave,
                "--timeout",
                "30",
            ])
            .arg("--ca")
            .arg(&pki.ca)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut client = Proc::spawn("tls_clients.py", &mut cmd).expect("start python3");
        client.wait_timeout(Duration::from_secs(30));
    }
    let status = server.wait_exit(WAIT, &[]);
    server.assert_code(status, 3, &[]);
    server.assert_report(
        &[
            ("trigger", json!("peer-eof")),
            ("outcome", json!("truncated")),
            ("close_notify_sent", json!(true)),
            ("close_notify_received", json!(false)),
        ],
        &[],
    );
    let text = server.stderr_text();
    assert!(
        text.contains("waiting for the next client"),
        "{}",
        server.dump()
    );
    assert!(
        text.contains("possible truncation: client 127.0.0.1:")
            && text.contains("closed TCP without close_notify"),
        "{}",
        server.dump()
    );
}

/// What cannot be served is said in one line before any client: a port in use (exit 1),
/// a missing key (exit 2), a client-only option (exit 2).
#[test]
fn server_setup_errors_are_one_line() {
    let pki = Pki::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port().to_string();
    let cert = pki.server.cert.display().to_string();
    let key = pki.server.key.display().to_string();
    let at = format!("127.0.0.1:{taken_port}");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--listen", &at, "--cert", &cert, "--key", &key],
            1,
            "cannot listen on",
        ),
        (
            vec![
                "--listen",
                "0",
                "--cert",
                &cert,
                "--key",
                "/nonexistent/key.pem",
            ],
            2,
            "/nonexistent/key.pem",
        ),
        (
            vec![
                "--listen",
                "0",
                "--cert",
                &cert,
                "--key",
                &key,
                "--insecure",
            ],
            2,
            "cannot be used with",
        ),
        (
            vec![
                "--listen", "0", "--cert", &cert, "--key", &key, "--exec", "cat",
            ],
            2,
            "--keep-open",
        ),
    ];
    for (args, code, expected) in cases {
        let mut c = Client::spawn(&args);
        c.close_stdin();
        let st = c.wait_exit(WAIT, &[]);
        c.assert_no_panic(&[]);
        c.assert_code(st, code, &[]);
        let err = c.stderr_text();
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("gracetls: error: ") && err.contains(expected),
            "{args:?}: expected `gracetls: error: ...{expected}...`{}",
            c.dump()
        );
    }
    drop(taken);
}

/// Starts `n` clients of tests/peers/tls_clients.py behaving as `behave`; stdout captured.
fn hostile_clients(port: u16, ca: &Path, behave: &str, n: usize) -> (Proc, Capture) {
    let mut cmd = Command::new("python3");
    cmd.arg(TLS_CLIENTS)
        .args([
            "--port",
            &port.to_string(),
            "--behave",
            behave,
            "-n",
            &n.to_string(),
        ])
        .args(["--hold", "30", "--timeout", "60"])
        .arg("--ca")
        .arg(ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn(behave, &mut cmd).expect("start python3");
    let out = Capture::new();
    out.attach(proc.child_mut().stdout.take().expect("piped stdout"));
    (proc, out)
}

/// A drain with hostile clients: one that never reads while its CMD writes 8 MiB, one that
/// reads but never sends close_notify, one stalled in the middle of its handshake, one
/// sending garbage, beside a polite one. The drain still ends within `--drain-timeout`
/// (plus the exit), the polite client sees close_notify, and every session the drain
/// closed has its report: `close-timeout` for the one that never reads (our close_notify
/// could not be sent past its full window), close_notify sent to the other two.
#[test]
fn drain_with_hostile_clients() {
    if !have_tool("python3", "python3") {
        return;
    }
    let pki = Pki::new();
    let cmd = "head -c 8388608 /dev/zero; exec sleep 60";
    let (mut server, port) = start_server(
        &pki,
        Tls::V13,
        &[],
        &["--keep-open", "--exec", cmd, "--drain-timeout", "2s"],
    );
    let mut started = Vec::new();
    for behave in ["noread", "silent", "stall", "garbage", "polite"] {
        let (proc, out) = hostile_clients(port, &pki.ca, behave, 1);
        assert!(
            out.wait_for("READY", WAIT),
            "{behave}: not ready: {}",
            out.text()
        );
        started.push((behave, proc, out));
    }
    // The three whose handshake ended have their CMD running (garbage was refused).
    assert!(
        server.stderr.wait_for_count("connected to client", 3, WAIT),
        "{}",
        server.dump()
    );
    let triggered = Instant::now();
    server.signal(SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10), &[]);
    let took = triggered.elapsed();
    server.assert_signal(status, SIGTERM, &[]);
    assert!(
        took < Duration::from_millis(3_500),
        "the drain took {took:?}{}",
        server.dump()
    );
    let polite = &started[4].2;
    assert!(polite.wait_for("DONE", WAIT), "{}", polite.text());
    assert!(
        polite.text().contains("\"verdict\": \"close_notify\""),
        "{}",
        polite.text()
    );
    let reports = conn_reports(&server);
    let drained = reports.iter().filter(|r| r["trigger"] == "drain").count();
    assert_eq!(
        drained,
        3,
        "noread, silent and polite are drained{}",
        server.dump()
    );
    // The client that never reads holds our close_notify behind its full window: the
    // close times out with it unsent; the other two got it.
    let stuck = reports
        .iter()
        .filter(|r| r["outcome"] == "close-timeout")
        .count();
    let sent = reports
        .iter()
        .filter(|r| r["trigger"] == "drain" && r["close_notify_sent"] == true)
        .count();
    assert_eq!((stuck, sent), (1, 2), "{}", server.dump());
    println!(
        "HOSTILE drain {} ms; outcomes: {}",
        took.as_millis(),
        reports
            .iter()
            .map(|r| format!("{} {}", r["trigger"], r["outcome"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// `--max-conns 1`: a second client's handshake waits until the first's session has ended
/// (its TCP connect succeeds, the kernel queues it), then it is served in turn.
#[test]
fn max_conns_queues_the_next_client() {
    if !Referee::Python.available() {
        return;
    }
    let pki = Pki::new();
    let cmd = format!("{GREETING_SH}; sleep 1");
    let (mut server, port) = start_server(
        &pki,
        Tls::V13,
        &[],
        &["--keep-open", "--exec", &cmd, "--max-conns", "1"],
    );
    let mut first = RefereeRun::start(Referee::Python, &[], port, &pki.ca, Tls::V13, false);
    assert!(
        first.wait_line("READY", WAIT).is_some(),
        "{}",
        dumps(&[&first, &server])
    );
    let mut second = RefereeRun::start(Referee::Python, &[], port, &pki.ca, Tls::V13, false);
    let first_verdict = first.wait_line("VERDICT", WAIT).unwrap_or_default();
    assert!(
        first_verdict.starts_with("VERDICT close_notify"),
        "{first_verdict}"
    );
    assert!(
        second.wait_line("READY", WAIT).is_some(),
        "{}",
        dumps(&[&second, &server])
    );
    let second_verdict = second.wait_line("VERDICT", WAIT).unwrap_or_default();
    assert!(
        second_verdict.starts_with("VERDICT close_notify"),
        "{second_verdict}"
    );
    server.signal(SIGTERM);
    let status = server.wait_exit(WAIT, &[]);
    server.assert_signal(status, SIGTERM, &[]);
    let reports = conn_reports(&server);
    assert_eq!(reports.len(), 2, "{}", server.dump());
    assert!(
        reports.iter().all(|r| r["trigger"] == "exec-exit"),
        "{}",
        server.dump()
    );
    // One at a time: the second session began after the first ended, so the two lasted
    // about a second each rather than overlapping.
    let text = server.stderr_text();
    let first_end = text.find("close after exec-exit").unwrap_or(usize::MAX);
    let second_start = text.rfind("connected to client").unwrap_or(0);
    assert!(
        second_start > first_end,
        "the second client was served before the first ended{}",
        server.dump()
    );
}

/// On a terminal the escape needs no flag: `~.` typed at a `--listen` (under `script`, which
/// gives it a pseudo-terminal) closes with close_notify, and `~.` is not sent.
#[test]
fn escape_on_a_terminal() {
    if !have_tool("script", "bsdutils") || !Referee::Python.available() {
        return;
    }
    let pki = Pki::new();
    let command = format!(
        "{GRACETLS} --listen 127.0.0.1:0 --cert {} --key {} -v --report json",
        pki.server.cert.display(),
        pki.server.key.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut term = Proc::spawn("script", &mut cmd).expect("start script");
    let mut keys = term.child_mut().stdin.take().expect("piped stdin");
    let screen = Capture::new();
    screen.attach(term.child_mut().stdout.take().expect("piped stdout"));
    let marker = "listening on 127.0.0.1:";
    assert!(screen.wait_for(marker, WAIT), "{}", screen.text());
    let port: u16 = screen
        .text()
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("the port");
    let mut client = RefereeRun::start(Referee::Python, &[], port, &pki.ca, Tls::V13, false);
    assert!(
        client.stdin_ready_after(&mut keys, b"hello\n"),
        "{}{}",
        client.dump(),
        screen.text()
    );
    keys.write_all(b"~.\n").expect("type ~.");
    let verdict = client.wait_line("VERDICT", WAIT).unwrap_or_default();
    assert!(
        verdict.starts_with("VERDICT close_notify"),
        "{verdict}{}",
        screen.text()
    );
    assert!(term.wait_timeout(WAIT).is_some(), "{}", screen.text());
    assert!(
        screen.wait_for("\"trigger\":\"escape\"", WAIT),
        "{}",
        screen.text()
    );
    assert!(
        screen.text().contains("\"exit_code\":0"),
        "{}",
        screen.text()
    );
    assert!(
        screen.text().contains("\"bytes_out\":6,"),
        "~. was sent: {}",
        screen.text()
    );
}

impl RefereeRun {
    /// Types `line` (the greeting the referee waits for) and waits for its READY.
    fn stdin_ready_after(&mut self, keys: &mut impl Write, line: &[u8]) -> bool {
        keys.write_all(line).is_ok() && self.wait_line("READY", WAIT).is_some()
    }
}
