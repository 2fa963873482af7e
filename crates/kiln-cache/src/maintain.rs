//! `stats`, `prune` and `clear` of a [`LocalStore`]: each walks every [`CacheBucket`].

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_types::Digest;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::bucket::{is_outdated, looks_like_bucket, BucketKind};
use crate::local::io_err;
use crate::{ActionRecord, CacheBucket, CacheError, LocalStore};

/// Entries younger than this are never pruned: another kiln process may have stored a blob and not
/// yet written the action record that references it, or be about to use a pulled blob it just
/// verified, or still be writing a temp file.
const PRUNE_GRACE: Duration = Duration::from_secs(3600);

/// Entries and bytes of one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketStats {
    /// The bucket.
    #[serde(skip)]
    pub bucket: CacheBucket,
    /// Its directory below the cache root (name and version).
    pub dir: &'static str,
    /// Number of entries (files; temp files of writes in progress are not counted).
    pub entries: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// A directory below the cache root that looks like kiln's but is not a current bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherDir {
    /// Its name (`v1`, `image-v1`, `layers-v0`, or a newer kiln's `actions-v2`).
    pub name: String,
    /// Total size in bytes.
    pub bytes: u64,
    /// Whether it is an older layout nothing reads any more (`prune` removes it); otherwise it
    /// may belong to a newer kiln sharing the cache and only `clear` removes it.
    pub outdated: bool,
}

/// Counts and sizes of a store, per bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The store's root.
    pub root: PathBuf,
    /// One entry per bucket, in [`CacheBucket::ALL`] order (a map by bucket name in JSON).
    #[serde(serialize_with = "buckets_by_name")]
    pub buckets: Vec<BucketStats>,
    /// Directories of other layouts found below the root.
    pub other: Vec<OtherDir>,
    /// Bytes of all buckets and other directories.
    pub total_bytes: u64,
    /// Number of action records (the [`CacheBucket::Actions`] bucket's entries).
    pub actions: u64,
    /// Total bytes of action records.
    pub action_bytes: u64,
    /// Number of blobs (the [`CacheBucket::Blobs`] bucket's entries).
    pub blobs: u64,
    /// Total bytes of blobs.
    pub blob_bytes: u64,
}

fn buckets_by_name<S: Serializer>(buckets: &[BucketStats], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(buckets.len()))?;
    for b in buckets {
        map.serialize_entry(b.bucket.name(), b)?;
    }
    map.end()
}

impl Stats {
    /// The figures of one bucket.
    pub fn bucket(&self, bucket: CacheBucket) -> Option<&BucketStats> {
        self.buckets.iter().find(|b| b.bucket == bucket)
    }
}

/// What to prune.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    /// Remove entries of every bucket not used for longer than this.
    pub max_age: Option<Duration>,
    /// Then remove least recently used action records until the blobs they reference, plus the
    /// pulled base blobs, fit in this many bytes (pulled blobs get what the binaries leave).
    pub max_size: Option<u64>,
}

/// What pruning removed from one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketPrune {
    /// The bucket.
    pub bucket: CacheBucket,
    /// Entries removed.
    pub removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// What pruning removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// One entry per bucket, in [`CacheBucket::ALL`] order.
    pub buckets: Vec<BucketPrune>,
    /// Directories of older layouts removed whole.
    pub old_dirs_removed: Vec<String>,
    /// Bytes freed in total (entries, old directories, abandoned temp files).
    pub bytes_freed: u64,
}

impl Default for PruneReport {
    fn default() -> Self {
        Self {
            buckets: CacheBucket::ALL
                .into_iter()
                .map(|bucket| BucketPrune {
                    bucket,
                    removed: 0,
                    bytes_freed: 0,
                })
                .collect(),
            old_dirs_removed: Vec::new(),
            bytes_freed: 0,
        }
    }
}

impl PruneReport {
    /// Entries removed from `bucket`.
    pub fn removed(&self, bucket: CacheBucket) -> u64 {
        self.buckets
            .iter()
            .find(|b| b.bucket == bucket)
            .map_or(0, |b| b.removed)
    }

