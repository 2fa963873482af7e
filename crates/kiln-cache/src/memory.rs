//! An in-memory [`Storage`], for tests and embedding.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use kiln_key::ActionKey;
use kiln_types::Digest;

use crate::local::io_err;
use crate::{check_record_key, ActionRecord, CacheBucket, CacheError, Storage};

/// A [`Storage`] that keeps everything in memory: for unit tests of code that takes a
/// `&dyn Storage` (the build pipeline's hit, miss and warning decisions) and for embedding kiln
/// where nothing should outlive the process.
///
/// It keeps the contract of the on-disk store: [`Storage::get_blob`] verifies the digest of what
/// it hands out and treats a mismatch as a miss that removes the entry, `has_blob` only reports
/// intact blobs, and records of one bucket are invisible in another. Tests can plant damaged
/// entries ([`MemoryStore::insert_raw_blob`]) and make the store fail
/// ([`MemoryStore::fail_reads`], [`MemoryStore::fail_writes`]) to exercise those paths.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    fail_reads: AtomicBool,
    fail_writes: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    actions: HashMap<ActionKey, ActionRecord>,
    blobs: HashMap<Digest, Vec<u8>>,
    records: HashMap<(CacheBucket, String), Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (only possible in a test) leaves maps that are still
        // consistent: every operation replaces whole entries.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check(&self, flag: &AtomicBool, operation: &str) -> Result<(), CacheError> {
        if flag.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable {
                store: self.name(),
                reason: format!("{operation} failed (told to fail)"),
            });
        }
        Ok(())
    }

    /// With `true`, every later read (`get_*`, `has_blob`) fails with
    /// [`CacheError::Unavailable`]; `false` undoes it.
    pub fn fail_reads(&self, fail: bool) {
        self.fail_reads.store(fail, Ordering::Relaxed);
    }

    /// With `true`, every later write (`put_*`) fails with [`CacheError::Unavailable`]; `false`
    /// undoes it.
    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::Relaxed);
    }

    /// Stores `bytes` under `digest` without checking that they match: a damaged entry, for
    /// tests of corruption handling.
    pub fn insert_raw_blob(&self, digest: Digest, bytes: Vec<u8>) {
        self.state().blobs.insert(digest, bytes);
    }

    /// The bytes stored under `digest`, as they are (unverified).
    pub fn raw_blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        self.state().blobs.get(digest).cloned()
    }

    /// Number of action records.
    pub fn action_count(&self) -> usize {
        self.state().actions.len()
    }

    /// Number of blobs.
    pub fn blob_count(&self) -> usize {
        self.state().blobs.len()
    }

    /// Number of records in `bucket`.
    pub fn record_count(&self, bucket: CacheBucket) -> usize {
        self.state()
            .records
            .keys()
            .filter(|(b, _)| *b == bucket)
            .count()
    }

    /// Removes the action record under `key`, returning it.
    pub fn remove_action(&self, key: &ActionKey) -> Option<ActionRecord> {
        self.state().actions.remove(key)
    }

    /// Removes everything.
    pub fn clear(&self) {
        *self.state() = State::default();
    }
}

