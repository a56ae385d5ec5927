//! gracetls as an HTTPS client, `printf 'GET ...' | gracetls` style, against
//! nginx (`tests/common/nginx_http.rs`) and an echo server that never closes.
//!
//! With the default `--on-eof wait` a request piped in gets its whole answer:
//! gracetls sends nothing at stdin EOF and ends when nginx closes (HTTP/1.0:
//! nginx sends close_notify) or when nothing has moved for `--quiet-time`
//! (keep-alive: nginx waits for the next request). nginx's access log must
//! show 200 for every request, and 20 runs in a row the same exit code.
//!
//! `--on-eof half-close` (close_notify and FIN at EOF) is kept as a recorded
//! behaviour: nginx takes the FIN for a client that gave up while it waited
//! for the upstream, logs 499 and drops the answer.
//!
//! `cargo test --test http -- --nocapture` prints one `HTTP ...` or `ECHO ...`
//! summary line per case.

#[macro_use]
mod common;

use common::nginx_http::{Access, NginxHttp, SLOW_BODY, STATIC_BODY, UPSTREAM_DELAY};
use common::*;
use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs per case; all must end with the same exit code.
const REPEATS: usize = 20;
/// `--quiet-time` of the keep-alive repeats after the first run (which uses
/// the default, 2 s): above [`UPSTREAM_DELAY`], so that the wait for the
/// proxied answer is never taken for the end.
const REPEAT_QUIET: &str = "1500ms";
/// The default `--quiet-time`.
const DEFAULT_QUIET: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Location {
    Static,
    Slow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    /// `GET ... HTTP/1.0`: nginx answers and closes.
    Http10,
    /// `GET ... HTTP/1.1` with `Connection: keep-alive`: nginx answers and
    /// waits for the next request.
    KeepAlive,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    location: Location,
    request: Request,
    tls: Tls,
}

impl Case {
    fn name(self) -> String {
        format!(
            "{}/{}/TLS{}",
            match self.location {
                Location::Static => "static",
                Location::Slow => "slow-proxy",
            },
            match self.request {
                Request::Http10 => "HTTP1.0",
                Request::KeepAlive => "HTTP1.1-keep-alive",
            },
            self.tls.number()
        )
    }

    /// A URI of its own per run, to find the run in the access log.
    fn uri(self, run: &str) -> String {
        let path = match self.location {
            Location::Static => "/static",
            Location::Slow => "/slow",
        };
        format!("{path}?run={run}")
    }

    fn request_text(self, uri: &str) -> String {
        match self.request {
            Request::Http10 => format!("GET {uri} HTTP/1.0\r\nHost: localhost\r\n\r\n"),
            Request::KeepAlive => {
                format!("GET {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
            }
        }
    }

    fn body(self) -> &'static str {
        match self.location {
            Location::Static => STATIC_BODY,
            Location::Slow => SLOW_BODY,
        }
    }

    /// The report's `end` with the default `--on-eof wait`.
    fn end(self) -> &'static str {
        match self.request {
            Request::Http10 => "server-close-notify",
            Request::KeepAlive => "quiet",
        }
    }
}

fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for location in [Location::Static, Location::Slow] {
        for request in [Request::Http10, Request::KeepAlive] {
            for tls in [Tls::V12, Tls::V13] {
                cases.push(Case {
                    location,
                    request,
                    tls,
                });
            }
        }
    }
    cases
}

/// `--tls-min V --tls-max V`: nginx offers both versions, the client picks.
fn tls_flags(tls: Tls) -> [&'static str; 4] {
    let v = tls.number();
    ["--tls-min", v, "--tls-max", v]
}

/// One gracetls run: the request piped in, stdin closed, the exit awaited.
struct Run {
    c: Client,
    status: std::process::ExitStatus,
    access: Access,
    ms: u128,
}

