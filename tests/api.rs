//! `api` routes with bearer tokens from the real provider (JWT access tokens from one shaped
//! like Azure AD, opaque ones checked by introspection at another), and `/oauth2/introspect`
//! as commercetools' external OAuth server.

mod common;

use common::*;
use serde_json::json;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
public_url = "{public_url}"

[admin]
listen = "{admin}"

[oidc]
remote = "supported"
max_clock_skew = "5s"

[session]
keys = ["{session_key}"]
secure = false

[headers]
forward_access_token = true

[identity_providers.ad]
type = "oidc"
name = "Azure AD"
issuer = "{ad_issuer}"
client_id = "shop"
client_secret = "shop-secret"
audiences = ["api://shop"]
algorithms = ["RS256"]
access_token_type = "at+jwt"

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"
introspection = true

# A second entry of the same realm and client, as the ICM example's oidc_kc_1 and _2.
[identity_providers.kc_2]
type = "oidc"
name = "Keycloak (Myers)"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.inTRONICS]
external_name = "inTRONICS"
identity_providers = ["ad"]

[organizations.inSPIRED]
external_name = "inSPIRED"
identity_providers = ["kc"]

[organizations.Myers]
external_name = "Myers"
identity_providers = ["kc_2"]

[commercetools]
client_id = "commercetools"
client_secret = "ct-secret"
project_key = "shop-eu"
scope_claim = "groups"
[commercetools.scope_mapping]
buyers = ["manage_my_quote_requests:{projectKey}"]

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/api/inspired/"
auth = "api"
organization = "inSPIRED"

[[routes]]
path_prefix = "/api/"
auth = "api"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

struct Api {
    upstream: Upstream,
    ad: Idp,
    kc: Idp,
    sidecar: Sidecar,
}

fn api() -> Api {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let ad = Idp::for_sidecar(
        ports,
        json!({"azure": true, "issuerPath": "/tenant/v2.0", "jwtAccessTokens": "api://shop", "users": {"buyer": {"groups": ["buyers"]}}}),
    );
    let kc = Idp::for_sidecar(ports, json!({}));
    let config = CONFIG
        .replace("{ad_issuer}", &ad.issuer)
        .replace("{kc_issuer}", &kc.issuer);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();
    Api {
        upstream,
        ad,
        kc,
        sidecar,
    }
}

impl Api {
    /// Signs in through the sidecar and returns the access token the IdP issued.
    fn access_token(&self, org: &str, user: &str) -> String {
        let browser = Browser::new();
        let to_idp = browser.get(&format!(
            "{}?org={org}&rd=%2Faccount%2F",
            self.sidecar.url("/oauth2/start")
        ));
        let callback = browser.sign_in_at_idp(to_idp, user, &self.sidecar.url("/"));
        let landed = browser.follow(browser.get(&callback));
        assert_eq!(landed.status, 200, "{landed:?}");
        let bearer = self
            .upstream
            .last()
            .header("authorization")
            .unwrap()
            .to_owned();
        bearer.strip_prefix("Bearer ").unwrap().to_owned()
    }

