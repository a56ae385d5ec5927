//! The in-memory transport under whatever a server sends, cut anywhere: every byte fed comes
//! out once and in order, the record framing it reports matches a plain parse of the whole
//! stream, and the ServerHello scan never panics.
#![no_main]

use std::io::Read;

use gracetls::unversioned::MemoryTransport;
use libfuzzer_sys::fuzz_target;

/// Whether `stream` ends inside a TLS record (5-byte header, then the length it gives).
fn ends_inside_record(stream: &[u8]) -> bool {
    let mut rest = stream;
    loop {
        if rest.is_empty() {
            return false;
        }
        if rest.len() < 5 {
            return true;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest.len() < 5 + len {
            return true;
        }
        rest = &rest[5 + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the cut sizes and read sizes; the rest is the server's stream.
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(seed % 61) + 1;
    let read = usize::from(seed / 61) + 1;
    let mut t = MemoryTransport::new();
    let mut out = Vec::with_capacity(stream.len());
    let mut buf = vec![0u8; read];
    for (i, piece) in stream.chunks(cut).enumerate() {
        if i % 2 == 0 {
            t.feed(piece);
        } else {
            let mut owned = piece.to_vec();
            t.feed_buffer(&mut owned, piece.len());
        }
        while let Ok(n) = t.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let _ = t.server_hello();
    }
    t.feed_eof();
    while let Ok(n) = t.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, stream, "bytes lost, added or reordered");
    assert_eq!(t.inside_record(), ends_inside_record(stream), "record framing");
    assert_eq!(t.read(&mut buf).ok(), Some(0), "after EOF and drained, reads give 0");
});
