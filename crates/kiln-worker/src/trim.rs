//! Keeps the worker's caches (`inputs-v1`, `go-packages`) within a size: a long-running worker
//! would otherwise fill its disk with every input and package it ever saw.
//!
//! Least recently used files go first. "Used" is the modification time: both caches touch an entry
//! they serve when it was last touched more than an hour ago (`kiln_gocache::touch_if_stale`).
//! Removing any file is safe between actions: an input entry that is gone is downloaded again,
//! and a package record whose output is gone (or the reverse) reads as a miss. The worker trims
//! only while no action runs, because go opens the package outputs it was told about.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What one trim did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimReport {
    /// Files removed.
    pub removed: u64,
    /// Bytes they held.
    pub freed: u64,
    /// Bytes left in the caches.
    pub kept: u64,
}

struct CacheFile {
    path: PathBuf,
    size: u64,
    used: SystemTime,
}

fn walk(dir: &Path, out: &mut Vec<CacheFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            walk(&e.path(), out);
        } else if meta.is_file() {
            out.push(CacheFile {
                path: e.path(),
                size: meta.len(),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
}

/// Removes the least recently used files below `dirs` until the rest fit in `max_bytes`.
/// Files that cannot be removed are counted as kept; nothing here fails the worker.
pub fn trim(dirs: &[PathBuf], max_bytes: u64) -> TrimReport {
    let mut files = Vec::new();
    for d in dirs {
        walk(d, &mut files);
    }
    let mut report = TrimReport {
        kept: files.iter().map(|f| f.size).sum(),
        ..TrimReport::default()
    };
    if report.kept <= max_bytes {
        return report;
    }
    files.sort_by_key(|f| f.used);
    for f in files {
        if report.kept <= max_bytes {
            break;
        }
        if std::fs::remove_file(&f.path).is_ok() {
            report.removed += 1;
            report.freed += f.size;
            report.kept -= f.size;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file(dir: &Path, name: &str, size: usize, age_secs: u64) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![0u8; size]).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .unwrap();
        p
    }

    #[test]
    fn least_recently_used_files_go_first_until_the_rest_fit() {
        let work = tempfile::tempdir().unwrap();
        let inputs = work.path().join("inputs-v1");
        let packages = work.path().join("go-packages");
        let old = file(&inputs, "ab/old", 100, 300);
        let older = file(&packages, "o/cd/older", 100, 400);
        let recent = file(&inputs, "ef/recent", 100, 10);
        let newest = file(&packages, "a/12/newest", 100, 1);
        let dirs = [inputs.clone(), packages.clone()];

        // Within the budget: nothing goes.
        let r = trim(&dirs, 400);
        assert_eq!(
            r,
            TrimReport {
                removed: 0,
                freed: 0,
                kept: 400
            }
        );

        let r = trim(&dirs, 250);
        assert_eq!(
            r,
            TrimReport {
                removed: 2,
                freed: 200,
                kept: 200
            }
        );
        assert!(!older.exists() && !old.exists());
        assert!(recent.exists() && newest.exists());

        // A budget of zero empties the caches; a missing directory is empty.
        let r = trim(&[inputs, packages, work.path().join("absent")], 0);
        assert_eq!((r.removed, r.kept), (2, 0));
    }
}
