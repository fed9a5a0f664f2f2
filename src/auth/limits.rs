//! Per-client limits on the sign-in endpoints, so one address cannot flood the IdP with
//! logins or the sidecar with callbacks.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

/// Fixed one-minute windows per client address.
pub struct LoginRateLimit {
    per_minute: u32,
    windows: Cache<(IpAddr, i64), Arc<AtomicU32>>,
}

impl LoginRateLimit {
    pub fn new(per_minute: u32) -> Self {
        LoginRateLimit {
            per_minute,
            windows: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(120))
                .build(),
        }
    }

    /// `Err(seconds to wait)` when `client` has used up this minute's requests.
    pub fn check(&self, client: Option<IpAddr>, now: i64) -> Result<(), u64> {
        let (Some(client), true) = (client, self.per_minute > 0) else {
            return Ok(());
        };
        let window = now.div_euclid(60);
        let count = self.windows.get_with((client, window), Default::default);
        if count.fetch_add(1, Ordering::Relaxed) < self.per_minute {
            Ok(())
        } else {
            Err((60 - now.rem_euclid(60)) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address_per_minute() {
        let limit = LoginRateLimit::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(Some(a), 120).is_ok());
        }
        assert_eq!(limit.check(Some(a), 130), Err(50));
        assert!(
            limit.check(Some(b), 130).is_ok(),
            "other addresses are not affected"
        );
        assert!(
            limit.check(Some(a), 180).is_ok(),
            "a new minute starts afresh"
        );
        assert!(
            LoginRateLimit::new(0).check(Some(a), 0).is_ok(),
            "0 turns it off"
        );
    }
}
