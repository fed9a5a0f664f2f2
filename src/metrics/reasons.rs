//! The reasons metrics are labelled with, as types: a label value is chosen from these,
//! never written at the call site.

use crate::session::Rejection;

/// Why a session cookie or a bearer token was not accepted
/// (`sso_sidecar_sessions_rejected_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The cookie itself: tampered, expired, idle, its store unreachable.
    Cookie(Rejection),
    /// Ended by a logout here, at the IdP or on another replica.
    Revoked,
    /// Signed in for another organization than the route pins.
    OtherOrganization,
    /// Too many sign-ins from one client.
    RateLimited,
    /// A bearer token that could not be checked (its IdP unreachable).
    BearerUnavailable,
    /// A bearer token that is not valid here.
    BearerInvalid,
}

impl Rejected {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Cookie(rejection) => rejection.as_str(),
            Rejected::Revoked => "revoked",
            Rejected::OtherOrganization => "other_organization",
            Rejected::RateLimited => "rate_limited",
            Rejected::BearerUnavailable => "bearer_unavailable",
            Rejected::BearerInvalid => "bearer_invalid",
        }
    }
}

/// Why a session ended (`sso_sidecar_sessions_ended_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The user logged out here.
    Logout,
    /// A reload turned remote sign-ins off (`oidc.remote = "unsupported"`).
    RemoteUnsupported,
    /// A refreshed ID token no longer makes the user a member.
    NotAMember,
    /// Its tokens ran out and the IdP could not renew them.
    IdpUnreachable,
    /// The commerce backend refused or could not renew its own session.
    BackendRefused,
    /// The tokens ran out and there is no refresh token.
    Expired,
    /// The IdP refused the refresh token.
    InvalidGrant,
    /// The IdP's refreshed ID token failed verification (another user, bad signature).
    BadIdToken,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Logout => "logout",
            Ended::RemoteUnsupported => "remote_unsupported",
            Ended::NotAMember => "not_a_member",
            Ended::IdpUnreachable => "idp_unreachable",
            Ended::BackendRefused => "backend_refused",
            Ended::Expired => "expired",
            Ended::InvalidGrant => "invalid_grant",
            Ended::BadIdToken => "bad_id_token",
        }
    }
}

/// Why a form posted without a session was not kept for after the sign-in
/// (`sso_sidecar_kept_forms_dropped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormDropped {
    /// The browser did not say the form came from this site.
    CrossSite,
}

impl FormDropped {
    pub fn as_str(self) -> &'static str {
        match self {
            FormDropped::CrossSite => "cross_site",
        }
    }
}

/// Who asked for a stronger sign-in (`sso_sidecar_step_ups_total{by}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpBy {
    /// A route's `acr_values` / `max_age`.
    Route,
    /// The backend's RFC 9470 challenge.
    Backend,
}

impl StepUpBy {
    pub fn as_str(self) -> &'static str {
        match self {
            StepUpBy::Route => "route",
            StepUpBy::Backend => "backend",
        }
    }
}

/// How a step-up sign-in ended (`sso_sidecar_step_up_results_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpOutcome {
    /// The IdP gave the sign-in that was asked for.
    Given,
    /// The IdP signed the user in, but not as strongly or recently as asked.
    NotGiven,
    /// Someone else signed in than the session's user.
    OtherUser,
}

impl StepUpOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepUpOutcome::Given => "given",
            StepUpOutcome::NotGiven => "not_given",
            StepUpOutcome::OtherUser => "other_user",
        }
    }
}
