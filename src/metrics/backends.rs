//! The commerce backend's own endpoints, introspection for commercetools, and the shared
//! store (Redis).

use prometheus::{IntCounter, IntCounterVec};

use super::families::Families;
use super::reasons::{BackendCall, CallOutcome};

pub struct Backends {
    calls: IntCounterVec,
    introspections_late: IntCounterVec,
    scopes_dropped: IntCounter,
    store_errors: IntCounterVec,
}

impl Backends {
    pub fn register(families: &Families) -> Self {
        Backends {
            calls: families.counters(
                "backend_calls_total",
                "Calls to the commerce backend's own endpoints (ICM provisioning, Spree exchange and refresh) by outcome",
                &["call", "outcome"],
            ),
            introspections_late: families.counters(
                "introspections_late_total",
                "Introspections that reached commercetools.introspection_deadline, by what was answered (cached, inactive)",
                &["answer"],
            ),
            scopes_dropped: families.counter(
                "scopes_dropped_total",
                "Claim values left out of introspection scopes as they are not RFC 6749 scope tokens",
            ),
            store_errors: families.counters(
                "store_errors_total",
                "Redis calls that failed or timed out, by operation; local behaviour took over",
                &["op"],
            ),
        }
    }

    pub fn count_backend_call(&self, call: BackendCall, outcome: CallOutcome) {
        (self.calls)
            .with_label_values(&[call.as_str(), outcome.as_str()])
            .inc();
    }

    pub fn count_late_introspection(&self, answer: &str) {
        self.introspections_late.with_label_values(&[answer]).inc();
    }

    pub fn scope_dropped(&self) {
        self.scopes_dropped.inc();
    }

    pub fn count_store_error(&self, op: &str) {
        self.store_errors.with_label_values(&[op]).inc();
    }
}
