//! Keeping a session's tokens fresh: refresh before `min_access_token_lifetime_left`, once
//! per refresh token however many requests arrive at the same moment.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};

use super::lasting::Lasting;
use super::single_flight::{RefreshResults, SharedRefresh};
use crate::metrics::Metrics;
use crate::oidc::{self, RefreshError, Registry};
use crate::session::{Sealer, Session, Tokens};

/// After a failed refresh (IdP down or slow), requests go on with the current token for a
/// while instead of each waiting for the IdP again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What to do with a session's tokens: the IdP's ([`Tokens`]) or the backend's.
#[derive(Debug)]
pub enum Freshness<T = Tokens> {
    /// Good as they are.
    Current,
    /// Refreshed; the session needs the new tokens.
    Refreshed(Arc<T>),
    /// The session is over, for this reason (`expired`, `invalid_grant`, ...).
    Ended(crate::metrics::Ended),
    /// The token ran out and the IdP cannot be reached to refresh it.
    Unreachable,
}

/// Keeps a session's IdP tokens fresh; the gate is written against this so its tests can
/// decide what a refresh brings.
pub trait Refresh: Send + Sync {
    /// Whether [`Self::ensure_fresh`] may have work to do: a check without waiting, so the
    /// common request never carries the refresh's state.
    fn may_refresh(&self, session: &Session, now: i64) -> bool;

    fn ensure_fresh(
        &self,
        session: &Session,
        now: i64,
    ) -> impl std::future::Future<Output = Freshness> + Send;
}

impl Refresh for TokenKeeper {
    fn may_refresh(&self, session: &Session, now: i64) -> bool {
        let expires_at = session.tokens.access_expires_at;
        expires_at.is_some_and(|at| at.saturating_sub(now) <= self.min_left)
    }

    async fn ensure_fresh(&self, session: &Session, now: i64) -> Freshness {
        TokenKeeper::ensure_fresh(self, session, now).await
    }
}

pub struct TokenKeeper {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// With Redis: one refresh per token set across all replicas.
    shared: SharedRefresh,
    results: Arc<RefreshResults>,
    failing: Cache<[u8; 32], ()>,
    min_left: i64,
    skew: i64,
    /// How a refresh's new ID token is checked (as the sign-in's was).
    id_token_checks: crate::oidc::verify::Checks,
}

impl TokenKeeper {
    pub fn new(registry: Arc<Registry>, lasting: &Lasting, config: &crate::config::Config) -> Self {
        let min_left = config.oidc.min_access_token_lifetime_left;
        let skew = config.oidc.max_clock_skew;
        TokenKeeper {
            registry,
            metrics: lasting.metrics.clone(),
            shared: SharedRefresh::new(
                lasting.store.clone(),
                Sealer::new(&config.session.keys),
                "refreshed",
                config.oidc.http_timeout + Duration::from_secs(1),
            ),
            results: lasting.refreshes.clone(),
            failing: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(RETRY_AFTER)
                .build(),
            min_left: crate::config::whole_secs(min_left),
            skew: crate::config::whole_secs(skew),
            id_token_checks: crate::oidc::verify::Checks {
                skew,
                accept_unsigned: config.oidc.accept_unsigned_tokens,
            },
        }
    }

    pub async fn ensure_fresh(&self, session: &Session, now: i64) -> Freshness {
        let Some(expires_at) = session.tokens.access_expires_at else {
            return Freshness::Current;
        };
        if expires_at.saturating_sub(now) > self.min_left {
            return Freshness::Current;
        }
        let still_valid = now < expires_at.saturating_add(self.skew);
        let Some(refresh_token) = session.tokens.refresh_token.as_deref() else {
            return if still_valid {
                Freshness::Current
            } else {
                Freshness::Ended(crate::metrics::Ended::Expired)
            };
        };
        let key = cache_key(
            &session.identity_provider,
            refresh_token,
            &session.tokens.access_token,
        );
        if self.failing.contains_key(&key) {
            return self.transient(still_valid);
        }
        let refresh = || self.refresh(session);
        let (result, ran) = self.shared.once(&self.results.tokens, key, refresh).await;
        if !ran {
            self.metrics
                .idps
                .count_refresh_coalesced(&session.identity_provider);
        }
        match result {
            Ok(tokens) => {
                if let Some(provider) = self.registry.get(&session.identity_provider) {
                    self.registry.idp_answered(provider);
                }
                if ran {
                    self.metrics
                        .idps
                        .count_refresh(&session.identity_provider, "ok");
                }
                Freshness::Refreshed(tokens)
            }
            Err(error) => {
                if ran {
                    self.metrics
                        .idps
                        .count_refresh(&session.identity_provider, error.outcome());
                    tracing::warn!(idp = session.identity_provider.as_str(), session = session.id.as_str(), %error, "token refresh failed");
                }
                if error.is_transient() {
                    if let Some(provider) = self.registry.get(&session.identity_provider) {
                        self.registry.idp_failed(provider);
                    }
                    self.failing.insert(key, ()).await;
                    self.transient(still_valid)
                } else {
                    Freshness::Ended(error.ended_reason())
                }
            }
        }
    }

    fn transient(&self, still_valid: bool) -> Freshness {
        if still_valid {
            Freshness::Current
        } else {
            Freshness::Unreachable
        }
    }

    async fn refresh(&self, session: &Session) -> Result<Tokens, RefreshError> {
        let provider = self
            .registry
            .get(&session.identity_provider)
            .ok_or_else(|| {
                RefreshError::InvalidGrant("the identity provider is no longer configured".into())
            })?;
        let discovered = provider
            .discovered()
            .ok_or_else(|| RefreshError::Unreachable("discovery has not succeeded".into()))?;
        let current = (&session.tokens, session.dpop.as_ref());
        oidc::refresh(
            &self.registry,
            provider,
            &discovered,
            current,
            self.id_token_checks,
        )
        .await
    }
}

/// One refresh per token set: requests carrying the same (old) tokens share it, while a
/// cookie that already holds the refreshed tokens is a new key even when the IdP keeps the
/// refresh token unchanged. Tokens are secrets: the cache holds only a hash.
fn cache_key(idp: &str, refresh_token: &str, access_token: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [idp, refresh_token, access_token] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}
