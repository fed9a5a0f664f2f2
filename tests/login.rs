//! Browser sign-in end to end over HTTP: the real sidecar, two real OpenID providers
//! (npm `oidc-provider`, one shaped like Keycloak, one like Azure AD v2 with `oid`), and a
//! real upstream that records the identity headers it receives.

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
max_clock_skew = "5s"

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{kc_issuer}"
client_id = "shop"
client_secret = "shop-secret"
# These tests read the authorization request in the browser\'s URL, as PAR would hide it.
pushed_authorization = "never"
client_secret_expire_at = "2030-01-01T00:00:00Z"

[identity_providers.ad]
type = "oidc"
name = "Azure AD"
issuer = "{ad_issuer}"
client_id = "shop"
client_secret = "shop-secret"
# These tests read the authorization request in the browser\'s URL, as PAR would hide it.
pushed_authorization = "never"

[identity_providers.localShop]
type = "local"
name = "Shop account"

[organizations.Operations]
external_name = "Intershop"
identity_providers = ["kc", "ad", "localShop"]
logout_policy = "LOCAL"

[organizations.inSPIRED]
external_name = "inSPIRED"
identity_providers = ["kc"]

[organizations.Anonymous]
external_name = "inTRONICS"
identity_providers = ["ad"]
self_administration_policy = ["UPDATE"]

[organizations.LocalOnly]
external_name = "Local Only"
identity_providers = ["localShop"]
local_login_url = "/shop/login"

[[routes]]
path_prefix = "/backoffice/"
auth = "required"
organization = "Operations"

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/api/"
auth = "api"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

struct Shop {
    upstream: Upstream,
    kc: Idp,
    /// The Azure-like IdP; held so it keeps running for the test.
    _ad: Idp,
    sidecar: Sidecar,
}

fn shop_with(config: &str, kc_extra: serde_json::Value) -> Shop {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let kc = Idp::for_sidecar(ports, kc_extra);
    let ad = Idp::for_sidecar(
        ports,
        json!({"azure": true, "issuerPath": "/tenant-1/v2.0"}),
    );
    let config = config
        .replace("{kc_issuer}", &kc.issuer)
        .replace("{ad_issuer}", &ad.issuer);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();
    Shop {
        upstream,
        kc,
        _ad: ad,
        sidecar,
    }
}

fn shop() -> Shop {
    shop_with(CONFIG, json!({"issuerPath": "/realms/ICM"}))
}

