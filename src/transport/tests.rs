//! Unit tests of the in-memory transport.

use super::*;

#[test]
fn reads_across_feeds_in_order() {
    let mut t = MemoryTransport::new();
    t.feed(b"hello ");
    t.feed(b"world");
    let mut buf = [0u8; 4];
    let mut got = Vec::new();
    loop {
        match t.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                break;
            }
        }
    }
    assert_eq!(got, b"hello world");
    assert_eq!(t.pending_inbound(), 0);
}

#[test]
fn eof_only_after_buffered_bytes() {
    let mut t = MemoryTransport::new();
    t.feed(b"xy");
    t.feed_eof();
    let mut buf = [0u8; 1];
    assert_eq!(t.read(&mut buf).unwrap(), 1);
    assert_eq!(t.read(&mut buf).unwrap(), 1);
    assert_eq!(t.read(&mut buf).unwrap(), 0);
    assert!(t.is_eof());
}

#[test]
fn record_cursor_follows_headers_split_anywhere() {
    // Two records (5 + 3, then 5 + 2 bytes), fed one byte at a time.
    let stream = [23u8, 3, 3, 0, 3, 1, 2, 3, 21, 3, 3, 0, 2, 9, 9];
    let mut t = MemoryTransport::new();
    let mut inside = Vec::new();
    for b in stream {
        t.feed(&[b]);
        inside.push(t.inside_record());
    }
    let boundaries: Vec<usize> = (0..stream.len()).filter(|&i| !inside[i]).collect();
    assert_eq!(boundaries, vec![7, 14]);
}

#[test]
fn spill_keeps_order_when_it_ends() {
    let (mut t, spill) = MemoryTransport::spilling();
    t.write_all(b"one ").unwrap();
    assert!(t.has_outbound());
    t.end_spill();
    t.write_all(b"two").unwrap();
    assert_eq!(t.take_outbound(), b"one two");
    assert!(spill.take().is_empty());
}

#[test]
fn large_buffer_is_kept_while_flowing_and_released_by_shrink() {
    let mut t = MemoryTransport::new();
    t.feed(&vec![7u8; 4 * KEEP_CAPACITY]);
    let mut buf = vec![0u8; 4 * KEEP_CAPACITY];
    assert_eq!(t.read(&mut buf).unwrap(), 4 * KEEP_CAPACITY);
    assert!(t.read(&mut buf).is_err());
    assert!(t.inbound.capacity() >= 4 * KEEP_CAPACITY);
    t.shrink();
    assert!(t.inbound.capacity() <= KEEP_CAPACITY);
    t.write_all(&buf).unwrap();
    t.take_outbound();
    t.lend_outbound(vec![0u8; 4 * KEEP_CAPACITY], 0);
    t.shrink();
    assert!(t.outbound.capacity() <= KEEP_CAPACITY);
}

#[test]
fn fed_buffers_are_traded_and_partial_reads_keep_order() {
    let mut t = MemoryTransport::new();
    let mut buf = b"0123456789".to_vec();
    t.feed_buffer(&mut buf, 4);
    assert!(
        buf.is_empty(),
        "the transport's old (empty) buffer comes back"
    );
    let mut out = [0u8; 3];
    assert_eq!(t.read(&mut out).unwrap(), 3);
    // Not drained: this one is copied after the unread byte.
    let mut more = b"abXX".to_vec();
    t.feed_buffer(&mut more, 2);
    assert_eq!(more, b"abXX");
    t.feed(b"c");
    let mut got = Vec::new();
    let mut one = [0u8; 2];
    while let Ok(n) = t.read(&mut one) {
        got.extend_from_slice(&one[..n]);
    }
    assert_eq!(got, b"3abc");
    // Drained: a fed slice reuses the spare room behind it.
    t.feed(b"xy");
    assert_eq!(t.pending_inbound(), 2);
    assert_eq!(t.read(&mut one).unwrap(), 2);
    assert_eq!(&one, b"xy");
}
