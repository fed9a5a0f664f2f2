//! A test OpenID provider that misbehaves on purpose, one way per test id of the OpenID
//! Foundation's relying-party certification plans (Basic RP, Config RP, RP-initiated and
//! back-channel logout) and a refresh-token plan of ours. Written from the published test
//! descriptions; no code of the Foundation's tools.
//!
//! Every test id is an issuer of its own, `http://127.0.0.1:<port>/<test id>`, so one
//! server and one sidecar serve the whole suite. The OP is strict where the standard lets
//! an OP be strict: `offline_access` without `prompt=consent` is refused (OpenID Connect
//! Core §11), PKCE S256 is required, the registered client authentication method is the
//! only one accepted, and userinfo takes its token from the header only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "conformance-rp";
pub const CLIENT_SECRET: &str = "conformance-rp-secret-0123456789abcdef";
pub const SUBJECT: &str = "conformance-user";

/// A key the OP signs with, and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub alg: Algorithm,
    pub private: EncodingKey,
    pub public: Jwk,
}

impl SigningKey {
    /// A new key made by `openssl` (RSA 2048 or EC P-256), with `kid`.
    fn generate(alg: Algorithm, kid: Option<&str>) -> Self {
        let args: &[&str] = match alg {
            Algorithm::ES256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            _ => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        };
        let out = Command::new("openssl")
            .arg("genpkey")
            .args(args)
            .output()
            .expect("openssl is installed by scripts/install-deps.sh");
        assert!(out.status.success(), "openssl genpkey failed");
        let private = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&out.stdout).unwrap(),
            _ => EncodingKey::from_rsa_pem(&out.stdout).unwrap(),
        };
        let mut public = Jwk::from_encoding_key(&private, alg).unwrap();
        public.common.key_id = kid.map(str::to_owned);
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        SigningKey {
            alg,
            private,
            public,
        }
    }

    /// The same public key, published as an encryption key (`use: enc`, `RSA-OAEP`).
    fn as_encryption_key(&self, kid: &str) -> Jwk {
        let mut jwk = self.public.clone();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Encryption);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RSA_OAEP);
        jwk
    }

    pub fn sign(&self, claims: &Value, kid: Option<&str>, typ: Option<&str>) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.private).unwrap()
    }
}

/// `alg: none`: header and claims, no signature.
pub fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(&json!({"alg": "none", "typ": "JWT"})),
        part(claims)
    )
}

/// The OP's keys: the usual RS256 key, a second RSA key (rotation, several candidates, an
/// encryption key) and an EC key.
pub struct Keys {
    pub rsa: SigningKey,
    pub rsa2: SigningKey,
    pub ec: SigningKey,
    /// Sign tokens the OP did not issue (bad signatures), under its own key ids.
    pub foreign: SigningKey,
    pub foreign_ec: SigningKey,
}

impl Keys {
    fn generate() -> Self {
        Keys {
            rsa: SigningKey::generate(Algorithm::RS256, Some("rsa-1")),
            rsa2: SigningKey::generate(Algorithm::RS256, Some("rsa-2")),
            ec: SigningKey::generate(Algorithm::ES256, Some("ec-1")),
            foreign: SigningKey::generate(Algorithm::RS256, Some("rsa-1")),
            foreign_ec: SigningKey::generate(Algorithm::ES256, Some("ec-1")),
        }
    }
}

/// A code the OP handed out, waiting for the token request.
struct Grant {
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
}

/// What the OP saw, for the tests' assertions.
#[derive(Default, Clone, Debug)]
pub struct Seen {
    pub authorize: Vec<Map<String, Value>>,
    pub token_auth: Vec<String>,
    pub userinfo_calls: usize,
    pub end_session: Vec<HashMap<String, String>>,
    pub refreshes: usize,
    /// The `sid` of the last sign-in (each sign-in is an OP session of its own).
    pub last_sid: String,
}

#[derive(Default)]
struct PerTest {
    grants: HashMap<String, Grant>,
    /// Key rotation happened (`rp-key-rotation-op-sign-key`).
    rotated: bool,
    seen: Seen,
}