    fn count(&mut self, bucket: CacheBucket, entry: &Entry) {
        if let Some(b) = self.buckets.iter_mut().find(|b| b.bucket == bucket) {
            b.removed += 1;
            b.bytes_freed += entry.size;
        }
        self.bytes_freed += entry.size;
    }
}

struct Entry {
    path: PathBuf,
    modified: SystemTime,
    size: u64,
}

impl Entry {
    fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.modified).unwrap_or_default()
    }
}

/// Files of a bucket, and temp files of writes in progress (or abandoned).
#[derive(Default)]
struct Walk {
    files: Vec<Entry>,
    temps: Vec<Entry>,
}

fn is_temp(name: &str) -> bool {
    name.starts_with(".tmp-") || name.contains(".kiln-tmp-")
}

/// Every file below `dir`, recursively, without following symlinks. A missing directory is empty.
fn walk(dir: &Path) -> Result<Walk, CacheError> {
    let mut out = Walk::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(r) => r,
            // Another process (clear, prune) may remove directories while this one walks.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&d)(e)),
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
                continue;
            }
            let entry = Entry {
                path: e.path(),
                modified: meta.modified().unwrap_or(UNIX_EPOCH),
                size: meta.len(),
            };
            if is_temp(&e.file_name().to_string_lossy()) {
                out.temps.push(entry);
            } else {
                out.files.push(entry);
            }
        }
    }
    Ok(out)
}

fn dir_size(dir: &Path) -> u64 {
    walk(dir).map_or(0, |w| {
        w.files.iter().chain(&w.temps).map(|e| e.size).sum::<u64>()
    })
}

/// Directories below `root` that look like kiln's but are not current buckets.
fn other_dirs(root: &Path) -> Result<Vec<String>, CacheError> {
    let entries = match fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(root)(e)),
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| CacheBucket::from_dir_name(name).is_none() && looks_like_bucket(name))
        .collect();
    out.sort();
    Ok(out)
}

fn remove_dir(dir: &Path) -> Result<(), CacheError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(dir)(e)),
        _ => Ok(()),
    }
}

/// The action record in a file, if it parses (the checksum is checked on `get_action`; here a
/// record only needs to name the blobs it keeps alive).
fn read_action(path: &Path) -> Option<ActionRecord> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        record: ActionRecord,
    }
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice::<Envelope>(&bytes)
        .ok()
        .map(|e| e.record)
}

impl LocalStore {
    /// Counts entries and bytes of every bucket, and finds directories of other layouts.
    pub fn stats(&self) -> Result<Stats, CacheError> {
        let mut buckets = Vec::with_capacity(CacheBucket::ALL.len());
        for bucket in CacheBucket::ALL {
            let w = walk(&self.dir(bucket))?;
            buckets.push(BucketStats {
                bucket,
                dir: bucket.dir_name(),
                entries: w.files.len() as u64,
                bytes: w.files.iter().map(|e| e.size).sum(),
            });
        }
        let other: Vec<OtherDir> = other_dirs(self.root())?
            .into_iter()
            .map(|name| OtherDir {
                bytes: dir_size(&self.root().join(&name)),
                outdated: is_outdated(&name),
                name,
            })
            .collect();
        let figures = |b: CacheBucket| {
            buckets
                .iter()
                .find(|s| s.bucket == b)
                .map_or((0, 0), |s| (s.entries, s.bytes))
        };
        let (actions, action_bytes) = figures(CacheBucket::Actions);
        let (blobs, blob_bytes) = figures(CacheBucket::Blobs);
        Ok(Stats {
            root: self.root().to_path_buf(),
            total_bytes: buckets.iter().map(|b| b.bytes).sum::<u64>()
                + other.iter().map(|o| o.bytes).sum::<u64>(),
            buckets,
            other,
            actions,
            action_bytes,
            blobs,
            blob_bytes,
        })
    }

