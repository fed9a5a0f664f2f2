//! Pushed authorization requests (RFC 9126): the authorization request goes to the IdP
//! directly, authenticated as the client, and the browser only carries a reference to it
//! (no parameters to read or change on the way).

use url::Url;

use super::error::LoginError;
use super::registry::{Discovered, Provider};
use crate::config::PushedAuthorization;

/// The PAR endpoint to use for a sign-in at `provider`, if any: `always` needs one,
/// `auto` uses one the IdP offers, `never` none.
pub fn endpoint(
    provider: &Provider,
    discovered: &Discovered,
) -> Result<Option<String>, LoginError> {
    let extra = discovered.metadata.additional_metadata();
    let offered = extra.pushed_authorization_request_endpoint.clone();
    match (provider.config.pushed_authorization, offered) {
        (PushedAuthorization::Never, _) if extra.require_pushed_authorization_requests == Some(true) => {
            Err(LoginError::Misconfigured(
                "the identity provider requires pushed authorization requests (pushed_authorization = \"never\")".into(),
            ))
        }
        (PushedAuthorization::Never, _) => Ok(None),
        (_, Some(endpoint)) => Ok(Some(endpoint)),
        (PushedAuthorization::Always, None) => Err(LoginError::Misconfigured(
            "pushed_authorization = \"always\", but the identity provider has no pushed_authorization_request_endpoint".into(),
        )),
        (PushedAuthorization::Auto, None) => Ok(None),
    }
}

/// Pushes the request `authorize_url` carries; returns the URL the browser goes to instead.
pub async fn push(
    provider: &Provider,
    discovered: &Discovered,
    endpoint: &str,
    authorize_url: &Url,
) -> Result<Url, LoginError> {
    let params: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
    // The client's credentials travel with the push (RFC 9126 §2.1); `client_id` too.
    let form: Vec<(&str, &str)> = (params.iter())
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let response = discovered
        .auth
        .post(&provider.http, endpoint, &form)
        .send()
        .await
        .map_err(|e| LoginError::Unreachable(crate::error_chain::error_chain(&e)))?;
    provider.health.answered(chrono::Utc::now().timestamp());
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| LoginError::BadResponse(format!("pushed authorization request: {e}")))?;
    let request_uri = match (status.as_u16(), body["request_uri"].as_str()) {
        (201 | 200, Some(uri)) => uri.to_owned(),
        _ => {
            let code = body["error"].as_str().unwrap_or("no request_uri");
            let description = body["error_description"].as_str().unwrap_or("");
            return Err(LoginError::Misconfigured(format!(
                "the pushed authorization request was refused ({status}: {code} {description})"
            )));
        }
    };
    let mut url = authorize_url.clone();
    url.set_query(None);
    url.query_pairs_mut()
        .append_pair("client_id", &provider.config.client_id)
        .append_pair("request_uri", &request_uri);
    Ok(url)
}