pub struct Op {
    pub addr: SocketAddr,
    base: String,
    pub keys: Arc<Keys>,
    state: Arc<Mutex<HashMap<String, PerTest>>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Shared {
    keys: Arc<Keys>,
    state: Arc<Mutex<HashMap<String, PerTest>>>,
    base: String,
}

impl Shared {
    fn issuer(&self, test: &str) -> String {
        format!("{}/{test}", self.base)
    }
}

impl Op {
    pub fn start() -> Self {
        Self::start_at(None)
    }

    /// An OP whose issuers live under `base` (e.g. `https://127.0.0.1:<port>` when a TLS
    /// proxy is in front of it); its own address otherwise.
    pub fn start_at(base: Option<String>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let keys = Arc::new(Keys::generate());
        let state: Arc<Mutex<HashMap<String, PerTest>>> = Arc::default();
        let base = base.unwrap_or_else(|| format!("http://127.0.0.1:{}", addr.port()));
        let shared = Shared {
            keys: keys.clone(),
            state: state.clone(),
            base: base.clone(),
        };
        let app = Router::new()
            .route("/{test}/.well-known/openid-configuration", get(discovery))
            .route("/{test}/jwks", get(jwks))
            .route("/{test}/authorize", get(authorize))
            .route("/{test}/token", axum::routing::post(token))
            .route("/{test}/userinfo", get(userinfo).post(userinfo))
            .route("/{test}/end_session", get(end_session))
            .with_state(shared);
        let runtime = super::common::serve_on(listener, app);
        Op {
            addr,
            base,
            keys,
            state,
            _runtime: runtime,
        }
    }

    pub fn issuer(&self, test: &str) -> String {
        format!("{}/{test}", self.base)
    }

    pub fn seen(&self, test: &str) -> Seen {
        let state = self.state.lock().unwrap();
        state.get(test).map(|t| t.seen.clone()).unwrap_or_default()
    }

    /// `rp-key-rotation-op-sign-key`: from now on the OP signs with its second key, and
    /// publishes only that one.
    pub fn rotate(&self, test: &str) {
        self.state
            .lock()
            .unwrap()
            .entry(test.into())
            .or_default()
            .rotated = true;
    }