    /// Removes entries of every bucket not used within `max_age`, then least recently used action
    /// records beyond `max_size`, then blobs no remaining record references (mark and sweep),
    /// pulled base blobs beyond what the size budget leaves, abandoned temp files, and the
    /// directories of older layouts. Entries younger than an hour are kept whatever the options:
    /// another kiln process may be using them.
    pub fn prune(&self, opts: PruneOptions) -> Result<PruneReport, CacheError> {
        let now = SystemTime::now();
        let old = |e: &Entry| opts.max_age.is_some_and(|max| e.age(now) > max);
        let young = |e: &Entry| e.age(now) < PRUNE_GRACE;
        let mut report = PruneReport::default();
        let mut walks: HashMap<CacheBucket, Walk> = HashMap::new();
        for bucket in CacheBucket::ALL {
            walks.insert(bucket, walk(&self.dir(bucket))?);
        }
        let mut take = |b: CacheBucket| walks.remove(&b).unwrap_or_default();
        let (actions, blobs, pulled) = (
            take(CacheBucket::Actions),
            take(CacheBucket::Blobs),
            take(CacheBucket::PulledBlobs),
        );
        let records: Vec<(CacheBucket, Walk)> = CacheBucket::ALL
            .into_iter()
            .filter(|b| matches!(b.kind(), BucketKind::Records | BucketKind::AgedFiles))
            .map(|b| (b, take(b)))
            .collect();

        // Action records, newest first so a size budget keeps the most recently used.
        let mut action_files = actions.files;
        action_files.sort_by_key(|e| std::cmp::Reverse(e.modified));
        let mut kept: Vec<(Entry, ActionRecord)> = Vec::new();
        for e in action_files {
            match read_action(&e.path) {
                Some(record) if !old(&e) => kept.push((e, record)),
                _ => {
                    Self::remove_quietly(&e.path);
                    report.count(CacheBucket::Actions, &e);
                }
            }
        }
        let blob_sizes: HashMap<String, u64> = blobs
            .files
            .iter()
            .filter_map(|b| Some((b.path.file_name()?.to_str()?.to_string(), b.size)))
            .collect();
        let mut budget_left = opts.max_size;
        if let Some(max) = opts.max_size {
            let mut total = 0u64;
            let mut seen = HashSet::new();
            kept.retain(|(e, rec)| {
                let add: u64 = rec
                    .outputs
                    .iter()
                    .filter(|o| seen.insert(o.digest))
                    .map(|o| blob_sizes.get(&o.digest.hex()).copied().unwrap_or(0))
                    .sum();
                if total + add > max {
                    Self::remove_quietly(&e.path);
                    report.count(CacheBucket::Actions, e);
                    false
                } else {
                    total += add;
                    true
                }
            });
            budget_left = Some(max - total);
        }
        let live: HashSet<String> = kept
            .iter()
            .flat_map(|(_, r)| r.outputs.iter().map(|o| Digest::hex(&o.digest)))
            .collect();
        for b in &blobs.files {
            let name = b.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !live.contains(name) && !young(b) {
                Self::remove_quietly(&b.path);
                report.count(CacheBucket::Blobs, b);
            }
        }

        // Records, and files of buckets kept entry by entry (the GOCACHEPROG store), are pruned by
        // age of last use only.
        for (bucket, w) in &records {
            for e in w.files.iter().filter(|e| old(e) && !young(e)) {
                Self::remove_quietly(&e.path);
                report.count(*bucket, e);
            }
        }

        // Pulled base blobs: by age, then newest first within what the binaries left.
        let mut pulled_files = pulled.files;
        pulled_files.sort_by_key(|e| std::cmp::Reverse(e.modified));
        let mut pulled_total = 0u64;
        for e in &pulled_files {
            let over_budget = budget_left.is_some_and(|left| pulled_total + e.size > left);
            if (old(e) || over_budget) && !young(e) {
                Self::remove_quietly(&e.path);
                report.count(CacheBucket::PulledBlobs, e);
            } else {
                pulled_total += e.size;
            }
        }

        // Temp files of writes a killed process never finished.
        let all_temps = [&actions.temps, &blobs.temps, &pulled.temps]
            .into_iter()
            .chain(records.iter().map(|(_, w)| &w.temps));
        for e in all_temps.flatten().filter(|e| !young(e)) {
            Self::remove_quietly(&e.path);
            report.bytes_freed += e.size;
        }

        for name in other_dirs(self.root())? {
            if is_outdated(&name) {
                let dir = self.root().join(&name);
                report.bytes_freed += dir_size(&dir);
                remove_dir(&dir)?;
                report.old_dirs_removed.push(name);
            }
        }
        Ok(report)
    }

