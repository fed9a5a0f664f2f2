//! Step-up (issue 29): routes and the backend ask for a stronger or more recent sign-in.
//! The real OpenID provider (`idp/provider.mjs` with `acrValues`) gives `urn:shop:pwd`
//! for a password and `urn:shop:mfa` when a one-time code is entered as well; the shop
//! behind the sidecar is an axum app that, like ICM, commercetools storefronts or Spree at
//! checkout, answers RFC 9470's challenge when the sign-in is too weak for it.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse};
use base64::Engine as _;
use common::*;
use serde_json::json;

const PWD: &str = "urn:shop:pwd";
const MFA: &str = "urn:shop:mfa";
const CODE: &str = "246810";

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
public_url = "{public_url}"

[admin]
listen = "{admin}"

[oidc]
remote = "supported"
# Small, so that a sign-in is soon older than /payment's max_age plus the skew.
max_clock_skew = "1s"

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"
# These tests read the authorization request in the browser\'s URL, as PAR would hide it.
pushed_authorization = "never"

[organizations.Shop]
external_name = "Shop"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/checkout"
auth = "required"
acr_values = ["urn:shop:mfa"]

[[routes]]
path_prefix = "/payment"
auth = "required"
max_age = "2s"

[[routes]]
path_prefix = "/api/orders"
auth = "api"
acr_values = ["urn:shop:mfa"]

[[routes]]
path_prefix = "/"
auth = "required"
"#;

/// What the shop was told about each request: method, path, and the sign-in's headers.
#[derive(Debug, Clone)]
struct Visit {
    method: String,
    path: String,
    subject: Option<String>,
    acr: Option<String>,
    amr: Option<String>,
    auth_time: Option<String>,
    assertion: Option<String>,
    body: String,
}

type Visits = Arc<Mutex<Vec<Visit>>>;

/// The shop: every page says who and how strongly signed in; `/shop/checkout` answers
/// RFC 9470's challenge unless the sign-in had a second factor.
fn shop_backend(visits: Visits) -> (SocketAddr, tokio::runtime::Runtime) {
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: HeaderMap,
              body: axum::body::Bytes| {
            let visits = visits.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let visit = Visit {
                    method: method.to_string(),
                    path: uri.path().to_owned(),
                    subject: header("x-sso-subject"),
                    acr: header("x-sso-acr"),
                    amr: header("x-sso-amr"),
                    auth_time: header("x-sso-auth-time"),
                    assertion: header("x-sso-assertion"),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                visits.lock().unwrap().push(visit.clone());
                let strong = visit.acr.as_deref() == Some(MFA);
                if uri.path() == "/shop/checkout" && !strong {
                    let challenge = format!(
                        "Bearer error=\"insufficient_user_authentication\", error_description=\"A second factor is needed to order\", acr_values=\"{MFA}\""
                    );
                    return (
                        StatusCode::UNAUTHORIZED,
                        [
                            ("www-authenticate", challenge),
                            ("set-cookie", "basket=42; Path=/".to_owned()),
                        ],
                        "{\"error\":\"insufficient_user_authentication\"}",
                    )
                        .into_response();
                }
                let form = "<form method=\"post\" action=\"/shop/checkout\"><input type=\"hidden\" name=\"item\" value=\"book\"><button type=\"submit\">Order</button></form>";
                Html(format!(
                    "<!doctype html>{form}<div id=\"done\">{} {} for {} with {} ({}) {}</div>",
                    visit.method,
                    visit.path,
                    visit.subject.unwrap_or_default(),
                    visit.acr.unwrap_or_default(),
                    visit.amr.unwrap_or_default(),
                    visit.body,
                ))
                .into_response()
            }
        },
    );
    serve(app)
}

struct Shop {
    sidecar: Sidecar,
    idp: Idp,
    visits: Visits,
    _backend: tokio::runtime::Runtime,
}

