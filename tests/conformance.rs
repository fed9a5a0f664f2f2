//! The relying-party conformance suite (issue 27): every test id of the OpenID Foundation's
//! Basic RP and Config RP certification plans, RP-initiated logout, back-channel logout
//! (OpenID Connect Back-Channel Logout 1.0 §2.6, one test per check) and a refresh-token
//! plan (OpenID Connect Core §12.2), each against a test OP that misbehaves as the test's
//! published description says (`conformance/op.rs`). Each test states its expected outcome
//! and asserts the sidecar's; the table goes to stdout (`make conformance`).
//!
//! One OP serves every test id as an issuer of its own, and one sidecar has an IdP entry
//! and an organization per test id: the suite starts two servers, not forty.

mod common;
#[path = "conformance/op.rs"]
mod op;

use common::nginx::Nginx;
use common::*;
use op::{Op, CLIENT_ID, CLIENT_SECRET, SUBJECT};
use serde_json::{json, Value};

/// What a test expects of the relying party, and a check that says what it did.
struct Case {
    id: &'static str,
    plan: &'static str,
    expected: &'static str,
    check: fn(&Suite, &'static str) -> Result<String, String>,
}

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn cases() -> Vec<Case> {
    let case = |id, plan, expected, check| Case {
        id,
        plan,
        expected,
        check,
    };
    vec![
        case("rp-response_type-code", "Basic", "sign-in completes (code flow, PKCE, no offline_access without consent)", response_type_code),
        case("rp-scope-userinfo-claims", "Basic", "sign-in completes; profile claims taken from userinfo", userinfo_claims_used),
        case("rp-nonce-invalid", "Basic", "ID token with another nonce refused", refused),
        case("rp-token_endpoint-client_secret_basic", "Basic", "token request with client_secret_basic", |s, id| auth_method(s, id, "client_secret_basic")),
        case("rp-id_token-aud", "Basic", "ID token for another audience refused", refused),
        case("rp-id_token-kid-absent-single-jwks", "Basic", "ID token without kid accepted with the one key that fits (JWKS also holds enc and EC keys)", accepted),
        case("rp-id_token-sig-none", "Basic, Config", "unsigned ID token accepted when the RP allows none (oidc.accept_unsigned_tokens)", sig_none_when_allowed),
        case("rp-id_token-sig-none-by-default", "ours", "unsigned ID token refused by default", refused),
        case("rp-id_token-issuer-mismatch", "Basic", "ID token from another issuer refused", refused),
        case("rp-id_token-kid-absent-multiple-jwks", "Basic", "ID token without kid refused when several keys fit", refused),
        case("rp-id_token-bad-sig-rs256", "Basic", "RS256 ID token with a bad signature refused", refused),
        case("rp-id_token-iat", "Basic", "ID token without iat refused", refused),
        case("rp-id_token-sig-rs256", "Basic", "RS256 ID token accepted", accepted),
        case("rp-id_token-sub", "Basic", "ID token without sub refused", refused),
        case("rp-userinfo-bad-sub-claim", "Basic", "userinfo answer for another sub ignored", userinfo_ignored),
        case("rp-userinfo-bearer-header", "Basic", "userinfo called with the token in the Authorization header", userinfo_claims_used),
        case("rp-token_endpoint-client_secret_post", "Basic (optional)", "token request with client_secret_post when that is all the OP offers", |s, id| auth_method(s, id, "client_secret_post")),
        case("rp-id_token-sig-es256", "Basic (optional)", "ES256 ID token accepted", accepted),
        case("rp-id_token-bad-sig-es256", "Basic (optional)", "ES256 ID token with a bad signature refused", refused),
        case("rp-id_token-bad-sig-hs256", "Basic (optional)", "HS256 ID token (keyed with the client secret) refused", refused),
        case("rp-discovery-openid-configuration", "Config", "metadata read from discovery; sign-in completes", accepted),
        case("rp-discovery-jwks_uri-keys", "Config", "keys read from jwks_uri; sign-in completes", accepted),
        case("rp-discovery-issuer-not-matching-config", "Config", "discovery whose issuer differs refused; no sign-in", discovery_refused),
        case("rp-key-rotation-op-sign-key", "Config", "sign-in completes before and after the OP rotates its signing key", key_rotation),
        case("rp-init-logout", "RP-Initiated Logout", "logout sends id_token_hint and post_logout_redirect_uri to end_session_endpoint; session ends", rp_initiated_logout),
        case("backchannel-logout-valid", "Back-Channel Logout", "valid logout token: 200, session ends", |s, id| backchannel(s, id, Tweak::None)),
        case("backchannel-logout-alg-none", "Back-Channel Logout", "unsigned logout token: 400, session stays", |s, id| backchannel(s, id, Tweak::AlgNone)),
        case("backchannel-logout-no-event", "Back-Channel Logout", "logout token without events: 400, session stays", |s, id| backchannel(s, id, Tweak::NoEvent)),
        case("backchannel-logout-with-nonce", "Back-Channel Logout", "logout token with a nonce: 400, session stays", |s, id| backchannel(s, id, Tweak::Nonce)),
        case("backchannel-logout-wrong-alg", "Back-Channel Logout", "logout token signed HS256: 400, session stays", |s, id| backchannel(s, id, Tweak::WrongAlg)),
        case("backchannel-logout-wrong-aud", "Back-Channel Logout", "logout token for another client: 400, session stays", |s, id| backchannel(s, id, Tweak::WrongAud)),
        case("backchannel-logout-wrong-event", "Back-Channel Logout", "logout token with another event: 400, session stays", |s, id| backchannel(s, id, Tweak::WrongEvent)),
        case("backchannel-logout-wrong-iss", "Back-Channel Logout", "logout token from an unknown issuer: 400, session stays", |s, id| backchannel(s, id, Tweak::WrongIss)),
        case("backchannel-logout-replay", "Back-Channel Logout", "the same logout token twice: 200, then 400", backchannel_replay),
        case("rp-refresh-token", "Refresh (ours)", "refresh with the same iss and sub: session continues", |s, id| refresh(s, id, true)),
        case("rp-refresh-token-changed-sub", "Refresh (ours)", "refresh whose ID token names another sub: session ends", |s, id| refresh(s, id, false)),
        case("rp-refresh-token-changed-iss", "Refresh (ours)", "refresh whose ID token names another (known) issuer: session ends", |s, id| refresh(s, id, false)),
        case("rp-refresh-token-bad-sig", "Refresh (ours)", "refresh whose ID token has a bad signature: session ends", |s, id| refresh(s, id, false)),
    ]
}

struct Suite {
    op: Op,
    sidecar: Sidecar,
    /// With `oidc.accept_unsigned_tokens = true`, for `rp-id_token-sig-none`.
    permissive: Sidecar,
    _upstream: Upstream,
}

fn config(op: &Op, ids: &[&str], oidc_extra: &str) -> String {
    let mut text = format!(
        r#"
[server]
listen = "{{listen}}"
upstream = "{{upstream}}"
public_url = "{{public_url}}"

[admin]
listen = "{{admin}}"

[oidc]
remote = "supported"
{oidc_extra}

[session]
keys = ["{{session_key}}"]
secure = false

[limits]
login_requests_per_minute = 100000

[[routes]]
path_prefix = "/"
auth = "required"
"#
    );
    for id in ids {
        text.push_str(&format!(
            r#"
[identity_providers.{id}]
type = "oidc"
name = "{id}"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
{extra}

[organizations.{id}]
external_name = "{id}"
identity_providers = ["{id}"]
logout_policy = "FEDERATED"
"#,
            issuer = op.issuer(id),
            // The RP's registered `id_token_signed_response_alg`: algorithms are pinned.
            extra = match id.contains("es256") {
                true => "algorithms = [\"ES256\"]",
                false => "",
            }
        ));
    }
    text
}

/// Waits until discovery has run for every IdP (ready, or failed for good).
fn wait_discovered(sidecar: &Sidecar) {
    for _ in 0..200 {
        let ready: Value = reqwest::blocking::get(sidecar.admin_url("/readyz"))
            .unwrap()
            .json()
            .unwrap();
        let idps = ready["identity_providers"].as_object().unwrap();
        if idps.values().all(|s| s["state"] != "discovering") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("discovery did not finish:\n{}", sidecar.log());
}

/// A sign-in at `org` in a fresh browser: the callback's answer (or the first that was
/// not a redirect on the way).
fn sign_in(sidecar: &Sidecar, org: &str) -> (Browser, Page) {
    sign_in_with(Browser::new(), sidecar, org)
}

fn sign_in_with(browser: Browser, sidecar: &Sidecar, org: &str) -> (Browser, Page) {
    let start = browser.get(&sidecar.url(&format!("/oauth2/start?rd=%2F&org={org}")));
    let Some(authorize) = start.location.clone().filter(|_| start.status == 302) else {
        return (browser, start);
    };
    let at_op = browser.get(&authorize);
    let Some(callback) = at_op
        .location
        .clone()
        .filter(|_| at_op.status == 303 || at_op.status == 302)
    else {
        return (browser, at_op);
    };
    let page = browser.get(&absolute(&at_op.url, &callback));
    (browser, page)
}

fn outcome(page: &Page) -> String {
    match page.sets_session() {
        true => "signed in".into(),
        false => format!("refused ({})", page.status),
    }
}

fn accepted(s: &Suite, id: &str) -> Result<String, String> {
    let (_, page) = sign_in(&s.sidecar, id);
    let seen = outcome(&page);
    page.sets_session().then(|| seen.clone()).ok_or(seen)
}

fn refused(s: &Suite, id: &str) -> Result<String, String> {
    let (_, page) = sign_in(&s.sidecar, id);
    let seen = outcome(&page);
    // A refusal is a page of ours: 401 for a token that does not verify, 502 for an
    // answer the IdP's token response cannot even be read as (no `sub`, no `iat`).
    (!page.sets_session() && (page.status == 401 || page.status == 502))
        .then(|| seen.clone())
        .ok_or(seen)
}

fn response_type_code(s: &Suite, id: &'static str) -> Result<String, String> {
    let signed_in = accepted(s, id)?;
    let seen = s.op.seen(id);
    let asked = seen.authorize.last().ok_or("no authorization request")?;
    let text = |k: &str| {
        asked
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if text("response_type") != "code" || text("code_challenge_method") != "S256" {
        return Err(format!("authorization request: {asked:?}"));
    }
    if text("scope").contains("offline_access") {
        return Err("offline_access asked without prompt=consent".into());
    }
    Ok(signed_in)
}

fn userinfo_of(browser: &Browser, sidecar: &Sidecar) -> Value {
    browser
        .client
        .get(sidecar.url("/oauth2/userinfo"))
        .send()
        .unwrap()
        .json()
        .unwrap_or(Value::Null)
}

fn userinfo_claims_used(s: &Suite, id: &'static str) -> Result<String, String> {
    let (browser, page) = sign_in(&s.sidecar, id);
    if !page.sets_session() {
        return Err(outcome(&page));
    }
    let identity = userinfo_of(&browser, &s.sidecar);
    let want = format!("from-userinfo@{id}.example");
    match identity["email"].as_str() == Some(&want) && s.op.seen(id).userinfo_calls > 0 {
        true => Ok(format!("signed in, email {want} from userinfo")),
        false => Err(format!("identity {identity}")),
    }
}

fn userinfo_ignored(s: &Suite, id: &'static str) -> Result<String, String> {
    let (browser, page) = sign_in(&s.sidecar, id);
    if !page.sets_session() {
        return Err(outcome(&page));
    }
    let identity = userinfo_of(&browser, &s.sidecar);
    match identity["email"].is_null() && identity["subject"] == SUBJECT {
        true => Ok("signed in as the ID token's sub; userinfo ignored".into()),
        false => Err(format!("identity {identity}")),
    }
}

fn auth_method(s: &Suite, id: &'static str, method: &str) -> Result<String, String> {
    let signed_in = accepted(s, id)?;
    let used = s.op.seen(id).token_auth;
    match used.iter().all(|m| m == method) && !used.is_empty() {
        true => Ok(format!("{signed_in} with {method}")),
        false => Err(format!("client authentication {used:?}")),
    }
}

fn sig_none_when_allowed(s: &Suite, id: &'static str) -> Result<String, String> {
    let (_, page) = sign_in(&s.permissive, id);
    let seen = outcome(&page);
    page.sets_session().then(|| seen.clone()).ok_or(seen)
}

fn discovery_refused(s: &Suite, id: &'static str) -> Result<String, String> {
    let ready: Value = reqwest::blocking::get(s.sidecar.admin_url("/readyz"))
        .unwrap()
        .json()
        .unwrap();
    let state = ready["identity_providers"][id]["state"].clone();
    let (_, page) = sign_in(&s.sidecar, id);
    match (state == "failed", page.status) {
        (true, 503) => Ok("IdP not used (readyz: failed); sign-in page 503".into()),
        _ => Err(format!("readyz {state}, sign-in {}", page.status)),
    }
}

fn key_rotation(s: &Suite, id: &'static str) -> Result<String, String> {
    accepted(s, id).map_err(|e| format!("before rotation: {e}"))?;
    s.op.rotate(id);
    accepted(s, id).map_err(|e| format!("after rotation: {e}"))?;
    Ok("signed in before and after rotation".into())
}

fn rp_initiated_logout(s: &Suite, id: &'static str) -> Result<String, String> {
    let (browser, page) = sign_in(&s.sidecar, id);
    if !page.sets_session() {
        return Err(outcome(&page));
    }
    let origin = s.sidecar.url("");
    let answer = browser.post_form_with(
        &s.sidecar.url("/oauth2/logout"),
        &[],
        &[("Origin", &origin)],
    );
    let to_op = answer
        .location
        .clone()
        .ok_or(format!("logout answered {}", answer.status))?;
    if !to_op.starts_with(&format!("{}/end_session", s.op.issuer(id))) {
        return Err(format!("logout went to {to_op}"));
    }
    let back = browser.get(&to_op);
    let request =
        s.op.seen(id)
            .end_session
            .pop()
            .ok_or("the OP saw no logout")?;
    let hint = request.get("id_token_hint").ok_or("no id_token_hint")?;
    let claims = decode_verified(&s.op, hint).ok_or("id_token_hint does not verify")?;
    if claims["aud"] != CLIENT_ID || claims["sub"] != SUBJECT {
        return Err(format!("id_token_hint claims {claims}"));
    }
    let returns = request
        .get("post_logout_redirect_uri")
        .ok_or("no post_logout_redirect_uri")?;
    if !returns.starts_with(&origin) || !(300..400).contains(&back.status) {
        return Err(format!(
            "post_logout_redirect_uri {returns}, OP answered {}",
            back.status
        ));
    }
    match browser
        .client
        .get(s.sidecar.url("/oauth2/userinfo"))
        .send()
        .unwrap()
        .status()
        .as_u16()
    {
        401 => {
            Ok("end_session with id_token_hint and post_logout_redirect_uri; session ended".into())
        }
        other => Err(format!("session still answers {other} after logout")),
    }
}

/// The claims of a token the OP signed with its usual key, if it verifies.
fn decode_verified(op: &Op, token: &str) -> Option<Value> {
    let key = jsonwebtoken::DecodingKey::from_jwk(&op.keys.rsa.public).ok()?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[CLIENT_ID]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .ok()
        .map(|d| d.claims)
}

#[derive(Clone, Copy)]
enum Tweak {
    None,
    AlgNone,
    NoEvent,
    Nonce,
    WrongAlg,
    WrongAud,
    WrongEvent,
    WrongIss,
}

fn logout_token(op: &Op, id: &str, tweak: Tweak) -> String {
    let mut claims = Value::Object(op.claims(id));
    let object = claims.as_object_mut().unwrap();
    object.remove("exp");
    object.insert(
        "jti".into(),
        json!(format!("jti-{}", rand::random::<u64>())),
    );
    object.insert("sid".into(), json!(op.seen(id).last_sid));
    object.insert("events".into(), json!({BACKCHANNEL_EVENT: {}}));
    match tweak {
        Tweak::None | Tweak::AlgNone | Tweak::WrongAlg => {}
        Tweak::NoEvent => drop(object.remove("events")),
        Tweak::Nonce => drop(object.insert("nonce".into(), json!("n-1"))),
        Tweak::WrongAud => drop(object.insert("aud".into(), json!("another-client"))),
        Tweak::WrongEvent => {
            object.insert(
                "events".into(),
                json!({"http://schemas.openid.net/event/other": {}}),
            );
        }
        Tweak::WrongIss => drop(object.insert("iss".into(), json!("https://unknown.example"))),
    }
    match tweak {
        Tweak::AlgNone => op::unsigned(&claims),
        Tweak::WrongAlg => {
            let key = jsonwebtoken::EncodingKey::from_secret(CLIENT_SECRET.as_bytes());
            let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        }
        _ => op.keys.rsa.sign(&claims, Some("rsa-1"), Some("logout+jwt")),
    }
}

fn post_logout_token(sidecar: &Sidecar, token: &str) -> u16 {
    client()
        .post(sidecar.url("/oauth2/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn session_alive(browser: &Browser, sidecar: &Sidecar) -> bool {
    browser
        .client
        .get(sidecar.url("/oauth2/userinfo"))
        .send()
        .unwrap()
        .status()
        == 200
}

fn backchannel(s: &Suite, id: &'static str, tweak: Tweak) -> Result<String, String> {
    let (browser, page) = sign_in(&s.sidecar, id);
    if !page.sets_session() {
        return Err(outcome(&page));
    }
    let status = post_logout_token(&s.sidecar, &logout_token(&s.op, id, tweak));
    let alive = session_alive(&browser, &s.sidecar);
    let seen = format!(
        "{status}, session {}",
        if alive { "stays" } else { "ended" }
    );
    let good = match tweak {
        Tweak::None => status == 200 && !alive,
        _ => status == 400 && alive,
    };
    good.then(|| seen.clone()).ok_or(seen)
}

fn backchannel_replay(s: &Suite, id: &'static str) -> Result<String, String> {
    let (browser, page) = sign_in(&s.sidecar, id);
    if !page.sets_session() {
        return Err(outcome(&page));
    }
    let token = logout_token(&s.op, id, Tweak::None);
    let first = post_logout_token(&s.sidecar, &token);
    // Signed in again: the replay must not end the new session either.
    let (again, _) = sign_in(&s.sidecar, id);
    let second = post_logout_token(&s.sidecar, &token);
    let seen = format!("{first}, then {second}");
    (first == 200
        && second == 400
        && !session_alive(&browser, &s.sidecar)
        && session_alive(&again, &s.sidecar))
    .then(|| seen.clone())
    .ok_or(seen)
}

fn refresh(s: &Suite, id: &'static str, continues: bool) -> Result<String, String> {
    let (browser, page) = sign_in(&s.sidecar, id);
    if !page.sets_session() {
        return Err(outcome(&page));
    }
    // The access token lasts 5 s, less than oidc.min_access_token_lifetime_left: the
    // next request refreshes it.
    let next = browser.get(&s.sidecar.url("/account"));
    let refreshed = s.op.seen(id).refreshes > 0;
    let alive = session_alive(&browser, &s.sidecar);
    let seen = format!(
        "refreshed: {refreshed}, page {}, session {}",
        next.status,
        if alive { "continues" } else { "ended" }
    );
    let good = refreshed
        && match continues {
            true => next.status == 200 && alive,
            false => next.status == 302 && !alive,
        };
    good.then(|| seen.clone()).ok_or(seen)
}

#[test]
fn relying_party_conformance() {
    let cases = cases();
    let op = Op::start();
    let upstream = Upstream::start();
    let ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
    let sidecar = Sidecar::start(&config(&op, &ids, ""), &upstream.url());
    let permissive = Sidecar::start(
        &config(
            &op,
            &["rp-id_token-sig-none"],
            "accept_unsigned_tokens = true",
        ),
        &upstream.url(),
    );
    wait_discovered(&sidecar);
    wait_discovered(&permissive);
    let suite = Suite {
        op,
        sidecar,
        permissive,
        _upstream: upstream,
    };
    let mut table = String::from("| test id | plan | expected | result |\n|---|---|---|---|\n");
    let mut failed = Vec::new();
    for case in &cases {
        let result = (case.check)(&suite, case.id);
        let shown = match &result {
            Ok(seen) => format!("pass: {seen}"),
            Err(seen) => format!("**FAIL**: {seen}"),
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {shown} |\n",
            case.id, case.plan, case.expected
        ));
        if result.is_err() {
            failed.push(case.id);
        }
    }
    println!("\n{table}");
    if let Ok(path) = std::env::var("CONFORMANCE_TABLE") {
        std::fs::write(path, &table).unwrap();
    }
    let log = suite.sidecar.log();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("login failed")).collect();
    assert!(
        failed.is_empty(),
        "failed: {failed:?}\n{table}\n{}",
        failures.join("\n")
    );
}

/// Issue 27: an IdP whose HTTPS endpoints are signed by a private CA (Keycloak or ADFS in a
/// company network), here the test OP behind nginx with a certificate from a CA made in the
/// test. With `ca_file` every call (discovery, keys, token, userinfo) trusts it and the
/// sign-in completes; without it, discovery fails and no browser is sent there.
#[test]
fn an_idp_behind_a_private_ca_works_with_ca_file() {
    let pki = common::pki::Pki::new();
    let (cert, key) = pki.issue("idp", &["127.0.0.1"]);
    let tls_port = free_port();
    let op = Op::start_at(Some(format!("https://127.0.0.1:{tls_port}")));
    let _nginx = Nginx::start_servers_on(
        tls_port,
        &format!(
            "server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {}; ssl_certificate_key {};
               location / {{ proxy_pass http://{}; }} }}",
            cert, key, op.addr
        ),
    );
    let upstream = Upstream::start();
    let id = "rp-private-ca";
    let with_ca = config(&op, &[id], "").replace(
        "client_secret = \"conformance-rp-secret-0123456789abcdef\"",
        &format!(
            "client_secret = \"{CLIENT_SECRET}\"\nca_file = \"{}\"",
            pki.ca_path()
        ),
    );
    assert!(with_ca.contains("ca_file"));
    let sidecar = Sidecar::start(&with_ca, &upstream.url());
    sidecar.wait_idps_ready();
    // The person's browser trusts the company CA (as managed desktops do).
    let (browser, page) = sign_in_with(Browser::trusting(&pki.ca_pem), &sidecar, id);
    assert!(page.sets_session(), "{page:?}\n{}", sidecar.log());
    assert_eq!(userinfo_of(&browser, &sidecar)["subject"], SUBJECT);

    // The system's roots alone do not know the company CA.
    let without = Sidecar::start(&config(&op, &[id], ""), &upstream.url());
    wait_discovered(&without);
    let (_, page) = sign_in(&without, id);
    assert_eq!(page.status, 503, "{page:?}");
}
