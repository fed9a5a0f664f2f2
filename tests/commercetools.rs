//! commercetools for real (issue 17): the sidecar as the connector of commercetools'
//! external OAuth setup, against npm `@labdigital/commercetools-mock` as commercetools' API
//! and the real OpenID provider shaped like Azure AD (JWT access tokens with `oid` and
//! `groups`). First sign-in creates the customer (key, `ExternalAuth`, group), a changed
//! name updates it, introspection answers with commercetools' customer id and the group's
//! scopes, a policy without CREATE refuses an unknown customer, and a hanging API leaves
//! introspection answering within its deadline.

mod common;

use std::time::{Duration, Instant};

use common::commercetools::CommercetoolsEmulation;
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
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

[headers]
forward_access_token = true

[identity_providers.ad]
type = "oidc"
name = "Azure AD"
issuer = "{ad_issuer}"
client_id = "shop"
client_secret = "shop-secret"
audiences = ["api://shop"]

[organizations.Shoppers]
external_name = "Shoppers"
identity_providers = ["ad"]

[organizations.Invited]
external_name = "Invited"
identity_providers = ["ad"]
self_administration_policy = ["UPDATE"]

[commercetools]
client_id = "commercetools"
client_secret = "ct-secret"
project_key = "shop"
customer_id_claim = "oid"
sync_customers = true
introspection_deadline = "400ms"
anonymous_id_cookie = "ct_anonymous_id"
[commercetools.customer_groups]
shop-b2b = "b2b"
[commercetools.group_scopes]
b2b = ["manage_my_business_units:{projectKey}"]
[commercetools.api]
url = "{ct_url}"
auth_url = "{ct_url}"
client_id = "sidecar-api-client"
client_secret = "api-secret"
timeout = "2s"

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

struct Shop {
    ct: CommercetoolsEmulation,
    idp: Idp,
    upstream: Upstream,
    sidecar: Sidecar,
}

fn shop() -> Shop {
    let ct = CommercetoolsEmulation::start(&["b2b"]);
    let ports = Ports::new();
    let upstream = Upstream::start();
    let idp = Idp::for_sidecar(
        ports,
        json!({
            "azure": true,
            "issuerPath": "/tenant/v2.0",
            "jwtAccessTokens": "api://shop",
            "users": {
                "alice": {"given_name": "Alice", "family_name": "Adams", "groups": ["staff", "shop-b2b"]},
                "bob": {"given_name": "Bob", "family_name": "Brown", "groups": []},
            },
        }),
    );
    let config = CONFIG
        .replace("{ad_issuer}", &idp.issuer)
        .replace("{ct_url}", &ct.url);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();
    Shop {
        ct,
        idp,
        upstream,
        sidecar,
    }
}

impl Shop {
    /// Signs `user` in for `org`; the access token the IdP issued, or the failed page.
    fn sign_in(&self, org: &str, user: &str) -> Result<String, Page> {
        self.sign_in_with(org, user, None)
    }

    /// [`Shop::sign_in`] from a browser with the storefront's cookies.
    fn sign_in_with(&self, org: &str, user: &str, cookie: Option<&str>) -> Result<String, Page> {
        let browser = Browser::new();
        if let Some(cookie) = cookie {
            browser.set_cookie(&self.sidecar.url("/"), cookie);
        }
        let to_idp = browser.get(&format!(
            "{}?org={org}&rd=%2Faccount%2F",
            self.sidecar.url("/oauth2/start")
        ));
        let callback = browser.sign_in_at_idp(to_idp, user, &self.sidecar.url("/"));
        let back = browser.get(&callback);
        if back.status != 302 {
            return Err(back);
        }
        let landed = browser.follow(back);
        assert_eq!(landed.status, 200, "{landed:?}");
        let bearer = self
            .upstream
            .last()
            .header("authorization")
            .unwrap()
            .to_owned();
        Ok(bearer.strip_prefix("Bearer ").unwrap().to_owned())
    }

    fn introspect(&self, token: &str) -> Value {
        let response = client()
            .post(self.sidecar.url("/oauth2/introspect"))
            .basic_auth("commercetools", Some("ct-secret"))
            .form(&[("token", token)])
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().unwrap()
    }

