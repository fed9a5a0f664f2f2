//! Prometheus metrics in the `sso_sidecar_` namespace, served by the admin listener.
//!
//! Label combinations on the request path are resolved once here, so recording a request
//! is an atomic add and not a label lookup under a lock.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::routing::RouteKind;

/// Why forwarding to the upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    ConnectRefused,
    ConnectTimeout,
    ReadTimeout,
    Other,
}

impl UpstreamFailure {
    const ALL: [UpstreamFailure; 4] = [
        UpstreamFailure::ConnectRefused,
        UpstreamFailure::ConnectTimeout,
        UpstreamFailure::ReadTimeout,
        UpstreamFailure::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::ConnectRefused => "connect_refused",
            UpstreamFailure::ConnectTimeout => "connect_timeout",
            UpstreamFailure::ReadTimeout => "read_timeout",
            UpstreamFailure::Other => "other",
        }
    }
}

/// The registry while metrics are being registered, noting each family's name: Prometheus
/// only lists families once they have a series, and the chart's alert rules and dashboard
/// are checked against all of them.
struct Families {
    registry: Registry,
    names: std::cell::RefCell<Vec<String>>,
}

impl Families {
    fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        // The registry adds its namespace when it gathers; the descriptors lack it.
        let names = collector
            .desc()
            .iter()
            .map(|d| format!("{NAMESPACE}_{}", d.fq_name))
            .collect::<Vec<_>>();
        self.registry.register(collector)?;
        self.names.borrow_mut().extend(names);
        Ok(())
    }
}

const NAMESPACE: &str = "sso_sidecar";

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

pub struct Metrics {
    registry: Registry,
    /// Every metric family's full name (`sso_sidecar_…`), whether it has series yet or not.
    families: Vec<String>,
    /// `[route kind][status class]`
    requests: Vec<[IntCounter; 6]>,
    upstream_latency: Vec<Histogram>,
    upstream_failures: [IntCounter; 4],
    pub config_reloads: IntCounterVec,
    pub client_secret_expiry: IntGaugeVec,
    pub client_secret_expires_in: IntGaugeVec,
    idp_calls: HistogramVec,
    discovery: IntCounterVec,
    logins_started: IntCounterVec,
    logins_completed: IntCounterVec,
    logins_failed: IntCounterVec,
    session_cookie_bytes: Histogram,
    sessions_rejected: IntCounterVec,
    scopes_dropped: IntCounter,
    introspections_late: IntCounterVec,
    /// Request heads refused while being read (by the patched pingora-core), by reason.
    requests_refused: IntCounterVec,
    client_connections_open: prometheus::IntGauge,
    tls_certificate_expires_at: prometheus::IntGauge,
    requests_denied: IntCounterVec,
    key_refetches: IntCounterVec,
    refreshes: IntCounterVec,
    refresh_coalesced: IntCounterVec,
    sessions_ended: IntCounterVec,
    logouts: IntCounterVec,
    backchannel: IntCounterVec,
    backend_calls: IntCounterVec,
    store_errors: IntCounterVec,
    forms_dropped: IntCounterVec,
}

