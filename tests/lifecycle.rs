//! Token lifecycle and logout against the real OpenID provider with short token lifetimes:
//! refresh ahead of expiry, single-flight under parallel load with rotating refresh tokens,
//! IdP outages, key rotation, the three logout policies and back-channel logout.

mod common;

use std::time::Duration;

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
http_timeout = "1s"

[session]
keys = ["{session_key}"]
secure = false

[headers]
forward_access_token = true

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"
logout_params = { federated = "" }

[organizations.Operations]
external_name = "Intershop"
identity_providers = ["kc"]
logout_policy = "LOCAL"

[organizations.inSPIRED]
external_name = "inSPIRED"
identity_providers = ["kc"]
logout_policy = "EXTERNAL"

[organizations.Myers]
external_name = "Myers"
identity_providers = ["kc"]
logout_policy = "FEDERATED"

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

struct Setup {
    upstream: Upstream,
    idp: Idp,
    sidecar: Sidecar,
}

fn setup(access_ttl: u64, min_left: &str, idp_extra: serde_json::Value) -> Setup {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let mut settings = json!({"ttl": {"AccessToken": access_ttl}});
    if let (Some(base), Some(extra)) = (settings.as_object_mut(), idp_extra.as_object()) {
        base.extend(extra.clone());
    }
    let idp = Idp::for_sidecar(ports, settings);
    let config = CONFIG
        .replace("{kc_issuer}", &idp.issuer)
        .replace("{min_left}", min_left);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();
    Setup {
        upstream,
        idp,
        sidecar,
    }
}

impl Setup {
    fn sign_in(&self, browser: &Browser, org: &str, user: &str) {
        let to_idp = browser.get(&format!(
            "{}?org={org}&rd=%2Faccount%2F",
            self.sidecar.url("/oauth2/start")
        ));
        assert_eq!(to_idp.status, 302, "{to_idp:?}");
        let callback = browser.sign_in_at_idp(to_idp, user, &self.sidecar.url("/"));
        let back = browser.get(&callback);
        assert_eq!(back.status, 302, "{back:?}\n{}", self.sidecar.log());
        assert_eq!(browser.get(&self.sidecar.url("/account/")).status, 200);
    }

    fn refresh_grants(&self) -> u64 {
        self.idp.stats()["grants"]["refresh_token"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Whether the IdP still has a session for this browser: a new login then comes back
    /// without showing a login form.
    fn idp_session_alive(&self, browser: &Browser) -> bool {
        let mut page = browser.get(&format!(
            "{}?org=inSPIRED",
            self.sidecar.url("/oauth2/start")
        ));
        for _ in 0..10 {
            match page
                .location
                .clone()
                .filter(|_| (300..400).contains(&page.status))
            {
                Some(location) => {
                    let next = absolute(&page.url, &location);
                    if next.starts_with(&self.sidecar.url("/oauth2/callback")) {
                        return true;
                    }
                    page = browser.get(&next);
                }
                None => return false,
            }
        }
        panic!("redirect loop at the IdP");
    }
}

#[test]
fn refresh_ahead_of_expiry_keeps_the_session_working() {
    let s = setup(3, "2s", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "alice");
    let mut tokens = std::collections::BTreeSet::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(700));
        let page = browser.get(&s.sidecar.url("/account/orders"));
        assert_eq!(page.status, 200, "{page:?}");
        tokens.insert(
            s.upstream
                .last()
                .header("authorization")
                .unwrap()
                .to_owned(),
        );
    }
    assert!(
        tokens.len() >= 3,
        "the upstream should see new access tokens: {tokens:?}"
    );
    let refreshes = s.refresh_grants();
    assert!(refreshes >= 2, "refreshes at the provider: {refreshes}");
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_token_refreshes_total{idp=\"kc\",outcome=\"ok\"}"),
        refreshes as f64
    );
}

