//! Bearer access tokens on `api` routes and for `/oauth2/introspect`: JWTs verified with the
//! issuing IdP's keys, opaque tokens through the IdP's introspection endpoint (RFC 7662).
//! Results are cached until the token expires (introspection results at most five minutes,
//! so revocation at the IdP is noticed), refusals briefly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::future::Cache;
use moka::Expiry;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::flow::jwt_part;
use super::registry::{Discovered, Provider, Registry};

const MAX_INTROSPECTION_CACHE: Duration = Duration::from_secs(300);
const REFUSAL_CACHE: Duration = Duration::from_secs(30);

/// A token that passed verification.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The key of the IdP that issued it.
    pub idp: String,
    pub claims: Map<String, Value>,
    /// Unix seconds.
    pub expires_at: i64,
    cache_for: Duration,
}

impl VerifiedToken {
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
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
    refused: Cache<[u8; 32], Arc<String>>,
    skew: Duration,
    accept_unsigned: bool,
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
                .max_capacity(100_000)
                .time_to_live(REFUSAL_CACHE)
                .build(),
            skew,
            accept_unsigned,
        }
    }

    /// Verifies `token`; the error text says why it was refused (for `error_description`).
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, Arc<String>> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(reason) = self.refused.get(&key).await {
            return Err(reason);
        }
        let result = self
            .verified
            .try_get_with(key, async {
                let verified = if token.split('.').count() == 3 {
                    self.verify_jwt(token).await
                } else {
                    self.introspect(token).await
                };
                verified.map(Arc::new)
            })
            .await
            .map_err(|e: Arc<String>| e);
        match result {
            Ok(token) if token.expires_at > now() - self.skew.as_secs() as i64 => Ok(token),
            Ok(_) => {
                self.verified.invalidate(&key).await;
                Err(Arc::new("the token has expired".to_owned()))
            }
            Err(reason) => {
                self.refused.insert(key, reason.clone()).await;
                Err(reason)
            }
        }
    }

    async fn verify_jwt(&self, token: &str) -> Result<VerifiedToken, String> {
        let header = jwt_part(token, 0).ok_or("malformed token")?;
        let unverified = jwt_part(token, 1).ok_or("malformed token")?;
        let issuer = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or("the token has no issuer")?;
        let provider = self
            .registry
            .by_issuer(issuer)
            .ok_or("the token's issuer is not a configured identity provider")?;
        let discovered = provider
            .discovered()
            .ok_or("the identity provider's keys are not loaded yet")?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if alg == "none" {
            if !self.accept_unsigned {
                return Err("unsigned tokens are not accepted".into());
            }
            return self.check_unsigned(provider, unverified);
        }
        let alg: Algorithm = alg
            .parse()
            .map_err(|_| format!("unknown algorithm {alg}"))?;
        if !provider.config.algorithms.contains(&alg) {
            return Err(format!(
                "algorithm {alg:?} is not accepted for this identity provider"
            ));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let claims = match self.decode(&discovered, provider, token, alg, kid) {
            Err(KeyProblem::Unknown) => match self.registry.refetch_keys(provider).await {
                Some(fresh) => self.decode(&fresh, provider, token, alg, kid),
                None => Err(KeyProblem::Unknown),
            },
            other => other,
        }
        .map_err(|problem| match problem {
            KeyProblem::Unknown => "the token is signed with an unknown key".to_owned(),
            KeyProblem::Invalid(reason) => reason,
        })?;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("the token has no exp")?;
        Ok(VerifiedToken {
            idp: provider.key.clone(),
            cache_for: until(expires_at),
            claims,
            expires_at,
        })
    }

    fn decode(
        &self,
        discovered: &Discovered,
        provider: &Provider,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Map<String, Value>, KeyProblem> {
        let jwk = match kid {
            Some(kid) => discovered.jwks.find(kid),
            None => discovered.jwks.keys.first(),
        }
        .ok_or(KeyProblem::Unknown)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyProblem::Invalid(e.to_string()))?;
        let mut validation = Validation::new(alg);
        validation.algorithms = provider.config.algorithms.clone();
        validation.set_issuer(&[provider.config.issuer.as_str()]);
        validation.set_audience(&provider.config.audiences);
        validation.leeway = self.skew.as_secs();
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| KeyProblem::Invalid(describe_jwt_error(&e)))
    }

    /// `alg: none`, allowed by `accept_unsigned_tokens`: the claims are still checked.
    fn check_unsigned(
        &self,
        provider: &Provider,
        claims: Map<String, Value>,
    ) -> Result<VerifiedToken, String> {
        let now = now();
        let skew = self.skew.as_secs() as i64;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("the token has no exp")?;
        if expires_at + skew < now {
            return Err("the token has expired".into());
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => provider.config.audiences.contains(aud),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| provider.config.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !audience_ok {
            return Err("the token is not meant for this audience".into());
        }
        Ok(VerifiedToken {
            idp: provider.key.clone(),
            cache_for: until(expires_at),
            claims,
            expires_at,
        })
    }

    /// Asks each IdP with an introspection endpoint until one knows the token.
    async fn introspect(&self, token: &str) -> Result<VerifiedToken, String> {
        let mut asked = false;
        for provider in self.registry.providers() {
            let Some(discovered) = provider.discovered() else {
                continue;
            };
            let Some(endpoint) = discovered
                .metadata
                .additional_metadata()
                .introspection_endpoint
                .clone()
            else {
                continue;
            };
            asked = true;
            let started = Instant::now();
            let response = self
                .registry
                .http
                .post(&endpoint)
                .basic_auth(
                    &provider.config.client_id,
                    Some(provider.config.client_secret.expose()),
                )
                .form(&[("token", token), ("token_type_hint", "access_token")])
                .send()
                .await;
            self.registry.metrics().observe_idp_call(
                &provider.key,
                "introspection",
                started.elapsed(),
            );
            let answer: Map<String, Value> = match response {
                Ok(r) if r.status().is_success() => r
                    .json()
                    .await
                    .map_err(|e| format!("unreadable introspection answer: {e}"))?,
                Ok(r) => {
                    return Err(format!(
                        "introspection at {} answered {}",
                        provider.key,
                        r.status()
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "introspection at {} failed: {}",
                        provider.key,
                        super::error_chain(&e)
                    ))
                }
            };
            if answer.get("active") != Some(&Value::Bool(true)) {
                continue;
            }
            let expires_at = answer
                .get("exp")
                .and_then(Value::as_i64)
                .ok_or("the introspection answer has no exp")?;
            if expires_at + (self.skew.as_secs() as i64) < now() {
                return Err("the token has expired".into());
            }
            return Ok(VerifiedToken {
                idp: provider.key.clone(),
                cache_for: until(expires_at).min(MAX_INTROSPECTION_CACHE),
                claims: answer,
                expires_at,
            });
        }
        Err(if asked {
            "the token is not active"
        } else {
            "opaque tokens cannot be checked: no identity provider offers introspection"
        }
        .to_owned())
    }
}

enum KeyProblem {
    Unknown,
    Invalid(String),
}

fn describe_jwt_error(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        ErrorKind::InvalidAudience => "the token is not meant for this audience".into(),
        ErrorKind::InvalidIssuer => "the token's issuer does not match".into(),
        ErrorKind::InvalidSignature => "the token's signature is invalid".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        other => format!("the token is invalid ({other:?})"),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn until(expires_at: i64) -> Duration {
    Duration::from_secs((expires_at - now()).max(0) as u64)
}

/// Building verified tokens in other modules' unit tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    pub fn verified(idp: &str, claims: Map<String, Value>, expires_at: i64) -> VerifiedToken {
        VerifiedToken {
            idp: idp.to_owned(),
            claims,
            expires_at,
            cache_for: Duration::ZERO,
        }
    }
}
