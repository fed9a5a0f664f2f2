//! The authorization-code flow: building the redirect to the IdP (state, nonce, PKCE S256)
//! and finishing it at the callback (code exchange, ID token checks, userinfo).

use std::time::{Duration, Instant};

use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{
    AccessToken, AuthenticationContextClass, AuthorizationCode, CsrfToken, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, Scope, TokenResponse,
};
use serde_json::{Map, Value};
use url::Url;

use std::sync::Arc;

use super::error::LoginError;
use super::registry::{Discovered, Provider, Registry};
use super::verify::{verify_jwt, Checks, Invalid, TokenUse, VerifyError};
use super::{dpop, par};
use crate::config::{ClaimMapping, OfflineAccess};
use crate::session::strength::Challenge;
use crate::session::{Identity, PendingLogin, Tokens};

/// Where a login should go once it is done, and for whom.
pub struct LoginTarget<'a> {
    pub organization: &'a str,
    pub return_to: &'a str,
    /// A step-up: sign in as strongly and recently as this asks.
    pub step_up: Option<Challenge>,
    /// Ask for `acr`, `amr` and `auth_time` in the ID token (where the IdP takes the
    /// claims parameter): step-up rules need to know how the user signed in.
    pub ask_strength: bool,
}

/// The redirect to the IdP and what the callback will need to finish the login.
pub struct LoginStart {
    pub authorize_url: Url,
    pub pending: PendingLogin,
}

pub async fn begin(
    provider: &Provider,
    discovered: &Discovered,
    target: LoginTarget<'_>,
    now: i64,
) -> Result<LoginStart, LoginError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = discovered
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".to_owned()))
        .add_scope(Scope::new("email".to_owned()))
        .set_pkce_challenge(challenge);
    // Core §11: `offline_access` only counts with `prompt=consent`; each IdP gets what it
    // needs for a refresh token (`offline_access`, resolved from the issuer by default).
    match provider.config.offline_access {
        OfflineAccess::Scope => {
            request = request.add_scope(Scope::new("offline_access".to_owned()));
        }
        OfflineAccess::Consent => {
            request = request
                .add_scope(Scope::new("offline_access".to_owned()))
                .add_prompt(openidconnect::core::CoreAuthPrompt::Consent);
        }
        OfflineAccess::Never | OfflineAccess::Auto => {}
    }
    for scope in &provider.config.additional_scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let claims_request = strength_claims(discovered, &target);
    if let Some(claims) = &claims_request {
        request = request.add_extra_param("claims", claims);
    }
    if let Some(step_up) = &target.step_up {
        // With the claims parameter the `acr` values are a demand already; `acr_values`
        // beside it would only weaken that at IdPs that let it replace the claims
        // request's `acr` (oidc-provider does).
        if claims_request.is_none() {
            for acr in &step_up.acr_values {
                let class = AuthenticationContextClass::new(acr.clone());
                request = request.add_auth_context_value(class);
            }
        }
        if let Some(max_age) = step_up.max_age {
            request = request.set_max_age(Duration::from_secs(max_age));
        }
    }
    for resource in &provider.config.resource {
        request = request.add_extra_param("resource", resource.clone());
    }
    let (authorize_url, state, nonce) = request.url();
    let authorize_url = match par::endpoint(provider, discovered)? {
        Some(endpoint) => par::push(provider, discovered, &endpoint, &authorize_url).await?,
        None => authorize_url,
    };
    Ok(LoginStart {
        authorize_url,
        pending: PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            organization: target.organization.to_owned(),
            identity_provider: provider.key.clone(),
            return_to: target.return_to.to_owned(),
            created_at: now,
            kept_form: None,
            step_up: target.step_up,
        },
    })
}

/// The claims parameter (Core §5.5) asking the ID token for how the user signed in, for
/// IdPs that take it: `acr`, `amr` and `auth_time` as wishes, and in a step-up the `acr`
/// values as a demand (`acr_values` alone is only a wish, Core §3.1.2.1).
fn strength_claims(discovered: &Discovered, target: &LoginTarget<'_>) -> Option<String> {
    let supported = discovered.metadata.claims_parameter_supported() == Some(true);
    if !supported || !(target.ask_strength || target.step_up.is_some()) {
        return None;
    }
    let acr = match &target.step_up {
        Some(step_up) if !step_up.acr_values.is_empty() => {
            serde_json::json!({"essential": true, "values": step_up.acr_values})
        }
        _ => Value::Null,
    };
    let id_token = serde_json::json!({"acr": acr, "amr": null, "auth_time": null});
    Some(serde_json::json!({ "id_token": id_token }).to_string())
}

/// How strictly ID tokens are checked.
#[derive(Debug, Clone, Copy)]
pub struct TokenChecks {
    pub max_clock_skew: Duration,
    pub accept_unsigned_tokens: bool,
}

/// A finished login.
#[derive(Debug)]
pub struct LoginResult {
    pub identity: Identity,
    pub tokens: Tokens,
    pub idp_session_id: Option<String>,
    /// ID token claims, completed from userinfo: the profile for provisioning.
    pub claims: Map<String, Value>,
    /// The key the tokens are bound to (DPoP), kept with the session.
    pub dpop: Option<crate::session::DpopKey>,
}

