//! What the auth parts share across config reloads.

use std::sync::Arc;

use super::revocations::Revocations;
use super::single_flight::RefreshResults;
use crate::metrics::Metrics;
use crate::store::file::FileStore;
use crate::store::Store;

/// What outlives a config reload: a signed-out session must stay signed out, the Redis
/// connection is kept, refreshes in flight keep their results, metrics keep counting.
pub struct Lasting {
    pub metrics: Arc<Metrics>,
    pub revocations: Arc<Revocations>,
    pub store: Arc<Store>,
    pub refreshes: Arc<RefreshResults>,
    /// Without Redis, the file that keeps revocations across restarts (`store.path`).
    pub file: Option<Arc<FileStore>>,
    /// Which sessions each person has (`/oauth2/sessions`, the admin API).
    pub sessions: Arc<super::session_index::SessionIndex>,
}

/// What a kept revocation is filed under.
pub const REVOCATION_PREFIX: &str = "revocation:";
/// What a used logout token is filed under.
pub const LOGOUT_TOKEN_PREFIX: &str = "logout-token:";

impl Lasting {
    /// Applies the revocations kept in the file (after a restart), and says how many.
    pub fn load_kept_revocations(&self, now: i64) -> Result<usize, String> {
        let Some(file) = &self.file else {
            return Ok(0);
        };
        let kept = file.all(REVOCATION_PREFIX, now)?;
        for (_, bytes) in &kept {
            if let Ok(revocation) = serde_json::from_slice::<super::Revocation>(bytes) {
                self.revocations.apply(&revocation);
            }
        }
        for (key, _) in file.all(LOGOUT_TOKEN_PREFIX, now)? {
            self.revocations
                .first_use_of(&key[LOGOUT_TOKEN_PREFIX.len()..]);
        }
        Ok(kept.len())
    }
}
