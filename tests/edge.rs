//! At the edge (issue 19): CORS preflights from a storefront on another origin, with
//! Debian's Chromium making the cross-origin requests.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
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

[identity_providers.ad]
type = "oidc"
name = "Azure AD"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"
audiences = ["api://shop"]

[organizations.Shoppers]
external_name = "Shoppers"
identity_providers = ["ad"]

[[routes]]
path_prefix = "/api/strict/"
auth = "api"
preflight = "deny"

[[routes]]
path_prefix = "/api/"
auth = "api"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

/// Requests the CORS-aware backend saw: method, path, and the identity it was given.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// A backend that owns its CORS policy, as a headless shop's API does: it allows the
/// storefront's origin with credentials and answers preflights itself.
fn cors_backend(storefront: String, seen: Seen) -> (SocketAddr, tokio::runtime::Runtime) {
    let app = axum::Router::new().fallback(move |req: Request| {
        let (storefront, seen) = (storefront.clone(), seen.clone());
        async move {
            let subject = req
                .headers()
                .get("x-sso-subject")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            seen.lock().unwrap().push((
                req.method().to_string(),
                req.uri().path().to_owned(),
                subject.clone(),
            ));
            let mut headers = HeaderMap::new();
            headers.insert(
                "access-control-allow-origin",
                HeaderValue::from_str(&storefront).unwrap(),
            );
            headers.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
            if req.method() == Method::OPTIONS {
                headers.insert(
                    "access-control-allow-methods",
                    HeaderValue::from_static("PUT"),
                );
                headers.insert(
                    "access-control-allow-headers",
                    HeaderValue::from_static("authorization, content-type"),
                );
                return (StatusCode::NO_CONTENT, headers).into_response();
            }
            (headers, axum::Json(json!({"subject": subject}))).into_response()
        }
    });
    serve(app)
}

/// The storefront's page: a cross-origin `PUT` with a bearer token and credentials, which
/// makes Chromium send a preflight first.
fn storefront_page(
    listener: std::net::TcpListener,
    api_url: String,
    token: String,
) -> tokio::runtime::Runtime {
    let page = format!(
        r#"<!doctype html><html><body><pre id="out">waiting</pre><script>
const urls = {urls};
(async () => {{
  const results = [];
  for (const url of urls) {{
    try {{
      const r = await fetch(url, {{method: "PUT", credentials: "include",
        headers: {{"Authorization": "Bearer {token}", "Content-Type": "application/json"}}, body: "{{}}"}});
      results.push(url + " -> " + r.status + " " + await r.text());
    }} catch (e) {{ results.push(url + " -> failed: " + e.message); }}
  }}
  document.getElementById("out").textContent = results.join("\n");
  const done = document.createElement("div"); done.id = "done"; document.body.appendChild(done);
}})();
</script></body></html>"#,
        urls = json!([
            format!("{api_url}/api/orders"),
            format!("{api_url}/api/strict/orders")
        ]),
    );
    let app = axum::Router::new().fallback(move || {
        let page = page.clone();
        async move { Html(page).into_response() as Response }
    });
    serve_on(listener, app)
}

#[test]
fn cors_preflights_reach_the_backend_without_identity_or_are_denied() {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({}));
    // Ports are known before the servers start: the storefront's origin goes into the
    // backend's CORS policy, the sidecar's into the page.
    let seen: Seen = Arc::default();
    let storefront = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let page = storefront.local_addr().unwrap();
    let storefront_origin = format!("http://{page}");
    let (backend, _backend_rt) = cors_backend(storefront_origin.clone(), seen.clone());
    let config = CONFIG.replace("{issuer}", &idp.issuer);
    let sidecar = Sidecar::start_on(ports, &config, &format!("http://{backend}"), &[]);
    sidecar.wait_idps_ready();
    let token = idp.sign(
        json!({"sub": "pwa-user", "aud": "api://shop", "exp": unix_now() + 600}),
        "valid",
    );
    let _page_rt = storefront_page(storefront, sidecar.url(""), token);

    let result = run_chromium(
        "browser-page.mjs",
        &json!({"url": format!("http://{page}/")}),
        &sidecar.log(),
    );
    let text = result["text"].as_str().unwrap();
    assert!(
        text.contains("/api/orders -> 200 {\"subject\":\"pwa-user\"}"),
        "the real request went through with the identity: {text}"
    );
    assert!(
        text.contains("/api/strict/orders -> failed"),
        "a denied preflight stops the request: {text}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&("OPTIONS".into(), "/api/orders".into(), None)),
        "preflight forwarded without identity: {seen:?}"
    );
    assert!(seen.contains(&("PUT".into(), "/api/orders".into(), Some("pwa-user".into()))));
    assert!(
        seen.iter().all(|(_, path, _)| path != "/api/strict/orders"),
        "neither the denied preflight nor its request reached the backend: {seen:?}"
    );

    // A forged preflight cannot smuggle identity: no token is checked, none is forwarded.
    let forged = client()
        .request(reqwest::Method::OPTIONS, sidecar.url("/api/orders"))
        .header("Origin", &storefront_origin)
        .header("Access-Control-Request-Method", "PUT")
        .header("X-SSO-Subject", "admin")
        .send()
        .unwrap();
    assert_eq!(forged.status(), 204);
    let denied = client()
        .request(reqwest::Method::OPTIONS, sidecar.url("/api/strict/orders"))
        .header("Origin", &storefront_origin)
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .unwrap();
    assert_eq!(denied.status(), 403);
    // A plain OPTIONS (not a preflight) still needs a token.
    let plain = client()
        .request(reqwest::Method::OPTIONS, sidecar.url("/api/orders"))
        .send()
        .unwrap();
    assert_eq!(plain.status(), 401);
}

