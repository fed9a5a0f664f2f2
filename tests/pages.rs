//! The sidecar's own pages as people see them (issue 35): every page checked by axe-core
//! (WCAG 2.1 A and AA) in Debian's Chromium, at desktop and phone width, with screenshots
//! under `target/test-artifacts/pages/`.

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

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Company login"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"

[identity_providers.gone]
type = "oidc"
name = "Partner login"
issuer = "http://127.0.0.1:9/gone"
client_id = "shop"
client_secret = "shop-secret"

[identity_providers.local]
type = "local"
name = "Shop account"

[organizations.Shop]
external_name = "Shop"
identity_providers = ["kc", "local"]
local_login_url = "/login"

[organizations.Partners]
external_name = "Partners"
identity_providers = ["gone", "local"]
local_login_url = "/login"

[[routes]]
path_prefix = "/login"
auth = "public"

[[routes]]
path_prefix = "/admin"
auth = "required"
allow = [{ claim = "groups", any_of = ["admins"] }]

[[routes]]
path_prefix = "/"
auth = "required"
"#;

fn violations(result: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    for run in result["results"].as_array().unwrap() {
        for violation in run["violations"].as_array().unwrap() {
            found.push(format!(
                "{} ({}): {} {}",
                run["page"], run["width"], violation["id"], violation["nodes"]
            ));
        }
    }
    found
}

#[test]
fn every_page_passes_axe_at_desktop_and_phone_width() {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({}));
    let upstream = Upstream::start();
    let sidecar = Sidecar::start_on(
        ports,
        &CONFIG.replace("{issuer}", &idp.issuer),
        &upstream.url(),
        &[],
    );
    let shots = repo_root().join("target/test-artifacts/pages");
    std::fs::create_dir_all(&shots).unwrap();
    let page = |name: &str, path: &str| json!({"name": name, "url": sidecar.url(path)});

    // A visitor's pages.
    let job = json!({
        "screenshots": shots,
        "pages": [
            page("organization", "/oauth2/start?rd=%2Fx"),
            page("organization-unknown", "/oauth2/start?org=Nobody&rd=%2Fx"),
            page("sign-in-options", "/oauth2/start?org=Shop&rd=%2Fx"),
            page("idp-down", "/oauth2/start?org=Partners&idp=gone&rd=%2Fx"),
            page("signed-out", "/oauth2/logout"),
            page("bad-address", "/a/%2e%2e/%2e%2e/b"),
            page("not-ours", "/oauth2/nothing"),
            page("callback-expired", "/oauth2/callback?state=x&code=y"),
        ],
    });
    let result = run_chromium("browser-axe.mjs", &job, &sidecar.log());
    let found = violations(&result);
    assert!(found.is_empty(), "axe found:\n{}", found.join("\n"));

    // A signed-in customer's pages: sign-out asked from another site, a page the rules
    // refuse, signing in for another organization.
    sidecar.wait_idps_ready_except(&["gone"]);
    let browser = Browser::new();
    let to_idp = browser.get(&sidecar.url("/oauth2/start?org=Shop&idp=kc&rd=%2Fx"));
    let callback = browser.sign_in_at_idp(to_idp, "ann", &sidecar.url("/"));
    browser.get(&callback);
    let cookie = format!(
        "_sso_session={}",
        browser.cookie(&sidecar.url("/"), "_sso_session").unwrap()
    );
    let job = json!({
        "screenshots": shots,
        "headers": {"Cookie": cookie},
        "pages": [
            page("forbidden", "/admin/"),
            page("switch-organization", "/oauth2/start?org=Partners&idp=gone&rd=%2Fx"),
            // A sign-out link from another site only asks (and names who is signed in).
            {
                "name": "confirm-sign-out",
                "url": sidecar.url("/oauth2/logout"),
                "from": idp.url("/.well-known/openid-configuration"),
            },
        ],
    });
    let result = run_chromium("browser-axe.mjs", &job, &sidecar.log());
    let found = violations(&result);
    assert!(found.is_empty(), "axe found:\n{}", found.join("\n"));
}
