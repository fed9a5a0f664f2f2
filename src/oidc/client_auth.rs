//! How the sidecar proves to an IdP that it is the client (OAuth 2.0 client
//! authentication): the secret by HTTP Basic or in the form, a JWT signed with the secret
//! (`client_secret_jwt`) or with a private key (`private_key_jwt`, RFC 7523), or the TLS
//! client certificate (`tls_client_auth`, RFC 8705, presented by the IdP's HTTP client).
//! The same proof goes with every call that needs one: token, refresh, PAR, introspection,
//! revocation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openidconnect::core::CoreClientAuthMethod;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

use super::metadata::Metadata;
use crate::config::client_key::ClientKey;
use crate::config::{OidcProvider, Secret, TokenEndpointAuth};

/// A client assertion is valid this long (RFC 7523 §3: short-lived).
const ASSERTION_LIFETIME_SECS: i64 = 60;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// One IdP's client authentication, decided at discovery.
pub struct ClientAuth {
    pub method: TokenEndpointAuth,
    client_id: String,
    secret: Secret,
    /// Signs `private_key_jwt` assertions (the first configured key).
    signer: Option<KeySigner>,
    /// Who assertions are for: the IdP's issuer identifier.
    audience: String,
}

struct KeySigner {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: String,
}

/// What a form post to the IdP carries to authenticate: HTTP Basic credentials, or fields.
pub struct Credentials {
    pub basic: Option<(String, String)>,
    pub fields: Vec<(&'static str, String)>,
}

impl ClientAuth {
    /// The configured method, or else the first secret method the IdP offers (Basic unless
    /// it offers only the form).
    pub fn choose(config: &OidcProvider, metadata: &Metadata) -> Self {
        let method = config.token_endpoint_auth.unwrap_or_else(|| {
            let basic = metadata
                .token_endpoint_auth_methods_supported()
                .is_none_or(|methods| {
                    methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                        || !methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                });
            match basic {
                true => TokenEndpointAuth::ClientSecretBasic,
                false => TokenEndpointAuth::ClientSecretPost,
            }
        });
        let offered: Vec<String> = (metadata.token_endpoint_auth_signing_alg_values_supported())
            .map(|algs| {
                (algs.iter())
                    .filter_map(|a| serde_json::to_value(a).ok()?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let signer = match method {
            TokenEndpointAuth::PrivateKeyJwt => {
                (config.client_signing_keys.first()).and_then(|key| key_signer(key, &offered))
            }
            _ => None,
        };
        ClientAuth {
            method,
            client_id: config.client_id.clone(),
            secret: config.client_secret.clone(),
            signer,
            audience: config.issuer.clone(),
        }
    }

    /// The credentials of one call, with a fresh assertion where the method signs one.
    pub fn credentials(&self) -> Credentials {
        let id = ("client_id", self.client_id.clone());
        match self.method {
            TokenEndpointAuth::ClientSecretBasic => Credentials {
                // RFC 6749 §2.3.1: both form-urlencoded before they go into Basic.
                basic: Some((
                    form_encoded(&self.client_id),
                    form_encoded(self.secret.expose()),
                )),
                fields: Vec::new(),
            },
            TokenEndpointAuth::ClientSecretPost => Credentials {
                basic: None,
                fields: vec![id, ("client_secret", self.secret.expose().to_owned())],
            },
            TokenEndpointAuth::TlsClientAuth => Credentials {
                basic: None,
                fields: vec![id],
            },
            TokenEndpointAuth::ClientSecretJwt | TokenEndpointAuth::PrivateKeyJwt => {
                let mut fields = vec![id, ("client_assertion_type", ASSERTION_TYPE.to_owned())];
                fields.extend(self.assertion().map(|jwt| ("client_assertion", jwt)));
                Credentials {
                    basic: None,
                    fields,
                }
            }
        }
    }

    /// The fields a token request built by `openidconnect` needs beyond what the library
    /// sends itself (the client id, and the secret of the secret methods): the assertion.
    pub fn assertion_fields(&self) -> Vec<(&'static str, String)> {
        match self.method {
            TokenEndpointAuth::ClientSecretJwt | TokenEndpointAuth::PrivateKeyJwt => {
                (self.credentials().fields.into_iter())
                    .filter(|(name, _)| *name != "client_id")
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// A form body with its `client_assertion` (if any) replaced by a fresh one.
    pub fn reassert(&self, body: &[u8]) -> Vec<u8> {
        let Some(fresh) = self.assertion() else {
            return body.to_vec();
        };
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(body) {
            match name.as_ref() {
                "client_assertion" => out.append_pair(&name, &fresh),
                _ => out.append_pair(&name, &value),
            };
        }
        out.finish().into_bytes()
    }

    /// A form post to `url` with `form`, authenticated.
    pub fn post(
        &self,
        http: &reqwest::Client,
        url: &str,
        form: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let credentials = self.credentials();
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        for (name, value) in &credentials.fields {
            if !form.iter().any(|(present, _)| present == name) {
                fields.push((name, value.as_str()));
            }
        }
        let request = http.post(url).form(&fields);
        match &credentials.basic {
            Some((id, secret)) => request.basic_auth(id, Some(secret)),
            None => request,
        }
    }

    /// The client assertion (RFC 7523 §3): `iss` and `sub` the client id, `aud` the IdP,
    /// a fresh `jti`, valid for a minute.
    fn assertion(&self) -> Option<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        match (&self.method, &self.signer) {
            (TokenEndpointAuth::PrivateKeyJwt, Some(signer)) => {
                let mut header = Header::new(signer.algorithm);
                header.kid = Some(signer.kid.clone());
                jsonwebtoken::encode(&header, &claims, &signer.key).ok()
            }
            (TokenEndpointAuth::ClientSecretJwt, _) => {
                let key = EncodingKey::from_secret(self.secret.expose().as_bytes());
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).ok()
            }
            _ => None,
        }
    }
}

fn form_encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A signer for a configured key: ES256 for P-256; for RSA, RS256 unless the IdP lists
/// only PS256.
fn key_signer(key: &ClientKey, offered: &[String]) -> Option<KeySigner> {
    let (encoding, algorithm) = match key {
        ClientKey::P256(secret) => {
            use p256::pkcs8::EncodePrivateKey as _;
            let der = secret.to_pkcs8_der().ok()?;
            (EncodingKey::from_ec_der(der.as_bytes()), Algorithm::ES256)
        }
        ClientKey::Rsa(private) => {
            let der = private.to_pkcs1_der().ok()?;
            let pss_only =
                offered.iter().any(|a| a == "PS256") && !offered.iter().any(|a| a == "RS256");
            let algorithm = match pss_only {
                true => Algorithm::PS256,
                false => Algorithm::RS256,
            };
            (EncodingKey::from_rsa_der(der.as_bytes()), algorithm)
        }
    };
    Some(KeySigner {
        key: encoding,
        algorithm,
        kid: thumbprint(key),
    })
}

/// `/oauth2/client-jwks`: the public keys of every IdP's `client_signing_key`, once each;
/// `None` when no IdP has one.
pub fn client_jwks(config: &crate::config::Config) -> Option<bytes::Bytes> {
    let mut keys: Vec<serde_json::Value> = Vec::new();
    for key in (config.identity_providers.values())
        .filter_map(|idp| idp.oidc())
        .flat_map(|oidc| &oidc.client_signing_keys)
    {
        let jwk = public_jwk(key);
        if !keys.iter().any(|k| k["kid"] == jwk["kid"]) {
            keys.push(jwk);
        }
    }
    (!keys.is_empty()).then(|| bytes::Bytes::from(serde_json::json!({ "keys": keys }).to_string()))
}

/// The public JWK of a client key, as `/oauth2/client-jwks` publishes it.
pub fn public_jwk(key: &ClientKey) -> serde_json::Value {
    let mut jwk = public_members(key);
    jwk["kid"] = thumbprint(key).into();
    jwk["use"] = "sig".into();
    jwk
}

/// The required members of the public JWK, in RFC 7638's order.
fn public_members(key: &ClientKey) -> serde_json::Value {
    match key {
        ClientKey::P256(secret) => {
            let point = secret.public_key().to_encoded_point(false);
            serde_json::json!({
                "crv": "P-256",
                "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(point.x().map(|x| x.as_slice()).unwrap_or_default()),
                "y": URL_SAFE_NO_PAD.encode(point.y().map(|y| y.as_slice()).unwrap_or_default()),
            })
        }
        ClientKey::Rsa(private) => rsa_members(private.n(), private.e()),
    }
}

fn rsa_members(n: &rsa::BigUint, e: &rsa::BigUint) -> serde_json::Value {
    serde_json::json!({
        "e": URL_SAFE_NO_PAD.encode(e.to_bytes_be()),
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(n.to_bytes_be()),
    })
}

/// RFC 7638 thumbprint: the key id, stable for a key whatever the config calls it.
fn thumbprint(key: &ClientKey) -> String {
    thumbprint_of(&public_members(key))
}

fn thumbprint_of(members: &serde_json::Value) -> String {
    // serde_json keeps object members sorted and writes no spaces: the canonical form
    // RFC 7638 asks for.
    URL_SAFE_NO_PAD.encode(Sha256::digest(members.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let e = "AQAB";
        let number = |b64: &str| rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(b64).unwrap());
        assert_eq!(
            thumbprint_of(&rsa_members(&number(n), &number(e))),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
