//! What the auth parts share across config reloads.

use std::sync::Arc;

use super::revocations::Revocations;
use super::single_flight::RefreshResults;
use crate::metrics::Metrics;
use crate::store::Store;

/// What outlives a config reload: a signed-out session must stay signed out, the Redis
/// connection is kept, refreshes in flight keep their results, metrics keep counting.
pub struct Lasting {
    pub metrics: Arc<Metrics>,
    pub revocations: Arc<Revocations>,
    pub store: Arc<Store>,
    pub refreshes: Arc<RefreshResults>,
}
