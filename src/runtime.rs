//! Everything a request needs, built once from the validated config.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;

use crate::assertion::AssertionSigner;
use crate::auth::{AuthService, Lasting};
use crate::config::{Config, IdentityHeader};
use crate::metrics::Metrics;
use crate::oidc::Registry;
use crate::routing::Router;
use crate::upstream::UpstreamTarget;

pub struct Runtime {
    pub config: Config,
    pub router: Router,
    pub upstream: UpstreamTarget,
    pub sidecar_cookies: crate::session::CookieNames,
    /// `headers.prefix` lower-cased once, as header names are compared lower-case.
    pub identity_prefix_lower: String,
    /// The configured identity headers with their full names, built once.
    pub identity_headers: Vec<(IdentityHeader, HeaderName)>,
    /// Organization key → `X-SSO-Self-Administration` value.
    pub self_administration: HashMap<String, &'static str>,
    /// `server.client_idle_timeout` in whole seconds (at least 1).
    pub client_idle_secs: u64,
    /// `headers.strip_untrusted`, removed unless the peer is a trusted proxy.
    pub untrusted_headers: Vec<HeaderName>,
    /// `X-SSO-Assertion` (with the configured prefix) and its signer.
    pub assertion: Option<(HeaderName, Arc<AssertionSigner>)>,
    pub auth: AuthService,
    pub metrics: Arc<Metrics>,
    /// `server.upstream_ca` as pingora's upstream TLS wants it, built once.
    pub upstream_ca: Option<Arc<pingora::protocols::tls::CaType>>,
}

impl Runtime {
    /// `lasting` outlives a reload: revocations, the Redis connection, refresh results.
    pub fn new(config: Config, lasting: &Lasting) -> Self {
        let metrics = &lasting.metrics;
        for (key, idp) in &config.identity_providers {
            if let Some(expire_at) = idp.oidc().and_then(|o| o.client_secret_expire_at) {
                metrics
                    .client_secret_expiry
                    .with_label_values(&[key])
                    .set(expire_at.timestamp());
            }
        }
        let identity_headers = config
            .headers
            .claims
            .iter()
            .filter_map(|h| {
                let name = format!("{}{}", config.headers.prefix, h.suffix()).to_ascii_lowercase();
                HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .map(|name| (*h, name))
            })
            .collect();
        let self_administration = config
            .organizations
            .iter()
            .map(|(k, o)| (k.clone(), o.self_administration.header_value()))
            .collect();
        let untrusted_headers = config
            .headers
            .strip_untrusted
            .iter()
            .filter_map(|name| HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok())
            .collect();
        let assertion = AssertionSigner::new(&config).and_then(|signer| {
            let name = format!("{}Assertion", config.headers.prefix).to_ascii_lowercase();
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            Some((name, Arc::new(signer)))
        });
        let registry = Arc::new(Registry::new(&config, metrics.clone()));
        let upstream_ca = config.server.upstream_ca.as_ref().map(|certs| {
            let wrapped: Vec<_> = certs
                .iter()
                .map(|der| {
                    // Validation parsed each one, so this parse (which panics) succeeds.
                    pingora::utils::tls::WrappedX509::new(
                        der.clone(),
                        pingora::utils::tls::parse_x509,
                    )
                })
                .collect();
            Arc::<pingora::protocols::tls::CaType>::from(wrapped)
        });
        Runtime {
            upstream_ca,
            router: Router::new(config.routes.clone(), &config.oidc.path_prefix),
            upstream: UpstreamTarget::new(config.server.upstream.clone()),
            sidecar_cookies: crate::session::CookieNames::new(&config),
            identity_prefix_lower: config.headers.prefix.to_ascii_lowercase(),
            identity_headers,
            self_administration,
            untrusted_headers,
            client_idle_secs: config.server.client_idle_timeout.as_secs().max(1),
            auth: AuthService::new(
                &config,
                registry,
                lasting,
                assertion.as_ref().map(|(_, signer)| signer.clone()),
            ),
            assertion,
            metrics: metrics.clone(),
            config,
        }
    }
}
