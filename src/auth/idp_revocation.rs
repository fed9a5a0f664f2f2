//! RFC 7009 at the IdP: a session that ends here (a logout of any policy, a revocation
//! seen by the gate, a user who left the organization) takes its refresh and access
//! tokens with it, so a copy of them is no good at the IdP either. In the background:
//! a failure is logged and counted, and never holds up the answer.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::oidc::logout::revoke_token;
use crate::oidc::Registry;
use crate::session::Session;

pub struct IdpRevocation {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// Token sets revoked lately, by digest: a revoked cookie sent again and again costs
    /// the IdP one call, not one per request.
    done: moka::sync::Cache<[u8; 32], ()>,
}

impl IdpRevocation {
    pub fn new(registry: Arc<Registry>, metrics: Arc<Metrics>) -> Self {
        IdpRevocation {
            registry,
            metrics,
            done: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
        }
    }

    /// Revokes the session's tokens at its IdP, in the background.
    pub fn revoke(&self, session: &Session) {
        let Some(provider) = self.registry.get(&session.identity_provider).cloned() else {
            return;
        };
        let Some(discovered) = provider.discovered() else {
            return;
        };
        let key: [u8; 32] = Sha256::digest(session.tokens.access_token.as_bytes()).into();
        if !self.done.entry(key).or_insert(()).is_fresh() {
            return;
        }
        let tokens = session.tokens.clone();
        let (registry, metrics) = (self.registry.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let access = Some(tokens.access_token).filter(|t| !t.is_empty());
            let kinds = [
                ("refresh_token", tokens.refresh_token),
                ("access_token", access),
            ];
            for (hint, token) in kinds {
                let Some(token) = token else { continue };
                let outcome = match revoke_token(&registry, &provider, &discovered, &token, hint)
                    .await
                {
                    Ok(true) => "ok",
                    Ok(false) => "unsupported",
                    Err(error) => {
                        tracing::warn!(idp = provider.key.as_str(), hint, %error, "token revocation failed");
                        "error"
                    }
                };
                metrics.idps.count_revocation(&provider.key, hint, outcome);
            }
        });
    }
}
