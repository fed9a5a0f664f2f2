//! State shared between replicas, in Redis (`[store] kind = "redis"`).
//!
//! Every call is bounded by `store.timeout`; a failure is logged (rate-limited), counted in
//! `sso_sidecar_store_errors_total{op}` and reported as [`Unavailable`], so callers fall
//! back to what a single replica would do. With `kind = "memory"` there is no Redis and
//! every call is `Unavailable` at once, which is the same local behaviour.

mod connection;
pub mod file;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;

use crate::config::RedisConfig;
use crate::metrics::Metrics;
pub use crate::redis_topology::Topology;
use connection::{Connection, Connector};

/// One field of a Redis hash and its value.
pub type HashEntry = (Vec<u8>, Vec<u8>);

/// Redis could not be used for this call; do the local thing instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

pub struct Store {
    redis: Option<Redis>,
    metrics: Arc<Metrics>,
}

struct Redis {
    connector: Connector,
    prefix: String,
    timeout: Duration,
    load_timeout: Duration,
    server_side_sessions: bool,
    /// Unix seconds of the last "Redis is failing" log line, so an outage logs once a minute.
    last_warned: AtomicI64,
}

impl Store {
    pub fn new(config: Option<&RedisConfig>, metrics: Arc<Metrics>) -> Self {
        let redis = config.and_then(|c| match connect(c) {
            Ok(connector) => Some(Redis {
                connector,
                prefix: c.key_prefix.clone(),
                timeout: c.timeout,
                load_timeout: c.load_timeout,
                server_side_sessions: c.server_side_sessions,
                last_warned: AtomicI64::new(0),
            }),
            Err(error) => {
                // Validation checked the URL's form; this is what the client still refused.
                tracing::error!(%error, "store.url refused by the Redis client; using local state only");
                None
            }
        });
        Store { redis, metrics }
    }

    /// A store that never shares anything (tests, `kind = "memory"`).
    pub fn memory(metrics: Arc<Metrics>) -> Self {
        Store::new(None, metrics)
    }

    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// `store.load_timeout` (zero without Redis).
    pub fn load_timeout(&self) -> Duration {
        self.redis
            .as_ref()
            .map_or(Duration::ZERO, |r| r.load_timeout)
    }