impl Shop {
    /// The shop behind a sidecar, with a provider that knows two `acr` values; `extra`
    /// goes into the provider's settings.
    fn start(extra: serde_json::Value) -> Self {
        let ports = Ports::new();
        let mut settings = json!({"acrValues": [PWD, MFA]});
        settings
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        if settings.as_object_mut().unwrap().remove("backchannel") == Some(json!(false)) {
            // The client as registered, without back-channel logout.
            settings["clients"] = json!([{
                "client_id": "shop",
                "client_secret": "shop-secret",
                "redirect_uris": [ports.callback()],
                "post_logout_redirect_uris": [format!("{}/", ports.origin())],
            }]);
        }
        let idp = Idp::for_sidecar(ports, settings);
        let visits: Visits = Arc::default();
        let (backend, runtime) = shop_backend(visits.clone());
        let config = CONFIG.replace("{issuer}", &idp.issuer);
        let sidecar = Sidecar::start_on(ports, &config, &format!("http://{backend}"), &[]);
        sidecar.wait_idps_ready();
        Shop {
            sidecar,
            idp,
            visits,
            _backend: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        self.sidecar.url(path)
    }

    fn last_visit(&self, path: &str) -> Visit {
        let visits = self.visits.lock().unwrap();
        visits
            .iter()
            .rev()
            .find(|v| v.path == path)
            .cloned()
            .unwrap()
    }

    /// Opens `path` in `browser`, signing in at the IdP (with `code` as the second factor
    /// where given) whenever the way there leads to its login form.
    fn visit(&self, browser: &Browser, path: &str, code: Option<&str>) -> Page {
        let page = browser.follow(browser.get(&self.url(path)));
        self.through_idp(browser, page, code)
    }

    /// Where `page` is the IdP's login form: signs in as ann and follows back to the shop.
    fn through_idp(&self, browser: &Browser, page: Page, code: Option<&str>) -> Page {
        self.through_idp_as(browser, page, "ann", code)
    }

    fn through_idp_as(
        &self,
        browser: &Browser,
        page: Page,
        user: &str,
        code: Option<&str>,
    ) -> Page {
        if !page.url.starts_with(&self.idp.issuer) {
            return page;
        }
        let callback = browser.sign_in_at_idp_with(page, user, code, &self.url(""));
        browser.follow(browser.get(&callback))
    }
}

/// A `401` with RFC 9470's challenge for the second factor.
fn assert_asks_for_mfa(answer: &reqwest::blocking::Response) {
    assert_eq!(answer.status(), 401);
    let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("acr_values=\"urn:shop:mfa\""),
        "{challenge}"
    );
}

