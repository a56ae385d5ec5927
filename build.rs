//! Names, once, the platforms where native-tls runs on OpenSSL (all but Windows and Apple's
//! systems): there the library also uses OpenSSL's own API (a certificate's details, the
//! client key's conversion, the certificate diagnosis), under `#[cfg(tls_openssl)]`.
//! Cargo.toml's `[target.'cfg(...)'.dependencies]` for the `openssl` crate says the same.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(tls_openssl)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    if os != "windows" && vendor != "apple" {
        println!("cargo:rustc-cfg=tls_openssl");
    }
}
