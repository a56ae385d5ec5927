use super::*;

/// A TLS 1.3 ServerHello: legacy version 1.2, suite 0x1301, supported_versions 1.3.
fn hello13() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0x13, 0x01, 0x00]);
    body.extend_from_slice(&[0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
    let mut msg = vec![2, 0, 0, body.len() as u8];
    msg.extend_from_slice(&body);
    msg
}

fn records(msg: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in msg.chunks(size) {
        out.extend_from_slice(&[22, 3, 3, 0, piece.len() as u8]);
        out.extend_from_slice(piece);
    }
    out
}

#[test]
fn finds_version_and_suite_however_cut() {
    for size in [1, 3, 50, 200] {
        let wire = records(&hello13(), size);
        for feed in [1, 7, wire.len()] {
            let mut scan = HelloScan::default();
            for chunk in wire.chunks(feed) {
                scan.feed(chunk);
            }
            assert_eq!(
                scan.result(),
                Some(("TLSv1.3", "TLS_AES_128_GCM_SHA256".into())),
                "records of {size}, fed {feed} at a time"
            );
        }
    }
}

#[test]
fn gives_up_on_what_is_not_a_server_hello() {
    let mut scan = HelloScan::default();
    scan.feed(&[21, 3, 3, 0, 2, 2, 40]);
    assert_eq!(scan.result(), None);
    assert!(scan.done);
    let mut scan = HelloScan::default();
    scan.feed(&vec![22; SCAN_LIMIT + 10]);
    assert!(scan.done);
}