/// One IdP and one protected prefix, `{protected}`; `{session_extra}` adds session settings.
const SIGNED_IN_CONFIG: &str = r#"
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
{session_extra}

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.Operations]
external_name = "Operations"
identity_providers = ["kc"]

[[routes]]
path_prefix = "{protected}"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

/// A sidecar with [`SIGNED_IN_CONFIG`] in front of `upstream`, its IdP discovered.
fn signed_in_sidecar(
    ports: Ports,
    idp: &Idp,
    session_extra: &str,
    protected: &str,
    upstream: SocketAddr,
) -> Sidecar {
    let config = SIGNED_IN_CONFIG
        .replace("{issuer}", &idp.issuer)
        .replace("{session_extra}", session_extra)
        .replace("{protected}", protected);
    let sidecar = Sidecar::start_on(ports, &config, &format!("http://{upstream}"), &[]);
    sidecar.wait_idps_ready();
    sidecar
}

/// A real WebSocket upstream (axum + tungstenite): it first tells who the sidecar said the
/// user is, then echoes every message, and pushes one of its own after a pause.
fn websocket_upstream() -> (SocketAddr, tokio::runtime::Runtime) {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    let app = axum::Router::new().route(
        "/live/ws",
        axum::routing::get(|ws: WebSocketUpgrade, headers: HeaderMap| async move {
            let subject = headers
                .get("x-sso-subject")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nobody")
                .to_owned();
            ws.on_upgrade(move |mut socket| async move {
                let _ = socket
                    .send(Message::Text(format!("hello {subject}").into()))
                    .await;
                while let Some(Ok(message)) = socket.recv().await {
                    if let Message::Text(text) = message {
                        let reply = format!("echo: {}", text.as_str());
                        if socket.send(Message::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                }
            })
        }),
    );
    serve(app)
}

/// A WebSocket client handshake to the sidecar with `cookie`.
fn open_socket(
    sidecar: &Sidecar,
    cookie: Option<&str>,
) -> Result<
    tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    tungstenite::Error,
> {
    use tungstenite::client::IntoClientRequest;
    let url = sidecar.url("/live/ws").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Accept", HeaderValue::from_static("text/html"));
    if let Some(cookie) = cookie {
        request.headers_mut().insert(
            "Cookie",
            HeaderValue::from_str(&format!("_sso_session={cookie}")).unwrap(),
        );
    }
    tungstenite::connect(request).map(|(socket, _)| socket)
}

#[test]
fn websockets_on_required_routes_carry_identity_or_get_401() {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(ports, json!({}));
    let (upstream, _upstream_rt) = websocket_upstream();
    let sidecar = signed_in_sidecar(ports, &idp, "max_age = \"3s\"", "/live/", upstream);

    // Without a session: 401, never a redirect (even asking for HTML).
    match open_socket(&sidecar, None) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| "a socket")),
    }

    let browser = Browser::new();
    let to_idp = browser.get(&format!(
        "{}?org=Operations&rd=%2Flive%2F",
        sidecar.url("/oauth2/start")
    ));
    let callback = browser.sign_in_at_idp(to_idp, "agent", &sidecar.url("/"));
    assert_eq!(browser.get(&callback).status, 302);
    let cookie = browser.cookie(&sidecar.url("/"), "_sso_session").unwrap();

    let mut socket = open_socket(&sidecar, Some(&cookie)).expect("upgrade with a session");
    let read_text = |socket: &mut tungstenite::WebSocket<_>| loop {
        match socket.read().unwrap() {
            tungstenite::Message::Text(text) => return text.to_string(),
            _ => continue,
        }
    };
    assert_eq!(
        read_text(&mut socket),
        "hello agent",
        "identity checked at the upgrade"
    );
    socket
        .send(tungstenite::Message::Text("ping 1".into()))
        .unwrap();
    assert_eq!(read_text(&mut socket), "echo: ping 1");

    // The session runs out (max_age 3 s) while the socket is open: the socket stays, as
    // the identity was checked once, at the upgrade.
    std::thread::sleep(Duration::from_millis(3500));
    socket
        .send(tungstenite::Message::Text("ping 2".into()))
        .unwrap();
    assert_eq!(read_text(&mut socket), "echo: ping 2");
    // A new socket with the ended session is refused.
    match open_socket(&sidecar, Some(&cookie)) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| "a socket")),
    }
    let _ = socket.close(None);
}

