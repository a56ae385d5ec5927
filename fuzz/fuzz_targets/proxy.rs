//! Proxy URLs as a user may type them: never a panic; what is accepted has a host and a port
//! that is not 0, and what it shows (without the password) parses back to the same proxy.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match gracetls::Proxy::parse(text) {
        Ok(proxy) => {
            assert!(!proxy.host().is_empty());
            assert_ne!(proxy.port(), 0);
            let shown = proxy.to_string();
            let again = gracetls::Proxy::parse(&shown).expect("what Display shows parses");
            assert_eq!(
                (again.kind(), again.host(), again.port(), again.username()),
                (proxy.kind(), proxy.host(), proxy.port(), proxy.username()),
                "{shown}"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