    /// Removes every bucket, and every other directory below the root that looks like kiln's
    /// (older layouts, a newer kiln's buckets); anything else below the root is left alone.
    /// Returns the names of the directories removed.
    pub fn clear(&self) -> Result<Vec<String>, CacheError> {
        let mut removed = Vec::new();
        for bucket in CacheBucket::ALL {
            let dir = self.dir(bucket);
            if dir.exists() {
                remove_dir(&dir)?;
                removed.push(bucket.dir_name().to_string());
            }
        }
        for name in other_dirs(self.root())? {
            remove_dir(&self.root().join(&name))?;
            removed.push(name);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;

    fn age(path: &Path, secs: u64) {
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn issue_8_stats_count_every_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store
            .put_record(CacheBucket::ImageLayers, "k01", b"layer")
            .unwrap();
        store
            .put_record(CacheBucket::ImageLayers, "k02", b"layer")
            .unwrap();
        store.put_record(CacheBucket::Keys, "k03", b"keys").unwrap();
        let pulled = store.bucket_dir(CacheBucket::PulledBlobs).unwrap();
        fs::create_dir_all(pulled.join("blobs/sha256")).unwrap();
        fs::write(pulled.join("blobs/sha256/aa"), b"12345").unwrap();
        fs::write(pulled.join("blobs/.tmp-1-2"), b"in progress").unwrap();
        fs::create_dir_all(dir.path().join("v1/ac")).unwrap();
        fs::write(dir.path().join("v1/ac/x"), b"old").unwrap();
        fs::create_dir_all(dir.path().join("unrelated")).unwrap();
        let s = store.stats().unwrap();
        let entries = |b| s.bucket(b).unwrap().entries;
        assert_eq!(entries(CacheBucket::ImageLayers), 2);
        assert_eq!(entries(CacheBucket::Keys), 1);
        assert_eq!(
            entries(CacheBucket::PulledBlobs),
            1,
            "temp files not counted"
        );
        assert_eq!(s.bucket(CacheBucket::PulledBlobs).unwrap().bytes, 5);
        assert_eq!((entries(CacheBucket::Actions), s.actions), (0, 0));
        assert_eq!(
            s.other,
            vec![OtherDir {
                name: "v1".into(),
                bytes: 3,
                outdated: true
            }]
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["buckets"]["layers"]["entries"], 2);
        assert_eq!(json["buckets"]["layers"]["dir"], "layers-v1");
    }

    #[test]
    fn issue_8_prune_removes_old_entries_of_every_bucket_and_old_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store
            .put_record(CacheBucket::ImageLayers, "old", b"x")
            .unwrap();
        store
            .put_record(CacheBucket::ImageLayers, "new", b"x")
            .unwrap();
        store.put_record(CacheBucket::Keys, "old", b"x").unwrap();
        let pulled = store.bucket_dir(CacheBucket::PulledBlobs).unwrap();
        fs::write(pulled.join("old"), b"x").unwrap();
        fs::write(pulled.join("new"), b"x").unwrap();
        let tmp = pulled.join(".tmp-9-9");
        fs::write(&tmp, b"abandoned").unwrap();
        for p in [
            store.record_file(CacheBucket::ImageLayers, "old").unwrap(),
            store.record_file(CacheBucket::Keys, "old").unwrap(),
            pulled.join("old"),
            tmp.clone(),
        ] {
            age(&p, 40 * 86400);
        }
        fs::create_dir_all(dir.path().join("image-v1/layers")).unwrap();
        fs::create_dir_all(dir.path().join("actions-v9")).unwrap();
        let r = store
            .prune(PruneOptions {
                max_age: Some(Duration::from_secs(30 * 86400)),
                max_size: None,
            })
            .unwrap();
        assert_eq!(r.removed(CacheBucket::ImageLayers), 1);
        assert_eq!(r.removed(CacheBucket::Keys), 1);
        assert_eq!(r.removed(CacheBucket::PulledBlobs), 1);
        assert_eq!(r.old_dirs_removed, vec!["image-v1".to_string()]);
        assert!(!tmp.exists(), "abandoned temp file removed");
        assert!(store
            .get_record(CacheBucket::ImageLayers, "new")
            .unwrap()
            .is_some());
        assert!(pulled.join("new").exists());
        assert!(
            dir.path().join("actions-v9").exists(),
            "a newer kiln's bucket is not prune's to remove"
        );
    }

    #[test]
    fn prune_size_budget_covers_pulled_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let pulled = store.bucket_dir(CacheBucket::PulledBlobs).unwrap();
        for (name, days) in [("a", 3), ("b", 2), ("c", 1)] {
            fs::write(pulled.join(name), [0u8; 100]).unwrap();
            age(&pulled.join(name), days * 86400);
        }
        let r = store
            .prune(PruneOptions {
                max_age: None,
                max_size: Some(250),
            })
            .unwrap();
        assert_eq!(r.removed(CacheBucket::PulledBlobs), 1);
        assert!(!pulled.join("a").exists(), "least recently used goes first");
        assert!(pulled.join("b").exists() && pulled.join("c").exists());
    }

