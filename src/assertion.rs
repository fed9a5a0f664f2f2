//! `X-SSO-Assertion`: the signed-in user as a short-lived JWT signed by the sidecar (ES256).
//! Plain identity headers are only as trustworthy as the network between the sidecar and
//! the backend; the assertion lets the backend check that a request really passed the
//! sidecar, for whom, and for which backend (`aud`). Public keys are served as a JWKS at
//! `/oauth2/jwks`.

use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{signing_key, Config};
use crate::principal::Principal;

/// How long an assertion is valid.
pub const LIFETIME_SECS: i64 = 60;
/// A session's assertion is reused while it has at least this long left: signing costs
/// more than the rest of a request, and a backend cannot tell the difference.
const REUSE_WHILE_LEFT_SECS: i64 = 30;
/// Bytes of assertions (and their keys) kept for reuse, at most: an assertion with a
/// few groups is ~1 KB, so ~1,800 sessions active within the reuse window are served
/// without signing again. 5,000 entries by count cost ~8 MiB after 100,000 sessions.
const RECENT_ASSERTION_BYTES: u64 = 2 << 20;

pub struct AssertionSigner {
    issuer: String,
    audience: String,
    header: Header,
    signing_key: EncodingKey,
    jwks: Bytes,
    /// (session id or bearer token digest, organization, access token expiry) →
    /// (assertion, its `exp`). The expiry changes at a refresh, when the identity may have
    /// changed too; a bearer token's organization is the route's.
    /// Kept as the header value it is sent as: a hit costs a reference count, not a copy
    /// and a check of every byte.
    recent: moka::sync::Cache<ReuseKey, (HeaderValue, i64)>,
}

/// What an assertion may be reused by: the credential, the organization and its expiry.
type ReuseKey = (String, Option<String>, Option<i64>);

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    organization: &'a str,
    identity_provider: &'a str,
    external_id: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    /// How the user signed in (step-up), as the IdP said.
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    amr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    iat: i64,
    exp: i64,
    jti: String,
}

impl AssertionSigner {
    /// `None` when `headers.assertion = false`.
    pub fn new(config: &Config) -> Option<Self> {
        let settings = config.headers.assertion.as_ref()?;
        let mut keys: Vec<p256::SecretKey> = settings
            .keys
            .iter()
            // Checked by `config::validate`; a key that fails here cannot occur.
            .filter_map(|pem| signing_key::parse(pem.expose()).ok())
            .collect();
        if keys.is_empty() {
            keys.push(generated_key().clone());
        }
        let public: Vec<serde_json::Value> = keys.iter().map(public_jwk).collect();
        let kid = public[0]["kid"].as_str().unwrap_or_default().to_owned();
        let der = keys[0].to_pkcs8_der().ok()?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid);
        let jwks = serde_json::json!({ "keys": public }).to_string();
        Some(AssertionSigner {
            issuer: issuer(config),
            audience: settings
                .audience
                .clone()
                .unwrap_or_else(|| config.server.upstream.url.origin().ascii_serialization()),
            header,
            signing_key: EncodingKey::from_ec_der(der.as_bytes()),
            jwks: Bytes::from(jwks),
            // The sessions active within an assertion's reuse window, within a byte budget.
            recent: moka::sync::Cache::builder()
                .weigher(|key: &ReuseKey, (token, _): &(HeaderValue, i64)| {
                    let key_bytes = key.0.len() + key.1.as_ref().map_or(0, String::len);
                    u32::try_from(token.len() + key_bytes + 96).unwrap_or(u32::MAX)
                })
                .max_capacity(RECENT_ASSERTION_BYTES)
                .time_to_live(Duration::from_secs(
                    (LIFETIME_SECS - REUSE_WHILE_LEFT_SECS) as u64,
                ))
                .build(),
        })
    }

    /// The JWKS document for `/oauth2/jwks`.
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }

    /// The assertion for a signed-in user, as a header value; `None` only if signing failed.
    pub fn assert(&self, user: &Principal, now: i64) -> Option<HeaderValue> {
        // Signing is most of a request's cost: a session reuses its assertion by its id,
        // a bearer caller by its (verified) token.
        let (reuse, expires_at) = user.reuse_key();
        let key = (reuse, user.organization().map(str::to_owned), expires_at);
        if let Some((token, exp)) = self.recent.get(&key) {
            if exp - now >= REUSE_WHILE_LEFT_SECS {
                return Some(token);
            }
        }
        // A compact JWS is base64url and dots: always a header value.
        let token = HeaderValue::try_from(self.sign(user, now)?).ok()?;
        self.recent
            .insert(key, (token.clone(), now.saturating_add(LIFETIME_SECS)));
        Some(token)
    }

    fn sign(&self, user: &Principal, now: i64) -> Option<String> {
        let identity = user.identity();
        let strength = user.strength();
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &identity.subject,
            email: identity.email.as_deref(),
            email_verified: identity.email.as_ref().map(|_| identity.email_verified),
            name: identity.name.as_deref(),
            preferred_username: identity.preferred_username.as_deref(),
            organization: user.organization().unwrap_or_default(),
            identity_provider: user.identity_provider(),
            external_id: &identity.external_id,
            groups: user.groups(),
            acr: strength.acr,
            amr: strength.amr,
            auth_time: strength.auth_time,
            iat: now,
            exp: now.saturating_add(LIFETIME_SECS),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.signing_key)
            .map_err(|e| tracing::error!(error = %e, "cannot sign X-SSO-Assertion"))
            .ok()
    }
}

