//! Refreshing tokens with the refresh token (RFC 6749 §6).

use std::time::Instant;

use chrono::Utc;
use openidconnect::{OAuth2TokenResponse, RefreshToken, RequestTokenError, TokenResponse};

use std::sync::Arc;

use serde_json::Value;

use super::registry::{Discovered, Provider, Registry};
use super::verify::{verify_jwt, Checks, TokenUse, VerifyError};
use crate::jwt::jwt_part;
use crate::session::Tokens;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token is dead (expired, revoked, reused): the session is over.
    #[error("the refresh token was refused: {0}")]
    InvalidGrant(String),
    #[error("the identity provider answered with an error: {0}")]
    IdpError(String),
    #[error("the identity provider did not answer in time")]
    Timeout,
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// The new ID token does not verify, or names another issuer or subject than the
    /// session's (OpenID Connect Core §12.2): the session is over.
    #[error("the refreshed ID token was refused: {0}")]
    BadIdToken(String),
}

impl RefreshError {
    /// The `outcome` label of `sso_sidecar_token_refreshes_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            RefreshError::InvalidGrant(_) => "invalid_grant",
            RefreshError::IdpError(_) | RefreshError::Unreachable(_) => "idp_error",
            RefreshError::Timeout => "timeout",
            RefreshError::BadIdToken(_) => "bad_id_token",
        }
    }

    /// Why the session ended, for `sso_sidecar_sessions_ended_total`, when it did.
    pub fn ended_reason(&self) -> crate::metrics::Ended {
        match self {
            RefreshError::BadIdToken(_) => crate::metrics::Ended::BadIdToken,
            _ => crate::metrics::Ended::InvalidGrant,
        }
    }

    /// Whether trying again later may help (the IdP is down or slow).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            RefreshError::InvalidGrant(_) | RefreshError::BadIdToken(_)
        )
    }
}

/// New tokens for `current`. An IdP that sends no new refresh token (or ID token) leaves
/// the old one in place.
pub async fn refresh(
    registry: &Registry,
    provider: &Arc<Provider>,
    discovered: &Discovered,
    (current, dpop_key): (&Tokens, Option<&crate::session::DpopKey>),
    checks: Checks,
) -> Result<Tokens, RefreshError> {
    let Some(refresh_token) = current.refresh_token.as_deref() else {
        return Err(RefreshError::InvalidGrant("no refresh token".into()));
    };
    let token = RefreshToken::new(refresh_token.to_owned());
    let mut request = discovered
        .client
        .exchange_refresh_token(&token)
        .map_err(|e| RefreshError::IdpError(e.to_string()))?;
    for (name, value) in discovered.auth.assertion_fields() {
        request = request.add_extra_param(name, value);
    }
    for resource in &provider.config.resource {
        request = request.add_extra_param("resource", resource.clone());
    }
    // A DPoP-bound refresh token is only good with a proof of the session's key (§5).
    let prover = dpop_key.and_then(|key| super::dpop::Prover::new(key, &provider.dpop_nonce));
    let http = super::dpop::DpopHttp {
        http: &provider.http,
        prover: prover.as_ref(),
        client: Some(&discovered.auth),
    };
    let started = Instant::now();
    let result = request.request_async(&http).await;
    registry
        .metrics()
        .idps
        .observe_idp_call(&provider.key, "refresh", started.elapsed());
    let response = result.map_err(|error| match error {
        RequestTokenError::ServerResponse(response) => {
            let code = response.error().to_string();
            if code == "invalid_grant" {
                RefreshError::InvalidGrant(code)
            } else {
                RefreshError::IdpError(code)
            }
        }
        RequestTokenError::Request(e) => {
            let timed_out = match &e {
                openidconnect::HttpClientError::Reqwest(inner) => inner.is_timeout(),
                _ => false,
            };
            if timed_out {
                RefreshError::Timeout
            } else {
                RefreshError::Unreachable(crate::error_chain::error_chain(&e))
            }
        }
        RequestTokenError::Parse(e, _) => RefreshError::IdpError(format!("unreadable answer: {e}")),
        RequestTokenError::Other(e) => RefreshError::IdpError(e),
    })?;
    // `expires_in` counts from the IdP's answer, which may come long after the request
    // that started this shared refresh: the clock is read here, not passed down.
    let now = Utc::now().timestamp();
    if let Some(id_token) = response.id_token() {
        let id_token = id_token.to_string();
        same_person(registry, provider, current, &id_token, checks, now).await?;
    }
    Ok(Tokens {
        access_token: response.access_token().secret().clone(),
        access_expires_at: response
            .expires_in()
            .map(|d| now.saturating_add(crate::config::whole_secs(d))),
        refresh_token: response
            .refresh_token()
            .map(|t| t.secret().clone())
            .or_else(|| current.refresh_token.clone()),
        id_token: response
            .id_token()
            .map(|t| t.to_string())
            .or_else(|| current.id_token.clone()),
    })
}

/// A refresh's new ID token verifies like the first one (signature, audience, times) and
/// names the same issuer and subject as the session's (OpenID Connect Core §12.2): the IdP
/// cannot turn a session into another person's.
async fn same_person(
    registry: &Registry,
    provider: &Arc<Provider>,
    current: &Tokens,
    id_token: &str,
    checks: Checks,
    now: i64,
) -> Result<(), RefreshError> {
    let usage = TokenUse::Id { nonce: None };
    let candidates = std::slice::from_ref(provider);
    let verified = verify_jwt(registry, id_token, usage, Some(candidates), checks, now)
        .await
        .map_err(|error| match error {
            VerifyError::Unavailable { .. } => RefreshError::Unreachable(error.to_string()),
            other => RefreshError::BadIdToken(other.to_string()),
        })?;
    let Some(first) = current.id_token.as_deref().and_then(|t| jwt_part(t, 1)) else {
        return Ok(());
    };
    for claim in ["iss", "sub"] {
        let before = first.get(claim).and_then(Value::as_str);
        if before != verified.claims.get(claim).and_then(Value::as_str) {
            return Err(RefreshError::BadIdToken(format!(
                "the {claim} claim changed"
            )));
        }
    }
    Ok(())
}
