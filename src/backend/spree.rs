//! Spree's third-party IdP strategy: the IdP token is exchanged once at
//! `POST /api/v3/store/auth/login` for Spree's own JWT and refresh token, which then
//! authenticate every Store API call and rotate through `/auth/refresh`.

use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::config::SpreeConfig;
use crate::session::BackendTokens;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SpreeError {
    /// Spree refused (401/403/422): the session with it is over.
    #[error("the shop refused: {0}")]
    Refused(String),
    #[error("the shop could not be reached: {0}")]
    Unreachable(String),
}

#[derive(Deserialize)]
struct AuthAnswer {
    token: String,
    refresh_token: Option<String>,
}

pub struct SpreeClient {
    http: reqwest::Client,
    base: Url,
    config: SpreeConfig,
}

impl SpreeClient {
    pub fn new(http: reqwest::Client, base: Url, config: SpreeConfig) -> Self {
        SpreeClient { http, base, config }
    }

    pub fn config(&self) -> &SpreeConfig {
        &self.config
    }

    /// Exchanges the IdP's token for Spree's.
    pub async fn exchange(&self, idp_token: &str) -> Result<BackendTokens, SpreeError> {
        let body = json!({"provider": self.config.provider, "token": idp_token});
        self.call(&self.config.login_path, body, None).await
    }

    /// Rotates Spree's JWT and refresh token; a refresh without a new refresh token keeps the old one.
    pub async fn refresh(&self, current: &BackendTokens) -> Result<BackendTokens, SpreeError> {
        let refresh_token = current
            .refresh_token
            .as_deref()
            .ok_or_else(|| SpreeError::Refused("no refresh token".into()))?;
        self.call(
            &self.config.refresh_path,
            json!({"refresh_token": refresh_token}),
            current.refresh_token.clone(),
        )
        .await
    }

    /// Revokes the refresh token at logout; failures only matter to the log.
    pub async fn logout(&self, current: &BackendTokens) -> Result<(), SpreeError> {
        let Some(refresh_token) = &current.refresh_token else {
            return Ok(());
        };
        let url = self.url(&self.config.logout_path)?;
        let response = self
            .request(url)
            .bearer_auth(&current.token)
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .map_err(|e| SpreeError::Unreachable(crate::oidc::error_chain(&e)))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(SpreeError::Refused(response.status().to_string()))
        }
    }

    async fn call(
        &self,
        path: &str,
        body: serde_json::Value,
        keep_refresh: Option<String>,
    ) -> Result<BackendTokens, SpreeError> {
        let url = self.url(path)?;
        let response = self
            .request(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SpreeError::Unreachable(crate::oidc::error_chain(&e)))?;
        let status = response.status();
        if status.is_client_error() {
            return Err(SpreeError::Refused(status.to_string()));
        }
        if !status.is_success() {
            return Err(SpreeError::Unreachable(format!("answered {status}")));
        }
        let answer: AuthAnswer = response
            .json()
            .await
            .map_err(|e| SpreeError::Unreachable(format!("unreadable answer: {e}")))?;
        let expires_at = crate::oidc::flow::jwt_part(&answer.token, 1)
            .and_then(|claims| claims.get("exp").and_then(|v| v.as_i64()));
        Ok(BackendTokens {
            token: answer.token,
            refresh_token: answer.refresh_token.or(keep_refresh),
            expires_at,
        })
    }

    fn url(&self, path: &str) -> Result<Url, SpreeError> {
        self.base
            .join(path)
            .map_err(|e| SpreeError::Unreachable(e.to_string()))
    }

    fn request(&self, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.post(url);
        match &self.config.publishable_key {
            Some(key) => request.header("X-Spree-API-Key", key.expose()),
            None => request,
        }
    }
}
