//! Who is asking, as the upstream is told: a signed-in user (from a session) or a program
//! (from a bearer token). A session's principal shares the opened session (no copy per
//! request); its tokens and bookkeeping stay behind the gate.

use std::sync::Arc;

use crate::session::strength::{OwnedStrength, Strength};
use crate::session::{Identity, Session};

#[derive(Debug, Clone)]
pub struct Principal(Who);

#[derive(Debug, Clone)]
enum Who {
    Session(Arc<Session>),
    Bearer(Box<BearerCaller>),
}

/// A program that presented a verified access token.
#[derive(Debug, Clone, Default)]
pub struct BearerCaller {
    pub identity: Identity,
    /// `None` when the token's IdP serves several organizations on an unpinned route.
    pub organization: Option<String>,
    pub identity_provider: String,
    pub groups: Vec<String>,
    /// The token, for as long as the request lives: whatever outlives it keys by digest.
    pub token: String,
    /// Its `exp`.
    pub expires_at: i64,
    /// How its user signed in (`acr`, `amr`, `auth_time`), where the token says.
    pub strength: OwnedStrength,
}

impl Principal {
    /// The user a session speaks for.
    pub fn from_session(session: Arc<Session>) -> Self {
        Principal(Who::Session(session))
    }

    pub fn from_bearer(caller: BearerCaller) -> Self {
        Principal(Who::Bearer(Box::new(caller)))
    }

    /// A signed-in user of a browser session (not a bearer token's caller).
    pub fn is_session(&self) -> bool {
        matches!(self.0, Who::Session(_))
    }

    pub fn identity(&self) -> &Identity {
        match &self.0 {
            Who::Session(session) => &session.identity,
            Who::Bearer(caller) => &caller.identity,
        }
    }

    pub fn organization(&self) -> Option<&str> {
        match &self.0 {
            Who::Session(session) => Some(session.organization.as_str()).filter(|o| !o.is_empty()),
            Who::Bearer(caller) => caller.organization.as_deref(),
        }
    }

    /// How the user signed in: from the session's ID token, or the bearer token's claims.
    pub fn strength(&self) -> Strength<'_> {
        match &self.0 {
            Who::Session(session) => Strength::kept(&session.claims),
            Who::Bearer(caller) => caller.strength.view(),
        }
    }

    pub fn identity_provider(&self) -> &str {
        match &self.0 {
            Who::Session(session) => &session.identity_provider,
            Who::Bearer(caller) => &caller.identity_provider,
        }
    }

    pub fn groups(&self) -> &[String] {
        match &self.0 {
            Who::Session(session) => &session.groups,
            Who::Bearer(caller) => &caller.groups,
        }
    }

    /// What tells one session's token set from another: its id and the end of its access
    /// token (the signature of a JWT, the random part of an opaque token), which a refresh
    /// changes; `None` for a bearer token's caller.
    pub fn session_key(&self) -> Option<(&str, &str)> {
        match &self.0 {
            Who::Session(session) => {
                let token = session.tokens.access_token.as_str();
                let tail = token
                    .char_indices()
                    .rev()
                    .nth(31)
                    .map_or(token, |(at, _)| &token[at..]);
                Some((&session.id, tail))
            }
            Who::Bearer(_) => None,
        }
    }

    /// A key that differs between principals and between their credentials' lifetimes
    /// (a refresh gives a session a new expiry), safe to keep beyond the request.
    pub fn reuse_key(&self) -> (String, Option<i64>) {
        match &self.0 {
            Who::Session(session) => (session.id.clone(), session.tokens.access_expires_at),
            Who::Bearer(caller) => (
                format!("bearer:{}", crate::digest::digest(&caller.token)),
                Some(caller.expires_at),
            ),
        }
    }
}
