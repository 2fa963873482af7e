//! Fourth stage of kiln's flow: discover -> plan -> key -> **cache** -> execute -> ...
//!
//! Every cache kiln keeps goes through this crate, in named, versioned buckets ([`CacheBucket`],
//! one directory each below the cache root, names and versions listed in one place):
//!
//! - an *action cache* from [`kiln_key::ActionKey`] to an [`ActionRecord`] (which outputs an action
//!   produced) and a *content-addressed store* from [`kiln_types::Digest`] to blob bytes, split as
//!   in the Bazel Remote Execution API so a remote store can slot in later without touching callers;
//! - small *records* in named buckets ([`Storage::get_record`]): the image layer records of
//!   `kiln image` ([`CacheBucket::ImageLayers`]) and the key bookkeeping ([`CacheBucket::Keys`]);
//! - directories handed to the crates that fill them ([`LocalStore::bucket_dir`]): pulled base
//!   image blobs ([`CacheBucket::PulledBlobs`]), kept as an OCI layout's `blobs/sha256/<hex>`.
//!
//! Callers see the [`Storage`] trait; [`LocalStore`] keeps everything under the user cache dir and
//! is what `kiln cache stats|prune|clear` walk, bucket by bucket. [`MemoryStore`] keeps it in
//! memory, for tests and embedding.
//!
//! Rules every implementation keeps: writes are atomic (temp file + rename), every read verifies
//! content (blobs by their sha256, records and action records by a checksum) and reports
//! corruption as a miss (after removing the bad entry) rather than an error, and two processes
//! sharing a store cannot corrupt it.
//!
//! Layering: this crate sits below packaging. `kiln-oci` does not depend on it: it defines the
//! seam it needs (`kiln_oci::LayerRecords`, keyed by the typed `kiln_oci::LayerKey`), and
//! `kiln-image`, which sits above both, implements that seam over a [`Storage`]. That keeps the
//! OCI library free of kiln's key and discovery crates, which this one depends on.
//!
//! ```no_run
//! use kiln_cache::{CacheBucket, LocalStore, Storage};
//! # fn main() -> Result<(), kiln_cache::CacheError> {
//! let store = LocalStore::open_default()?;
//! store.put_record(CacheBucket::ImageLayers, "0a1b2c", b"{}")?;
//! assert_eq!(store.get_record(CacheBucket::ImageLayers, "0a1b2c")?.as_deref(), Some(&b"{}"[..]));
//! for bucket in &store.stats()?.buckets {
//!     println!("{}: {} entries", bucket.bucket, bucket.entries);
//! }
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bucket;
mod local;
mod maintain;
mod memory;
mod record;
mod traffic;

pub use bucket::CacheBucket;
pub use local::{default_cache_dir, LocalStore};
pub use maintain::{BucketPrune, BucketStats, OtherDir, PruneOptions, PruneReport, Stats};
pub use memory::MemoryStore;
pub use record::{ActionRecord, OutputRecord};
pub use traffic::CacheTraffic;

use std::path::{Path, PathBuf};

use kiln_key::ActionKey;
use kiln_types::Digest;

/// Why a cache operation failed (a miss is not an error).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing a cache file failed.
    #[error("cache I/O error on {path}: {source}\nhint: check free disk space and permissions, or point KILN_CACHE_DIR at a writable directory")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No cache directory could be determined.
    #[error(
        "cannot determine a cache directory (no HOME or XDG_CACHE_HOME)\nhint: set KILN_CACHE_DIR"
    )]
    NoCacheDir,
    /// A record could not be serialised.
    #[error("cannot encode cache record for {key}: {message}")]
    Encode {
        /// The action key.
        key: String,
        /// The serialiser's message.
        message: String,
    },
    /// A record was addressed with a bucket or key that cannot hold one: a bug in the caller.
    #[error("internal error: cannot keep a record `{key}` in cache bucket `{bucket}`: {reason}")]
    InvalidRecord {
        /// The bucket asked for.
        bucket: CacheBucket,
        /// The key asked for.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The store cannot serve requests now (a remote store unreachable, a test store told to fail).
    #[error("cache store {store} is unavailable: {reason}")]
    Unavailable {
        /// The store's name.
        store: String,
        /// Why.
        reason: String,
    },
}

/// A place where action results, blobs and records are kept.
///
/// `Ok(None)` / `Ok(false)` mean a miss, `Err` means the store itself failed; callers treat both
/// as "build it", but only errors are worth a warning. Implementations must be safe to share
/// between threads and processes.
pub trait Storage: Send + Sync {
    /// A short name for messages (`local`, later `grpc://...`).
    fn name(&self) -> String;
    /// The record stored under `key`, if any and intact.
    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionRecord>, CacheError>;
    /// Stores `record` under `key`, replacing what was there.
    fn put_action(&self, key: &ActionKey, record: &ActionRecord) -> Result<(), CacheError>;
    /// Whether an intact blob with this digest is present (cheap check, no content read).
    fn has_blob(&self, digest: &Digest) -> Result<bool, CacheError>;
    /// Copies the blob to `dest` (atomically, verifying its digest); `false` on a miss or corruption.
    fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, CacheError>;
    /// Stores the content of `src`, returning its digest and size.
    fn put_blob(&self, src: &Path) -> Result<(Digest, u64), CacheError>;

    /// The bytes stored under `key` in a record bucket ([`CacheBucket::ImageLayers`],
    /// [`CacheBucket::Keys`]), if any and intact: a record whose checksum does not match is removed
    /// and reads as a miss. Keys are 3 to 128 characters of `a-z`, `0-9`, `-` and `_` (a hex
    /// digest fits). A store that keeps no records (the default) always misses.
    fn get_record(&self, bucket: CacheBucket, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        check_record_key(bucket, key)?;
        Ok(None)
    }

    /// Stores `bytes` under `key` in a record bucket, replacing what was there. A store that keeps
    /// no records (the default) forgets them.
    fn put_record(&self, bucket: CacheBucket, key: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let _ = bytes;
        check_record_key(bucket, key)
    }

    /// This run's traffic so far, for stores with a remote tier; `None` (the default) for a store
    /// that is only local.
    fn traffic(&self) -> Option<CacheTraffic> {
        None
    }
}

/// Checks that `bucket` holds records and `key` is a safe, shardable file name.
pub(crate) fn check_record_key(bucket: CacheBucket, key: &str) -> Result<(), CacheError> {
    let bad = |reason| {
        Err(CacheError::InvalidRecord {
            bucket,
            key: key.to_string(),
            reason,
        })
    };
    if bucket.kind() != bucket::BucketKind::Records {
        return bad("the bucket does not hold records");
    }
    if !(3..=128).contains(&key.len()) {
        return bad("a record key has 3 to 128 characters");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return bad("a record key is made of a-z, 0-9, `-` and `_`");
    }
    Ok(())
}
