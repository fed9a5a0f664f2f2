//! The trust boundary (issue 13) against real parts: nginx as the upstream for path tricks
//! (it normalises paths like Tomcat and Rack), the echo upstream for header spellings, and
//! the real OpenID provider for revoked sessions and the signed identity assertion, which a
//! second JWT library (npm `jose`) verifies.

mod common;

use std::process::Command;

use common::nginx::{raw_exchange, raw_request, Nginx};
use common::*;
use serde_json::json;

const ROUTES: &str = r#"
[[routes]]
path_prefix = "/INTERSHOP/static/"
auth = "public"

[[routes]]
path_prefix = "/INTERSHOP/web/WFS/SLDSystem"
auth = "required"

[[routes]]
path_prefix = "/admin/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

const PLAIN: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
{server_extra}

[admin]
listen = "{admin}"

[session]
keys = ["{session_key}"]
"#;

fn plain_config(server_extra: &str) -> String {
    format!("{}{ROUTES}", PLAIN.replace("{server_extra}", server_extra))
}

const NGINX_LOCATIONS: &str = r#"
    location /INTERSHOP/web/WFS/SLDSystem/ { return 200 "PROTECTED back office\n"; }
    location /admin/ { return 200 "PROTECTED admin\n"; }
    location /INTERSHOP/static/ { return 200 "static file\n"; }
    location / { return 200 "public page\n"; }
"#;

/// Every trick of issue 13: none reaches a protected nginx location through the sidecar.
/// nginx itself serves most of them as the protected page (checked first, so the test
/// shows the trick is real); the old sidecar routed them as `public` and forwarded them.
#[test]
fn path_tricks_never_reach_a_protected_location() {
    let nginx = Nginx::start(NGINX_LOCATIONS);
    let sidecar = Sidecar::start(&plain_config(""), &nginx.url());
    let tricks = [
        "/INTERSHOP/static/../web/WFS/SLDSystem/en_US/-/USD/ViewApplication-Display",
        "/INTERSHOP/static/%2e%2e/web/WFS/SLDSystem/x",
        "/INTERSHOP/static/%2E%2E/web/WFS/SLDSystem/x",
        "/INTERSHOP/static/.%2e/web/WFS/SLDSystem/x",
        "/INTERSHOP/static/%2e./web/WFS/SLDSystem/x",
        "/INTERSHOP/static/..;jsessionid=1/web/WFS/SLDSystem/x",
        "/INTERSHOP/static/..%2fweb/WFS/SLDSystem/x",
        "/INTERSHOP/static/..%2Fweb/WFS/SLDSystem/x",
        "/INTERSHOP/static/..%5cweb/WFS/SLDSystem/x",
        "/INTERSHOP/static/..\\web/WFS/SLDSystem/x",
        "/INTERSHOP/static//../web/WFS/SLDSystem/x",
        "/INTERSHOP/static/./../web/WFS/SLDSystem/x",
        "/INTERSHOP/static/x/../../web/WFS/SLDSystem/x",
        "/INTERSHOP/web/WFS;x=1/SLDSystem/x",
        "/INTERSHOP/%77eb/WFS/SLDSystem/x",
        "//admin/",
        "/./admin/",
        "/static/../admin/",
        "/%61dmin/",
        "/admin%2f",
        "/x/%2e%2e/admin/",
        "/x/..%00/admin/",
        "/;x/admin/",
        "/admin;x/",
    ];
    let mut real = 0;
    for trick in tricks {
        let (direct_status, direct_body) = raw_request(nginx.port, "GET", trick, &[]);
        if direct_status == 200 && direct_body.starts_with("PROTECTED") {
            real += 1;
        }
        let (status, body) = raw_request(sidecar.port, "GET", trick, &[]);
        assert!(
            !body.contains("PROTECTED"),
            "{trick} reached a protected page through the sidecar ({status})"
        );
        assert!(
            [400, 401].contains(&status),
            "{trick}: expected 400 or 401, got {status}: {body}"
        );
    }
    assert!(real >= 12, "only {real} tricks work against nginx directly");

    // Ordinary public paths still work, also when they needed canonicalising.
    for path in [
        "/INTERSHOP/static/app.css",
        "/INTERSHOP/static/./app.css",
        "/INTERSHOP/static/img//logo.png",
        "/INTERSHOP/web/WFS/../../static/app.css",
    ] {
        let (status, body) = raw_request(sidecar.port, "GET", path, &[]);
        assert_eq!((status, body.as_str()), (200, "static file\n"), "{path}");
    }
}

