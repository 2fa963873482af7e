//! The local tier: one directory, Go action ID -> output record, outputs by sha256.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_types::Digest;

use crate::{ActionId, GoCacheError};

/// First word of every record; bump it when the record format or its meaning changes.
const RECORD_MAGIC: &str = "kiln-gocache-v1";

/// Entries last used longer ago than this are touched when used again, for pruning by age of last
/// use; younger ones are not, which saves two system calls per hit in a build.
const TOUCH_AFTER: Duration = Duration::from_secs(3600);

/// A hit in the local tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    /// The output's sha256 (go's `OutputID`).
    pub output: Digest,
    /// The output's size in bytes.
    pub size: u64,
    /// When the entry was stored, nanoseconds since 1970.
    pub time_unix_nanos: u64,
    /// The absolute path of the verified output file (go's `DiskPath`).
    pub path: PathBuf,
}

/// Go's package cache in a directory:
///
/// - `a/<2 hex>/<action id hex>`: one line, the output's sha256, size and time, with a blake3
///   checksum over those and the action ID, so a damaged or misplaced record reads as a miss;
/// - `o/<2 hex>/<sha256 hex>`: the outputs, named by their content.
///
/// Writes go through a temp file (`.tmp-*`, which kiln's cache prune removes once abandoned) and a
/// rename, so two processes sharing the directory never see half an entry. Every read checks the
/// output against its digest, once per output per process; a damaged output is removed and the
/// request is a miss, so go rebuilds it and the next put repairs the entry.
#[derive(Debug)]
pub struct LocalTier {
    root: PathBuf,
    /// Outputs this process has verified or written: a digest is hashed once per session.
    verified: Mutex<HashSet<Digest>>,
    /// Damaged records and outputs found (and removed) by this process.
    damaged: AtomicU64,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn record_checksum(action: &ActionId, output: &str, size: u64, nanos: u64) -> String {
    let text = format!("{RECORD_MAGIC} {} {output} {size} {nanos}", action.hex());
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The output, size and time in a record file, if it is intact and belongs to `action`.
fn parse_record(action: &ActionId, bytes: &[u8]) -> Option<(Digest, u64, u64)> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let mut parts = text.split(' ');
    let (magic, output, size, nanos, sum) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if magic != RECORD_MAGIC || parts.next().is_some() {
        return None;
    }
    let (size, nanos) = (size.parse().ok()?, nanos.parse().ok()?);
    if record_checksum(action, output, size, nanos) != sum {
        return None;
    }
    Some((Digest::from_hex(output).ok()?, size, nanos))
}

fn remove_quietly(path: &Path) {
    // Another process may have removed or replaced it already; either way the entry is gone.
    let _ = fs::remove_file(path);
}

/// Marks a file as used now (its modification time) if it was last used more than an hour ago, for
/// removing least recently used entries first; younger files are left alone, which saves two
/// system calls per use. `modified` is the file's modification time, when the caller has it.
/// Failure only makes pruning less precise.
pub fn touch_if_stale(path: &Path, modified: Option<SystemTime>) {
    let stale = modified
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_none_or(|age| age > TOUCH_AFTER);
    if stale {
        if let Ok(f) = File::options().write(true).open(path) {
            let _ = f.set_modified(SystemTime::now());
        }
    }
}

/// Writes `bytes` to a temp file beside `dest`, then renames it into place.
fn atomic_write(dest: &Path, bytes: &[u8]) -> Result<(), GoCacheError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(GoCacheError::io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(GoCacheError::io(dir))?;
    tmp.write_all(bytes).map_err(GoCacheError::io(dest))?;
    tmp.persist(dest).map_err(|e| GoCacheError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

impl LocalTier {
    /// The tier in `dir` (created if missing). go needs absolute paths, so a relative `dir` is
    /// taken against the current directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, GoCacheError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(GoCacheError::io(&dir))?;
        let root = std::path::absolute(&dir).map_err(GoCacheError::io(&dir))?;
        Ok(Self {
            root,
            verified: Mutex::new(HashSet::new()),
            damaged: AtomicU64::new(0),
        })
    }

    /// The tier's directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn record_path(&self, action: &ActionId) -> PathBuf {
        let hex = action.hex();
        self.root.join("a").join(&hex[..2]).join(hex)
    }

    /// Where the output with this digest is kept.
    pub fn output_path(&self, output: &Digest) -> PathBuf {
        let hex = output.hex();
        self.root.join("o").join(&hex[..2]).join(hex)
    }

    fn is_verified(&self, output: &Digest) -> bool {
        self.verified.lock().is_ok_and(|v| v.contains(output))
    }

    fn mark_verified(&self, output: Digest) {
        if let Ok(mut v) = self.verified.lock() {
            v.insert(output);
        }
    }

    /// The entry stored for `action`, if its record is intact and its output is present and
    /// matches its digest. A damaged record or output is removed and reads as a miss.
    pub fn get(&self, action: &ActionId) -> Result<Option<LocalEntry>, GoCacheError> {
        let record = self.record_path(action);
        let bytes = match fs::read(&record) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(GoCacheError::io(&record)(e)),
        };
        let Some((output, size, time_unix_nanos)) = parse_record(action, &bytes) else {
            self.damaged.fetch_add(1, Ordering::Relaxed);
            remove_quietly(&record);
            return Ok(None);
        };
        let path = self.output_path(&output);
        if !self.check_output(&path, &output, size)? {
            return Ok(None);
        }
        touch_if_stale(
            &record,
            fs::metadata(&record).and_then(|m| m.modified()).ok(),
        );
        Ok(Some(LocalEntry {
            output,
            size,
            time_unix_nanos,
            path,
        }))
    }