pub async fn finish(
    registry: &Registry,
    provider: &Arc<Provider>,
    discovered: &Discovered,
    pending: &PendingLogin,
    code: &str,
    checks: TokenChecks,
    wanted_claims: &[String],
) -> Result<LoginResult, LoginError> {
    let mut exchange = discovered
        .client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| LoginError::Misconfigured(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
    for (name, value) in discovered.auth.assertion_fields() {
        exchange = exchange.add_extra_param(name, value);
    }
    for resource in &provider.config.resource {
        exchange = exchange.add_extra_param("resource", resource.clone());
    }
    // DPoP: a key of the new session's own, proven on this call and every later one.
    let dpop_key = provider.config.dpop.then(dpop::new_key);
    let prover = (dpop_key.as_ref()).and_then(|key| dpop::Prover::new(key, &provider.dpop_nonce));
    let http = dpop::DpopHttp {
        http: &provider.http,
        prover: prover.as_ref(),
        client: Some(&discovered.auth),
    };
    let started = Instant::now();
    let response = exchange.request_async(&http).await;
    registry
        .metrics()
        .idps
        .observe_idp_call(&provider.key, "token", started.elapsed());
    let response = response.map_err(LoginError::from_token_error)?;
    // An IdP that did not bind the tokens (`token_type` Bearer) gets them back as bearer
    // tokens; the key is dropped with nothing bound to it.
    let bound = serde_json::to_value(response.token_type())
        .ok()
        .and_then(|t| t.as_str().map(|t| t.eq_ignore_ascii_case("dpop")))
        .unwrap_or(false);
    let (dpop_key, prover) = match bound {
        true => (dpop_key, prover),
        false => (None, None),
    };

    let id_token = response
        .id_token()
        .ok_or_else(|| LoginError::InvalidIdToken("the IdP sent no ID token".into()))?;
    // The ID token was issued after the request came in, during the code exchange: it is
    // checked (and `expires_in` counted) from when the IdP answered, not the request's clock.
    let now = chrono::Utc::now().timestamp();
    let checks = Checks {
        skew: checks.max_clock_skew,
        accept_unsigned: checks.accept_unsigned_tokens,
    };
    let usage = TokenUse::Id {
        nonce: Some(&pending.nonce),
    };
    let raw_id_token = id_token.to_string();
    let claims = verify_jwt(
        registry,
        &raw_id_token,
        usage,
        Some(std::slice::from_ref(provider)),
        checks,
        now,
    )
    .await
    .map_err(|error| match error {
        VerifyError::UnknownKey => LoginError::UnknownSigningKey,
        VerifyError::Unavailable { .. } => LoginError::Unreachable(error.to_string()),
        VerifyError::Invalid(Invalid::UnknownIssuer) => {
            LoginError::InvalidIdToken("the issuer is not the identity provider's".into())
        }
        VerifyError::Invalid(invalid) => LoginError::InvalidIdToken(invalid.to_string()),
    })?
    .claims;

    let tokens = Tokens {
        access_token: response.access_token().secret().clone(),
        access_expires_at: response
            .expires_in()
            .map(|d| now.saturating_add(crate::config::whole_secs(d))),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        id_token: Some(id_token.to_string()),
    };
    let mut claims = claims;
    let mapping = &provider.config.claims;
    let profile_claims = [&mapping.email, &mapping.name, &mapping.login_name];
    // Rules and groups may name claims only userinfo has (`groups` on many IdPs).
    let wanted = wanted_claims
        .iter()
        .map(|path| path.split('.').next().unwrap_or(path));
    if profile_claims
        .iter()
        .map(|c| c.as_str())
        .chain(wanted)
        .any(|claim| !claims.contains_key(claim))
    {
        complete_from_userinfo(
            registry,
            (provider, discovered),
            &tokens.access_token,
            prover.as_ref(),
            &mut claims,
        )
        .await;
    }
    Ok(LoginResult {
        dpop: dpop_key,
        identity: identity_from_claims(&claims, mapping),
        idp_session_id: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
        tokens,
        claims,
    })
}

/// The identity the headers carry, from claims by the IdP's claim mapping.
pub fn identity_from_claims(claims: &Map<String, Value>, mapping: &ClaimMapping) -> Identity {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let subject = text("sub").unwrap_or_default();
    Identity {
        external_id: text(&mapping.external_id).unwrap_or_else(|| subject.clone()),
        email: text(&mapping.email),
        name: text(&mapping.name),
        preferred_username: text(&mapping.login_name),
        email_verified: matches!(claims.get("email_verified"), Some(Value::Bool(true)))
            || claims.get("email_verified").and_then(Value::as_str) == Some("true"),
        subject,
    }
}

/// Adds claims missing from the ID token from the userinfo endpoint. A failure here does
/// not fail the login: the identity is complete without these optional claims.
async fn complete_from_userinfo(
    registry: &Registry,
    (provider, discovered): (&Provider, &Discovered),
    access_token: &str,
    prover: Option<&dpop::Prover<'_>>,
    claims: &mut Map<String, Value>,
) {
    let Ok(request) = discovered
        .client
        .user_info(AccessToken::new(access_token.to_owned()), None)
    else {
        return;
    };
    let started = Instant::now();
    let http = dpop::DpopHttp {
        http: &provider.http,
        prover,
        client: None,
    };
    let result: Result<openidconnect::core::CoreUserInfoClaims, _> =
        request.request_async(&http).await;
    registry
        .metrics()
        .idps
        .observe_idp_call(&provider.key, "userinfo", started.elapsed());
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match result {
        Ok(info) if info.subject().as_str() == subject => {
            if let Ok(Value::Object(extra)) = serde_json::to_value(&info) {
                for (name, value) in extra {
                    claims.entry(name).or_insert(value);
                }
            }
        }
        Ok(_) => tracing::warn!(
            idp = provider.key.as_str(),
            "userinfo answered for another subject; ignored"
        ),
        Err(error) => {
            tracing::warn!(idp = provider.key.as_str(), %error, "userinfo request failed")
        }
    }
}
