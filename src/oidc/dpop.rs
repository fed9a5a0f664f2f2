//! DPoP (RFC 9449): proofs that the sidecar holds the key a session's tokens are bound to,
//! on every call that uses them (token, refresh, userinfo), and the one retry an IdP may
//! ask for with a fresh `DPoP-Nonce` (§8).

use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openidconnect::{HttpClientError, HttpRequest, HttpResponse};
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use sha2::{Digest as _, Sha256};

use crate::session::DpopKey;

/// A fresh key for a new session.
pub fn new_key() -> DpopKey {
    loop {
        let bytes: [u8; 32] = rand::random();
        if p256::SecretKey::from_slice(&bytes).is_ok() {
            return DpopKey(bytes.to_vec());
        }
    }
}

/// Signs proofs with a session's key; `nonce` is the IdP's latest `DPoP-Nonce`.
pub struct Prover<'a> {
    key: p256::ecdsa::SigningKey,
    jwk: serde_json::Value,
    nonce: &'a Mutex<Option<String>>,
}

impl<'a> Prover<'a> {
    /// `None` for bytes that are not a P-256 key (a session sealed by a broken build).
    pub fn new(key: &DpopKey, nonce: &'a Mutex<Option<String>>) -> Option<Self> {
        let secret = p256::SecretKey::from_slice(&key.0).ok()?;
        let point = secret.public_key().to_encoded_point(false);
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x()?),
            "y": URL_SAFE_NO_PAD.encode(point.y()?),
        });
        Some(Prover {
            key: p256::ecdsa::SigningKey::from(secret),
            jwk,
            nonce,
        })
    }

    /// A proof for `method` on `url` (query and fragment left out, §4.2); with the access
    /// token it goes with (`ath`) on resource calls.
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = serde_json::json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": method,
            "htu": htu,
            "iat": chrono::Utc::now().timestamp(),
        });
        if let Some(nonce) = self.nonce.lock().ok().and_then(|n| n.clone()) {
            claims["nonce"] = nonce.into();
        }
        if let Some(token) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(Sha256::digest(token.as_bytes()))
                .into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// The `jkt` of RFC 9449 §6.1: the key's JWK SHA-256 thumbprint (RFC 7638).
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap_or_default(),
            self.jwk["y"].as_str().unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    fn remember_nonce(&self, response: &reqwest::Response) -> bool {
        let fresh = (response.headers().get("dpop-nonce"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match (fresh, self.nonce.lock()) {
            (Some(fresh), Ok(mut nonce)) if nonce.as_deref() != Some(fresh.as_str()) => {
                *nonce = Some(fresh);
                true
            }
            _ => false,
        }
    }
}

/// The HTTP client `openidconnect` requests go through: [`send`] with a session's prover.
pub struct DpopHttp<'a> {
    pub http: &'a reqwest::Client,
    pub prover: Option<&'a Prover<'a>>,
    /// The client's authentication, to sign a new assertion for the retry (an IdP takes
    /// each one only once).
    pub client: Option<&'a super::client_auth::ClientAuth>,
}

impl<'c> openidconnect::AsyncHttpClient<'c> for DpopHttp<'_> {
    type Error = HttpClientError<reqwest::Error>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(self.http, request, self.prover, self.client))
    }
}

/// Sends an OAuth request built by `openidconnect`, with a DPoP proof when `prover` is set
/// (a bearer `Authorization` then becomes `DPoP`, with the token's hash in the proof), and
/// once more with the IdP's new nonce when it answers `use_dpop_nonce`.
pub async fn send(
    http: &reqwest::Client,
    request: HttpRequest,
    prover: Option<&Prover<'_>>,
    client: Option<&super::client_auth::ClientAuth>,
) -> Result<HttpResponse, HttpClientError<reqwest::Error>> {
    let url = request.uri().to_string();
    let method = request.method().clone();
    let mut headers = request.headers().clone();
    let access_token = (headers.get(http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let (Some(_), Some(token)) = (prover, &access_token) {
        let value = http::HeaderValue::from_str(&format!("DPoP {token}"))
            .map_err(|e| HttpClientError::Other(e.to_string()))?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    let mut body = request.into_body();
    for attempt in 0..2 {
        if attempt > 0 {
            body = client.map_or(body.clone(), |c| c.reassert(&body));
        }
        let mut call = (http.request(method.clone(), &url))
            .headers(headers.clone())
            .body(body.clone());
        if let Some(prover) = prover {
            call = call.header(
                "DPoP",
                prover.proof(method.as_str(), &url, access_token.as_deref()),
            );
        }
        let response = call.send().await.map_err(Box::new)?;
        // `use_dpop_nonce` (§8, §9) comes as a 400 (token endpoint) or 401 (resource)
        // with a new nonce: one more try with it.
        let refused = matches!(response.status().as_u16(), 400 | 401);
        let renewed = prover.is_some_and(|p| p.remember_nonce(&response));
        if attempt == 0 && refused && renewed {
            continue;
        }
        return into_http_response(response).await;
    }
    Err(HttpClientError::Other(
        "no answer after the DPoP nonce retry".into(),
    ))
}

async fn into_http_response(
    response: reqwest::Response,
) -> Result<HttpResponse, HttpClientError<reqwest::Error>> {
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await.map_err(Box::new)?;
    builder.body(body.to_vec()).map_err(HttpClientError::Http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_an_es256_jwt_of_its_key_for_the_call() {
        let key = new_key();
        let nonce = Mutex::new(Some("n-1".to_owned()));
        let prover = Prover::new(&key, &nonce).unwrap();
        let proof = prover.proof("POST", "https://idp.example/token?x=1#f", Some("at"));
        let header = crate::jwt::jwt_part(&proof, 0).unwrap();
        let claims = crate::jwt::jwt_part(&proof, 1).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(header["jwk"].get("d").is_none(), "never the private part");
        assert_eq!(claims["htu"], "https://idp.example/token");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(b"at")));
        // The signature verifies with the public key in the header.
        let (input, signature) = proof.rsplit_once('.').unwrap();
        let public = p256::SecretKey::from_slice(&key.0).unwrap().public_key();
        let verifying = p256::ecdsa::VerifyingKey::from(public);
        let signature =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap())
                .unwrap();
        use p256::ecdsa::signature::Verifier as _;
        assert!(verifying.verify(input.as_bytes(), &signature).is_ok());
        // Two proofs never share a jti.
        let again = prover.proof("POST", "https://idp.example/token", None);
        assert_ne!(
            crate::jwt::jwt_part(&again, 1).unwrap()["jti"],
            claims["jti"]
        );
    }
}
