//! CA certificates and client keys as a user may hand them over, as PEM bytes: building the
//! TLS setup either works or is one error naming what is wrong; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.len() / 2;
    let (cert, key) = data.split_at(split);
    let _ = gracetls::Config::new().with_ca_pem(data.to_vec()).check();
    let _ = gracetls::Config::new()
        .with_system_roots(false)
        .with_identity_pem(cert.to_vec(), key.to_vec())
        .check();
});