impl Shop {
    /// Signs in through `/oauth2/start` with organization and IdP given, as the buttons of
    /// the login page do; returns the page the browser lands on.
    fn sign_in(
        &self,
        browser: &Browser,
        rd: &str,
        org: &str,
        idp: Option<&str>,
        user: &str,
    ) -> Page {
        let mut start = format!(
            "{}?rd={}&org={}",
            self.sidecar.url("/oauth2/start"),
            enc(rd),
            enc(org)
        );
        if let Some(idp) = idp {
            start.push_str(&format!("&idp={idp}"));
        }
        let to_idp = browser.get(&start);
        assert_eq!(to_idp.status, 302, "{to_idp:?}");
        let callback = browser.sign_in_at_idp(to_idp, user, &self.sidecar.url("/"));
        assert!(
            callback.starts_with(&self.sidecar.url("/oauth2/callback")),
            "{callback}"
        );
        browser.follow(browser.get(&callback))
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn full_login_forwards_identity_headers() {
    let shop = shop();
    let browser = Browser::new();

    // A protected page sends the browser to the login page, remembering where it was going.
    let first = browser.get(&shop.sidecar.url("/account/orders?page=2"));
    assert_eq!(first.status, 302);
    let location = first.location.clone().unwrap();
    assert_eq!(location, "/oauth2/start?rd=%2Faccount%2Forders%3Fpage%3D2");
    assert!(
        first.set_cookies.is_empty(),
        "no cookie before the login starts"
    );

    // The login page asks for the organization.
    let form = browser.get(&absolute(&first.url, &location));
    assert_eq!(form.status, 200);
    assert!(
        form.body
            .contains("<label for=\"org\">Organization</label>"),
        "{}",
        form.body
    );
    assert_eq!(shop.upstream.seen().len(), 0);

    // Typing the organization in any case works; it has one IdP, so no choice is shown.
    let (action, mut fields) = parse_form(&form.body).unwrap();
    fields.push(("org".into(), "INSPIRED".into()));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let to_idp = browser.get(&format!("{}?{query}", absolute(&form.url, &action)));
    assert_eq!(to_idp.status, 302);
    let authorize = to_idp.location.clone().unwrap();
    assert!(
        authorize.starts_with(&format!("{}/auth?", shop.kc.issuer)),
        "{authorize}"
    );
    for param in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(authorize.contains(param), "{param} missing in {authorize}");
    }
    // Issue 27: a standard OP must not be asked for `offline_access` without a consent
    // prompt (OpenID Connect Core §11); `auto` asks only the IdPs that need it.
    assert!(!authorize.contains("offline_access"), "{authorize}");
    let state_cookie = to_idp
        .set_cookies
        .iter()
        .find(|c| c.starts_with("oidc_state="))
        .expect("state cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/oauth2", "Max-Age=600"] {
        assert!(
            state_cookie.contains(attribute),
            "{attribute} missing: {state_cookie}"
        );
    }

    let callback = browser.sign_in_at_idp(to_idp, "alice", &shop.sidecar.url("/"));
    let back = browser.get(&callback);
    assert_eq!(back.status, 302, "{back:?}");
    assert_eq!(back.location.as_deref(), Some("/account/orders?page=2"));
    let session_cookie = back
        .set_cookies
        .iter()
        .find(|c| c.starts_with("_sso_session="))
        .expect("session cookie");
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );
    assert!(
        back.set_cookies
            .iter()
            .any(|c| c.starts_with("oidc_state=;")),
        "state cookie removed: {:?}",
        back.set_cookies
    );

    let landed = browser.follow(back);
    assert_eq!(landed.status, 200, "{landed:?}");
    let seen = shop.upstream.last();
    assert_eq!(seen.uri, "/account/orders?page=2");
    assert_eq!(seen.header("x-sso-subject"), Some("alice"));
    assert_eq!(
        seen.header("x-sso-external-id"),
        Some("alice"),
        "no oid: external id is sub"
    );
    assert_eq!(seen.header("x-sso-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-sso-name"), Some("Alice Tester"));
    assert_eq!(seen.header("x-sso-preferred-username"), Some("alice"));
    assert_eq!(seen.header("x-sso-organization"), Some("inSPIRED"));
    assert_eq!(seen.header("x-sso-identity-provider"), Some("kc"));
    assert_eq!(
        seen.header("x-sso-self-administration"),
        Some("CREATE,UPDATE")
    );
    let cookies = seen.header("cookie").unwrap_or("");
    assert!(
        !cookies.contains("_sso_session") && !cookies.contains("oidc_state"),
        "{cookies}"
    );

    // Spoofed identity headers are replaced by the real ones.
    let spoofed = browser
        .client
        .get(shop.sidecar.url("/account/x"))
        .header("Accept", "text/html")
        .header("X-SSO-Subject", "admin")
        .send()
        .unwrap();
    assert_eq!(spoofed.status(), 200);
    let seen = shop.upstream.last();
    assert_eq!(seen.headers_starting_with("x-sso-subject").len(), 1);
    assert_eq!(seen.header("x-sso-subject"), Some("alice"));

    let metrics = shop.sidecar.metrics();
    assert_eq!(
        metrics["sso_sidecar_logins_started_total{idp=\"kc\",organization=\"inSPIRED\"}"],
        1.0
    );
    assert_eq!(
        metrics["sso_sidecar_logins_completed_total{idp=\"kc\",organization=\"inSPIRED\"}"],
        1.0
    );
    assert_eq!(metrics["sso_sidecar_session_cookie_bytes_count"], 1.0);
    assert!(metrics["sso_sidecar_idp_discovery_total{idp=\"kc\",outcome=\"ok\"}"] >= 1.0);
    assert_eq!(
        metrics["sso_sidecar_client_secret_expire_at_seconds{idp=\"kc\"}"],
        1893456000.0
    );
}

