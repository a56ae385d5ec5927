//! The one TLS record parser: record framing followed through bytes cut anywhere
//! ([`RecordCursor`]), the handshake messages reassembled from the handshake records in the
//! clear ([`Handshake`]), and the two readers built on them: the ServerHello's version and
//! cipher suite ([`HelloScan`]), and the list of handshake messages each side sent before
//! encryption started ([`Clear`]).
//!
//! Every byte passes through here unchanged: these only watch. Each keeps at most a bounded
//! amount, so a hostile peer cannot make them grow.

use crate::error::Alert;
use crate::session::{suite_name, version_name};

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;

/// What [`RecordCursor::advance_with`] reports, in the order of the bytes.
pub(crate) enum Piece<'a> {
    /// A record's 5-byte header is complete: its content type.
    Header(u8),
    /// Bytes of the current record's body, with its content type.
    Body(u8, &'a [u8]),
}

/// Where the peer's byte stream stands in TLS record framing (5-byte header, then the length
/// it announces), so an end of stream can be told apart: between records (the peer may have
/// sent everything it meant to) or inside one (data was certainly cut).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RecordCursor {
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
    /// The length the last complete header announced.
    last_len: usize,
}

impl RecordCursor {
    /// Follows the framing of the next bytes.
    pub(crate) fn advance(&mut self, data: &[u8]) {
        self.advance_with(data, |_| {});
    }

    /// Follows the framing of the next bytes, telling `on` each header and each piece of body.
    #[inline]
    pub(crate) fn advance_with(&mut self, mut data: &[u8], mut on: impl FnMut(Piece<'_>)) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                on(Piece::Body(self.header[0], &data[..n]));
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.last_len = self.body_left;
                self.header_len = 0;
                on(Piece::Header(self.header[0]));
            }
        }
    }

    /// The body length the last complete header announced.
    pub(crate) fn last_len(&self) -> usize {
        self.last_len
    }

    /// Whether the bytes so far end inside a record.
    pub(crate) fn inside_record(&self) -> bool {
        self.header_len > 0 || self.body_left > 0
    }
}

/// Handshake messages (1-byte type, 24-bit length, body) reassembled from the bodies of
/// handshake records, which may cut them anywhere; at most `limit` bytes wait.
#[derive(Debug, Default)]
pub(crate) struct Handshake {
    pending: Vec<u8>,
}

impl Handshake {
    /// Takes `body` bytes of handshake records and gives `each` every message they complete.
    pub(crate) fn push(&mut self, body: &[u8], limit: usize, mut each: impl FnMut(u8, &[u8])) {
        if self.pending.len() >= limit {
            return;
        }
        self.pending.extend_from_slice(body);
        let mut used = 0;
        while let Some(&[kind, a, b, c]) = self.pending.get(used..used + 4) {
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            let Some(message) = self.pending.get(used + 4..used + 4 + len) else {
                break;
            };
            each(kind, message);
            used += 4 + len;
        }
        self.pending.drain(..used);
    }

    /// The type of the message being reassembled, once its first byte came.
    pub(crate) fn next_type(&self) -> Option<u8> {
        self.pending.first().copied()
    }
}

/// Most a ServerHello scan reads: far more than any ServerHello, little enough to bound a
/// hostile server's effort.
pub(crate) const SCAN_LIMIT: usize = 20 * 1024;

/// Finds the ServerHello in the server's first bytes (reassembled across records, which a
/// server may cut as small as it likes) and reads the version and cipher suite from it.
#[derive(Debug, Default)]
pub(crate) struct HelloScan {
    records: RecordCursor,
    messages: Handshake,
    read: usize,
    done: bool,
    found: Option<(u16, u16)>,
}

impl HelloScan {
    /// Takes the next bytes from the server; cheap once the ServerHello was found.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        let data = &data[..data.len().min(SCAN_LIMIT - self.read)];
        self.read += data.len();
        let HelloScan {
            records,
            messages,
            done,
            found,
            ..
        } = self;
        records.advance_with(data, |piece| match piece {
            _ if *done => {}
            Piece::Header(kind) if kind != HANDSHAKE => *done = true,
            Piece::Header(_) => {}
            Piece::Body(_, body) => {
                messages.push(body, SCAN_LIMIT, |kind, message| {
                    if !*done && kind == 2 {
                        *found = parse_server_hello(message);
                    }
                    *done = true;
                });
                if messages.next_type().is_some_and(|kind| kind != 2) {
                    *done = true;
                }
            }
        });
        if self.done || self.read >= SCAN_LIMIT {
            self.done = true;
            self.messages = Handshake::default();
        }
    }

    /// The version's name and the cipher suite's, once found.
    pub(crate) fn result(&self) -> Option<(&'static str, String)> {
        self.found
            .map(|(version, suite)| (version_name(version), suite_name(suite)))
    }
}

/// `legacy_version, random[32], session_id<0..32>, cipher_suite, compression, extensions`;
/// the `supported_versions` extension (43), when present, holds the real version.
fn parse_server_hello(body: &[u8]) -> Option<(u16, u16)> {
    let mut r = Reader(body);
    let mut version = r.u16()?;
    r.skip(32)?;
    let sid = usize::from(r.u8()?);
    r.skip(sid)?;
    let suite = r.u16()?;
    r.u8()?;
    if let Some(ext_len) = r.u16() {
        let mut exts = Reader(r.take(usize::from(ext_len))?);
        while let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) {
            let data = exts.take(usize::from(len))?;
            if kind == 43 && data.len() == 2 {
                version = u16::from_be_bytes([data[0], data[1]]);
            }
        }
    }
    Some((version, suite))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Reads TLS records until encryption starts, and notes each handshake message in them.
#[derive(Debug, Default)]
pub(crate) struct Clear {
    records: RecordCursor,
    handshake: Handshake,
    /// Each message's type and the 24-bit number its body starts with (for a TLS 1.2
    /// Certificate, the length of its certificate list).
    pub(crate) messages: Vec<(u8, u32)>,
    /// The description of the last fatal alert in the clear, the server's reason for a
    /// handshake it ended before encryption started (in TLS 1.2, before its Finished).
    pub(crate) alert: Option<Alert>,
    /// The current alert record's first bytes (level, description), as they come.
    alert_record: Vec<u8>,
    /// Encryption started (ChangeCipherSpec, application data), or the bytes are not TLS.
    ended: bool,
}

impl Clear {
    /// Takes the next bytes one side sent.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let Clear {
            records,
            handshake,
            messages,
            alert,
            alert_record,
            ended,
        } = self;
        records.advance_with(bytes, |piece| match piece {
            _ if *ended => {}
            Piece::Header(ALERT) => alert_record.clear(),
            Piece::Header(HANDSHAKE) => {}
            Piece::Header(_) => *ended = true,
            // level, description; a warning (1) is not the end of anything.
            Piece::Body(ALERT, body) if alert_record.len() < 2 => {
                let take = (2 - alert_record.len()).min(body.len());
                alert_record.extend_from_slice(&body[..take]);
                if let [2, description] = alert_record[..] {
                    *alert = Some(Alert::from(description));
                }
            }
            Piece::Body(HANDSHAKE, body) => handshake.push(body, 1 << 20, |kind, message| {
                let start = match message.get(..3) {
                    Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]),
                    _ => 0,
                };
                messages.push((kind, start));
            }),
            Piece::Body(..) => {}
        });
    }
}

#[cfg(test)]
mod tests;
