//! Sessions ended before their cookie expires: by logout here, or by the IdP through
//! back-channel logout. Checked on every request; entries live as long as a session can.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::session::Session;

/// One ended session or set of sessions; what replicas tell each other through the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// Signed out here.
    Session { id: String },
    /// The IdP ended its session `sid` at `at` (back-channel logout).
    IdpSession { idp: String, sid: String, at: i64 },
    /// The IdP ended every session of `sub` at `at` (back-channel logout without `sid`).
    Subject { idp: String, sub: String, at: i64 },
    /// The claims of `sub` changed at `at` (a CAEP token-claims-change): sessions with
    /// older tokens renew them and are checked again; older bearer tokens are refused.
    ClaimsChanged { idp: String, sub: String, at: i64 },
}

/// Where the revocations kept in Redis stand at this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadState {
    /// No shared store: this replica's own list is all there is.
    Local = 0,
    Loading = 1,
    Loaded = 2,
    /// The last attempts failed; it is tried again at the next reconnection.
    Failed = 3,
}

impl LoadState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadState::Local => "local",
            LoadState::Loading => "loading",
            LoadState::Loaded => "loaded",
            LoadState::Failed => "failed",
        }
    }
}

pub struct Revocations {
    /// A [`LoadState`].
    load_state: AtomicU8,
    /// Session ids signed out here (a copied cookie must not outlive the logout).
    sessions: Cache<String, ()>,
    /// `idp + sid` → when the IdP ended that IdP session.
    sids: Cache<String, i64>,
    /// `idp + sub` → when the IdP ended all sessions of that user.
    subs: Cache<String, i64>,
    /// `idp + sub` → when that user's claims changed.
    claims: Cache<String, i64>,
    /// Logout token ids already used.
    jtis: Cache<String, ()>,
    /// Until the first revocation, requests need no lookups at all.
    any: AtomicBool,
    /// Revocations applied here that Redis did not take (an outage, a failover), with
    /// their expiry: written again until it does, so other replicas learn of them.
    unshared: Mutex<Vec<(Revocation, i64)>>,
}

/// Revocations waiting to be shared, at most; beyond it the oldest are dropped (they
/// still hold here).
const UNSHARED_LIMIT: usize = 10_000;

fn bounded<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Cache<String, V> {
    Cache::builder()
        .max_capacity(1_000_000)
        .time_to_live(ttl)
        .build()
}

fn scoped(idp: &str, value: &str) -> String {
    format!("{idp}\u{0}{value}")
}

impl Revocations {
    pub fn new(max_age: Duration) -> Self {
        Revocations {
            load_state: AtomicU8::new(LoadState::Local as u8),
            sessions: bounded(max_age),
            sids: bounded(max_age),
            subs: bounded(max_age),
            claims: bounded(max_age),
            jtis: bounded(max_age.max(Duration::from_secs(3600))),
            any: AtomicBool::new(false),
            unshared: Mutex::new(Vec::new()),
        }
    }

    /// Keeps `revocation` to be shared again later (see [`Revocations::take_unshared`]).
    pub fn share_later(&self, revocation: Revocation, expires: i64) {
        let mut unshared = self.unshared.lock().unwrap();
        if unshared.len() >= UNSHARED_LIMIT {
            unshared.remove(0);
        }
        unshared.push((revocation, expires));
    }

    /// The revocations still to be shared; the caller gives back those that fail again.
    pub fn take_unshared(&self) -> Vec<(Revocation, i64)> {
        std::mem::take(&mut *self.unshared.lock().unwrap())
    }

    pub fn set_load_state(&self, state: LoadState) {
        self.load_state.store(state as u8, Ordering::Release);
    }

    pub fn load_state(&self) -> LoadState {
        match self.load_state.load(Ordering::Acquire) {
            1 => LoadState::Loading,
            2 => LoadState::Loaded,
            3 => LoadState::Failed,
            _ => LoadState::Local,
        }
    }

    pub fn apply(&self, revocation: &Revocation) {
        match revocation {
            Revocation::Session { id } => self.revoke_session(id),
            Revocation::IdpSession { idp, sid, at } => self.revoke_idp_session(idp, sid, *at),
            Revocation::Subject { idp, sub, at } => self.revoke_subject(idp, sub, *at),
            Revocation::ClaimsChanged { idp, sub, at } => {
                self.any.store(true, Ordering::Release);
                let key = scoped(idp, sub);
                let latest = self.claims.get(&key).map_or(*at, |before| before.max(*at));
                self.claims.insert(key, latest);
            }
        }
    }