#[test]
fn organization_with_several_idps_offers_a_choice_and_azure_oid_becomes_external_id() {
    let shop = shop();
    let browser = Browser::new();
    let list = browser.get(&format!(
        "{}?rd=%2Faccount%2F&org=intershop",
        shop.sidecar.url("/oauth2/start")
    ));
    assert_eq!(list.status, 200);
    for name in ["Keycloak", "Azure AD", "Shop account"] {
        assert!(list.body.contains(name), "{name} missing:\n{}", list.body);
    }
    assert!(list.body.contains("Sign in to Intershop"));

    let landed = shop.sign_in(&browser, "/account/", "Intershop", Some("ad"), "bob");
    assert_eq!(landed.status, 200);
    let seen = shop.upstream.last();
    assert_eq!(seen.header("x-sso-subject"), Some("bob"));
    let external = seen.header("x-sso-external-id").unwrap();
    assert_ne!(external, "bob", "Azure's oid is the external id");
    assert_eq!(external.len(), 36, "a UUID: {external}");
    assert_eq!(seen.header("x-sso-identity-provider"), Some("ad"));
    assert_eq!(seen.header("x-sso-organization"), Some("Operations"));
}

#[test]
fn pinned_organization_route() {
    let shop = shop();
    let browser = Browser::new();
    let first = browser.get(&shop.sidecar.url("/backoffice/"));
    assert_eq!(first.status, 302);
    assert_eq!(
        first.location.as_deref(),
        Some("/oauth2/start?rd=%2Fbackoffice%2F&org=Operations")
    );

    // A session of another organization is not good for the back office: sign in again.
    let landed = shop.sign_in(&browser, "/account/", "inSPIRED", None, "carol");
    assert_eq!(landed.status, 200);
    let again = browser.get(&shop.sidecar.url("/backoffice/"));
    assert_eq!(again.status, 302, "{again:?}");
    assert!(again.location.unwrap().contains("org=Operations"));

    // Signed in for inSPIRED, the sign-in for Operations asks first (issue 35); switching
    // goes on to the IdP.
    let start = shop
        .sidecar
        .url("/oauth2/start?rd=%2Fbackoffice%2F&org=Operations&idp=kc");
    let asked = browser.get(&start);
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("Sign in for"), "{}", asked.body);
    let to_idp = browser.get(&format!("{start}&switch=yes"));
    assert_eq!(to_idp.status, 302, "{to_idp:?}");
    let callback = browser.sign_in_at_idp(to_idp, "carol", &shop.sidecar.url("/"));
    let landed = browser.follow(browser.get(&callback));
    assert_eq!(landed.status, 200);
    assert_eq!(
        shop.upstream.last().header("x-sso-organization"),
        Some("Operations")
    );
}

#[test]
fn local_idp_hands_over_to_the_backend_login_without_a_session() {
    let shop = shop();
    let browser = Browser::new();
    let page = browser.get(&format!(
        "{}?rd=%2Faccount%2F&org=local%20only",
        shop.sidecar.url("/oauth2/start")
    ));
    assert_eq!(page.status, 302);
    assert_eq!(page.location.as_deref(), Some("/shop/login"));
    assert!(
        page.set_cookies
            .iter()
            .all(|c| !c.starts_with("_sso_session=") && !c.starts_with("oidc_state=")),
        "{:?}",
        page.set_cookies
    );
    // The organization is remembered and prefills the form next time.
    let form = browser.get(&shop.sidecar.url("/oauth2/start"));
    assert!(form.body.contains("value=\"Local Only\""), "{}", form.body);
}

#[test]
fn unknown_organization_shows_the_form_with_an_error() {
    let shop = shop();
    let page = Browser::new().get(&format!(
        "{}?org=Nobody%20Inc",
        shop.sidecar.url("/oauth2/start")
    ));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("We do not know this organization"));
    assert!(page.body.contains("value=\"Nobody Inc\""));
}

