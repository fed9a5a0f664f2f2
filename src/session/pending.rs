//! Logins under way: what the callback needs to finish them (state, nonce, PKCE verifier,
//! organization, IdP, return path), sealed in the state cookie. Several can be pending at
//! once, so sign-ins started in two tabs both complete.

use serde::{Deserialize, Serialize};

/// Beyond this many pending logins the oldest is dropped, which bounds the cookie.
pub const MAX_PENDING: usize = 4;
/// How long a login may take at the IdP.
pub const PENDING_TTL_SECS: i64 = 600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub organization: String,
    pub identity_provider: String,
    pub return_to: String,
    pub created_at: i64,
    /// The id of the form kept for this sign-in ([`super::form::KeptForm::id`]): the
    /// callback posts that form again and no other.
    pub kept_form: Option<u64>,
    /// A step-up: what the new sign-in must be ([`super::strength::Challenge`]); the
    /// callback refuses one that is weaker or older.
    pub step_up: Option<super::strength::Challenge>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogins {
    pub entries: Vec<PendingLogin>,
}

impl PendingLogins {
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }

    /// Adds a login, dropping expired ones and the oldest beyond [`MAX_PENDING`].
    pub fn push(&mut self, login: PendingLogin, now: i64) {
        self.entries
            .retain(|e| now - e.created_at < PENDING_TTL_SECS);
        self.entries.push(login);
        let excess = self.entries.len().saturating_sub(MAX_PENDING);
        self.entries.drain(..excess);
    }

    /// Removes and returns the unexpired login with this `state`, compared in constant time.
    pub fn take(&mut self, state: &str, now: i64) -> Option<PendingLogin> {
        let index = self
            .entries
            .iter()
            .position(|e| constant_time_eq(e.state.as_bytes(), state.as_bytes()))?;
        let login = self.entries.remove(index);
        (now - login.created_at < PENDING_TTL_SECS).then_some(login)
    }
}

/// Equal, in time that does not depend on where they differ (`subtle`).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(state: &str, at: i64) -> PendingLogin {
        PendingLogin {
            state: state.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            organization: "o".into(),
            identity_provider: "i".into(),
            return_to: "/".into(),
            created_at: at,
            kept_form: None,
            step_up: None,
        }
    }

    #[test]
    fn two_tabs_both_complete() {
        let mut p = PendingLogins::default();
        p.push(login("a", 0), 0);
        p.push(login("b", 1), 1);
        let mut p = PendingLogins::from_bytes(&p.to_bytes()).unwrap();
        assert_eq!(p.take("b", 2).unwrap().state, "b");
        assert_eq!(p.take("a", 2).unwrap().state, "a");
        assert!(
            p.take("a", 2).is_none(),
            "a state is good for one callback only"
        );
    }

    #[test]
    fn bounded_and_expiring() {
        let mut p = PendingLogins::default();
        for i in 0..10 {
            p.push(login(&i.to_string(), i), i);
        }
        assert_eq!(p.entries.len(), MAX_PENDING);
        assert!(p.take("0", 10).is_none());
        assert!(p.take("9", 10 + PENDING_TTL_SECS).is_none(), "expired");
    }
}
