//! Sessions people and support can see and end (issue 33): `/oauth2/sessions` for the
//! signed-in person (HTML and JSON; end one, all others, all; only from this site), and
//! the admin API with `admin.token`, which also refuses the subject's bearer tokens.

mod common;

use common::*;
use std::time::Duration;

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
    shop_with(CONFIG)
}

fn shop_with(config: &str) -> Shop {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({"jwtAccessTokens": "api://shop"}));
    let upstream = Upstream::start();
    let sidecar = Sidecar::start_on(
        ports,
        &config.replace("{issuer}", &idp.issuer),
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
    let laptop = signed_in(&shop.sidecar, "ann");
    let phone = signed_in(&shop.sidecar, "ann");
    let bob = signed_in(&shop.sidecar, "bob");

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
    let tablet = signed_in(&shop.sidecar, "ann");
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
    let laptop = signed_in(&shop.sidecar, "carl");
    let phone = signed_in(&shop.sidecar, "carl");
    let dora = signed_in(&shop.sidecar, "dora");
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
    let fresh = signed_in(&shop.sidecar, "carl");
    assert!(still_in(&shop, &fresh));
}

/// Issue 33: the audit log has one line per sign-in, failed sign-in, denial, sign-out and
/// revocation, saying who, why and by whom, in the documented schema.
#[test]
fn the_audit_log_says_who_came_in_who_was_refused_and_who_ended_what() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("audit.jsonl");
    let config = CONFIG.replace(
        "[[routes]]\npath_prefix = \"/api\"",
        "[[routes]]\npath_prefix = \"/staff\"\nauth = \"required\"\nallow = [{ claim = \"email\", ends_with = [\"@staff.example\"] }]\n\n[[routes]]\npath_prefix = \"/api\"",
    ) + &format!("\n[log]\naudit = \"{}\"\n", file.display());
    let shop = shop_with(&config);
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let find = |event: &str, field: &str, value: &str| -> serde_json::Value {
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = lines()
                .into_iter()
                .find(|l| l["event"] == event && l[field] == value);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {event} with {field} = {value}: {:?}", lines()))
    };

    let ann = signed_in(&shop.sidecar, "ann");
    let sign_in = find("sign_in", "subject", "ann");
    assert_eq!(sign_in["v"], 1);
    assert_eq!(sign_in["organization"], "Shop");
    assert_eq!(sign_in["identity_provider"], "kc");
    assert_eq!(sign_in["client"], "127.0.0.1");
    assert_eq!(sign_in["path"], "/oauth2/callback", "no query: {sign_in}");
    let ann_session = sign_in["session"].as_str().unwrap().to_owned();

    // A callback no sign-in of this browser started.
    let stray = Browser::new().get(&shop.sidecar.url("/oauth2/callback?state=forged&code=x"));
    assert_eq!(stray.status, 400, "{stray:?}");
    let failed = find("sign_in_failed", "reason", "missing_state");
    assert!(failed["request_id"].is_string(), "{failed}");

    // Denied by a route's rules, and a forged bearer token.
    assert_eq!(ann.get(&shop.sidecar.url("/staff/orders?x=1")).status, 403);
    let forbidden = find("denied", "reason", "forbidden");
    assert_eq!(forbidden["path"], "/staff/orders");
    assert_eq!(forbidden["method"], "GET");
    assert!(
        forbidden["user"].as_str().unwrap().contains("ann"),
        "{forbidden}"
    );
    let forged = client()
        .get(shop.sidecar.url("/api/orders"))
        .header("Authorization", "Bearer not-a-token")
        .send()
        .unwrap();
    assert_eq!(forged.status(), 401);
    find("denied", "reason", "token_invalid");

    // Signed out by the person, with the organization's logout policy.
    let bob = signed_in(&shop.sidecar, "bob");
    let out = bob.post_form(&shop.sidecar.url("/oauth2/logout"), &[]);
    assert!(out.status < 400, "{out:?}");
    let sign_out = find("sign_out", "subject", "bob");
    assert_eq!(
        (&sign_out["by"], &sign_out["reason"]),
        (&json!("user"), &json!("logout"))
    );
    assert_eq!(sign_out["policy"], "EXTERNAL");

    // Ended on the sessions page: by whom, and which session.
    use reqwest::cookie::CookieStore as _;
    let kept = ann
        .jar
        .cookies(&shop.sidecar.url("/").parse().unwrap())
        .unwrap();
    assert_eq!(end(&shop, &ann, "all").status, 200);
    let ended = find("revocation", "session", &ann_session);
    assert_eq!(ended["by"], "sessions_page");
    assert_eq!(ended["subject"], "ann");
    // A copy of the cookie kept elsewhere: the gate finds it revoked and signs it out.
    let copy = client()
        .get(shop.sidecar.url("/account"))
        .header("Cookie", kept)
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(copy.status(), 302);
    let over = find("sign_out", "reason", "revoked");
    assert_eq!(
        (&over["by"], &over["session"]),
        (&json!("sidecar"), &json!(ann_session))
    );

    // Ended by support through the admin API: each session, the subject, and a summary.
    let _carl = signed_in(&shop.sidecar, "carl");
    let revoked = client()
        .post(shop.sidecar.admin_url("/admin/sessions/revoke"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .json(&json!({"subject": "carl"}))
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let summary = find("revocation", "reason", "all_sessions");
    assert_eq!(
        (&summary["by"], &summary["subject"]),
        (&json!("admin"), &json!("carl"))
    );
    assert_eq!(summary["ended"], 1);
    let subject = find("revocation", "reason", "subject");
    assert_eq!(
        (&subject["subject"], &subject["identity_provider"]),
        (&json!("carl"), &json!("kc"))
    );
}
