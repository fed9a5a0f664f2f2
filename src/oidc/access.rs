//! Bearer access tokens on `api` routes and for `/oauth2/introspect`: JWTs verified with the
//! issuing IdP's keys, opaque tokens through the IdP's introspection endpoint (RFC 7662).
//! Results are cached until the token expires (introspection results at most five minutes,
//! so revocation at the IdP is noticed), refusals briefly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::registry::{Provider, Registry};
use super::verify::{self, Checks, Invalid, TokenUse, Unavailable, VerifyError};

const MAX_INTROSPECTION_CACHE: Duration = Duration::from_secs(300);
const REFUSAL_CACHE: Duration = Duration::from_secs(30);
/// Refusals cached at most; each entry is a 32-byte digest and a one-byte reason, so this
/// bounds the cache at a few megabytes whatever the tokens' size.
const MAX_REFUSALS: u64 = 100_000;

/// A token that passed verification.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The keys of the IdP entries it is valid for (entries sharing an issuer all count),
    /// in config order; never empty.
    pub idps: Vec<String>,
    pub claims: Map<String, Value>,
    /// Unix seconds.
    pub expires_at: i64,
    cache_for: Duration,
}

impl VerifiedToken {
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// The first IdP entry it is valid for.
    pub fn idp(&self) -> &str {
        self.idps.first().map_or("", String::as_str)
    }
}

struct UntilExpiry;

impl Expiry<[u8; 32], Arc<VerifiedToken>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        token: &Arc<VerifiedToken>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(token.cache_for)
    }
}

pub struct AccessTokens {
    registry: Arc<Registry>,
    verified: Cache<[u8; 32], Arc<VerifiedToken>>,
    /// Only [`Invalid`] is ever cached: a token refused because an IdP could not be asked
    /// may be fine a moment later.
    refused: Cache<[u8; 32], Invalid>,
    checks: Checks,
}

impl AccessTokens {
    pub fn new(registry: Arc<Registry>, skew: Duration, accept_unsigned: bool) -> Self {
        AccessTokens {
            registry,
            verified: Cache::builder()
                .max_capacity(100_000)
                .expire_after(UntilExpiry)
                .build(),
            refused: Cache::builder()
                .max_capacity(MAX_REFUSALS)
                .time_to_live(REFUSAL_CACHE)
                .build(),
            checks: Checks {
                skew,
                accept_unsigned,
            },
        }
    }

    /// Verifies a bearer token. JWTs are checked with their issuer's keys; opaque tokens
    /// are introspected only at `introspect_at` (the IdPs with `introspection = true` that
    /// may have issued it), never broadcast to every IdP.
    pub async fn verify(
        &self,
        token: &str,
        introspect_at: &[Arc<Provider>],
        now: i64,
    ) -> Result<Arc<VerifiedToken>, Arc<VerifyError>> {
        if !is_token68(token) {
            // Nothing an IdP could have issued; not worth a call, and never "unavailable".
            return Err(Arc::new(Invalid::Malformed.into()));
        }
        let is_jwt = token.split('.').count() == 3;
        let key = cache_key(token, (!is_jwt).then_some(introspect_at));
        if let Some(reason) = self.refused.get(&key).await {
            return Err(Arc::new(reason.into()));
        }
        let result = self
            .verified
            .try_get_with(key, async {
                let verified = if is_jwt {
                    self.verify_jwt(token, now).await
                } else {
                    self.introspect(token, introspect_at, now).await
                };
                verified.map(Arc::new)
            })
            .await;
        match result {
            Ok(token) if token.expires_at.saturating_add(self.skew()) >= now => Ok(token),
            Ok(_) => {
                self.verified.invalidate(&key).await;
                Err(Arc::new(Invalid::Expired.into()))
            }
            Err(error) => {
                if let VerifyError::Invalid(reason) = &*error {
                    self.refused.insert(key, *reason).await;
                }
                Err(error)
            }
        }
    }

    fn skew(&self) -> i64 {
        crate::config::whole_secs(self.checks.skew)
    }

    async fn verify_jwt(&self, token: &str, now: i64) -> Result<VerifiedToken, VerifyError> {
        let verified = (verify::verify_jwt(
            &self.registry,
            token,
            TokenUse::Access,
            None,
            self.checks,
            now,
        ))
        .await?;
        let expires_at = verified
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(Invalid::MissingClaim)?;
        Ok(VerifiedToken {
            idps: verified.providers.iter().map(|p| p.key.clone()).collect(),
            cache_for: until(expires_at, now),
            claims: verified.claims,
            expires_at,
        })
    }