/// The claims of the sidecar's signed assertion (not verified here; other tests do).
fn assertion_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_route_asks_for_a_second_factor_and_a_recent_sign_in() {
    let shop = Shop::start(json!({}));
    let browser = Browser::new();
    let account = shop.visit(&browser, "/account", None);
    assert_eq!(account.status, 200, "{account:?}");
    let first = shop.last_visit("/account");
    assert_eq!(first.acr.as_deref(), Some(PWD));
    assert_eq!(first.amr.as_deref(), Some("pwd"));

    // The checkout needs the second factor: the browser goes back to the same IdP, which
    // is asked for it as a demand (an essential acr claim) and shows its login again.
    let checkout = browser.get(&shop.url("/checkout?step=pay"));
    assert_eq!(checkout.status, 302, "{checkout:?}");
    let location = checkout.location.clone().unwrap();
    assert_eq!(
        location,
        "/oauth2/start?rd=%2Fcheckout%3Fstep%3Dpay&org=Shop&idp=kc&acr_values=urn%3Ashop%3Amfa"
    );
    let to_idp = browser.get(&shop.url(&location));
    let authorize = to_idp.location.clone().unwrap();
    let query: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let claims: serde_json::Value = serde_json::from_str(&param("claims").unwrap()).unwrap();
    assert_eq!(
        claims["id_token"]["acr"],
        json!({"essential": true, "values": [MFA]})
    );
    // The demand alone: acr_values beside it would turn it into a wish at this IdP.
    assert_eq!(param("acr_values"), None);
    let page = shop.through_idp(&browser, browser.follow(to_idp), Some(CODE));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.url.ends_with("/checkout?step=pay"), "{}", page.url);
    let stepped = shop.last_visit("/checkout");
    assert_eq!(stepped.subject.as_deref(), Some("ann"));
    assert_eq!(stepped.acr.as_deref(), Some(MFA));
    assert_eq!(stepped.amr.as_deref(), Some("pwd,otp"));
    let claims = assertion_claims(stepped.assertion.as_deref().unwrap());
    assert_eq!(claims["acr"], MFA);
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));

    // The stronger session replaced the weaker one, for every page.
    assert_eq!(browser.get(&shop.url("/checkout")).status, 200);
    assert_eq!(browser.get(&shop.url("/account")).status, 200);
    assert_eq!(shop.last_visit("/account").acr.as_deref(), Some(MFA));

    // Payment wants a sign-in of the last two seconds (plus a second of skew): once the
    // sign-in is older, scripts learn so, and the browser signs in again with max_age.
    let signed_in_at: i64 = stepped.auth_time.as_deref().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let challenge = loop {
        let answer = browser
            .client
            .get(shop.url("/payment"))
            .header("Accept", "application/json")
            .send()
            .unwrap();
        if answer.status() == 401 {
            break answer.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the sign-in never became too old"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        challenge.contains("insufficient_user_authentication"),
        "{challenge}"
    );
    assert!(challenge.ends_with("max_age=2"), "{challenge}");
    assert!(unix_now() - signed_in_at > 3);
    let payment = browser.get(&shop.url("/payment"));
    assert_eq!(payment.status, 302);
    let to_idp = browser.get(&shop.url(payment.location.as_deref().unwrap()));
    assert!(to_idp.location.as_deref().unwrap().contains("max_age=2"));
    let page = shop.through_idp(&browser, browser.follow(to_idp), Some(CODE));
    assert_eq!(page.status, 200, "{page:?}");
    let paid = shop.last_visit("/payment");
    let auth_time: i64 = paid.auth_time.as_deref().unwrap().parse().unwrap();
    assert!(
        auth_time > signed_in_at,
        "signed in again: {auth_time} > {signed_in_at}"
    );

    // Asked three times (checkout, the script's call to payment, payment), given twice.
    let metrics = shop.sidecar.metrics();
    assert_eq!(
        metrics.get("sso_sidecar_step_ups_total{by=\"route\"}"),
        Some(&3.0)
    );
    assert_eq!(
        metrics.get("sso_sidecar_step_up_results_total{outcome=\"given\"}"),
        Some(&2.0)
    );
}

#[test]
fn programs_and_bearer_tokens_get_the_rfc_9470_challenge() {
    let shop = Shop::start(json!({}));
    let browser = Browser::new();
    assert_eq!(shop.visit(&browser, "/account", None).status, 200);

    // The page's script cannot follow a sign-in: it learns what is missing.
    let answer = browser
        .client
        .get(shop.url("/checkout"))
        .header("Accept", "application/json")
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .unwrap();
    assert_asks_for_mfa(&answer);

    // Bearer tokens are held to the route's rule through their own claims.
    let token = |acr: &str| {
        let now = unix_now();
        shop.idp.sign(
            json!({"sub": "app-user", "aud": "shop", "iat": now, "exp": now + 300, "acr": acr}),
            "valid",
        )
    };
    let weak = client()
        .get(shop.url("/api/orders"))
        .bearer_auth(token(PWD))
        .send()
        .unwrap();
    assert_asks_for_mfa(&weak);
    let strong = client()
        .get(shop.url("/api/orders"))
        .bearer_auth(token(MFA))
        .send()
        .unwrap();
    assert_eq!(strong.status(), 200);
    assert_eq!(shop.last_visit("/api/orders").acr.as_deref(), Some(MFA));
}

