//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and with `admin.token` the
//! admin API (`/admin/sessions`, see `docs/openapi/admin.yaml`). Kept off the public port
//! so probes, scrapes and support tools never mix with shop traffic.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{header, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::auth::LoadState;
use crate::proxy::Served;

pub struct AdminApp {
    current: Arc<ArcSwap<Served>>,
}

impl AdminApp {
    pub fn new(current: Arc<ArcSwap<Served>>) -> Self {
        AdminApp { current }
    }

    fn answer(&self, path: &str) -> (StatusCode, &'static str, String) {
        let rt = self.current.load();
        match path {
            "/healthz" => (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "ok\n".to_owned(),
            ),
            "/readyz" => {
                // Ready once the config is loaded and, with Redis, the first load of the
                // kept revocations has ended (loaded, or failed and retried later): an
                // IdP that is down must not take the public pages and existing sessions
                // out of the load balancer, but a replica must not take traffic while it
                // would still accept every session revoked elsewhere.
                let revocations = rt.auth.revocations_state();
                let ready = revocations != LoadState::Loading;
                let body = serde_json::json!({
                    "ready": ready,
                    "config": rt.config.source.display().to_string(),
                    "revocations": revocations.as_str(),
                    "identity_providers": rt.auth.registry.report(),
                });
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (status, "application/json", format!("{body}\n"))
            }
            "/metrics" => {
                take_in_edge_counts(&rt.metrics);
                (
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    rt.metrics.render(),
                )
            }
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n".to_owned(),
            ),
        }
    }
}

/// The refusals and open connections the patched pingora-core counts: it refuses heads
/// and connections before any phase of ours runs.
fn take_in_edge_counts(metrics: &crate::metrics::Metrics) {
    use pingora::protocols::http::v1::head_limits::{self, Refusal};
    let (over_total, over_per_client) = pingora::connection_limits::refused();
    let refused: Vec<(&str, u64)> = Refusal::ALL
        .map(|reason| (reason.as_str(), head_limits::refused(reason)))
        .into_iter()
        .chain([
            ("max_connections", over_total),
            ("max_connections_per_client", over_per_client),
        ])
        .collect();
    metrics.take_in_edge_counts(&refused, pingora::connection_limits::open() as u64);
}

/// The admin API's request bodies are small JSON documents.
const MAX_ADMIN_BODY: usize = 16 * 1024;

impl AdminApp {
    /// `/admin/*`: only with the configured bearer token (compared in constant time).
    async fn admin_api(&self, session: &mut ServerSession) -> (StatusCode, &'static str, String) {
        let rt = self.current.load_full();
        let json = "application/json";
        let Some(token) = rt.config.admin.token.as_ref() else {
            return (
                StatusCode::NOT_FOUND,
                json,
                "{\"error\":\"not_found\"}\n".to_owned(),
            );
        };
        let req = session.req_header();
        let offered = (req.headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        use subtle::ConstantTimeEq as _;
        if !bool::from(offered.as_bytes().ct_eq(token.expose().as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                json,
                "{\"error\":\"unauthorized\"}\n".to_owned(),
            );
        }
        let (method, path) = (req.method.clone(), req.uri.path().to_owned());
        let query = req.uri.query().unwrap_or("").to_owned();
        let now = chrono::Utc::now().timestamp();
        match (method.as_str(), path.as_str()) {
            ("GET", "/admin/sessions") => {
                let params: std::collections::HashMap<String, String> =
                    form_urlencoded::parse(query.as_bytes())
                        .into_owned()
                        .collect();
                let Some(subject) = params.get("subject").filter(|s| !s.is_empty()) else {
                    return bad_request("subject is required");
                };
                let who = crate::auth::SubjectFilter {
                    subject,
                    organization: params.get("organization").map(String::as_str),
                    identity_provider: params.get("identity_provider").map(String::as_str),
                };
                let found = rt.auth.sessions_of(&who, now).await;
                let body = serde_json::json!({ "sessions": found });
                (StatusCode::OK, json, format!("{body}\n"))
            }
            ("POST", "/admin/sessions/revoke") => {
                let Some(body) = read_body(session).await else {
                    return bad_request("the body must be JSON of at most 16 KiB");
                };
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Revoke {
                    subject: String,
                    organization: Option<String>,
                    identity_provider: Option<String>,
                }
                let order: Revoke = match serde_json::from_slice(&body) {
                    Ok(order) => order,
                    Err(error) => return bad_request(&error.to_string()),
                };
                if order.subject.is_empty() {
                    return bad_request("subject is required");
                }
                let who = crate::auth::SubjectFilter {
                    subject: &order.subject,
                    organization: order.organization.as_deref(),
                    identity_provider: order.identity_provider.as_deref(),
                };
                let ended = rt.auth.end_sessions_of(&who, now).await;
                (
                    StatusCode::OK,
                    json,
                    format!("{}\n", serde_json::json!({ "ended": ended })),
                )
            }
            _ => (
                StatusCode::NOT_FOUND,
                json,
                "{\"error\":\"not_found\"}\n".to_owned(),
            ),
        }
    }
}

fn bad_request(description: &str) -> (StatusCode, &'static str, String) {
    let body = serde_json::json!({"error": "invalid_request", "error_description": description});
    (
        StatusCode::BAD_REQUEST,
        "application/json",
        format!("{body}\n"),
    )
}

/// The request body, `None` when it is larger than [`MAX_ADMIN_BODY`] or cannot be read.
async fn read_body(session: &mut ServerSession) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ADMIN_BODY => {
                body.extend_from_slice(&chunk)
            }
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => return Some(body),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        let (status, content_type, body) = match path.starts_with("/admin/") {
            true => self.admin_api(session).await,
            false => self.answer(&path),
        };
        let body = body.into_bytes();
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::CACHE_CONTROL, "no-store")
            .body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
