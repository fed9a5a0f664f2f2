//! Revocations shared between replicas through the store. Each one is applied here at
//! once, kept in Redis as long as a session can live (for replicas that start or reconnect
//! later) and published to the running ones, which apply it to their local list: the check
//! on every request stays a local lookup.
//!
//! Kept revocations live in one hash per deployment, `<prefix>revocations`: field = the
//! revocation, value = its expiry (Unix seconds). A replica reads it with `HSCAN` in
//! batches, however many other keys share the Redis, under `store.load_timeout`, and
//! retries until it has it; `/readyz` says `loading`, `loaded` or `failed`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::revocations::{LoadState, Revocation, Revocations};
use super::AuthService;
use crate::store::{Store, Unavailable};

const CHANNEL: &str = "revocations";
const KEPT: &str = "revocations";
/// Attempts at loading the kept revocations per (re)connection, a second apart.
const LOAD_ATTEMPTS: u32 = 5;
const LOGOUT_TOKENS: &str = "logout-token:";

/// A short, fixed-size key part for a value that may be long or secret.
pub(crate) fn digest(value: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_ref()))
}

impl AuthService {
    pub(super) async fn revoke(&self, revocation: Revocation) {
        self.revocations.apply(&revocation);
        share(&self.store, &revocation, self.config.session.max_age).await;
    }

    /// False when this logout token was used before, here or at another replica.
    pub(super) async fn first_use_of_logout_token(&self, id: &str) -> bool {
        let here = self.revocations.first_use_of(id);
        let key = self.store.key(&format!("{LOGOUT_TOKENS}{}", digest(id)));
        let ttl = self.config.session.max_age.max(Duration::from_secs(3600));
        match self.store.set_new(&key, b"1", ttl).await {
            Ok(first_anywhere) => here && first_anywhere,
            Err(_) => here,
        }
    }
}

async fn share(store: &Store, revocation: &Revocation, ttl: Duration) {
    if !store.is_shared() {
        return;
    }
    let Ok(message) = serde_json::to_vec(revocation) else {
        return;
    };
    let expires = chrono::Utc::now()
        .timestamp()
        .saturating_add(crate::config::whole_secs(ttl));
    // Failures are counted by the store; the revocation holds here either way.
    let _ = store
        .hash_set(
            &store.key(KEPT),
            &message,
            expires.to_string().as_bytes(),
            ttl,
        )
        .await;
    let _ = store.publish(&store.key(CHANNEL), &message).await;
}

/// Applies other replicas' revocations until `stop`: the kept ones after every
/// (re)connection, then each one as it is published.
pub async fn follow(
    store: &Store,
    revocations: &Revocations,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    if !store.is_shared() {
        return;
    }
    let apply = |message: &[u8]| match serde_json::from_slice::<Revocation>(message) {
        Ok(revocation) => revocations.apply(&revocation),
        Err(error) => tracing::warn!(%error, "ignoring a malformed shared revocation"),
    };
    let load_kept = || async {
        for attempt in 1..=LOAD_ATTEMPTS {
            match load_kept(store, revocations).await {
                Ok(count) => {
                    revocations.set_load_state(LoadState::Loaded);
                    tracing::info!(count, "loaded shared revocations");
                    return;
                }
                Err(_) if attempt < LOAD_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => {
                    revocations.set_load_state(LoadState::Failed);
                    tracing::error!(
                        "cannot load the shared revocations from Redis; sessions revoked at other replicas may be accepted until it works"
                    );
                }
            }
        }
    };
    // Redis may not answer at all (no subscription, so no load attempt): readiness must not
    // wait for it forever.
    let give_up = async {
        tokio::time::sleep(store.load_timeout() + Duration::from_secs(5)).await;
        if revocations.load_state() == LoadState::Loading {
            revocations.set_load_state(LoadState::Failed);
            tracing::error!("Redis did not answer; running with this replica's revocations only");
        }
    };
    let channel = store.key(CHANNEL);
    let following = store.follow(&channel, load_kept, apply, stop);
    tokio::join!(following, give_up);
}

/// Reads the kept revocations, applies the live ones and removes the expired ones.
async fn load_kept(store: &Store, revocations: &Revocations) -> Result<usize, Unavailable> {
    let key = store.key(KEPT);
    let now = chrono::Utc::now().timestamp();
    let mut expired = Vec::new();
    let mut count = 0;
    for (field, value) in store.hash_entries(&key).await? {
        let expires = std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        match serde_json::from_slice::<Revocation>(&field) {
            Ok(revocation) if expires > now => {
                revocations.apply(&revocation);
                count += 1;
            }
            _ => expired.push(field),
        }
    }
    // Best effort: the next loader cleans up what this one could not.
    let _ = store.hash_delete(&key, &expired).await;
    Ok(count)
}