/// An IdP that takes `acr_values` only as a wish (no claims parameter) and signs the user
/// in again silently: the weaker sign-in is refused, and the session that was there stays.
#[test]
fn an_idp_that_does_not_give_the_stronger_sign_in_gets_a_403_page() {
    let shop = Shop::start(json!({"claimsParameter": false}));
    let browser = Browser::new();
    assert_eq!(shop.visit(&browser, "/account", None).status, 200);

    let page = shop.visit(&browser, "/checkout", None);
    assert_eq!(page.status, 403, "{page:?}");
    assert!(
        page.body
            .contains("The identity provider did not give the stronger sign-in"),
        "{}",
        page.body
    );
    assert!(shop
        .visits
        .lock()
        .unwrap()
        .iter()
        .all(|v| v.path != "/checkout"));
    // Still signed in as before.
    assert_eq!(browser.get(&shop.url("/account")).status, 200);
    assert_eq!(
        shop.sidecar
            .metric("sso_sidecar_step_up_results_total{outcome=\"not_given\"}"),
        1.0
    );
}

/// Someone at the IdP's second login form signs in as another person: the step-up does
/// not hand the session over to them, and ann stays signed in as she was. (With
/// back-channel logout the IdP would end ann's session when mallory takes over its
/// browser session, and mallory's sign-in would be an ordinary one; here it cannot.)
#[test]
fn a_step_up_as_someone_else_does_not_replace_the_session() {
    let shop = Shop::start(json!({"backchannel": false}));
    let browser = Browser::new();
    assert_eq!(shop.visit(&browser, "/account", None).status, 200);
    let to_idp = browser.follow(browser.get(&shop.url("/checkout")));
    let page = shop.through_idp_as(&browser, to_idp, "mallory", Some(CODE));
    assert_eq!(page.status, 403, "{page:?}");
    assert!(
        page.body.contains("Someone else signed in"),
        "{}",
        page.body
    );
    assert_eq!(browser.get(&shop.url("/account")).status, 200);
    assert_eq!(shop.last_visit("/account").subject.as_deref(), Some("ann"));
    assert!(shop
        .visits
        .lock()
        .unwrap()
        .iter()
        .all(|v| v.path != "/checkout"));
    assert_eq!(
        shop.sidecar
            .metric("sso_sidecar_step_up_results_total{outcome=\"other_user\"}"),
        1.0
    );
}

