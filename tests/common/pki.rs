//! A certificate authority made in the test (rcgen) and certificates it signs, for TLS
//! tests: the sidecar's own listener, an `https://` upstream, an IdP behind a company CA.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA; its certificates are written to a scratch folder.
pub struct Pki {
    dir: tempfile::TempDir,
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: a leaf with its issuer's name looks self-signed to OpenSSL.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sso-sidecar test CA");
        let ca = params.self_signed(&key).unwrap();
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names`, written as `<file>.pem` and `<file>-key.pem`.
    pub fn issue(&self, file: &str, names: &[&str]) -> (String, String) {
        self.issue_until(file, names, None)
    }

    pub fn issue_until(
        &self,
        file: &str,
        names: &[&str],
        not_after: Option<time::OffsetDateTime>,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if let Some(not_after) = not_after {
            params.not_after = not_after;
        }
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("sso-sidecar test {file}"),
        );
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}-key.pem"));
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), self.ca_pem)).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (
            cert_path.to_str().unwrap().to_owned(),
            key_path.to_str().unwrap().to_owned(),
        )
    }

    pub fn ca_path(&self) -> String {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path.to_str().unwrap().to_owned()
    }
}
