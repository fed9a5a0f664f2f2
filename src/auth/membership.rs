//! Who belongs where: the claims a session keeps for `members` and `allow` rules, and
//! whether its user may be in its organization.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::rules;
use crate::config::{ClaimRule, Config};
use crate::oidc::flow::identity_from_claims;
use crate::oidc::Registry;
use crate::session::strength::STRENGTH_CLAIMS;
use crate::session::{claims, Session};

pub struct Membership {
    /// Each organization's `members` rules (empty: everyone).
    members: BTreeMap<String, Vec<ClaimRule>>,
    /// `headers.max_groups`: at most this many values of a claim are kept.
    max_groups: usize,
    registry: Arc<Registry>,
    /// Claim paths that `members` and `allow` rules name: a session keeps these.
    rule_claims: Vec<String>,
}

impl Membership {
    pub fn new(config: &Config, registry: Arc<Registry>) -> Self {
        let members = config.organizations.iter();
        Membership {
            members: members
                .map(|(key, org)| (key.clone(), org.members.clone()))
                .collect(),
            max_groups: config.headers.max_groups,
            rule_claims: rule_claims(config),
            registry,
        }
    }

    /// The claims to ask for at sign-in: the rules' and the IdP's groups claim.
    pub fn wanted_claims(&self, groups_claim: &str) -> Vec<String> {
        let mut wanted = self.rule_claims.clone();
        wanted.push(groups_claim.to_owned());
        wanted
    }

    /// Stores in the session what rules and `X-SSO-Groups` need of `claims`.
    pub fn keep_claims(&self, session: &mut Session, claims: &Map<String, Value>) {
        let max = self.max_groups;
        if let Some(provider) = self.registry.get(&session.identity_provider) {
            session.groups = claims::groups(claims, &provider.config.groups_claim, max);
            // The headers follow a changed email or name; what the ID token does not carry
            // (userinfo gave it at sign-in) stays.
            let fresh = identity_from_claims(claims, &provider.config.claims);
            let identity = &mut session.identity;
            if fresh.subject == identity.subject {
                identity.email = fresh.email.or(identity.email.take());
                identity.name = fresh.name.or(identity.name.take());
                identity.preferred_username = fresh
                    .preferred_username
                    .or(identity.preferred_username.take());
                if claims.contains_key("email_verified") {
                    identity.email_verified = fresh.email_verified;
                }
            }
        }
        // Step-up rules read how the user signed in; only the ID token says that.
        let paths = self.rule_claims.iter().map(String::as_str);
        let fresh = claims::keep(claims, paths.chain(STRENGTH_CLAIMS), max);
        // A refreshed ID token may lack what userinfo gave at login: keep those values.
        session.claims.extend(fresh);
    }

    /// Whether the session's user may be in its organization (`members`).
    pub fn is_member(&self, session: &Session) -> bool {
        (self.members.get(&session.organization))
            .is_some_and(|members| rules::satisfied(members, |path| kept(session, path)))
    }
}

/// The values a session kept at a claim path.
pub fn kept(session: &Session, path: &str) -> Vec<String> {
    session.claims.get(path).cloned().unwrap_or_default()
}

/// Every claim path a `members` or `allow` rule names, once.
fn rule_claims(config: &Config) -> Vec<String> {
    let members = config.organizations.values().flat_map(|o| &o.members);
    let allows = config.routes.iter().flat_map(|r| &r.allow);
    let mut paths: Vec<String> = members.chain(allows).map(|r| r.claim.clone()).collect();
    paths.sort();
    paths.dedup();
    paths
}