    /// Base claims of a token of `test` for the conformance user.
    pub fn claims(&self, test: &str) -> Map<String, Value> {
        let now = super::common::unix_now();
        json!({"iss": self.issuer(test), "sub": SUBJECT, "aud": CLIENT_ID, "iat": now, "exp": now + 300})
            .as_object()
            .unwrap()
            .clone()
    }
}

async fn discovery(State(op): State<Shared>, Path(test): Path<String>) -> Json<Value> {
    let issuer = op.issuer(&test);
    let auth_methods = match test.as_str() {
        "rp-token_endpoint-client_secret_post" => json!(["client_secret_post"]),
        _ => json!(["client_secret_basic"]),
    };
    let algs = match test.as_str() {
        "rp-id_token-sig-none" | "rp-id_token-sig-none-by-default" => json!(["none"]),
        "rp-id_token-sig-es256" | "rp-id_token-bad-sig-es256" => json!(["ES256"]),
        _ => json!(["RS256"]),
    };
    let published_issuer = match test.as_str() {
        "rp-discovery-issuer-not-matching-config" => format!("{issuer}/other"),
        _ => issuer.clone(),
    };
    Json(json!({
        "issuer": published_issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/end_session"),
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    }))
}

async fn jwks(State(op): State<Shared>, Path(test): Path<String>) -> Json<JwkSet> {
    let rotated = op
        .state
        .lock()
        .unwrap()
        .get(&test)
        .is_some_and(|t| t.rotated);
    let k = &op.keys;
    let keys = match test.as_str() {
        // Besides the one RSA signing key: an encryption key and an EC key, neither of
        // which an RS256 token without `kid` can mean.
        "rp-id_token-kid-absent-single-jwks" => {
            vec![
                k.rsa.public.clone(),
                k.rsa2.as_encryption_key("enc-1"),
                k.ec.public.clone(),
            ]
        }
        "rp-id_token-kid-absent-multiple-jwks" => vec![k.rsa.public.clone(), k.rsa2.public.clone()],
        "rp-id_token-sig-es256" | "rp-id_token-bad-sig-es256" => vec![k.ec.public.clone()],
        "rp-key-rotation-op-sign-key" if rotated => vec![k.rsa2.public.clone()],
        _ => vec![k.rsa.public.clone(), k.ec.public.clone()],
    };
    Json(JwkSet { keys })
}

fn error_redirect(redirect_uri: &str, error: &str, state: Option<&str>) -> Response {
    let mut url = url::Url::parse(redirect_uri).unwrap();
    url.query_pairs_mut().append_pair("error", error);
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(url.as_str()).into_response()
}

async fn authorize(
    State(op): State<Shared>,
    Path(test): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str);
    let Some(redirect_uri) = param("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "redirect_uri missing").into_response();
    };
    let state = param("state");
    let mut state_map = op.state.lock().unwrap();
    let entry = state_map.entry(test.clone()).or_default();
    entry
        .seen
        .authorize
        .push(params.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
    let scopes: Vec<&str> = param("scope").unwrap_or_default().split(' ').collect();
    let prompts: Vec<&str> = param("prompt").unwrap_or_default().split(' ').collect();
    // Core §11: offline_access means nothing without a consent prompt; a strict OP says so.
    if scopes.contains(&"offline_access") && !prompts.contains(&"consent") {
        return error_redirect(redirect_uri, "invalid_request", state);
    }
    if !scopes.contains(&"openid")
        || param("response_type") != Some("code")
        || param("client_id") != Some(CLIENT_ID)
        || param("code_challenge_method") != Some("S256")
    {
        return error_redirect(redirect_uri, "invalid_request", state);
    }
    let code = format!("code-{}", rand::random::<u64>());
    entry.grants.insert(
        code.clone(),
        Grant {
            nonce: param("nonce").map(str::to_owned),
            challenge: param("code_challenge").unwrap_or_default().to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        },
    );
    let mut url = url::Url::parse(redirect_uri).unwrap();
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(url.as_str()).into_response()
}

fn token_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

/// How the client authenticated, if it did as registered.
fn client_auth(test: &str, headers: &HeaderMap, form: &HashMap<String, String>) -> Option<String> {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    if test == "rp-token_endpoint-client_secret_post" {
        let by_body = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
        return (by_body && basic.is_none()).then(|| "client_secret_post".into());
    }
    (basic.as_deref() == Some(expected.as_str()) && !form.contains_key("client_secret"))
        .then(|| "client_secret_basic".into())
}

async fn token(
    State(op): State<Shared>,
    Path(test): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(auth) = client_auth(&test, &headers, &form) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    };
    let mut state_map = op.state.lock().unwrap();
    let entry = state_map.entry(test.clone()).or_default();
    entry.seen.token_auth.push(auth);
    let issuer = op.issuer(&test);
    let now = super::common::unix_now();
    let refresh = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    let sid = match refresh {
        true => entry.seen.last_sid.clone(),
        false => format!("sid-{test}-{}", entry.seen.token_auth.len()),
    };
    entry.seen.last_sid = sid.clone();
    let mut claims = json!({"iss": issuer, "sub": SUBJECT, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "sid": sid});
    if refresh {
        if form.get("refresh_token").map(String::as_str) != Some(&format!("rt-{test}")) {
            return token_error("invalid_grant");
        }
        entry.seen.refreshes += 1;
    } else {
        let code = form.get("code").cloned().unwrap_or_default();
        let Some(grant) = entry.grants.remove(&code) else {
            return token_error("invalid_grant");
        };
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if challenge != grant.challenge
            || form.get("redirect_uri").map(String::as_str) != Some(&grant.redirect_uri)
        {
            return token_error("invalid_grant");
        }
        if let Some(nonce) = grant.nonce {
            claims["nonce"] = json!(nonce);
        }
    }
    // Profile claims in the ID token, except where a test needs them from userinfo.
    let from_userinfo = matches!(
        test.as_str(),
        "rp-scope-userinfo-claims" | "rp-userinfo-bad-sub-claim" | "rp-userinfo-bearer-header"
    );
    if !from_userinfo {
        claims["email"] = json!(format!("{SUBJECT}@{test}.example"));
        claims["name"] = json!("Conformance User");
        claims["preferred_username"] = json!(SUBJECT);
    }
    let k = &op.keys;
    let mut signer = &k.rsa;
    let mut kid = Some("rsa-1");
    match (test.as_str(), refresh) {
        ("rp-nonce-invalid", _) => claims["nonce"] = json!("not-the-nonce-sent"),
        ("rp-id_token-aud", _) => claims["aud"] = json!("someone-else"),
        ("rp-id_token-issuer-mismatch", _) => claims["iss"] = json!("https://other.example"),
        ("rp-id_token-iat", _) => drop(claims.as_object_mut().unwrap().remove("iat")),
        ("rp-id_token-sub", _) => drop(claims.as_object_mut().unwrap().remove("sub")),
        ("rp-id_token-kid-absent-single-jwks" | "rp-id_token-kid-absent-multiple-jwks", _) => {
            kid = None
        }
        ("rp-id_token-bad-sig-rs256", _) => signer = &k.foreign,
        ("rp-id_token-sig-es256", _) => (signer, kid) = (&k.ec, Some("ec-1")),
        ("rp-id_token-bad-sig-es256", _) => (signer, kid) = (&k.foreign_ec, Some("ec-1")),
        ("rp-key-rotation-op-sign-key", _) if entry.rotated => {
            (signer, kid) = (&k.rsa2, Some("rsa-2"))
        }
        ("rp-refresh-token-changed-sub", true) => claims["sub"] = json!("someone-else"),
        ("rp-refresh-token-changed-iss", true) => {
            // Another issuer the RP knows (an entry of its own): a valid token of that
            // issuer must still not continue this session.
            claims["iss"] = json!(op.issuer("rp-refresh-token"));
        }
        ("rp-refresh-token-bad-sig", true) => signer = &k.foreign,
        _ => {}
    }
    let id_token = match test.as_str() {
        "rp-id_token-sig-none" | "rp-id_token-sig-none-by-default" => unsigned(&claims),
        "rp-id_token-bad-sig-hs256" => {
            let key = EncodingKey::from_secret(CLIENT_SECRET.as_bytes());
            let mut tampered = claims.clone();
            tampered["sub"] = json!("tampered");
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &tampered, &key).unwrap()
        }
        _ => signer.sign(&claims, kid, None),
    };
    let expires_in = if test.starts_with("rp-refresh-token") {
        5
    } else {
        300
    };
    Json(json!({
        "access_token": format!("at-{test}-{}", rand::random::<u32>()),
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": format!("rt-{test}"),
        "id_token": id_token,
    }))
    .into_response()
}

async fn userinfo(
    State(op): State<Shared>,
    Path(test): Path<String>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer at-"));
    if !bearer {
        return (
            StatusCode::UNAUTHORIZED,
            "bearer token in the header expected",
        )
            .into_response();
    }
    let mut state_map = op.state.lock().unwrap();
    state_map
        .entry(test.clone())
        .or_default()
        .seen
        .userinfo_calls += 1;
    let sub = match test.as_str() {
        "rp-userinfo-bad-sub-claim" => "another-user",
        _ => SUBJECT,
    };
    Json(json!({
        "sub": sub,
        "email": format!("from-userinfo@{test}.example"),
        "name": "Userinfo User",
        "preferred_username": "userinfo-user",
    }))
    .into_response()
}

async fn end_session(
    State(op): State<Shared>,
    Path(test): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut state_map = op.state.lock().unwrap();
    state_map
        .entry(test)
        .or_default()
        .seen
        .end_session
        .push(params.clone());
    match params.get("post_logout_redirect_uri") {
        Some(uri) => {
            let mut url = url::Url::parse(uri).unwrap();
            if let Some(state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => "signed out at the OP".into_response(),
    }
}
