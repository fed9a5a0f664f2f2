//! One refresh per token set across replicas. IdPs that rotate refresh tokens (and Spree,
//! which always does) end the session when a used refresh token comes back, so when two
//! replicas see the same expiring session, only one may refresh: the first takes a short
//! lock in Redis and refreshes, the others wait for its result, sealed with the session
//! keys. Any Redis failure means refreshing here, as a single replica would.
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
use crate::store::Store;

/// How long a refresh result is handed to requests still carrying the old cookie: a
/// browser's parallel requests, and IdPs that revoke a rotated refresh token on reuse.
pub const REUSE_WINDOW: Duration = Duration::from_secs(30);
/// How often a replica that lost the race for a refresh looks for the winner's result.
const POLL: Duration = Duration::from_millis(20);

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
        E: Send + Sync + 'static,
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
            match self.store.get(&result_key).await {
                Ok(Some(sealed)) => {
                    if let Some(result) = self.open(&sealed) {
                        return Ok(result);
                    }
                }
                Ok(None) => {}
                Err(_) => break false,
            }
            match self.store.set_new(&lock_key, b"1", self.wait_limit).await {
                Ok(true) => break true,
                // The winner is gone or stuck past the IdP timeout: do it here.
                Ok(false) if tokio::time::Instant::now() >= deadline => break false,
                Ok(false) => tokio::time::sleep(POLL).await,
                Err(_) => break false,
            }
        };
        let result = refresh().await;
        if locked {
            if let Ok(value) = &result {
                let _ = self
                    .store
                    .set(&result_key, self.seal(value).as_bytes(), REUSE_WINDOW)
                    .await;
            }
            let _ = self.store.delete(&lock_key).await;
        }
        result
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
