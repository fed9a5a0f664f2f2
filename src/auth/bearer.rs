//! `api` routes: `Authorization: Bearer` access tokens from the configured IdPs.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::refusal::Refusal;
use super::revocations::Revocations;
use super::step_up::Challenge;
use super::{rules, Gate, Request};
use crate::config::Config;
use crate::metrics::{Metrics, Rejected, StepUpBy};
use crate::oidc::access::{AccessTokens, VerifiedToken};
use crate::oidc::flow::identity_from_claims;
use crate::oidc::registry::Provider;
use crate::oidc::verify::{Invalid, VerifyError};
use crate::oidc::Registry;
use crate::principal::{BearerCaller, Principal};
use crate::routing::Matched;
use crate::session::claims;
use crate::session::strength::OwnedStrength;

/// The bearer token of a request, if it carries one.
pub fn bearer_token<'h>(req: &Request<'h>) -> Option<&'h str> {
    let value = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Access tokens of the configured IdPs: verified, attributed to an organization, checked
/// against back-channel logouts.
pub struct BearerTokens {
    settings: BearerSettings,
    registry: Arc<Registry>,
    access: AccessTokens,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
}

/// What the bearer check uses of the config, taken once.
struct BearerSettings {
    /// Each organization's IdPs, by organization key: who a token may speak for.
    organizations: BTreeMap<String, Vec<String>>,
    /// `oidc.max_clock_skew`, allowed on a step-up rule's `auth_time`.
    max_clock_skew: std::time::Duration,
    /// `headers.max_groups`.
    max_groups: usize,
    /// `headers.forward_access_token`.
    forward_access_token: bool,
}

impl BearerSettings {
    fn new(config: &Config) -> Self {
        let organizations = config.organizations.iter();
        BearerSettings {
            organizations: organizations
                .map(|(key, org)| (key.clone(), org.identity_providers.clone()))
                .collect(),
            max_clock_skew: config.oidc.max_clock_skew,
            max_groups: config.headers.max_groups,
            forward_access_token: config.headers.forward_access_token,
        }
    }

    fn serves(&self, org: &str, idp: &str) -> bool {
        self.organizations
            .get(org)
            .is_some_and(|idps| idps.iter().any(|k| k == idp))
    }
}