/// Issue 26: a CORS preflight passes a `required` route unauthenticated, and the old
/// sidecar sent the backend's whole answer back, body and all: a backend that serves its
/// page to any `OPTIONS` gave it to anyone who added two headers. Now only the status and
/// the `Access-Control-*` and `Vary` headers come back, and every other `OPTIONS` goes
/// through the gate.
#[test]
fn preflights_bring_back_cors_headers_only() {
    let nginx = Nginx::start(
        r#"location /admin/ {
      add_header Access-Control-Allow-Origin "https://store.test" always;
      add_header Vary Origin always;
      add_header X-Secret "backend internals" always;
      add_header Set-Cookie "backend=1" always;
      return 200 "PROTECTED admin\n";
    }
    location / { return 200 "public page\n"; }"#,
    );
    let sidecar = Sidecar::start(&plain_config(""), &nginx.url());
    let preflight = "OPTIONS /admin/orders HTTP/1.1\r\nHost: shop.example\r\n\
        Origin: https://store.test\r\nAccess-Control-Request-Method: PUT\r\n";
    let direct = raw_exchange(nginx.port, preflight);
    assert!(
        direct.contains("PROTECTED admin"),
        "nginx answers OPTIONS with the page"
    );
    let answer = raw_exchange(sidecar.port, preflight);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{answer}");
    assert_eq!(body, "", "{answer}");
    assert!(
        head.contains("access-control-allow-origin: https://store.test"),
        "{answer}"
    );
    assert!(head.contains("vary: origin"), "{answer}");
    assert!(head.contains("content-length: 0"), "{answer}");
    for hidden in ["x-secret", "set-cookie", "content-type"] {
        assert!(!head.contains(hidden), "{hidden} came back: {answer}");
    }
    // Not a preflight (no Access-Control-Request-Method, or no Origin): the gate decides.
    for head in [
        "OPTIONS /admin/orders HTTP/1.1\r\nHost: shop.example\r\nOrigin: https://store.test\r\n",
        "OPTIONS /admin/orders HTTP/1.1\r\nHost: shop.example\r\nAccess-Control-Request-Method: PUT\r\n",
        "OPTIONS /admin/orders HTTP/1.1\r\nHost: shop.example\r\n",
    ] {
        let answer = raw_exchange(sidecar.port, head);
        assert!(answer.starts_with("HTTP/1.1 401"), "{head:?}: {answer}");
        assert!(!answer.contains("PROTECTED"), "{head:?}: {answer}");
    }
}

