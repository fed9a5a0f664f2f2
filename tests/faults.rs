//! Faults with real processes: the OpenID provider answering garbage, slowly or not at all,
//! and an upstream that drops connections. Expected: readable pages and status codes,
//! metrics, no hang, and recovery when the part comes back.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
public_url = "{public_url}"
connect_timeout = "1s"
read_timeout = "2s"

[admin]
listen = "{admin}"

[oidc]
remote = "supported"
http_timeout = "1s"

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.inSPIRED]
external_name = "inSPIRED"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

fn idp_state(sidecar: &Sidecar) -> serde_json::Value {
    let ready: serde_json::Value = reqwest::blocking::get(sidecar.admin_url("/readyz"))
        .unwrap()
        .json()
        .unwrap();
    ready["identity_providers"]["kc"].clone()
}

fn wait_state(sidecar: &Sidecar, state: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let current = idp_state(sidecar);
        if current["state"] == state || Instant::now() > deadline {
            return current;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(
    idp_extra: serde_json::Value,
    before_sidecar: impl FnOnce(&Idp),
) -> (Upstream, Idp, Sidecar) {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let idp = Idp::for_sidecar(ports, idp_extra);
    before_sidecar(&idp);
    let sidecar = Sidecar::start_on(
        ports,
        &CONFIG.replace("{kc_issuer}", &idp.issuer),
        &upstream.url(),
        &[],
    );
    (upstream, idp, sidecar)
}

/// Starts a login and returns the callback URL the IdP sends the browser to.
fn to_callback(sidecar: &Sidecar, browser: &Browser) -> String {
    let to_idp = browser.get(&format!(
        "{}?org=inSPIRED&rd=%2Faccount%2F",
        sidecar.url("/oauth2/start")
    ));
    assert_eq!(to_idp.status, 302, "{to_idp:?}");
    browser.sign_in_at_idp(to_idp, "fay", &sidecar.url("/"))
}

#[test]
fn discovery_answering_html_at_start_up_then_recovering() {
    let (_upstream, idp, sidecar) = start(json!({}), |idp| idp.garble("discovery", "html"));
    let state = wait_state(&sidecar, "failed", Duration::from_secs(5));
    assert_eq!(state["state"], "failed", "{state}");
    assert!(!state["error"].as_str().unwrap().is_empty());
    let page = Browser::new().get(&format!("{}?org=inSPIRED", sidecar.url("/oauth2/start")));
    assert_eq!(page.status, 503);
    assert!(page.body.contains("not available"));
    assert!(sidecar.metric("sso_sidecar_idp_discovery_total{idp=\"kc\",outcome=\"error\"}") >= 1.0);

    idp.garble("discovery", "off");
    let state = wait_state(&sidecar, "ready", Duration::from_secs(10));
    assert_eq!(state["state"], "ready", "retried with backoff: {state}");
    let browser = Browser::new();
    let callback = to_callback(&sidecar, &browser);
    assert_eq!(browser.get(&callback).status, 302);
}

#[test]
fn token_endpoint_answering_garbage_or_html() {
    let (upstream, idp, sidecar) = start(json!({}), |_| {});
    wait_state(&sidecar, "ready", Duration::from_secs(5));
    for mode in ["json", "html"] {
        let browser = Browser::new();
        let callback = to_callback(&sidecar, &browser);
        idp.garble("token", mode);
        let page = browser.get(&callback);
        idp.garble("token", "off");
        assert_eq!(page.status, 502, "{mode}: {page:?}");
        assert!(page.body.contains("Sign in again"), "{mode}: {}", page.body);
    }
    assert!(upstream.seen().is_empty());
    assert_eq!(sidecar.metric("sso_sidecar_logins_failed_total{idp=\"kc\",organization=\"inSPIRED\",reason=\"bad_response\"}"), 2.0);
}

#[test]
fn slow_token_endpoint_times_out_with_a_page() {
    let (_upstream, idp, sidecar) = start(json!({}), |_| {});
    wait_state(&sidecar, "ready", Duration::from_secs(5));
    let browser = Browser::new();
    let callback = to_callback(&sidecar, &browser);
    idp.garble("token", "slow");
    let started = Instant::now();
    let page = browser.get(&callback);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "oidc.http_timeout applies: {:?}",
        started.elapsed()
    );
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.body.contains("could not be reached"), "{}", page.body);
}

#[test]
fn garbage_userinfo_does_not_fail_the_login() {
    let (upstream, idp, sidecar) = start(json!({"idTokenClaims": "minimal"}), |_| {});
    wait_state(&sidecar, "ready", Duration::from_secs(5));
    idp.garble("userinfo", "html");
    let browser = Browser::new();
    let callback = to_callback(&sidecar, &browser);
    let landed = browser.follow(browser.get(&callback));
    assert_eq!(landed.status, 200, "{landed:?}");
    let seen = upstream.last();
    assert_eq!(seen.header("x-sso-subject"), Some("fay"));
    assert_eq!(
        seen.header("x-sso-email"),
        None,
        "userinfo was unreadable, so no email"
    );
}

#[test]
fn garbage_jwks_refuses_the_login_and_keeps_serving() {
    let (_upstream, idp, sidecar) = start(json!({}), |_| {});
    wait_state(&sidecar, "ready", Duration::from_secs(5));
    // New keys at the IdP that the sidecar cannot fetch: the ID token names an unknown key.
    idp.rotate_keys();
    idp.garble("jwks", "json");
    let browser = Browser::new();
    let callback = to_callback(&sidecar, &browser);
    let page = browser.get(&callback);
    assert_eq!(page.status, 401, "{page:?}");
    assert!(page.body.contains("could not be verified"));
    // The previously discovered metadata stays in use: the public site is unaffected.
    assert_eq!(client().get(sidecar.url("/")).send().unwrap().status(), 200);
    assert_eq!(idp_state(&sidecar)["state"], "ready");
}

#[test]
fn idp_down_during_login() {
    let (_upstream, mut idp, sidecar) = start(json!({}), |_| {});
    wait_state(&sidecar, "ready", Duration::from_secs(5));
    let browser = Browser::new();
    let callback = to_callback(&sidecar, &browser);
    idp.stop();
    let page = browser.get(&callback);
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.body.contains("could not be reached"), "{}", page.body);
    assert!(page.body.contains("Sign in again"));
}

#[test]
fn upstream_closing_connections_gives_502() {
    // Accepts and closes at once, before any answer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            drop(stream);
        }
    });
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({}));
    let sidecar = Sidecar::start_on(
        ports,
        &CONFIG.replace("{kc_issuer}", &idp.issuer),
        &format!("http://{addr}"),
        &[],
    );
    let started = Instant::now();
    let response = client()
        .get(sidecar.url("/page"))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(response.text().unwrap().contains("not reachable"));
    assert_eq!(
        client()
            .get(sidecar.admin_url("/healthz"))
            .send()
            .unwrap()
            .status(),
        200,
        "still alive"
    );
}