    /// The GOCACHEPROG store is a bucket like the others: `stats` counts its files, `prune` removes
    /// those unused for longer than the maximum age (and abandoned temp files), `clear` removes it.
    #[test]
    fn issue_11_go_packages_bucket_is_counted_pruned_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let go = store.bucket_dir(CacheBucket::GoPackages).unwrap();
        assert!(go.ends_with("go-packages-v1"));
        fs::create_dir_all(go.join("o/aa")).unwrap();
        fs::write(go.join("o/aa/old"), b"12345").unwrap();
        fs::write(go.join("o/aa/new"), b"123").unwrap();
        fs::write(go.join("o/aa/.tmp-1"), b"abandoned").unwrap();
        age(&go.join("o/aa/old"), 40 * 86400);
        age(&go.join("o/aa/.tmp-1"), 40 * 86400);
        let s = store.stats().unwrap();
        assert_eq!(s.bucket(CacheBucket::GoPackages).unwrap().entries, 2);
        assert_eq!(s.bucket(CacheBucket::GoPackages).unwrap().bytes, 8);
        let r = store
            .prune(PruneOptions {
                max_age: Some(Duration::from_secs(30 * 86400)),
                max_size: None,
            })
            .unwrap();
        assert_eq!(r.removed(CacheBucket::GoPackages), 1);
        assert!(!go.join("o/aa/old").exists() && !go.join("o/aa/.tmp-1").exists());
        assert!(go.join("o/aa/new").exists());
        assert!(store
            .clear()
            .unwrap()
            .contains(&"go-packages-v1".to_string()));
        assert!(!go.exists());
    }

    #[test]
    fn issue_8_clear_removes_every_bucket_and_old_layouts_but_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store
            .put_record(CacheBucket::ImageLayers, "abc", b"x")
            .unwrap();
        store.bucket_dir(CacheBucket::PulledBlobs).unwrap();
        for old in ["v1/cas/aa", "image-v1/layers", "registry-v1/sha256"] {
            fs::create_dir_all(dir.path().join(old)).unwrap();
        }
        fs::create_dir_all(dir.path().join("mine")).unwrap();
        fs::write(dir.path().join("notes.txt"), b"keep").unwrap();
        let removed = store.clear().unwrap();
        assert_eq!(
            removed,
            ["layers-v1", "pulled-v1", "image-v1", "registry-v1", "v1"]
        );
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["mine", "notes.txt"]);
        let s = store.stats().unwrap();
        assert_eq!(s.total_bytes, 0);
        assert!(s.buckets.iter().all(|b| b.entries == 0));
    }
}