    /// The `oid` the provider gives `user` (Azure's stable object id).
    fn oid(&self, token: &str) -> String {
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["oid"].as_str().unwrap().to_owned()
    }
}

fn scopes(answer: &Value) -> Vec<String> {
    answer["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

#[test]
fn sign_in_creates_and_updates_the_customer_and_introspection_names_it() {
    let shop = shop();
    let token = shop.sign_in("Shoppers", "alice").unwrap();
    let oid = shop.oid(&token);

    let customer = shop
        .ct
        .customer(&oid)
        .expect("created at the first sign-in");
    assert_eq!(customer["authenticationMode"], "ExternalAuth");
    assert_eq!(customer["email"], "alice@example.com");
    assert_eq!(customer["firstName"], "Alice");
    assert_eq!(customer["lastName"], "Adams");
    assert_eq!(
        customer["customerGroup"]["id"],
        shop.ct.group_id("b2b"),
        "group chosen by the first mapped claim value"
    );

    let answer = shop.introspect(&token);
    assert_eq!(answer["active"], true, "{answer}");
    let granted = scopes(&answer);
    let id = customer["id"].as_str().unwrap();
    assert_ne!(id, oid, "commercetools' own id, not the IdP's");
    assert!(
        granted.contains(&format!("customer_id:{id}")),
        "{granted:?}"
    );
    assert!(
        granted.contains(&"manage_my_business_units:shop".to_owned()),
        "{granted:?}"
    );
    assert!(!granted.contains(&format!("customer_id:{oid}")));

    // Alice changed her name at the IdP: the next sign-in updates the customer.
    shop.idp.set_user(
        "alice",
        json!({"given_name": "Alice", "family_name": "Ashford", "groups": ["shop-b2b"]}),
    );
    shop.sign_in("Shoppers", "alice").unwrap();
    let updated = shop.ct.customer(&oid).unwrap();
    assert_eq!(updated["lastName"], "Ashford");
    assert_eq!(updated["id"], customer["id"]);
    assert!(updated["version"].as_i64() > customer["version"].as_i64());
    assert!(
        shop.sidecar.metric(
            "sso_sidecar_backend_calls_total{call=\"commercetools_customer_update\",outcome=\"ok\"}"
        ) >= 2.0
    );
}

#[test]
fn a_policy_without_create_refuses_an_unknown_customer() {
    let shop = shop();
    let refused = shop.sign_in("Invited", "bob").unwrap_err();
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.body.contains("not known to the shop"),
        "{}",
        refused.body
    );
    assert_eq!(
        shop.sidecar
            .metric("sso_sidecar_backend_calls_total{call=\"commercetools_customer_create\",outcome=\"ok\"}"),
        0.0,
        "nothing created"
    );
    // Once the shop has created bob (e.g. invited him), he signs in.
    let alice = shop.sign_in("Shoppers", "alice").unwrap();
    assert!(shop.ct.customer(&shop.oid(&alice)).is_some());
    assert!(
        shop.sign_in("Invited", "alice").is_ok(),
        "known customers sign in under UPDATE"
    );
}

#[test]
fn a_hanging_api_leaves_introspection_answering_within_the_deadline() {
    let shop = shop();
    let token = shop.sign_in("Shoppers", "alice").unwrap();
    let first = shop.introspect(&token);
    assert_eq!(first["active"], true);

    shop.ct.pause();
    // Alice's customer was resolved at sign-in: no API call, same answer, at once.
    let started = Instant::now();
    let again = shop.introspect(&token);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(scopes(&again), scopes(&first));

    // A user the sidecar has not seen: the lookup hangs, the deadline answers inactive.
    let stranger = shop.idp.sign(
        json!({
            "sub": "carol", "oid": "0c0c0c0c-0000-4000-a000-000000000001",
            "aud": "api://shop", "exp": unix_now() + 600, "iat": unix_now(),
        }),
        "valid",
    );
    let started = Instant::now();
    let late = shop.introspect(&stranger);
    let took = started.elapsed();
    assert_eq!(late, json!({"active": false}));
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_millis(480),
        "answered at the deadline: {took:?}"
    );
    assert_eq!(
        shop.sidecar
            .metric("sso_sidecar_introspections_late_total{answer=\"inactive\"}"),
        1.0
    );
    shop.ct.resume();
    // With the API back, the stranger has no customer: active, without a customer scope.
    let answer = shop.introspect(&stranger);
    assert_eq!(answer["active"], true, "{answer}");
    assert!(scopes(&answer)
        .iter()
        .all(|s| !s.starts_with("customer_id:")));
}

