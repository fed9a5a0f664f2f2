//! Which sessions a person has (by IdP and subject), for `/oauth2/sessions` and the admin
//! API: when each began and was last used, the IdP, the browser and a coarse address.
//! Sessions live in cookies; this index only describes them. Ending one is a revocation
//! by its id, which every replica honours. Kept in Redis when there is one (a hash per
//! person), else in `store.path` (or this process's memory without it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::digest::digest;
use crate::session::Session;
use crate::store::file::FileStore;
use crate::store::Store;

/// "Last used" is written at most this often per session: a request must not become a
/// write.
const TOUCH_EVERY_SECS: i64 = 300;

/// Sessions whose last "last used" write is remembered; one forgotten is written again at
/// its next request, so this bounds memory, not correctness.
const TOUCHED_SESSIONS: usize = 100_000;

/// What the file keeps an entry under: `session-index:<person>:<id>`.
const FILE_PREFIX: &str = "session-index:";

/// What a session's sealed means of ending it is kept under: `session-end:<id>`.
const END_PREFIX: &str = "session-end:";

/// One session, as its owner and support see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionEntry {
    pub id: String,
    pub subject: String,
    pub organization: String,
    pub identity_provider: String,
    /// Unix seconds.
    pub created: i64,
    pub last_used: i64,
    /// When it ends at the latest (`session.max_age` from its start).
    pub expires: i64,
    /// "Firefox on Windows": from the `User-Agent` at sign-in.
    pub browser: String,
    /// The sign-in's network, not the address: `203.0.113.0/24`, `2001:db8:1::/48`.
    pub network: String,
}

pub struct SessionIndex {
    store: Arc<Store>,
    file: Option<Arc<FileStore>>,
    /// Without Redis or a file: person → id → entry.
    memory: Mutex<HashMap<String, HashMap<String, SessionEntry>>>,
    /// Session id → when its "last used" was last written here.
    /// Session (by a hash of its id: two sessions sharing one only skip a write) → when
    /// its "last used" was last written here. A plain map, pruned when full: a cache's
    /// bookkeeping per entry cost more than the entry.
    touched: Mutex<HashMap<u64, i64>>,
    hasher: std::collections::hash_map::RandomState,
    /// Without Redis or a file: session id → (sealed means of ending it, until when).
    ends: moka::sync::Cache<String, (String, i64)>,
}

