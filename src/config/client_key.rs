//! The keys that sign `private_key_jwt` client assertions: PKCS#8 PEM private keys, RSA
//! (RS256 or PS256, as the IdP offers) or P-256 (ES256).

use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;

/// A client signing key, read and checked.
#[derive(Clone)]
pub enum ClientKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::SecretKey),
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.write_str(match self {
            ClientKey::Rsa(_) => "ClientKey::Rsa(..)",
            ClientKey::P256(_) => "ClientKey::P256(..)",
        })
    }
}

/// Reads one PKCS#8 PEM private key; the error says what is wrong, never the key.
pub fn parse(pem: &str) -> Result<ClientKey, String> {
    let pem = pem.trim();
    if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
        return Ok(ClientKey::P256(key));
    }
    match rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
        Ok(key) if key.size() >= 256 => Ok(ClientKey::Rsa(Box::new(key))),
        Ok(_) => Err("is an RSA key shorter than 2048 bits".to_owned()),
        Err(_) => Err(
            "is not a PKCS#8 PEM private key, RSA or P-256 (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048)"
                .to_owned(),
        ),
    }
}