#[test]
fn own_pages_send_security_headers() {
    let shop = shop();
    let response = client()
        .get(shop.sidecar.url("/oauth2/start"))
        .send()
        .unwrap();
    let headers = response.headers();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

#[test]
fn callback_without_or_with_a_wrong_state_is_refused() {
    let shop = shop();
    let browser = Browser::new();
    let missing = browser.get(&format!(
        "{}?code=abc&state=xyz",
        shop.sidecar.url("/oauth2/callback")
    ));
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("Sign in again"), "{}", missing.body);

    let to_idp = browser.get(&format!(
        "{}?org=inSPIRED",
        shop.sidecar.url("/oauth2/start")
    ));
    let callback = browser.sign_in_at_idp(to_idp, "dave", &shop.sidecar.url("/"));
    let tampered = callback.replace("state=", "state=x");
    let page = browser.get(&tampered);
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page
        .body
        .contains("expired or was started in another browser"));

    // A different browser (no state cookie) cannot use the callback either.
    let other = Browser::new().get(&callback);
    assert_eq!(other.status, 400);
    assert!(shop.upstream.seen().is_empty());
    let failed = shop.sidecar.metric("sso_sidecar_logins_failed_total{idp=\"unknown\",organization=\"unknown\",reason=\"state_mismatch\"}");
    assert_eq!(failed, 1.0);
}

#[test]
fn replayed_code_is_refused() {
    let shop = shop();
    let browser = Browser::new();
    let to_idp = browser.get(&format!(
        "{}?org=inSPIRED",
        shop.sidecar.url("/oauth2/start")
    ));
    let callback = browser.sign_in_at_idp(to_idp, "erin", &shop.sidecar.url("/"));
    assert_eq!(browser.get(&callback).status, 302);

    // Start a new login to get a fresh state, then present the old, used code with it.
    let to_idp = browser.get(&format!(
        "{}?org=inSPIRED",
        shop.sidecar.url("/oauth2/start")
    ));
    let authorize = url::Url::parse(to_idp.location.as_deref().unwrap()).unwrap();
    let fresh_state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let old = url::Url::parse(&callback).unwrap();
    let old_code = old
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let replay = browser.get(&format!(
        "{}?code={}&state={}&iss={}",
        shop.sidecar.url("/oauth2/callback"),
        enc(&old_code),
        enc(&fresh_state),
        enc(&shop.kc.issuer)
    ));
    assert_eq!(replay.status, 400, "{replay:?}");
    assert!(
        replay.body.contains("refused the authorization code"),
        "{}",
        replay.body
    );
}

#[test]
fn forged_id_tokens_are_rejected() {
    let shop = shop();
    for mode in [
        "wrong_key",
        "wrong_aud",
        "wrong_iss",
        "wrong_nonce",
        "expired",
        "alg_none",
    ] {
        shop.kc.forge(mode);
        let browser = Browser::new();
        let to_idp = browser.get(&format!(
            "{}?org=inSPIRED&rd=%2Faccount%2F",
            shop.sidecar.url("/oauth2/start")
        ));
        let callback = browser.sign_in_at_idp(to_idp, "mallory", &shop.sidecar.url("/"));
        let page = browser.get(&callback);
        assert_eq!(page.status, 401, "{mode}: {page:?}");
        assert!(
            page.body.contains("Your identity could not be verified"),
            "{mode}: {}",
            page.body
        );
        assert!(!page.sets_session(), "{mode}");
        assert_eq!(
            browser.get(&shop.sidecar.url("/account/")).status,
            302,
            "{mode}: still signed out"
        );
    }
    shop.kc.forge("off");
    assert!(shop.upstream.seen().is_empty());
    assert_eq!(shop.sidecar.metric("sso_sidecar_logins_failed_total{idp=\"kc\",organization=\"inSPIRED\",reason=\"invalid_id_token\"}"), 6.0);
}

