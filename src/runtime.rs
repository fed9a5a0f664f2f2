//! Everything a request needs, built once from the validated config.

use std::sync::Arc;

use crate::config::Config;
use crate::forwarding::SidecarCookies;
use crate::metrics::Metrics;
use crate::routing::Router;
use crate::upstream::UpstreamTarget;

pub struct Runtime {
    pub config: Config,
    pub router: Router,
    pub upstream: UpstreamTarget,
    pub sidecar_cookies: SidecarCookies,
    /// `headers.prefix` lower-cased once, as header names are compared lower-case.
    pub identity_prefix_lower: String,
    pub metrics: Arc<Metrics>,
}

impl Runtime {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Self {
        for (key, idp) in &config.identity_providers {
            if let Some(expire_at) = idp.oidc().and_then(|o| o.client_secret_expire_at) {
                metrics
                    .client_secret_expiry
                    .with_label_values(&[key])
                    .set(expire_at.timestamp());
            }
        }
        Runtime {
            router: Router::new(config.routes.clone(), &config.oidc.path_prefix),
            upstream: UpstreamTarget::new(config.server.upstream.clone()),
            sidecar_cookies: SidecarCookies::new(
                &config.session.cookie_name,
                &config.oidc.state_cookie_name,
            ),
            identity_prefix_lower: config.headers.prefix.to_ascii_lowercase(),
            metrics,
            config,
        }
    }
}
