//! The process itself: its version, config reloads, its TLS certificate.

use prometheus::{IntCounterVec, IntGauge};

use super::families::Families;

pub struct Process {
    config_reloads: IntCounterVec,
    tls_certificate_expires_at: IntGauge,
}

impl Process {
    pub fn register(families: &Families) -> Self {
        families
            .gauges(
                "build_info",
                "Version of the running sidecar; always 1",
                &["version"],
            )
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Process {
            config_reloads: families.counters(
                "config_reloads_total",
                "Config reloads by outcome",
                &["outcome"],
            ),
            tls_certificate_expires_at: families.gauge(
                "tls_certificate_expires_at_seconds",
                "When the certificate of server.tls expires (Unix time)",
            ),
        }
    }

    pub fn count_reload(&self, outcome: &str) {
        self.config_reloads.with_label_values(&[outcome]).inc();
    }

    pub fn set_tls_certificate_expiry(&self, at: i64) {
        self.tls_certificate_expires_at.set(at);
    }
}