#[test]
fn idp_error_on_the_callback_gives_a_readable_page() {
    let shop = shop();
    let browser = Browser::new();
    let to_idp = browser.get(&format!(
        "{}?org=inSPIRED",
        shop.sidecar.url("/oauth2/start")
    ));
    let state = url::Url::parse(to_idp.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let page = browser.get(&format!(
        "{}?error=access_denied&error_description=User%20cancelled&state={}",
        shop.sidecar.url("/oauth2/callback"),
        enc(&state)
    ));
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("(access_denied).") && page.body.contains("Details: User cancelled."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Sign in again"));
}

/// Issue 13: the callback never prints what a request chose. Without a sign-in of this
/// browser the IdP's text is not shown at all; with one, only a known error code and 200
/// escaped characters of the description. Old code: 502 with the whole text.
#[test]
fn callback_errors_show_no_attacker_text() {
    let shop = shop();
    let browser = Browser::new();
    let injected = "Your account is locked. Call +1-555-0100 <b>now</b>";
    let forged = browser.get(&format!(
        "{}?error=x&error_description={}",
        shop.sidecar.url("/oauth2/callback"),
        enc(injected)
    ));
    assert_eq!(forged.status, 400, "{forged:?}");
    assert!(forged
        .body
        .contains("Sign-in expired or came from another browser"));
    assert!(!forged.body.contains("locked"), "{}", forged.body);
    assert!(!forged.body.contains("555"), "{}", forged.body);

    let state_of = |page: &Page| {
        url::Url::parse(page.location.as_deref().unwrap())
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned()
    };
    let state = state_of(&browser.get(&format!(
        "{}?org=inSPIRED",
        shop.sidecar.url("/oauth2/start")
    )));
    let long = format!("<script>{}</script>", "a".repeat(400));
    let page = browser.get(&format!(
        "{}?error=made_up_code&error_description={}&state={}",
        shop.sidecar.url("/oauth2/callback"),
        enc(&long),
        enc(&state)
    ));
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page
        .body
        .contains("The identity provider refused the sign-in"));
    assert!(!page.body.contains("made_up_code"), "{}", page.body);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;"), "{}", page.body);
    let shown = format!("&lt;script&gt;{}", "a".repeat(192));
    assert!(page.body.contains(&shown), "{}", page.body);
    assert!(
        !page.body.contains(&format!("{shown}a")),
        "cut at 200 characters"
    );
    assert!(shop.upstream.seen().is_empty());
}

/// RFC 9207: oidc-provider advertises `authorization_response_iss_parameter_supported`, so
/// a response naming another issuer, or none, is refused before the code is redeemed.
#[test]
fn callback_from_another_issuer_is_refused() {
    let shop = shop();
    for iss in [Some("https://evil.example"), None] {
        let browser = Browser::new();
        let to_idp = browser.get(&format!(
            "{}?org=inSPIRED",
            shop.sidecar.url("/oauth2/start")
        ));
        let callback = browser.sign_in_at_idp(to_idp, "ivan", &shop.sidecar.url("/"));
        let mut url = url::Url::parse(&callback).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "iss")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut query = url.query_pairs_mut();
            query.clear();
            for (k, v) in &pairs {
                query.append_pair(k, v);
            }
            if let Some(iss) = iss {
                query.append_pair("iss", iss);
            }
        }
        let page = browser.get(url.as_str());
        assert_eq!(page.status, 400, "{iss:?}: {page:?}");
        assert!(!page.sets_session());
    }
    assert_eq!(shop.sidecar.metric("sso_sidecar_logins_failed_total{idp=\"kc\",organization=\"inSPIRED\",reason=\"issuer_mismatch\"}"), 2.0);
}