    /// RFC 7662 at each candidate in turn. With several candidates an answer counts only
    /// when it names the IdP asked (`iss`) or our client there (`client_id`): an IdP may
    /// call another's token active. A candidate that cannot be asked does not end the
    /// search; if no candidate vouches for the token and one could not be asked, the
    /// answer is "unavailable", not a refusal.
    async fn introspect(
        &self,
        token: &str,
        candidates: &[Arc<Provider>],
        now: i64,
    ) -> Result<VerifiedToken, VerifyError> {
        let mut unreachable: Option<VerifyError> = None;
        for provider in candidates {
            let answer = match self.ask(provider, token).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(idp = provider.key.as_str(), error = %error, "introspection failed");
                    unreachable.get_or_insert(error);
                    continue;
                }
            };
            if answer.get("active") != Some(&Value::Bool(true))
                || !names_provider(&answer, provider, candidates.len() > 1)
            {
                continue;
            }
            let expires_at = answer
                .get("exp")
                .and_then(Value::as_i64)
                .ok_or(Invalid::MissingClaim)?;
            if expires_at.saturating_add(self.skew()) < now {
                return Err(Invalid::Expired.into());
            }
            return Ok(VerifiedToken {
                idps: vec![provider.key.clone()],
                cache_for: until(expires_at, now).min(MAX_INTROSPECTION_CACHE),
                claims: answer,
                expires_at,
            });
        }
        Err(unreachable.unwrap_or(Invalid::NotActive.into()))
    }

    async fn ask(
        &self,
        provider: &Provider,
        token: &str,
    ) -> Result<Map<String, Value>, VerifyError> {
        let failed = |cause: Box<dyn std::error::Error + Send + Sync>| {
            VerifyError::unavailable(&provider.key, Unavailable::Introspection(cause))
        };
        let discovered = provider
            .discovered()
            .ok_or_else(|| VerifyError::unavailable(&provider.key, Unavailable::KeysNotLoaded))?;
        let endpoint = discovered
            .metadata
            .additional_metadata()
            .introspection_endpoint
            .clone()
            .ok_or_else(|| failed("the identity provider has no introspection endpoint".into()))?;
        let started = Instant::now();
        let form = [("token", token), ("token_type_hint", "access_token")];
        let response = discovered
            .auth
            .post(&provider.http, &endpoint, &form)
            .send()
            .await;
        self.registry.metrics().idps.observe_idp_call(
            &provider.key,
            "introspection",
            started.elapsed(),
        );
        let response = response.map_err(|e| failed(Box::new(e)))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status()).into()));
        }
        response.json().await.map_err(|e| failed(Box::new(e)))
    }
}

/// Whether an introspection answer is about a token of `provider`. With one candidate an
/// answer without `iss` is taken; a wrong `iss` never is.
fn names_provider(answer: &Map<String, Value>, provider: &Provider, must_name: bool) -> bool {
    let iss = answer.get("iss").and_then(Value::as_str);
    if iss.is_some_and(|iss| iss != provider.config.issuer) {
        return false;
    }
    let client_id = answer.get("client_id").and_then(Value::as_str);
    let ours = client_id.is_some_and(|c| {
        c == provider.config.client_id || provider.config.audiences.iter().any(|a| a == c)
    });
    !must_name || iss.is_some() || ours
}

/// JWTs are the same token wherever they are presented; an opaque token's answer depends
/// on where it was introspected, so those candidates are part of its key.
fn cache_key(token: &str, introspected_at: Option<&[Arc<Provider>]>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(token.as_bytes());
    for provider in introspected_at.unwrap_or_default() {
        hasher.update([0]);
        hasher.update(provider.key.as_bytes());
    }
    hasher.finalize().into()
}

/// RFC 6750's `b64token` (RFC 7235 token68): what a bearer token may consist of.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

fn until(expires_at: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0))
}

/// Building verified tokens in other modules' unit tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    pub fn verified(idp: &str, claims: Map<String, Value>, expires_at: i64) -> VerifiedToken {
        VerifiedToken {
            idps: vec![idp.to_owned()],
            claims,
            expires_at,
            cache_for: Duration::ZERO,
        }
    }
}
