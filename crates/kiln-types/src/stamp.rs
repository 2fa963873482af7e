//! What a file or directory looked like, so a later run can tell "unchanged" without reading it.
//!
//! Used by the stat cache of hashed files (kiln-key) and the cache of `go list` answers
//! (kiln-discover). Both follow git's racy-clean rule: a stamp vouches for content only when the
//! path's last change is older than the moment the stamp was recorded by more than
//! [`RACY_SLACK_NS`], since a change within the timestamp granularity leaves no visible trace.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Slack for filesystems with coarse timestamps (FAT: 2 s; ext4/xfs/btrfs: ns).
pub const RACY_SLACK_NS: i128 = 2_000_000_000;

/// Size, modification and change times, inode and device of a path.
///
/// For a directory the times change whenever an entry is added, removed or renamed in it, which is
/// what makes a directory stamp a valid witness of "the same files are here".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Status change time (set by the kernel on every write, rename or chmod; `touch -d` cannot
    /// set it), nanoseconds since the Unix epoch.
    pub ctime_ns: i128,
    /// Inode number (0 where the platform has none).
    pub ino: u64,
    /// Device number (0 where the platform has none).
    pub dev: u64,
}

impl Stamp {
    /// The stamp of `path` now (following symlinks); `None` when it does not exist.
    pub fn of(path: &Path) -> std::io::Result<Option<Self>> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(Self::from_metadata(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stamp of already read metadata.
    #[cfg(unix)]
    pub fn from_metadata(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }

    /// The stamp of already read metadata.
    #[cfg(not(unix))]
    pub fn from_metadata(m: &fs::Metadata) -> Self {
        use std::time::{SystemTime, UNIX_EPOCH};
        let ns = |t: std::io::Result<SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128)
        };
        Self {
            size: m.len(),
            mtime_ns: ns(m.modified()),
            // Without a change time, the creation time is the best stand-in; the racy rule still
            // applies to mtime.
            ctime_ns: ns(m.created()),
            ino: 0,
            dev: 0,
        }
    }

    /// The later of the modification and change times.
    pub fn newest_change_ns(&self) -> i128 {
        self.mtime_ns.max(self.ctime_ns)
    }

    /// Whether this stamp, recorded at `recorded_ns`, can vouch for the content seen then: the
    /// last change lies before the recording by more than the timestamp granularity.
    pub fn settled_before(&self, recorded_ns: i128) -> bool {
        self.newest_change_ns() + RACY_SLACK_NS < recorded_ns
    }
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_is_not_settled_and_an_old_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, "x").unwrap();
        let s = Stamp::of(&f).unwrap().unwrap();
        assert!(!s.settled_before(now_ns()), "written just now: racy");
        assert!(s.settled_before(now_ns() + RACY_SLACK_NS + 1_000_000_000));
    }

    #[test]
    fn adding_a_file_changes_the_directory_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let before = Stamp::of(dir.path()).unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("new.go"), "package x").unwrap();
        assert_ne!(Stamp::of(dir.path()).unwrap().unwrap(), before);
    }

    #[test]
    fn a_missing_path_has_no_stamp() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Stamp::of(&dir.path().join("nope")).unwrap(), None);
    }
}
