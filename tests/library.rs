//! The library against real servers: the deadlock that the design avoids (reproduced with a
//! plain `Mutex<TlsStream<TcpStream>>`), and every way a `Connection` ends, judged by what the
//! server saw.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{PyPeer, SServer, Tls, WAIT, spin_until, task_count, thread_sleeping};
use crossbeam_channel::RecvTimeoutError;
use gracetls::{CloseMode, Config, Connection, Event, Outcome};

fn config(pki: &common::Pki) -> Config {
    Config::new()
        .with_ca_file(&pki.ca)
        .with_close_timeout(Duration::from_secs(5))
}

/// Receives events until `pred` holds; returns the data seen. Panics on timeout.
fn recv_until(conn: &Connection, mut pred: impl FnMut(&Event, &[u8]) -> bool) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let event = match conn.events().recv_timeout(WAIT) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no event within {WAIT:?}; data so far {data:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("events ended; data so far {data:?}"),
        };
        if let Event::Data(bytes) = &event {
            data.extend_from_slice(bytes);
        }
        if pred(&event, &data) {
            return data;
        }
    }
}

/// The trap this crate exists to avoid, measured: with TLS 1.3 the reader takes the lock,
/// processes the server's session tickets inside `read()` and blocks there holding it, so a
/// write from another thread never starts. The test bounds the wait and then unblocks the
/// reader by shutting the socket.
#[test]
fn naive_mutex_around_tls_stream_deadlocks() {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, Tls::V13);
    let ca = std::fs::read(&pki.ca).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let unblock = tcp.try_clone().unwrap();
    let tls = Arc::new(Mutex::new(connector.connect("localhost", tcp).unwrap()));

    let (locked_tx, locked_rx) = mpsc::channel();
    let reader = {
        let tls = Arc::clone(&tls);
        thread::spawn(move || {
            let mut guard = tls.lock().unwrap();
            locked_tx.send(()).unwrap();
            let mut buf = [0u8; 1024];
            let _ = guard.read(&mut buf); // blocks, holding the lock
        })
    };
    locked_rx.recv_timeout(WAIT).expect("reader took the lock");
    let (wrote_tx, wrote_rx) = mpsc::channel();
    let writer = {
        let tls = Arc::clone(&tls);
        thread::spawn(move || {
            let result = tls.lock().unwrap().write_all(b"deadlock-marker\n");
            let _ = wrote_tx.send(result.is_ok());
        })
    };
    // Proving that something does not happen needs a bounded wait.
    let outcome = wrote_rx.recv_timeout(Duration::from_millis(500));
    assert!(
        outcome.is_err(),
        "the write went through: no deadlock reproduced"
    );
    assert!(
        !server.text().contains("deadlock-marker"),
        "the server got the line despite the deadlock"
    );

    unblock.shutdown(Shutdown::Both).unwrap();
    reader.join().unwrap();
    writer.join().unwrap();
}

/// The same scenario through `Connection`: the reader is blocked in `read()` right after the
/// handshake, and a write from this thread reaches the server.
#[test]
fn write_reaches_server_while_reader_is_blocked() {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, Tls::V13);
    let conn = Connection::connect(&config(&pki), &format!("localhost:{}", server.port)).unwrap();
    conn.send(b"hello from the library\n").unwrap();
    server.expect_log("hello from the library", WAIT, &[]);
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent());
    assert_eq!(report.bytes_out(), 23);
    server.assert_client_closed_cleanly(&[]);
}

#[test]
fn data_both_ways_then_close_tls12() {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V12);
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).unwrap();
    server.send_line("greetings");
    let data = recv_until(&conn, |_, d| d.ends_with(b"greetings\n"));
    assert_eq!(data, b"greetings\n");
    // From another thread, while this one could be reading.
    let stream = Arc::clone(conn.stream());
    thread::spawn(move || (&*stream).write_all(b"from a thread\n").unwrap())
        .join()
        .unwrap();
    server.expect_log("from a thread", WAIT, &[]);
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert_eq!((report.bytes_in(), report.bytes_out()), (10, 14));
    server.assert_client_closed_cleanly(&[]);
}

