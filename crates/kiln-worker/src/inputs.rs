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

use kiln_types::{Digest, Sha256Writer};

use crate::WorkerError;

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
            dir: work_dir.join("inputs-v1"),
        }
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
        let out = File::create(dest).map_err(io(dest))?;
        let mut writer = Sha256Writer::new(out);
        std::io::copy(&mut src, &mut writer).map_err(io(dest))?;
        let (mut out, got, len) = writer.into_parts();
        out.flush().map_err(io(dest))?;
        if (got, len) == (*digest, size) {
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
