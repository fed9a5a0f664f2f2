//! Where a session lives: sealed whole in the cookie (the default), or with
//! `store.server_side_sessions` in Redis, the cookie holding only its id and key. When Redis
//! cannot take a session, it goes into the cookie after all, so a Redis outage never stops
//! a login; a session that cannot be loaded means "sign in again", never an error page.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::revocations::Revocations;
use crate::config::Config;
use crate::digest::digest;
use crate::session::form::KeptForm;
use crate::session::{PendingLogins, Rejection, Session, SessionCookies, SessionReference};
use crate::store::Store;

pub struct SessionStore {
    /// The browser's side: session, sign-in and form cookies. Reached only through the
    /// methods below, so there is one way to set or clear each.
    cookies: SessionCookies,
    pub(super) revocations: Arc<Revocations>,
    /// Set with `store.server_side_sessions`: Redis keeps the sessions.
    server_side: Option<Arc<Store>>,
    /// `session.idle_timeout`, which needs `last_seen` kept fresh.
    idle_timeout: Option<Duration>,
}

impl SessionStore {
    pub fn new(config: &Config, store: &Arc<Store>, revocations: Arc<Revocations>) -> Self {
        SessionStore {
            cookies: SessionCookies::new(config),
            revocations,
            server_side: store.server_side_sessions().then(|| store.clone()),
            idle_timeout: config.session.idle_timeout,
        }
    }

    /// The request's session if it is still good: sealed by us, within its age limits, and
    /// not revoked. Every endpoint that acts for a session uses this, like the gate.
    pub async fn load_live(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Arc<Session>, Rejection> {
        let session = self.load(headers, now).await?;
        if self.is_revoked(&session) {
            return Err(Rejection::Revoked);
        }
        Ok(session)
    }

    pub fn is_revoked(&self, session: &Session) -> bool {
        self.revocations.is_revoked(session)
    }

    /// The request's session, revoked or not.
    pub async fn load(&self, headers: &HeaderMap, now: i64) -> Result<Arc<Session>, Rejection> {
        // In the cookie: always so without Redis, and with it while Redis was down. (The
        // reference is looked for only with Redis: trying costs a decryption.)
        let Some(store) = &self.server_side else {
            return self.cookies.load(headers, now);
        };
        let Some(reference) = self.cookies.load_reference(headers) else {
            return self.cookies.load(headers, now);
        };
        match Box::pin(store.get(&key(store, &reference.id))).await {
            Ok(Some(sealed)) => {
                let session = std::str::from_utf8(&sealed)
                    .ok()
                    .and_then(|sealed| reference.open(sealed))
                    .filter(|session| session.id == reference.id)
                    .ok_or(Rejection::Invalid)?;
                self.cookies.check_age(Arc::new(session), now)
            }
            // Expired in Redis, or removed by a logout.
            Ok(None) => Err(Rejection::Expired),
            Err(_) => Err(Rejection::Unavailable),
        }
    }

    /// Stores `session`; returns the `Set-Cookie` values and the cookie's size.
    pub async fn save(
        &self,
        headers: &HeaderMap,
        session: &Session,
        now: i64,
    ) -> (Vec<String>, usize) {
        if let Some(store) = &self.server_side {
            let existing = self
                .cookies
                .load_reference(headers)
                .filter(|r| r.id == session.id);
            let reference = existing
                .clone()
                .unwrap_or_else(|| SessionReference::new(&session.id));
            let ttl = self.cookies.remaining(session, now);
            let sealed = reference.seal(session);
            if store
                .set(&key(store, &session.id), sealed.as_bytes(), ttl)
                .await
                .is_ok()
            {
                if existing.is_some() {
                    return (Vec::new(), 0);
                }
                let cookies = (self.cookies).store_reference(headers, &reference, session, now);
                let size = cookies.iter().map(String::len).sum();
                return (cookies, size);
            }
        }
        self.cookies.store(headers, session, now)
    }

    /// Re-issues the session now and then when an idle timeout needs `last_seen` kept fresh.
    pub async fn touch(&self, headers: &HeaderMap, session: &Session, now: i64) -> Vec<String> {
        let Some(idle) = self.idle_timeout else {
            return Vec::new();
        };
        // Rewriting on every request would cost a Set-Cookie each time; a tenth of the
        // idle timeout (at most a minute) is precise enough.
        let every = (idle.as_secs() as i64 / 10).clamp(1, 60);
        if now - session.last_seen < every {
            return Vec::new();
        }
        let mut fresh = session.clone();
        fresh.last_seen = now;
        Box::pin(self.save(headers, &fresh, now)).await.0
    }

    /// Removes a server-side session at logout (the cookie is cleared by the caller).
    pub async fn forget(&self, session: &Session) {
        if let Some(store) = &self.server_side {
            let _ = store.delete(&key(store, &session.id)).await;
        }
    }

    /// `Set-Cookie`s that remove the session cookie(s) the request carries.
    pub fn clear(&self, headers: &HeaderMap) -> Vec<String> {
        self.cookies.clear(headers)
    }

    /// The sign-ins this browser has started and not finished.
    pub fn pending(&self, headers: &HeaderMap) -> PendingLogins {
        self.cookies.pending(headers)
    }

    /// The `Set-Cookie` keeping `pending` (clearing it when none is left).
    pub fn store_pending(&self, pending: &PendingLogins) -> String {
        self.cookies.store_pending(pending)
    }

    /// `Set-Cookie`s keeping a form for after the sign-in; `None` when it is too large.
    pub fn keep_form(&self, headers: &HeaderMap, form: &KeptForm) -> Option<Vec<String>> {
        self.cookies.keep_form(headers, form)
    }

    /// The form this browser kept, if it has not expired.
    pub fn kept_form(&self, headers: &HeaderMap, now: i64) -> Option<KeptForm> {
        self.cookies.kept_form(headers, now)
    }

    pub fn clear_form(&self, headers: &HeaderMap) -> Vec<String> {
        self.cookies.clear_form(headers)
    }

    /// The `Set-Cookie` remembering the organization last chosen on this browser.
    pub fn remember_organization(&self, org_key: &str) -> String {
        self.cookies.remember_organization(org_key)
    }

    pub fn remembered_organization<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        self.cookies.remembered_organization(headers)
    }
}

fn key(store: &Store, session_id: &str) -> String {
    store.key(&format!("session:{}", digest(session_id)))
}
