//! Revocations shared between replicas through the store. Each one is applied here at
//! once, kept in Redis as long as a session can live (for replicas that start or reconnect
//! later) and published to the running ones, which apply it to their local list: the check
//! on every request stays a local lookup.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::revocations::{Revocation, Revocations};
use super::AuthService;
use crate::store::Store;

const CHANNEL: &str = "revocations";
const KEPT: &str = "revoked:";
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
    let key = store.key(&format!("{KEPT}{}", digest(&message)));
    // Failures are counted by the store; the revocation holds here either way.
    let _ = store.set(&key, &message, ttl).await;
    let _ = store.publish(&store.key(CHANNEL), &message).await;
}

/// Applies other replicas' revocations until `stop`: the kept ones after every
/// (re)connection, then each one as it is published.
pub async fn follow(
    store: &Store,
    revocations: &Revocations,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let apply = |message: &[u8]| match serde_json::from_slice::<Revocation>(message) {
        Ok(revocation) => revocations.apply(&revocation),
        Err(error) => tracing::warn!(%error, "ignoring a malformed shared revocation"),
    };
    let load_kept = || async {
        if let Ok(kept) = store.scan_values(&store.key(KEPT)).await {
            for message in &kept {
                apply(message);
            }
            tracing::info!(count = kept.len(), "loaded shared revocations");
        }
    };
    store
        .follow(&store.key(CHANNEL), load_kept, apply, stop)
        .await;
}