impl BearerTokens {
    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        revocations: Arc<Revocations>,
        metrics: Arc<Metrics>,
    ) -> Self {
        BearerTokens {
            access: AccessTokens::new(
                registry.clone(),
                config.oidc.max_clock_skew,
                config.oidc.accept_unsigned_tokens,
            ),
            settings: BearerSettings::new(config),
            registry,
            revocations,
            metrics,
        }
    }

    /// Checks a bearer token and turns it into the identity forwarded upstream.
    pub async fn gate(&self, token: &str, route: &Matched<'_>, now: i64) -> Result<Gate, Refusal> {
        let pinned_org = route.organization;
        let verified = match self.verify(token, pinned_org, now).await {
            Ok(verified) => verified,
            Err(error) => return Err(self.refusal(&error)),
        };
        let Some((idp, organization)) = self.attribute(&verified, pinned_org) else {
            self.metrics
                .sessions
                .session_rejected(Rejected::OtherOrganization);
            let description = "the token's identity provider does not serve this organization";
            return Err(Refusal::TokenInvalid {
                description: description.to_owned(),
            });
        };
        if !rules::satisfied(route.allow, |path| {
            claims::values_at(&verified.claims, path)
        }) {
            self.metrics.traffic.request_denied(route.label);
            return Err(Refusal::InsufficientScope);
        }
        let strength = OwnedStrength::from_claims(&verified.claims);
        if let Some(rule) = route.step_up {
            // The token's user signed in too weakly or too long ago (RFC 9470).
            let challenge = Challenge::of_route(rule);
            if !challenge.met_by(strength.view(), now, self.settings.max_clock_skew) {
                self.metrics.sessions.step_up_asked(StepUpBy::Route);
                return Err(Refusal::StepUp {
                    challenge,
                    organization: organization.unwrap_or_default(),
                    identity_provider: idp.to_owned(),
                });
            }
        }
        let provider = self.registry.get(idp);
        let mapping = provider
            .map(|p| p.config.claims.clone())
            .unwrap_or_default();
        let groups = provider.map_or_else(Vec::new, |provider| {
            claims::groups(
                &verified.claims,
                &provider.config.groups_claim,
                self.settings.max_groups,
            )
        });
        let principal = Principal::from_bearer(BearerCaller {
            identity: identity_from_claims(&verified.claims, &mapping),
            organization,
            identity_provider: idp.to_owned(),
            groups,
            token: token.to_owned(),
            expires_at: verified.expires_at,
            strength,
        });
        // Otherwise the caller's own `Authorization` goes upstream as it came.
        let authorization = (self.settings.forward_access_token).then(|| format!("Bearer {token}"));
        Ok(Gate::Forward {
            principal: Box::new(principal),
            authorization,
            set_cookies: Vec::new(),
        })
    }

    /// A bearer token verified (see [`crate::oidc::access`]) and not ended by a
    /// back-channel logout of its user or IdP session.
    pub async fn verify(
        &self,
        token: &str,
        pinned_org: Option<&str>,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, Arc<VerifyError>> {
        let candidates = self.introspection_candidates(pinned_org);
        let verified = self.access.verify(token, &candidates, now).await?;
        if self.is_revoked(&verified) {
            return Err(Arc::new(Invalid::Revoked.into()));
        }
        Ok(verified)
    }

    /// Whether a logout, the admin API or a security event ended the token's user or IdP
    /// session after it was issued.
    /// A token issued no later than a change of its user's claims carries the old ones:
    /// refused too, so the client gets a new one.
    pub fn is_revoked(&self, verified: &VerifiedToken) -> bool {
        let (sub, issued_at) = (
            verified.claim("sub").unwrap_or_default(),
            issued_at(verified),
        );
        verified.idps.iter().any(|idp| {
            let changed = self.revocations.claims_changed_at(idp, sub);
            self.revocations
                .is_token_revoked(idp, sub, verified.claim("sid"), issued_at)
                || changed.is_some_and(|at| issued_at <= at)
        })
    }

    /// `401` for a token that is not good; `503` when the IdP could not be asked, so
    /// clients retry instead of dropping a token that may be fine.
    pub fn refusal(&self, error: &VerifyError) -> Refusal {
        match error {
            VerifyError::Unavailable { idp, .. } => {
                self.metrics
                    .sessions
                    .session_rejected(Rejected::BearerUnavailable);
                tracing::warn!(
                    idp = idp.as_str(),
                    error = crate::error_chain::error_chain(error),
                    "bearer token cannot be checked now"
                );
                Refusal::TokenUncheckable
            }
            VerifyError::Invalid(_) | VerifyError::UnknownKey => {
                self.metrics
                    .sessions
                    .session_rejected(Rejected::BearerInvalid);
                Refusal::TokenInvalid {
                    description: error.to_string(),
                }
            }
        }
    }

    /// The IdPs an opaque token may be introspected at: those with `introspection = true`
    /// that serve the route's organization, or all of them on an unpinned route.
    fn introspection_candidates(&self, pinned_org: Option<&str>) -> Vec<Arc<Provider>> {
        self.registry
            .providers()
            .filter(|p| p.config.introspection)
            .filter(|p| pinned_org.is_none_or(|org| self.settings.serves(org, &p.key)))
            .cloned()
            .collect()
    }

    /// The IdP entry and organization a token speaks for: on a pinned route, the first of
    /// its entries that serves the route's organization; otherwise the one organization its
    /// entries serve (none when they serve several).
    fn attribute<'v>(
        &self,
        verified: &'v VerifiedToken,
        pinned_org: Option<&str>,
    ) -> Option<(&'v str, Option<String>)> {
        let settings = &self.settings;
        if let Some(key) = pinned_org {
            settings.organizations.get(key)?;
            let idp = verified.idps.iter().find(|idp| settings.serves(key, idp))?;
            return Some((idp, Some(key.to_owned())));
        }
        let mut serving = (settings.organizations.keys())
            .filter(|org| verified.idps.iter().any(|idp| settings.serves(org, idp)));
        match (serving.next(), serving.next()) {
            (Some(only), None) => {
                let idp = verified
                    .idps
                    .iter()
                    .find(|idp| settings.serves(only, idp))?;
                Some((idp, Some(only.clone())))
            }
            _ => Some((verified.idp(), None)),
        }
    }
}

/// When the token was issued; tokens without `iat` count as issued long ago, so a
/// back-channel logout of their user ends them too.
fn issued_at(token: &VerifiedToken) -> i64 {
    token
        .claims
        .get("iat")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0)
}
