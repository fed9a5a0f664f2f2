//! Where a session lives: sealed whole in the cookie (the default), or with
//! `store.server_side_sessions` in Redis, the cookie holding only its id and key. When Redis
//! cannot take a session, it goes into the cookie after all, so a Redis outage never stops
//! a login; a session that cannot be loaded means "sign in again", never an error page.

use http::HeaderMap;

use super::shared::digest;
use super::AuthService;
use crate::session::{Rejection, Session, SessionReference};

impl AuthService {
    /// The request's session if it is still good: sealed by us, within its age limits, and
    /// not revoked. Every endpoint that acts for a session uses this, like the gate.
    pub(super) async fn load_live_session(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Session, Rejection> {
        let session = self.load_session(headers, now).await?;
        if self.revocations.is_revoked(&session) {
            return Err(Rejection::Revoked);
        }
        Ok(session)
    }

    pub(super) async fn load_session(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Session, Rejection> {
        if !self.store.server_side_sessions() {
            return self.cookies.load(headers, now);
        }
        let Some(reference) = self.cookies.load_reference(headers) else {
            // Not a reference: a session kept in the cookie while Redis was down, or none.
            return self.cookies.load(headers, now);
        };
        match self.store.get(&self.session_key(&reference.id)).await {
            Ok(Some(sealed)) => {
                let session = std::str::from_utf8(&sealed)
                    .ok()
                    .and_then(|sealed| reference.open(sealed))
                    .filter(|session| session.id == reference.id)
                    .ok_or(Rejection::Invalid)?;
                self.cookies.check_age(session, now)
            }
            // Expired in Redis, or removed by a logout.
            Ok(None) => Err(Rejection::Expired),
            Err(_) => Err(Rejection::Unavailable),
        }
    }

    /// Stores `session`; returns the `Set-Cookie` values and the cookie's size.
    pub(super) async fn save_session(
        &self,
        headers: &HeaderMap,
        session: &Session,
        now: i64,
    ) -> (Vec<String>, usize) {
        if self.store.server_side_sessions() {
            let existing = self
                .cookies
                .load_reference(headers)
                .filter(|r| r.id == session.id);
            let reference = existing
                .clone()
                .unwrap_or_else(|| SessionReference::new(&session.id));
            let ttl = self.cookies.remaining(session, now);
            let stored = self
                .store
                .set(
                    &self.session_key(&session.id),
                    reference.seal(session).as_bytes(),
                    ttl,
                )
                .await;
            if stored.is_ok() {
                if existing.is_some() {
                    return (Vec::new(), 0);
                }
                let cookies = self
                    .cookies
                    .store_reference(headers, &reference, session, now);
                let size = cookies.iter().map(String::len).sum();
                return (cookies, size);
            }
        }
        self.cookies.store(headers, session, now)
    }

    /// Removes a server-side session at logout (the cookie is cleared by the caller).
    pub(super) async fn forget_session(&self, session: &Session) {
        if self.store.server_side_sessions() {
            let _ = self.store.delete(&self.session_key(&session.id)).await;
        }
    }

    fn session_key(&self, session_id: &str) -> String {
        self.store.key(&format!("session:{}", digest(session_id)))
    }
}