#[test]
fn parallel_requests_refresh_once_even_with_rotating_refresh_tokens() {
    let s = setup(5, "3s", json!({"rotateRefreshToken": true}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "bob");
    let cookie = browser.cookie(&s.sidecar.url("/"), "_sso_session").unwrap();
    std::thread::sleep(Duration::from_millis(2500)); // now inside min_access_token_lifetime_left
    assert_eq!(s.refresh_grants(), 0);

    let url = s.sidecar.url("/account/data");
    let results: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let url = url.clone();
                let cookie = cookie.clone();
                scope.spawn(move || {
                    let response = client()
                        .get(&url)
                        .header("Cookie", format!("_sso_session={cookie}"))
                        .header("Accept", "text/html")
                        .send()
                        .unwrap();
                    let set = response
                        .headers()
                        .get_all("set-cookie")
                        .iter()
                        .map(|v| v.to_str().unwrap().to_owned())
                        .find(|c| c.starts_with("_sso_session="));
                    (response.status().as_u16(), set)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        results.iter().all(|(status, _)| *status == 200),
        "{results:?}"
    );
    assert_eq!(s.refresh_grants(), 1, "exactly one refresh at the provider");
    assert!(
        s.sidecar
            .metric("sso_sidecar_token_refresh_coalesced_total{idp=\"kc\"}")
            >= 49.0
    );

    // A late request still carrying the old cookie reuses the result instead of replaying
    // the rotated (now revoked) refresh token.
    let late = client()
        .get(&url)
        .header("Cookie", format!("_sso_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(late.status(), 200);
    assert_eq!(s.refresh_grants(), 1);
    assert!(
        s.idp.stats()["grant_errors"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{}",
        s.idp.stats()
    );

    // The new cookie carries the new tokens and keeps working.
    let new_cookie = results
        .iter()
        .find_map(|(_, c)| c.clone())
        .expect("a refreshed cookie was set");
    let value = new_cookie.split(';').next().unwrap().to_owned();
    let fresh = client().get(&url).header("Cookie", value).send().unwrap();
    assert_eq!(fresh.status(), 200);
}

#[test]
fn idp_outage_keeps_sessions_until_their_tokens_expire() {
    let mut s = setup(4, "3s", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "carol");
    s.idp.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let page = browser.get(&s.sidecar.url("/account/"));
    assert_eq!(page.status, 200, "token still valid: keep serving");
    std::thread::sleep(Duration::from_millis(3500));
    let page = browser.get(&s.sidecar.url("/account/"));
    assert_eq!(page.status, 503, "{page:?}");
    assert!(
        page.body.contains("identity provider is not reachable"),
        "{}",
        page.body
    );
    assert!(
        s.sidecar
            .metric("sso_sidecar_token_refreshes_total{idp=\"kc\",outcome=\"idp_error\"}")
            >= 1.0
    );
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_sessions_ended_total{reason=\"idp_unreachable\"}"),
        1.0
    );

    // The provider comes back (with new signing keys): once the sidecar has seen it answer
    // (its probe, every 2 s while down), signing in works again.
    s.idp.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.sidecar.metric("sso_sidecar_idp_up{idp=\"kc\"}") != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the IdP never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "carol");
    assert_eq!(s.upstream.last().header("x-sso-subject"), Some("carol"));
}

#[test]
fn refresh_token_refused_ends_the_session() {
    let mut s = setup(3, "2s", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "dora");
    // A restarted in-memory provider no longer knows the refresh token.
    s.idp.restart();
    s.sidecar.wait_idps_ready();
    std::thread::sleep(Duration::from_millis(1200));
    let xhr = browser
        .client
        .get(s.sidecar.url("/account/x"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(xhr.status(), 401);
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_token_refreshes_total{idp=\"kc\",outcome=\"invalid_grant\"}"),
        1.0
    );
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_sessions_ended_total{reason=\"invalid_grant\"}"),
        1.0
    );
    let page = browser.get(&s.sidecar.url("/account/"));
    assert_eq!(page.status, 302, "cookie cleared: back to the login page");
}

#[test]
fn signing_key_rotation_needs_no_restart() {
    let s = setup(3600, "3m", json!({}));
    s.sign_in(&Browser::new(), "inSPIRED", "erin");
    s.idp.rotate_keys();
    s.sign_in(&Browser::new(), "inSPIRED", "erin");
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_jwks_refetches_total{idp=\"kc\"}"),
        1.0
    );
}

#[test]
fn local_logout_keeps_the_idp_session() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "Intershop", "frank");
    let response = browser
        .client
        .post(s.sidecar.url("/oauth2/logout"))
        .header("Origin", s.sidecar.url(""))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("_sso_session=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let text = response.text().unwrap();
    assert!(text.contains("You are signed out"));
    // LOCAL: the page says the IdP's session lives on, and leads back to the shop.
    assert!(
        text.contains("You are still signed in at <strong>"),
        "{text}"
    );
    assert!(text.contains("Back to the shop"), "{text}");
    assert_eq!(browser.get(&s.sidecar.url("/account/")).status, 302);
    assert!(
        s.idp_session_alive(&browser),
        "LOCAL leaves the IdP session alone"
    );
    assert_eq!(s.idp.stats()["logouts"], 0);
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_logouts_total{policy=\"LOCAL\"}"),
        1.0
    );
    // The session's own tokens are revoked at the IdP all the same (RFC 7009), in the
    // background: refresh token and access token.
    for token in ["access_token", "refresh_token"] {
        let revoked = format!(
            "sso_sidecar_token_revocations_total{{idp=\"kc\",outcome=\"ok\",token=\"{token}\"}}"
        );
        assert_eq!(s.sidecar.metric_reaching(&revoked, 1.0), 1.0, "{token}");
    }
    assert_eq!(s.idp.stats()["revocations"], 2);
}