    /// Whether the output file is present with this size and content; removes it if not.
    fn check_output(&self, path: &Path, output: &Digest, size: u64) -> Result<bool, GoCacheError> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(GoCacheError::io(path)(e)),
        };
        if meta.len() != size {
            self.damaged.fetch_add(1, Ordering::Relaxed);
            remove_quietly(path);
            return Ok(false);
        }
        if !self.is_verified(output) {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(GoCacheError::io(path)(e)),
            };
            let (actual, n) = Digest::of_reader(file).map_err(GoCacheError::io(path))?;
            if actual != *output || n != size {
                self.damaged.fetch_add(1, Ordering::Relaxed);
                remove_quietly(path);
                return Ok(false);
            }
            self.mark_verified(*output);
        }
        touch_if_stale(path, meta.modified().ok());
        Ok(true)
    }

    /// Stores `body` as the output of `action`, after checking that `output` is its sha256: a
    /// mismatch is [`GoCacheError::BadPut`] and nothing is stored.
    pub fn put(
        &self,
        action: &ActionId,
        output: &Digest,
        body: &[u8],
    ) -> Result<LocalEntry, GoCacheError> {
        let actual = Digest::of_bytes(body);
        if actual != *output {
            return Err(GoCacheError::BadPut {
                action: action.hex(),
                message: format!(
                    "OutputID {output} is not the sha256 of the {}-byte body ({actual}); not stored",
                    body.len()
                ),
            });
        }
        let size = body.len() as u64;
        let path = self.output_path(output);
        // An output this process already holds intact (two actions with the same output, or a
        // put after a get) is not written again.
        let present =
            self.is_verified(output) && fs::metadata(&path).is_ok_and(|m| m.len() == size);
        if !present {
            atomic_write(&path, body)?;
            self.mark_verified(*output);
        }
        let nanos = now_nanos();
        let out_hex = output.hex();
        let line = format!(
            "{RECORD_MAGIC} {out_hex} {size} {nanos} {}\n",
            record_checksum(action, &out_hex, size, nanos)
        );
        atomic_write(&self.record_path(action), line.as_bytes())?;
        Ok(LocalEntry {
            output: *output,
            size,
            time_unix_nanos: nanos,
            path,
        })
    }

    /// How many damaged records and outputs this process found and removed.
    pub fn damaged(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Removes `action`'s record, so the next get misses (for tests and repair).
    pub fn forget(&self, action: &ActionId) {
        remove_quietly(&self.record_path(action));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(n: u8) -> ActionId {
        ActionId::from_raw([n; 32])
    }

    #[test]
    fn put_then_get_returns_the_verified_output() {
        let dir = tempfile::tempdir().unwrap();
        let tier = LocalTier::open(dir.path()).unwrap();
        let body = b"package object";
        let out = Digest::of_bytes(body);
        let put = tier.put(&action(1), &out, body).unwrap();
        assert!(put.path.is_absolute());
        assert_eq!(fs::read(&put.path).unwrap(), body);
        let got = tier.get(&action(1)).unwrap().unwrap();
        assert_eq!((got.output, got.size, got.path), (out, 14, put.path));
        assert!(tier.get(&action(2)).unwrap().is_none());
    }

    #[test]
    fn issue_11_put_with_wrong_output_id_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let tier = LocalTier::open(dir.path()).unwrap();
        let wrong = Digest::of_bytes(b"something else");
        let e = tier.put(&action(1), &wrong, b"body").unwrap_err();
        assert!(matches!(e, GoCacheError::BadPut { .. }), "{e}");
        assert!(tier.get(&action(1)).unwrap().is_none());
        assert!(!tier.output_path(&wrong).exists());
    }

    #[test]
    fn issue_11_corrupted_output_is_a_miss_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"compiled package";
        let out = Digest::of_bytes(body);
        let path = LocalTier::open(dir.path())
            .unwrap()
            .put(&action(1), &out, body)
            .unwrap()
            .path;
        // Same size, different bytes: only the content check can notice.
        fs::write(&path, b"compiled pack4ge").unwrap();
        let fresh = LocalTier::open(dir.path()).unwrap();
        assert!(fresh.get(&action(1)).unwrap().is_none());
        assert!(!path.exists(), "the damaged output is removed");
        assert_eq!(fresh.damaged(), 1);
        // A put repairs it.
        fresh.put(&action(1), &out, body).unwrap();
        assert_eq!(fresh.get(&action(1)).unwrap().unwrap().output, out);
    }

    #[test]
    fn damaged_or_misplaced_record_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let tier = LocalTier::open(dir.path()).unwrap();
        let out = Digest::of_bytes(b"x");
        tier.put(&action(1), &out, b"x").unwrap();
        let rec = tier.record_path(&action(1));
        let text = fs::read_to_string(&rec).unwrap();
        // The record of action 1 copied under action 2's name.
        fs::create_dir_all(tier.record_path(&action(2)).parent().unwrap()).unwrap();
        fs::write(tier.record_path(&action(2)), &text).unwrap();
        assert!(tier.get(&action(2)).unwrap().is_none());
        fs::write(&rec, text.replace(" 1 ", " 2 ")).unwrap();
        assert!(tier.get(&action(1)).unwrap().is_none());
        assert!(!rec.exists());
    }

    #[test]
    fn relative_directory_is_made_absolute() {
        let tier = LocalTier::open(".").unwrap();
        assert!(tier.root().is_absolute());
    }
}