#[test]
fn drop_closes_gracefully() {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, Tls::V13);
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).unwrap();
    conn.send(b"bye\n").unwrap();
    drop(conn);
    server.assert_client_closed_cleanly(&[]);
    assert!(server.text().contains("bye"));
}

#[test]
fn wait_mode_receives_the_servers_close_notify() {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, Tls::V13);
    let conn = Connection::connect(
        &config(&pki).with_close_mode(CloseMode::Wait),
        &format!("127.0.0.1:{}", server.port),
    )
    .unwrap();
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(
        report.close_notify_sent() && report.close_notify_received(),
        "{report:?}"
    );
    server.assert_client_closed_cleanly(&[]);
}

#[test]
fn half_close_keeps_reading_until_the_server_closes() {
    let pki = common::Pki::new();
    let server = SServer::start(&pki, Tls::V12);
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).unwrap();
    conn.send(b"last words\n").unwrap();
    conn.shutdown_write().unwrap();
    assert!(matches!(
        conn.send(b"too late"),
        Err(gracetls::Error::Closed)
    ));
    // s_server answers our close_notify with its own.
    recv_until(&conn, |e, _| matches!(e, Event::PeerCloseNotify));
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent() && report.close_notify_received());
    server.assert_client_closed_cleanly(&[]);
    assert!(server.text().contains("last words"));
}

fn server_close_notify_is_answered(tls: Tls) {
    let pki = common::Pki::new();
    let peer = PyPeer::start(
        &pki.server,
        tls,
        "send-close",
        &["--payload-bytes", "300000"],
    );
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", peer.port)).unwrap();
    let data = recv_until(&conn, |e, _| matches!(e, Event::PeerCloseNotify));
    assert_eq!(data.len(), 300_000);
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(
        report.close_notify_received() && report.close_notify_sent(),
        "{report:?}"
    );
    assert_eq!(peer.verdict(&[]), "client_answered_close_notify");
}

fn server_vanishing_is_a_truncation(tls: Tls) {
    let pki = common::Pki::new();
    let peer = PyPeer::start(
        &pki.server,
        tls,
        "send-truncate",
        &["--payload-bytes", "5000"],
    );
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", peer.port)).unwrap();
    let data = recv_until(&conn, |e, _| matches!(e, Event::PeerEof));
    assert_eq!(data.len(), 5000);
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Truncated, "{report:?}");
    assert!(!report.close_notify_received());
}

per_version! {
    server_close_notify => server_close_notify_is_answered;
    server_vanishing => server_vanishing_is_a_truncation;
}

#[test]
fn killed_server_is_a_truncation() {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V13);
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).unwrap();
    server.send_line("then silence");
    recv_until(&conn, |_, d| d.ends_with(b"then silence\n"));
    server.proc.kill();
    recv_until(&conn, |e, _| matches!(e, Event::PeerEof));
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Truncated, "{report:?}");
}

/// s_server's `K` sends a TLS 1.3 KeyUpdate that asks for ours: the reader makes the reply
/// while decrypting, and it must reach the wire before the data encrypted with the new keys,
/// or the server fails with a bad record.
#[test]
fn key_update_requested_by_server_is_answered_in_order() {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V13);
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).unwrap();
    server.command("K");
    server.expect_log("write server key update", WAIT, &[]);
    server.send_line("after the update");
    recv_until(&conn, |_, d| d.ends_with(b"after the update\n"));
    conn.send(b"new keys line\n").unwrap();
    server.expect_log("new keys line", WAIT, &[]);
    // The server read our KeyUpdate reply before the line sent with the new keys.
    let log = server.text();
    let reply = log
        .find("read client key update")
        .expect("server read our KeyUpdate reply");
    assert!(
        reply < log.find("new keys line").unwrap(),
        "KeyUpdate reply after the data:\n{log}"
    );
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_client_closed_cleanly(&[]);
}