fn run_request(
    ng: &NginxHttp,
    pki: &Pki,
    case: Case,
    run: &str,
    flags: &[&str],
    timeout: Duration,
) -> Run {
    let uri = case.uri(run);
    let mut all: Vec<&str> = tls_flags(case.tls).to_vec();
    all.extend_from_slice(flags);
    let started = Instant::now();
    let mut c = Client::spawn_with_input(
        client_args(pki, "127.0.0.1", ng.port, &all),
        case.request_text(&uri).as_bytes(),
    );
    let status = c.wait_exit(timeout, &[ng]);
    let ms = started.elapsed().as_millis();
    c.assert_no_panic(&[ng]);
    let access = ng.access_for(&uri, WAIT, &[&c]);
    Run {
        c,
        status,
        access,
        ms,
    }
}

/// Splits an HTTP response into its head (status line and headers) and body.
fn split_response(raw: &str) -> Option<(&str, &str)> {
    raw.split_once("\r\n\r\n")
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Everything one run with the default `--on-eof wait` must show.
fn check_wait_run(ng: &NginxHttp, case: Case, r: &Run) {
    let ctx: [&dyn Dump; 2] = [&r.c, ng];
    r.c.assert_code(r.status, 0, &[ng]);
    let received = case.request == Request::Http10;
    // nginx answers an HTTP/1.0 request and says goodbye within microseconds; whether
    // gracetls's stdin thread read the end of its input before that goodbye arrived is up to
    // the scheduler. The report says which came first (stdin EOF then the server's
    // close_notify, or the server's close_notify alone); everything else, the exit code
    // included, is the same either way.
    let report = r.c.report(&[ng]);
    let trigger = if received && report["trigger"] == json!("peer-close-notify") {
        ("peer-close-notify", Value::Null)
    } else {
        ("stdin-eof", json!(case.end()))
    };
    r.c.assert_report(
        &clean_close(
            trigger.0,
            &[
                ("end", trigger.1),
                ("close_notify_received", json!(received)),
            ],
        ),
        &[ng],
    );
    // The whole answer: status line, headers that fit, the body byte for byte.
    let out = r.c.stdout_text();
    let Some((head, body)) = split_response(&out) else {
        panic!("no complete HTTP head on stdout{}", dumps(&ctx));
    };
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n"),
        "status line is not `HTTP/1.1 200 OK`{}",
        dumps(&ctx)
    );
    assert_eq!(body, case.body(), "the body differs{}", dumps(&ctx));
    assert_eq!(
        header(head, "Content-Length"),
        Some(case.body().len().to_string().as_str()),
        "Content-Length{}",
        dumps(&ctx)
    );
    let connection = match case.request {
        Request::Http10 => "close",
        Request::KeepAlive => "keep-alive",
    };
    assert_eq!(
        header(head, "Connection"),
        Some(connection),
        "Connection header{}",
        dumps(&ctx)
    );
    // What nginx saw.
    let want_proto = match case.request {
        Request::Http10 => "HTTP/1.0",
        Request::KeepAlive => "HTTP/1.1",
    };
    assert_eq!(
        (
            r.access.status,
            r.access.proto.as_str(),
            r.access.tls.as_str()
        ),
        (200, want_proto, case.tls.python_name()),
        "nginx's access log{}",
        dumps(&ctx)
    );
    if case.request == Request::KeepAlive {
        // nginx's referee: after close_notify it logs that the client closed
        // the keep-alive connection; a bare FIN would log `[crit] ...
        // unexpected eof while reading` instead.
        let conn = r.access.conn;
        assert!(
            ng.wait_conn_log(conn, "closed keepalive connection", WAIT),
            "nginx never logged that the client closed keep-alive connection *{conn}{}",
            dumps(&ctx)
        );
    }
    let bad: Vec<String> = ng
        .conn_log(r.access.conn)
        .into_iter()
        .filter(|l| l.contains("[crit]") || l.contains("[error]") || l.contains("unexpected eof"))
        .collect();
    assert!(
        bad.is_empty(),
        "nginx logged errors for *{}: {bad:#?}{}",
        r.access.conn,
        dumps(&ctx)
    );
}

/// What one case gives over its [`REPEATS`] runs.
struct CaseResult {
    codes: Vec<Option<i32>>,
    first_ms: u128,
    repeat_ms: (u128, u128),
    statuses: BTreeSet<u16>,
}

