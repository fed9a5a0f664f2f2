//! The state that must outlive a restart when there is no Redis (`store.path`): kept in
//! one file with redb, an embedded, crash-safe key-value store. Each entry has an expiry;
//! expired ones are left out when read and removed now and then.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

/// key → (expiry in Unix seconds, value).
const KEPT: TableDefinition<&str, (i64, &[u8])> = TableDefinition::new("kept");

pub struct FileStore {
    db: Database,
}

impl FileStore {
    /// Opens (or creates) the file; an error says why, for the operator.
    pub fn open(path: &Path) -> Result<Self, String> {
        let db = Database::create(path).map_err(|e| e.to_string())?;
        let store = FileStore { db };
        // The table exists from the start, so reading never meets a missing one.
        let txn = store.db.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(KEPT).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// Keeps `value` under `key` until `expires` (written and synced before it returns).
    pub fn put(&self, key: &str, value: &[u8], expires: i64) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = txn.open_table(KEPT).map_err(|e| e.to_string())?;
            table
                .insert(key, (expires, value))
                .map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    /// Removes the entries under `keys` (missing ones are fine).
    pub fn remove(&self, keys: &[String]) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = txn.open_table(KEPT).map_err(|e| e.to_string())?;
            for key in keys {
                table.remove(key.as_str()).map_err(|e| e.to_string())?;
            }
        }
        txn.commit().map_err(|e| e.to_string())
    }

    /// Removes the entry under `key` and gives its value if it had not expired by `now`,
    /// in one transaction.
    pub fn take(&self, key: &str, now: i64) -> Result<Option<Vec<u8>>, String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        let taken = {
            let mut table = txn.open_table(KEPT).map_err(|e| e.to_string())?;
            let removed = table.remove(key).map_err(|e| e.to_string())?;
            removed.and_then(|entry| {
                let (expires, bytes) = entry.value();
                (expires > now).then(|| bytes.to_vec())
            })
        };
        txn.commit().map_err(|e| e.to_string())?;
        Ok(taken)
    }

    /// Every entry whose key starts with `prefix` and that has not expired by `now`;
    /// expired entries are removed.
    pub fn all(&self, prefix: &str, now: i64) -> Result<Vec<(String, Vec<u8>)>, String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        let mut live = Vec::new();
        {
            let mut table = txn.open_table(KEPT).map_err(|e| e.to_string())?;
            let mut expired = Vec::new();
            for entry in table.range(prefix..).map_err(|e| e.to_string())? {
                let (key, value) = entry.map_err(|e| e.to_string())?;
                let key = key.value();
                if !key.starts_with(prefix) {
                    break;
                }
                let (expires, bytes) = value.value();
                match expires > now {
                    true => live.push((key.to_owned(), bytes.to_vec())),
                    false => expired.push(key.to_owned()),
                }
            }
            for key in expired {
                table.remove(key.as_str()).map_err(|e| e.to_string())?;
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_outlive_the_process_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = FileStore::open(&path).unwrap();
            store.put("revocation:a", b"A", 2_000).unwrap();
            store.put("revocation:b", b"B", 1_000).unwrap();
            store.put("other:c", b"C", 2_000).unwrap();
        }
        let store = FileStore::open(&path).unwrap();
        let live = store.all("revocation:", 1_500).unwrap();
        assert_eq!(live, [("revocation:a".to_owned(), b"A".to_vec())]);
        // The expired one is gone from the file too.
        assert_eq!(store.all("revocation:", 0).unwrap().len(), 1);
        assert_eq!(store.all("other:", 1_500).unwrap().len(), 1);
    }

    #[test]
    fn an_entry_is_taken_once_and_never_after_its_expiry() {
        let folder = tempfile::tempdir().unwrap();
        let store = FileStore::open(&folder.path().join("state.redb")).unwrap();
        store.put("end:a", b"sealed", 200).unwrap();
        store.put("end:b", b"old", 100).unwrap();
        assert_eq!(
            store.take("end:a", 150).unwrap().as_deref(),
            Some(&b"sealed"[..])
        );
        assert_eq!(store.take("end:a", 150).unwrap(), None);
        assert_eq!(store.take("end:b", 150).unwrap(), None);
        assert!(store.all("end:", 0).unwrap().is_empty(), "both are gone");
    }
}
