use super::*;
use std::io::Read;
use std::net::TcpListener;

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

#[test]
fn writes_in_order_and_seals() {
    let (a, mut b) = pair();
    let out = Outbound::default();
    out.push(b"one ", 2);
    let mark = out.push(b"two", 1);
    out.flush_to(&a, mark, true).unwrap();
    out.seal();
    let mark = out.push(b"after close_notify", 5);
    out.flush_to(&a, mark, true).unwrap();
    assert_eq!(out.pending(), 0);
    assert_eq!(out.plain_written(), 3);
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"one two");
}

#[test]
fn a_failed_socket_fails_every_flush() {
    let (a, b) = pair();
    drop(b);
    let out = Outbound::default();
    out.fail(io::ErrorKind::BrokenPipe, "gone");
    let mark = out.push(b"x", 1);
    assert_eq!(
        out.flush_to(&a, mark, true).unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
}

/// A reader that queues a handshake message while a writer is flushing returns at once
/// (`wait` false); the writer must write it too before it stops being the flusher. Seen
/// as a renegotiation that never finished: the ClientHello stayed in the queue.
#[test]
fn the_flusher_writes_what_was_queued_while_it_wrote() {
    let (a, mut b) = pair();
    let out = std::sync::Arc::new(Outbound::default());
    // More than the socket holds: the first flush blocks until `b` reads.
    let big = vec![b'w'; 16 * 1024 * 1024];
    let mark = out.push(&big, big.len());
    let writer = {
        let (out, a) = (out.clone(), a.try_clone().unwrap());
        std::thread::spawn(move || out.flush_to(&a, mark, true))
    };
    let started = std::time::Instant::now();
    while !out.lock().flushing {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        std::thread::yield_now();
    }
    let hello = out.push(b"HELLO", 0);
    out.flush_to(&a, hello, false).unwrap();
    let mut got = vec![0u8; big.len() + 5];
    b.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got[big.len()..], b"HELLO");
    writer.join().unwrap().unwrap();
}

/// A socket write that times out partway: the error is that call's, what was written is
/// counted exactly (plaintext only for whole appends), the rest stays queued in order,
/// and the next flush goes on from there.
#[test]
fn a_timed_out_flush_keeps_the_rest_in_order() {
    let (a, mut b) = pair();
    a.set_write_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let out = Outbound::default();
    let piece: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut mark = 0;
    for _ in 0..16 {
        mark = out.push(&piece, 1);
    }
    let err = out.flush_to(&a, mark, true).unwrap_err();
    assert!(is_timeout(err.kind()), "{err:?}");
    let pending = out.pending();
    assert!(pending > 0 && pending < 16 * piece.len(), "{pending}");
    let whole = (16 * piece.len() - pending) / piece.len();
    assert_eq!(out.plain_written(), whole as u64);
    assert!(out.orphaned());
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 16 * 1024 * 1024];
        b.read_exact(&mut got).unwrap();
        got
    });
    a.set_write_timeout(None).unwrap();
    out.flush_to(&a, mark, true).unwrap();
    assert_eq!(out.pending(), 0);
    assert_eq!(out.plain_written(), 16);
    let got = reader.join().unwrap();
    for (k, chunk) in got.chunks(piece.len()).enumerate() {
        assert_eq!(chunk, &piece[..], "piece {k}");
    }
}

/// A reader's flush never waits: against a socket that takes nothing more it returns at
/// once, what it wrote counted, the rest left in order for whoever writes next; while
/// another thread is the flusher it leaves the queue alone.
#[test]
fn try_flush_never_waits() {
    let (a, mut b) = pair();
    let out = Outbound::default();
    let piece: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..32 {
        out.push(&piece, 0);
    }
    let started = std::time::Instant::now();
    out.try_flush(&a);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let left = out.pending();
    assert!(left > 0 && out.orphaned(), "{left}");
    // Another thread is the flusher: nothing is touched.
    let batch = out.lock().take_batch();
    out.try_flush(&a);
    out.lock().finish_batch(batch, 0);
    assert_eq!(out.pending(), left);
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 32 * 1024 * 1024];
        b.read_exact(&mut got).unwrap();
        got
    });
    let mark = out.push(&[], 0);
    out.flush_to(&a, mark, true).unwrap();
    let got = reader.join().unwrap();
    for (k, chunk) in got.chunks(piece.len()).enumerate() {
        assert_eq!(chunk, &piece[..], "piece {k}");
    }
}

/// A direct send happens only while the queue is idle, and its bytes are counted as queued
/// and written at once; what the socket did not take, queued behind, keeps the order, and
/// the plaintext counts once all of its ciphertext is out.
#[test]
fn a_direct_send_only_when_idle_and_counted_exactly() {
    let (a, mut b) = pair();
    let out = Outbound::default();
    assert_eq!(out.send_direct(&a, b"abc"), 3);
    let mut empty = Vec::new();
    let mark = out.push_from(&mut empty, 1);
    assert_eq!((mark, out.pending(), out.plain_written()), (3, 0, 1));
    // Queued bytes go first: no direct send past them.
    out.push(b"d", 0);
    assert_eq!(out.send_direct(&a, b"e"), 0);
    out.push(b"e", 1);
    let batch = out.lock().take_batch();
    assert_eq!(out.send_direct(&a, b"x"), 0, "a flusher is writing");
    out.lock().finish_batch(batch, 0);
    let mark = out.push(&[], 0);
    out.flush_to(&a, mark, true).unwrap();
    assert_eq!(out.plain_written(), 2);
    // A socket that takes only part: the rest is queued behind, in order.
    let piece: Vec<u8> = (0..32 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let sent = out.send_direct(&a, &piece);
    assert!(sent > 0 && sent < piece.len(), "{sent}");
    let mut rest = piece[sent..].to_vec();
    let mark = out.push_from(&mut rest, 7);
    assert_eq!(
        out.plain_written(),
        2,
        "part of the ciphertext is still queued"
    );
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 5 + 32 * 1024 * 1024];
        b.read_exact(&mut got).unwrap();
        got
    });
    out.flush_to(&a, mark, true).unwrap();
    assert_eq!((out.pending(), out.plain_written()), (0, 9));
    let got = reader.join().unwrap();
    assert_eq!(&got[..5], b"abcde");
    assert!(got[5..] == piece[..]);
    out.seal();
    assert_eq!(out.send_direct(&a, b"after close_notify"), 0);
}
