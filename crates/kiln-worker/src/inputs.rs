//! The worker's cache of input files by digest, so an action whose inputs an earlier action
//! already fetched downloads nothing (go's module sources and a monorepo's shared packages
//! repeat from action to action).
//!
//! Entries are written to a temp file and renamed into place; every use copies the entry into
//! the action's input root while hashing it, and an entry that no longer matches its digest is
//! removed and fetched again. Copies, not hard links: the input root is writable by the action,
//! and a link would let it change the cached file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use kiln_types::{Digest, Sha256Writer};
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::Channel;

use crate::WorkerError;

/// Most blobs asked in one `BatchReadBlobs` call (besides the byte limit).
pub(crate) const BATCH_BLOBS: usize = 1000;

/// `BatchReadBlobs` of many small blobs in one call, on the engine's channel with its headers.
#[derive(Clone)]
pub(crate) struct BatchReader {
    channel: Channel,
    metadata: Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>,
    instance: String,
    timeout: Duration,
}

impl BatchReader {
    pub(crate) fn new(
        channel: Channel,
        metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
        instance: String,
        timeout: Duration,
    ) -> Self {
        BatchReader {
            channel,
            metadata: Arc::new(metadata),
            instance,
            timeout,
        }
    }

    /// The bytes of each blob whose content matches its digest, `None` for the others (missing,
    /// refused or damaged: the caller downloads those one by one, which names the failure). An
    /// error means the call itself failed.
    pub(crate) async fn read(
        &self,
        digests: &[(Digest, re::Digest)],
    ) -> Result<Vec<Option<Vec<u8>>>, tonic::Status> {
        let mut req = tonic::Request::new(re::BatchReadBlobsRequest {
            instance_name: self.instance.clone(),
            digests: digests.iter().map(|(_, p)| p.clone()).collect(),
            acceptable_compressors: Vec::new(),
            digest_function: re::digest_function::Value::Sha256 as i32,
        });
        for (k, v) in self.metadata.iter() {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        req.set_timeout(self.timeout);
        let responses = ContentAddressableStorageClient::new(self.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .batch_read_blobs(req)
            .await?
            .into_inner()
            .responses;
        Ok(digests
            .iter()
            .map(|(digest, proto)| {
                responses
                    .iter()
                    .find(|r| {
                        r.digest.as_ref() == Some(proto)
                            && r.status.as_ref().is_none_or(|s| s.code == 0)
                    })
                    .filter(|r| Digest::of_bytes(&r.data) == *digest)
                    .map(|r| r.data.clone())
            })
            .collect())
    }
}

/// Inputs by digest under `<work-dir>/inputs-v1`.
#[derive(Debug, Clone)]
pub(crate) struct InputCache {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkerError + '_ {
    move |source| WorkerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl InputCache {
    /// The cache in `work_dir` (created on first store).
    pub(crate) fn new(work_dir: &Path) -> Self {
        InputCache {
            dir: Self::dir_in(work_dir),
        }
    }

    /// Where the cache of `work_dir` lives.
    pub(crate) fn dir_in(work_dir: &Path) -> PathBuf {
        work_dir.join("inputs-v1")
    }

    fn entry(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Copies the cached blob `digest` of `size` bytes to `dest`; false (and `dest` absent) when
    /// it is not cached or the entry was damaged (then it is removed).
    pub(crate) fn copy_out(
        &self,
        digest: &Digest,
        size: u64,
        dest: &Path,
    ) -> Result<bool, WorkerError> {
        let entry = self.entry(digest);
        let mut src = match File::open(&entry) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&entry)(e)),
        };
        let modified = src.metadata().and_then(|m| m.modified()).ok();
        let out = File::create(dest).map_err(io(dest))?;
        let mut writer = Sha256Writer::new(out);
        std::io::copy(&mut src, &mut writer).map_err(io(dest))?;
        let (mut out, got, len) = writer.into_parts();
        out.flush().map_err(io(dest))?;
        if (got, len) == (*digest, size) {
            // Used now, for `--cache-size` trimming (least recently used first).
            kiln_gocache::touch_if_stale(&entry, modified);
            return Ok(true);
        }
        let _ = std::fs::remove_file(&entry);
        let _ = std::fs::remove_file(dest);
        Ok(false)
    }

    /// Keeps a copy of `src`, whose content was verified to be `digest`.
    pub(crate) fn store(&self, digest: &Digest, src: &Path) -> Result<(), WorkerError> {
        let entry = self.entry(digest);
        if entry.exists() {
            return Ok(());
        }
        let parent = entry.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let tmp = tempfile::NamedTempFile::new_in(parent).map_err(io(parent))?;
        std::fs::copy(src, tmp.path()).map_err(io(src))?;
        tmp.persist(&entry).map_err(|e| io(&entry)(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_input_comes_back_and_a_damaged_one_is_dropped() {
        let work = tempfile::tempdir().unwrap();
        let cache = InputCache::new(work.path());
        let src = work.path().join("main.go");
        std::fs::write(&src, b"package main\n").unwrap();
        let digest = Digest::of_bytes(b"package main\n");
        let dest = work.path().join("copy");
        assert!(!cache.copy_out(&digest, 13, &dest).unwrap(), "empty cache");
        cache.store(&digest, &src).unwrap();
        assert!(cache.copy_out(&digest, 13, &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"package main\n");
        // Changing the copy (the action may write its inputs) leaves the entry intact.
        std::fs::write(&dest, b"changed").unwrap();
        assert!(cache.copy_out(&digest, 13, &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"package main\n");
        // A damaged entry is a miss, and is gone.
        std::fs::write(cache.entry(&digest), b"package mane\n").unwrap();
        assert!(!cache.copy_out(&digest, 13, &dest).unwrap());
        assert!(!dest.exists());
        assert!(!cache.entry(&digest).exists());
    }
}
