//! The keys that sign `X-SSO-Assertion`: P-256 private keys as PKCS#8 PEM, the form
//! `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes.

use p256::pkcs8::DecodePrivateKey;

/// Reads one PKCS#8 PEM P-256 private key; the error says what is wrong, never the key.
pub fn parse(pem: &str) -> Result<p256::SecretKey, String> {
    p256::SecretKey::from_pkcs8_pem(pem.trim()).map_err(|_| {
        "is not a PKCS#8 PEM P-256 private key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)".to_owned()
    })
}

pub fn check(pem: &str) -> Result<(), String> {
    parse(pem).map(|_| ())
}