/// s_server's `r` starts a TLS 1.2 renegotiation: handshake messages flow through the same
/// transport while data keeps moving both ways.
#[test]
fn tls12_renegotiation_started_by_server() {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V12);
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).unwrap();
    server.command("r");
    server.expect_log("SSL_do_handshake -> 1", WAIT, &[]);
    conn.send(b"during renegotiation\n").unwrap();
    server.expect_log("during renegotiation", WAIT, &[]);
    server.send_line("after renegotiation");
    recv_until(&conn, |_, d| d.ends_with(b"after renegotiation\n"));
    // Close only once the second handshake is complete: OpenSSL refuses close_notify while a
    // handshake is in progress, so a close that lands in the middle reports an error instead.
    assert!(
        server
            .log
            .wait_for_count("SSLv3/TLS read finished", 2, WAIT),
        "renegotiation did not complete{}",
        common::dumps(&[&server])
    );
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_client_closed_cleanly(&[]);
}

/// A waiting close whose caller reads no events: the echoed data is dropped, but reading goes
/// on until the server's close_notify.
#[test]
fn wait_close_without_an_events_reader_still_sees_close_notify() {
    let pki = common::Pki::new();
    let peer = PyPeer::start(&pki.server, Tls::V13, "echo", &[]);
    let conn = Connection::connect(
        &config(&pki).with_close_mode(CloseMode::Wait),
        &format!("127.0.0.1:{}", peer.port),
    )
    .unwrap();
    for _ in 0..32 {
        conn.send(&[b'x'; 64 * 1024]).unwrap();
    }
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_received(), "{report:?}");
    assert_eq!(report.bytes_out(), 32 * 64 * 1024);
    assert_eq!(peer.verdict(&[]), "client_close_notify");
}

/// The reader waits for the server holding no buffer only when its last read did not fill
/// one: a record larger than the read leaves its rest inside TLS, which the socket does not
/// announce. Each chunk is echoed as one record and the server then waits for the next, so a
/// reader that waited on the socket with part of a record in hand would stall here.
#[test]
fn records_around_the_read_size_arrive_whole_while_the_server_waits() {
    let pki = common::Pki::new();
    let peer = PyPeer::start(&pki.server, Tls::V13, "echo", &[]);
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", peer.port)).unwrap();
    // Each large record comes while the reader reads small (first, and after a run of
    // small reads): its first read fills the small buffer and leaves the rest inside TLS.
    let trickle = [10; 20];
    let sizes: Vec<usize> = [&[16384][..], &trickle, &[4097], &trickle, &[8192, 1, 4095]]
        .concat()
        .into_iter()
        .chain([&trickle[..], &[4096, 5000], &trickle, &[12000, 3]].concat())
        .collect();
    for (i, &size) in sizes.iter().enumerate() {
        let chunk: Vec<u8> = (0..size).map(|j| b'a' + ((i + j) % 26) as u8).collect();
        conn.send(&chunk).unwrap();
        let echoed = recv_until(&conn, |_, d| d.len() >= size);
        assert_eq!(echoed, chunk, "chunk {i} ({size} bytes)");
    }
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    let total: usize = sizes.iter().sum();
    assert_eq!(report.bytes_in(), total as u64, "{report:?}");
    assert_eq!(peer.verdict(&[]), "client_close_notify");
}

/// Set in the child process that runs [`drop_scenario_alone`].
const DROP_CHILD_ENV: &str = "GRACETLS_DROP_SCENARIO_CHILD";

/// Dropping a `Connection` from another thread, without `close`, while its reader is blocked
/// in `read()`: the server still sees close_notify, and no thread is left behind. The other
/// tests of this binary start and end threads at the same time, so the scenario runs in a
/// process of its own (this test binary again, with only that test), where the count of
/// `/proc/self/task` is exact.
#[test]
fn drop_from_another_thread_while_reading_leaves_no_thread() {
    common::run_alone("drop_scenario_alone", DROP_CHILD_ENV);
}

