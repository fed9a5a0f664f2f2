//! Ending a session from elsewhere (the sessions page, the admin API, a security event, an
//! IdP's logout of a person) also ends what it holds at the shop and the IdP, now: Spree's
//! refresh token and the IdP's tokens are revoked at once, not when the ended session's
//! browser next comes, which may be never. That takes the session's tokens, which live in
//! its cookie; so while a session lives, the index keeps a copy of it sealed with the
//! session keys (as the cookie is, under another name, so neither can stand in for the
//! other), replaced whenever a refresh changes its tokens and taken when it ends.

use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use super::idp_revocation::IdpRevocation;
use super::session_index::SessionIndex;
use crate::config::Config;
use crate::session::{Sealer, Session};

/// The sealed copy's associated data: never a cookie's name.
const SEALED_FOR: &str = "sso-sidecar-session-end";

pub struct RemoteEnd {
    sealer: Sealer,
    max_age: Duration,
    index: Arc<SessionIndex>,
    backend: Arc<Backend>,
    idp_revocation: Arc<IdpRevocation>,
}

impl RemoteEnd {
    pub fn new(
        config: &Config,
        index: Arc<SessionIndex>,
        backend: Arc<Backend>,
        idp_revocation: Arc<IdpRevocation>,
    ) -> Self {
        RemoteEnd {
            sealer: Sealer::new(&config.session.keys),
            max_age: config.session.max_age,
            index,
            backend,
            idp_revocation,
        }
    }

    /// A session began, or a refresh changed its tokens: keep what ending it takes.
    pub async fn keep(&self, session: &Session) {
        let sealed = self.sealer.seal(SEALED_FOR, &session.to_bytes());
        let expires = session.issued_at + crate::config::whole_secs(self.max_age);
        self.index.keep_end(&session.id, sealed, expires).await;
    }

    /// [`RemoteEnd::keep`] without holding up the request.
    pub fn keep_later(self: &Arc<Self>, session: Arc<Session>) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            handle.spawn(async move { this.keep(&session).await });
        }
    }

    /// Session `id` ended elsewhere: its backend session and its IdP tokens end now.
    /// Whether anything was kept for it.
    pub async fn end(&self, id: &str) -> bool {
        let Some(sealed) = self.index.take_end(id).await else {
            return false;
        };
        let Some(session) = (self.sealer.open(SEALED_FOR, &sealed))
            .and_then(|bytes| Session::from_bytes(&bytes))
            .filter(|session| session.id == id)
        else {
            return false;
        };
        self.backend.end_session(&session, None);
        self.idp_revocation.revoke(&session);
        true
    }

    /// The session ended here, and its tokens with it: nothing more to keep.
    pub async fn forget(&self, id: &str) {
        let _ = self.index.take_end(id).await;
    }
}
