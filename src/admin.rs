//! The admin listener: `/healthz`, `/readyz`, `/metrics`. Kept off the public port so
//! probes and scrapes never mix with shop traffic.

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

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, content_type, body) = self.answer(session.req_header().uri.path());
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
