//! One refresh per token set across replicas. IdPs that rotate refresh tokens (and Spree,
//! which always does) end the session when a used refresh token comes back, so when two
//! replicas see the same expiring session, only one may refresh: the first takes a short
//! lock in Redis and refreshes, the others wait for its result, sealed with the session
//! keys. Any Redis failure means refreshing here, as a single replica would; a replica
//! whose refresh token is then refused looks once more for another replica's result
//! before it ends the session (the other one may have used the token first).
//!
//! Within one replica the callers' caches ([`RefreshResults`]) already make parallel
//! requests share one refresh; those caches outlive a config reload.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use moka::future::Cache;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::session::{BackendTokens, Sealer, Tokens};
use crate::store::{Store, Unavailable};

/// How long a refresh result is handed to requests still carrying the old cookie: a
/// browser's parallel requests, and IdPs that revoke a rotated refresh token on reuse.
pub const REUSE_WINDOW: Duration = Duration::from_secs(30);
/// How often a replica that lost the race for a refresh looks for the winner's result.
const POLL: Duration = Duration::from_millis(20);
/// How long a replica whose refresh token was refused looks for another replica's result:
/// the IdP took that replica's refresh first, so its answer is already on the way.
const LATE_RESULT_WAIT: Duration = Duration::from_secs(1);

/// Recent refresh results by token-set hash, kept across config reloads so requests with
/// an old cookie still get the result during a reload.
pub struct RefreshResults {
    pub(super) tokens: Cache<[u8; 32], Arc<Tokens>>,
    pub(super) backend: Cache<[u8; 32], Arc<BackendTokens>>,
}

impl Default for RefreshResults {
    fn default() -> Self {
        RefreshResults {
            tokens: recent_results(),
            backend: recent_results(),
        }
    }
}

fn recent_results<V: Clone + Send + Sync + 'static>() -> Cache<[u8; 32], V> {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(REUSE_WINDOW)
        .build()
}

/// A refresh error that may only mean another replica used the (rotated) token first.
pub trait TokenRefused {
    fn token_refused(&self) -> bool;
}

impl TokenRefused for crate::oidc::RefreshError {
    fn token_refused(&self) -> bool {
        matches!(self, crate::oidc::RefreshError::InvalidGrant(_))
    }
}

impl TokenRefused for crate::backend::spree::SpreeError {
    fn token_refused(&self) -> bool {
        matches!(self, crate::backend::spree::SpreeError::Refused(_))
    }
}

/// The cross-replica part: a lock and a sealed result per token set in the store.
pub struct SharedRefresh {
    store: Arc<Store>,
    sealer: Sealer,
    /// Distinguishes what is refreshed (IdP tokens, Spree tokens) in keys and sealing.
    kind: &'static str,
    /// How long a replica waits for another one's refresh before doing its own.
    wait_limit: Duration,
}

impl SharedRefresh {
    pub fn new(
        store: Arc<Store>,
        sealer: Sealer,
        kind: &'static str,
        wait_limit: Duration,
    ) -> Self {
        SharedRefresh {
            store,
            sealer,
            kind,
            wait_limit,
        }
    }

    /// One refresh of the token set `key`: requests here share it through `recent`, other
    /// replicas through the store. Also says whether this request ran `refresh` itself
    /// (rather than taking another's result), for counting calls to the IdP.
    pub async fn once<T, E, F, Fut>(
        &self,
        recent: &Cache<[u8; 32], Arc<T>>,
        key: [u8; 32],
        refresh: F,
    ) -> (Result<Arc<T>, Arc<E>>, bool)
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: TokenRefused + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let ran = AtomicBool::new(false);
        let result = recent
            .try_get_with(key, async {
                let refresh_here = || {
                    ran.store(true, Ordering::Relaxed);
                    refresh()
                };
                self.run(&key, refresh_here).await.map(Arc::new)
            })
            .await;
        (result, ran.load(Ordering::Relaxed))
    }

    /// Runs `refresh` here unless another replica is already refreshing the token set
    /// `key`, in which case its result is used.
    pub async fn run<T, E, F, Fut>(&self, key: &[u8; 32], refresh: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: TokenRefused,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        if !self.store.is_shared() {
            return refresh().await;
        }
        let name = URL_SAFE_NO_PAD.encode(key);
        let result_key = self.store.key(&format!("{}:{name}", self.kind));
        let lock_key = self.store.key(&format!("{}-lock:{name}", self.kind));
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        let locked = loop {
            match self.result(&result_key).await {
                Ok(Some(result)) => return Ok(result),
                Ok(None) => {}
                Err(Unavailable) => break false,
            }
            match self.store.set_new(&lock_key, b"1", self.wait_limit).await {
                Ok(true) => break true,
                // The winner is gone or stuck past the IdP timeout: do it here.
                Ok(false) if tokio::time::Instant::now() >= deadline => break false,
                Ok(false) => tokio::time::sleep(POLL).await,
                Err(_) => break false,
            }
        };
        let result = match refresh().await {
            // Shared even without the lock: a replica that refreshed at the same moment
            // (Redis was slow for one of them) finds it below.
            Ok(value) => {
                let sealed = self.seal(&value);
                let _ = (self.store)
                    .set(&result_key, sealed.as_bytes(), REUSE_WINDOW)
                    .await;
                Ok(value)
            }
            Err(error) if error.token_refused() => {
                match self.result_within(&result_key, LATE_RESULT_WAIT).await {
                    Some(value) => Ok(value),
                    None => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        if locked {
            let _ = self.store.delete(&lock_key).await;
        }
        result
    }

    /// Another replica's sealed result for this token set, if there is one yet.
    async fn result<T: DeserializeOwned>(
        &self,
        result_key: &str,
    ) -> Result<Option<T>, Unavailable> {
        let sealed = self.store.get(result_key).await?;
        Ok(sealed.and_then(|sealed| self.open(&sealed)))
    }

    /// Waits up to `limit` for another replica's result (its answer from the IdP may still
    /// be on its way); none when Redis fails.
    async fn result_within<T: DeserializeOwned>(
        &self,
        result_key: &str,
        limit: Duration,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(result) = self.result(result_key).await.ok()? {
                return Some(result);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn seal<T: Serialize>(&self, value: &T) -> String {
        let bytes = postcard::to_stdvec(value).unwrap_or_default();
        self.sealer.seal(self.kind, &bytes)
    }

    fn open<T: DeserializeOwned>(&self, sealed: &[u8]) -> Option<T> {
        let plain = self
            .sealer
            .open(self.kind, std::str::from_utf8(sealed).ok()?)?;
        postcard::from_bytes(&plain).ok()
    }
}
