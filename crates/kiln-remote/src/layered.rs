use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kiln_cache::{ActionRecord, CacheBucket, CacheError, CacheTraffic, LocalStore, Storage};
use kiln_key::ActionKey;
use kiln_types::Digest;

use crate::RemoteStore;

/// The local store first, then the remote one.
///
/// - A lookup asks the local store; on a miss, the remote. A remote hit is written to the local
///   store (the record at once, each blob when it is fetched), so the next run is local.
/// - Results are written to both: first locally, then to the remote unless it is `read_only`.
/// - Records (`kiln image` layer records, key bookkeeping) stay local.
/// - The remote never fails a call: its errors become misses (or skipped writes), noted in
///   [`Storage::traffic`], and its circuit breaker turns it off after repeated failures. Local
///   errors are returned as they are.
pub struct LayeredStore<L: Storage = LocalStore> {
    local: L,
    remote: RemoteStore,
    local_hits: AtomicU64,
    remote_hits: AtomicU64,
    misses: AtomicU64,
    /// Sizes of blobs named by records this store handed out: a remote fetch needs them.
    sizes: Mutex<HashMap<Digest, u64>>,
}

impl<L: Storage> LayeredStore<L> {
    /// `local` in front of `remote`.
    pub fn new(local: L, remote: RemoteStore) -> Self {
        Self {
            local,
            remote,
            local_hits: AtomicU64::new(0),
            remote_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// The local tier.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// The remote tier.
    pub fn remote(&self) -> &RemoteStore {
        &self.remote
    }

    fn remember(&self, record: &ActionRecord) {
        if let Ok(mut s) = self.sizes.lock() {
            for o in &record.outputs {
                s.insert(o.digest, o.size);
            }
        }
    }

    fn size_of(&self, digest: &Digest) -> Option<u64> {
        self.sizes
            .lock()
            .ok()
            .and_then(|s| s.get(digest).copied())
            .or_else(|| self.remote.known_size(digest))
    }
}

impl<L: Storage> Storage for LayeredStore<L> {
    fn name(&self) -> String {
        format!("{} + {}", self.local.name(), self.remote.name())
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionRecord>, CacheError> {
        if let Some(record) = self.local.get_action(key)? {
            self.remember(&record);
            self.local_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(record));
        }
        // A remote error is a miss here: the store already noted it, once.
        let Ok(Some(record)) = self.remote.get_action(key) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        self.remember(&record);
        self.remote_hits.fetch_add(1, Ordering::Relaxed);
        // The record now, the blobs as `get_blob` fetches them: a local record whose blob is
        // missing only sends the next lookup's blob fetch to the remote again.
        if let Err(e) = self.local.put_action(key, &record) {
            self.remote
                .warn(format!("cannot copy a remote hit to the local cache: {e}"));
        }
        Ok(Some(record))
    }

    fn put_action(&self, key: &ActionKey, record: &ActionRecord) -> Result<(), CacheError> {
        self.local.put_action(key, record)?;
        // Failures are noted by the remote store; the local result stands.
        let _ = self.remote.put_action(key, record);
        Ok(())
    }

    fn has_blob(&self, digest: &Digest) -> Result<bool, CacheError> {
        if self.local.has_blob(digest)? {
            return Ok(true);
        }
        Ok(self.remote.has_blob(digest).unwrap_or(false))
    }

    fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, CacheError> {
        if self.local.get_blob(digest, dest)? {
            return Ok(true);
        }
        let Some(size) = self.size_of(digest) else {
            return Ok(false);
        };
        if !self.remote.fetch(digest, size, dest).unwrap_or(false) {
            return Ok(false);
        }
        if let Err(e) = self.local.put_blob(dest) {
            self.remote
                .warn(format!("cannot copy a remote blob to the local cache: {e}"));
        }
        Ok(true)
    }

    fn put_blob(&self, src: &Path) -> Result<(Digest, u64), CacheError> {
        let (digest, size) = self.local.put_blob(src)?;
        let _ = self.remote.upload(src, &digest, size);
        Ok((digest, size))
    }

    fn get_record(&self, bucket: CacheBucket, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.local.get_record(bucket, key)
    }

    fn put_record(&self, bucket: CacheBucket, key: &str, bytes: &[u8]) -> Result<(), CacheError> {
        self.local.put_record(bucket, key, bytes)
    }

    fn traffic(&self) -> Option<CacheTraffic> {
        let mut t = self.remote.traffic()?;
        t.local_hits = self.local_hits.load(Ordering::Relaxed);
        t.remote_hits = self.remote_hits.load(Ordering::Relaxed);
        t.misses = self.misses.load(Ordering::Relaxed);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RemoteCache;
    use kiln_cache::{MemoryStore, OutputRecord};

    fn key() -> ActionKey {
        ActionKey::from_hex(&blake3::hash(b"k").to_hex()).unwrap()
    }

    /// With the remote unreachable, the layered store behaves as its local tier and only notes
    /// the remote's failure once.
    #[test]
    fn a_dead_remote_leaves_the_local_tier_working() {
        let mut cfg = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        cfg.retries = 0;
        let store = LayeredStore::new(MemoryStore::new(), RemoteStore::open(cfg).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("bin");
        std::fs::write(&src, b"binary").unwrap();
        assert_eq!(store.get_action(&key()).unwrap(), None);
        let (digest, size) = store.put_blob(&src).unwrap();
        let rec = ActionRecord {
            outputs: vec![OutputRecord {
                name: "bin".into(),
                digest,
                size,
                executable: true,
            }],
            created: 0,
            duration_ms: 1,
        };
        store.put_action(&key(), &rec).unwrap();
        assert_eq!(store.get_action(&key()).unwrap(), Some(rec));
        let out = dir.path().join("out");
        assert!(store.get_blob(&digest, &out).unwrap());
        let t = store.traffic().unwrap();
        assert_eq!((t.local_hits, t.remote_hits, t.misses), (1, 0, 1));
        assert!(t.disabled.is_some());
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    }
}
