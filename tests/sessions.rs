//! Sessions people and support can see and end (issue 33): `/oauth2/sessions` for the
//! signed-in person (HTML and JSON; end one, all others, all; only from this site), and
//! the admin API with `admin.token`, which also refuses the subject's bearer tokens.

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
token = "env:ADMIN_TOKEN"

[oidc]
remote = "supported"

[session]
keys = ["{session_key}"]
secure = false

[headers]
forward_access_token = true

[identity_providers.kc]
type = "oidc"
name = "Company login"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"
audiences = ["api://shop"]

[organizations.Shop]
external_name = "Shop"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/api"
auth = "api"
organization = "Shop"

[[routes]]
path_prefix = "/"
auth = "required"
"#;

const ADMIN_TOKEN: &str = "support-desk-token-0123456789";

struct Shop {
    _idp: Idp,
    upstream: Upstream,
    sidecar: Sidecar,
}

fn shop() -> Shop {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({"jwtAccessTokens": "api://shop"}));
    let upstream = Upstream::start();
    let sidecar = Sidecar::start_on(
        ports,
        &CONFIG.replace("{issuer}", &idp.issuer),
        &upstream.url(),
        &[("ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    sidecar.wait_idps_ready();
    Shop {
        _idp: idp,
        upstream,
        sidecar,
    }
}

/// A browser signed in as `user`, with its own user agent.
fn signed_in(shop: &Shop, user: &str) -> Browser {
    let browser = Browser::new();
    let to_idp = browser.get(&shop.sidecar.url("/oauth2/start?rd=%2Faccount"));
    let callback = browser.sign_in_at_idp(to_idp, user, &shop.sidecar.url("/"));
    assert_eq!(browser.follow(browser.get(&callback)).status, 200);
    browser
}

fn listed(shop: &Shop, browser: &Browser) -> serde_json::Value {
    let page = browser.get(&shop.sidecar.url("/oauth2/sessions?format=json"));
    assert_eq!(page.status, 200, "{page:?}");
    serde_json::from_str(&page.body).unwrap()
}

fn end(shop: &Shop, browser: &Browser, what: &str) -> Page {
    browser.post_form(
        &shop.sidecar.url("/oauth2/sessions"),
        &[("end".to_owned(), what.to_owned())],
    )
}

fn still_in(shop: &Shop, browser: &Browser) -> bool {
    browser.get(&shop.sidecar.url("/account")).status == 200
}

#[test]
fn people_see_and_end_their_own_sessions_and_no_one_elses() {
    let shop = shop();
    let laptop = signed_in(&shop, "ann");
    let phone = signed_in(&shop, "ann");
    let bob = signed_in(&shop, "bob");

    // Both of ann's sessions, the current one marked; never bob's.
    let seen = listed(&shop, &laptop);
    let sessions = seen["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{seen}");
    assert!(sessions
        .iter()
        .all(|s| s["subject"] == "ann" && s["organization"] == "Shop"));
    assert!(sessions.iter().any(|s| s["id"] == seen["current"]));
    assert!(
        sessions.iter().all(|s| s["network"] == "127.0.0.0/24"),
        "{seen}"
    );
    let phone_id = listed(&shop, &phone)["current"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_id = listed(&shop, &bob)["current"].as_str().unwrap().to_owned();

    // The page names who is signed in and each session.
    let page = laptop.get(&shop.sidecar.url("/oauth2/sessions"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Ann Tester"), "{}", page.body);
    assert!(page.body.contains("this browser"));
    assert!(page.body.contains("Shop with Company login"));
    assert!(page.body.contains(&format!("id=\"session-{phone_id}\"")));

    // From another site: nothing ends.
    let forged = laptop.post_form_with(
        &shop.sidecar.url("/oauth2/sessions"),
        &[("end".to_owned(), "all".to_owned())],
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    );
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(still_in(&shop, &laptop) && still_in(&shop, &phone));

    // Someone else's session id ends nothing.
    let other = end(&shop, &laptop, &bob_id);
    assert_eq!(other.status, 303);
    assert!(still_in(&shop, &bob));

    // The phone, from the laptop: the phone is signed out at its next request.
    assert_eq!(end(&shop, &laptop, &phone_id).status, 303);
    assert!(!still_in(&shop, &phone));
    assert!(still_in(&shop, &laptop));
    assert_eq!(
        listed(&shop, &laptop)["sessions"].as_array().unwrap().len(),
        1
    );

    // Everywhere else, then everywhere.
    let tablet = signed_in(&shop, "ann");
    assert_eq!(end(&shop, &laptop, "others").status, 303);
    assert!(!still_in(&shop, &tablet));
    assert!(still_in(&shop, &laptop));
    let out = end(&shop, &laptop, "all");
    assert_eq!(out.status, 200);
    assert!(out.body.contains("You are signed out"));
    assert!(!still_in(&shop, &laptop));
    assert!(still_in(&shop, &bob), "bob was never touched");

    // Without a session: to the sign-in (HTML), 401 (JSON).
    let anonymous = Browser::new();
    let page = anonymous.get(&shop.sidecar.url("/oauth2/sessions"));
    assert_eq!(page.status, 302);
    assert!(page.location.unwrap().contains("rd=%2Foauth2%2Fsessions"));
    let json = client()
        .get(shop.sidecar.url("/oauth2/sessions"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(json.status(), 401);
}

#[test]
fn support_lists_and_ends_a_users_sessions_and_bearer_tokens() {
    let shop = shop();
    let laptop = signed_in(&shop, "carl");
    let phone = signed_in(&shop, "carl");
    let dora = signed_in(&shop, "dora");
    // carl's access token, as an API client would hold it.
    let token = shop
        .upstream
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.header("x-sso-subject") == Some("carl"))
        .and_then(|s| s.header("authorization").map(str::to_owned))
        .unwrap();
    let api = |authorization: &str| {
        client()
            .get(shop.sidecar.url("/api/orders"))
            .header("Authorization", authorization)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(api(&token), 200);

    let admin = |method: &str, path: &str, token: Option<&str>, body: Option<serde_json::Value>| {
        let mut request = match method {
            "GET" => client().get(shop.sidecar.admin_url(path)),
            _ => client().post(shop.sidecar.admin_url(path)),
        };
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<serde_json::Value>().unwrap_or_default(),
        )
    };

    // Only with the token.
    assert_eq!(
        admin("GET", "/admin/sessions?subject=carl", None, None).0,
        401
    );
    assert_eq!(
        admin(
            "GET",
            "/admin/sessions?subject=carl",
            Some("support-desk-token-0123456788"),
            None
        )
        .0,
        401
    );
    assert_eq!(
        admin("GET", "/admin/sessions", Some(ADMIN_TOKEN), None).0,
        400
    );

    let (status, found) = admin(
        "GET",
        "/admin/sessions?subject=carl&identity_provider=kc",
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(found["sessions"].as_array().unwrap().len(), 2, "{found}");
    let (_, none) = admin(
        "GET",
        "/admin/sessions?subject=carl&organization=Other",
        Some(ADMIN_TOKEN),
        None,
    );
    assert!(none["sessions"].as_array().unwrap().is_empty());

    // A malformed order is refused and ends nothing.
    let (status, _) = admin(
        "POST",
        "/admin/sessions/revoke",
        Some(ADMIN_TOKEN),
        Some(json!({"subjct": "carl"})),
    );
    assert_eq!(status, 400);
    assert!(still_in(&shop, &laptop));

    let (status, ended) = admin(
        "POST",
        "/admin/sessions/revoke",
        Some(ADMIN_TOKEN),
        Some(json!({"subject": "carl"})),
    );
    assert_eq!(status, 200);
    assert_eq!(ended, json!({"ended": 2}));
    assert!(!still_in(&shop, &laptop) && !still_in(&shop, &phone));
    assert_eq!(
        api(&token),
        401,
        "carl's bearer token is refused from now on"
    );
    assert!(still_in(&shop, &dora));
    let (_, after) = admin(
        "GET",
        "/admin/sessions?subject=carl",
        Some(ADMIN_TOKEN),
        None,
    );
    assert!(after["sessions"].as_array().unwrap().is_empty());

    // carl signs in again afterwards: a new session works. Tokens carry whole seconds, so
    // what is issued in the second of the revocation counts as before it.
    let revoked_at = chrono::Utc::now().timestamp();
    while chrono::Utc::now().timestamp() == revoked_at {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let fresh = signed_in(&shop, "carl");
    assert!(still_in(&shop, &fresh));
}
