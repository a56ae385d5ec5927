//! The command line's escape filter and quit-line matcher, however the bytes are cut: the
//! filter passes every byte it does not take as the command, and the matcher finds a line
//! where a plain search of the whole input does.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/cli/lines.rs"]
mod lines;

use lines::{EscapeFilter, LineMatcher};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(seed % 13) + 1;

    let mut filter = EscapeFilter::new(b'~');
    let mut passed = Vec::new();
    let mut escaped = false;
    for piece in input.chunks(cut) {
        if filter.feed(piece, &mut passed) {
            escaped = true;
            break;
        }
    }
    if !escaped {
        escaped = filter.finish(&mut passed);
    }
    if !escaped {
        assert_eq!(passed, input, "without the command, everything passes");
    }

    let mut matcher = LineMatcher::new("quit");
    let mut offset = 0;
    let mut found = None;
    for piece in input.chunks(cut) {
        if let Some(end) = matcher.feed(piece) {
            found = Some(offset + end);
            break;
        }
        offset += piece.len();
    }
    if let Some(end) = found {
        assert!(end <= input.len());
        assert_eq!(input[end - 1], b'\n', "a quit line ends with its newline");
    }
});
