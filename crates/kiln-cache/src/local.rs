use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use kiln_key::ActionKey;
use kiln_types::{Digest, Sha256Writer};
use serde::{Deserialize, Serialize};

use crate::{check_record_key, ActionRecord, CacheBucket, CacheError, Storage};

/// The cache directory: `KILN_CACHE_DIR`, else `<user cache dir>/kiln` (XDG on Linux).
pub fn default_cache_dir() -> Result<PathBuf, CacheError> {
    if let Some(d) = std::env::var_os("KILN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::cache_dir()
        .map(|d| d.join("kiln"))
        .ok_or(CacheError::NoCacheDir)
}

/// The on-disk store, one directory per [`CacheBucket`] below its root:
///
/// - `actions-v1/<2 hex>/<key>.json`: action records, checksummed;
/// - `blobs-v1/<2 hex>/<sha256 hex>`: blobs, named by their content digest;
/// - `layers-v1/<2 chars>/<key>`, `keys-v1/<2 chars>/<key>`, `locations-v1/<2 chars>/<key>`:
///   records, checksummed;
/// - `pulled-v1/blobs/sha256/<hex>`: filled by `kiln-image` through [`LocalStore::bucket_dir`].
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// An action record as written to disk, with a checksum so a torn or edited file reads as a miss.
#[derive(Serialize, Deserialize)]
struct Envelope {
    checksum: String,
    record: ActionRecord,
}

fn checksum(record: &ActionRecord) -> Result<String, serde_json::Error> {
    Ok(blake3::hash(&serde_json::to_vec(record)?)
        .to_hex()
        .to_string())
}

/// First line of a record file, followed by the blake3 hex of the bytes after the line.
const RECORD_MAGIC: &str = "kiln-record ";

/// The payload of a record file, if its checksum matches.
fn open_record(file: &[u8]) -> Option<&[u8]> {
    let rest = file.strip_prefix(RECORD_MAGIC.as_bytes())?;
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let (sum, payload) = (&rest[..newline], &rest[newline + 1..]);
    (blake3::hash(payload).to_hex().as_bytes() == sum).then_some(payload)
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies `from` into `to`, naming in an error the side that failed. `io::copy` reports read and
/// write errors alike, so a full cache disk was reported against the build output being stored.
fn copy_naming(
    from: &mut impl Read,
    from_path: &Path,
    to: &mut impl Write,
    to_path: &Path,
) -> Result<u64, CacheError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(from_path)(e)),
        };
        to.write_all(&buf[..n]).map_err(io_err(to_path))?;
        total += n as u64;
    }
}