#[test]
fn external_logout_ends_the_idp_session() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "gina");
    let stolen = browser.cookie(&s.sidecar.url("/"), "_sso_session").unwrap();
    let response = browser.post_form(&s.sidecar.url("/oauth2/logout"), &[]);
    assert_eq!(response.status, 302, "{response:?}");
    let location = response.location.clone().unwrap();
    assert!(
        location.starts_with(&format!("{}/session/end?", s.idp.issuer)),
        "{location}"
    );
    for param in [
        "id_token_hint=",
        "post_logout_redirect_uri=",
        "state=",
        "client_id=shop",
    ] {
        assert!(location.contains(param), "{param} missing: {location}");
    }
    assert!(
        !location.contains("federated"),
        "EXTERNAL passes no federated parameters"
    );
    let back = browser.sign_in_at_idp(response, "gina", &s.sidecar.url("/"));
    assert!(
        back.starts_with(&format!("{}?state=", s.sidecar.url("/"))),
        "{back}"
    );
    assert_eq!(s.idp.stats()["logouts"], 1);
    assert!(!s.idp_session_alive(&browser), "the IdP session is gone");
    // A copy of the old cookie is dead too, and sending it again and again does not make
    // the sidecar revoke its tokens at the IdP again.
    let revoked =
        "sso_sidecar_token_revocations_total{idp=\"kc\",outcome=\"ok\",token=\"refresh_token\"}";
    assert_eq!(s.sidecar.metric_reaching(revoked, 1.0), 1.0);
    for _ in 0..3 {
        let replay = client()
            .get(s.sidecar.url("/account/"))
            .header("Cookie", format!("_sso_session={stolen}"))
            .send()
            .unwrap();
        assert_eq!(replay.status(), 401);
    }
    assert_eq!(s.idp.stats()["revocations"], 2);
}

#[test]
fn federated_logout_revokes_and_passes_federated_parameters() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "Myers", "hank");
    let response = browser.post_form(&s.sidecar.url("/oauth2/logout"), &[]);
    assert_eq!(response.status, 302);
    let location = response.location.clone().unwrap();
    assert!(location.contains("federated="), "{location}");
    assert_eq!(s.idp.stats()["revocations"], 1, "refresh token revoked");
    browser.sign_in_at_idp(response, "hank", &s.sidecar.url("/"));
    assert!(!s.idp_session_alive(&browser));
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_logouts_total{policy=\"FEDERATED\"}"),
        1.0
    );
}

#[test]
fn logout_by_get_from_another_site_only_asks() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "ivy");
    let page = browser
        .client
        .get(s.sidecar.url("/oauth2/logout"))
        .header("Referer", "https://evil.example/")
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().unwrap();
    assert!(text.contains("Sign out?"));
    // It says who is signed in, for which organization, and offers to stay.
    assert!(
        text.contains(
            "You are signed in as <strong>Ivy Tester</strong> (ivy@example.com) for <strong>"
        ),
        "{text}"
    );
    assert!(text.contains("Stay signed in"), "{text}");
    assert_eq!(
        browser.get(&s.sidecar.url("/account/")).status,
        200,
        "still signed in"
    );
    let cross_site_post = browser
        .client
        .post(s.sidecar.url("/oauth2/logout"))
        .header("Origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(cross_site_post.status(), 200);
    assert_eq!(
        browser.get(&s.sidecar.url("/account/")).status,
        200,
        "still signed in"
    );
}