    pub fn server_side_sessions(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| r.server_side_sessions)
    }

    /// `prefix` + `name`: every key and channel of one deployment shares the prefix.
    pub fn key(&self, name: &str) -> String {
        match &self.redis {
            Some(r) => format!("{}{name}", r.prefix),
            None => name.to_owned(),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        self.call("get", |mut c| {
            let key = key.to_owned();
            async move { c.get(key).await }
        })
        .await
    }

    /// `SET key value PX ttl`.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Unavailable> {
        self.call("set", |mut c| {
            let (key, value) = (key.to_owned(), value.to_vec());
            async move { c.pset_ex(key, value, millis(ttl)).await }
        })
        .await
    }

    /// `SET key value NX PX ttl`: true when this call created the key (took the lock).
    pub async fn set_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        self.call("set_nx", |mut c| {
            let (key, value) = (key.to_owned(), value.to_vec());
            async move {
                let created: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut c)
                    .await?;
                Ok(created.is_some())
            }
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), Unavailable> {
        self.call("del", |mut c| {
            let key = key.to_owned();
            async move { c.del(key).await }
        })
        .await
    }

    pub async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), Unavailable> {
        self.call("publish", |mut c| {
            let (channel, message) = (channel.to_owned(), message.to_vec());
            async move { c.publish(channel, message).await }
        })
        .await
    }

    /// `HSET key field value` and the hash's expiry set to `ttl` from now. Fields carry
    /// their own expiry in the value, for the reader to drop those past it.
    pub async fn hash_set(
        &self,
        key: &str,
        field: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        self.call("hset", |mut c| {
            let (key, field, value) = (key.to_owned(), field.to_vec(), value.to_vec());
            async move {
                redis::pipe()
                    .hset(&key, field, value)
                    .ignore()
                    // The newest field lives longest: the hash lives as long as it does.
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(millis(ttl))
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            }
        })
        .await
    }

    pub async fn hash_delete(&self, key: &str, fields: &[Vec<u8>]) -> Result<(), Unavailable> {
        if fields.is_empty() {
            return Ok(());
        }
        self.call("hdel", |mut c| {
            let (key, fields) = (key.to_owned(), fields.to_vec());
            async move { c.hdel(key, fields).await }
        })
        .await
    }

    /// Every field and value of hash `key`, read with `HSCAN` in batches: each batch is
    /// one call bounded by `store.timeout`, the whole read by `store.load_timeout`, so a
    /// large hash is read completely instead of timing out as one call.
    pub async fn hash_entries(&self, key: &str) -> Result<Vec<HashEntry>, Unavailable> {
        let Some(redis) = &self.redis else {
            return Err(Unavailable);
        };
        let deadline = tokio::time::Instant::now() + redis.load_timeout;
        let mut entries = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            if tokio::time::Instant::now() >= deadline {
                self.failed("hscan", "store.load_timeout passed");
                return Err(Unavailable);
            }
            let (next, batch): (u64, Vec<HashEntry>) = self
                .call("hscan", |mut c| {
                    let key = key.to_owned();
                    async move {
                        redis::cmd("HSCAN")
                            .arg(key)
                            .arg(cursor)
                            .arg("COUNT")
                            .arg(HSCAN_BATCH)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            entries.extend(batch);
            if next == 0 {
                return Ok(entries);
            }
            cursor = next;
        }
    }

    /// Calls `on_message` for every message published on `channel` until `stop` resolves,
    /// reconnecting after failures; `on_connect` runs after each (re)subscription, so the
    /// caller can load what it missed while disconnected.
    pub async fn follow<M, C, CF>(
        &self,
        channel: &str,
        mut on_connect: C,
        mut on_message: M,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) where
        M: FnMut(&[u8]),
        C: FnMut() -> CF,
        CF: std::future::Future<Output = ()>,
    {
        let Some(redis) = &self.redis else { return };
        loop {
            let subscribed = async {
                let mut pubsub = redis.connector.pubsub().await?;
                pubsub.subscribe(channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(redis.timeout * 4, subscribed).await {
                Ok(Ok(mut pubsub)) => {
                    tracing::info!(channel, "following shared revocations in Redis");
                    on_connect().await;
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            message = messages.next() => match message {
                                Some(message) => on_message(message.get_payload_bytes()),
                                None => break,
                            },
                        }
                    }
                    self.failed("subscribe", "the subscription ended");
                }
                Ok(Err(error)) => self.failed("subscribe", &error.to_string()),
                Err(_) => self.failed("subscribe", "timed out"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn call<T, F, Fut>(&self, op: &'static str, run: F) -> Result<T, Unavailable>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let Some(redis) = &self.redis else {
            return Err(Unavailable);
        };
        let attempt = async { run(redis.connector.connection().await?).await };
        let failure = match tokio::time::timeout(redis.timeout, attempt).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        redis.connector.call_failed();
        self.failed(op, &failure);
        Err(Unavailable)
    }

    fn failed(&self, op: &'static str, reason: &str) {
        self.metrics.backends.count_store_error(op);
        let Some(redis) = &self.redis else { return };
        let now = chrono::Utc::now().timestamp();
        let last = redis.last_warned.load(Ordering::Relaxed);
        if now - last >= 60
            && redis
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                op,
                reason,
                "Redis is not usable; falling back to local state (logged once a minute)"
            );
        }
    }
}

/// The connector for `config`'s topology; the error never repeats the URL.
fn connect(config: &RedisConfig) -> Result<Connector, String> {
    let topology = Topology::parse(config.url.expose(), config.cluster)?;
    Connector::new(topology, config.timeout).map_err(|e| e.to_string())
}

/// Fields per `HSCAN` call: large enough for few round trips, small enough for one call
/// to stay well inside `store.timeout`.
const HSCAN_BATCH: usize = 2_000;

fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_is_always_local() {
        let store = Store::memory(Arc::new(Metrics::new()));
        assert!(!store.is_shared());
        assert_eq!(store.get("k").await, Err(Unavailable));
        assert_eq!(
            store.set_new("k", b"v", Duration::from_secs(1)).await,
            Err(Unavailable)
        );
    }

    #[tokio::test]
    async fn unreachable_redis_fails_fast_and_is_counted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let metrics = Arc::new(Metrics::new());
        let config = RedisConfig {
            url: crate::config::Secret::new(format!("redis://127.0.0.1:{port}/0")),
            cluster: false,
            key_prefix: "t:".into(),
            timeout: Duration::from_millis(200),
            load_timeout: Duration::from_secs(1),
            server_side_sessions: false,
        };
        let store = Store::new(Some(&config), metrics.clone());
        let started = std::time::Instant::now();
        assert_eq!(store.get("k").await, Err(Unavailable));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(metrics
            .render()
            .contains("sso_sidecar_store_errors_total{op=\"get\"} 1"));
    }
}
