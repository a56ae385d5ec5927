//! Temporary directories and the test PKI: a CA, leaves for the server and the client, and the untrusted and wrong-name variants, made with rcgen at run time.

use super::*;

/// A temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("gracetls-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// All certificates a test may need, generated at run time.
pub struct Pki {
    /// Keeps the files alive; removed on drop.
    pub dir: TempDir,
    /// The CA the client is told to trust (`--ca-file`).
    pub ca: PathBuf,
    /// Leaf for DNS `localhost` + IP 127.0.0.1, signed by `ca`.
    pub server: CertFiles,
    /// A second, independent CA that the client does not trust.
    pub other_ca: PathBuf,
    /// Leaf for `localhost` + 127.0.0.1, signed by `other_ca` (untrusted).
    pub untrusted: CertFiles,
    /// Leaf for `wrong.example` only, signed by `ca`.
    pub wrong_name: CertFiles,
    /// Client certificate (clientAuth), signed by `ca`.
    pub client: CertFiles,
    /// Signs what [`Pki::leaf`] makes.
    ca_issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Leaf for `localhost` only (no IP address), signed by `ca`: the proxy tests tell the
    /// target's name from the proxy's with it.
    pub localhost_only: CertFiles,
}

struct Ca {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn dn(common_name: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "gracetls tests");
    dn.push(rcgen::DnType::CommonName, common_name);
    dn
}

fn make_ca(common_name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name = dn(common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca {
        cert_pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A CA signed by `parent`: an intermediate.
fn make_intermediate(parent: &Ca, common_name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name = dn(common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("intermediate key");
    let cert = params
        .signed_by(&key, &parent.issuer)
        .expect("sign intermediate");
    Ca {
        cert_pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A server certificate chain of `sent` certificates, as the server sends it: a leaf for
/// `localhost` and 127.0.0.1, then `sent - 1` intermediates, each issued by the next; the
/// last is issued by a root that only the returned CA file holds. Files go into `dir`.
pub fn long_chain(dir: &TempDir, sent: usize) -> (PathBuf, CertFiles) {
    let root = make_ca("gracetls chain root");
    let mut issuers = vec![root];
    for i in 1..sent.max(1) {
        let next = make_intermediate(&issuers[i - 1], &format!("gracetls chain intermediate {i}"));
        issuers.push(next);
    }
    let last = issuers.last().expect("the root at least");
    let (leaf, key) = make_leaf(
        last,
        "localhost",
        &["localhost", "127.0.0.1"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let mut chain = leaf;
    for intermediate in issuers[1..].iter().rev() {
        chain.push_str(&intermediate.cert_pem);
    }
    let ca = dir.write(
        &format!("chain{sent}-root.pem"),
        issuers[0].cert_pem.as_bytes(),
    );
    let files = CertFiles {
        cert: dir.write(&format!("chain{sent}.pem"), chain.as_bytes()),
        key: dir.write(&format!("chain{sent}.key"), key.as_bytes()),
    };
    (ca, files)
}

fn make_leaf(
    ca: &Ca,
    common_name: &str,
    names: &[&str],
    eku: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
    params.distinguished_name = dn(common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let dir = TempDir::new("pki");
        let ca = make_ca("gracetls test CA");
        let other = make_ca("gracetls OTHER (untrusted) CA");
        let write_pair = |name: &str, (cert, key): (String, String)| CertFiles {
            cert: dir.write(&format!("{name}.pem"), cert.as_bytes()),
            key: dir.write(&format!("{name}.key"), key.as_bytes()),
        };
        let server = write_pair(
            "server",
            make_leaf(&ca, "localhost", &["localhost", "127.0.0.1"], ServerAuth),
        );
        let untrusted = write_pair(
            "untrusted",
            make_leaf(&other, "localhost", &["localhost", "127.0.0.1"], ServerAuth),
        );
        let wrong_name = write_pair(
            "wrong-name",
            make_leaf(&ca, "wrong.example", &["wrong.example"], ServerAuth),
        );
        let client = write_pair(
            "client",
            make_leaf(&ca, "gracetls test client", &["client.example"], ClientAuth),
        );
        let localhost_only = write_pair(
            "localhost-only",
            make_leaf(&ca, "localhost", &["localhost"], ServerAuth),
        );
        let ca_path = dir.write("ca.pem", ca.cert_pem.as_bytes());
        let other_ca = dir.write("other-ca.pem", other.cert_pem.as_bytes());
        Pki {
            ca: ca_path,
            server,
            other_ca,
            untrusted,
            wrong_name,
            client,
            localhost_only,
            dir,
            ca_issuer: ca.issuer,
        }
    }

    /// A leaf made from `params` as the test wrote them (subject, names, dates, usages),
    /// signed by `ca`, written as NAME.pem and NAME.key; also its certificate's PEM.
    pub fn leaf(&self, name: &str, params: rcgen::CertificateParams) -> (CertFiles, String) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca_issuer).expect("sign leaf");
        let files = CertFiles {
            cert: self
                .dir
                .write(&format!("{name}.pem"), cert.pem().as_bytes()),
            key: self
                .dir
                .write(&format!("{name}.key"), key.serialize_pem().as_bytes()),
        };
        (files, cert.pem())
    }

    /// `--ca-file <test CA>`, as client arguments.
    pub fn ca_args(&self) -> Vec<String> {
        vec!["--ca-file".into(), self.ca.display().to_string()]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}