impl SessionIndex {
    pub fn new(store: Arc<Store>, file: Option<Arc<FileStore>>) -> Self {
        SessionIndex {
            store,
            file,
            memory: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            touched: Mutex::default(),
            ends: moka::sync::Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// Keeps what ending session `id` elsewhere takes (sealed by the caller) until
    /// `expires`, replacing what was kept before.
    pub async fn keep_end(&self, id: &str, sealed: String, expires: i64) {
        let key = format!("{END_PREFIX}{id}");
        let now = chrono::Utc::now().timestamp();
        if self.store.is_shared() {
            let ttl = Duration::from_secs(u64::try_from(expires - now).unwrap_or(0).max(1));
            let key = self.store.key(&key);
            if let Err(error) = self.store.set(&key, sealed.as_bytes(), ttl).await {
                tracing::warn!(?error, "a session's end could not be kept in Redis");
            }
        } else if let Some(file) = &self.file {
            let file = file.clone();
            let kept =
                tokio::task::spawn_blocking(move || file.put(&key, sealed.as_bytes(), expires))
                    .await;
            if !matches!(kept, Ok(Ok(()))) {
                tracing::warn!("store.path: a session's end could not be kept");
            }
        } else {
            self.ends.insert(key, (sealed, expires));
        }
    }

    /// Takes (and forgets) what was kept for ending session `id`.
    pub async fn take_end(&self, id: &str) -> Option<String> {
        let key = format!("{END_PREFIX}{id}");
        let now = chrono::Utc::now().timestamp();
        let found = if self.store.is_shared() {
            let key = self.store.key(&key);
            let found = self.store.get(&key).await.ok().flatten();
            let _ = self.store.delete(&key).await;
            found.and_then(|bytes| String::from_utf8(bytes).ok())
        } else if let Some(file) = &self.file {
            let file = file.clone();
            let taken = tokio::task::spawn_blocking(move || file.take(&key, now).ok().flatten());
            (taken.await.ok().flatten()).and_then(|bytes| String::from_utf8(bytes).ok())
        } else {
            let found = self.ends.remove(&key);
            found
                .filter(|(_, expires)| *expires > now)
                .map(|(sealed, _)| sealed)
        };
        found
    }

    /// A new session: who, where from, until when.
    pub async fn record(
        &self,
        session: &Session,
        user_agent: Option<&str>,
        client: Option<IpAddr>,
        max_age: Duration,
    ) {
        let entry = SessionEntry {
            id: session.id.clone(),
            subject: session.identity.subject.clone(),
            organization: session.organization.clone(),
            identity_provider: session.identity_provider.clone(),
            created: session.issued_at,
            last_used: session.issued_at,
            expires: session.issued_at + crate::config::whole_secs(max_age),
            browser: browser_of(user_agent.unwrap_or("")),
            network: client.map(network_of).unwrap_or_default(),
        };
        if let Ok(mut touched) = self.touched.lock() {
            mark_touched(&mut touched, self.touch_key(&entry.id), entry.last_used);
        }
        self.put(&entry).await;
    }

    /// Whether a request of `session` at `now` should write its "last used" (at most
    /// every few minutes); marks it written when so.
    pub fn touch_due(&self, session: &Session, now: i64) -> bool {
        let key = self.touch_key(&session.id);
        let Ok(mut touched) = self.touched.lock() else {
            return false;
        };
        if touched
            .get(&key)
            .is_some_and(|at| now - at < TOUCH_EVERY_SECS)
        {
            return false;
        }
        mark_touched(&mut touched, key, now);
        true
    }

    fn touch_key(&self, id: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, id)
    }

    /// Writes the "last used" of `session` ([`SessionIndex::touch_due`] said it is due).
    pub async fn touch(&self, session: &Session, now: i64) {
        let person = person(&session.identity_provider, &session.identity.subject);
        let Some(mut entry) = (self.entries_of(&person, now).await)
            .into_iter()
            .find(|e| e.id == session.id)
        else {
            return;
        };
        entry.last_used = now;
        self.put(&entry).await;
    }

    /// The live sessions of `subject` at `idp`, newest first.
    pub async fn of(&self, idp: &str, subject: &str, now: i64) -> Vec<SessionEntry> {
        let mut entries = self.entries_of(&person(idp, subject), now).await;
        entries.sort_by_key(|e| std::cmp::Reverse(e.created));
        entries
    }

    /// Leaves these sessions out from now on (they were ended).
    pub async fn forget(&self, idp: &str, subject: &str, ids: &[String]) {
        let person = person(idp, subject);
        if self.store.is_shared() {
            let fields: Vec<Vec<u8>> = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
            let _ = self
                .store
                .hash_delete(&self.redis_key(&person), &fields)
                .await;
        } else if let Some(file) = &self.file {
            let keys: Vec<String> = ids.iter().map(|id| file_key(&person, id)).collect();
            let file = file.clone();
            let _ = tokio::task::spawn_blocking(move || file.remove(&keys)).await;
        } else if let Ok(mut memory) = self.memory.lock() {
            if let Some(sessions) = memory.get_mut(&person) {
                for id in ids {
                    sessions.remove(id);
                }
            }
        }
    }

    async fn put(&self, entry: &SessionEntry) {
        let person = person(&entry.identity_provider, &entry.subject);
        let Ok(json) = serde_json::to_vec(entry) else {
            return;
        };
        let now = chrono::Utc::now().timestamp();
        let ttl = Duration::from_secs(u64::try_from(entry.expires - now).unwrap_or(0).max(1));
        if self.store.is_shared() {
            let key = self.redis_key(&person);
            if let Err(error) = self
                .store
                .hash_set(&key, entry.id.as_bytes(), &json, ttl)
                .await
            {
                tracing::warn!(?error, "the session index could not be written to Redis");
            }
        } else if let Some(file) = &self.file {
            let (file, key, expires) = (file.clone(), file_key(&person, &entry.id), entry.expires);
            let kept = tokio::task::spawn_blocking(move || file.put(&key, &json, expires)).await;
            if !matches!(kept, Ok(Ok(()))) {
                tracing::warn!("store.path: the session index could not be written");
            }
        } else if let Ok(mut memory) = self.memory.lock() {
            // Ended and expired sessions leave when their person's list is written.
            let sessions = memory.entry(person).or_default();
            sessions.retain(|_, e| e.expires > now);
            sessions.insert(entry.id.clone(), entry.clone());
        }
    }

    async fn entries_of(&self, person: &str, now: i64) -> Vec<SessionEntry> {
        let raw: Vec<Vec<u8>> = if self.store.is_shared() {
            match self.store.hash_entries(&self.redis_key(person)).await {
                Ok(entries) => entries.into_iter().map(|(_, value)| value).collect(),
                Err(_) => Vec::new(),
            }
        } else if let Some(file) = &self.file {
            let (file, prefix) = (file.clone(), format!("{FILE_PREFIX}{person}:"));
            match tokio::task::spawn_blocking(move || file.all(&prefix, now)).await {
                Ok(Ok(entries)) => entries.into_iter().map(|(_, value)| value).collect(),
                _ => Vec::new(),
            }
        } else {
            let memory = self.memory.lock().map(|m| m.get(person).cloned());
            return (memory.ok().flatten().unwrap_or_default().into_values())
                .filter(|e| e.expires > now)
                .collect();
        };
        raw.iter()
            .filter_map(|bytes| serde_json::from_slice::<SessionEntry>(bytes).ok())
            .filter(|e| e.expires > now)
            .collect()
    }

    fn redis_key(&self, person: &str) -> String {
        self.store.key(&format!("sessions:{person}"))
    }
}

/// Remembers that `key`'s "last used" was written at `now`; a full map first drops what
/// is due anyway, and is emptied when everything in it is recent.
fn mark_touched(touched: &mut HashMap<u64, i64>, key: u64, now: i64) {
    if touched.len() >= TOUCHED_SESSIONS {
        touched.retain(|_, at| now - *at < TOUCH_EVERY_SECS);
        if touched.len() >= TOUCHED_SESSIONS {
            // More sessions in use than remembered: they are written again, sooner.
            touched.clear();
        }
    }
    touched.insert(key, now);
}

/// A person's key: a digest, so that no subject can reach into another's keys.
fn person(idp: &str, subject: &str) -> String {
    digest(format!("{idp}\u{0}{subject}"))
}

fn file_key(person: &str, id: &str) -> String {
    format!("{FILE_PREFIX}{person}:{id}")
}

/// "Chrome on Windows" from a `User-Agent`; "Unknown browser" where it says nothing known.
pub fn browser_of(user_agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(mark, _)| user_agent.contains(mark))
    .map_or("Unknown browser", |(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| user_agent.contains(mark))
    .map(|(_, name)| *name);
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    }
}

