//! The client key as native-tls takes it: PKCS#8, converted from PKCS#1 or SEC1 where the
//! TLS library is OpenSSL, never encrypted.

use std::path::Path;

use super::connector::setup_as;
use crate::Error;
use crate::error::{SetupInput, SetupProblem};

/// The client key as PKCS#8 PEM, which is all native-tls takes: PKCS#1 and SEC1 keys are
/// converted, and the key is checked against the chain's first certificate, so that a wrong
/// pair is named by its two files rather than by OpenSSL's `key values mismatch`.
#[cfg(tls_openssl)]
pub(super) fn pkcs8_key(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<Vec<u8>, Error> {
    use openssl::pkey::PKey;
    use openssl::x509::X509;

    use super::connector::{no_certificate, setup};

    if let Some(reason) = encrypted(key_path, key_pem) {
        return Err(setup_as(
            SetupProblem::Convert,
            key_path,
            SetupInput::ClientKey,
            reason,
        ));
    }
    // An empty passphrase, never OpenSSL's default callback, which would prompt on the
    // terminal for an encrypted key that slipped through.
    let key = PKey::private_key_from_pem_passphrase(key_pem, b"").map_err(|e| {
        let reason = crate::error::tls_reason(&e.to_string()).0;
        setup(
            key_path,
            SetupInput::ClientKey,
            format!("no PEM private key in it ({reason})"),
        )
    })?;
    let cert = X509::stack_from_pem(cert_pem)
        .map_err(|e| {
            let reason = crate::error::tls_reason(&e.to_string()).0;
            setup(cert_path, SetupInput::ClientCertificate, reason)
        })?
        .into_iter()
        .next()
        .ok_or_else(|| {
            let (problem, reason) = no_certificate(cert_path, cert_pem);
            setup_as(problem, cert_path, SetupInput::ClientCertificate, reason)
        })?;
    let matches = cert.public_key().is_ok_and(|public| public.public_eq(&key));
    if !matches {
        return Err(Error::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    key.private_key_to_pem_pkcs8().map_err(|e| {
        let reason = crate::error::tls_reason(&e.to_string()).0;
        setup(key_path, SetupInput::ClientKey, reason)
    })
}

/// Without OpenSSL at hand the key is taken as it is, and a PKCS#1 or SEC1 key is refused
/// with the command that converts it.
#[cfg(not(tls_openssl))]
pub(super) fn pkcs8_key(
    _cert_path: &Path,
    _cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<Vec<u8>, Error> {
    if let Some(reason) = encrypted(key_path, key_pem) {
        return Err(setup_as(
            SetupProblem::Convert,
            key_path,
            SetupInput::ClientKey,
            reason,
        ));
    }
    let text = String::from_utf8_lossy(key_pem);
    for (marker, kind) in [
        (
            concat!("-----BEGIN ", "RSA PRIVATE KEY-----"),
            "a PKCS#1 RSA key",
        ),
        (
            concat!("-----BEGIN ", "EC PRIVATE KEY-----"),
            "a SEC1 EC key",
        ),
    ] {
        if text.contains(marker) {
            let path = key_path.display();
            return Err(setup_as(
                SetupProblem::Convert,
                key_path,
                SetupInput::ClientKey,
                format!(
                    "it is {kind}, and the TLS library takes PKCS#8 only; convert it with `openssl pkcs8 -topk8 -nocrypt -in {path} -out {path}.pk8` and pass {path}.pk8"
                ),
            ));
        }
    }
    Ok(key_pem.to_vec())
}

/// Why an encrypted key cannot be used, with the command that decrypts it; `None` if it is not
/// encrypted.
fn encrypted(key_path: &Path, key_pem: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(key_pem);
    if !(text.contains(concat!("-----BEGIN ", "ENCRYPTED PRIVATE KEY-----"))
        || text.contains("Proc-Type: 4,ENCRYPTED"))
    {
        return None;
    }
    let path = key_path.display();
    Some(format!(
        "it is encrypted, and gracetls asks for no passphrase; decrypt it with `openssl pkcs8 -topk8 -nocrypt -in {path} -out {path}.pk8` and pass {path}.pk8"
    ))
}
