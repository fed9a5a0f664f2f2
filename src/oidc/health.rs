//! Whether an IdP answers, learned from the sidecar's own calls to it (discovery, keys,
//! token, refresh) and, when in doubt, a short probe of its discovery document: a browser
//! is never sent to an IdP known to be down. Health comes back by itself: while an IdP is
//! down its discovery task probes it every few seconds.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Without an answer from the IdP for this long, a sign-in probes it first.
pub const DOUBT_AFTER_SECS: i64 = 30;
/// How long a probe may take: a browser waits for it.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an IdP that is down is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    /// Unix seconds of its last answer.
    last_answer: AtomicI64,
    /// Wakes the IdP's discovery task to probe it now.
    pub(super) wake: tokio::sync::Notify,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            up: AtomicBool::new(true),
            last_answer: AtomicI64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }
}

impl Health {
    /// The IdP answered (any status it meant to give: a refused grant is an answer).
    pub fn answered(&self, now: i64) {
        self.last_answer.fetch_max(now, Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
    }

    /// A call could not reach it, timed out, or got a server error.
    pub fn failed(&self) {
        if self.up.swap(false, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Up as far as anyone knows, but nothing was heard from it for a while.
    pub fn in_doubt(&self, now: i64) -> bool {
        self.is_up() && now - self.last_answer.load(Ordering::Relaxed) > DOUBT_AFTER_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_it_answers_and_doubted_when_quiet() {
        let health = Health::default();
        assert!(health.is_up());
        assert!(health.in_doubt(1_000));
        health.answered(1_000);
        assert!(!health.in_doubt(1_000 + DOUBT_AFTER_SECS));
        assert!(health.in_doubt(1_001 + DOUBT_AFTER_SECS));
        health.failed();
        assert!(!health.is_up());
        assert!(!health.in_doubt(5_000), "known to be down is no doubt");
        health.answered(5_000);
        assert!(health.is_up());
    }
}
