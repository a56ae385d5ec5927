//! A proxy's answers, however broken: the first byte picks HTTP CONNECT or SOCKS5, the rest
//! is what the proxy sends back. Never a panic; a failure is one line.
#![no_main]

use std::time::Duration;

use gracetls::{Config, Proxy, Stream};
use libfuzzer_sys::fuzz_target;

#[path = "peer.rs"]
mod peer;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, answer)) = data.split_first() else {
        return;
    };
    let Some((port, server)) = peer::serve(answer.to_vec()) else {
        return;
    };
    let scheme = if pick % 2 == 0 { "http" } else { "socks5" };
    let user = if pick & 2 == 0 { "" } else { "alice:s3cret@" };
    let Ok(proxy) = Proxy::parse(&format!("{scheme}://{user}127.0.0.1:{port}")) else {
        return;
    };
    let config = Config::new()
        .with_proxy(proxy)
        .with_connect_timeout(Duration::from_secs(2));
    match Stream::connect(&config, "example.com:443") {
        // Whatever the proxy says, no TLS server answers behind it.
        Ok(_) => panic!("a TLS session through a proxy that only sent {answer:?}"),
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
    }
    let _ = server.join();
});
