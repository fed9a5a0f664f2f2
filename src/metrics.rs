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

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

pub struct Metrics {
    registry: Registry,
    /// `[route kind][status class]`
    requests: Vec<[IntCounter; 6]>,
    upstream_latency: Vec<Histogram>,
    upstream_failures: [IntCounter; 4],
    pub config_reloads: IntCounterVec,
    pub client_secret_expiry: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("sso_sidecar".to_owned()), None)
            .expect("static namespace is valid");
        let requests_vec = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route kind and status class",
            ),
            &["route", "status"],
        )
        .expect("static metric");
        let latency_vec = HistogramVec::new(
            HistogramOpts::new(
                "upstream_duration_seconds",
                "Time from sending a request upstream to receiving its response header",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["route"],
        )
        .expect("static metric");
        let failures_vec = IntCounterVec::new(
            Opts::new(
                "upstream_failures_total",
                "Requests that could not be forwarded, by reason",
            ),
            &["reason"],
        )
        .expect("static metric");
        let config_reloads = IntCounterVec::new(
            Opts::new("config_reloads_total", "Config reloads by outcome"),
            &["outcome"],
        )
        .expect("static metric");
        let client_secret_expiry = IntGaugeVec::new(
            Opts::new(
                "client_secret_expire_at_seconds",
                "When each IdP's client secret expires (Unix time)",
            ),
            &["idp"],
        )
        .expect("static metric");
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Version of the running sidecar; always 1"),
            &["version"],
        )
        .expect("static metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        for collector in [
            Box::new(requests_vec.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency_vec.clone()),
            Box::new(failures_vec.clone()),
            Box::new(config_reloads.clone()),
            Box::new(client_secret_expiry.clone()),
            Box::new(build_info),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }

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
            registry,
            requests,
            upstream_latency,
            upstream_failures,
            config_reloads,
            client_secret_expiry,
        }
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
