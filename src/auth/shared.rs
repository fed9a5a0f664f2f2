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

use super::revocations::{LoadState, Revocation, Revocations};
use crate::store::{Store, Unavailable};

const CHANNEL: &str = "revocations";
const KEPT: &str = "revocations";
/// Attempts at loading the kept revocations per (re)connection, a second apart.
const LOAD_ATTEMPTS: u32 = 5;
/// How often revocations that Redis missed are written again.
const UNSHARED_RETRY: Duration = Duration::from_secs(1);

/// Keeps `revocation` in Redis until `expires` (Unix seconds) and tells the running
/// replicas. Failures are counted by the store.
pub(super) async fn share(
    store: &Store,
    revocation: &Revocation,
    expires: i64,
) -> Result<(), Unavailable> {
    let Ok(message) = serde_json::to_vec(revocation) else {
        return Ok(());
    };
    let now = chrono::Utc::now().timestamp();
    let ttl = Duration::from_secs(u64::try_from(expires.saturating_sub(now)).unwrap_or(0));
    if ttl.is_zero() {
        return Ok(());
    }
    store
        .hash_set(
            &store.key(KEPT),
            &message,
            expires.to_string().as_bytes(),
            ttl,
        )
        .await?;
    // Kept first: a replica that misses the message loads it at its next (re)connection.
    let _ = store.publish(&store.key(CHANNEL), &message).await;
    Ok(())
}

/// Writes the revocations Redis did not take again, once a second, until `stop`.
async fn share_unshared(
    store: &Store,
    revocations: &Revocations,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(UNSHARED_RETRY) => {}
        }
        let waiting = revocations.take_unshared();
        if waiting.is_empty() {
            continue;
        }
        let mut shared = 0;
        let mut still = waiting.into_iter();
        for (revocation, expires) in still.by_ref() {
            if share(store, &revocation, expires).await.is_err() {
                revocations.share_later(revocation, expires);
                break;
            }
            shared += 1;
        }
        // Redis failed again: keep the rest for the next round without trying each.
        for (revocation, expires) in still {
            revocations.share_later(revocation, expires);
        }
        if shared > 0 {
            tracing::info!(shared, "shared revocations that Redis missed earlier");
        }
    }
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
    let retrying = share_unshared(store, revocations, stop.clone());
    let following = store.follow(&channel, load_kept, apply, stop);
    tokio::join!(following, give_up, retrying);
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