impl LocalStore {
    /// A store rooted at `root` (created lazily).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store at [`default_cache_dir`].
    pub fn open_default() -> Result<Self, CacheError> {
        default_cache_dir().map(Self::new)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `bucket` (created if missing), for crates that keep files there
    /// themselves: pulled base blobs in [`CacheBucket::PulledBlobs`], or files of their own in
    /// [`CacheBucket::Keys`] besides its records. They follow this crate's rules: write through a
    /// temp file (name starting with `.tmp-` or containing `.kiln-tmp-`, which `stats` skips and
    /// `prune` removes once abandoned) and rename, verify on read, and touch what they reuse
    /// (`prune` goes by modification time).
    pub fn bucket_dir(&self, bucket: CacheBucket) -> Result<PathBuf, CacheError> {
        let dir = self.dir(bucket);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(dir)
    }

    pub(crate) fn dir(&self, bucket: CacheBucket) -> PathBuf {
        self.root.join(bucket.dir_name())
    }

    fn ac_path(&self, key: &ActionKey) -> PathBuf {
        let hex = key.hex();
        self.dir(CacheBucket::Actions)
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    fn cas_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir(CacheBucket::Blobs).join(&hex[..2]).join(hex)
    }

    /// Where a record lives; `key` has been checked by [`check_record_key`] (3+ safe characters).
    fn record_path(&self, bucket: CacheBucket, key: &str) -> PathBuf {
        self.dir(bucket).join(&key[..2]).join(key)
    }

    /// Writes `fill`'s output to a temp file next to `dest`, then renames it into place.
    fn atomic_write<T>(
        dest: &Path,
        fill: impl FnOnce(&mut File) -> Result<T, CacheError>,
    ) -> Result<T, CacheError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        let out = fill(tmp.as_file_mut())?;
        tmp.as_file_mut().flush().map_err(io_err(dest))?;
        tmp.persist(dest).map_err(|e| CacheError::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(out)
    }

    pub(crate) fn remove_quietly(path: &Path) {
        // Another process may have removed or replaced it already; either way the entry is gone.
        let _ = fs::remove_file(path);
    }

    /// Marks an entry as used now, for least-recently-used pruning. Failure only makes pruning
    /// less precise.
    fn touch(path: &Path) {
        if let Ok(f) = File::options().write(true).open(path) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Reads a whole file; a missing file is `None`.
    fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, CacheError> {
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }
}

impl Storage for LocalStore {
    fn name(&self) -> String {
        format!("local ({})", self.root.display())
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionRecord>, CacheError> {
        let path = self.ac_path(key);
        let Some(bytes) = Self::read_if_present(&path)? else {
            return Ok(None);
        };
        let intact = serde_json::from_slice::<Envelope>(&bytes)
            .ok()
            .filter(|env| checksum(&env.record).ok().as_deref() == Some(env.checksum.as_str()));
        match intact {
            Some(env) => {
                Self::touch(&path);
                Ok(Some(env.record))
            }
            None => {
                Self::remove_quietly(&path);
                Ok(None)
            }
        }
    }

    fn put_action(&self, key: &ActionKey, record: &ActionRecord) -> Result<(), CacheError> {
        let encode = |e: serde_json::Error| CacheError::Encode {
            key: key.hex(),
            message: e.to_string(),
        };
        let env = Envelope {
            checksum: checksum(record).map_err(encode)?,
            record: record.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&env).map_err(encode)?;
        let path = self.ac_path(key);
        Self::atomic_write(&path, |f| f.write_all(&bytes).map_err(io_err(&path)))
    }

    fn has_blob(&self, digest: &Digest) -> Result<bool, CacheError> {
        Ok(self.cas_path(digest).is_file())
    }

    fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, CacheError> {
        let src = self.cas_path(digest);
        let mut file = match File::open(&src) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&src)(e)),
        };
        let result = Self::atomic_write(dest, |out| {
            let mut w = Sha256Writer::new(out);
            copy_naming(&mut file, &src, &mut w, dest)?;
            let (_, got, _) = w.into_parts();
            Ok(got)
        });
        match result {
            Ok(got) if got == *digest => Ok(true),
            Ok(_) => {
                Self::remove_quietly(dest);
                Self::remove_quietly(&src);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn put_blob(&self, src: &Path) -> Result<(Digest, u64), CacheError> {
        // Hash first, then copy: the destination name is the digest, so it must be known before
        // the rename, and a blob already present costs only the read.
        let (digest, size) =
            Digest::of_reader(File::open(src).map_err(io_err(src))?).map_err(io_err(src))?;
        let dest = self.cas_path(&digest);
        if dest.is_file() {
            return Ok((digest, size));
        }
        Self::atomic_write(&dest, |out| {
            let mut input = File::open(src).map_err(io_err(src))?;
            let mut w = Sha256Writer::new(out);
            copy_naming(&mut input, src, &mut w, &dest)?;
            let (_, copied, _) = w.into_parts();
            if copied != digest {
                return Err(CacheError::Io {
                    path: src.to_path_buf(),
                    source: io::Error::other("file changed while it was being stored"),
                });
            }
            Ok(())
        })?;
        Ok((digest, size))
    }

    fn get_record(&self, bucket: CacheBucket, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        check_record_key(bucket, key)?;
        let path = self.record_path(bucket, key);
        let Some(file) = Self::read_if_present(&path)? else {
            return Ok(None);
        };
        match open_record(&file) {
            Some(payload) => {
                Self::touch(&path);
                Ok(Some(payload.to_vec()))
            }
            None => {
                Self::remove_quietly(&path);
                Ok(None)
            }
        }
    }

    fn put_record(&self, bucket: CacheBucket, key: &str, bytes: &[u8]) -> Result<(), CacheError> {
        check_record_key(bucket, key)?;
        let path = self.record_path(bucket, key);
        let header = format!("{RECORD_MAGIC}{}\n", blake3::hash(bytes).to_hex());
        Self::atomic_write(&path, |f| {
            f.write_all(header.as_bytes())
                .and_then(|()| f.write_all(bytes))
                .map_err(io_err(&path))
        })
    }
}

impl LocalStore {
    /// Reads a blob fully (for tests and small blobs).
    pub fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.cas_path(digest);
        let mut buf = Vec::new();
        match File::open(&path) {
            Ok(mut f) => f.read_to_end(&mut buf).map_err(io_err(&path))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok((Digest::of_bytes(&buf) == *digest).then_some(buf))
    }

    /// The path a blob is stored at (for corruption tests and diagnostics).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.cas_path(digest)
    }

    /// The path an action record is stored at (for corruption tests and diagnostics).
    pub fn action_path(&self, key: &ActionKey) -> PathBuf {
        self.ac_path(key)
    }

    /// The path a record is stored at (for corruption tests and diagnostics); `None` for a bucket
    /// or key that cannot hold a record.
    pub fn record_file(&self, bucket: CacheBucket, key: &str) -> Option<PathBuf> {
        check_record_key(bucket, key)
            .ok()
            .map(|()| self.record_path(bucket, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_damaged_record_is_a_miss_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let b = CacheBucket::ImageLayers;
        assert_eq!(store.get_record(b, "abc123").unwrap(), None);
        store.put_record(b, "abc123", b"{\"x\":1}").unwrap();
        assert_eq!(
            store.get_record(b, "abc123").unwrap().as_deref(),
            Some(&b"{\"x\":1}"[..])
        );
        let path = store.record_file(b, "abc123").unwrap();
        assert!(path.starts_with(dir.path().join("layers-v1")), "{path:?}");
        // Same length, one byte changed: only the checksum can tell.
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] = b'2';
        fs::write(&path, &bytes).unwrap();
        assert_eq!(store.get_record(b, "abc123").unwrap(), None);
        assert!(!path.exists(), "a damaged record is removed");
        // Records of one bucket are not visible in another.
        store.put_record(b, "abc123", b"v").unwrap();
        assert_eq!(store.get_record(CacheBucket::Keys, "abc123").unwrap(), None);
    }

    #[test]
    fn record_keys_and_buckets_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        for key in ["../x", "ab", "AB12", "a/b/c", ".tmp-x", &"a".repeat(129)] {
            assert!(
                matches!(
                    store.put_record(CacheBucket::Keys, key, b""),
                    Err(CacheError::InvalidRecord { .. })
                ),
                "{key}"
            );
        }
        for bucket in [
            CacheBucket::Actions,
            CacheBucket::Blobs,
            CacheBucket::PulledBlobs,
        ] {
            assert!(store.get_record(bucket, "abc").is_err(), "{bucket}");
        }
    }

    #[test]
    fn bucket_dir_is_the_versioned_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("c"));
        let pulled = store.bucket_dir(CacheBucket::PulledBlobs).unwrap();
        assert_eq!(pulled, dir.path().join("c/pulled-v1"));
        assert!(pulled.is_dir());
    }
}