/// `server.public_url` without a trailing slash: what the assertion's `iss` is.
fn issuer(config: &Config) -> String {
    config
        .server
        .public_url
        .as_ref()
        .map_or("sso-sidecar", |url| url.as_str())
        .trim_end_matches('/')
        .to_owned()
}

/// The key used when none is configured: made once per process, so a config reload keeps
/// it and backends keep verifying.
fn generated_key() -> &'static p256::SecretKey {
    static KEY: OnceLock<p256::SecretKey> = OnceLock::new();
    KEY.get_or_init(|| loop {
        // A random 256-bit number is a valid P-256 scalar but for ~2^-32 of cases.
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
            break key;
        }
    })
}

/// The public half as a JWK, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(key: &p256::SecretKey) -> serde_json::Value {
    let point = key.public_key().to_encoded_point(false);
    let x = URL_SAFE_NO_PAD.encode(point.x().map(|x| x.as_slice()).unwrap_or_default());
    let y = URL_SAFE_NO_PAD.encode(point.y().map(|y| y.as_slice()).unwrap_or_default());
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
        "kid": kid, "alg": "ES256", "use": "sig",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::principal::BearerCaller;
    use crate::session::{Identity, Session};
    use jsonwebtoken::{DecodingKey, Validation};

    const KEY_A: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmwA84Zo8+XmhFpbZ
+YOpLuVL89H5UEkjwLXPiIa0NaehRANCAASpHCaWWGw5zdYL8fenvbdz1nhz9OH7
pxNOnTY8iifmIsoGAJ5p6imdLRWNp/cUASShuec8rQDSrELERXjX+EaR
-----END PRIVATE KEY-----";

    const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn config(extra: &str) -> Config {
        let text = format!(
            "[server]\nupstream = \"http://127.0.0.1:9000\"\npublic_url = \"https://shop.example/\"\n[session]\nkeys = [\"{SESSION_KEY}\"]\n[headers]\n{extra}\n"
        );
        crate::config::from_str(&text, std::path::Path::new("t.toml")).unwrap()
    }

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            organization: "Operations".into(),
            identity_provider: "oidc_kc_1".into(),
            identity: Identity {
                subject: "u1".into(),
                email: Some("a@b".into()),
                external_id: "u1".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn user() -> Principal {
        Principal::from_session(Arc::new(session("s1")))
    }

    fn verify(signer: &AssertionSigner, token: &str) -> serde_json::Value {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&signer.jwks()).unwrap();
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let jwk = jwks.find(&kid).expect("the signing key is published");
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["http://127.0.0.1:9000"]);
        validation.set_issuer(&["https://shop.example"]);
        jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims
    }

    #[test]
    fn configured_key_signs_and_is_published() {
        let signer =
            AssertionSigner::new(&config(&format!("assertion_keys = [\"\"\"{KEY_A}\"\"\"]")))
                .unwrap();
        let now = chrono::Utc::now().timestamp();
        let token = signer.assert(&user(), now).unwrap();
        let claims = verify(&signer, token.to_str().unwrap());
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["organization"], "Operations");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
        // Same key, same kid: replicas with the configured key publish the same JWKS.
        let again =
            AssertionSigner::new(&config(&format!("assertion_keys = [\"\"\"{KEY_A}\"\"\"]")))
                .unwrap();
        assert_eq!(again.jwks(), signer.jwks());
    }

    #[test]
    fn generated_key_survives_a_rebuild_and_assertions_are_reused_briefly() {
        let a = AssertionSigner::new(&config("")).unwrap();
        let b = AssertionSigner::new(&config("")).unwrap();
        assert_eq!(a.jwks(), b.jwks());
        let now = 1_000_000;
        let first = a.assert(&user(), now).unwrap();
        assert_eq!(a.assert(&user(), now + 29).unwrap(), first);
        assert_ne!(a.assert(&user(), now + 31).unwrap(), first);
        let other = Principal::from_session(Arc::new(session("s2")));
        assert_ne!(a.assert(&other, now).unwrap(), first);
    }

    #[test]
    fn bearer_callers_reuse_by_token_and_organization() {
        let signer = AssertionSigner::new(&config("")).unwrap();
        let now = chrono::Utc::now().timestamp();
        let bearer = |token: &str, organization: &str| {
            Principal::from_bearer(BearerCaller {
                identity: session("").identity,
                organization: Some(organization.into()),
                token: token.into(),
                expires_at: now + 300,
                ..Default::default()
            })
        };
        let first = signer.assert(&bearer("t1", "a"), now).unwrap();
        assert_eq!(signer.assert(&bearer("t1", "a"), now + 1).unwrap(), first);
        assert_ne!(signer.assert(&bearer("t2", "a"), now + 1).unwrap(), first);
        let other_org = signer.assert(&bearer("t1", "b"), now + 1).unwrap();
        assert_ne!(other_org, first);
        assert_eq!(
            verify(&signer, other_org.to_str().unwrap())["organization"],
            "b"
        );
    }

    #[test]
    fn can_be_turned_off() {
        assert!(AssertionSigner::new(&config("assertion = false")).is_none());
    }
}
