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

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.inTRONICS]
external_name = "inTRONICS"
identity_providers = ["ad"]

[organizations.inSPIRED]
external_name = "inSPIRED"
identity_providers = ["kc"]

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
    let with = |patch: serde_json::Value| {
        let mut claims = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let cases = [
        (
            "expired",
            api.ad.sign(with(json!({"exp": now - 600})), "valid"),
        ),
        (
            "wrong audience",
            api.ad.sign(with(json!({"aud": "api://other"})), "valid"),
        ),
        (
            "wrong issuer",
            api.ad
                .sign(with(json!({"iss": "https://evil.example/v2.0"})), "valid"),
        ),
        (
            "not yet valid",
            api.ad.sign(with(json!({"nbf": now + 600})), "valid"),
        ),
        ("foreign key", api.ad.sign(base.clone(), "wrong_key")),
        ("unknown kid", api.ad.sign(base.clone(), "unknown_kid")),
        (
            "alg confusion (HS256 keyed with the public key)",
            api.ad.sign(base.clone(), "hs256_public"),
        ),
        ("alg none", api.ad.sign(base.clone(), "none")),
        (
            "token of another IdP on a pinned route",
            api.ad.sign(base.clone(), "valid"),
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
    assert_eq!(
        api.call("/api/x", &api.ad.sign(base, "valid")).status(),
        200
    );
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
