//! The identity providers' metadata: discovered in the background at start-up, retried with
//! backoff, refreshed every `jwk_cache_lifetime` (which also refetches the signing keys).
//! An IdP that fails does not hold up the others; its last good metadata stays in use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use openidconnect::core::CoreClient;
use openidconnect::{
    AuthType, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    RedirectUrl,
};
use serde::Serialize;

use super::health::{PROBE_EVERY, PROBE_TIMEOUT};
use super::metadata::Metadata;
use crate::config::{AcrWanted, Config, IdentityProvider, OidcProvider, TokenEndpointAuth};
use crate::metrics::Metrics;

/// At most one forced key refetch per IdP in this time, however many tokens name an
/// unknown key: a flood of forged tokens must not become a flood of requests to the IdP.
const KEY_REFETCH_INTERVAL_SECS: i64 = 10;

pub type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What discovery produced for one IdP.
pub struct Discovered {
    pub client: OidcClient,
    /// How the sidecar authenticates as the client at this IdP.
    pub auth: super::client_auth::ClientAuth,
    pub metadata: Metadata,
    /// The signing keys in `jsonwebtoken`'s form, for logout and access tokens.
    pub jwks: jsonwebtoken::jwk::JwkSet,
}

#[derive(Clone)]
pub enum Status {
    Pending {
        attempts: u32,
        last_error: Option<String>,
    },
    Ready {
        discovered: Arc<Discovered>,
        at: Instant,
        last_error: Option<String>,
    },
}

pub struct Provider {
    pub key: String,
    pub name: String,
    pub config: OidcProvider,
    status: ArcSwap<Status>,
    /// The client for this IdP's calls: the shared settings, plus its `ca_file` roots.
    pub http: reqwest::Client,
    /// Unix seconds of the last forced key refetch.
    last_key_refetch: std::sync::atomic::AtomicI64,
    /// Whether it answers ([`super::health`]).
    pub health: super::health::Health,
    /// The IdP's latest `DPoP-Nonce` (RFC 9449 §8), for the next proof.
    pub dpop_nonce: std::sync::Mutex<Option<String>>,
}

impl Provider {
    pub fn discovered(&self) -> Option<Arc<Discovered>> {
        match &**self.status.load() {
            Status::Ready { discovered, .. } => Some(discovered.clone()),
            Status::Pending { .. } => None,
        }
    }

    pub fn last_error(&self) -> Option<String> {
        match &**self.status.load() {
            Status::Ready { last_error, .. } | Status::Pending { last_error, .. } => {
                last_error.clone()
            }
        }
    }
}

