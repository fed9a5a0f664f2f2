//! Keeping a session's tokens fresh: refresh before `min_access_token_lifetime_left`, once
//! per refresh token however many requests arrive at the same moment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::oidc::{self, RefreshError, Registry};
use crate::session::{Sealer, Session, Tokens};
use crate::store::Store;

/// How long a refresh result is handed to requests still carrying the old cookie: a
/// browser's parallel requests, and IdPs that revoke a rotated refresh token on reuse.
const REUSE_WINDOW: Duration = Duration::from_secs(30);
/// After a failed refresh (IdP down or slow), requests go on with the current token for a
/// while instead of each waiting for the IdP again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often a replica that lost the race for a refresh looks for the winner's result.
const POLL: Duration = Duration::from_millis(20);
/// Associated data of token sets sealed for other replicas.
const SEALED_NAME: &str = "refreshed-tokens";

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
    /// With Redis: one refresh per token set across all replicas.
    store: Arc<Store>,
    sealer: Sealer,
    /// How long a replica waits for another one's refresh before doing its own.
    wait_limit: Duration,
    fresh: Cache<[u8; 32], Arc<Tokens>>,
    failing: Cache<[u8; 32], ()>,
    min_left: i64,
    skew: i64,
}

impl TokenKeeper {
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        store: Arc<Store>,
        config: &crate::config::Config,
    ) -> Self {
        let min_left = config.oidc.min_access_token_lifetime_left;
        let skew = config.oidc.max_clock_skew;
        TokenKeeper {
            registry,
            metrics,
            store,
            sealer: Sealer::new(&config.session.keys),
            wait_limit: config.oidc.http_timeout + Duration::from_secs(1),
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
        if expires_at.saturating_sub(now) > self.min_left {
            return Freshness::Current;
        }
        let still_valid = now < expires_at.saturating_add(self.skew);
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
        // Set when this request called the IdP (not when it used another's refresh).
        let ran = AtomicBool::new(false);
        let result = self
            .fresh
            .try_get_with(key, async {
                self.refresh_once_everywhere(session, &key, &ran)
                    .await
                    .map(Arc::new)
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

    /// Across replicas sharing Redis: the first takes a short lock and refreshes, the others
    /// wait for its result (sealed with the session keys) instead of spending the refresh
    /// token a second time. Any Redis failure means refreshing here, as a single replica would.
    async fn refresh_once_everywhere(
        &self,
        session: &Session,
        key: &[u8; 32],
        ran: &AtomicBool,
    ) -> Result<Tokens, RefreshError> {
        let refresh_here = || {
            ran.store(true, Ordering::Relaxed);
            self.refresh(session)
        };
        if !self.store.is_shared() {
            return refresh_here().await;
        }
        let name = URL_SAFE_NO_PAD.encode(key);
        let result_key = self.store.key(&format!("refreshed:{name}"));
        let lock_key = self.store.key(&format!("refreshing:{name}"));
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        loop {
            match self.store.get(&result_key).await {
                Ok(Some(sealed)) => {
                    if let Some(tokens) = self.open(&sealed) {
                        return Ok(tokens);
                    }
                }
                Ok(None) => {}
                Err(_) => return refresh_here().await,
            }
            match self.store.set_new(&lock_key, b"1", self.wait_limit).await {
                Ok(true) => {
                    let result = refresh_here().await;
                    if let Ok(tokens) = &result {
                        let _ = self
                            .store
                            .set(&result_key, self.seal(tokens).as_bytes(), REUSE_WINDOW)
                            .await;
                    }
                    let _ = self.store.delete(&lock_key).await;
                    return result;
                }
                // The winner is gone or stuck past the IdP timeout: do it here.
                Ok(false) if tokio::time::Instant::now() >= deadline => {
                    return refresh_here().await
                }
                Ok(false) => tokio::time::sleep(POLL).await,
                Err(_) => return refresh_here().await,
            }
        }
    }

    fn seal(&self, tokens: &Tokens) -> String {
        let bytes = postcard::to_stdvec(tokens).unwrap_or_default();
        self.sealer.seal(SEALED_NAME, &bytes)
    }

    fn open(&self, sealed: &[u8]) -> Option<Tokens> {
        let plain = self
            .sealer
            .open(SEALED_NAME, std::str::from_utf8(sealed).ok()?)?;
        postcard::from_bytes(&plain).ok()
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
