//! Everything a request needs, built once from the validated config.

use std::sync::Arc;

use crate::assertion::AssertionSigner;
use crate::auth::{AuthService, Lasting};
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::oidc::Registry;
use crate::pages::Pages;
use crate::routing::Router;
use crate::upstream::UpstreamTarget;
use crate::upstream_headers::UpstreamHeaders;

pub struct Runtime {
    pub config: Config,
    pub router: Router,
    pub upstream: UpstreamTarget,
    /// Everything the upstream is told besides the request itself.
    pub upstream_headers: UpstreamHeaders,
    /// `server.client_idle_timeout` in whole seconds (at least 1).
    pub client_idle_secs: u64,
    /// The scheme clients use to reach us: `https` where we terminate TLS.
    pub own_scheme: &'static str,
    pub auth: AuthService,
    pub metrics: Arc<Metrics>,
    /// The sidecar's own pages in the shop's look and languages.
    pub pages: Pages,
}

/// Reads and validates a config file, with the templates and messages of its `[pages]`
/// compiled and checked: what `check`, `run` and a reload accept.
pub fn load(path: &std::path::Path) -> Result<(Config, Pages), ConfigError> {
    let config = crate::config::load(path)?;
    match Pages::new(&config.pages, &config.oidc.path_prefix) {
        Ok(pages) => Ok((config, pages)),
        Err(problems) => Err(ConfigError {
            file: path.to_owned(),
            problems,
        }),
    }
}

impl Runtime {
    /// `lasting` outlives a reload: revocations, the Redis connection, refresh results.
    pub fn new(config: Config, pages: Pages, lasting: &Lasting) -> Self {
        let metrics = &lasting.metrics;
        for (key, idp) in &config.identity_providers {
            if let Some(expire_at) = idp.oidc().and_then(|o| o.client_secret_expire_at) {
                (metrics.idps).set_client_secret_expiry(key, expire_at.timestamp());
            }
        }
        let upstream_headers =
            UpstreamHeaders::new(&config, AssertionSigner::new(&config).map(Arc::new));
        let registry = Arc::new(Registry::new(&config, metrics.clone()));
        Runtime {
            router: Router::new(config.routes.clone(), &config.oidc.path_prefix),
            upstream: UpstreamTarget::new(config.server.upstream.clone()),
            client_idle_secs: config.server.client_idle_timeout.as_secs().max(1),
            own_scheme: if config.server.tls.is_some() {
                "https"
            } else {
                "http"
            },
            auth: AuthService::new(
                &config,
                registry,
                lasting,
                upstream_headers.assertion_signer().cloned(),
            ),
            upstream_headers,
            metrics: metrics.clone(),
            pages,
            config,
        }
    }
}
