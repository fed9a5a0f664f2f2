//! Who may enter (issue 15), against the real provider: one IdP serving the back office's
//! organization and a shop's, membership rules at the callback and at every refresh, route
//! `allow` rules for sessions and bearer tokens, `X-SSO-Groups` upstream, and the `403`
//! page in Chromium.

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
min_access_token_lifetime_left = "{min_left}"
max_clock_skew = "0s"

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Company Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"
audiences = ["shop"]

# One IdP serves both: only Intershop staff may sign in as Operations.
[organizations.Operations]
external_name = "Intershop"
identity_providers = ["kc"]
members = [
  { claim = "email", ends_with = ["@intershop.com"] },
  { claim = "realm_access.roles", any_of = ["backoffice"] },
]

[organizations.inTRONICS]
external_name = "inTRONICS"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/INTERSHOP/web/WFS/SLDSystem"
auth = "required"
organization = "Operations"

[[routes]]
path_prefix = "/admin/"
auth = "required"
allow = [{ claim = "groups", any_of = ["admins"] }]

[[routes]]
path_prefix = "/api/"
auth = "api"
allow = [{ claim = "groups", any_of = ["buyers"] }]

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

struct Shop {
    upstream: Upstream,
    kc: Idp,
    sidecar: Sidecar,
}

fn shop(access_ttl: u64, min_left: &str) -> Shop {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let kc = Idp::for_sidecar(
        ports,
        json!({
            "ttl": {"AccessToken": access_ttl},
            "users": {
                "olivia": {"email": "olivia@intershop.com", "groups": ["admins", "staff"]},
                "ravi": {"email": "ravi@partner.example", "realm_access": {"roles": ["backoffice"]}},
                "sam": {"email": "sam@shopper.example", "groups": ["buyers"]},
            },
        }),
    );
    let config = CONFIG
        .replace("{kc_issuer}", &kc.issuer)
        .replace("{min_left}", min_left);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();
    Shop {
        upstream,
        kc,
        sidecar,
    }
}

impl Shop {
    /// Signs in for `org` and returns the callback's answer.
    fn sign_in(&self, browser: &Browser, org: &str, user: &str) -> Page {
        let to_idp = browser.get(&format!(
            "{}?org={org}&idp=kc&rd=%2Faccount%2F",
            self.sidecar.url("/oauth2/start")
        ));
        assert_eq!(to_idp.status, 302, "{to_idp:?}");
        let callback = browser.sign_in_at_idp(to_idp, user, &self.sidecar.url("/"));
        browser.get(&callback)
    }
}

/// Issue 15: an inTRONICS shopper chose "Intershop" and reached the back office as
/// Operations. Old code: 302 with a session for Operations.
#[test]
fn a_shopper_cannot_sign_in_as_operations() {
    let shop = shop(3600, "3m");
    let browser = Browser::new();
    let page = shop.sign_in(&browser, "Intershop", "sam");
    assert_eq!(page.status, 403, "{page:?}");
    assert!(
        page.body.contains("not a member of Intershop"),
        "{}",
        page.body
    );
    assert!(page.body.contains("sam@shopper.example"), "{}", page.body);
    assert!(!page.sets_session());
    assert_eq!(
        browser
            .get(&shop.sidecar.url("/INTERSHOP/web/WFS/SLDSystem/x"))
            .status,
        302
    );
    assert_eq!(
        shop.sidecar.metric("sso_sidecar_logins_failed_total{idp=\"kc\",organization=\"Operations\",reason=\"not_a_member\"}"),
        1.0
    );
    // The same account is welcome where it belongs.
    assert_eq!(
        shop.sign_in(&Browser::new(), "inTRONICS", "sam").status,
        302
    );

    // Either rule admits: the email domain, or a role at a nested claim path.
    for user in ["olivia", "ravi"] {
        let browser = Browser::new();
        assert_eq!(
            shop.sign_in(&browser, "Intershop", user).status,
            302,
            "{user}"
        );
        let office = browser.get(&shop.sidecar.url("/INTERSHOP/web/WFS/SLDSystem/x"));
        assert_eq!(office.status, 200, "{user}");
    }
}

