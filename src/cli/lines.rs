//! Line matching that does not care how the bytes were split into chunks: the local escape
//! command (`~.` alone on a line, as in ssh) in what is sent, and a quit line in what is
//! received.
//!
//! Both matchers hold at most a few bytes between chunks, so they work on binary streams of
//! any size, and everything they do not match passes through untouched.

/// Finds the escape command, `E.` alone on a line where `E` is the escape byte, in outgoing
/// data, and passes everything else through.
///
/// The line must be ended by `\n`, `\r\n` or the end of input. Bytes that might start the
/// command are held back until the next byte settles it.
#[derive(Debug, Clone)]
pub struct EscapeFilter {
    escape: u8,
    state: EscapeState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscapeState {
    LineStart,
    Middle,
    Escape,
    EscapeDot,
    EscapeDotCr,
}

impl EscapeFilter {
    /// A filter for the escape byte `escape` (`b'~'` for `~.`), at the start of a line.
    pub fn new(escape: u8) -> Self {
        EscapeFilter {
            escape,
            state: EscapeState::LineStart,
        }
    }

    /// Appends the bytes held back, a prefix of the command (`E`, `E.` or `E.\r`), to `out`.
    fn release_held(&mut self, out: &mut Vec<u8>) {
        let held = match self.state {
            EscapeState::Escape => 1,
            EscapeState::EscapeDot => 2,
            EscapeState::EscapeDotCr => 3,
            EscapeState::LineStart | EscapeState::Middle => 0,
        };
        out.extend_from_slice(&[self.escape, b'.', b'\r'][..held]);
    }

    /// Appends to `out` the bytes of `chunk` that are to be sent. Returns `true` when the
    /// escape command was completed: nothing from the command on is appended.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        let mut i = 0;
        while i < chunk.len() {
            if self.state == EscapeState::Middle {
                // Fast path: copy up to and including the next newline in one go.
                match chunk[i..].iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        out.extend_from_slice(&chunk[i..=i + p]);
                        i += p + 1;
                        self.state = EscapeState::LineStart;
                    }
                    None => {
                        out.extend_from_slice(&chunk[i..]);
                        return false;
                    }
                }
                continue;
            }
            let b = chunk[i];
            i += 1;
            self.state = match (self.state, b) {
                (EscapeState::LineStart, b) if b == self.escape => EscapeState::Escape,
                (EscapeState::Escape, b'.') => EscapeState::EscapeDot,
                (EscapeState::EscapeDot, b'\r') => EscapeState::EscapeDotCr,
                (EscapeState::EscapeDot | EscapeState::EscapeDotCr, b'\n') => {
                    self.state = EscapeState::LineStart;
                    return true;
                }
                (_, b) => {
                    self.release_held(out);
                    out.push(b);
                    if b == b'\n' {
                        EscapeState::LineStart
                    } else {
                        EscapeState::Middle
                    }
                }
            };
        }
        false
    }

    /// Call at the end of input: appends held bytes to `out`, or returns `true` if the input
    /// ended right after the command (`E.` or `E.\r` with no newline).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let matched = matches!(
            self.state,
            EscapeState::EscapeDot | EscapeState::EscapeDotCr
        );
        if !matched {
            self.release_held(out);
        }
        self.state = EscapeState::LineStart;
        matched
    }
}

/// Finds the first line equal to a given text (with its `\n` and the `\r`s before it
/// stripped) in incoming data.
///
/// Only a few bytes past the text are kept for each line, so memory stays bounded on an
/// endless line: a line with more than 8 `\r`s after the text does not count.
#[derive(Debug, Clone)]
pub struct LineMatcher {
    line: Vec<u8>,
    partial: Vec<u8>,
    too_long: bool,
}

impl LineMatcher {
    /// A matcher for `line`.
    pub fn new(line: &str) -> Self {
        LineMatcher {
            line: line.as_bytes().to_vec(),
            partial: Vec::new(),
            too_long: false,
        }
    }

