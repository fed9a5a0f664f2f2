//! The shipped ICM configuration (`conf/sidecar.toml`) end to end (issue 16): its
//! organizations, IdPs and routes, with the issuers pointed at test providers, in front of
//! a fake ICM.
//!
//! ICM cannot run here. `FakeIcm` mimics what the ICM SSO concept describes and the
//! sidecar relies on: ICM has its own back-office login (`ViewApplication-Login`) for
//! `local` users and keeps them signed in with its own session cookie; an unauthenticated
//! back-office request is redirected to that login page; a request that carries the SSO
//! identity (here the sidecar's `X-SSO-Subject`) is an SSO user; the login page offers
//! single sign-on through the sidecar's `/oauth2/start`.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use serde_json::json;

const LOGIN: &str = "/INTERSHOP/web/WFS/SLDSystem/en_US/-/-/ViewApplication-Login";
const OVERVIEW: &str = "/INTERSHOP/web/WFS/SLDSystem/en_US/-/-/ViewOverview-Start";

/// What the back office saw of one request: `X-SSO-Subject` and ICM's own local user.
type Visit = (Option<String>, Option<String>);

#[derive(Clone, Default)]
struct FakeIcm {
    seen: Arc<Mutex<Vec<Visit>>>,
}

async fn login_page() -> impl IntoResponse {
    (
        [("content-type", "text/html")],
        format!(
            "<form method=post action=\"{LOGIN}\"><input name=user></form>\
             <a id=sso href=\"/oauth2/start?org=Operations&idp=oidc_kc_1&rd={OVERVIEW}\">Single sign-on</a>"
        ),
    )
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
}

async fn local_login(Form(form): Form<LoginForm>) -> Response {
    (
        StatusCode::FOUND,
        [
            ("location", OVERVIEW.to_owned()),
            ("set-cookie", format!("icm_local={}; Path=/", form.user)),
        ],
    )
        .into_response()
}

async fn back_office(State(icm): State<FakeIcm>, headers: HeaderMap) -> Response {
    let sso = headers
        .get("x-sso-subject")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let local = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split("; ").find_map(|p| p.strip_prefix("icm_local=")))
        .map(str::to_owned);
    icm.seen.lock().unwrap().push((sso.clone(), local.clone()));
    match (sso, local) {
        (Some(user), _) => format!("back office: SSO user {user}").into_response(),
        (None, Some(user)) => format!("back office: local user {user}").into_response(),
        (None, None) => (StatusCode::FOUND, [("location", LOGIN)]).into_response(),
    }
}

struct RunningIcm {
    url: String,
    icm: FakeIcm,
    _runtime: tokio::runtime::Runtime,
}

