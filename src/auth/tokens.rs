//! Keeping a session's tokens fresh: refresh before `min_access_token_lifetime_left`, once
//! per refresh token however many requests arrive at the same moment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::oidc::{self, RefreshError, Registry};
use crate::session::{Session, Tokens};

/// How long a refresh result is handed to requests still carrying the old cookie: a
/// browser's parallel requests, and IdPs that revoke a rotated refresh token on reuse.
const REUSE_WINDOW: Duration = Duration::from_secs(30);
/// After a failed refresh (IdP down or slow), requests go on with the current token for a
/// while instead of each waiting for the IdP again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What to do with a session's tokens.
#[derive(Debug)]
pub enum Freshness {
    /// Good as they are.
    Current,
    /// Refreshed; the session cookie needs the new tokens.
    Refreshed(Arc<Tokens>),
    /// The session is over (`expired`, `invalid_grant`).
    Ended(&'static str),
    /// The token ran out and the IdP cannot be reached to refresh it.
    Unreachable,
}

pub struct TokenKeeper {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    fresh: Cache<[u8; 32], Arc<Tokens>>,
    failing: Cache<[u8; 32], ()>,
    min_left: i64,
    skew: i64,
}

impl TokenKeeper {
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        min_left: Duration,
        skew: Duration,
    ) -> Self {
        TokenKeeper {
            registry,
            metrics,
            fresh: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REUSE_WINDOW)
                .build(),
            failing: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(RETRY_AFTER)
                .build(),
            min_left: min_left.as_secs() as i64,
            skew: skew.as_secs() as i64,
        }
    }

    pub async fn ensure_fresh(&self, session: &Session, now: i64) -> Freshness {
        let Some(expires_at) = session.tokens.access_expires_at else {
            return Freshness::Current;
        };
        if expires_at - now > self.min_left {
            return Freshness::Current;
        }
        let still_valid = now < expires_at + self.skew;
        let Some(refresh_token) = session.tokens.refresh_token.as_deref() else {
            return if still_valid {
                Freshness::Current
            } else {
                Freshness::Ended("expired")
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
        let ran = AtomicBool::new(false);
        let result = self
            .fresh
            .try_get_with(key, async {
                ran.store(true, Ordering::Relaxed);
                self.refresh(session).await.map(Arc::new)
            })
            .await;
        let ran = ran.load(Ordering::Relaxed);
        if !ran {
            self.metrics
                .count_refresh_coalesced(&session.identity_provider);
        }
        match result {
            Ok(tokens) => {
                if ran {
                    self.metrics.count_refresh(&session.identity_provider, "ok");
                }
                Freshness::Refreshed(tokens)
            }
            Err(error) => {
                if ran {
                    self.metrics
                        .count_refresh(&session.identity_provider, error.outcome());
                    tracing::warn!(idp = session.identity_provider.as_str(), session = session.id.as_str(), %error, "token refresh failed");
                }
                if error.is_transient() {
                    self.failing.insert(key, ()).await;
                    self.transient(still_valid)
                } else {
                    Freshness::Ended("invalid_grant")
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
        oidc::refresh(&self.registry, provider, &discovered, &session.tokens).await
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