fn counter_vec(registry: &Families, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn histogram_vec(
    registry: &Families,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
    labels: &[&str],
) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("static metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn gauge_vec(registry: &Families, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Families {
            registry: Registry::new_custom(Some(NAMESPACE.to_owned()), None)
                .expect("static namespace is valid"),
            names: std::cell::RefCell::new(Vec::new()),
        };
        let requests_vec = counter_vec(
            &registry,
            "http_requests_total",
            "HTTP requests answered, by route kind and status class",
            &["route", "status"],
        );
        let latency_vec = histogram_vec(
            &registry,
            "upstream_duration_seconds",
            "Time from sending a request upstream to receiving its response header",
            LATENCY_BUCKETS.to_vec(),
            &["route"],
        );
        let failures_vec = counter_vec(
            &registry,
            "upstream_failures_total",
            "Requests that could not be forwarded, by reason",
            &["reason"],
        );
        let config_reloads = counter_vec(
            &registry,
            "config_reloads_total",
            "Config reloads by outcome",
            &["outcome"],
        );
        let client_secret_expiry = gauge_vec(
            &registry,
            "client_secret_expire_at_seconds",
            "When each IdP's client secret expires (Unix time)",
            &["idp"],
        );
        let client_secret_expires_in = gauge_vec(
            &registry,
            "client_secret_expires_in_seconds",
            "Seconds until each IdP's client secret expires (negative: expired), updated every minute",
            &["idp"],
        );
        let build_info = gauge_vec(
            &registry,
            "build_info",
            "Version of the running sidecar; always 1",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let idp_calls = histogram_vec(
            &registry,
            "idp_request_duration_seconds",
            "Calls to identity providers by IdP and call",
            LATENCY_BUCKETS.to_vec(),
            &["idp", "call"],
        );
        let discovery = counter_vec(
            &registry,
            "idp_discovery_total",
            "Discovery and key (JWKS) fetches by IdP and outcome",
            &["idp", "outcome"],
        );
        let logins_started = counter_vec(
            &registry,
            "logins_started_total",
            "Logins sent to an identity provider",
            &["organization", "idp"],
        );
        let logins_completed = counter_vec(
            &registry,
            "logins_completed_total",
            "Logins completed with a session",
            &["organization", "idp"],
        );
        let logins_failed = counter_vec(
            &registry,
            "logins_failed_total",
            "Logins that failed, by reason",
            &["organization", "idp", "reason"],
        );
        let session_cookie_bytes = histogram_vec(
            &registry,
            "session_cookie_bytes",
            "Size of the sealed session cookie value when it is set",
            vec![
                512.0, 1024.0, 2048.0, 3072.0, 3800.0, 4096.0, 6144.0, 8192.0, 16384.0,
            ],
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let sessions_rejected = counter_vec(
            &registry,
            "sessions_rejected_total",
            "Session cookies that were not accepted, by reason",
            &["reason"],
        );
        let forms_dropped = counter_vec(
            &registry,
            "kept_forms_dropped_total",
            "Form posts that needed a sign-in but were not kept for after it, by reason (cross_site: the browser did not say the form came from this site)",
            &["reason"],
        );
        let requests_refused = counter_vec(
            &registry,
            "requests_refused_total",
            "Requests and connections refused before routing: request heads too large (431), with too many headers (431) or too slow (408); connections over limits.max_connections(_per_client), closed at accept; requests without one valid host (400: host_missing, host_duplicate, host_disagrees, host_bad_name, host_bad_port)",
            &["reason"],
        );
        let tls_certificate_expires_at = gauge_vec(
            &registry,
            "tls_certificate_expires_at_seconds",
            "When the certificate of server.tls expires (Unix time)",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let client_connections_open = gauge_vec(
            &registry,
            "client_connections_open",
            "Client connections open now (counted towards limits.max_connections)",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let requests_denied = counter_vec(
            &registry,
            "requests_denied_total",
            "Signed-in requests refused by a route's allow rules, by route path prefix",
            &["route"],
        );
        let introspections_late = counter_vec(
            &registry,
            "introspections_late_total",
            "Introspections that reached commercetools.introspection_deadline, by what was answered (cached, inactive)",
            &["answer"],
        );
        let scopes_dropped = IntCounter::with_opts(Opts::new(
            "scopes_dropped_total",
            "Claim values left out of introspection scopes as they are not RFC 6749 scope tokens",
        ))
        .expect("valid metric");
        registry
            .register(Box::new(scopes_dropped.clone()))
            .expect("metric registered once");

        let key_refetches = counter_vec(
            &registry,
            "jwks_refetches_total",
            "Key refetches because a token named an unknown key id",
            &["idp"],
        );
        let refreshes = counter_vec(
            &registry,
            "token_refreshes_total",
            "Token refreshes at the IdP by outcome (ok, invalid_grant, idp_error, timeout)",
            &["idp", "outcome"],
        );
        let refresh_coalesced = counter_vec(
            &registry,
            "token_refresh_coalesced_total",
            "Requests that used another request's refresh instead of calling the IdP",
            &["idp"],
        );
        let sessions_ended = counter_vec(
            &registry,
            "sessions_ended_total",
            "Sessions ended by reason",
            &["reason"],
        );
        let logouts = counter_vec(
            &registry,
            "logouts_total",
            "Logouts by organization policy",
            &["policy"],
        );
        let backchannel = counter_vec(
            &registry,
            "backchannel_logouts_total",
            "Back-channel logout tokens by outcome and reason",
            &["outcome", "reason"],
        );
        let backend_calls = counter_vec(&registry, "backend_calls_total", "Calls to the commerce backend's own endpoints (ICM provisioning, Spree exchange and refresh) by outcome", &["call", "outcome"]);
        let store_errors = counter_vec(
            &registry,
            "store_errors_total",
            "Redis calls that failed or timed out, by operation; local behaviour took over",
            &["op"],
        );
        let requests = RouteKind::ALL
            .iter()
            .map(|kind| {
                STATUS_CLASSES.map(|class| requests_vec.with_label_values(&[kind.as_str(), class]))
            })
            .collect();
        let upstream_latency = RouteKind::ALL
            .iter()
            .map(|kind| latency_vec.with_label_values(&[kind.as_str()]))
            .collect();
        let upstream_failures =
            UpstreamFailure::ALL.map(|f| failures_vec.with_label_values(&[f.as_str()]));
        Metrics {
            families: registry.names.into_inner(),
            registry: registry.registry,
            requests,
            upstream_latency,
            upstream_failures,
            config_reloads,
            client_secret_expiry,
            client_secret_expires_in,
            idp_calls,
            discovery,
            logins_started,
            logins_completed,
            logins_failed,
            session_cookie_bytes,
            sessions_rejected,
            scopes_dropped,
            introspections_late,
            requests_refused,
            client_connections_open,
            tls_certificate_expires_at,
            requests_denied,
            key_refetches,
            refreshes,
            refresh_coalesced,
            sessions_ended,
            logouts,
            backchannel,
            backend_calls,
            store_errors,
            forms_dropped,
        }
    }

    pub fn request_refused(&self, reason: &str) {
        self.requests_refused.with_label_values(&[reason]).inc();
    }

    pub fn form_dropped(&self, reason: &str) {
        self.forms_dropped.with_label_values(&[reason]).inc();
    }

    pub fn count_store_error(&self, op: &str) {
        self.store_errors.with_label_values(&[op]).inc();
    }

    pub fn count_backend_call(&self, call: &str, outcome: &str) {
        self.backend_calls.with_label_values(&[call, outcome]).inc();
    }

    pub fn count_key_refetch(&self, idp: &str) {
        self.key_refetches.with_label_values(&[idp]).inc();
    }

    pub fn count_refresh(&self, idp: &str, outcome: &str) {
        self.refreshes.with_label_values(&[idp, outcome]).inc();
    }

    pub fn count_refresh_coalesced(&self, idp: &str) {
        self.refresh_coalesced.with_label_values(&[idp]).inc();
    }

    pub fn session_ended(&self, reason: &str) {
        self.sessions_ended.with_label_values(&[reason]).inc();
    }

    pub fn count_logout(&self, policy: &str) {
        self.logouts.with_label_values(&[policy]).inc();
    }

    pub fn count_backchannel(&self, outcome: &str, reason: &str) {
        self.backchannel.with_label_values(&[outcome, reason]).inc();
    }

    pub fn observe_idp_call(&self, idp: &str, call: &str, elapsed: Duration) {
        self.idp_calls
            .with_label_values(&[idp, call])
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_discovery(&self, idp: &str, outcome: &str) {
        self.discovery.with_label_values(&[idp, outcome]).inc();
    }

    pub fn login_started(&self, organization: &str, idp: &str) {
        self.logins_started
            .with_label_values(&[organization, idp])
            .inc();
    }

    pub fn login_completed(&self, organization: &str, idp: &str, cookie_bytes: usize) {
        self.logins_completed
            .with_label_values(&[organization, idp])
            .inc();
        self.session_cookie_bytes.observe(cookie_bytes as f64);
    }

    pub fn login_failed(&self, organization: &str, idp: &str, reason: &str) {
        self.logins_failed
            .with_label_values(&[organization, idp, reason])
            .inc();
    }

    pub fn request_denied(&self, route: &str) {
        self.requests_denied.with_label_values(&[route]).inc();
    }

    pub fn set_tls_certificate_expiry(&self, at: i64) {
        self.tls_certificate_expires_at.set(at);
    }

    pub fn count_late_introspection(&self, answer: &str) {
        self.introspections_late.with_label_values(&[answer]).inc();
    }

    pub fn scope_dropped(&self) {
        self.scopes_dropped.inc();
    }

    pub fn session_rejected(&self, reason: &str) {
        self.sessions_rejected.with_label_values(&[reason]).inc();
    }

    pub fn record_request(&self, kind: RouteKind, status: u16) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.requests[kind as usize][class].inc();
    }

    pub fn record_upstream_latency(&self, kind: RouteKind, elapsed: Duration) {
        self.upstream_latency[kind as usize].observe(elapsed.as_secs_f64());
    }

    pub fn record_upstream_failure(&self, failure: UpstreamFailure) {
        self.upstream_failures[failure as usize].inc();
    }

    /// The full name of every metric family this process exports.
    pub fn family_names(&self) -> &[String] {
        &self.families
    }

    /// Counts kept by the proxy's server below any code of ours (heads and connections it
    /// refused, by reason, since start; connections open now), taken in before a scrape.
    pub fn take_in_edge_counts(&self, refused: &[(&str, u64)], open_connections: u64) {
        for (reason, count) in refused {
            let counter = self.requests_refused.with_label_values(&[reason]);
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        self.client_connections_open
            .set(i64::try_from(open_connections).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_names_include_families_without_series() {
        let metrics = Metrics::new();
        let names = metrics.family_names();
        assert!(
            names.iter().any(|n| n == "sso_sidecar_store_errors_total"),
            "{names:?}"
        );
        assert!(names
            .iter()
            .any(|n| n == "sso_sidecar_upstream_duration_seconds"));
        assert!(!metrics.render().contains("sso_sidecar_store_errors_total"));
    }

    #[test]
    fn counters_move_and_render() {
        let metrics = Metrics::new();
        metrics.record_request(RouteKind::Public, 200);
        metrics.record_request(RouteKind::Public, 204);
        metrics.record_request(RouteKind::Required, 401);
        metrics.record_upstream_failure(UpstreamFailure::ConnectRefused);
        metrics.record_upstream_latency(RouteKind::Public, Duration::from_millis(3));
        let text = metrics.render();
        assert!(
            text.contains("sso_sidecar_http_requests_total{route=\"public\",status=\"2xx\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("sso_sidecar_http_requests_total{route=\"required\",status=\"4xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sso_sidecar_upstream_failures_total{reason=\"connect_refused\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sso_sidecar_upstream_duration_seconds_count{route=\"public\"} 1"),
            "{text}"
        );
        assert!(text.contains("sso_sidecar_build_info{version=\""), "{text}");
    }
}
