//! The backend's handshake around a session: ICM provisioning at login, Spree's token
//! exchange at login and its refresh before Spree's JWT runs out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::lasting::Lasting;
use super::single_flight::{RefreshResults, SharedRefresh};
use super::tokens::Freshness;
use crate::backend::commercetools::{CommercetoolsApi, DesiredCustomer, SyncError};
use crate::backend::icm;
use crate::backend::spree::{SpreeClient, SpreeError};
use crate::config::{BackendProfile, ClaimMapping, Config};
use crate::metrics::{BackendCall, CallOutcome, Metrics};
use crate::oidc::access::VerifiedToken;
use crate::oidc::LoginError;
use crate::session::{BackendTokens, Sealer, Session};

pub struct Backend {
    config: Arc<Config>,
    spree: Option<Arc<SpreeClient>>,
    /// Spree refresh tokens already revoked for ended sessions (by digest), so a browser
    /// that keeps sending the ended cookie does not revoke again on every request.
    ended: moka::sync::Cache<[u8; 32], ()>,
    /// commercetools' API, when `[commercetools.api]` is configured.
    pub commercetools: Option<Arc<CommercetoolsApi>>,
    /// Recent active introspection answers by token digest, for answering in time when
    /// commercetools' API is slow (`commercetools.introspection_deadline`).
    /// Each with the token it describes, to check for revocations since.
    pub introspections: moka::future::Cache<[u8; 32], Arc<(Value, Arc<VerifiedToken>)>>,
    http: reqwest::Client,
    /// Spree rotates refresh tokens: requests still carrying the old cookie reuse a
    /// refresh, here and (with Redis) at every replica.
    results: Arc<RefreshResults>,
    shared: SharedRefresh,
    metrics: Arc<Metrics>,
    min_left: i64,
}

impl Backend {
    pub fn new(config: Arc<Config>, http: reqwest::Client, lasting: &Lasting) -> Self {
        let spree = config
            .backend
            .spree
            .clone()
            .filter(|_| config.backend.profile == BackendProfile::Spree)
            .map(|spree| {
                Arc::new(SpreeClient::new(
                    http.clone(),
                    config.server.upstream.url.clone(),
                    spree,
                ))
            });
        let commercetools = config.commercetools.as_ref().and_then(|ct| {
            let api = ct.api.clone()?;
            Some(Arc::new(CommercetoolsApi::new(
                http.clone(),
                api,
                ct.project_key.clone(),
                lasting.metrics.clone(),
            )))
        });
        Backend {
            spree,
            ended: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            commercetools,
            introspections: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            http,
            results: lasting.refreshes.clone(),
            shared: SharedRefresh::new(
                lasting.store.clone(),
                Sealer::new(&config.session.keys),
                "spree-refreshed",
                config.oidc.http_timeout + Duration::from_secs(1),
            ),
            metrics: lasting.metrics.clone(),
            min_left: config.oidc.min_access_token_lifetime_left.as_secs() as i64,
            config,
        }
    }

    /// Refreshes the backend's token when it is about to run out; one refresh per token.
    /// `client` is the shopper's address, which Spree's rate limits go by.
    /// Whether [`Self::keep_fresh`] may have work to do (see [`super::Refresh::may_refresh`]).
    pub fn may_refresh(&self, session: &Session, now: i64) -> bool {
        let expiring = |tokens: &BackendTokens| {
            tokens.refresh_token.is_some()
                && (tokens.expires_at).is_some_and(|at| at.saturating_sub(now) <= self.min_left)
        };
        self.spree.is_some() && session.backend.as_ref().is_some_and(expiring)
    }

    pub async fn keep_fresh(
        &self,
        session: &Session,
        now: i64,
        client: Option<std::net::IpAddr>,
    ) -> Freshness<BackendTokens> {
        let (Some(spree), Some(tokens)) = (&self.spree, &session.backend) else {
            return Freshness::Current;
        };
        let Some(expires_at) = tokens.expires_at else {
            return Freshness::Current;
        };
        if expires_at.saturating_sub(now) > self.min_left || tokens.refresh_token.is_none() {
            return Freshness::Current;
        }
        let key: [u8; 32] = Sha256::digest(tokens.token.as_bytes()).into();
        let refresh = || spree.refresh(tokens, client);
        let (result, ran) = self.shared.once(&self.results.backend, key, refresh).await;
        match result {
            Ok(fresh) => {
                if ran {
                    self.metrics
                        .backends
                        .count_backend_call(BackendCall::SpreeRefresh, CallOutcome::Ok);
                }
                Freshness::Refreshed(fresh)
            }
            Err(error) => {
                tracing::warn!(session = session.id.as_str(), %error, "Spree token refresh failed");
                match &*error {
                    SpreeError::Refused(_) => {
                        self.metrics
                            .backends
                            .count_backend_call(BackendCall::SpreeRefresh, CallOutcome::Refused);
                        Freshness::Ended(crate::metrics::Ended::BackendRefused)
                    }
                    // Keep going with the current token while it lasts.
                    SpreeError::Unreachable(_) | SpreeError::RateLimited(_) if now < expires_at => {
                        self.metrics
                            .backends
                            .count_backend_call(BackendCall::SpreeRefresh, CallOutcome::Error);
                        Freshness::Current
                    }
                    SpreeError::Unreachable(_) | SpreeError::RateLimited(_) => {
                        self.metrics
                            .backends
                            .count_backend_call(BackendCall::SpreeRefresh, CallOutcome::Error);
                        Freshness::Ended(crate::metrics::Ended::BackendRefused)
                    }
                }
            }
        }
    }

