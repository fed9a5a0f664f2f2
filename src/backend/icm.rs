//! ICM provisioning: on each login the backend receives the mapped profile and creates or
//! updates the user as the organization's `self_administration_policy` allows.

use serde_json::{json, Map, Value};

use crate::config::{ClaimMapping, IcmConfig, SelfAdministration};
use crate::session::Session;

/// Why provisioning did not work.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// `404`: the shop has no such user and may not create one (ICM: "users unknown to the
    /// ICM can not log in" under a policy without `CREATE`).
    #[error("the shop does not know this account")]
    UnknownUser,
    #[error("{0}")]
    Failed(String),
}

/// Calls the provisioning endpoint; `Ok(false)` when nothing was to be done (no endpoint
/// configured, or the policy is `NONE`).
pub async fn provision(
    http: &reqwest::Client,
    config: &IcmConfig,
    policy: SelfAdministration,
    session: &Session,
    claims: &Map<String, Value>,
    (mapping, anonymous_session): (&ClaimMapping, Option<&str>),
) -> Result<bool, ProvisionError> {
    let Some(url) = &config.provisioning_url else {
        return Ok(false);
    };
    if !policy.create && !policy.update {
        return Ok(false);
    }
    let mut profile = profile(policy, session, claims, mapping);
    if let Some(anonymous) = anonymous_session {
        // ICM's session before the sign-in, with the guest's basket: ICM merges it into
        // the customer's, as its own login does.
        profile["anonymous_session"] = Value::from(anonymous);
    }
    let request = http.post(url.clone()).json(&profile);
    let request = match &config.provisioning_secret {
        Some(secret) => request.bearer_auth(secret.expose()),
        None => request,
    };
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(true),
        Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => {
            Err(ProvisionError::UnknownUser)
        }
        Ok(response) => Err(ProvisionError::Failed(format!(
            "the shop answered {}",
            response.status()
        ))),
        Err(e) => Err(ProvisionError::Failed(crate::error_chain::error_chain(&e))),
    }
}

/// The profile ICM's OIDCProfileMapper would build, with what the policy permits. The
/// backend makes the call idempotent by keying users on identity provider + external id.
fn profile(
    policy: SelfAdministration,
    session: &Session,
    claims: &Map<String, Value>,
    mapping: &ClaimMapping,
) -> Value {
    let identity = &session.identity;
    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
    json!({
        "external_id": identity.external_id,
        "identity_provider": session.identity_provider,
        "organization": session.organization,
        "login_name": identity.preferred_username.as_deref().or(identity.email.as_deref()).unwrap_or(&identity.subject),
        "email": identity.email,
        // Never more than the IdP vouched for: ICM may trust a verified email for login.
        "email_verified": identity.email.is_some() && identity.email_verified,
        "name": identity.name,
        "first_name": claim(&mapping.first_name),
        "last_name": claim(&mapping.last_name),
        "create": policy.create,
        "update": policy.update,
    })
}
