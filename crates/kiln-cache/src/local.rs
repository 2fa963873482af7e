use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_key::ActionKey;
use kiln_types::{Digest, Sha256Writer};
use serde::{Deserialize, Serialize};

use crate::{ActionRecord, CacheError, Storage};

/// Bucket name; bump the number when the on-disk layout changes so old and new kiln never read
/// each other's files.
const BUCKET: &str = "v1";

/// Blobs younger than this are never pruned: another kiln process may have stored the blob and not
/// yet written the action record that references it.
const PRUNE_GRACE: Duration = Duration::from_secs(3600);

/// The cache directory: `KILN_CACHE_DIR`, else `<user cache dir>/kiln` (XDG on Linux).
pub fn default_cache_dir() -> Result<PathBuf, CacheError> {
    if let Some(d) = std::env::var_os("KILN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::cache_dir()
        .map(|d| d.join("kiln"))
        .ok_or(CacheError::NoCacheDir)
}

/// The on-disk store: `<root>/v1/ac/<2 hex>/<key>.json` and `<root>/v1/cas/<2 hex>/<sha256 hex>`.
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

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
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

    fn ac_path(&self, key: &ActionKey) -> PathBuf {
        let hex = key.hex();
        self.root
            .join(BUCKET)
            .join("ac")
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    fn cas_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join(BUCKET).join("cas").join(&hex[..2]).join(hex)
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

    fn remove_quietly(path: &Path) {
        // Another process may have removed or replaced it already; either way the entry is gone.
        let _ = fs::remove_file(path);
    }
}

impl Storage for LocalStore {
    fn name(&self) -> String {
        format!("local ({})", self.root.display())
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionRecord>, CacheError> {
        let path = self.ac_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let intact = serde_json::from_slice::<Envelope>(&bytes)
            .ok()
            .filter(|env| checksum(&env.record).ok().as_deref() == Some(env.checksum.as_str()));
        match intact {
            Some(env) => {
                // Touch for least-recently-used pruning; failure only makes pruning less precise.
                if let Ok(f) = File::options().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
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
}

/// Counts and sizes of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The store's root.
    pub root: PathBuf,
    /// Number of action records.
    pub actions: u64,
    /// Number of blobs.
    pub blobs: u64,
    /// Total bytes of blobs.
    pub blob_bytes: u64,
    /// Total bytes of records.
    pub action_bytes: u64,
}

/// What to prune.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    /// Remove records not used for longer than this.
    pub max_age: Option<Duration>,
    /// Then remove least recently used records until blobs fit in this many bytes.
    pub max_size: Option<u64>,
}

/// What pruning removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Records removed.
    pub actions_removed: u64,
    /// Blobs removed.
    pub blobs_removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

struct Entry {
    path: PathBuf,
    modified: SystemTime,
    size: u64,
}

fn walk(dir: &Path) -> Result<Vec<Entry>, CacheError> {
    let mut out = Vec::new();
    let shards = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for shard in shards {
        let shard = shard.map_err(io_err(dir))?.path();
        let Ok(files) = fs::read_dir(&shard) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            if name.to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            if let Ok(meta) = f.metadata() {
                out.push(Entry {
                    path: f.path(),
                    modified: meta.modified().unwrap_or(UNIX_EPOCH),
                    size: meta.len(),
                });
            }
        }
    }
    Ok(out)
}

impl LocalStore {
    /// Counts records and blobs.
    pub fn stats(&self) -> Result<Stats, CacheError> {
        let ac = walk(&self.root.join(BUCKET).join("ac"))?;
        let cas = walk(&self.root.join(BUCKET).join("cas"))?;
        Ok(Stats {
            root: self.root.clone(),
            actions: ac.len() as u64,
            action_bytes: ac.iter().map(|e| e.size).sum(),
            blobs: cas.len() as u64,
            blob_bytes: cas.iter().map(|e| e.size).sum(),
        })
    }

    /// Removes old records, then blobs no remaining record references (mark and sweep).
    pub fn prune(&self, opts: PruneOptions) -> Result<PruneReport, CacheError> {
        let now = SystemTime::now();
        let mut report = PruneReport::default();
        let mut actions = walk(&self.root.join(BUCKET).join("ac"))?;
        actions.sort_by_key(|e| std::cmp::Reverse(e.modified));
        let mut kept_records = Vec::new();
        for e in actions {
            let old = opts
                .max_age
                .is_some_and(|max| now.duration_since(e.modified).unwrap_or_default() > max);
            let record = fs::read(&e.path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Envelope>(&b).ok());
            match record {
                Some(env) if !old => kept_records.push((e, env.record)),
                _ => {
                    Self::remove_quietly(&e.path);
                    report.actions_removed += 1;
                }
            }
        }
        let blobs = walk(&self.root.join(BUCKET).join("cas"))?;
        let blob_size = |d: &Digest| {
            blobs
                .iter()
                .find(|b| b.path.ends_with(d.hex()))
                .map_or(0, |b| b.size)
        };
        if let Some(max) = opts.max_size {
            // Newest first: keep records while their blobs fit.
            let mut total = 0u64;
            let mut seen = HashSet::new();
            kept_records.retain(|(e, rec)| {
                let add: u64 = rec
                    .outputs
                    .iter()
                    .filter(|o| seen.insert(o.digest))
                    .map(|o| blob_size(&o.digest))
                    .sum();
                total += add;
                if total > max {
                    Self::remove_quietly(&e.path);
                    report.actions_removed += 1;
                    false
                } else {
                    true
                }
            });
        }
        let live: HashSet<String> = kept_records
            .iter()
            .flat_map(|(_, r)| r.outputs.iter().map(|o| o.digest.hex()))
            .collect();
        for b in &blobs {
            let name = b
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let young = now.duration_since(b.modified).unwrap_or_default() < PRUNE_GRACE;
            if !live.contains(&name) && !young {
                Self::remove_quietly(&b.path);
                report.blobs_removed += 1;
                report.bytes_freed += b.size;
            }
        }
        Ok(report)
    }

    /// Removes everything in this store's bucket.
    pub fn clear(&self) -> Result<(), CacheError> {
        let dir = self.root.join(BUCKET);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&dir)(e)),
            _ => Ok(()),
        }
    }

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
}

#[cfg(test)]
mod tests {
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