#[test]
fn backchannel_logout_from_the_provider_ends_the_session() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "jack");
    // The user signs out at the IdP itself (another application's logout button).
    let confirm = browser.get(&format!("{}/session/end", s.idp.issuer));
    let (action, mut fields) = parse_form(&confirm.body).expect("the IdP asks to confirm");
    fields.push(("logout".into(), "yes".into()));
    let done = browser.follow(browser.post_form(&absolute(&confirm.url, &action), &fields));
    assert_eq!(done.status, 200, "{done:?}");
    for _ in 0..50 {
        if s.sidecar
            .metric("sso_sidecar_backchannel_logouts_total{outcome=\"accepted\",reason=\"ok\"}")
            >= 1.0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.idp.stats()["backchannel"], 1, "{}", s.idp.stats());
    let page = browser.get(&s.sidecar.url("/account/"));
    assert_eq!(page.status, 302, "the session ended on the next request");
}

#[test]
fn logout_tokens_are_verified() {
    let s = setup(3600, "3m", json!({}));
    let endpoint = s.sidecar.url("/oauth2/backchannel-logout");
    let post = |token: &str| {
        client()
            .post(&endpoint)
            .form(&[("logout_token", token)])
            .send()
            .unwrap()
    };

    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "kate");
    let good = s.idp.logout_token(json!({"sub": "kate"}));
    for (name, spec) in [
        ("foreign key", json!({"sub": "kate", "wrongKey": true})),
        (
            "wrong audience",
            json!({"sub": "kate", "aud": "another-client"}),
        ),
        ("nonce", json!({"sub": "kate", "nonce": "n"})),
        ("no event", json!({"sub": "kate", "noEvent": true})),
        ("neither sid nor sub", json!({})),
        (
            "too old",
            json!({"sub": "kate", "iat": chrono_now() - 3600}),
        ),
    ] {
        let token = s.idp.logout_token(spec);
        let response = post(&token);
        assert_eq!(response.status(), 400, "{name}");
        assert_eq!(
            browser.get(&s.sidecar.url("/account/")).status,
            200,
            "{name}: session untouched"
        );
    }
    assert_eq!(post("not-a-jwt").status(), 400);
    assert_eq!(client().post(&endpoint).send().unwrap().status(), 400);

    assert_eq!(post(&good).status(), 200);
    assert_eq!(post(&good).status(), 400, "a replayed token is refused");
    assert_eq!(
        browser.get(&s.sidecar.url("/account/")).status,
        302,
        "kate's session ended"
    );
    assert_eq!(
        s.sidecar.metric(
            "sso_sidecar_backchannel_logouts_total{outcome=\"rejected\",reason=\"replay\"}"
        ),
        1.0
    );
    assert_eq!(
        s.sidecar.metric(
            "sso_sidecar_backchannel_logouts_total{outcome=\"rejected\",reason=\"bad_signature\"}"
        ),
        1.0
    );

    // A new login after the logout is a new session and stays valid (session times have
    // a resolution of one second; one begun in the second of the logout counts as ended).
    std::thread::sleep(Duration::from_millis(1100));
    s.sign_in(&browser, "inSPIRED", "kate");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn absolute_and_idle_session_limits() {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let idp = Idp::for_sidecar(ports, json!({}));
    let config = CONFIG
        .replace("{kc_issuer}", &idp.issuer)
        .replace("{min_left}", "3m")
        .replace(
            "secure = false",
            "secure = false\nmax_age = \"6s\"\nidle_timeout = \"3s\"",
        );
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();
    let s = Setup {
        upstream,
        idp,
        sidecar,
    };

    // Active use keeps an idle timeout away, but not the absolute limit. (Session times
    // have a resolution of one second, so the margins here are a second wide.)
    let browser = Browser::new();
    let signed_in = std::time::Instant::now();
    s.sign_in(&browser, "inSPIRED", "lena");
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(browser.get(&s.sidecar.url("/account/")).status, 200);
    }
    std::thread::sleep(Duration::from_millis(7200).saturating_sub(signed_in.elapsed()));
    assert_eq!(
        browser.get(&s.sidecar.url("/account/")).status,
        302,
        "max_age reached"
    );

    // Idle longer than idle_timeout: signed out.
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "lena");
    std::thread::sleep(Duration::from_millis(4200));
    assert_eq!(
        browser.get(&s.sidecar.url("/account/")).status,
        302,
        "idle timeout reached"
    );
    assert!(
        s.sidecar
            .metric("sso_sidecar_sessions_rejected_total{reason=\"idle\"}")
            >= 1.0
    );
}

