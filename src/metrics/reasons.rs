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

/// A call to the commerce backend's own endpoints (`sso_sidecar_backend_calls_total{call}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendCall {
    SpreeExchange,
    SpreeRefresh,
    SpreeLogout,
    SpreeCartAssociate,
    IcmProvisioning,
    CommercetoolsToken,
    CommercetoolsCustomerGet,
    CommercetoolsCustomerCreate,
    CommercetoolsCustomerUpdate,
    CommercetoolsGroupGet,
    CommercetoolsCartMerge,
}

impl BackendCall {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendCall::SpreeExchange => "spree_exchange",
            BackendCall::SpreeRefresh => "spree_refresh",
            BackendCall::SpreeLogout => "spree_logout",
            BackendCall::SpreeCartAssociate => "spree_cart_associate",
            BackendCall::IcmProvisioning => "icm_provisioning",
            BackendCall::CommercetoolsToken => "commercetools_token",
            BackendCall::CommercetoolsCustomerGet => "commercetools_customer_get",
            BackendCall::CommercetoolsCustomerCreate => "commercetools_customer_create",
            BackendCall::CommercetoolsCustomerUpdate => "commercetools_customer_update",
            BackendCall::CommercetoolsGroupGet => "commercetools_group_get",
            BackendCall::CommercetoolsCartMerge => "commercetools_cart_merge",
        }
    }
}

/// How a call to the backend went (`sso_sidecar_backend_calls_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    NotFound,
    Conflict,
    /// The backend answered no (a 4xx).
    Refused,
    /// It could not be reached, timed out, or answered with a server error.
    Error,
    RateLimited,
    /// ICM knows no such user and may not create one.
    UnknownUser,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::NotFound => "not_found",
            CallOutcome::Conflict => "conflict",
            CallOutcome::Refused => "refused",
            CallOutcome::Error => "error",
            CallOutcome::RateLimited => "rate_limited",
            CallOutcome::UnknownUser => "unknown_user",
        }
    }
}
