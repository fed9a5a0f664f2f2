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

const BRANDED: &str = r##"
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

[pages]
shop_name = "Muster Shop"
logo_url = "/static/logo.svg"
accent_color = "#7a1f5c"
support_contact = "hilfe@muster.example"
stylesheet = "{stylesheet}"
default_language = "en"

[pages.hosts.localhost]
shop_name = "Muster Back Office"
accent_color = "#1f4e79"

[identity_providers.kc]
type = "oidc"
name = "Firmen-Login"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"

[identity_providers.local]
type = "local"
name = "Shop-Konto"

[organizations.Muster]
external_name = "Muster"
identity_providers = ["kc", "local"]
local_login_url = "/login?rd={rd}"
logout_policy = "LOCAL"

[organizations.Partner]
external_name = "Partner"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/login"
auth = "public"

[[routes]]
path_prefix = "/static"
auth = "public"

[[routes]]
host = "localhost"
path_prefix = "/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "required"
"##;

/// The snapshot `name` at `width` of a walk.
fn snapshot<'a>(walk: &'a serde_json::Value, name: &str, width: &str) -> &'a serde_json::Value {
    walk["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name && s["width"] == width)
        .unwrap_or_else(|| panic!("no snapshot {name} at {width}: {walk}"))
}

fn walk_violations(walk: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    for shot in walk["snapshots"].as_array().unwrap() {
        for violation in shot["violations"].as_array().unwrap() {
            found.push(format!(
                "{} ({}): {} {}",
                shot["name"], shot["width"], violation["id"], violation["nodes"]
            ));
        }
    }
    found
}

