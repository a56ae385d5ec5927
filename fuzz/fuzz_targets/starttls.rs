//! The STARTTLS dialogue against whatever a server answers: the first byte picks the protocol,
//! the rest is the server's side of the clear-text exchange. Never a panic; a failure is one
//! line naming the server; a success has read nothing past the server's last answer.
#![no_main]

use std::time::Duration;

use gracetls::starttls::{Protocol, Starttls};
use libfuzzer_sys::fuzz_target;

#[path = "peer.rs"]
mod peer;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, answer)) = data.split_first() else {
        return;
    };
    let protocol = Protocol::ALL[usize::from(pick) % Protocol::ALL.len()];
    let Some((port, server)) = peer::serve(answer.to_vec()) else {
        return;
    };
    let Some(socket) = peer::dial(port) else {
        return;
    };
    let result = Starttls::new(protocol).negotiate(&socket, "localhost", Duration::from_secs(2));
    match result {
        Ok(transcript) => {
            assert!(!transcript.lines().is_empty(), "{protocol}: an upgrade with no exchange");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{protocol}: {text:?}");
        }
    }
    drop(socket);
    let _ = server.join();
});
