//! A record of files whose content kiln knows, by path: the [`Stamp`] a file had when kiln last
//! hashed or wrote it, and that digest. A file whose stamp is unchanged and settled (git's racy
//! rule, [`Stamp::settled_before`]) still holds those bytes without being read again; any write,
//! rename or chmod changes its change time, so a changed file is never vouched for.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{now_ns, Digest, Stamp};

/// Most entries kept; past the bound, the oldest records go first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    sha256: String,
    recorded_ns: i128,
}

/// Files whose digest kiln knows, kept in one JSON file (loaded once, saved once per run).
///
/// A record that cannot be read is empty (every file is hashed again); a concurrent writer of the
/// same record file simply wins, which only costs the other run's entries a re-hash.
#[derive(Debug)]
pub struct VouchedFiles {
    file: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    dirty: AtomicBool,
}

impl VouchedFiles {
    /// The record kept in `file`; `None` keeps nothing (every question is answered "no").
    pub fn load(file: Option<PathBuf>) -> Self {
        let entries = file
            .as_ref()
            .and_then(|f| fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            file,
            entries: Mutex::new(entries),
            dirty: AtomicBool::new(false),
        }
    }

    /// Whether `path` provably holds the bytes of `digest` without reading it.
    pub fn holds(&self, path: &Path, digest: &Digest) -> bool {
        let Ok(Some(now)) = Stamp::of(path) else {
            return false;
        };
        let Ok(m) = self.entries.lock() else {
            return false;
        };
        m.get(path).is_some_and(|e| {
            e.stamp == now && now.settled_before(e.recorded_ns) && e.sha256 == digest.hex()
        })
    }

    /// Notes that `path` holds `digest` now (just written, or just hashed by the caller).
    pub fn record(&self, path: &Path, digest: &Digest) {
        if self.file.is_none() {
            return;
        }
        let Ok(Some(stamp)) = Stamp::of(path) else {
            return;
        };
        if let Ok(mut m) = self.entries.lock() {
            m.insert(
                path.to_path_buf(),
                Entry {
                    stamp,
                    sha256: digest.hex(),
                    recorded_ns: now_ns(),
                },
            );
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Writes the record if it changed (temp file + rename), dropping entries of files that are
    /// gone and, past the bound, the oldest.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = {
            let Ok(mut m) = self.entries.lock() else {
                return Ok(());
            };
            m.retain(|p, _| p.exists());
            if m.len() > MAX_ENTRIES {
                let mut by_age: Vec<(i128, PathBuf)> =
                    m.iter().map(|(p, e)| (e.recorded_ns, p.clone())).collect();
                by_age.sort();
                for (_, p) in by_age.into_iter().take(m.len() - MAX_ENTRIES) {
                    m.remove(&p);
                }
            }
            serde_json::to_vec(&*m).map_err(std::io::Error::other)?
        };
        write_atomic(file, &bytes)
    }
}

/// Temp file beside `dest`, then rename: a reader sees the old record or the new one.
fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{name}-{}-{}", std::process::id(), now_ns()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled_record(dir: &Path, f: &Path, d: &Digest) -> VouchedFiles {
        let v = VouchedFiles::load(Some(dir.join("rec.json")));
        v.record(f, d);
        // Pretend the recording happened well after the write (the racy rule's slack).
        for e in v.entries.lock().unwrap().values_mut() {
            e.recorded_ns += 10 * crate::RACY_SLACK_NS;
        }
        v
    }

    #[test]
    fn an_unchanged_settled_file_is_vouched_for_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("blob");
        fs::write(&f, "abc").unwrap();
        let d = Digest::of_bytes(b"abc");
        let v = settled_record(dir.path(), &f, &d);
        assert!(v.holds(&f, &d));
        assert!(!v.holds(&f, &Digest::of_bytes(b"other")), "another digest");
        v.save().unwrap();
        let again = VouchedFiles::load(Some(dir.path().join("rec.json")));
        assert!(again.holds(&f, &d));
    }

    #[test]
    fn a_rewritten_or_fresh_file_is_not_vouched_for() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("blob");
        fs::write(&f, "abc").unwrap();
        let d = Digest::of_bytes(b"abc");
        let fresh = VouchedFiles::load(Some(dir.path().join("rec.json")));
        fresh.record(&f, &d);
        assert!(!fresh.holds(&f, &d), "recorded within the racy window");
        let v = settled_record(dir.path(), &f, &d);
        // Same size, same content even: the change time moves, so it is hashed again.
        fs::write(&f, "abd").unwrap();
        assert!(!v.holds(&f, &d));
        let none = VouchedFiles::load(None);
        none.record(&f, &d);
        assert!(!none.holds(&f, &d), "a record without a file keeps nothing");
    }
}
