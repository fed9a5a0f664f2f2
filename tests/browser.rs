//! A real browser signs in: headless Chromium (Debian's `chromium`, driven by npm
//! `playwright-core` from `idp/browser-login.mjs`) goes through the login page and the real
//! OpenID provider's login form and lands on the shop page with its identity.

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
name = "Company Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"
[identity_providers.localShop]
type = "local"
name = "Shop account"
[organizations.Operations]
external_name = "Intershop"
identity_providers = ["kc", "localShop"]
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

#[test]
fn chromium_signs_in_through_the_login_page_and_the_provider() {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let kc = Idp::for_sidecar(ports, json!({"issuerPath": "/realms/ICM"}));
    let sidecar = Sidecar::start_on(
        ports,
        &CONFIG.replace("{kc_issuer}", &kc.issuer),
        &upstream.url(),
        &[],
    );
    sidecar.wait_idps_ready();

    let artifacts = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("login-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let job = json!({
        "url": sidecar.url("/account/orders"),
        "org": "intershop",
        "idp": "kc",
        "user": "browser-user",
        "screenshot": screenshot,
    });
    let result = run_chromium("browser-login.mjs", &job, &sidecar.log());
    assert_eq!(result["url"], sidecar.url("/account/orders"));
    let text = result["text"].as_str().unwrap();
    assert!(
        text.contains("\"x-sso-subject\":\"browser-user\""),
        "{text}"
    );
    assert!(
        text.contains("\"x-sso-organization\":\"Operations\""),
        "{text}"
    );
    // The browser also asks for /favicon.ico (a public path); look at the page request.
    let seen = upstream
        .seen()
        .into_iter()
        .find(|s| s.uri == "/account/orders")
        .expect("page request forwarded");
    assert_eq!(seen.header("x-sso-subject"), Some("browser-user"));
    let png = std::fs::read(&screenshot).expect("login page screenshot saved");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1000);
}
