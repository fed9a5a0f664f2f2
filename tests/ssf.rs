//! Shared Signals (issue 33): a transmitter pushes Security Event Tokens (RFC 8935) to
//! `/oauth2/ssf/events`; CAEP and RISC events that end a person's sessions end them at once,
//! bearer tokens too. The transmitter here is a small fake from the specifications (OpenID
//! SSF 1.0, CAEP, RISC, RFC 8417, RFC 9493 subjects): it signs with `jose` in Node.js, not
//! with the sidecar's JWT library, and serves its key set over HTTP.

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

[organizations.Shop]
external_name = "Shop"
identity_providers = ["kc"]

[[ssf.transmitters]]
issuer = "https://ssf.idp.example"
jwks_uri = "{jwks_uri}"
audience = "https://shop.example/ssf"

[[routes]]
path_prefix = "/"
auth = "required"
"#;

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";

#[test]
fn caep_and_risc_events_end_sessions_and_forged_ones_end_nothing() {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({}));
    let now = chrono::Utc::now().timestamp();
    let event = |jti: &str, kind: &str, sub: &str| {
        json!({
            "iss": "https://ssf.idp.example",
            "aud": "https://shop.example/ssf",
            "iat": now,
            "jti": jti,
            "sub_id": {"format": "iss_sub", "iss": idp.issuer, "sub": sub},
            "events": {kind: {"event_timestamp": now}},
        })
    };
    let session_revoked = event("e1", &format!("{CAEP}session-revoked"), "ann");
    let mut wrong_audience = event("e2", &format!("{CAEP}session-revoked"), "bob");
    wrong_audience["aud"] = json!("https://another.example/ssf");
    let mut unknown_issuer = event("e3", &format!("{CAEP}session-revoked"), "bob");
    unknown_issuer["iss"] = json!("https://evil.example");
    let mut stale = event("e4", &format!("{CAEP}session-revoked"), "bob");
    stale["iat"] = json!(now - 7200);
    let disabled = event("e5", &format!("{RISC}account-disabled"), "bob");
    let ignored = event("e6", &format!("{CAEP}assurance-level-change"), "carol");
    let signed = run_node(
        "set-transmitter.mjs",
        &json!({"tokens": [
            {"claims": session_revoked},
            {"claims": wrong_audience},
            {"claims": unknown_issuer},
            {"claims": stale},
            {"claims": event("e7", &format!("{CAEP}session-revoked"), "bob"), "foreignKey": true},
            {"claims": event("e8", &format!("{CAEP}session-revoked"), "bob"), "typ": "JWT"},
            {"claims": disabled},
            {"claims": ignored},
        ]}),
    );
    let tokens: Vec<String> = serde_json::from_value(signed["tokens"].clone()).unwrap();
    let jwks = signed["jwks"].clone();
    let (jwks_addr, _jwks_server) = serve(axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    ));
    let upstream = Upstream::start();
    let sidecar = Sidecar::start_on(
        ports,
        &CONFIG
            .replace("{issuer}", &idp.issuer)
            .replace("{jwks_uri}", &format!("http://{jwks_addr}/jwks")),
        &upstream.url(),
        &[],
    );
    sidecar.wait_idps_ready();
    let signed_in = |user: &str| {
        let browser = Browser::new();
        let to_idp = browser.get(&sidecar.url("/oauth2/start?rd=%2Faccount"));
        let callback = browser.sign_in_at_idp(to_idp, user, &sidecar.url("/"));
        assert_eq!(browser.follow(browser.get(&callback)).status, 200);
        browser
    };
    let still_in = |browser: &Browser| browser.get(&sidecar.url("/account")).status == 200;
    let push = |token: &str, content_type: &str| {
        let response = client()
            .post(sidecar.url("/oauth2/ssf/events"))
            .header("Content-Type", content_type)
            .body(token.to_owned())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    let ann = signed_in("ann");
    let bob = signed_in("bob");
    let carol = signed_in("carol");
    let secevent = "application/secevent+jwt";

    // CAEP session-revoked: ann is out at her next request; bob is not touched.
    assert_eq!(push(&tokens[0], secevent), (202, serde_json::Value::Null));
    assert!(!still_in(&ann));
    assert!(still_in(&bob));
    // The same event again is a replay.
    assert_eq!(push(&tokens[0], secevent).1["err"], "invalid_request");

    // Refused, each with its RFC 8935 code, and bob stays signed in.
    assert_eq!(push(&tokens[1], secevent).1["err"], "invalid_audience");
    assert_eq!(push(&tokens[2], secevent).1["err"], "invalid_issuer");
    assert_eq!(push(&tokens[3], secevent).1["err"], "invalid_request");
    let forged = push(&tokens[4], secevent);
    assert_eq!(
        (forged.0, forged.1["err"].as_str()),
        (400, Some("invalid_key")),
        "{forged:?}"
    );
    assert_eq!(
        push(&tokens[5], secevent).1["err"],
        "invalid_request",
        "typ is not secevent+jwt"
    );
    assert_eq!(
        push(&tokens[6], "application/jwt").1["err"],
        "invalid_request"
    );
    assert!(still_in(&bob));

    // RISC account-disabled: bob is out.
    assert_eq!(push(&tokens[6], secevent).0, 202);
    assert!(!still_in(&bob));
    // An event kind this receiver does not act on is taken and ends nothing.
    assert_eq!(push(&tokens[7], secevent).0, 202);
    assert!(still_in(&carol));
}
