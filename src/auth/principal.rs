//! Who is asking, as the upstream is told: a signed-in user (from a session) or a program
//! (from a bearer token). The stored session, with its tokens and bookkeeping, stays behind
//! the gate.

use crate::session::{Identity, Session};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub identity: Identity,
    /// `None` for a bearer token whose IdP serves several organizations on an unpinned route.
    pub organization: Option<String>,
    pub identity_provider: String,
    pub groups: Vec<String>,
    /// What a signed `X-SSO-Assertion` may be reused by: the session, or the bearer token.
    pub credential: Credential,
}

/// What the principal proved itself with, as far as reusing work for it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session, by its id, and when its access token runs out.
    Session { id: String, expires_at: Option<i64> },
    /// A verified bearer token and its `exp`. Lives only as long as the request: whatever
    /// outlives it keys by the token's digest.
    Bearer { token: String, expires_at: i64 },
}

impl Default for Credential {
    fn default() -> Self {
        Credential::Session {
            id: String::new(),
            expires_at: None,
        }
    }
}

impl Credential {
    /// A key that differs between principals and between their credentials' lifetimes,
    /// safe to keep beyond the request.
    pub fn reuse_key(&self) -> (String, Option<i64>) {
        match self {
            Credential::Session { id, expires_at } => (id.clone(), *expires_at),
            Credential::Bearer { token, expires_at } => (
                format!("bearer:{}", crate::auth::digest(token)),
                Some(*expires_at),
            ),
        }
    }
}

impl Principal {
    /// The user a session speaks for; takes the session apart (the gate is done with it).
    pub fn from_session(session: Session) -> Self {
        Principal {
            identity: session.identity,
            organization: Some(session.organization).filter(|o| !o.is_empty()),
            identity_provider: session.identity_provider,
            groups: session.groups,
            credential: Credential::Session {
                id: session.id,
                expires_at: session.tokens.access_expires_at,
            },
        }
    }

    pub fn organization(&self) -> Option<&str> {
        self.organization.as_deref()
    }
}