#[test]
#[ignore = "run by drop_from_another_thread_while_reading_leaves_no_thread in its own process"]
fn drop_scenario_alone() {
    if std::env::var_os(DROP_CHILD_ENV).is_none() {
        return; // thread counts are only exact when nothing else runs in the process
    }
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V13);
    let before = task_count();
    let conn = Connection::connect(&config(&pki), &format!("127.0.0.1:{}", server.port)).unwrap();
    assert_eq!(task_count(), before + 1, "one reader thread");
    server.send_line("ping");
    recv_until(&conn, |_, d| d.ends_with(b"ping\n"));
    // After delivering the line, the reader is back in read(), blocked.
    assert!(
        spin_until(WAIT, || thread_sleeping("gracetls-reader")),
        "the reader never blocked"
    );
    thread::spawn(move || drop(conn)).join().unwrap();
    server.assert_client_closed_cleanly(&[]);
    assert!(
        spin_until(WAIT, || task_count() == before),
        "threads left behind: {} before, {} after",
        before,
        task_count()
    );
}

/// `Config::with_on_close` receives the report of a close nobody asked for: a `Stream` dropped
/// (its last handle) and a `Connection` dropped, each once, with what the server saw.
#[test]
fn on_close_gets_the_report_of_a_close_by_drop() {
    let pki = common::Pki::new();
    let (tx, rx) = mpsc::channel::<gracetls::CloseReport>();
    let tx = Mutex::new(tx);
    let config = config(&pki).with_on_close(move |report| {
        let _ = tx.lock().map(|tx| tx.send(report.clone()));
    });

    let server = SServer::start(&pki, Tls::V13);
    let stream =
        gracetls::Stream::connect(&config, &format!("localhost:{}", server.port)).expect("connect");
    let clone = stream.try_clone().expect("try_clone");
    (&stream).write_all(b"dropped\n").expect("write");
    server.expect_log("dropped\n", WAIT, &[]);
    drop(stream);
    assert!(rx.try_recv().is_err(), "no close while a handle is left");
    drop(clone);
    let report = rx
        .recv_timeout(WAIT)
        .expect("the report of the close by Drop");
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(report.close_notify_sent());
    assert_eq!(report.bytes_out(), 8);
    server.assert_client_closed_cleanly(&[]);

    let server = SServer::start(&pki, Tls::V13);
    let conn =
        Connection::connect(&config, &format!("localhost:{}", server.port)).expect("connect");
    conn.send(b"bye\n").expect("send");
    server.expect_log("bye\n", WAIT, &[]);
    drop(conn);
    let report = rx
        .recv_timeout(WAIT)
        .expect("the report of the Connection's Drop");
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert_eq!(report.bytes_out(), 4);
    assert!(rx.try_recv().is_err(), "one report per connection");
    server.assert_client_closed_cleanly(&[]);
}

/// A `Config` with a read timeout also makes `Connection`s, whose reader ignores it: a
/// server silent for longer than the timeout is no error, and its later line arrives.
#[test]
fn connection_reader_ignores_the_configured_read_timeout() {
    let pki = common::Pki::new();
    let mut server = SServer::start(&pki, Tls::V13);
    let config = config(&pki).with_read_timeout(Duration::from_millis(100));
    let conn = Connection::connect(&config, &format!("localhost:{}", server.port)).unwrap();
    assert_eq!(conn.stream().read_timeout().expect("read_timeout"), None);
    conn.send(b"ping\n").unwrap();
    server.expect_log("ping\n", WAIT, &[]);
    // Silent for three timeouts' worth: the reader must still be there.
    match conn.events().recv_timeout(Duration::from_millis(300)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("the reader ended or delivered early: {other:?}"),
    }
    server.send_line("late");
    let data = recv_until(&conn, |_, d| d.ends_with(b"late\n"));
    assert_eq!(data, b"late\n");
    let report = conn.close();
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    server.assert_client_closed_cleanly(&[]);
}
