//! Spree's third-party IdP strategy: the IdP token is exchanged once at
//! `POST /api/v3/store/auth/login` for Spree's own JWT and refresh token, which then
//! authenticate every Store API call and rotate through `/auth/refresh`.

use std::net::IpAddr;

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
    /// `429`: Spree limits sign-ins per client address; try again after this many seconds.
    #[error("the shop asks to try again in {0} s")]
    RateLimited(u64),
}

/// Seconds to wait when a `429` names none (Rack::Attack's usual period).
const DEFAULT_RETRY_AFTER: u64 = 30;

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

    /// Exchanges the IdP's token for Spree's. `client` is the shopper's address, sent as
    /// `X-Forwarded-For`: Spree limits sign-ins per address, and every call comes from the
    /// sidecar's.
    pub async fn exchange(
        &self,
        idp_token: &str,
        client: Option<IpAddr>,
    ) -> Result<BackendTokens, SpreeError> {
        let body = json!({"provider": self.config.provider, "token": idp_token});
        self.call(&self.config.login_path, body, None, client).await
    }

    /// Rotates Spree's JWT and refresh token; a refresh without a new refresh token keeps the old one.
    pub async fn refresh(
        &self,
        current: &BackendTokens,
        client: Option<IpAddr>,
    ) -> Result<BackendTokens, SpreeError> {
        let refresh_token = current
            .refresh_token
            .as_deref()
            .ok_or_else(|| SpreeError::Refused("no refresh token".into()))?;
        self.call(
            &self.config.refresh_path,
            json!({"refresh_token": refresh_token}),
            current.refresh_token.clone(),
            client,
        )
        .await
    }

    /// Revokes the refresh token (logout, or a session that ended otherwise); failures only
    /// matter to the log.
    pub async fn logout(
        &self,
        current: &BackendTokens,
        client: Option<IpAddr>,
    ) -> Result<(), SpreeError> {
        let Some(refresh_token) = &current.refresh_token else {
            return Ok(());
        };
        let url = self.url(&self.config.logout_path)?;
        let response = self
            .request(url, client)
            .bearer_auth(&current.token)
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .map_err(|e| SpreeError::Unreachable(crate::error_chain::error_chain(&e)))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(SpreeError::Refused(response.status().to_string()))
        }
    }

    /// Associates the guest cart with `order_token` with the customer of `tokens` (the Store
    /// API's `PATCH /cart/associate`, the guest's order token in `X-Spree-Order-Token`):
    /// Spree checks that the token is a guest cart's; it never takes over another
    /// customer's.
    pub async fn associate_cart(
        &self,
        tokens: &BackendTokens,
        order_token: &str,
        client: Option<IpAddr>,
    ) -> Result<(), SpreeError> {
        let url = self.url(&self.config.associate_path)?;
        let mut request = self
            .with_headers(self.http.patch(url), client)
            .bearer_auth(&tokens.token)
            .header("X-Spree-Order-Token", order_token);
        request = request.header(reqwest::header::CONTENT_LENGTH, 0);
        let response = request
            .send()
            .await
            .map_err(|e| SpreeError::Unreachable(crate::error_chain::error_chain(&e)))?;
        let status = response.status();
        match status {
            s if s.is_success() => Ok(()),
            s if s.is_client_error() => Err(SpreeError::Refused(s.to_string())),
            s => Err(SpreeError::Unreachable(format!("answered {s}"))),
        }
    }

    async fn call(
        &self,
        path: &str,
        body: serde_json::Value,
        keep_refresh: Option<String>,
        client: Option<IpAddr>,
    ) -> Result<BackendTokens, SpreeError> {
        let url = self.url(path)?;
        let response = self
            .request(url, client)
            .json(&body)
            .send()
            .await
            .map_err(|e| SpreeError::Unreachable(crate::error_chain::error_chain(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .clamp(1, 3600);
            return Err(SpreeError::RateLimited(after));
        }
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
        let expires_at = crate::jwt::jwt_part(&answer.token, 1)
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

    fn request(&self, url: Url, client: Option<IpAddr>) -> reqwest::RequestBuilder {
        self.with_headers(self.http.post(url), client)
    }

    /// The shopper's address and the publishable key, on every Store API call.
    fn with_headers(
        &self,
        mut request: reqwest::RequestBuilder,
        client: Option<IpAddr>,
    ) -> reqwest::RequestBuilder {
        if let Some(client) = client {
            request = request.header("X-Forwarded-For", client.to_string());
        }
        match &self.config.publishable_key {
            Some(key) => request.header("X-Spree-API-Key", key.expose()),
            None => request,
        }
    }
}