#[test]
fn tampered_cookie_means_signed_out() {
    let shop = shop();
    let browser = Browser::new();
    shop.sign_in(&browser, "/account/", "inSPIRED", None, "frank");
    let value = browser
        .cookie(&shop.sidecar.url("/"), "_sso_session")
        .unwrap();
    let mut bytes = value.into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    browser.set_cookie(
        &shop.sidecar.url("/"),
        &format!("_sso_session={tampered}; Path=/"),
    );
    let page = browser.get(&shop.sidecar.url("/account/"));
    assert_eq!(page.status, 302);
    let xhr = browser
        .client
        .get(shop.sidecar.url("/account/"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(xhr.status(), 401);
    assert!(xhr.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    for garbage in ["", "x", "~3", "~99999999999", "%%%"] {
        browser.set_cookie(
            &shop.sidecar.url("/"),
            &format!("_sso_session={garbage}; Path=/"),
        );
        let status = browser.get(&shop.sidecar.url("/account/")).status;
        assert_eq!(status, 302, "{garbage:?}");
    }
    assert!(
        shop.sidecar
            .metric("sso_sidecar_sessions_rejected_total{reason=\"invalid\"}")
            >= 1.0
    );
}

#[test]
fn open_redirect_attempts_land_on_root() {
    let shop = shop();
    for rd in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/.//evil.example",
    ] {
        let browser = Browser::new();
        let to_idp = browser.get(&format!(
            "{}?org=inSPIRED&rd={}",
            shop.sidecar.url("/oauth2/start"),
            enc(rd)
        ));
        let callback = browser.sign_in_at_idp(to_idp, "gina", &shop.sidecar.url("/"));
        let back = browser.get(&callback);
        assert_eq!(back.status, 302);
        assert_eq!(back.location.as_deref(), Some("/"), "{rd}");
    }
}

#[test]
fn xhr_gets_401_and_no_cookie() {
    let shop = shop();
    for (accept, extra) in [
        ("application/json", None),
        ("text/html", Some(("X-Requested-With", "XMLHttpRequest"))),
        ("text/html", Some(("Authorization", "Bearer abc"))),
    ] {
        let mut request = client()
            .get(shop.sidecar.url("/account/data"))
            .header("Accept", accept);
        if let Some((k, v)) = extra {
            request = request.header(k, v);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(response.headers().get("set-cookie").is_none());
    }
}

#[test]
fn two_logins_in_parallel_tabs_both_complete() {
    let shop = shop();
    let browser = Browser::new();
    let tab1 = browser.get(&format!(
        "{}?org=inSPIRED&rd=%2Faccount%2Fone",
        shop.sidecar.url("/oauth2/start")
    ));
    let tab2 = browser.get(&format!(
        "{}?org=inSPIRED&rd=%2Faccount%2Ftwo",
        shop.sidecar.url("/oauth2/start")
    ));
    let callback2 = browser.sign_in_at_idp(tab2, "hank", &shop.sidecar.url("/"));
    let callback1 = browser.sign_in_at_idp(tab1, "hank", &shop.sidecar.url("/"));
    let back2 = browser.get(&callback2);
    assert_eq!(back2.location.as_deref(), Some("/account/two"), "{back2:?}");
    let back1 = browser.get(&callback1);
    assert_eq!(back1.location.as_deref(), Some("/account/one"), "{back1:?}");
}

#[test]
fn userinfo_endpoint() {
    let shop = shop();
    let browser = Browser::new();
    let anonymous = browser
        .client
        .get(shop.sidecar.url("/oauth2/userinfo"))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    shop.sign_in(&browser, "/account/", "inTRONICS", None, "ivy");
    let info: serde_json::Value = browser
        .client
        .get(shop.sidecar.url("/oauth2/userinfo"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["subject"], "ivy");
    assert_eq!(info["organization"], "Anonymous");
    assert_eq!(info["identity_provider"], "ad");
    assert_eq!(info["self_administration"], "UPDATE");
    assert_eq!(info["email"], "ivy@example.com");
}

#[test]
fn session_key_rotation_keeps_sessions() {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let kc = Idp::for_sidecar(ports, json!({}));
    let ad = Idp::for_sidecar(ports, json!({}));
    let config = CONFIG
        .replace("{kc_issuer}", &kc.issuer)
        .replace("{ad_issuer}", &ad.issuer);
    let browser = Browser::new();
    let cookie = {
        let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
        sidecar.wait_idps_ready();
        let to_idp = browser.get(&format!("{}?org=inSPIRED", sidecar.url("/oauth2/start")));
        let callback = browser.sign_in_at_idp(to_idp, "jack", &sidecar.url("/"));
        assert_eq!(browser.get(&callback).status, 302);
        browser.cookie(&sidecar.url("/"), "_sso_session").unwrap()
    };
    let new_key = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=";
    let rotated = config.replace(
        "keys = [\"{session_key}\"]",
        &format!("keys = [\"{new_key}\", \"{{session_key}}\"]"),
    );
    let sidecar = Sidecar::start_on(ports, &rotated, &upstream.url(), &[]);
    let page = browser.get(&sidecar.url("/account/"));
    assert_eq!(page.status, 200, "old key still decrypts: {page:?}");
    assert_eq!(upstream.last().header("x-sso-subject"), Some("jack"));
    drop(sidecar);

    let only_new = config.replace("{session_key}", new_key);
    let sidecar = Sidecar::start_on(ports, &only_new, &upstream.url(), &[]);
    browser.set_cookie(&sidecar.url("/"), &format!("_sso_session={cookie}; Path=/"));
    assert_eq!(
        browser.get(&sidecar.url("/account/")).status,
        302,
        "a removed key logs out"
    );
}

#[test]
fn claims_missing_from_the_id_token_come_from_userinfo() {
    let shop = shop_with(
        CONFIG,
        json!({"issuerPath": "/realms/ICM", "idTokenClaims": "minimal"}),
    );
    let browser = Browser::new();
    let landed = shop.sign_in(&browser, "/account/", "inSPIRED", None, "kim");
    assert_eq!(landed.status, 200);
    let seen = shop.upstream.last();
    assert_eq!(seen.header("x-sso-email"), Some("kim@example.com"));
    assert_eq!(seen.header("x-sso-name"), Some("Kim Tester"));
}

#[test]
fn a_failing_idp_does_not_block_the_others() {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let kc = Idp::for_sidecar(ports, json!({}));
    let dead = format!("http://127.0.0.1:{}/realms/gone", free_port());
    let config = CONFIG
        .replace("{kc_issuer}", &kc.issuer)
        .replace("{ad_issuer}", &dead);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        report = reqwest::blocking::get(sidecar.admin_url("/readyz"))
            .unwrap()
            .json()
            .unwrap();
        if report["identity_providers"]["kc"]["state"] == "ready"
            && report["identity_providers"]["ad"]["state"] == "failed"
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        report["identity_providers"]["kc"]["state"], "ready",
        "{report}"
    );
    assert_eq!(
        report["identity_providers"]["ad"]["state"], "failed",
        "{report}"
    );
    assert!(
        report["identity_providers"]["ad"]["error"]
            .as_str()
            .unwrap()
            .len()
            > 5
    );

    let browser = Browser::new();
    let page = browser.get(&format!("{}?org=inTRONICS", sidecar.url("/oauth2/start")));
    assert_eq!(page.status, 503);
    assert!(
        page.body.contains("The sign-in service is not available"),
        "{}",
        page.body
    );
    let to_idp = browser.get(&format!("{}?org=inSPIRED", sidecar.url("/oauth2/start")));
    assert_eq!(to_idp.status, 302);
}

#[test]
fn sign_in_endpoints_are_rate_limited_per_client() {
    let ports = Ports::new();
    let upstream = Upstream::start();
    let kc = Idp::for_sidecar(ports, json!({}));
    let ad = Idp::for_sidecar(ports, json!({}));
    let config = CONFIG
        .replace("{kc_issuer}", &kc.issuer)
        .replace("{ad_issuer}", &ad.issuer)
        .replace(
            "[session]",
            "[limits]\nlogin_requests_per_minute = 5\n\n[session]",
        );
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = client().get(sidecar.url("/oauth2/start")).send().unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&wait));
        }
    }
    // Five in a minute; a minute boundary in between may allow a few more.
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 5,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(
        client()
            .get(sidecar.url("/oauth2/userinfo"))
            .send()
            .unwrap()
            .status(),
        401,
        "other endpoints unaffected"
    );
}
