//! Ending sessions at the IdP: RP-initiated logout URLs, RFC 7009 revocation, and
//! verification of back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::registry::{Discovered, Provider, Registry};
use super::verify::{verify_jwt, Checks, TokenUse, VerifyError};

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Logout tokens older than this are refused even when they carry no `exp`.
pub const LOGOUT_TOKEN_MAX_AGE: Duration = Duration::from_secs(300);

/// The IdP's logout URL for RP-initiated logout, or `None` when it has no
/// `end_session_endpoint`.
pub fn end_session_url(
    discovered: &Discovered,
    id_token_hint: Option<&str>,
    post_logout_redirect_uri: &str,
    state: &str,
    extra: &BTreeMap<String, String>,
) -> Option<Url> {
    let endpoint = discovered
        .metadata
        .additional_metadata()
        .end_session_endpoint
        .as_deref()?;
    let mut url = Url::parse(endpoint).ok()?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(hint) = id_token_hint {
            query.append_pair("id_token_hint", hint);
        }
        query.append_pair("client_id", discovered.client.client_id().as_str());
        query.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        query.append_pair("state", state);
        for (name, value) in extra {
            query.append_pair(name, value);
        }
    }
    Some(url)
}

/// Revokes a refresh token at the IdP's revocation endpoint (RFC 7009). `Ok(false)` when
/// the IdP has none.
pub async fn revoke_refresh_token(
    registry: &Registry,
    provider: &Provider,
    discovered: &Discovered,
    token: &str,
) -> Result<bool, String> {
    revoke_token(registry, provider, discovered, token, "refresh_token").await
}

/// Revokes `token` (`hint`: `refresh_token` or `access_token`) at the IdP's revocation
/// endpoint (RFC 7009). `Ok(false)` when the IdP has none.
pub async fn revoke_token(
    registry: &Registry,
    provider: &Provider,
    discovered: &Discovered,
    token: &str,
    hint: &str,
) -> Result<bool, String> {
    let Some(endpoint) = discovered
        .metadata
        .additional_metadata()
        .revocation_endpoint
        .as_deref()
    else {
        return Ok(false);
    };
    let started = Instant::now();
    let response = discovered
        .auth
        .post(
            &provider.http,
            endpoint,
            &[("token", token), ("token_type_hint", hint)],
        )
        .send()
        .await;
    registry
        .metrics()
        .idps
        .observe_idp_call(&provider.key, "revocation", started.elapsed());
    match response {
        Ok(r) if r.status().is_success() => Ok(true),
        Ok(r) => Err(format!("revocation answered {}", r.status())),
        Err(e) => Err(crate::error_chain::error_chain(&e)),
    }
}

/// Who a verified logout token signs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutOrder {
    /// Every IdP entry of the token's issuer whose client it is addressed to.
    pub idps: Vec<String>,
    pub sid: Option<String>,
    pub sub: Option<String>,
    pub jti: String,
}

/// Why a logout token was refused; the `reason` label of the back-channel metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct LogoutTokenError {
    pub reason: &'static str,
    pub detail: String,
}

fn refuse(reason: &'static str, detail: impl Into<String>) -> LogoutTokenError {
    LogoutTokenError {
        reason,
        detail: detail.into(),
    }
}

/// Verifies a logout token with the one JWT verifier (the IdP's keys and algorithms,
/// `iss`, `aud`, `iat`), then the back-channel rules: `iat` not too old, the event, `sid`
/// or `sub`, no `nonce`. Replay (`jti`) is checked by the caller, who keeps state.
pub async fn verify_logout_token(
    registry: &Registry,
    token: &str,
    skew: Duration,
    now: i64,
) -> Result<LogoutOrder, LogoutTokenError> {
    let checks = Checks {
        skew,
        accept_unsigned: false,
    };
    let verified = verify_jwt(registry, token, TokenUse::Logout, None, checks, now)
        .await
        .map_err(|error| match &error {
            VerifyError::Invalid(invalid) => refuse(invalid.code(), invalid.to_string()),
            VerifyError::UnknownKey => refuse("unknown_key", error.to_string()),
            VerifyError::Unavailable { .. } => refuse("idp_unavailable", error.to_string()),
        })?;
    let claims = verified.claims;
    check_logout_claims(&claims, skew, now)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(LogoutOrder {
        idps: verified.providers.iter().map(|p| p.key.clone()).collect(),
        sid: text("sid"),
        sub: text("sub"),
        jti: text("jti").ok_or_else(|| refuse("malformed", "no jti"))?,
    })
}

fn check_logout_claims(
    claims: &serde_json::Map<String, Value>,
    skew: Duration,
    now: i64,
) -> Result<(), LogoutTokenError> {
    let skew = crate::config::whole_secs(skew);
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| refuse("malformed", "no iat"))?;
    if iat > now.saturating_add(skew) {
        return Err(refuse("stale", "issued in the future"));
    }
    if iat
        < now
            .saturating_sub(skew)
            .saturating_sub(LOGOUT_TOKEN_MAX_AGE.as_secs() as i64)
    {
        return Err(refuse("stale", "issued too long ago"));
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        if exp.saturating_add(skew) < now {
            return Err(refuse("stale", "expired"));
        }
    }
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|events| events.contains_key(BACKCHANNEL_EVENT));
    if !has_event {
        return Err(refuse("malformed", "no back-channel logout event"));
    }
    if claims.contains_key("nonce") {
        return Err(refuse("malformed", "a logout token must not carry a nonce"));
    }
    if claims.get("sid").and_then(Value::as_str).is_none()
        && claims.get("sub").and_then(Value::as_str).is_none()
    {
        return Err(refuse("malformed", "neither sid nor sub"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn logout_claim_rules() {
        let now = chrono::Utc::now().timestamp();
        let skew = Duration::from_secs(60);
        let good = json!({"iat": now, "sid": "s1", "jti": "j", "events": {BACKCHANNEL_EVENT: {}}});
        assert!(check_logout_claims(&claims(good.clone()), skew, now).is_ok());
        let mut nonce = good.clone();
        nonce["nonce"] = json!("n");
        assert_eq!(
            check_logout_claims(&claims(nonce), skew, now)
                .unwrap_err()
                .reason,
            "malformed"
        );
        let mut no_event = good.clone();
        no_event["events"] = json!({});
        assert!(check_logout_claims(&claims(no_event), skew, now).is_err());
        let mut nobody = good.clone();
        nobody.as_object_mut().unwrap().remove("sid");
        assert!(check_logout_claims(&claims(nobody), skew, now).is_err());
        let mut future = good.clone();
        future["iat"] = json!(now + 3600);
        assert_eq!(
            check_logout_claims(&claims(future), skew, now)
                .unwrap_err()
                .reason,
            "stale"
        );
        let mut old = good;
        old["iat"] = json!(now - 3600);
        assert_eq!(
            check_logout_claims(&claims(old), skew, now)
                .unwrap_err()
                .reason,
            "stale"
        );
    }
}