/// A German-speaking customer of a branded shop, in Chromium at desktop and phone width:
/// signs in, is asked before signing out from elsewhere and before switching organization,
/// signs out (and is told the IdP session lives on); then the IdP goes down and the next
/// sign-in stays in the shop, offering the shop account. Every page in German, in the
/// shop's look, with no axe violation.
#[test]
fn a_branded_shop_in_german_from_sign_in_to_an_idp_outage() {
    let ports = Ports::new();
    let mut idp = Idp::for_sidecar(ports, json!({}));
    let upstream = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let stylesheet = dir.path().join("shop.css");
    std::fs::write(&stylesheet, "main{border-top:4px solid #123456}\n").unwrap();
    let sidecar = Sidecar::start_on(
        ports,
        &BRANDED
            .replace("{issuer}", &idp.issuer)
            .replace("{stylesheet}", stylesheet.to_str().unwrap()),
        &upstream.url(),
        &[],
    );
    sidecar.wait_idps_ready();
    let shots = repo_root().join("target/test-artifacts/pages-de");
    std::fs::create_dir_all(&shots).unwrap();

    let job = json!({
        "locale": "de-DE",
        "screenshots": shots,
        "steps": [
            {"goto": sidecar.url("/konto")},
            {"snapshot": "organization", "probe": "main"},
            {"fill": "#org", "value": "Muster"},
            {"click": "button[type=submit]"},
            {"snapshot": "sign-in-options"},
            {"click": "#idp-kc"},
            {"fill": "input[name=login]", "value": "anna"},
            {"fill": "input[name=password]", "value": "any-password"},
            {"click": "button[type=submit]"},
            {"waitForUrl": sidecar.url("/konto")},
            {"goto": sidecar.url("/oauth2/sessions")},
            {"snapshot": "sessions"},
            {"goto": sidecar.url("/oauth2/logout"), "from": idp.url("/.well-known/openid-configuration")},
            {"snapshot": "confirm-sign-out"},
            {"click": "#stay"},
            {"goto": sidecar.url("/oauth2/start?org=Partner&rd=%2Fkonto")},
            {"snapshot": "switch-organization"},
            {"click": "#stay"},
            {"goto": sidecar.url("/oauth2/logout")},
            {"snapshot": "signed-out"},
            {"goto": sidecar.url("/oauth2/start?rd=%2F").replace("127.0.0.1", "localhost")},
            {"snapshot": "back-office-organization"},
        ],
    });
    let walk = run_chromium("browser-walk.mjs", &job, &sidecar.log());
    let found = walk_violations(&walk);
    assert!(found.is_empty(), "axe found:\n{}", found.join("\n"));
    for width in ["desktop", "phone"] {
        let at = |name: &str| snapshot(&walk, name, width);
        let text = |name: &str| at(name)["text"].as_str().unwrap().to_owned();
        for name in [
            "organization",
            "sessions",
            "sign-in-options",
            "confirm-sign-out",
            "switch-organization",
            "signed-out",
        ] {
            assert_eq!(at(name)["lang"], "de", "{name}: {}", at(name));
            assert!(text(name).contains("Muster Shop"), "{name}: {}", text(name));
            assert!(
                text(name).contains("Brauchen Sie Hilfe? Wenden Sie sich an hilfe@muster.example."),
                "{name}: {}",
                text(name)
            );
            assert!(
                at(name)["logo"].as_u64().unwrap() > 0,
                "the logo loads: {}",
                at(name)
            );
        }
        // The shop's stylesheet applies: the pages' CSP admits it.
        assert_eq!(at("organization")["probe"], "rgb(18, 52, 86)");
        assert!(text("organization").contains("Organisation"));
        assert!(text("organization").contains("Weiter"));
        assert!(at("organization")["title"]
            .as_str()
            .unwrap()
            .starts_with("Anmelden · Muster Shop"));
        assert!(text("sign-in-options").contains("Bei Muster anmelden"));
        assert!(text("sign-in-options").contains("Shop-Konto"));
        assert!(
            text("confirm-sign-out")
                .contains("Sie sind als Anna Tester (anna@example.com) für Muster angemeldet."),
            "{}",
            text("confirm-sign-out")
        );
        assert!(text("confirm-sign-out").contains("Angemeldet bleiben"));
        assert!(text("switch-organization").contains("Für Partner anmelden?"));
        // Who is signed in, for which organization, where, and when it ends.
        let sessions = text("sessions");
        assert!(sessions.contains("Ihre Sitzungen"), "{sessions}");
        assert!(
            sessions.contains("Sie sind als Anna Tester (anna@example.com) für Muster angemeldet.")
        );
        assert!(
            sessions.contains("dieser Browser") && sessions.contains("Muster über Firmen-Login")
        );
        assert!(
            sessions.contains("Chrome on Linux") && sessions.contains("endet "),
            "{sessions}"
        );
        assert!(sessions.contains("Überall abmelden"));
        assert!(text("switch-organization").contains("Für Muster angemeldet bleiben"));
        assert!(text("signed-out").contains("Sie sind abgemeldet"));
        assert!(
            text("signed-out").contains("Bei Firmen-Login sind Sie weiterhin angemeldet"),
            "{}",
            text("signed-out")
        );
        // Another host, another look; the same language.
        assert!(text("back-office-organization").contains("Muster Back Office"));
        assert!(!text("back-office-organization").contains("Muster Shop"));
    }

    // The IdP goes down after start-up; a signed-in request finds out (its refresh fails).
    let browser = Browser::new();
    let to_idp = browser.get(&sidecar.url("/oauth2/start?org=Muster&idp=kc&rd=%2Fkonto"));
    let callback = browser.sign_in_at_idp(to_idp, "bernd", &sidecar.url("/"));
    assert_eq!(browser.follow(browser.get(&callback)).status, 200);
    idp.stop();
    assert_eq!(
        browser.get(&sidecar.url("/konto")).status,
        200,
        "the session lives on"
    );
    sidecar.metric_reaching("sso_sidecar_idp_up{idp=\"kc\"}", 0.0);

    let job = json!({
        "locale": "de-AT",
        "screenshots": shots,
        "steps": [
            {"goto": sidecar.url("/oauth2/start?org=Muster&idp=kc&rd=%2Fkonto")},
            {"snapshot": "idp-down"},
            {"click": "a[href*='idp=local']"},
            {"waitForUrl": sidecar.url("/login")},
        ],
    });
    let walk = run_chromium("browser-walk.mjs", &job, &sidecar.log());
    let found = walk_violations(&walk);
    assert!(found.is_empty(), "axe found:\n{}", found.join("\n"));
    for width in ["desktop", "phone"] {
        let down = snapshot(&walk, "idp-down", width);
        assert_eq!(down["status"], 503);
        assert!(
            down["url"]
                .as_str()
                .unwrap()
                .starts_with(&sidecar.url("/oauth2/start")),
            "never sent to the IdP: {down}"
        );
        let text = down["text"].as_str().unwrap();
        assert!(
            text.contains("Firmen-Login ist im Moment nicht erreichbar"),
            "{text}"
        );
        assert!(text.contains("Sie können sich auf anderem Weg anmelden"));
        assert!(text.contains("Shop-Konto"));
        assert!(text.contains("Anfrage-Kennung: "));
    }

    // The stylesheet is served by the sidecar, cacheable; a host without one has none.
    let css = client()
        .get(sidecar.url("/oauth2/pages.css"))
        .send()
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().unwrap().contains("#123456"));
}
