//! `api` routes: `Authorization: Bearer` access tokens from the configured IdPs.

use super::{AuthService, Gate, Request};
use crate::config::ClaimMapping;
use crate::oidc::access::VerifiedToken;
use crate::oidc::flow::identity_from_claims;
use crate::reply::Reply;
use crate::session::{Session, Tokens};

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

impl AuthService {
    /// Checks a bearer token and turns it into the identity forwarded upstream.
    pub(super) async fn bearer_gate(
        &self,
        token: &str,
        pinned_org: Option<&str>,
        now: i64,
    ) -> Gate {
        let verified = match self.access.verify(token).await {
            Ok(verified) => verified,
            Err(reason) => {
                self.metrics.session_rejected("bearer_invalid");
                return Gate::Deny(Reply::unauthorized_with(
                    Some("invalid_token"),
                    Some(&reason),
                ));
            }
        };
        let Some(organization) = self.organization_for(&verified.idp, pinned_org) else {
            self.metrics.session_rejected("other_organization");
            let reason = "the token's identity provider does not serve this organization";
            return Gate::Deny(Reply::unauthorized_with(
                Some("invalid_token"),
                Some(reason),
            ));
        };
        let mapping = self
            .registry
            .get(&verified.idp)
            .map(|p| p.config.claims.clone())
            .unwrap_or_default();
        let session = session_from_token(&verified, token, organization, &mapping, now);
        Gate::Forward {
            session: Box::new(session),
            set_cookies: Vec::new(),
        }
    }

    /// The organization a token speaks for: the route's, if the IdP serves it; otherwise
    /// the one organization the IdP serves (empty when it serves several).
    fn organization_for(&self, idp: &str, pinned_org: Option<&str>) -> Option<String> {
        let serves =
            |org: &crate::config::Organization| org.identity_providers.iter().any(|k| k == idp);
        match pinned_org {
            Some(key) => self
                .config
                .organizations
                .get(key)
                .filter(|org| serves(org))
                .map(|org| org.key.clone()),
            None => {
                let mut serving = self.config.organizations.values().filter(|org| serves(org));
                match (serving.next(), serving.next()) {
                    (Some(only), None) => Some(only.key.clone()),
                    _ => Some(String::new()),
                }
            }
        }
    }
}

fn session_from_token(
    token: &VerifiedToken,
    raw: &str,
    organization: String,
    mapping: &ClaimMapping,
    now: i64,
) -> Session {
    Session {
        id: String::new(),
        organization,
        identity_provider: token.idp.clone(),
        identity: identity_from_claims(&token.claims, mapping),
        tokens: Tokens {
            access_token: raw.to_owned(),
            access_expires_at: Some(token.expires_at),
            refresh_token: None,
            id_token: None,
        },
        idp_session_id: None,
        issued_at: now,
        last_seen: now,
        backend: None,
    }
}
