//! A throwaway CA and a `localhost` / 127.0.0.1 leaf, made at start-up, for the examples'
//! servers: no key is ever written to disk, only the CA certificate the client must trust.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// The CA's certificate (PEM, for the client's `--ca-file`) and the leaf the server presents.
pub struct LocalPki {
    pub ca_pem: String,
    pub leaf: Certificate,
    pub leaf_key: KeyPair,
}

/// Makes a CA named `ca_name` and a leaf it signed for `localhost` and 127.0.0.1.
pub fn local_pki(ca_name: &str) -> Result<LocalPki, rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
    Ok(LocalPki {
        ca_pem: ca_cert.pem(),
        leaf,
        leaf_key,
    })
}
