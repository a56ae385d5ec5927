//! `HOST[:PORT]`, `[IPv6]:PORT` and URLs as a user may type them: never a panic, and what is
//! accepted has a host and a port that is not 0.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((host, port)) = gracetls::parse_target(text) {
        assert!(!host.is_empty());
        assert_ne!(port, 0);
    }
});