/// Forms the back office saved: (subject, fields).
type Saved = Arc<Mutex<Vec<(Option<String>, Vec<(String, String)>)>>>;

/// A back office: a public page with a product form, and the protected place it posts to.
fn back_office(saved: Saved) -> (SocketAddr, tokio::runtime::Runtime) {
    let form = r#"<!doctype html><html><body>
<form method="post" action="/backoffice/products/42?tab=text">
<textarea name="description"></textarea><input name="note"><button type="submit">Save</button>
</form></body></html>"#;
    let app = axum::Router::new()
        .route(
            "/form",
            axum::routing::get(move || async move { Html(form) }),
        )
        .route(
            "/backoffice/products/42",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let saved = saved.clone();
                async move {
                    let subject = headers
                        .get("x-sso-subject")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let fields: Vec<(String, String)> = form_urlencoded::parse(&body)
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    saved.lock().unwrap().push((subject.clone(), fields));
                    Html(format!(
                        "<!doctype html><p>saved for {}</p><div id=\"done\"></div>",
                        subject.unwrap_or_default()
                    ))
                }
            }),
        );
    serve(app)
}

/// The back office behind a signed-in sidecar (`/backoffice/` required) with its IdP.
struct BackOffice {
    ports: Ports,
    sidecar: Sidecar,
    _idp: Idp,
    _backend: tokio::runtime::Runtime,
}

impl BackOffice {
    fn start(saved: Saved) -> Self {
        let ports = Ports::new();
        let idp = Idp::for_sidecar(ports, json!({}));
        let (backend, runtime) = back_office(saved);
        let sidecar = signed_in_sidecar(ports, &idp, "", "/backoffice/", backend);
        BackOffice {
            ports,
            sidecar,
            _idp: idp,
            _backend: runtime,
        }
    }
}