    /// After the IdP confirmed who it is: provision the user in ICM, or exchange the IdP's
    /// token for Spree's.
    pub async fn handshake(
        &self,
        session: &mut Session,
        claims: &Map<String, Value>,
        mapping: &ClaimMapping,
        (client, headers): (Option<std::net::IpAddr>, &http::HeaderMap),
    ) -> Result<(), LoginError> {
        match self.config.backend.profile {
            BackendProfile::Generic => {}
            BackendProfile::Icm => self.provision(session, claims, mapping, headers).await?,
            BackendProfile::Spree => {
                self.exchange_with_spree(session, client).await?;
                self.take_guest_cart(session, headers, client).await;
            }
        }
        self.sync_commercetools_customer(session, claims, mapping, headers)
            .await
    }

    /// `commercetools.sync_customers`: the customer keyed by the IdP's user id is found,
    /// created or updated as the organization's policy allows, and its commercetools id
    /// and group are kept for introspection.
    async fn sync_commercetools_customer(
        &self,
        session: &Session,
        claims: &Map<String, Value>,
        mapping: &ClaimMapping,
        headers: &http::HeaderMap,
    ) -> Result<(), LoginError> {
        let (Some(ct), Some(api)) = (&self.config.commercetools, &self.commercetools) else {
            return Ok(());
        };
        if !ct.sync_customers {
            return Ok(());
        }
        let Some(key) =
            claim_text(claims, &ct.customer_id_claim).or_else(|| claim_text(claims, "sub"))
        else {
            return Err(LoginError::Backend(
                "the identity provider sent no user id for the shop's customer account".into(),
            ));
        };
        let policy = self
            .config
            .organizations
            .get(&session.organization)
            .map(|org| org.self_administration)
            .unwrap_or(crate::config::SelfAdministration {
                create: false,
                update: false,
            });
        let desired = DesiredCustomer {
            key: key.to_owned(),
            email: session.identity.email.clone(),
            first_name: claim_text(claims, &mapping.first_name).map(str::to_owned),
            last_name: claim_text(claims, &mapping.last_name).map(str::to_owned),
            group: customer_group(claims, &ct.customer_group_claim, &ct.customer_groups),
        };
        match api.sync(&desired, policy).await {
            Ok(customer) => {
                // The guest's basket survives the sign-in: before the browser's first page.
                let anonymous = (ct.anonymous_id_cookie.as_deref())
                    .and_then(|name| crate::session::jar::cookie(headers, name));
                if let (Some(customer), Some(anonymous)) = (customer, anonymous) {
                    let mode = &ct.anonymous_cart_sign_in_mode;
                    if let Err(error) = api
                        .merge_anonymous_cart(&customer.id, anonymous, mode)
                        .await
                    {
                        tracing::warn!(session = session.id.as_str(), %error, "the guest's cart could not be merged");
                    }
                }
                Ok(())
            }
            Err(SyncError::Unknown) => Err(LoginError::UnknownToShop),
            Err(error @ SyncError::NotCreated(_)) => {
                tracing::warn!(organization = session.organization.as_str(), %error, "commercetools customer sync failed; sign-in refused");
                Err(LoginError::Backend(
                    "your customer account could not be set up; please try again later".into(),
                ))
            }
        }
    }

