//! Fourth stage of kiln's flow: discover -> plan -> key -> **cache** -> execute -> ...
//!
//! Two maps, as in the Bazel Remote Execution API so a remote store can slot in later without
//! touching callers: an *action cache* from [`kiln_key::ActionKey`] to an [`ActionRecord`] (which
//! outputs an action produced), and a *content-addressed store* from [`kiln_types::Digest`] to blob
//! bytes. Callers see only the [`Storage`] trait; [`LocalStore`] keeps both under the user cache dir.
//!
//! Rules every implementation keeps: writes are atomic (temp file + rename), reads verify content
//! and report corruption as a miss (after removing the bad entry) rather than an error, and two
//! processes sharing a store cannot corrupt it.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod local;
mod record;

pub use local::{default_cache_dir, LocalStore, PruneOptions, PruneReport, Stats};
pub use record::{ActionRecord, OutputRecord};

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
}

/// A place where action results and blobs are kept.
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
}
