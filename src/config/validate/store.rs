//! `[store]`: memory or Redis (one server, Sentinel, cluster).

use super::*;
use crate::config::choice::choice;

/// `store.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Memory,
    Redis,
}

choice!(StoreKind {
    Memory => "memory",
    Redis => "redis",
});

impl Validator {
    pub(super) fn store(&mut self, raw: raw::RawStore) -> StoreConfig {
        let kind = self.choice("store.kind", raw.kind.as_deref(), StoreKind::Memory);
        let timeout = self.duration("store.timeout", raw.timeout, defaults::store::TIMEOUT);
        let load_timeout = self.duration(
            "store.load_timeout",
            raw.load_timeout,
            defaults::store::LOAD_TIMEOUT,
        );
        match kind {
            Some(StoreKind::Memory) => {
                for (set, key) in [
                    (raw.url.is_some(), "store.url"),
                    (raw.cluster.is_some(), "store.cluster"),
                    (
                        raw.server_side_sessions == Some(true),
                        "store.server_side_sessions",
                    ),
                ] {
                    if set {
                        self.problem(key, "needs store.kind = \"redis\"");
                    }
                }
                StoreConfig {
                    redis: None,
                    path: self.store_path(raw.path),
                }
            }
            Some(StoreKind::Redis) => {
                if raw.path.is_some() {
                    self.problem("store.path", "only with store.kind = \"memory\": Redis keeps what must outlive a restart");
                }
                let url = self.required_secret(
                    "store.url",
                    raw.url.as_deref(),
                    "e.g. \"env:SSO_REDIS_URL\" holding redis://host:6379/0",
                );
                let cluster = raw.cluster.unwrap_or(false);
                let url = url.filter(|url| {
                    match crate::redis_topology::Topology::parse(url.expose(), cluster) {
                        Ok(_) => true,
                        Err(problem) => {
                            self.problem("store.url", problem);
                            false
                        }
                    }
                });
                StoreConfig {
                    redis: url.map(|url| RedisConfig {
                        url,
                        cluster,
                        key_prefix: (raw.key_prefix)
                            .unwrap_or_else(|| defaults::store::KEY_PREFIX.to_owned()),
                        timeout,
                        load_timeout,
                        server_side_sessions: raw.server_side_sessions.unwrap_or(false),
                    }),
                    path: None,
                }
            }
            None => StoreConfig::default(),
        }
    }

    /// `store.path`: the file is opened (made) at start, where the volume is; a file that
    /// cannot be opened there stops the start with this key named (exit 2).
    fn store_path(&mut self, path: Option<String>) -> Option<std::path::PathBuf> {
        let path = path?;
        if path.trim().is_empty() {
            self.problem("store.path", "is empty");
            return None;
        }
        Some(std::path::PathBuf::from(path))
    }
}