    async fn provision(
        &self,
        session: &Session,
        claims: &Map<String, Value>,
        mapping: &ClaimMapping,
        headers: &http::HeaderMap,
    ) -> Result<(), LoginError> {
        let icm = &self.config.backend.icm;
        let anonymous = crate::session::jar::cookie(headers, &icm.session_cookie);
        let Some(org) = self.config.organizations.get(&session.organization) else {
            return Ok(());
        };
        let policy = org.self_administration;
        match icm::provision(
            &self.http,
            &self.config.backend.icm,
            policy,
            session,
            claims,
            (mapping, anonymous),
        )
        .await
        {
            Ok(true) => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::IcmProvisioning, CallOutcome::Ok);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(icm::ProvisionError::UnknownUser) if !policy.create => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::IcmProvisioning, CallOutcome::UnknownUser);
                Err(LoginError::UnknownToShop)
            }
            // Without CREATE the user already exists in ICM; a missed update is not worth
            // refusing the login over.
            Err(error) if !policy.create => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::IcmProvisioning, CallOutcome::Error);
                tracing::warn!(organization = org.key.as_str(), %error, "ICM provisioning failed; login goes on");
                Ok(())
            }
            Err(error) => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::IcmProvisioning, CallOutcome::Error);
                Err(LoginError::Backend(format!(
                    "your shop account could not be set up ({error})"
                )))
            }
        }
    }

    /// The guest's basket survives the sign-in: the cart whose order token the storefront
    /// keeps in `backend.spree.guest_cart_cookie` is associated with the customer, right
    /// after the exchange. A failure is logged and counted; the sign-in goes on.
    async fn take_guest_cart(
        &self,
        session: &Session,
        headers: &http::HeaderMap,
        client: Option<std::net::IpAddr>,
    ) {
        let (Some(spree), Some(tokens)) = (&self.spree, &session.backend) else {
            return;
        };
        let Some(cookie) = spree.config().guest_cart_cookie.as_deref() else {
            return;
        };
        let Some(order_token) = crate::session::jar::cookie(headers, cookie) else {
            return;
        };
        let outcome = match spree.associate_cart(tokens, order_token, client).await {
            Ok(()) => CallOutcome::Ok,
            Err(error) => {
                tracing::warn!(session = session.id.as_str(), %error, "the guest cart could not be taken over");
                match error {
                    SpreeError::Refused(_) => CallOutcome::Refused,
                    _ => CallOutcome::Error,
                }
            }
        };
        (self.metrics.backends).count_backend_call(BackendCall::SpreeCartAssociate, outcome);
    }

    async fn exchange_with_spree(
        &self,
        session: &mut Session,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), LoginError> {
        let Some(spree) = &self.spree else {
            return Ok(());
        };
        let token = if spree.config().exchange_access_token {
            Some(session.tokens.access_token.clone())
        } else {
            session.tokens.id_token.clone()
        };
        let token = token.ok_or_else(|| {
            LoginError::Backend("there is no token to present to the shop".into())
        })?;
        match spree.exchange(&token, client).await {
            Ok(tokens) => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::SpreeExchange, CallOutcome::Ok);
                session.backend = Some(tokens);
                Ok(())
            }
            Err(SpreeError::RateLimited(seconds)) => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::SpreeExchange, CallOutcome::RateLimited);
                Err(LoginError::BackendBusy(seconds))
            }
            Err(error) => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::SpreeExchange, CallOutcome::Error);
                Err(LoginError::Backend(format!(
                    "the shop did not accept your sign-in ({error})"
                )))
            }
        }
    }

    /// Ends the backend's own session at logout (Spree revokes its refresh token).
    pub async fn logout(&self, session: &Session, client: Option<std::net::IpAddr>) {
        if let (Some(spree), Some(tokens)) = (&self.spree, &session.backend) {
            revoke_at_spree(spree, tokens, client, &self.metrics).await;
        }
    }

    /// A session that ended without a logout here (revoked by a back-channel logout or at
    /// another replica, `invalid_grant`, no longer a member): Spree's refresh token is
    /// revoked too, once, in the background, so it cannot outlive the session.
    pub fn end_session(&self, session: &Session, client: Option<std::net::IpAddr>) {
        let (Some(spree), Some(tokens)) = (&self.spree, &session.backend) else {
            return;
        };
        let Some(refresh_token) = &tokens.refresh_token else {
            return;
        };
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        if !self.ended.entry(key).or_insert(()).is_fresh() {
            return;
        }
        let (spree, tokens) = (spree.clone(), tokens.clone());
        let metrics = self.metrics.clone();
        tokio::spawn(async move { revoke_at_spree(&spree, &tokens, client, &metrics).await });
    }
}

/// Revokes Spree's refresh token; a failure only matters to the log and the metrics.
async fn revoke_at_spree(
    spree: &SpreeClient,
    tokens: &BackendTokens,
    client: Option<std::net::IpAddr>,
    metrics: &Metrics,
) {
    match spree.logout(tokens, client).await {
        Ok(()) => metrics
            .backends
            .count_backend_call(BackendCall::SpreeLogout, CallOutcome::Ok),
        Err(error) => {
            metrics
                .backends
                .count_backend_call(BackendCall::SpreeLogout, CallOutcome::Error);
            tracing::warn!(%error, "revoking Spree's refresh token failed");
        }
    }
}

fn claim_text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// The customer group for the first of the user's `claim` values that `groups` maps.
fn customer_group(
    claims: &Map<String, Value>,
    claim: &str,
    groups: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    crate::session::claims::values_at(claims, claim)
        .into_iter()
        .find_map(|value| groups.get(&value).cloned())
}