    fn call(&self, path: &str, token: &str) -> reqwest::blocking::Response {
        client()
            .get(self.sidecar.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap()
    }

    fn introspect(&self, token: &str) -> serde_json::Value {
        let response = client()
            .post(self.sidecar.url("/oauth2/introspect"))
            .basic_auth("commercetools", Some("ct-secret"))
            .form(&[("token", token)])
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn jwt_access_tokens_are_verified_with_the_idps_keys() {
    let api = api();
    let token = api.access_token("inTRONICS", "buyer");
    assert_eq!(token.split('.').count(), 3, "a JWT access token");
    let response = api.call("/api/orders", &token);
    assert_eq!(response.status(), 200);
    let seen = api.upstream.last();
    assert_eq!(seen.uri, "/api/orders");
    assert_eq!(seen.header("x-sso-subject"), Some("buyer"));
    assert_eq!(seen.header("x-sso-identity-provider"), Some("ad"));
    assert_eq!(seen.header("x-sso-organization"), Some("inTRONICS"));
    assert_eq!(
        seen.header("x-sso-external-id").map(str::len),
        Some(36),
        "Azure oid"
    );
    assert!(seen.header("cookie").is_none());
}

#[test]
fn opaque_tokens_are_checked_by_introspection_and_cached() {
    let api = api();
    let token = api.access_token("inSPIRED", "olga");
    assert_eq!(token.split('.').count(), 1, "an opaque access token");
    for _ in 0..3 {
        assert_eq!(api.call("/api/orders", &token).status(), 200);
    }
    let seen = api.upstream.last();
    assert_eq!(seen.header("x-sso-subject"), Some("olga"));
    assert_eq!(seen.header("x-sso-identity-provider"), Some("kc"));
    assert_eq!(
        api.kc.stats()["introspections"],
        1,
        "later calls use the cached answer"
    );
    assert_eq!(api.call("/api/orders", "no-such-token").status(), 401);
}

#[test]
fn bad_tokens_get_401_with_an_error_code() {
    let api = api();
    let now = now();
    let base = json!({"sub": "eve", "aud": "api://shop", "exp": now + 600});
    // The Azure-like IdP declares RFC 9068 access tokens.
    let sign =
        |claims: serde_json::Value, mode: &str| api.ad.sign_typed(claims, mode, Some("at+jwt"));
    let with = |patch: serde_json::Value| {
        let mut claims = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let cases = [
        ("expired", sign(with(json!({"exp": now - 600})), "valid")),
        (
            "wrong audience",
            sign(with(json!({"aud": "api://other"})), "valid"),
        ),
        (
            "wrong issuer",
            sign(with(json!({"iss": "https://evil.example/v2.0"})), "valid"),
        ),
        (
            "not yet valid",
            sign(with(json!({"nbf": now + 600})), "valid"),
        ),
        ("foreign key", sign(base.clone(), "wrong_key")),
        ("unknown kid", sign(base.clone(), "unknown_kid")),
        (
            "alg confusion (HS256 keyed with the public key)",
            sign(base.clone(), "hs256_public"),
        ),
        ("alg none", sign(base.clone(), "none")),
        (
            "token of another IdP on a pinned route",
            sign(base.clone(), "valid"),
        ),
    ];
    for (name, token) in &cases {
        let path = if name.starts_with("token of another") {
            "/api/inspired/x"
        } else {
            "/api/x"
        };
        let response = api.call(path, token);
        assert_eq!(response.status(), 401, "{name}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
    }
    assert!(
        api.upstream.seen().is_empty(),
        "nothing reached the upstream"
    );
    assert_eq!(
        api.sidecar
            .metric("sso_sidecar_jwks_refetches_total{idp=\"ad\"}"),
        1.0,
        "one refetch for the unknown kid"
    );

    // The same claims, properly signed, pass: the cases above failed for their own reason.
    assert_eq!(api.call("/api/x", &sign(base, "valid")).status(), 200);
}

#[test]
fn api_routes_accept_the_session_cookie_and_refuse_anonymous_calls() {
    let api = api();
    let browser = Browser::new();
    let to_idp = browser.get(&format!(
        "{}?org=inSPIRED&rd=%2Faccount%2F",
        api.sidecar.url("/oauth2/start")
    ));
    let callback = browser.sign_in_at_idp(to_idp, "pia", &api.sidecar.url("/"));
    browser.follow(browser.get(&callback));
    let spa = browser
        .client
        .get(api.sidecar.url("/api/cart"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(spa.status(), 200);
    assert_eq!(api.upstream.last().header("x-sso-subject"), Some("pia"));
    let anonymous = client().get(api.sidecar.url("/api/cart")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"sso-sidecar\""
    );
}

#[test]
fn commercetools_introspection() {
    let api = api();
    let token = api.access_token("inTRONICS", "buyer");
    let answer = api.introspect(&token);
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], "buyer");
    assert!(answer["exp"].as_i64().unwrap() > now());
    let scope = answer["scope"].as_str().unwrap();
    let oid = api
        .upstream
        .last()
        .header("x-sso-external-id")
        .unwrap()
        .to_owned();
    assert_eq!(
        scope,
        format!("view_products:shop-eu manage_my_orders:shop-eu manage_my_quote_requests:shop-eu customer_id:{oid}")
    );

    // Opaque tokens of the other IdP work too; the customer key falls back to sub.
    let opaque = api.access_token("inSPIRED", "quinn");
    let answer = api.introspect(&opaque);
    assert_eq!(answer["active"], true, "{answer}");
    assert!(answer["scope"]
        .as_str()
        .unwrap()
        .ends_with("customer_id:quinn"));

    for bad in [
        "",
        "garbage",
        "a.b.c",
        &api.ad.sign(
            json!({"sub": "x", "aud": "api://shop", "exp": now() - 10}),
            "valid",
        ),
    ] {
        assert_eq!(api.introspect(bad), json!({"active": false}), "{bad}");
    }

    // commercetools may post multipart/form-data.
    let form = reqwest::blocking::multipart::Form::new().text("token", token.clone());
    let multipart = client()
        .post(api.sidecar.url("/oauth2/introspect"))
        .basic_auth("commercetools", Some("ct-secret"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(
        multipart.json::<serde_json::Value>().unwrap()["active"],
        true
    );

    // Wrong or missing credentials.
    for auth in [
        Some(("commercetools", "wrong")),
        Some(("other", "ct-secret")),
        None,
    ] {
        let mut request = client()
            .post(api.sidecar.url("/oauth2/introspect"))
            .form(&[("token", token.as_str())]);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
    }
}

/// Issue 14: an ID token (audience = the client id, the default bearer audience) or a
/// logout token was accepted as a bearer token, and introspection called it active. Old
/// code: 200 and `active: true`.
#[test]
fn id_and_logout_tokens_are_not_access_tokens() {
    let api = api();
    let now = now();
    let id_token = api.kc.sign(
        json!({"sub": "eve", "aud": "shop", "azp": "shop", "nonce": "n-1", "exp": now + 600}),
        "valid",
    );
    let at_hash_only = api.kc.sign(
        json!({"sub": "eve", "aud": "shop", "at_hash": "x", "exp": now + 600}),
        "valid",
    );
    let logout_typed = api.kc.sign_typed(
        json!({"sub": "eve", "aud": "shop", "exp": now + 600}),
        "valid",
        Some("logout+jwt"),
    );
    // RFC 9068: the Azure-like IdP declares `at+jwt`, so a plain JWT is no access token.
    let untyped_for_ad = api.ad.sign(
        json!({"sub": "eve", "aud": "api://shop", "exp": now + 600}),
        "valid",
    );
    for (name, token) in [
        ("id token", &id_token),
        ("at_hash", &at_hash_only),
        ("logout+jwt", &logout_typed),
        ("untyped at an at+jwt IdP", &untyped_for_ad),
    ] {
        let response = api.call("/api/orders", token);
        assert_eq!(response.status(), 401, "{name}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("not an access token"));
        assert_eq!(api.introspect(token), json!({"active": false}), "{name}");
    }
    assert!(api.upstream.seen().is_empty());
    // The same claims without the ID-token marks pass: the refusals were for the type.
    let access = api.kc.sign(
        json!({"sub": "eve", "aud": "shop", "exp": now + 600}),
        "valid",
    );
    assert_eq!(api.call("/api/orders", &access).status(), 200);
}

/// Issue 14: opaque tokens were sent to every IdP in turn (IdP A saw IdP B's tokens), and
/// a failed introspection was cached as a refusal for 30 s. Old code: the Azure-like IdP
/// was asked first; the garbled answer made the token invalid until the cache expired.
#[test]
fn opaque_tokens_go_only_to_their_idp_and_outages_are_not_cached() {
    let api = api();
    let token = api.access_token("inSPIRED", "ursula");
    assert_eq!(token.split('.').count(), 1);
    api.kc.garble("introspection", "html");
    let during = api.call("/api/orders", &token);
    assert_eq!(
        during.status(),
        503,
        "an IdP that cannot answer is not a refusal"
    );
    assert!(during.headers().contains_key("retry-after"));
    api.kc.garble("introspection", "off");
    assert_eq!(
        api.call("/api/orders", &token).status(),
        200,
        "the outage was not cached"
    );
    assert_eq!(api.upstream.last().header("x-sso-subject"), Some("ursula"));
    assert!(
        api.ad.stats()["introspections"].as_u64().unwrap_or(0) == 0,
        "the other IdP never sees the token: {}",
        api.ad.stats()
    );
    assert_eq!(
        api.sidecar
            .metric("sso_sidecar_sessions_rejected_total{reason=\"bearer_unavailable\"}"),
        1.0
    );
}

/// Issue 14: refusal reasons held the token's own text (its `alg`) and went into
/// `WWW-Authenticate`. Old code: "unknown algorithm <text>".
#[test]
fn refusals_carry_no_token_text() {
    use base64::Engine as _;
    let api = api();
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let forged = format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "ATTACKER-TEXT-1234", "typ": "at+jwt"})),
        b64(json!({"iss": api.ad.issuer, "aud": "api://shop", "sub": "x", "exp": now() + 60}))
    );
    for _ in 0..2 {
        let response = api.call("/api/x", &forged);
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!challenge.contains("ATTACKER"), "{challenge}");
        assert!(
            challenge.contains("algorithm is not accepted"),
            "{challenge}"
        );
    }
}

/// Issue 14: bearer tokens were never checked against revocations, and with two IdP
/// entries of one issuer a logout token ended only the first entry's sessions. Old code:
/// the access token kept working after the back-channel logout and the Myers session
/// (entry `kc_2`) survived it.
#[test]
fn backchannel_logout_ends_bearer_tokens_and_sessions_of_every_entry() {
    let api = api();
    let token = api.access_token("inTRONICS", "buyer");
    assert_eq!(api.call("/api/orders", &token).status(), 200);

    let browser = Browser::new();
    let to_idp = browser.get(&format!(
        "{}?org=Myers&rd=%2Faccount%2F",
        api.sidecar.url("/oauth2/start")
    ));
    let callback = browser.sign_in_at_idp(to_idp, "mia", &api.sidecar.url("/"));
    assert_eq!(browser.follow(browser.get(&callback)).status, 200);
    assert_eq!(
        api.upstream.last().header("x-sso-identity-provider"),
        Some("kc_2")
    );

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let logout = |idp: &Idp, sub: &str| {
        let token = idp.logout_token(json!({"sub": sub}));
        let response = client()
            .post(api.sidecar.url("/oauth2/backchannel-logout"))
            .form(&[("logout_token", token)])
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().unwrap());
    };
    logout(&api.ad, "buyer");
    logout(&api.kc, "mia");
    let after = api.call("/api/orders", &token);
    assert_eq!(after.status(), 401);
    assert!(after.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("revoked"));
    assert_eq!(browser.get(&api.sidecar.url("/account/")).status, 302);
}