/// Runs one case [`REPEATS`] times with the default `--on-eof`; the first run
/// with the default `--quiet-time`, the keep-alive repeats with
/// [`REPEAT_QUIET`].
fn wait_case(ng: &NginxHttp, pki: &Pki, case: Case) -> CaseResult {
    let mut codes = Vec::new();
    let mut statuses = BTreeSet::new();
    let mut first_ms = 0;
    let mut repeat_ms = (u128::MAX, 0);
    let tag = case.name().replace('/', "-");
    for i in 0..REPEATS {
        let flags: &[&str] = if i > 0 && case.request == Request::KeepAlive {
            &["--quiet-time", REPEAT_QUIET]
        } else {
            &[]
        };
        let r = run_request(ng, pki, case, &format!("{tag}-{i}"), flags, WAIT);
        check_wait_run(ng, case, &r);
        if case.location == Location::Slow {
            assert!(
                r.ms >= UPSTREAM_DELAY.as_millis(),
                "a proxied answer came after {} ms, sooner than the upstream answers{}{}",
                r.ms,
                r.c.dump(),
                ng.dump()
            );
        }
        if i == 0 && case.request == Request::KeepAlive {
            let floor = DEFAULT_QUIET.as_millis();
            assert!(
                r.ms >= floor,
                "a keep-alive run ended after {} ms, before the default quiet time{}{}",
                r.ms,
                r.c.dump(),
                ng.dump()
            );
        }
        codes.push(r.status.code());
        statuses.insert(r.access.status);
        if i == 0 {
            first_ms = r.ms;
        } else {
            repeat_ms = (repeat_ms.0.min(r.ms), repeat_ms.1.max(r.ms));
        }
    }
    CaseResult {
        codes,
        first_ms,
        repeat_ms,
        statuses,
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The eight cases of the default mode, in parallel threads (each case's runs
/// one after another) against one nginx.
#[test]
fn wait_gets_the_whole_answer() {
    let pki = Arc::new(Pki::new());
    let Some(ng) = NginxHttp::start(&pki.server) else {
        return;
    };
    let ng = Arc::new(ng);
    let handles: Vec<_> = all_cases()
        .into_iter()
        .map(|case| {
            let (ng, pki) = (ng.clone(), pki.clone());
            let h = thread::spawn(move || {
                panic::catch_unwind(AssertUnwindSafe(|| wait_case(&ng, &pki, case)))
            });
            (case, h)
        })
        .collect();
    let mut failures = String::new();
    for (case, h) in handles {
        match h
            .join()
            .map_err(panic_text)
            .and_then(|r| r.map_err(panic_text))
        {
            Ok(r) => {
                let distinct: BTreeSet<_> = r.codes.iter().collect();
                println!(
                    "HTTP case={} on-eof=wait exit={} ms={} repeat_ms={}..{} runs={} exit_codes={distinct:?} nginx_status={:?} end={}",
                    case.name(),
                    describe_code(r.codes[0]),
                    r.first_ms,
                    r.repeat_ms.0,
                    r.repeat_ms.1,
                    r.codes.len(),
                    r.statuses,
                    case.end()
                );
                if distinct.len() != 1 {
                    failures.push_str(&format!(
                        "\n### {}: exit codes differ over {REPEATS} runs: {:?}\n",
                        case.name(),
                        r.codes
                    ));
                }
            }
            Err(msg) => {
                println!("HTTP case={} on-eof=wait FAILED", case.name());
                failures.push_str(&format!("\n### {}\n{msg}\n", case.name()));
            }
        }
    }
    assert!(failures.is_empty(), "cases failed:{failures}");
}

fn describe_code(code: Option<i32>) -> String {
    code.map_or_else(|| "signal".to_string(), |c| c.to_string())
}

per_version! {
    half_close_loses_the_proxied_answer => half_close_proxy;
}

/// Runs of each request kind in the half-close case.
const HALF_CLOSE_RUNS: usize = 10;

/// `--on-eof half-close` against `/slow`: close_notify and FIN follow the
/// request at once. nginx, waiting for the upstream, takes the FIN (epoll's
/// RDHUP) for a client that gave up: it logs `epoll_wait() reported that
/// client prematurely closed connection, so upstream connection is closed
/// too`, writes 499 in the access log, and closes without an answer.
///
/// How the client sees that close is a race, so both outcomes are allowed,
/// each with its own report (measured: exit 3 in 79 runs of 140, exit 1 in
/// 61, with both TLS versions and both request kinds). What nginx's source
/// says decides it:
/// - nginx read our close_notify together with the request (its SSL read
///   loop goes on after the request record while bytes are there): then its
///   close sends a FIN, and the client ends with exit 3, `truncated`, "closed
///   TCP without answering our close_notify";
/// - our close_notify arrived after nginx read the request: it is still
///   unread in nginx's socket when nginx closes it, so Linux sends a reset
///   instead of a FIN, and the client ends with exit 1, `error`, "connection
///   reset by the server".
///
/// Either way the answer is lost: nothing on stdout.
fn half_close_proxy(tls: Tls) {
    let pki = Pki::new();
    let Some(ng) = NginxHttp::start(&pki.server) else {
        return;
    };
    for request in [Request::Http10, Request::KeepAlive] {
        let case = Case {
            location: Location::Slow,
            request,
            tls,
        };
        let tag = format!("half-close-{}", case.name().replace('/', "-"));
        let mut codes = Vec::new();
        let mut ms = Vec::new();
        for i in 0..HALF_CLOSE_RUNS {
            let r = run_request(
                &ng,
                &pki,
                case,
                &format!("{tag}-{i}"),
                &["--on-eof", "half-close"],
                WAIT,
            );
            let ctx: [&dyn Dump; 2] = [&r.c, &ng];
            assert_eq!(r.access.status, 499, "nginx's access log{}", dumps(&ctx));
            assert!(
                ng.wait_conn_log(r.access.conn, "client prematurely closed connection", WAIT),
                "nginx did not log that the client closed prematurely{}",
                dumps(&ctx)
            );
            assert_eq!(r.c.stdout_text(), "", "the answer is lost{}", dumps(&ctx));
            let (outcome, phrases): (&str, &[&str]) = match r.status.code() {
                Some(3) => (
                    "truncated",
                    &[
                        "closed TCP without answering our close_notify",
                        // The flag race described in interop.rs (nginx_quirk).
                        "closed TCP without close_notify",
                    ],
                ),
                Some(1) => ("error", &["connection reset by the server"]),
                _ => panic!(
                    "half-close against the proxy: expected exit 3 or 1, got {}{}",
                    describe_status(Some(r.status)),
                    dumps(&ctx)
                ),
            };
            r.c.assert_report(
                &report_fields(
                    "stdin-eof",
                    outcome,
                    &[
                        ("close_notify_sent", json!(true)),
                        ("close_notify_received", json!(false)),
                        ("bytes_in", json!(0)),
                    ],
                    r.status.code().unwrap_or(-1),
                ),
                &[&ng],
            );
            let stderr = r.c.stderr_text();
            assert!(
                phrases.iter().any(|p| stderr.contains(p)),
                "the client's message says none of {phrases:?}{}",
                dumps(&ctx)
            );
            codes.push(r.status.code());
            ms.push(r.ms);
        }
        let count = |code| codes.iter().filter(|c| **c == Some(code)).count();
        println!(
            "HTTP case={} on-eof=half-close exit=3x{},1x{} ms={}..{} runs={} nginx_status=499 (the answer lost)",
            case.name(),
            count(3),
            count(1),
            ms.iter().min().unwrap_or(&0),
            ms.iter().max().unwrap_or(&0),
            codes.len()
        );
    }
}

per_version! {
    echo_server_that_never_closes_ends_by_quiet => echo_quiet;
}

/// How much later than the quiet time the client may end.
const QUIET_MARGIN: Duration = Duration::from_millis(1500);

/// The Python peer's `echo` mode only ever answers: it closes after the
/// client's close_notify and never by itself. A line piped in with the
/// default `--on-eof wait` comes back whole, and the client ends on its own
/// once nothing moved for the default quiet time, with close_notify.
fn echo_quiet(tls: Tls) {
    let line = "one line to the echo server and back\n";
    let mut s = Session::peer(tls, "echo", &[], &[]);
    // Nothing reaches the server before this write, so the client's last data
    // cannot be earlier: the floor of the quiet time counts from here.
    let written = Instant::now();
    s.c.write_stdin(line.as_bytes(), &[&s.srv]);
    s.c.close_stdin();
    assert!(
        s.c.stdout.wait_for(line, WAIT),
        "the line never came back{}",
        s.dump()
    );
    // The echo is the client's last data, and it reached the client before
    // the test saw it here: the ceiling counts from here.
    let echoed = Instant::now();
    let st = s.wait_exit(WAIT);
    let exited = s.c.proc.exited_at().expect("exited");
    s.c.assert_code(st, 0, &[&s.srv]);
    s.c.assert_report(
        &clean_close(
            "stdin-eof",
            &[
                ("end", json!("quiet")),
                ("bytes_out", json!(line.len())),
                ("bytes_in", json!(line.len())),
            ],
        ),
        &[&s.srv],
    );
    assert_eq!(s.c.stdout_text(), line, "stdout{}", s.dump());
    let after_write = exited - written;
    let after_echo = exited - echoed;
    assert!(
        after_write >= DEFAULT_QUIET,
        "ended {after_write:?} after the line was written, before the quiet time {DEFAULT_QUIET:?}{}",
        s.dump()
    );
    assert!(
        after_echo <= DEFAULT_QUIET + QUIET_MARGIN,
        "ended {after_echo:?} after the echo, more than {DEFAULT_QUIET:?} + {QUIET_MARGIN:?}{}",
        s.dump()
    );
    s.srv.assert_verdict("client_close_notify", &[&s.c]);
    println!(
        "ECHO case=python-echo/TLS{} on-eof=wait exit={} ms={} after_echo_ms={} verdict=client_close_notify",
        tls.number(),
        describe_code(st.code()),
        after_write.as_millis(),
        after_echo.as_millis()
    );
}

/// The keep-alive referee of [`check_wait_run`] must tell a close_notify from
/// a bare FIN: socat sends close_notify at stdin EOF, `ncat --ssl` only
/// shuts TCP down. Each sends a keep-alive request, gets the answer, then
/// its stdin ends.
#[test]
fn keepalive_referee() {
    if !have_tool("socat", "socat") || !have_tool("ncat", "ncat") {
        return;
    }
    let pki = Pki::new();
    let Some(ng) = NginxHttp::start(&pki.server) else {
        return;
    };
    let case = Case {
        location: Location::Static,
        request: Request::KeepAlive,
        tls: Tls::V13,
    };
    for (program, args, want) in [
        (
            "socat",
            vec![
                "-".to_string(),
                format!(
                    "OPENSSL:127.0.0.1:{},cafile={},verify=1",
                    ng.port,
                    pki.ca.display()
                ),
            ],
            "closed keepalive connection",
        ),
        (
            "ncat",
            vec!["--ssl".into(), "127.0.0.1".into(), ng.port.to_string()],
            "unexpected eof while reading",
        ),
    ] {
        let uri = case.uri(&format!("referee-{program}"));
        let mut t = Tool::spawn(program, &args);
        {
            use std::io::Write;
            let stdin = t.stdin.as_mut().expect("tool stdin");
            if let Err(e) = stdin.write_all(case.request_text(&uri).as_bytes()) {
                panic!("cannot write to {program}: {e}{}{}", t.dump(), ng.dump());
            }
        }
        assert!(
            t.out.wait_for(STATIC_BODY, WAIT),
            "{program} never got the answer{}{}",
            t.dump(),
            ng.dump()
        );
        // Only now, so that nginx is waiting for the next request.
        t.stdin = None;
        let access = ng.access_for(&uri, WAIT, &[&t]);
        assert!(
            ng.wait_conn_log(access.conn, want, WAIT),
            "nginx did not log {want:?} for {program}'s close of *{}{}{}",
            access.conn,
            t.dump(),
            ng.dump()
        );
        let log = ng.conn_log(access.conn);
        println!("HTTP referee {program}: {:?}", log.last());
        if program == "socat" {
            assert!(
                !log.iter().any(|l| l.contains("unexpected eof")),
                "nginx took socat's close_notify for a bare FIN{}{}",
                t.dump(),
                ng.dump()
            );
        }
        assert!(
            t.proc.wait_timeout(WAIT).is_some(),
            "{program} did not exit after stdin EOF{}{}",
            t.dump(),
            ng.dump()
        );
    }
}
