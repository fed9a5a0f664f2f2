//! Sign-ins and sessions: started, completed, failed, rejected, ended, logged out.

use prometheus::{Histogram, IntCounterVec};

use super::families::Families;
use super::reasons::{Ended, FormDropped, Rejected, StepUpBy, StepUpOutcome};

pub struct Sessions {
    logins_started: IntCounterVec,
    logins_completed: IntCounterVec,
    logins_failed: IntCounterVec,
    cookie_bytes: Histogram,
    rejected: IntCounterVec,
    ended: IntCounterVec,
    logouts: IntCounterVec,
    backchannel: IntCounterVec,
    forms_dropped: IntCounterVec,
    step_ups: IntCounterVec,
    frontchannel: IntCounterVec,
    step_up_results: IntCounterVec,
}

impl Sessions {
    pub fn register(families: &Families) -> Self {
        Sessions {
            logins_started: families.counters(
                "logins_started_total",
                "Logins sent to an identity provider",
                &["organization", "idp"],
            ),
            logins_completed: families.counters(
                "logins_completed_total",
                "Logins completed with a session",
                &["organization", "idp"],
            ),
            logins_failed: families.counters(
                "logins_failed_total",
                "Logins that failed, by reason",
                &["organization", "idp", "reason"],
            ),
            cookie_bytes: families.histogram(
                "session_cookie_bytes",
                "Size of the sealed session cookie value when it is set",
                &[512.0, 1024.0, 2048.0, 3072.0, 3800.0, 4096.0, 6144.0, 8192.0, 16384.0],
            ),
            rejected: families.counters(
                "sessions_rejected_total",
                "Session cookies that were not accepted, by reason",
                &["reason"],
            ),
            ended: families.counters(
                "sessions_ended_total",
                "Sessions ended by reason",
                &["reason"],
            ),
            logouts: families.counters(
                "logouts_total",
                "Logouts by organization policy",
                &["policy"],
            ),
            backchannel: families.counters(
                "backchannel_logouts_total",
                "Back-channel logout tokens by outcome and reason",
                &["outcome", "reason"],
            ),
            forms_dropped: families.counters(
                "kept_forms_dropped_total",
                "Form posts that needed a sign-in but were not kept for after it, by reason (cross_site: the browser did not say the form came from this site)",
                &["reason"],
            ),
            frontchannel: families.counters(
                "frontchannel_logouts_total",
                "Front-channel logout requests by outcome (accepted, rejected)",
                &["outcome"],
            ),
            step_ups: families.counters(
                "step_ups_total",
                "Stronger or more recent sign-ins asked for, by who asked (route, backend)",
                &["by"],
            ),
            step_up_results: families.counters(
                "step_up_results_total",
                "Step-up sign-ins by outcome (given, not_given, other_user)",
                &["outcome"],
            ),
        }
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
        self.cookie_bytes.observe(cookie_bytes as f64);
    }

    pub fn login_failed(&self, organization: &str, idp: &str, reason: &str) {
        self.logins_failed
            .with_label_values(&[organization, idp, reason])
            .inc();
    }

    pub fn session_rejected(&self, reason: Rejected) {
        self.rejected.with_label_values(&[reason.as_str()]).inc();
    }

    pub fn session_ended(&self, reason: Ended) {
        self.ended.with_label_values(&[reason.as_str()]).inc();
    }

    pub fn count_logout(&self, policy: &str) {
        self.logouts.with_label_values(&[policy]).inc();
    }

    pub fn count_backchannel(&self, outcome: &str, reason: &str) {
        self.backchannel.with_label_values(&[outcome, reason]).inc();
    }

    pub fn form_dropped(&self, reason: FormDropped) {
        self.forms_dropped
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    pub fn step_up_asked(&self, by: StepUpBy) {
        self.step_ups.with_label_values(&[by.as_str()]).inc();
    }

    pub fn step_up_finished(&self, outcome: StepUpOutcome) {
        self.step_up_results
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    pub fn count_frontchannel(&self, outcome: &str) {
        self.frontchannel.with_label_values(&[outcome]).inc();
    }
}