/// Issue 14: a config reload dropped the 30 s refresh-result cache, so a request still
/// carrying the pre-refresh cookie refreshed again with a spent refresh token; an IdP that
/// rotates refresh tokens then ends the session. Old code: 302 to the login page.
#[test]
fn a_reload_keeps_recent_refresh_results() {
    let s = setup(60, "3m", json!({"rotateRefreshToken": true}));
    let browser = Browser::new();
    let to_idp = browser.get(&format!(
        "{}?org=Intershop&rd=%2Faccount%2F",
        s.sidecar.url("/oauth2/start")
    ));
    let callback = browser.sign_in_at_idp(to_idp, "rita", &s.sidecar.url("/"));
    assert_eq!(browser.get(&callback).status, 302);
    let old_cookie = browser.cookie(&s.sidecar.url("/"), "_sso_session").unwrap();
    let with_old_cookie = || {
        client()
            .get(s.sidecar.url("/account/"))
            .header("Cookie", format!("_sso_session={old_cookie}"))
            .header("Accept", "text/html")
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(with_old_cookie(), 200);
    assert_eq!(s.refresh_grants(), 1);

    s.sidecar.signal("HUP");
    s.sidecar
        .metric_reaching("sso_sidecar_config_reloads_total{outcome=\"ok\"}", 1.0);
    assert_eq!(with_old_cookie(), 200, "{}", s.sidecar.log());
    assert_eq!(
        s.refresh_grants(),
        1,
        "the result was reused, not refreshed again"
    );
}

/// Issue 16: after a reload to `oidc.remote = "unsupported"`, sessions of OIDC IdPs end at
/// their next request (ICM offers only local sign-in then). Old code: they went on until
/// their tokens ran out.
#[test]
fn a_reload_to_remote_unsupported_ends_oidc_sessions() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "Intershop", "vera");
    let text = std::fs::read_to_string(s.sidecar.config_path()).unwrap();
    std::fs::write(
        s.sidecar.config_path(),
        text.replace("remote = \"supported\"", "remote = \"unsupported\"")
            .replace("[[routes]]\npath_prefix = \"/account/\"", "[[routes]]\npath_prefix = \"/login\"\nauth = \"public\"\n\n[[routes]]\npath_prefix = \"/account/\""),
    )
    .unwrap();
    s.sidecar.signal("HUP");
    assert_eq!(
        s.sidecar
            .metric_reaching("sso_sidecar_config_reloads_total{outcome=\"ok\"}", 1.0),
        1.0,
        "{}",
        s.sidecar.log()
    );
    let page = browser.get(&s.sidecar.url("/account/"));
    assert_eq!(page.status, 302, "{page:?}");
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_sessions_ended_total{reason=\"remote_unsupported\"}"),
        1.0
    );
}

/// Issue 35: a shop customer opening the back office (another organization, the same IdP)
/// is asked before their session is replaced; staying keeps it, switching signs in anew.
#[test]
fn signing_in_for_another_organization_asks_first() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "ivy");
    let start = |extra: &str| {
        format!(
            "{}?org=Operations&rd=%2Faccount%2F{extra}",
            s.sidecar.url("/oauth2/start")
        )
    };
    let asked = browser.get(&start(""));
    assert_eq!(asked.status, 200, "{asked:?}");
    assert!(
        asked
            .body
            .contains("You are signed in as <strong>Ivy Tester</strong> for <strong>inSPIRED"),
        "{}",
        asked.body
    );
    assert!(asked.body.contains("id=\"stay\""));
    // Staying: nothing changed.
    assert_eq!(browser.get(&s.sidecar.url("/account/")).status, 200);
    assert_eq!(
        s.upstream.last().header("x-sso-organization"),
        Some("inSPIRED")
    );
    // Switching: the sign-in for Operations goes on, and replaces the session.
    let to_idp = browser.get(&start("&switch=yes"));
    assert_eq!(to_idp.status, 302, "{to_idp:?}");
    let callback = browser.sign_in_at_idp(to_idp, "ivy", &s.sidecar.url("/"));
    assert_eq!(browser.get(&callback).status, 302);
    assert_eq!(browser.get(&s.sidecar.url("/account/")).status, 200);
    assert_eq!(
        s.upstream.last().header("x-sso-organization"),
        Some("Operations")
    );
}