impl Storage for MemoryStore {
    fn name(&self) -> String {
        "memory".into()
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionRecord>, CacheError> {
        self.check(&self.fail_reads, "get_action")?;
        Ok(self.state().actions.get(key).cloned())
    }

    fn put_action(&self, key: &ActionKey, record: &ActionRecord) -> Result<(), CacheError> {
        self.check(&self.fail_writes, "put_action")?;
        self.state().actions.insert(*key, record.clone());
        Ok(())
    }

    fn has_blob(&self, digest: &Digest) -> Result<bool, CacheError> {
        self.check(&self.fail_reads, "has_blob")?;
        Ok(self
            .state()
            .blobs
            .get(digest)
            .is_some_and(|b| Digest::of_bytes(b) == *digest))
    }

    fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, CacheError> {
        self.check(&self.fail_reads, "get_blob")?;
        let bytes = {
            let mut state = self.state();
            match state.blobs.get(digest) {
                None => return Ok(false),
                Some(b) if Digest::of_bytes(b) != *digest => {
                    state.blobs.remove(digest);
                    return Ok(false);
                }
                Some(b) => b.clone(),
            }
        };
        // The same atomicity as the local store: `dest` is either untouched or complete.
        let dir = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        tmp.write_all(&bytes).map_err(io_err(dest))?;
        tmp.persist(dest).map_err(|e| CacheError::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(true)
    }

    fn put_blob(&self, src: &Path) -> Result<(Digest, u64), CacheError> {
        self.check(&self.fail_writes, "put_blob")?;
        let bytes = fs::read(src).map_err(io_err(src))?;
        let digest = Digest::of_bytes(&bytes);
        let size = bytes.len() as u64;
        self.state().blobs.insert(digest, bytes);
        Ok((digest, size))
    }

    fn get_record(&self, bucket: CacheBucket, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        check_record_key(bucket, key)?;
        self.check(&self.fail_reads, "get_record")?;
        Ok(self
            .state()
            .records
            .get(&(bucket, key.to_string()))
            .cloned())
    }

    fn put_record(&self, bucket: CacheBucket, key: &str, bytes: &[u8]) -> Result<(), CacheError> {
        check_record_key(bucket, key)?;
        self.check(&self.fail_writes, "put_record")?;
        self.state()
            .records
            .insert((bucket, key.to_string()), bytes.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutputRecord;

    fn key(n: u8) -> ActionKey {
        ActionKey::from_hex(&format!("{n:064x}")).unwrap()
    }

    #[test]
    fn round_trip_of_actions_blobs_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let src = dir.path().join("bin");
        fs::write(&src, b"binary").unwrap();
        let (digest, size) = store.put_blob(&src).unwrap();
        assert_eq!((digest, size), (Digest::of_bytes(b"binary"), 6));
        assert!(store.has_blob(&digest).unwrap());
        let record = ActionRecord {
            outputs: vec![OutputRecord {
                name: "api".into(),
                digest,
                size,
                executable: true,
            }],
            created: 1,
            duration_ms: 2,
        };
        assert_eq!(store.get_action(&key(1)).unwrap(), None);
        store.put_action(&key(1), &record).unwrap();
        assert_eq!(store.get_action(&key(1)).unwrap(), Some(record));
        let dest = dir.path().join("out/api");
        assert!(store.get_blob(&digest, &dest).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"binary");
        store
            .put_record(CacheBucket::ImageLayers, "abc", b"r")
            .unwrap();
        assert_eq!(
            store.get_record(CacheBucket::ImageLayers, "abc").unwrap(),
            Some(b"r".to_vec())
        );
        assert_eq!(store.get_record(CacheBucket::Keys, "abc").unwrap(), None);
        assert_eq!(
            (
                store.action_count(),
                store.blob_count(),
                store.record_count(CacheBucket::ImageLayers)
            ),
            (1, 1, 1)
        );
    }

    /// The verification contract of every store: a blob whose bytes do not hash to its digest is
    /// a miss, is removed, and never reaches `dest`.
    #[test]
    fn issue_8_memory_store_verifies_blobs_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let digest = Digest::of_bytes(b"good");
        store.insert_raw_blob(digest, b"evil".to_vec());
        assert!(!store.has_blob(&digest).unwrap(), "has_blob is intact-only");
        let dest = dir.path().join("restored");
        assert!(!store.get_blob(&digest, &dest).unwrap());
        assert!(!dest.exists(), "a corrupt blob must not be materialised");
        assert_eq!(store.raw_blob(&digest), None, "a corrupt blob is removed");
        assert!(!store.get_blob(&Digest::of_bytes(b"absent"), &dest).unwrap());
    }

    #[test]
    fn injected_failures_are_errors_not_misses() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("f");
        fs::write(&src, b"x").unwrap();
        let store = MemoryStore::new();
        store.fail_writes(true);
        assert!(matches!(
            store.put_blob(&src),
            Err(CacheError::Unavailable { .. })
        ));
        assert!(store.put_record(CacheBucket::Keys, "abc", b"x").is_err());
        store.fail_writes(false);
        let (digest, _) = store.put_blob(&src).unwrap();
        store.fail_reads(true);
        assert!(store.get_action(&key(1)).is_err());
        assert!(store.get_blob(&digest, &dir.path().join("o")).is_err());
        assert!(store.has_blob(&digest).is_err());
        store.fail_reads(false);
        assert!(store.has_blob(&digest).unwrap());
    }

    #[test]
    fn usable_as_dyn_storage_across_threads() {
        let store: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStore::new());
        std::thread::scope(|s| {
            for i in 0..4u8 {
                let store = &store;
                s.spawn(move || {
                    let k = format!("key{i}");
                    store.put_record(CacheBucket::Keys, &k, &[i]).unwrap();
                    assert_eq!(
                        store.get_record(CacheBucket::Keys, &k).unwrap(),
                        Some(vec![i])
                    );
                });
            }
        });
    }
}
