//! An IdP that goes down after start-up (issue 35): the sidecar learns it from its own
//! calls, never sends a browser there while it is down, offers the organization's other
//! ways in, and finds out by itself when it is back. The real provider, stopped and
//! started again on the same port.

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
# Every request refreshes: the first request after the IdP went down finds out.
min_access_token_lifetime_left = "2h"

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Company login"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"

[identity_providers.local]
type = "local"
name = "Shop account"

[organizations.Shop]
external_name = "Shop"
identity_providers = ["kc", "local"]
local_login_url = "/login?rd={rd}"

[[routes]]
path_prefix = "/login"
auth = "public"

[[routes]]
path_prefix = "/"
auth = "required"
"#;

#[test]
fn a_browser_is_never_sent_to_an_idp_that_is_down() {
    let ports = Ports::new();
    let mut idp = Idp::for_sidecar(ports, json!({}));
    let upstream = Upstream::start();
    let sidecar = Sidecar::start_on(
        ports,
        &CONFIG.replace("{issuer}", &idp.issuer),
        &upstream.url(),
        &[],
    );
    sidecar.wait_idps_ready();
    let start = sidecar.url("/oauth2/start?org=Shop&idp=kc&rd=%2Faccount");

    let browser = Browser::new();
    let page = browser.follow(browser.get(&start));
    let callback = browser.sign_in_at_idp(page, "ann", &sidecar.url(""));
    assert_eq!(browser.follow(browser.get(&callback)).status, 200);
    assert_eq!(sidecar.metric("sso_sidecar_idp_up{idp=\"kc\"}"), 1.0);

    // The IdP goes away. The next request's refresh cannot reach it: it is down now.
    idp.stop();
    assert_eq!(
        browser.get(&sidecar.url("/account")).status,
        200,
        "the session lives on"
    );
    assert_eq!(
        sidecar.metric_reaching("sso_sidecar_idp_up{idp=\"kc\"}", 0.0),
        0.0
    );

    // Someone signing in is not sent there: they learn why, and how else to sign in.
    let visitor = Browser::new();
    let page = visitor.get(&start);
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.location.is_none());
    assert!(
        page.body.contains("Company login cannot be reached"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            "href=\"/oauth2/start?rd=%2Faccount&amp;org=Shop&amp;idp=local\">Shop account"
        ),
        "{}",
        page.body
    );
    let ready: serde_json::Value = client()
        .get(sidecar.admin_url("/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["identity_providers"]["kc"]["up"], false, "{ready}");
    assert_eq!(ready["ready"], true, "public pages and sessions still work");
    let retry = client().get(&start).send().unwrap();
    assert_eq!(retry.headers()["retry-after"], "30");
    let local = visitor.get(&sidecar.url("/oauth2/start?org=Shop&idp=local&rd=%2Faccount"));
    assert_eq!(local.location.as_deref(), Some("/login?rd=%2Faccount"));

    // Back: its discovery task finds out by itself, and sign-ins go there again.
    idp.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sidecar.metric("sso_sidecar_idp_up{idp=\"kc\"}") != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the IdP never came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let again = visitor.get(&start);
    assert_eq!(again.status, 302, "{again:?}");
    assert!(again.location.unwrap().starts_with(&idp.issuer));
}
