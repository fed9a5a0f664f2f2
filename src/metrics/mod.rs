//! Prometheus metrics in the `sso_sidecar_` namespace, served by the admin listener,
//! grouped by area: [`Traffic`] (requests and connections), [`Sessions`] (sign-ins and
//! sessions), [`Idps`] (calls to identity providers), [`Backends`] (the commerce backend
//! and the shared store), [`Process`]. Reasons are types ([`reasons`]).

mod backends;
mod families;
mod idps;
mod process;
pub mod reasons;
mod sessions;
mod traffic;

use prometheus::{Encoder, Registry, TextEncoder};

pub use backends::Backends;
use families::Families;
pub use idps::Idps;
pub use process::Process;
pub use reasons::{
    BackendCall, CallOutcome, Ended, FormDropped, Rejected, StepUpBy, StepUpOutcome,
};
pub use sessions::Sessions;
pub use traffic::{Traffic, UpstreamFailure};

pub struct Metrics {
    registry: Registry,
    /// Every metric family's full name (`sso_sidecar_…`), whether it has series yet or not.
    families: Vec<String>,
    pub traffic: Traffic,
    pub sessions: Sessions,
    pub idps: Idps,
    pub backends: Backends,
    pub process: Process,
}

impl Metrics {
    pub fn new() -> Self {
        let families = Families::new();
        let traffic = Traffic::register(&families);
        let sessions = Sessions::register(&families);
        let idps = Idps::register(&families);
        let backends = Backends::register(&families);
        let process = Process::register(&families);
        Metrics {
            families: families.names.into_inner(),
            registry: families.registry,
            traffic,
            sessions,
            idps,
            backends,
            process,
        }
    }

    /// Counts kept by the proxy's server below any code of ours (heads and connections it
    /// refused, by reason, since start; connections open now), taken in before a scrape.
    pub fn take_in_edge_counts(&self, refused: &[(&str, u64)], open_connections: u64) {
        for (reason, count) in refused {
            let counter = self.traffic.refused.with_label_values(&[reason]);
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        (self.traffic.connections_open).set(i64::try_from(open_connections).unwrap_or(i64::MAX));
    }

    /// The full name of every metric family this process exports.
    pub fn family_names(&self) -> &[String] {
        &self.families
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
    use std::time::Duration;

    use super::*;
    use crate::routing::RouteKind;

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
        metrics.traffic.record_request(RouteKind::Public, 200);
        metrics.traffic.record_request(RouteKind::Public, 204);
        metrics.traffic.record_request(RouteKind::Required, 401);
        metrics
            .traffic
            .record_upstream_failure(UpstreamFailure::ConnectRefused);
        metrics
            .traffic
            .record_upstream_latency(RouteKind::Public, Duration::from_millis(3));
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