/// The network of an address, coarse enough not to pin a household: IPv4 /24, IPv6 /48.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_networks_are_described_coarsely() {
        let firefox =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(browser_of(firefox), "Firefox on Windows");
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(browser_of(chrome), "Chrome on Linux");
        assert_eq!(browser_of("<script>"), "Unknown browser");
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2::5".parse().unwrap()),
            "2001:db8:1::/48"
        );
    }

    #[tokio::test]
    async fn without_redis_the_index_outlives_a_restart_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let now = chrono::Utc::now().timestamp();
        let mut session = Session {
            id: "s1".into(),
            identity_provider: "kc".into(),
            issued_at: now,
            ..Default::default()
        };
        session.identity.subject = "ann".into();
        {
            let file = Arc::new(FileStore::open(&path).unwrap());
            let index = SessionIndex::new(Arc::new(Store::memory(metrics.clone())), Some(file));
            let ip = "192.0.2.9".parse().ok();
            index
                .record(&session, None, ip, Duration::from_secs(3600))
                .await;
        }
        let file = Arc::new(FileStore::open(&path).unwrap());
        let index = SessionIndex::new(Arc::new(Store::memory(metrics)), Some(file));
        let kept = index.of("kc", "ann", now).await;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].network, "192.0.2.0/24");
        index.forget("kc", "ann", &["s1".to_owned()]).await;
        assert!(index.of("kc", "ann", now).await.is_empty());
    }

    #[tokio::test]
    async fn a_persons_sessions_are_listed_touched_and_forgotten() {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let index = SessionIndex::new(Arc::new(Store::memory(metrics)), None);
        let session = |id: &str, sub: &str, at: i64| {
            let mut s = Session {
                id: id.into(),
                identity_provider: "kc".into(),
                organization: "Shop".into(),
                issued_at: at,
                ..Default::default()
            };
            s.identity.subject = sub.into();
            s
        };
        let now = chrono::Utc::now().timestamp();
        let day = Duration::from_secs(86_400);
        index
            .record(&session("a", "ann", now - 100), Some("curl/8"), None, day)
            .await;
        index
            .record(&session("b", "ann", now - 50), None, None, day)
            .await;
        index
            .record(&session("c", "bob", now - 10), None, None, day)
            .await;
        let ann: Vec<String> = index
            .of("kc", "ann", now)
            .await
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ann, ["b", "a"], "newest first, only ann's");
        assert!(index.of("other-idp", "ann", now).await.is_empty());

        // Written at most every few minutes: not due right after the sign-in.
        let a = session("a", "ann", now - 100);
        assert!(!index.touch_due(&a, now - 100 + 1));
        assert!(index.touch_due(&a, now + TOUCH_EVERY_SECS));
        assert!(!index.touch_due(&a, now + TOUCH_EVERY_SECS + 1));
        index.touch(&a, now + TOUCH_EVERY_SECS).await;
        let a = index
            .of("kc", "ann", now)
            .await
            .into_iter()
            .find(|e| e.id == "a")
            .unwrap();
        assert_eq!(a.last_used, now + TOUCH_EVERY_SECS);
        assert_eq!(a.browser, "curl");

        index.forget("kc", "ann", &["a".to_owned()]).await;
        let ann: Vec<String> = index
            .of("kc", "ann", now)
            .await
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ann, ["b"]);
    }
}
