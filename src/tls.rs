//! TLS termination (`server.tls`): the certificate chain and key, parsed and matched once
//! by validation, served by a resolver whose certificate a reload swaps without dropping a
//! connection (handshakes after the swap get the new one).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A parsed and checked certificate chain with its key.
#[derive(Clone)]
pub struct ServerCertificate {
    pub key: Arc<CertifiedKey>,
    /// The leaf certificate's `notAfter`, Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl ServerCertificate {
    /// From PEM text: the chain (leaf first) and a PKCS#8, PKCS#1 or SEC1 key. The error
    /// names which part is wrong and never repeats the key.
    pub fn from_pem(chain: &str, key: &str) -> Result<Self, &'static str> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| "cert: not a PEM certificate chain")?;
        let leaf = certs.first().ok_or("cert: no certificate in the PEM")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|_| "cert: not an X.509 certificate")?;
        let expires_at = parsed.validity().not_after.timestamp();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|_| "key: not a PEM private key")?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|_| "key: not a supported key type (RSA, ECDSA P-256/P-384, Ed25519)")?;
        let certified = CertifiedKey::new(certs, signing);
        certified
            .keys_match()
            .map_err(|_| "key: does not belong to the certificate")?;
        Ok(ServerCertificate {
            key: Arc::new(certified),
            expires_at,
        })
    }
}

/// Serves the current certificate to every handshake; [`CertificateResolver::replace`]
/// swaps it (SIGHUP).
#[derive(Debug)]
pub struct CertificateResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertificateResolver {
    pub fn new(certificate: &ServerCertificate) -> Self {
        CertificateResolver {
            current: ArcSwap::new(certificate.key.clone()),
        }
    }

    pub fn replace(&self, certificate: &ServerCertificate) {
        self.current.store(certificate.key.clone());
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