/// Issue 19: a back-office user whose session ran out while filling in a form used to
/// lose it at the sign-in. Now the form is kept and posted again after the sign-in.
#[test]
fn a_form_sent_without_a_session_survives_the_sign_in() {
    let saved: Saved = Arc::default();
    let office = BackOffice::start(saved.clone());
    let sidecar = &office.sidecar;

    let description = "Größe: 10 < 20 & \"robust\"\nzweite Zeile";
    let job = json!({
        "url": sidecar.url("/form"),
        "fields": {"description": description, "note": "urgent"},
        "org": "Operations",
        "user": "editor",
    });
    let result = run_chromium("browser-form.mjs", &job, &sidecar.log());
    assert_eq!(
        result["url"],
        sidecar.url("/backoffice/products/42?tab=text")
    );
    assert!(result["text"]
        .as_str()
        .unwrap()
        .contains("saved for editor"));
    let saved = saved.lock().unwrap().clone();
    assert_eq!(saved.len(), 1, "posted once, after the sign-in: {saved:?}");
    assert_eq!(saved[0].0.as_deref(), Some("editor"));
    assert_eq!(
        saved[0].1,
        vec![
            ("description".to_owned(), description.replace('\n', "\r\n")),
            ("note".to_owned(), "urgent".to_owned())
        ]
    );

    // Other bodies are not kept: JSON without a session gets 401, no redirect.
    let json_post = client()
        .post(sidecar.url("/backoffice/products/42"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(json_post.status(), 401);
}

/// Issue 26: a form `POST` from another site was kept and, after a silent sign-in, posted
/// again same-origin with the victim's identity (a cross-site request forgery past the
/// `SameSite=Lax` cookie). Now only a form the browser says came from this site is kept;
/// any other gets the sign-in, then the page by `GET`, and the backend never sees it.
#[test]
fn a_form_from_another_site_is_never_replayed_after_the_sign_in() {
    let saved: Saved = Arc::default();
    let office = BackOffice::start(saved.clone());
    let (ports, sidecar) = (office.ports, &office.sidecar);
    let target = sidecar.url("/backoffice/products/42?tab=text");
    let fields = vec![("description".to_owned(), "pwned".to_owned())];

    let cross_site: &[&[(&str, &str)]] = &[
        &[
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        // Fetch Metadata wins over an Origin that looks like ours.
        &[("Origin", &ports.origin()), ("Sec-Fetch-Site", "same-site")],
        // Without Fetch Metadata: another origin, or nothing that says where it came from.
        &[("Origin", "http://evil.example")],
        &[("Origin", "null")],
        &[("Referer", "http://evil.example/?http://127.0.0.1/")],
        &[],
    ];
    for headers in cross_site {
        let browser = Browser::new();
        let answer = browser.post_form_with(&target, &fields, headers);
        assert_eq!(answer.status, 303, "{headers:?}: {answer:?}");
        assert!(
            !answer
                .set_cookies
                .iter()
                .any(|c| c.starts_with("_sso_session_form=")),
            "{headers:?}: the form was kept: {:?}",
            answer.set_cookies
        );
        let at_idp = browser.follow(answer);
        let callback = browser.sign_in_at_idp(at_idp, "editor", &ports.origin());
        let landed = browser.get(&callback);
        assert_eq!(landed.status, 302, "{headers:?}: {landed:?}");
        assert_eq!(
            landed.location.as_deref(),
            Some("/backoffice/products/42?tab=text")
        );
        assert!(!landed.body.contains("Sending your form"), "{headers:?}");
    }
    assert!(
        saved.lock().unwrap().is_empty(),
        "{:?}",
        saved.lock().unwrap()
    );
    assert_eq!(
        sidecar.metric("sso_sidecar_kept_forms_dropped_total{reason=\"cross_site\"}"),
        cross_site.len() as f64
    );

    // From this site (Fetch Metadata, or Origin / Referer on server.public_url) it is kept.
    let own_site: &[&[(&str, &str)]] = &[
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", &ports.origin()),
        ],
        &[("Origin", &ports.origin())],
        &[("Referer", &sidecar.url("/form"))],
    ];
    for headers in own_site {
        let browser = Browser::new();
        let answer = browser.post_form_with(&target, &fields, headers);
        assert_eq!(answer.status, 303, "{headers:?}: {answer:?}");
        let at_idp = browser.follow(answer);
        let callback = browser.sign_in_at_idp(at_idp, "editor", &ports.origin());
        let landed = browser.get(&callback);
        assert_eq!(landed.status, 200, "{headers:?}: {landed:?}");
        assert!(landed.body.contains("Sending your form"), "{headers:?}");
    }
}

/// Issue 26: the auto-submitting page is served only to the sign-in that kept the form. A
/// sign-in this browser had started before (another tab, same page) finishes without it.
#[test]
fn a_kept_form_goes_only_to_the_sign_in_started_for_it() {
    let office = BackOffice::start(Arc::default());
    let (ports, sidecar) = (office.ports, &office.sidecar);
    let target = sidecar.url("/backoffice/products/42?tab=text");
    let browser = Browser::new();

    // Tab one: opens the page, is sent to the IdP, and waits there.
    let first = browser.follow(browser.get(&target));
    // Tab two: posts the form (kept), and its own sign-in starts.
    let fields = vec![("description".to_owned(), "x".to_owned())];
    let origin = ports.origin();
    let posted = browser.post_form_with(&target, &fields, &[("Origin", &origin)]);
    assert_eq!(posted.status, 303);
    let second = browser.follow(posted);

    // Tab one's sign-in finishes: no form for it.
    let callback = browser.sign_in_at_idp(first, "editor", &origin);
    let landed = browser.get(&callback);
    assert_eq!(landed.status, 302, "{landed:?}");
    // Tab two's finishes with the form.
    let callback = browser.sign_in_at_idp(second, "editor", &origin);
    let landed = browser.get(&callback);
    assert_eq!(landed.status, 200, "{landed:?}");
    assert!(landed.body.contains("Sending your form"));
}