/// Membership is checked again when a refresh brings new claims: a user who left the
/// company ends their session at the next refresh.
#[test]
fn a_user_who_left_loses_the_session_at_the_next_refresh() {
    let shop = shop(5, "3s");
    let browser = Browser::new();
    assert_eq!(shop.sign_in(&browser, "Intershop", "olivia").status, 302);
    let office = shop.sidecar.url("/INTERSHOP/web/WFS/SLDSystem/x");
    assert_eq!(browser.get(&office).status, 200);
    shop.kc
        .set_user("olivia", json!({"email": "olivia@elsewhere.example"}));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let after = browser.get(&office);
    assert_eq!(after.status, 302, "{after:?}\n{}", shop.sidecar.log());
    assert_eq!(
        shop.sidecar
            .metric("sso_sidecar_sessions_ended_total{reason=\"not_a_member\"}"),
        1.0
    );
}

/// Route rules hold for sessions (a page for browsers, JSON for programs, never a
/// redirect) and for bearer tokens; groups go upstream.
#[test]
fn route_rules_for_sessions_and_bearer_tokens() {
    let shop = shop(3600, "3m");
    let admin = Browser::new();
    assert_eq!(shop.sign_in(&admin, "inTRONICS", "olivia").status, 302);
    assert_eq!(admin.get(&shop.sidecar.url("/admin/users")).status, 200);
    let seen = shop.upstream.last();
    assert_eq!(seen.header("x-sso-groups"), Some("admins,staff"));

    let buyer = Browser::new();
    assert_eq!(shop.sign_in(&buyer, "inTRONICS", "sam").status, 302);
    let page = buyer.get(&shop.sidecar.url("/admin/users"));
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.location.is_none());
    assert!(page.body.contains("Sign in as someone else"));
    assert!(page.body.contains("sam@shopper.example"));
    let xhr = buyer
        .client
        .get(shop.sidecar.url("/admin/users"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(xhr.status(), 403);
    assert_eq!(
        xhr.json::<serde_json::Value>().unwrap()["error"],
        "forbidden"
    );
    assert_eq!(
        shop.sidecar
            .metric("sso_sidecar_requests_denied_total{route=\"/admin/\"}"),
        2.0
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |groups: serde_json::Value| {
        shop.kc.sign(
            json!({"sub": "api-client", "aud": "shop", "exp": now + 600, "groups": groups}),
            "valid",
        )
    };
    let call = |token: &str| {
        client()
            .get(shop.sidecar.url("/api/orders"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap()
    };
    let allowed = call(&token(json!(["buyers"])));
    assert_eq!(allowed.status(), 200);
    assert_eq!(shop.upstream.last().header("x-sso-groups"), Some("buyers"));
    let refused = call(&token(json!(["viewers"])));
    assert_eq!(refused.status(), 403);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
}

/// The not-a-member page as a person sees it: Chromium through the login page and the
/// provider's form, ending on the callback's `403`.
#[test]
fn chromium_shows_the_not_a_member_page() {
    let shop = shop(3600, "3m");
    let artifacts = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("not-a-member.png");
    let job = json!({
        "url": shop.sidecar.url("/account/orders"),
        "org": "intershop",
        "user": "sam",
        "until": shop.sidecar.url("/oauth2/callback"),
        "finalScreenshot": screenshot,
    });
    let result = run_chromium("browser-login.mjs", &job, "");
    let text = result["text"].as_str().unwrap();
    assert!(
        text.contains("You are not a member of this organization"),
        "{text}"
    );
    assert!(
        text.contains("sam@shopper.example is not a member of Intershop"),
        "{text}"
    );
    assert!(std::fs::read(&screenshot).unwrap().starts_with(b"\x89PNG"));
}