/// Issue 31: OpenID Connect Front-Channel Logout 1.0. The real provider does not send it
/// (oidc-provider dropped the draft), so the test does what the specification has the
/// IdP's logout page do: frame `/oauth2/frontchannel-logout?iss=…&sid=…`.
#[test]
fn frontchannel_logout_ends_the_idp_session_here() {
    let s = setup(3600, "3m", json!({}));
    let browser = Browser::new();
    s.sign_in(&browser, "inSPIRED", "iris");
    let sid = s.idp.sid_of(&browser);
    let url = |iss: &str, sid: &str| {
        s.sidecar.url(&format!(
            "/oauth2/frontchannel-logout?iss={}&sid={}",
            url::form_urlencoded::byte_serialize(iss.as_bytes()).collect::<String>(),
            sid
        ))
    };
    // Another issuer, or no sid: nothing ends.
    assert_eq!(
        client()
            .get(url("https://evil.example", &sid))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        client()
            .get(url(&s.idp.issuer, ""))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(browser.get(&s.sidecar.url("/account/")).status, 200);

    let framed = client().get(url(&s.idp.issuer, &sid)).send().unwrap();
    assert_eq!(framed.status(), 200);
    let csp = framed.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    let idp_origin = s.idp.issuer.trim_end_matches('/');
    assert!(
        csp.contains(&format!("frame-ancestors {idp_origin}")),
        "{csp}"
    );
    assert!(framed.headers().get("x-frame-options").is_none());
    assert_eq!(framed.headers()["cache-control"], "no-store");
    // The session of that IdP session is over.
    assert_eq!(browser.get(&s.sidecar.url("/account/")).status, 302);
    assert_eq!(
        s.sidecar
            .metric("sso_sidecar_frontchannel_logouts_total{outcome=\"accepted\"}"),
        1.0
    );
}

/// Issue 33: without Redis, a logout used to live in memory only, and after a restart a
/// copy of the signed-out cookie worked again until it expired. With `store.path` the
/// revocation is kept in a file (redb) before the logout is answered.
#[test]
fn a_restart_forgets_no_revocation_with_store_path() {
    let state = tempfile::tempdir().unwrap();
    let kept = format!(
        "[store]\npath = \"{}\"\n",
        state.path().join("state.redb").display()
    );
    // Without it (the control): the restart forgets the logout.
    for (store, replay_after_restart) in [("", 200), (kept.as_str(), 302)] {
        let ports = Ports::new();
        let upstream = Upstream::start();
        let idp = Idp::for_sidecar(ports, json!({}));
        let config = format!(
            "{}\n{store}",
            CONFIG
                .replace("{kc_issuer}", &idp.issuer)
                .replace("{min_left}", "3m")
        );
        let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
        sidecar.wait_idps_ready();
        let browser = Browser::new();
        let to_idp = browser.get(&sidecar.url("/oauth2/start?org=Intershop&rd=%2Faccount%2F"));
        let callback = browser.sign_in_at_idp(to_idp, "kim", &sidecar.url("/"));
        browser.get(&callback);
        let copy = browser.cookie(&sidecar.url("/"), "_sso_session").unwrap();
        let replay = || {
            client()
                .get(sidecar_url(ports, "/account/"))
                .header("Cookie", format!("_sso_session={copy}"))
                .header("Accept", "text/html")
                .send()
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(replay(), 200);
        let logout = browser.post_form(&sidecar.url("/oauth2/logout"), &[]);
        assert_eq!(logout.status, 200, "{logout:?}");
        assert_eq!(replay(), 302, "signed out");

        drop(sidecar);
        let restarted = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
        restarted.wait_idps_ready();
        assert_eq!(replay(), replay_after_restart, "store: {store:?}");
        if !store.is_empty() {
            assert!(restarted
                .log()
                .contains("revocations kept across the restart applied"));
        }
    }
}

fn sidecar_url(ports: Ports, path: &str) -> String {
    format!("{}{path}", ports.origin())
}