#[test]
fn the_backend_asks_for_a_step_up_at_checkout() {
    let shop = Shop::start(json!({}));
    let browser = Browser::new();
    assert_eq!(shop.visit(&browser, "/account", None).status, 200);

    // A page: the backend's 401 becomes the way to the stronger sign-in and back; the
    // backend's own cookie stays on that answer.
    let challenged = browser.get(&shop.url("/shop/checkout"));
    assert_eq!(challenged.status, 302, "{challenged:?}");
    let location = challenged.location.clone().unwrap();
    assert!(
        location.contains("acr_values=urn%3Ashop%3Amfa"),
        "{location}"
    );
    assert!(challenged
        .set_cookies
        .iter()
        .any(|c| c.starts_with("basket=42")));
    let to_idp = browser.get(&shop.url(&location));
    let page = shop.through_idp(&browser, browser.follow(to_idp), Some(CODE));
    assert_eq!(page.status, 200, "{page:?}\n{}", shop.sidecar.log());
    assert!(
        page.body
            .contains("GET /shop/checkout for ann with urn:shop:mfa"),
        "{}",
        page.body
    );
    assert_eq!(
        shop.sidecar
            .metric("sso_sidecar_step_ups_total{by=\"backend\"}"),
        1.0
    );

    // Programs get the backend's challenge as it is.
    let weak = Browser::new();
    assert_eq!(shop.visit(&weak, "/account", None).status, 200);
    let xhr = weak
        .client
        .get(shop.url("/shop/checkout"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(xhr.status(), 401);
    let challenge = xhr.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("A second factor is needed to order"),
        "{challenge}"
    );
    assert_eq!(
        xhr.text().unwrap(),
        "{\"error\":\"insufficient_user_authentication\"}"
    );

    // A form from another site is not kept: the backend's answer passes unchanged.
    let item = [("item".to_owned(), "forged".to_owned())];
    let cross = weak.post_form_with(
        &shop.url("/shop/checkout"),
        &item,
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://evil.example"),
        ],
    );
    assert_eq!(cross.status, 401, "{cross:?}");

    // The shop's own form: kept across the step-up and posted again after it.
    let order = [("item".to_owned(), "book".to_owned())];
    let origin = shop.url("");
    let posted = weak.post_form_with(
        &shop.url("/shop/checkout"),
        &order,
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", origin.trim_end_matches('/')),
        ],
    );
    assert_eq!(posted.status, 303, "{posted:?}");
    let resubmit = shop.through_idp(
        &weak,
        weak.follow(weak.get(&shop.url(posted.location.as_deref().unwrap()))),
        Some(CODE),
    );
    assert_eq!(resubmit.status, 200, "{resubmit:?}");
    let (action, fields) = parse_form(&resubmit.body).unwrap();
    assert_eq!(action, "/shop/checkout");
    assert_eq!(fields, order);
    let done = weak.post_form(&shop.url(&action), &fields);
    assert!(
        done.body
            .contains("POST /shop/checkout for ann with urn:shop:mfa"),
        "{}",
        done.body
    );
    let orders: Vec<Visit> = (shop.visits.lock().unwrap().iter())
        .filter(|v| v.method == "POST" && v.acr.as_deref() == Some(MFA))
        .cloned()
        .collect();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].body, "item=book");
}

/// The same in Debian's Chromium: a route's rule, then a backend's challenge.
#[test]
fn chromium_steps_up_at_checkout() {
    let shop = Shop::start(json!({}));
    for (path, text) in [
        ("/checkout", "GET /checkout for ann with urn:shop:mfa"),
        (
            "/shop/checkout",
            "GET /shop/checkout for ann with urn:shop:mfa",
        ),
    ] {
        let job = json!({
            "user": "ann",
            "steps": [
                {"url": shop.url("/account"), "until": "#done"},
                {"url": shop.url(path), "code": CODE, "until": "#done"},
            ],
        });
        let result = run_chromium("browser-stepup.mjs", &job, &shop.sidecar.log());
        let steps = result["steps"].as_array().unwrap();
        assert!(
            steps[0]["text"]
                .as_str()
                .unwrap()
                .contains("with urn:shop:pwd"),
            "{result}"
        );
        assert_eq!(steps[1]["url"], shop.url(path));
        assert!(
            steps[1]["text"].as_str().unwrap().contains(text),
            "{result}"
        );
    }
}

#[test]
fn check_discover_warns_about_acr_values_the_idp_does_not_offer() {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({"acrValues": [PWD, "urn:shop:gold"]}));
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG
        .replace("{issuer}", &idp.issuer)
        .replace("{public_url}", &ports.origin())
        .replace("{listen}", &format!("127.0.0.1:{}", ports.proxy))
        .replace("{admin}", &format!("127.0.0.1:{}", ports.admin))
        .replace("{upstream}", "http://127.0.0.1:9")
        .replace("{session_key}", SESSION_KEY);
    let path = dir.path().join("sidecar.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    let (code, _, stderr) = run_cli(&["check", "-c", path, "--discover"], &[], dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "routes[0].acr_values: identity provider kc does not list urn:shop:mfa in acr_values_supported"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("routes[2].acr_values"), "{stderr}");
    // Offline, nothing is fetched and nothing is said.
    let (code, _, stderr) = run_cli(&["check", "-c", path], &[], dir.path());
    assert_eq!(code, 0);
    assert!(!stderr.contains("acr_values_supported"), "{stderr}");
}