/// The upstream receives the canonical path the route was chosen on, with the query as
/// sent; a path that cannot be canonicalised gets 400 and never reaches it.
#[test]
fn upstream_gets_the_canonical_path() {
    let upstream = Upstream::start();
    let sidecar = Sidecar::start(&plain_config(""), &upstream.url());
    let cases = [
        (
            "/shop/./a//b/../c?q=%2e%2e/x&y=1",
            "/shop/a/c?q=%2e%2e/x&y=1",
        ),
        ("/%7Euser/caf%c3%a9", "/~user/caf%C3%A9"),
        ("/shop/cart", "/shop/cart"),
    ];
    for (sent, seen) in cases {
        let (status, _) = raw_request(sidecar.port, "GET", sent, &[]);
        assert_eq!(status, 200, "{sent}");
        assert_eq!(upstream.last().uri, seen, "{sent}");
    }
    let before = upstream.seen().len();
    for bad in ["/..", "/a/%2f", "/a%00", "/a\\b"] {
        let (status, body) = raw_request(sidecar.port, "GET", bad, &[]);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(upstream.seen().len(), before);
}

/// Identity headers in every spelling a backend reads as the real one, and headers that
/// let a client re-route after the gate, never reach the upstream from an untrusted peer.
#[test]
fn identity_spellings_and_untrusted_headers_are_removed() {
    let upstream = Upstream::start();
    let attack: [(&str, &str); 10] = [
        ("X_SSO_Email", "victim@example.com"),
        ("x-sso_subject", "admin"),
        ("X-SSO-Assertion", "forged"),
        ("x_sso_organization", "Operations"),
        ("X-Original-URL", "/admin/"),
        ("X-Rewrite-URL", "/admin/"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Forwarded-Port", "8443"),
        ("X-Real-IP", "10.9.9.9"),
        ("X-Forwarded-Server", "internal"),
    ];
    let normalised = |name: &str| name.to_ascii_lowercase().replace('_', "-");
    let seen_names = |upstream: &Upstream| -> Vec<String> {
        upstream
            .last()
            .headers
            .iter()
            .map(|(k, _)| normalised(k))
            .collect()
    };

    let sidecar = Sidecar::start(&plain_config(""), &upstream.url());
    let (status, _) = raw_request(sidecar.port, "GET", "/shop/", &attack);
    assert_eq!(status, 200);
    let names = seen_names(&upstream);
    for (name, _) in attack {
        assert!(
            !names.contains(&normalised(name)),
            "{name} passed: {names:?}"
        );
    }

    // A trusted proxy may send the routing headers; identity headers go all the same.
    let trusting = Sidecar::start(
        &plain_config(r#"trusted_proxies = ["127.0.0.1/32"]"#),
        &upstream.url(),
    );
    let (status, _) = raw_request(trusting.port, "GET", "/shop/", &attack);
    assert_eq!(status, 200);
    let names = seen_names(&upstream);
    for (name, _) in attack {
        let passes = !normalised(name).starts_with("x-sso-");
        assert_eq!(
            names.contains(&normalised(name)),
            passes,
            "{name}: {names:?}"
        );
    }
}

const SSO: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
public_url = "{public_url}"

[admin]
listen = "{admin}"

[oidc]
remote = "supported"

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.Operations]
external_name = "Intershop"
identity_providers = ["kc"]
logout_policy = "LOCAL"

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

struct Shop {
    upstream: Upstream,
    _idp: Idp,
    sidecar: Sidecar,
}

fn shop() -> Shop {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let idp = Idp::for_sidecar(ports, json!({}));
    let config = SSO.replace("{kc_issuer}", &idp.issuer);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();
    Shop {
        upstream,
        _idp: idp,
        sidecar,
    }
}

impl Shop {
    fn sign_in(&self, browser: &Browser, user: &str) {
        let to_idp = browser.get(&format!(
            "{}?org=Intershop&rd=%2Faccount%2F",
            self.sidecar.url("/oauth2/start")
        ));
        assert_eq!(to_idp.status, 302, "{to_idp:?}");
        let callback = browser.sign_in_at_idp(to_idp, user, &self.sidecar.url("/"));
        assert_eq!(browser.get(&callback).status, 302, "{}", self.sidecar.log());
    }
}

/// Issue 13: `/oauth2/userinfo` answered for a cookie whose session had been logged out.
#[test]
fn userinfo_refuses_a_logged_out_session() {
    let shop = shop();
    let browser = Browser::new();
    shop.sign_in(&browser, "olga");
    let cookie = browser
        .cookie(&shop.sidecar.url("/"), "_sso_session")
        .unwrap();
    let userinfo = |cookie: &str| {
        client()
            .get(shop.sidecar.url("/oauth2/userinfo"))
            .header("Cookie", format!("_sso_session={cookie}"))
            .send()
            .unwrap()
    };
    let before = userinfo(&cookie);
    assert_eq!(before.status(), 200);
    assert_eq!(
        before.json::<serde_json::Value>().unwrap()["subject"],
        "olga"
    );

    let logout = browser
        .client
        .post(shop.sidecar.url("/oauth2/logout"))
        .header("Origin", shop.sidecar.url(""))
        .send()
        .unwrap();
    assert_eq!(logout.status(), 200);
    let after = userinfo(&cookie);
    assert_eq!(after.status(), 401);
    assert!(after
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("_sso_session=;")));
}

/// The backend can verify who is asking: `X-SSO-Assertion` on every signed-in request,
/// verified here with npm `jose` against `/oauth2/jwks`; a client's own assertion header
/// never reaches the upstream.
#[test]
fn signed_assertion_verifies_with_another_jwt_library() {
    let shop = shop();
    let browser = Browser::new();
    shop.sign_in(&browser, "paula");
    assert_eq!(browser.get(&shop.sidecar.url("/account/")).status, 200);
    let assertion = shop
        .upstream
        .last()
        .header("x-sso-assertion")
        .expect("an assertion goes upstream")
        .to_owned();

    let jwks = client()
        .get(shop.sidecar.url("/oauth2/jwks"))
        .send()
        .unwrap();
    assert_eq!(jwks.status(), 200);
    assert!(jwks.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let jwks: serde_json::Value = jwks.json().unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");

    let verify = |audience: &str, token: &str| {
        Command::new("node")
            .arg(repo_root().join("idp/verify-assertion.mjs"))
            .args([
                &shop.sidecar.url("/oauth2/jwks"),
                &shop.sidecar.url(""),
                audience,
                token,
            ])
            .output()
            .unwrap()
    };
    let out = verify(&shop.upstream.url(), &assertion);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "paula");
    assert_eq!(claims["email"], "paula@example.com");
    assert_eq!(claims["organization"], "Operations");
    assert_eq!(claims["identity_provider"], "kc");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // Another audience, or a tampered token, does not verify.
    assert!(!verify("https://other.example", &assertion).status.success());
    let mut tampered = assertion.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    assert!(!verify(&shop.upstream.url(), &tampered).status.success());

    // A client's own assertion is removed on public routes.
    let forged = browser
        .client
        .get(shop.sidecar.url("/shop/"))
        .header("X-SSO-Assertion", assertion.as_str())
        .send()
        .unwrap();
    assert_eq!(forged.status(), 200);
    assert_eq!(shop.upstream.last().header("x-sso-assertion"), None);
}
