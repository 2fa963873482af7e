//! Content hashes of input files, with a persistent stat cache so a no-op does not re-read the
//! standard library and every module on each run.
//!
//! A cached hash is reused only when the file's identity and timestamps are exactly what they were
//! when it was hashed (size, mtime, ctime, inode, device) *and* the entry passes git's racy-clean
//! rule: the file's last change must be older than the moment the entry was recorded, by more than
//! the timestamp granularity of common filesystems. A file written in the same second as it was
//! hashed could change again without any visible stamp change, so it is hashed again next time.
//! `ctime` cannot be set by user tools (`touch -d` only sets mtime), so restoring an old mtime does
//! not fool the cache. The cache only ever saves work; anything doubtful is re-read.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::KeyError;

/// A file's content hash (BLAKE3), shown as hex in key inputs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileHash(pub [u8; 32]);

impl std::fmt::Debug for FileHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&blake3::Hash::from_bytes(self.0).to_hex())
    }
}

impl Serialize for FileHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&blake3::Hash::from_bytes(self.0).to_hex())
    }
}

impl<'de> Deserialize<'de> for FileHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        blake3::Hash::from_hex(&s)
            .map(|h| Self(*h.as_bytes()))
            .map_err(serde::de::Error::custom)
    }
}

pub use kiln_types::Stamp;
use kiln_types::RACY_SLACK_NS;

/// Most entries the persisted cache keeps; entries not used by the latest run go first.
const MAX_ENTRIES: usize = 400_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    stamp: Stamp,
    hash: FileHash,
    recorded_ns: i128,
    used: bool,
}

/// What one run saw of one path: its stamp when first hashed (for the after-build check) and the
/// hash (`None`: the file did not exist).
#[derive(Debug, Clone, Copy)]
struct Seen {
    stamp: Option<Stamp>,
    hash: Option<FileHash>,
}

/// Hashes files once per run, however many targets share them, and across runs through a stat
/// cache file (see the module docs for when a cached hash is trusted).
#[derive(Debug)]
pub struct FileHasher {
    seen: Mutex<HashMap<PathBuf, Seen>>,
    persisted: Mutex<HashMap<PathBuf, Entry>>,
    file: Option<PathBuf>,
    run_start_ns: i128,
    dirty: Mutex<bool>,
}

impl Default for FileHasher {
    fn default() -> Self {
        Self::new()
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

impl FileHasher {
    /// A hasher without a persistent cache: every file is read once per run.
    pub fn new() -> Self {
        Self {
            seen: Mutex::default(),
            persisted: Mutex::default(),
            file: None,
            run_start_ns: now_ns(),
            dirty: Mutex::new(false),
        }
    }

    /// A hasher backed by the stat cache in `file`. A missing, unreadable or corrupt file is an
    /// empty cache: the cache can only save work, never supply a hash it cannot vouch for.
    pub fn with_stat_cache(file: PathBuf) -> Self {
        let run_start_ns = now_ns();
        let persisted = fs::read(&file)
            .ok()
            .and_then(|b| decode(&b))
            .unwrap_or_default();
        Self {
            seen: Mutex::default(),
            persisted: Mutex::new(persisted),
            file: Some(file),
            run_start_ns,
            dirty: Mutex::new(false),
        }
    }

    /// BLAKE3 of the file's content.
    pub fn hash(&self, path: &Path) -> Result<FileHash, KeyError> {
        match self.hash_optional(path)? {
            Some(h) => Ok(h),
            None => Err(KeyError::Read {
                path: path.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            }),
        }
    }

    /// Like [`FileHasher::hash`], but a missing file is `None`: an optional input such as
    /// `go.sum` or `default.pgo` that appears later must still change the key.
    pub fn hash_optional(&self, path: &Path) -> Result<Option<FileHash>, KeyError> {
        if let Some(s) = self.seen.lock().ok().and_then(|m| m.get(path).copied()) {
            return Ok(s.hash);
        }
        let read_err = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        // The stamp is taken before the content is read: if the file changes while it is read,
        // the stamp no longer matches afterwards and the after-build check refuses to store.
        let stamp = Stamp::of(path).map_err(read_err)?;
        let hash = match stamp {
            None => None,
            Some(st) => Some(match self.cached(path, &st) {
                Some(h) => h,
                None => {
                    let h = hash_content(path).map_err(read_err)?;
                    self.record(path, st, h);
                    h
                }
            }),
        };
        if let Ok(mut m) = self.seen.lock() {
            m.entry(path.to_path_buf()).or_insert(Seen { stamp, hash });
        }
        Ok(hash)
    }

    fn cached(&self, path: &Path, now: &Stamp) -> Option<FileHash> {
        let mut p = self.persisted.lock().ok()?;
        let e = p.get_mut(path)?;
        let trusted = e.stamp == *now && now.newest_change_ns() + RACY_SLACK_NS < e.recorded_ns;
        if trusted {
            e.used = true;
            Some(e.hash)
        } else {
            None
        }
    }

    fn record(&self, path: &Path, stamp: Stamp, hash: FileHash) {
        if self.file.is_none() {
            return;
        }
        if let Ok(mut p) = self.persisted.lock() {
            p.insert(
                path.to_path_buf(),
                Entry {
                    stamp,
                    hash,
                    recorded_ns: self.run_start_ns,
                    used: true,
                },
            );
        }
        if let Ok(mut d) = self.dirty.lock() {
            *d = true;
        }
    }

    /// Paths among `paths` that changed since this run hashed them (content may differ from what
    /// the key says). Paths this run never hashed count as changed: nothing vouches for them.
    pub fn changed_since_hashed<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a Path>,
    ) -> Vec<PathBuf> {
        let Ok(seen) = self.seen.lock() else {
            return paths.into_iter().map(Path::to_path_buf).collect();
        };
        paths
            .into_iter()
            .filter(|p| match seen.get(*p) {
                Some(s) => !matches!(Stamp::of(p), Ok(now) if now == s.stamp),
                None => true,
            })
            .map(Path::to_path_buf)
            .collect()
    }

    /// Every path hashed so far in this run, sorted.
    pub fn hashed_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .seen
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Writes the stat cache if this run added entries (temp file + rename; a concurrent writer
    /// simply wins). Failure only costs re-hashing next time, so it is reported, not fatal.
    pub fn save(&self) -> Result<(), KeyError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.lock().map(|d| *d).unwrap_or(false) {
            return Ok(());
        }
        let bytes = {
            let Ok(p) = self.persisted.lock() else {
                return Ok(());
            };
            encode(&p)
        };
        let write = || -> std::io::Result<()> {
            let dir = file.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir)?;
            let mut tmp = tempfile::Builder::new().prefix(".stat-").tempfile_in(dir)?;
            tmp.write_all(&bytes)?;
            tmp.persist(file).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|source| KeyError::Write {
            path: file.clone(),
            source,
        })
    }
}