#[cfg(test)]
mod disk_full_tests {
    use super::*;

    /// `/dev/full` fails every write with ENOSPC, as a full disk does.
    #[cfg(target_os = "linux")]
    #[test]
    fn issue_8_a_full_cache_disk_names_the_cache_path() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("dist-tmp-binary");
        fs::write(&output, b"binary").unwrap();
        let cache_path = Path::new("/cache/v1/cas/ab/abcd");
        let mut full = File::options().write(true).open("/dev/full").unwrap();
        let e = copy_naming(
            &mut File::open(&output).unwrap(),
            &output,
            &mut full,
            cache_path,
        )
        .unwrap_err();
        match &e {
            CacheError::Io { path, source } => {
                assert_eq!(path, cache_path, "{e}");
                assert_eq!(source.raw_os_error(), Some(28), "{e}"); // ENOSPC
            }
            other => panic!("{other}"),
        }
        assert!(!e.to_string().contains("dist-tmp-binary"), "{e}");

        // A read error still names the file read.
        let unreadable = dir.path().join("a-directory");
        fs::create_dir(&unreadable).unwrap();
        let mut sink = Vec::new();
        let e = copy_naming(
            &mut File::open(&unreadable).unwrap(),
            &unreadable,
            &mut sink,
            cache_path,
        )
        .unwrap_err();
        assert!(
            matches!(&e, CacheError::Io { path, .. } if path == &unreadable),
            "{e}"
        );
    }
}