    /// Returns the offset in `chunk` just past the `\n` of the first matching line, if one
    /// ends in this chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut start = 0;
        while let Some(p) = chunk[start..].iter().position(|&b| b == b'\n') {
            let end = start + p;
            if self.extend(&chunk[start..end]) && self.matches() {
                self.reset();
                return Some(end + 1);
            }
            self.reset();
            start = end + 1;
        }
        self.extend(&chunk[start..]);
        None
    }

    /// Adds bytes of the current line; returns `false` once the line is too long to match.
    fn extend(&mut self, bytes: &[u8]) -> bool {
        // The line may carry `\r`s before its `\n`; a few more bytes than the text are kept.
        if !self.too_long && self.partial.len() + bytes.len() <= self.line.len() + 8 {
            self.partial.extend_from_slice(bytes);
        } else {
            self.too_long = true;
        }
        !self.too_long
    }

    fn matches(&self) -> bool {
        let mut end = self.partial.len();
        while end > 0 && self.partial[end - 1] == b'\r' {
            end -= 1;
        }
        self.partial[..end] == self.line[..]
    }

    fn reset(&mut self) {
        self.partial.clear();
        self.too_long = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting `input` into three chunks.
    fn splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut all = Vec::new();
        for a in 0..=input.len() {
            for b in a..=input.len() {
                all.push(vec![&input[..a], &input[a..b], &input[b..]]);
            }
        }
        all
    }

    fn run_escape(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut f = EscapeFilter::new(b'~');
        let mut out = Vec::new();
        for c in chunks {
            if f.feed(c, &mut out) {
                return (out, true);
            }
        }
        let matched = f.finish(&mut out);
        (out, matched)
    }

    #[test]
    fn escape_found_however_split() {
        for (input, sent, matched) in [
            (&b"~.\n"[..], &b""[..], true),
            (b"a\n~.\nb", b"a\n", true),
            (b"a\n~.\r\nb", b"a\n", true),
            (b"a\n~.", b"a\n", true),
            (b"x~.\ny", b"x~.\ny", false),
            (b"~x\n~~.\n~", b"~x\n~~.\n~", false),
            (b"\n~.x\n", b"\n~.x\n", false),
            (b"~.\r\r\n", b"~.\r\r\n", false),
            (b"binary\0~.\n\xff", b"binary\0~.\n\xff", false),
        ] {
            for chunks in splits(input) {
                let (out, m) = run_escape(&chunks);
                assert_eq!(m, matched, "{input:?} split as {chunks:?}");
                assert_eq!(out, sent, "{input:?} split as {chunks:?}");
            }
        }
    }

    #[test]
    fn other_escape_byte() {
        let mut f = EscapeFilter::new(b'%');
        let mut out = Vec::new();
        assert!(!f.feed(b"~.\n", &mut out));
        assert!(f.feed(b"%.\n", &mut out));
        assert_eq!(out, b"~.\n");
    }

    fn run_quit(chunks: &[&[u8]]) -> Option<usize> {
        let mut m = LineMatcher::new("quit");
        let mut offset = 0;
        for c in chunks {
            if let Some(end) = m.feed(c) {
                return Some(offset + end);
            }
            offset += c.len();
        }
        None
    }

    #[test]
    fn escape_held_back_until_settled() {
        let mut filter = EscapeFilter::new(b'~');
        let mut out = Vec::new();
        assert!(!filter.feed(b"ls\n~", &mut out));
        assert_eq!(out, b"ls\n");
        assert!(filter.feed(b".\nignored", &mut out));
        assert_eq!(out, b"ls\n");
    }

    #[test]
    fn quit_line_offset_is_past_its_newline() {
        let mut m = LineMatcher::new("quit");
        assert_eq!(m.feed(b"data\nqu"), None);
        assert_eq!(m.feed(b"it\r\nmore"), Some(4));
    }

    #[test]
    fn quit_line_found_however_split() {
        for (input, end) in [
            (&b"quit\n"[..], Some(5)),
            (b"a\nquit\nb\n", Some(7)),
            (b"a\nquit\r\nb", Some(8)),
            (b"quitx\nxquit\nquit", None),
            (b"quit", None),
            (b"a very long line that is not quit\nquit\n", Some(39)),
        ] {
            for chunks in splits(input) {
                assert_eq!(run_quit(&chunks), end, "{input:?} split as {chunks:?}");
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;

        /// Bytes biased towards the ones the matchers care about, so that commands, quit
        /// lines and near misses are common rather than one in millions.
        fn tricky_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
            let byte = prop_oneof![
                3 => Just(b'~'),
                3 => Just(b'.'),
                2 => Just(b'\r'),
                3 => Just(b'\n'),
                2 => prop::sample::select(b"quit".to_vec()),
                2 => any::<u8>(),
            ];
            prop::collection::vec(byte, 0..max)
        }

        /// Input with whole quit lines and escape commands spliced in among tricky bytes.
        fn input() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                4 => tricky_bytes(12),
                1 => Just(b"\n~.\n".to_vec()),
                1 => Just(b"\n~.\r\n".to_vec()),
                1 => Just(b"\nquit\n".to_vec()),
                1 => Just(b"\nquit\r\r\n".to_vec()),
            ];
            prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
        }

        /// `input` and some cut points in it.
        fn split_input() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
            (input(), prop::collection::vec(any::<Index>(), 0..10)).prop_map(|(input, cuts)| {
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
                cuts.sort_unstable();
                (input, cuts)
            })
        }

        fn chunks<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
            let mut out = Vec::new();
            let mut start = 0;
            for &c in cuts.iter().chain([input.len()].iter()) {
                out.push(&input[start..c]);
                start = c;
            }
            out
        }

        /// The escape command as the docs state it, on the whole input at once: the first
        /// line that is `~.` or `~.\r`, ended by `\n` or by the end of input.
        fn escape_oracle(input: &[u8]) -> (Vec<u8>, bool) {
            let mut start = 0;
            for line in input.split(|&b| b == b'\n') {
                if line == b"~." || line == b"~.\r" {
                    return (input[..start].to_vec(), true);
                }
                start += line.len() + 1;
            }
            (input.to_vec(), false)
        }

        /// `input` with every escape command turned into a near miss (`x~.`), so that
        /// near misses stay as common as in `input`.
        fn defuse(input: &[u8]) -> Vec<u8> {
            let lines: Vec<Vec<u8>> = input
                .split(|&b| b == b'\n')
                .map(|line| match line {
                    b"~." | b"~.\r" => [b"x", line].concat(),
                    _ => line.to_vec(),
                })
                .collect();
            lines.join(&b'\n')
        }

        /// The quit line as the docs state it: the end of the first `\n`-ended line equal to
        /// `quit` once its trailing `\r`s are stripped. The matcher keeps at most 8 bytes
        /// beyond the text of a line, so a quit line carrying more than 8 `\r`s is not seen.
        fn quit_oracle(input: &[u8]) -> Option<usize> {
            let mut start = 0;
            let mut lines = input.split(|&b| b == b'\n').peekable();
            while let Some(line) = lines.next() {
                lines.peek()?;
                let text = line.iter().rposition(|&b| b != b'\r').map_or(0, |p| p + 1);
                if &line[..text] == b"quit" && line.len() <= 4 + 8 {
                    return Some(start + line.len() + 1);
                }
                start += line.len() + 1;
            }
            None
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            #[test]
            fn escape_independent_of_chunking((input, cuts) in split_input()) {
                let whole = run_escape(&[&input]);
                prop_assert_eq!(&whole, &escape_oracle(&input));
                prop_assert_eq!(run_escape(&chunks(&input, &cuts)), whole);
            }

            /// Without a command anywhere, every byte passes through, in any chunking.
            #[test]
            fn escape_passes_everything_else((input, cuts) in split_input()) {
                let input = defuse(&input);
                let (out, matched) = run_escape(&chunks(&input, &cuts));
                prop_assert!(!matched);
                prop_assert_eq!(out, input);
            }

            #[test]
            fn quit_line_independent_of_chunking((input, cuts) in split_input()) {
                let whole = run_quit(&[&input]);
                prop_assert_eq!(whole, quit_oracle(&input));
                prop_assert_eq!(run_quit(&chunks(&input, &cuts)), whole);
            }
        }
    }
}