fn hash_content(path: &Path) -> std::io::Result<FileHash> {
    // Streamed rather than memory-mapped: a large `//go:embed` asset would otherwise count its
    // whole size towards kiln's resident memory while it is hashed.
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path)?)?;
    Ok(FileHash(*hasher.finalize().as_bytes()))
}

const MAGIC: &[u8] = b"kiln-stat-cache-v1\n";

fn encode(entries: &HashMap<PathBuf, Entry>) -> Vec<u8> {
    let mut list: Vec<(&PathBuf, &Entry)> = entries.iter().collect();
    // Entries this run used first, so the cap drops stale ones.
    list.sort_by_key(|(_, e)| !e.used);
    list.truncate(MAX_ENTRIES);
    let mut out = Vec::with_capacity(list.len() * 120 + 64);
    out.extend_from_slice(MAGIC);
    for (path, e) in list {
        let p = path.as_os_str().as_encoded_bytes();
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(&e.stamp.size.to_le_bytes());
        out.extend_from_slice(&e.stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.stamp.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.stamp.ino.to_le_bytes());
        out.extend_from_slice(&e.stamp.dev.to_le_bytes());
        out.extend_from_slice(&e.recorded_ns.to_le_bytes());
        out.extend_from_slice(&e.hash.0);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Parses a stat cache; `None` for anything malformed (wrong magic, torn write, bad checksum).
fn decode(bytes: &[u8]) -> Option<HashMap<PathBuf, Entry>> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = body.strip_prefix(MAGIC)?;
    let mut out = HashMap::new();
    fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if r.len() < n {
            return None;
        }
        let (a, b) = r.split_at(n);
        *r = b;
        Some(a)
    }
    fn u64_(r: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(r, 8)?.try_into().ok()?))
    }
    fn i128_(r: &mut &[u8]) -> Option<i128> {
        Some(i128::from_le_bytes(take(r, 16)?.try_into().ok()?))
    }
    while !r.is_empty() {
        let len = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?) as usize;
        let p = take(&mut r, len)?;
        // Paths were written from `as_encoded_bytes` on this platform; reject anything that is
        // not valid for it instead of trusting it.
        let path = PathBuf::from(std::str::from_utf8(p).ok()?);
        let stamp = Stamp {
            size: u64_(&mut r)?,
            mtime_ns: i128_(&mut r)?,
            ctime_ns: i128_(&mut r)?,
            ino: u64_(&mut r)?,
            dev: u64_(&mut r)?,
        };
        let recorded_ns = i128_(&mut r)?;
        let hash = FileHash(take(&mut r, 32)?.try_into().ok()?);
        out.insert(
            path,
            Entry {
                stamp,
                hash,
                recorded_ns,
                used: false,
            },
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backdate(path: &Path) {
        // Make the file look old enough to pass the racy rule (mtime only; ctime stays now, so
        // these tests also wait out the slack where they need a trusted entry).
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
    }

    #[test]
    fn hashes_once_per_run_and_tells_missing_apart() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.go");
        fs::write(&f, "package a").unwrap();
        let h = FileHasher::new();
        let first = h.hash(&f).unwrap();
        assert_eq!(first.0, *blake3::hash(b"package a").as_bytes());
        fs::write(&f, "package b").unwrap();
        assert_eq!(h.hash(&f).unwrap(), first, "one run sees one snapshot");
        assert!(h
            .hash_optional(&dir.path().join("missing"))
            .unwrap()
            .is_none());
        assert!(h.hash(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn change_after_hashing_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.go");
        fs::write(&f, "package a").unwrap();
        let h = FileHasher::new();
        h.hash(&f).unwrap();
        assert!(h.changed_since_hashed([f.as_path()]).is_empty());
        fs::write(&f, "package b").unwrap();
        fs::write(&f, "package a").unwrap();
        assert_eq!(h.changed_since_hashed([f.as_path()]), vec![f.clone()]);
        let never = dir.path().join("never.go");
        assert_eq!(h.changed_since_hashed([never.as_path()]), vec![never]);
    }

    #[test]
    fn stat_cache_round_trips_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = HashMap::new();
        m.insert(
            PathBuf::from("/x/a.go"),
            Entry {
                stamp: Stamp {
                    size: 1,
                    mtime_ns: 2,
                    ctime_ns: 3,
                    ino: 4,
                    dev: 5,
                },
                hash: FileHash([7; 32]),
                recorded_ns: 9,
                used: true,
            },
        );
        let bytes = encode(&m);
        let back = decode(&bytes).unwrap();
        assert_eq!(back[Path::new("/x/a.go")].hash, FileHash([7; 32]));
        let mut bad = bytes.clone();
        bad[MAGIC.len() + 6] ^= 1;
        assert!(decode(&bad).is_none());
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        fs::write(dir.path().join("s"), b"garbage").unwrap();
        let h = FileHasher::with_stat_cache(dir.path().join("s"));
        assert!(h.persisted.lock().unwrap().is_empty());
    }

    #[test]
    fn racy_entries_are_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.go");
        let cache = dir.path().join("stat");
        fs::write(&f, "package a").unwrap();
        let h = FileHasher::with_stat_cache(cache.clone());
        h.hash(&f).unwrap();
        h.save().unwrap();
        // The file changed within the slack of the recording run (its ctime is "now"), so the
        // entry must not be trusted even though the stamp matches.
        let h2 = FileHasher::with_stat_cache(cache);
        let st = Stamp::of(&f).unwrap().unwrap();
        assert!(h2.cached(&f, &st).is_none());
    }

    #[test]
    fn trusted_entry_is_used_and_any_stamp_change_defeats_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.go");
        let cache = dir.path().join("stat");
        fs::write(&f, "package a").unwrap();
        backdate(&f);
        let st = Stamp::of(&f).unwrap().unwrap();
        // Forge an entry recorded well after the file's last change, with a hash that is not the
        // file's: if it is used, the hasher returns the forged hash; that proves the cache is read.
        let mut m = HashMap::new();
        m.insert(
            f.clone(),
            Entry {
                stamp: st,
                hash: FileHash([1; 32]),
                recorded_ns: st.newest_change_ns() + RACY_SLACK_NS + 1,
                used: false,
            },
        );
        fs::write(&cache, encode(&m)).unwrap();
        let h = FileHasher::with_stat_cache(cache.clone());
        assert_eq!(h.hash(&f).unwrap(), FileHash([1; 32]), "trusted entry used");
        // Same size, same mtime restored: ctime still moves, so the entry is not trusted.
        fs::write(&f, "package b").unwrap();
        let f2 = fs::File::options().write(true).open(&f).unwrap();
        f2.set_modified(UNIX_EPOCH + std::time::Duration::from_nanos(st.mtime_ns as u64))
            .unwrap();
        let h = FileHasher::with_stat_cache(cache);
        assert_eq!(
            h.hash(&f).unwrap().0,
            *blake3::hash(b"package b").as_bytes()
        );
    }
}
