use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kiln_types::{Digest, Sha256Writer, VouchedFiles};

use crate::error::{io_err, OciError, Result};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A content-addressed blob directory laid out as in an OCI image layout: `<root>/blobs/sha256/<hex>`.
///
/// Blobs are written to a temporary file beside their final place and renamed, so a reader never
/// sees a half-written blob and two writers of the same content do not corrupt each other.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    /// Blobs whose content was verified before and whose files have not changed since.
    vouched: Option<Arc<VouchedFiles>>,
}

impl BlobStore {
    /// Opens (creating if needed) the blob directory below `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let dir = root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        Ok(Self {
            root,
            vouched: None,
        })
    }

    /// The same store, answering [`BlobStore::verify_known`] from `vouched` where it can.
    pub fn with_vouched(mut self, vouched: Arc<VouchedFiles>) -> Self {
        self.vouched = Some(vouched);
        self
    }

    /// The root directory (the layout root when the store belongs to a layout).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether a blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Creates a temporary file in the store for content whose digest is not known yet.
    pub(crate) fn temp(&self) -> Result<TempBlob> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("blobs")
            .join(format!(".tmp-{}-{n}", std::process::id()));
        let file = File::create(&path).map_err(io_err("creating", &path))?;
        Ok(TempBlob {
            path,
            file,
            done: false,
        })
    }

    /// Stores bytes, returning their digest. Existing blobs are left as they are.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut tmp = self.temp()?;
        let p = tmp.path().to_path_buf();
        tmp.file().write_all(bytes).map_err(io_err("writing", &p))?;
        tmp.commit(self, &digest)?;
        Ok(digest)
    }

    /// Copies a file into the store, checking it has the `expected` digest. Streams; returns its size.
    pub fn import_file(&self, src: &Path, expected: &Digest) -> Result<u64> {
        if self.contains(expected) {
            return fs::metadata(self.path(expected))
                .map(|m| m.len())
                .map_err(io_err("reading", self.path(expected)));
        }
        let mut input = File::open(src).map_err(io_err("opening", src))?;
        let mut tmp = self.temp()?;
        let p = tmp.path().to_path_buf();
        let mut w = Sha256Writer::new(BufWriter::new(tmp.file()));
        io::copy(&mut input, &mut w).map_err(io_err("copying", src))?;
        let (mut buf, digest, len) = w.into_parts();
        buf.flush().map_err(io_err("writing", &p))?;
        drop(buf);
        if digest != *expected {
            return Err(OciError::DigestMismatch {
                expected: *expected,
                actual: digest,
                path: src.to_path_buf(),
            });
        }
        tmp.commit(self, expected)?;
        Ok(len)
    }

    /// Opens a blob for streaming reads.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => OciError::MissingBlob {
                digest: *digest,
                store: self.root.clone(),
            },
            _ => OciError::Io {
                action: "opening",
                path,
                source: e,
            },
        })
    }

    /// Reads a (small) blob whole and checks its digest; used for manifests, configs and indexes.
    pub fn read_verified(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err("reading", self.path(digest)))?;
        let actual = Digest::of_bytes(&bytes);
        if actual != *digest {
            return Err(OciError::DigestMismatch {
                expected: *digest,
                actual,
                path: self.path(digest),
            });
        }
        Ok(bytes)
    }

    /// Re-hashes a blob of any size, streaming, and checks it against its name.
    pub fn verify(&self, digest: &Digest) -> Result<u64> {
        let f = self.open_blob(digest)?;
        let (actual, len) = Digest::of_reader(io::BufReader::new(f))
            .map_err(io_err("reading", self.path(digest)))?;
        if actual != *digest {
            return Err(OciError::DigestMismatch {
                expected: *digest,
                actual,
                path: self.path(digest),
            });
        }
        Ok(len)
    }

    /// [`BlobStore::verify`], unless the store's [`VouchedFiles`] record says the file is unchanged
    /// since it last verified (stamp equal and settled): then its size, without reading it. A
    /// fresh verification is recorded for the next run. A no-op `kiln image` of 40 images reuses
    /// 40 binary layers; re-hashing each on every run was most of its packing time.
    pub fn verify_known(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        if let Some(v) = &self.vouched {
            if v.holds(&path, digest) {
                return fs::metadata(&path)
                    .map(|m| m.len())
                    .map_err(io_err("reading", &path));
            }
        }
        let len = self.verify(digest)?;
        if let Some(v) = &self.vouched {
            v.record(&path, digest);
        }
        Ok(len)
    }
}

/// A temporary blob file, removed on drop unless committed.
pub(crate) struct TempBlob {
    path: PathBuf,
    file: File,
    done: bool,
}

impl TempBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Renames into place. No fsync: blobs are reproducible, a crash just means a rebuild.
    pub fn commit(mut self, store: &BlobStore, digest: &Digest) -> Result<()> {
        let dest = store.path(digest);
        if dest.is_file() {
            return Ok(());
        }
        fs::rename(&self.path, &dest).map_err(io_err("renaming into", &dest))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_8_verify_known_still_catches_a_blob_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("vouched.json");
        let store = BlobStore::open(dir.path().join("oci")).unwrap();
        let d = store.put_bytes(b"layer bytes").unwrap();
        let vouched = Arc::new(VouchedFiles::load(Some(record.clone())));
        let store = store.with_vouched(vouched.clone());
        assert_eq!(store.verify_known(&d).unwrap(), 11);
        vouched.save().unwrap();
        // Same size, other bytes, written in place: the change time moves, so it is re-hashed
        // and the corruption is reported whatever the record says.
        fs::write(store.path(&d), b"LAYER BYTES").unwrap();
        let again = BlobStore::open(dir.path().join("oci"))
            .unwrap()
            .with_vouched(Arc::new(VouchedFiles::load(Some(record))));
        assert!(matches!(
            again.verify_known(&d),
            Err(OciError::DigestMismatch { .. })
        ));
    }
}