fn start_icm() -> RunningIcm {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let icm = FakeIcm::default();
    let app = axum::Router::new()
        .route(LOGIN, get(login_page).post(local_login))
        .fallback(back_office)
        .with_state(icm.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    RunningIcm {
        url,
        icm,
        _runtime: runtime,
    }
}

/// `conf/sidecar.toml` with test addresses and issuers; nothing else changed.
fn shipped_config(kc: &Idp, ad: &Idp) -> String {
    let text = std::fs::read_to_string(repo_root().join("conf/sidecar.toml")).unwrap();
    let replaced = text
        .replace("listen = \"0.0.0.0:8080\"", "listen = \"{listen}\"")
        .replace("listen = \"127.0.0.1:9090\"", "listen = \"{admin}\"")
        .replace(
            "upstream = \"http://127.0.0.1:9000\"",
            "upstream = \"{upstream}\"",
        )
        .replace(
            "public_url = \"https://shop.example.com\"",
            "public_url = \"{public_url}\"",
        )
        .replace("secure = true", "secure = false")
        .replace(
            "https://keycloak-local.ad.intershop.net:8443/auth/realms/ICM",
            &kc.issuer,
        )
        .replace(
            "https://login.microsoftonline.com/43566bc5-e954-4049-909f-76ce0392de31/v2.0",
            &ad.issuer,
        )
        .replace(
            "https://login.microsoftonline.com/e9cf2bf0-d510-4293-8985-f809eea95f3a/v2.0",
            &ad.issuer,
        );
    assert!(replaced.contains(&kc.issuer) && replaced.contains("{listen}"));
    replaced
}

fn client_for(id: &str, ports: Ports) -> serde_json::Value {
    json!({
        "client_id": id,
        "client_secret": "test-secret",
        "redirect_uris": [ports.callback()],
        "post_logout_redirect_uris": [format!("{}/", ports.origin())],
    })
}

#[test]
fn shipped_icm_config_serves_local_and_sso_users_without_loops() {
    let ports = Ports::new();
    let icm = start_icm();
    let kc = Idp::start(json!({
        "issuerPath": "/auth/realms/ICM",
        "clients": [client_for("ICM", ports)],
        "users": {"olga": {"email": "olga@intershop.com"}},
    }));
    let ad = Idp::start(json!({
        "issuerPath": "/tenant/v2.0",
        "azure": true,
        "clients": [
            client_for("24b5f295-e171-4d8e-9f27-212f645641fa", ports),
            client_for("62c5af81-d09d-4967-a42d-212f645641fa", ports),
        ],
    }));
    let secrets = [
        ("SSO_SESSION_KEY", SESSION_KEY),
        ("OIDC_AD_1_SECRET", "test-secret"),
        ("OIDC_AD_2_SECRET", "test-secret"),
        ("OIDC_KC_1_SECRET", "test-secret"),
        ("OIDC_KC_2_SECRET", "test-secret"),
    ];
    let config = shipped_config(&kc, &ad);
    let (code, _, stderr) = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("icm.toml");
        std::fs::write(
            &path,
            config
                .replace("{listen}", "127.0.0.1:1")
                .replace("{admin}", "127.0.0.1:2")
                .replace("{upstream}", &icm.url)
                .replace("{public_url}", &ports.origin()),
        )
        .unwrap();
        run_cli(
            &["check", "-c", path.to_str().unwrap()],
            &secrets,
            &repo_root(),
        )
    };
    assert_eq!(code, 0, "the shipped config checks: {stderr}");
    let sidecar = Sidecar::start_on(ports, &config, &icm.url, &secrets);
    sidecar.wait_idps_ready();

    // A local user: ICM sends them to its own login, which the sidecar lets through.
    let local = Browser::new();
    let page = local.follow(local.get(&sidecar.url(OVERVIEW)));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.url.ends_with(LOGIN), "{page:?}");
    assert!(page.body.contains("Single sign-on"));
    let signed_in =
        local.follow(local.post_form(&sidecar.url(LOGIN), &[("user".into(), "max".into())]));
    assert_eq!(signed_in.status, 200);
    assert_eq!(signed_in.body, "back office: local user max");

    // An SSO user, from the link on ICM's login page.
    let sso = Browser::new();
    let to_idp = sso.get(&sidecar.url(&format!(
        "/oauth2/start?org=Operations&idp=oidc_kc_1&rd={OVERVIEW}"
    )));
    assert_eq!(to_idp.status, 302, "{to_idp:?}");
    let callback = sso.sign_in_at_idp(to_idp, "olga", &sidecar.url("/"));
    let page = sso.follow(sso.get(&callback));
    assert_eq!(page.status, 200, "{page:?}\n{}", sidecar.log());
    assert_eq!(page.body, "back office: SSO user olga");

    // "Shop account" on the sidecar's login page hands over to ICM's login: no loop.
    let chooser = Browser::new();
    let page =
        chooser.follow(chooser.get(&sidecar.url("/oauth2/start?org=Intershop&idp=localICM")));
    assert_eq!(page.status, 200);
    assert!(page.url.ends_with(LOGIN), "{page:?}");

    // A stale session cookie on the optional back office: anonymous, and the cookie goes.
    let stale = client()
        .get(sidecar.url(OVERVIEW))
        .header("Cookie", "_sso_session=garbage; icm_local=max")
        .header("X-SSO-Subject", "forged")
        .send()
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert!(stale
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("_sso_session=;")));
    assert_eq!(stale.text().unwrap(), "back office: local user max");
    // The example's client secrets expired in 2024: said at start and as a metric.
    assert!(
        sidecar.metric("sso_sidecar_client_secret_expires_in_seconds{idp=\"oidc_kc_1\"}") < 0.0
    );
    sidecar.log_containing("the client secret expires soon or has expired");
    let seen = icm.icm.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|(sso, local)| sso.as_deref() != Some("forged")
                && !(sso.is_some() && local.is_some())),
        "{seen:?}"
    );
}