/// Issue 32: a guest's basket survives the sign-in. The storefront keeps commercetools'
/// `anonymousId` in a cookie; after the customer sync the sidecar merges the guest's cart
/// into the customer's (Merge Cart, for ExternalAuth customers), before the first page.
/// The anonymous id is only a claim: a cart of another customer is never taken over.
#[test]
fn the_guests_cart_becomes_the_customers_at_sign_in() {
    let shop = shop();
    let guest_cart = shop.ct.post(
        "carts",
        json!({"currency": "EUR", "anonymousId": "guest-1"}),
    );
    // A guest cart that its owner took along when signing in: it keeps its anonymous id.
    let carol = shop.ct.post(
        "customers",
        json!({"email": "carol@example.com", "key": "carol", "authenticationMode": "ExternalAuth"}),
    );
    let carol_id = carol["customer"]["id"]
        .as_str()
        .or(carol["id"].as_str())
        .unwrap()
        .to_owned();
    let others = shop.ct.post(
        "carts",
        json!({"currency": "EUR", "anonymousId": "guest-2"}),
    );
    let others = shop.ct.post(
        &format!("carts/{}", others["id"].as_str().unwrap()),
        json!({"version": others["version"], "actions": [{"action": "setCustomerId", "customerId": carol_id}]}),
    );

    let token = shop
        .sign_in_with("Shoppers", "alice", Some("ct_anonymous_id=guest-1; Path=/"))
        .unwrap();
    let alice = shop.ct.customer(&shop.oid(&token)).unwrap();
    let cart = shop
        .ct
        .get(&format!("carts/{}", guest_cart["id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(cart["customerId"], alice["id"], "{cart}");
    let merged =
        "sso_sidecar_backend_calls_total{call=\"commercetools_cart_merge\",outcome=\"ok\"}";
    assert_eq!(shop.sidecar.metric(merged), 1.0);

    // Someone else's cart: commercetools refuses, the sign-in goes on, the cart stays theirs.
    shop.sign_in_with("Shoppers", "bob", Some("ct_anonymous_id=guest-2; Path=/"))
        .unwrap();
    let cart = shop
        .ct
        .get(&format!("carts/{}", others["id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(cart["customerId"].as_str(), Some(carol_id.as_str()));
    let refused =
        "sso_sidecar_backend_calls_total{call=\"commercetools_cart_merge\",outcome=\"refused\"}";
    assert_eq!(shop.sidecar.metric(refused), 1.0);
}

/// A storefront as commercetools' own examples build one: its server keeps the guest's
/// `anonymousId` in a cookie (`ct_anonymous_id`), puts what the guest adds into that
/// anonymous cart, and on the signed-in basket page shows the customer's active cart
/// (the customer found by the key the sidecar synced, `X-SSO-External-Id`).
mod storefront {
    use std::net::SocketAddr;

    use axum::http::{header, HeaderMap, StatusCode};
    use axum::response::{Html, IntoResponse, Response};
    use serde_json::{json, Value};

    #[derive(Clone)]
    pub struct Commercetools {
        url: String,
        http: reqwest::Client,
    }

    impl Commercetools {
        pub fn new(url: &str) -> Self {
            Commercetools {
                url: url.to_owned(),
                http: reqwest::Client::new(),
            }
        }

        async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
            let token: Value = self
                .http
                .post(format!("{}/oauth/token", self.url))
                .basic_auth("storefront", Some("storefront-secret"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "manage_project:shop"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut request = self
                .http
                .request(method, format!("{}/shop/{path}", self.url))
                .bearer_auth(token["access_token"].as_str().unwrap());
            if let Some(body) = body {
                request = request.json(&body);
            }
            request.send().await.unwrap().json().await.unwrap()
        }

        /// The active cart matching a `where` predicate, if any.
        async fn active_cart(&self, predicate: &str) -> Option<Value> {
            let query = format!("{predicate} and cartState=\"Active\"");
            let path = format!(
                "carts?where={}",
                form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
            );
            let found = self.call(reqwest::Method::GET, &path, None).await;
            found["results"].get(0).cloned()
        }

        async fn add_line_item(&self, cart: &Value, sku: &str) -> Value {
            let id = cart["id"].as_str().unwrap();
            let update = json!({
                "version": cart["version"],
                "actions": [{"action": "addLineItem", "sku": sku, "quantity": 1}],
            });
            self.call(reqwest::Method::POST, &format!("carts/{id}"), Some(update))
                .await
        }
    }

    fn anonymous_id(headers: &HeaderMap) -> Option<String> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        cookies.split("; ").find_map(|c| {
            c.strip_prefix("ct_anonymous_id=")
                .filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                .map(str::to_owned)
        })
    }

    fn quantity(cart: Option<&Value>) -> u64 {
        let lines = cart.and_then(|c| c["lineItems"].as_array());
        lines
            .into_iter()
            .flatten()
            .map(|l| l["quantity"].as_u64().unwrap_or(0))
            .sum()
    }

    async fn products(ct: Commercetools, headers: HeaderMap) -> Html<String> {
        let cart = match anonymous_id(&headers) {
            Some(id) => ct.active_cart(&format!("anonymousId=\"{id}\"")).await,
            None => None,
        };
        let add = |sku: &str| {
            format!("<form method=\"post\" action=\"/basket/add\"><input type=\"hidden\" name=\"sku\" value=\"{sku}\"><button id=\"add-{sku}\" type=\"submit\">Add {sku}</button></form>")
        };
        Html(format!(
            "<!doctype html><title>Products</title>{}{}<p>In your basket: <span id=\"count\">{}</span></p><a id=\"checkout\" href=\"/account/basket\">Checkout</a>",
            add("MUG"),
            add("TEE"),
            quantity(cart.as_ref())
        ))
    }

    async fn add(ct: Commercetools, headers: HeaderMap, body: axum::body::Bytes) -> Response {
        let sku = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "sku")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let (id, new) = match anonymous_id(&headers) {
            Some(id) => (id, false),
            None => (uuid_like(), true),
        };
        let cart = match ct.active_cart(&format!("anonymousId=\"{id}\"")).await {
            Some(cart) => cart,
            None => {
                let draft = json!({"currency": "EUR", "anonymousId": id});
                ct.call(reqwest::Method::POST, "carts", Some(draft)).await
            }
        };
        ct.add_line_item(&cart, &sku).await;
        let mut answer = (StatusCode::SEE_OTHER, [(header::LOCATION, "/products")]).into_response();
        if new {
            let cookie = format!("ct_anonymous_id={id}; Path=/; SameSite=Lax; HttpOnly");
            answer
                .headers_mut()
                .insert(header::SET_COOKIE, cookie.parse().unwrap());
        }
        answer
    }

    async fn basket(ct: Commercetools, headers: HeaderMap) -> Response {
        let Some(key) = headers
            .get("x-sso-external-id")
            .and_then(|v| v.to_str().ok())
        else {
            return (StatusCode::UNAUTHORIZED, "no identity").into_response();
        };
        let customer = ct
            .call(reqwest::Method::GET, &format!("customers/key={key}"), None)
            .await;
        let cart = ct
            .active_cart(&format!(
                "customerId=\"{}\"",
                customer["id"].as_str().unwrap_or("")
            ))
            .await;
        let lines: String = cart
            .as_ref()
            .and_then(|c| c["lineItems"].as_array())
            .into_iter()
            .flatten()
            .map(|l| {
                format!(
                    "<li class=\"item\">{} x {}</li>",
                    l["variant"]["sku"].as_str().unwrap_or("?"),
                    l["quantity"]
                )
            })
            .collect();
        Html(format!(
            "<!doctype html><title>Basket</title><ul>{lines}</ul><div id=\"done\"></div>"
        ))
        .into_response()
    }

    fn uuid_like() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("guest-{nanos:x}")
    }

    pub fn start(ct: Commercetools) -> (SocketAddr, tokio::runtime::Runtime) {
        let (a, b, c) = (ct.clone(), ct.clone(), ct);
        let app = axum::Router::new()
            .route(
                "/products",
                axum::routing::get(move |h: HeaderMap| products(a.clone(), h)),
            )
            .route(
                "/basket/add",
                axum::routing::post(move |h: HeaderMap, body| add(b.clone(), h, body)),
            )
            .route(
                "/account/basket",
                axum::routing::get(move |h: HeaderMap| basket(c.clone(), h)),
            );
        super::common::serve(app)
    }

    /// A product with one variant `sku` at a price in EUR, published.
    pub fn product(ct: &super::CommercetoolsEmulation, sku: &str, cents: u32) {
        let kind = ct.post("product-types", json!({"name": sku, "description": sku}));
        ct.post(
            "products",
            json!({
                "productType": {"typeId": "product-type", "id": kind["id"]},
                "name": {"en": sku}, "slug": {"en": sku.to_lowercase()}, "publish": true,
                "masterVariant": {"sku": sku, "prices": [{"value": {"currencyCode": "EUR", "centAmount": cents}}]},
            }),
        );
    }
}

/// Issue 32 in a real browser: a guest adds a mug and a T-shirt, goes to the checkout's
/// basket page, signs in there, and lands back on it seeing both items in the customer's
/// basket together with the cap the customer had put in it earlier (merged, not replaced).
#[test]
fn chromium_guest_keeps_the_basket_through_the_sign_in_at_checkout() {
    let ct = CommercetoolsEmulation::start(&["b2b"]);
    for (sku, cents) in [("MUG", 900), ("TEE", 1900), ("CAP", 1500)] {
        storefront::product(&ct, sku, cents);
    }
    let (store, _runtime) = storefront::start(storefront::Commercetools::new(&ct.url));
    let ports = Ports::new();
    let idp = Idp::for_sidecar(
        ports,
        json!({
            "azure": true, "issuerPath": "/tenant/v2.0", "jwtAccessTokens": "api://shop",
            "users": {"alice": {"given_name": "Alice", "family_name": "Adams", "groups": []}},
        }),
    );
    let config = CONFIG
        .replace("{ad_issuer}", &idp.issuer)
        .replace("{ct_url}", &ct.url);
    let sidecar = Sidecar::start_on(ports, &config, &format!("http://{store}"), &[]);
    sidecar.wait_idps_ready();

    // Alice signed in earlier and left a cap in her basket.
    let earlier = Browser::new();
    let to_idp = earlier.get(&sidecar.url("/oauth2/start?org=Shoppers&rd=%2Fproducts"));
    let callback = earlier.sign_in_at_idp(to_idp, "alice", &sidecar.url("/"));
    assert_eq!(earlier.get(&callback).status, 302);
    let customers = ct.get("customers").unwrap();
    let alice = &customers["results"][0];
    let cart = ct.post(
        "carts",
        json!({"currency": "EUR", "customerId": alice["id"], "lineItems": [{"sku": "CAP", "quantity": 1}]}),
    );
    assert_eq!(
        cart["lineItems"].as_array().map(Vec::len),
        Some(1),
        "{cart}"
    );

    let job = json!({
        "products": sidecar.url("/products"),
        "skus": ["MUG", "TEE"],
        "org": "Shoppers",
        "user": "alice",
    });
    let result = run_chromium("browser-basket.mjs", &job, &sidecar.log());
    assert_eq!(result["url"], sidecar.url("/account/basket"), "{result}");
    let mut items: Vec<&str> = result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    items.sort();
    assert_eq!(items, ["CAP x 1", "MUG x 1", "TEE x 1"], "{result}");
    let merged =
        "sso_sidecar_backend_calls_total{call=\"commercetools_cart_merge\",outcome=\"ok\"}";
    assert_eq!(sidecar.metric(merged), 1.0);
}
