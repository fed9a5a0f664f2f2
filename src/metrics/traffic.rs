//! Requests and connections: what came in, how it was answered, how the upstream did.
//! Label combinations on the request path are resolved once here, so recording a request
//! is an atomic add and not a label lookup under a lock.

use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

use super::families::{Families, LATENCY_BUCKETS};
use crate::routing::RouteKind;

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

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

pub struct Traffic {
    /// `[route kind][status class]`
    requests: Vec<[IntCounter; 6]>,
    upstream_latency: Vec<Histogram>,
    upstream_failures: [IntCounter; 4],
    /// Requests and connections refused before routing, by reason.
    pub(super) refused: IntCounterVec,
    pub(super) connections_open: IntGauge,
    denied: IntCounterVec,
}

impl Traffic {
    pub fn register(families: &Families) -> Self {
        let requests = families.counters(
            "http_requests_total",
            "HTTP requests answered, by route kind and status class",
            &["route", "status"],
        );
        let latency = families.histograms(
            "upstream_duration_seconds",
            "Time from sending a request upstream to receiving its response header",
            &LATENCY_BUCKETS,
            &["route"],
        );
        let failures = families.counters(
            "upstream_failures_total",
            "Requests that could not be forwarded, by reason",
            &["reason"],
        );
        Traffic {
            requests: RouteKind::ALL
                .iter()
                .map(|kind| {
                    STATUS_CLASSES.map(|class| requests.with_label_values(&[kind.as_str(), class]))
                })
                .collect(),
            upstream_latency: RouteKind::ALL
                .iter()
                .map(|kind| latency.with_label_values(&[kind.as_str()]))
                .collect(),
            upstream_failures: UpstreamFailure::ALL
                .map(|f| failures.with_label_values(&[f.as_str()])),
            refused: families.counters(
                "requests_refused_total",
                "Requests and connections refused before routing: request heads too large (431), with too many headers (431) or too slow (408); connections over limits.max_connections(_per_client), closed at accept; requests without one valid host (400: host_missing, host_duplicate, host_disagrees, host_bad_name, host_bad_port)",
                &["reason"],
            ),
            connections_open: families.gauge(
                "client_connections_open",
                "Client connections open now (counted towards limits.max_connections)",
            ),
            denied: families.counters(
                "requests_denied_total",
                "Signed-in requests refused by a route's allow rules, by route path prefix",
                &["route"],
            ),
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

    pub fn request_refused(&self, reason: &str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    pub fn request_denied(&self, route: &str) {
        self.denied.with_label_values(&[route]).inc();
    }
}
