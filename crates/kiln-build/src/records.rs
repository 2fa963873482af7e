//! What the build remembers about keys between runs, and the scratch directories it leaves.
//!
//! - Explain records: the key inputs of every stored action (`inputs/<key>.json`) and, per service
//!   and platform, the key of its latest build (`last/<service>/<os_arch>`), so `--explain` can say
//!   which inputs differ. Writes are temp file + rename; a missing or unreadable record only means
//!   "nothing to compare with".
//! - Scratch directories `<out>/.kiln-tmp-*` hold `go build` outputs until they are verified and
//!   placed. Each holds an exclusive lock on its `.lock` file while its kiln runs; a directory
//!   whose lock can be taken belongs to a kiln that died (SIGKILL, power loss) and is removed by
//!   the next run.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_key::explain::ExplainRecord;
use kiln_key::ActionKey;
use kiln_plan::Target;

/// Prefix of scratch directories inside the output directory.
pub(crate) const TMP_PREFIX: &str = ".kiln-tmp-";

/// The explain records under one directory (the key bucket of the kiln cache).
#[derive(Debug, Clone)]
pub(crate) struct Records {
    dir: PathBuf,
}

impl Records {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn inputs_path(&self, key: &ActionKey) -> PathBuf {
        let hex = key.hex();
        self.dir
            .join("inputs")
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    fn last_path(&self, t: &Target) -> PathBuf {
        self.dir
            .join("last")
            .join(&t.service)
            .join(t.platform.dir_name())
    }

    /// The record of the latest build of `t` before this run, if any.
    pub(crate) fn previous(&self, t: &Target) -> Option<(ActionKey, Option<ExplainRecord>)> {
        let text = fs::read_to_string(self.last_path(t)).ok()?;
        let key = ActionKey::from_hex(text.trim())?;
        let record = fs::read(self.inputs_path(&key))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Some((key, record))
    }

    /// Remembers `record` under `key` (once) and `key` as the latest build of `t`.
    pub(crate) fn remember(
        &self,
        t: &Target,
        key: &ActionKey,
        record: impl FnOnce() -> ExplainRecord,
    ) -> std::io::Result<()> {
        let inputs = self.inputs_path(key);
        if !inputs.exists() {
            let bytes = serde_json::to_vec(&record()).map_err(std::io::Error::other)?;
            write_atomic(&inputs, &bytes)?;
        }
        let last = self.last_path(t);
        if fs::read_to_string(&last).ok().as_deref().map(str::trim) != Some(&key.hex()) {
            write_atomic(&last, key.hex().as_bytes())?;
        }
        Ok(())
    }
}

fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// A scratch directory in the output directory, locked for as long as it lives.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
    _lock: fs::File,
}

impl Scratch {
    /// Removes scratch directories of kilns that died, then creates and locks a new one.
    pub(crate) fn create(out_dir: &Path) -> std::io::Result<Self> {
        remove_leftovers(out_dir);
        let dir = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempdir_in(out_dir)?;
        let lock = fs::File::create(dir.path().join(".lock"))?;
        lock.lock()?;
        Ok(Self { dir, _lock: lock })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes `<out>/.kiln-tmp-*` directories no live kiln holds. Best effort: a directory that
/// cannot be removed now is tried again next run.
pub(crate) fn remove_leftovers(out_dir: &Path) {
    let Ok(rd) = fs::read_dir(out_dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let dir = e.path();
        let abandoned = match fs::File::open(dir.join(".lock")) {
            // Held by a running kiln: leave it alone.
            Ok(f) => f.try_lock().is_ok(),
            // Made by a kiln that predates the lock, or died before taking it.
            Err(_) => true,
        };
        if abandoned {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// How many per-C-state Go build caches of cgo builds are kept (each can hold a compiled standard
/// library): the ones used most recently.
const CGO_GOCACHES_KEPT: usize = 4;

/// Removes all but the most recently used Go build caches of cgo builds below `dir`.
pub(crate) fn prune_cgo_gocaches(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    let mut caches: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, e.path())
        })
        .collect();
    caches.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, old) in caches.into_iter().skip(CGO_GOCACHES_KEPT) {
        // Best effort: go may be using it in another kiln; the next run tries again.
        let _ = fs::remove_dir_all(old);
    }
}

/// Binaries kiln placed in output directories, by path: the stamp the file had when kiln last
/// knew its digest. A restore whose destination still has that stamp (settled, by the same racy
/// rule as the stat cache) already holds the cached bytes and is neither copied nor re-hashed; a
/// destination whose stamp differs is hashed, and only copied over when its content differs.
pub(crate) type Placed = kiln_types::VouchedFiles;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_cgo_gocaches_are_kept() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..6u64 {
            let c = d.path().join(format!("c{i}"));
            fs::create_dir_all(&c).unwrap();
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
            fs::File::open(&c).unwrap().set_modified(t).unwrap();
        }
        prune_cgo_gocaches(d.path());
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["c2", "c3", "c4", "c5"]);
    }

    #[test]
    fn leftovers_of_dead_runs_are_removed_live_ones_kept() {
        let out = tempfile::tempdir().unwrap();
        let live = Scratch::create(out.path()).unwrap();
        fs::write(live.path().join("api"), "partial").unwrap();
        let dead = out.path().join(".kiln-tmp-dead");
        fs::create_dir_all(&dead).unwrap();
        fs::write(dead.join(".lock"), "").unwrap();
        fs::write(dead.join("api"), "partial").unwrap();
        let old = out.path().join(".kiln-tmp-old");
        fs::create_dir_all(&old).unwrap();
        let other = out.path().join("api");
        fs::create_dir_all(&other).unwrap();
        remove_leftovers(out.path());
        assert!(!dead.exists(), "unlocked scratch dir left behind");
        assert!(!old.exists(), "lockless scratch dir left behind");
        assert!(
            live.path().join("api").exists(),
            "a live run's scratch was removed"
        );
        assert!(other.exists(), "a non-scratch directory was removed");
    }
}