    /// When the claims of `sub` at `idp` last changed, if they did.
    pub fn claims_changed_at(&self, idp: &str, sub: &str) -> Option<i64> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.claims.get(&scoped(idp, sub))
    }

    pub fn revoke_session(&self, session_id: &str) {
        self.any.store(true, Ordering::Release);
        self.sessions.insert(session_id.to_owned(), ());
    }

    pub fn revoke_idp_session(&self, idp: &str, sid: &str, at: i64) {
        self.any.store(true, Ordering::Release);
        self.sids.insert(scoped(idp, sid), at);
    }

    pub fn revoke_subject(&self, idp: &str, sub: &str, at: i64) {
        self.any.store(true, Ordering::Release);
        self.subs.insert(scoped(idp, sub), at);
    }

    /// Records a logout token id; false when it was seen before (a replay).
    pub fn first_use_of(&self, jti: &str) -> bool {
        self.jtis.entry(jti.to_owned()).or_insert(()).is_fresh()
    }

    /// Whether the session was ended: sessions that began after a back-channel logout of
    /// the same user or IdP session are a new login and stay valid.
    pub fn is_revoked(&self, session: &Session) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.sessions.contains_key(&session.id)
            || self.is_token_revoked(
                &session.identity_provider,
                &session.identity.subject,
                session.idp_session_id.as_deref(),
                session.issued_at,
            )
    }

    /// Whether a back-channel logout ended the IdP session `sid` or every session of `sub`
    /// at `idp` at or after `issued_at`; for bearer tokens as for sessions.
    pub fn is_token_revoked(
        &self,
        idp: &str,
        sub: &str,
        sid: Option<&str>,
        issued_at: i64,
    ) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let ended_before = |at: Option<i64>| at.is_some_and(|at| issued_at <= at);
        sid.is_some_and(|sid| ended_before(self.sids.get(&scoped(idp, sid))))
            || ended_before(self.subs.get(&scoped(idp, sub)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, sub: &str, sid: Option<&str>, issued_at: i64) -> Session {
        let mut s = Session {
            id: id.into(),
            identity_provider: "kc".into(),
            issued_at,
            idp_session_id: sid.map(Into::into),
            ..Default::default()
        };
        s.identity.subject = sub.into();
        s
    }

    #[test]
    fn revocation_rules() {
        let r = Revocations::new(Duration::from_secs(3600));
        let a = session("a", "alice", Some("sid-1"), 100);
        assert!(!r.is_revoked(&a));
        r.revoke_idp_session("kc", "sid-1", 150);
        assert!(r.is_revoked(&a));
        assert!(
            !r.is_revoked(&session("b", "alice", Some("sid-2"), 100)),
            "other IdP session"
        );
        r.revoke_subject("kc", "bob", 200);
        assert!(r.is_revoked(&session("c", "bob", None, 199)));
        assert!(
            !r.is_revoked(&session("d", "bob", None, 201)),
            "signed in again after the logout"
        );
        let mut other_idp = session("e", "bob", None, 100);
        other_idp.identity_provider = "ad".into();
        assert!(!r.is_revoked(&other_idp));
        r.revoke_session("f");
        assert!(r.is_revoked(&session("f", "x", None, 1)));
    }

    #[test]
    fn revocations_travel_as_json() {
        let r = Revocations::new(Duration::from_secs(3600));
        let message = serde_json::to_vec(&Revocation::IdpSession {
            idp: "kc".into(),
            sid: "sid-9".into(),
            at: 500,
        })
        .unwrap();
        r.apply(&serde_json::from_slice(&message).unwrap());
        assert!(r.is_revoked(&session("a", "alice", Some("sid-9"), 400)));
        assert!(serde_json::from_slice::<Revocation>(b"{\"kind\":\"other\"}").is_err());
    }

    #[test]
    fn jti_replay() {
        let r = Revocations::new(Duration::from_secs(60));
        assert!(r.first_use_of("j1"));
        assert!(!r.first_use_of("j1"));
        assert!(r.first_use_of("j2"));
    }

    #[test]
    fn a_claims_change_is_kept_at_its_latest_and_revokes_nothing() {
        let r = Revocations::new(Duration::from_secs(3600));
        assert_eq!(r.claims_changed_at("kc", "alice"), None);
        let changed = |at| Revocation::ClaimsChanged {
            idp: "kc".into(),
            sub: "alice".into(),
            at,
        };
        r.apply(&changed(200));
        r.apply(&changed(150));
        assert_eq!(r.claims_changed_at("kc", "alice"), Some(200));
        assert_eq!(r.claims_changed_at("kc", "bob"), None);
        assert_eq!(r.claims_changed_at("other", "alice"), None);
        // Sessions are checked again, not ended.
        assert!(!r.is_revoked(&session("a", "alice", None, 100)));
    }
}
