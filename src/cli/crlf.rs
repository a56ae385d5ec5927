//! `--crlf`: line ends as the Internet's text protocols want them. SMTP, IMAP and POP3
//! servers wait for CRLF and take a bare LF as part of the line (Postfix waits forever), while
//! a terminal or a file gives LF.

/// Turns each LF that has no CR before it into CRLF, however the input is cut into chunks:
/// a CRLF already there is not doubled, also when the CR ends one chunk and the LF starts
/// the next. Nothing else changes (a lone CR stays as it is).
#[derive(Debug, Clone, Default)]
pub(crate) struct Crlf {
    /// The last byte seen was a CR.
    after_cr: bool,
}

impl Crlf {
    /// Appends `chunk`, translated, to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'\n' {
                let cr_before = if i == 0 {
                    self.after_cr
                } else {
                    chunk[i - 1] == b'\r'
                };
                if !cr_before {
                    out.extend_from_slice(&chunk[start..i]);
                    out.push(b'\r');
                    start = i;
                }
            }
        }
        out.extend_from_slice(&chunk[start..]);
        if let Some(&last) = chunk.last() {
            self.after_cr = last == b'\r';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(chunks: &[&[u8]]) -> Vec<u8> {
        let mut crlf = Crlf::default();
        let mut out = Vec::new();
        for chunk in chunks {
            crlf.feed(chunk, &mut out);
        }
        out
    }

    #[test]
    fn lf_becomes_crlf_and_crlf_stays() {
        assert_eq!(translate(&[b"EHLO a\nQUIT\n"]), b"EHLO a\r\nQUIT\r\n");
        assert_eq!(translate(&[b"EHLO a\r\nQUIT\r\n"]), b"EHLO a\r\nQUIT\r\n");
        assert_eq!(translate(&[b"\n\n"]), b"\r\n\r\n");
        assert_eq!(translate(&[b"a\rb\n"]), b"a\rb\r\n");
        assert_eq!(translate(&[b"no newline"]), b"no newline");
        assert_eq!(translate(&[b""]), b"");
    }

    #[test]
    fn cr_and_lf_in_different_reads_are_not_doubled() {
        assert_eq!(translate(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(translate(&[b"a\r", b"", b"\n"]), b"a\r\n");
        // A CR that ended an earlier read does not count for a later LF.
        assert_eq!(translate(&[b"a\r", b"b", b"\n"]), b"a\rb\r\n");
        assert_eq!(translate(&[b"a", b"\n", b"\n"]), b"a\r\n\r\n");
    }

    #[test]
    fn same_output_however_split() {
        let input: &[u8] = b"MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\nDATA\n\r\n.\r\r\nQUIT\n";
        let whole = translate(&[input]);
        assert_eq!(
            whole,
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n\r\n.\r\r\nQUIT\r\n".to_vec()
        );
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let split = translate(&[&input[..a], &input[a..b], &input[b..]]);
                assert_eq!(split, whole, "cut at {a} and {b}");
            }
        }
    }
}
