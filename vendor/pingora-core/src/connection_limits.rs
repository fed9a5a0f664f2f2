// Added by sso-sidecar (not upstream pingora): limits on client connections.
//
// At most `max_total` connections at once, and `max_per_client` from one peer address
// (peers the application exempts, such as its trusted load balancers, count only towards
// the total). A connection over a limit is closed right after accept, before any byte is
// read; connections already open are untouched. Process-wide, set by the application.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Decides whether a peer is exempt from the per-client limit.
pub type Exempt = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

struct Settings {
    max_total: usize,
    max_per_client: usize,
    exempt: Option<Exempt>,
}

static SETTINGS: RwLock<Settings> = RwLock::new(Settings {
    max_total: usize::MAX,
    max_per_client: usize::MAX,
    exempt: None,
});
static OPEN: AtomicUsize = AtomicUsize::new(0);
static PER_CLIENT: Mutex<Option<HashMap<IpAddr, usize>>> = Mutex::new(None);
static REFUSED_TOTAL: AtomicU64 = AtomicU64::new(0);
static REFUSED_PER_CLIENT: AtomicU64 = AtomicU64::new(0);

/// Sets the limits for connections accepted from now on.
pub fn set(max_total: usize, max_per_client: usize, exempt: Option<Exempt>) {
    let mut settings = SETTINGS.write().unwrap_or_else(|e| e.into_inner());
    *settings = Settings {
        max_total,
        max_per_client,
        exempt,
    };
}

/// Connections refused because of `max_total` and of `max_per_client`, since start.
pub fn refused() -> (u64, u64) {
    (
        REFUSED_TOTAL.load(Ordering::Relaxed),
        REFUSED_PER_CLIENT.load(Ordering::Relaxed),
    )
}

/// Connections open now.
pub fn open() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// Held for as long as a connection is open.
pub struct Slot {
    client: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.client {
            let mut map = PER_CLIENT.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(counts) = map.as_mut() {
                if let Some(n) = counts.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&ip);
                    }
                }
            }
        }
    }
}

/// A slot for a new connection from `peer`, or `None` when a limit is reached.
pub fn claim(peer: Option<IpAddr>) -> Option<Slot> {
    let settings = SETTINGS.read().unwrap_or_else(|e| e.into_inner());
    if OPEN.fetch_add(1, Ordering::Relaxed) >= settings.max_total {
        OPEN.fetch_sub(1, Ordering::Relaxed);
        REFUSED_TOTAL.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let counted = peer.filter(|ip| {
        settings.max_per_client != usize::MAX && !settings.exempt.as_ref().is_some_and(|e| e(*ip))
    });
    if let Some(ip) = counted {
        let mut map = PER_CLIENT.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.get_or_insert_with(HashMap::new).entry(ip).or_insert(0);
        if *n >= settings.max_per_client {
            drop(map);
            OPEN.fetch_sub(1, Ordering::Relaxed);
            REFUSED_PER_CLIENT.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
    }
    Some(Slot { client: counted })
}
