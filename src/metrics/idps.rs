//! Calls to identity providers: their latency, discovery and key fetches, refreshes, and
//! when each client secret runs out.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use super::families::{Families, LATENCY_BUCKETS};

pub struct Idps {
    calls: HistogramVec,
    discovery: IntCounterVec,
    key_refetches: IntCounterVec,
    refreshes: IntCounterVec,
    refresh_coalesced: IntCounterVec,
    pub(super) client_secret_expiry: IntGaugeVec,
    pub(super) client_secret_expires_in: IntGaugeVec,
    up: IntGaugeVec,
    revocations: IntCounterVec,
}

impl Idps {
    pub fn register(families: &Families) -> Self {
        Idps {
            calls: families.histograms(
                "idp_request_duration_seconds",
                "Calls to identity providers by IdP and call",
                &LATENCY_BUCKETS,
                &["idp", "call"],
            ),
            discovery: families.counters(
                "idp_discovery_total",
                "Discovery and key (JWKS) fetches by IdP and outcome",
                &["idp", "outcome"],
            ),
            key_refetches: families.counters(
                "jwks_refetches_total",
                "Key refetches because a token named an unknown key id",
                &["idp"],
            ),
            refreshes: families.counters(
                "token_refreshes_total",
                "Token refreshes at the IdP by outcome (ok, invalid_grant, idp_error, timeout)",
                &["idp", "outcome"],
            ),
            refresh_coalesced: families.counters(
                "token_refresh_coalesced_total",
                "Requests that used another request's refresh instead of calling the IdP",
                &["idp"],
            ),
            client_secret_expiry: families.gauges(
                "client_secret_expire_at_seconds",
                "When each IdP's client secret expires (Unix time)",
                &["idp"],
            ),
            client_secret_expires_in: families.gauges(
                "client_secret_expires_in_seconds",
                "Seconds until each IdP's client secret expires (negative: expired), updated every minute",
                &["idp"],
            ),
            revocations: families.counters(
                "token_revocations_total",
                "Tokens of ended sessions revoked at the IdP (RFC 7009), by token and outcome (ok, error, unsupported)",
                &["idp", "token", "outcome"],
            ),
            up: families.gauges(
                "idp_up",
                "Whether each IdP answers, from the sidecar's calls to it (1) or not (0); sign-ins are not sent to one that does not",
                &["idp"],
            ),
        }
    }

    pub fn observe_idp_call(&self, idp: &str, call: &str, elapsed: Duration) {
        self.calls
            .with_label_values(&[idp, call])
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_discovery(&self, idp: &str, outcome: &str) {
        self.discovery.with_label_values(&[idp, outcome]).inc();
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

    pub fn set_client_secret_expiry(&self, idp: &str, at: i64) {
        self.client_secret_expiry.with_label_values(&[idp]).set(at);
    }

    pub fn set_client_secret_expires_in(&self, idp: &str, seconds: i64) {
        self.client_secret_expires_in
            .with_label_values(&[idp])
            .set(seconds);
    }

    pub fn set_up(&self, idp: &str, up: bool) {
        self.up.with_label_values(&[idp]).set(i64::from(up));
    }

    pub fn count_revocation(&self, idp: &str, token: &str, outcome: &str) {
        self.revocations
            .with_label_values(&[idp, token, outcome])
            .inc();
    }
}