/// One IdP's state as `/readyz` shows it.
#[derive(Debug, Serialize)]
pub struct ProviderReport {
    pub state: &'static str,
    /// Whether it answers now (a sign-in is not sent to it when not).
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Registry {
    providers: BTreeMap<String, Arc<Provider>>,
    /// Set when a config reload replaced this registry: its discovery tasks stop.
    retired: tokio::sync::watch::Sender<bool>,
    pub http: reqwest::Client,
    redirect_uri: Option<RedirectUrl>,
    refresh_every: Duration,
    metrics: Arc<Metrics>,
    /// What step-up routes ask of each IdP, to warn when its discovery does not offer it.
    acr_wanted: Vec<AcrWanted>,
}

impl Registry {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        let providers = if config.oidc.remote {
            config
                .identity_providers
                .values()
                .filter_map(|idp: &IdentityProvider| {
                    let oidc = idp.oidc()?.clone();
                    let http = http_client_for(
                        config.oidc.http_timeout,
                        &oidc.ca_certificates,
                        oidc.client_certificate
                            .as_ref()
                            .map(|c| c.expose().as_bytes()),
                    );
                    let provider = Provider {
                        key: idp.key.clone(),
                        name: idp.name.clone(),
                        config: oidc,
                        status: ArcSwap::from_pointee(Status::Pending {
                            attempts: 0,
                            last_error: None,
                        }),
                        http,
                        last_key_refetch: std::sync::atomic::AtomicI64::new(0),
                        health: Default::default(),
                        dpop_nonce: Default::default(),
                    };
                    Some((idp.key.clone(), Arc::new(provider)))
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let redirect_uri = config.server.public_url.as_ref().and_then(|base| {
            let mut url = base.clone();
            url.set_path(&format!("{}/callback", config.oidc.path_prefix));
            RedirectUrl::from_url(url).into()
        });
        Registry {
            providers,
            retired: tokio::sync::watch::channel(false).0,
            http: http_client(config.oidc.http_timeout),
            redirect_uri,
            refresh_every: config.oidc.jwk_cache_lifetime,
            metrics,
            acr_wanted: config.acr_values_wanted(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    pub fn get(&self, key: &str) -> Option<&Arc<Provider>> {
        self.providers.get(key)
    }

    pub fn report(&self) -> BTreeMap<String, ProviderReport> {
        self.providers
            .iter()
            .map(|(key, p)| {
                let state = match &**p.status.load() {
                    Status::Ready { .. } => "ready",
                    Status::Pending { attempts: 0, .. } => "discovering",
                    Status::Pending { .. } => "failed",
                };
                (
                    key.clone(),
                    ProviderReport {
                        state,
                        up: p.health.is_up() && p.discovered().is_some(),
                        error: p.last_error(),
                    },
                )
            })
            .collect()
    }

    /// Discovers every IdP, each in its own task, forever: with backoff until it succeeds,
    /// then again every `jwk_cache_lifetime`.
    pub fn spawn_discovery(self: &Arc<Self>) {
        for provider in self.providers.values() {
            let registry = self.clone();
            let provider = provider.clone();
            tokio::spawn(async move { registry.keep_discovered(&provider).await });
        }
    }

    /// Stops this registry's discovery tasks (after a config reload replaced it).
    pub fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// Sleeps, unless the registry is retired first (false) or a call found `provider` down
    /// (its discovery probes it at once); while it is down, at most [`PROBE_EVERY`].
    async fn sleep_unless_retired(&self, provider: &Provider, duration: Duration) -> bool {
        let mut retired = self.retired.subscribe();
        if *retired.borrow() {
            return false;
        }
        let duration = match provider.health.is_up() {
            true => duration,
            false => duration.min(PROBE_EVERY),
        };
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = provider.health.wake.notified() => true,
            _ = retired.changed() => false,
        }
    }

    /// A sign-in's check: down is down; in doubt (nothing heard for a while), a short
    /// probe of the discovery document decides.
    pub async fn answers(&self, provider: &Provider, now: i64) -> bool {
        if !provider.health.in_doubt(now) {
            return provider.health.is_up();
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            provider.config.issuer.trim_end_matches('/')
        );
        let probe = provider.http.get(url).timeout(PROBE_TIMEOUT).send().await;
        match probe {
            Ok(answer) if !answer.status().is_server_error() => {
                provider.health.answered(now);
                self.metrics.idps.set_up(&provider.key, true);
                true
            }
            _ => {
                self.idp_failed(provider);
                false
            }
        }
    }

    /// A call to `provider` could not reach it: it is down until it answers again.
    pub fn idp_failed(&self, provider: &Provider) {
        provider.health.failed();
        self.metrics.idps.set_up(&provider.key, false);
    }

    /// `provider` answered.
    pub fn idp_answered(&self, provider: &Provider) {
        provider.health.answered(chrono::Utc::now().timestamp());
        self.metrics.idps.set_up(&provider.key, true);
    }

    async fn keep_discovered(&self, provider: &Provider) {
        let mut attempts = 0u32;
        loop {
            if *self.retired.borrow() {
                return;
            }
            match self.discover(provider).await {
                Ok(discovered) => {
                    attempts = 0;
                    provider.status.store(Arc::new(Status::Ready {
                        discovered: Arc::new(discovered),
                        at: Instant::now(),
                        last_error: None,
                    }));
                    tracing::info!(idp = provider.key.as_str(), "identity provider discovered");
                    self.idp_answered(provider);
                    for warning in self.step_up_warnings(provider) {
                        tracing::warn!(idp = provider.key.as_str(), "{warning}");
                    }
                    if !self
                        .sleep_unless_retired(provider, self.refresh_every)
                        .await
                    {
                        return;
                    }
                }
                Err(error) => {
                    attempts += 1;
                    tracing::warn!(idp = provider.key.as_str(), attempts, %error, "identity provider discovery failed");
                    self.idp_failed(provider);
                    let next = match &**provider.status.load() {
                        // Keep using the last good metadata; only note the failure.
                        Status::Ready { discovered, at, .. } => Status::Ready {
                            discovered: discovered.clone(),
                            at: *at,
                            last_error: Some(error),
                        },
                        Status::Pending { .. } => Status::Pending {
                            attempts,
                            last_error: Some(error),
                        },
                    };
                    provider.status.store(Arc::new(next));
                    if !self.sleep_unless_retired(provider, backoff(attempts)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Routes whose step-up `provider` cannot give, by its discovery (none before it).
    pub fn step_up_warnings(&self, provider: &Provider) -> Vec<String> {
        match provider.discovered() {
            Some(discovered) => self.acr_warnings(&provider.key, &discovered),
            None => Vec::new(),
        }
    }

    /// Routes asking `idp` for `acr` values its discovery document does not list.
    pub fn acr_warnings(&self, idp: &str, discovered: &Discovered) -> Vec<String> {
        let supported: Vec<String> = (discovered.metadata.acr_values_supported())
            .map(|values| values.iter().map(|v| v.as_str().to_owned()).collect())
            .unwrap_or_default();
        (self.acr_wanted.iter())
            .filter_map(|wanted| wanted.unsupported_by(idp, &supported))
            .collect()
    }

    /// Fetches metadata and keys now (also used when a token names an unknown key).
    pub async fn discover(&self, provider: &Provider) -> Result<Discovered, String> {
        let started = Instant::now();
        let issuer = IssuerUrl::new(provider.config.issuer.clone()).map_err(|e| e.to_string())?;
        let result = Metadata::discover_async(issuer, &provider.http).await;
        self.metrics
            .idps
            .observe_idp_call(&provider.key, "discovery", started.elapsed());
        let metadata = match result {
            Ok(metadata) => {
                self.metrics.idps.count_discovery(&provider.key, "ok");
                metadata
            }
            Err(e) => {
                self.metrics.idps.count_discovery(&provider.key, "error");
                return Err(crate::error_chain::error_chain(&e));
            }
        };
        let auth = super::client_auth::ClientAuth::choose(&provider.config, &metadata);
        // The library sends the secret methods itself; for the others it sends the client
        // id in the form, and the calls add the assertion (or the TLS client certificate
        // proves the client).
        let (secret, auth_type) = match auth.method {
            TokenEndpointAuth::ClientSecretBasic => (true, AuthType::BasicAuth),
            TokenEndpointAuth::ClientSecretPost => (true, AuthType::RequestBody),
            _ => (false, AuthType::RequestBody),
        };
        let mut client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(provider.config.client_id.clone()),
            secret.then(|| ClientSecret::new(provider.config.client_secret.expose().to_owned())),
        )
        .set_auth_type(auth_type);
        if let Some(redirect) = &self.redirect_uri {
            client = client.set_redirect_uri(redirect.clone());
        }
        let jwks = convert_jwks(&metadata);
        Ok(Discovered {
            client,
            auth,
            metadata,
            jwks,
        })
    }

    /// The IdP by its issuer, as named in a token's `iss`.
    /// Every entry with this issuer: several entries may share one (two clients of one
    /// realm), and tokens of that issuer concern each of them.
    pub fn all_by_issuer<'a>(&'a self, issuer: &'a str) -> impl Iterator<Item = &'a Arc<Provider>> {
        self.providers
            .values()
            .filter(move |p| p.config.issuer == issuer)
    }

    /// Refetches metadata and keys now because a token named a key we do not know, at most
    /// once per [`KEY_REFETCH_INTERVAL_SECS`]. Returns the fresh state when it fetched.
    pub async fn refetch_keys(&self, provider: &Provider) -> Option<Arc<Discovered>> {
        use std::sync::atomic::Ordering;
        let now = chrono::Utc::now().timestamp();
        let last = provider.last_key_refetch.load(Ordering::Relaxed);
        if now - last < KEY_REFETCH_INTERVAL_SECS
            || provider
                .last_key_refetch
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        self.metrics.idps.count_key_refetch(&provider.key);
        match self.discover(provider).await {
            Ok(discovered) => {
                let discovered = Arc::new(discovered);
                provider.status.store(Arc::new(Status::Ready {
                    discovered: discovered.clone(),
                    at: Instant::now(),
                    last_error: None,
                }));
                tracing::info!(
                    idp = provider.key.as_str(),
                    "signing keys refetched for an unknown key id"
                );
                Some(discovered)
            }
            Err(error) => {
                tracing::warn!(idp = provider.key.as_str(), %error, "key refetch failed");
                None
            }
        }
    }
}

/// The IdP's keys for `jsonwebtoken`; keys it cannot use (encryption keys, unknown types)
/// are skipped rather than failing the whole set.
fn convert_jwks(metadata: &Metadata) -> jsonwebtoken::jwk::JwkSet {
    let keys = serde_json::to_value(metadata.jwks())
        .ok()
        .and_then(|v| v.get("keys").and_then(|k| k.as_array()).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|key| serde_json::from_value(key).ok())
        .collect();
    jsonwebtoken::jwk::JwkSet { keys }
}

/// 1 s, 2 s, 4 s … capped at 60 s.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// The HTTP client for IdP calls: every call has a timeout, and redirects are not followed
/// (a redirected token request could leak the client secret to another host).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    http_client_trusting(timeout, &[])
}

/// [`http_client`] that also trusts these roots (DER), for an IdP behind a private CA.
pub fn http_client_trusting(timeout: Duration, roots: &[Vec<u8>]) -> reqwest::Client {
    http_client_for(timeout, roots, None)
}

/// [`http_client_trusting`] that presents a TLS client certificate (`identity`: PEM
/// certificate and key), for `tls_client_auth`.
pub fn http_client_for(
    timeout: Duration,
    roots: &[Vec<u8>],
    identity: Option<&[u8]>,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sso-sidecar/", env!("CARGO_PKG_VERSION")));
    // Checked when the config was read; one that fails here is left out, not trusted.
    for root in roots
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
    {
        builder = builder.add_root_certificate(root);
    }
    // Checked when the config was read.
    if let Some(identity) = identity.and_then(|pem| reqwest::Identity::from_pem(pem).ok()) {
        builder = builder.identity(identity);
    }
    builder.build().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
