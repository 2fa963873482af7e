//! A cache of `go env -json` answers, so a no-op run does not start `go` at all.
//!
//! `go env` is cheap for go (it reads no packages) but not for a no-op kiln run: starting the go
//! command and, for `GOGCCFLAGS`, a C compiler takes tens of milliseconds. Its answer is a function
//! of: the `go` command found, the whole process environment (which go inherits), the directory
//! it runs in, and a few files, each witnessed by its [`Stamp`] (or its absence):
//!
//! - the `go` binary as resolved on `PATH`, and the selected toolchain's `bin/go`, `go.env` and
//!   `VERSION` (a `toolchain` line can select another Go than the one on `PATH`);
//! - the `GOENV` file (`go env -w` writes there);
//! - `go.mod` and `go.work` in the directory and every ancestor (go finds its module and workspace
//!   by walking up; a file appearing anywhere above changes the answer, and so can a `toolchain`
//!   line in it);
//! - the C compiler `CC` names, as resolved on `PATH` (`CGO_ENABLED` defaults to 0 without one).
//!
//! An entry is used only when every witness is exactly as recorded and settled (git's racy rule);
//! anything else, a corrupt entry, or an environment kiln cannot fully represent (a variable that
//! is not UTF-8) is a miss and `go env` runs. `GOGCCFLAGS` names a fresh temporary directory on
//! every real run; a cached one names the recorded run's: nothing kiln keys reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_types::{Digest, Stamp};

use crate::listcache::{resolve_on_path, write_entry};
use serde::{Deserialize, Serialize};

/// Format of the entries; bump when their meaning changes.
const GO_ENV_CACHE_VERSION: u32 = 1;

/// Where cached `go env` answers live, and the process environment `go` would inherit.
#[derive(Debug, Clone)]
pub struct GoEnvCache {
    dir: PathBuf,
    /// Every variable of kiln's process; `None` when one was not UTF-8 (then nothing is cached).
    process_env: Option<BTreeMap<String, String>>,
    /// Tests pretend the recording happened this much later.
    settle_shift_ns: i128,
}

#[derive(Serialize)]
struct KeyMaterial<'a> {
    version: u32,
    go: &'a Path,
    dir: &'a Path,
    env: &'a BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    version: u32,
    key: String,
    recorded_ns: i128,
    witnesses: Vec<(PathBuf, Option<Stamp>)>,
    output_sha256: String,
    output: String,
}

impl GoEnvCache {
    /// Entries under `dir`. `process_env` is kiln's whole environment as captured once by the
    /// caller, `complete` whether it holds every variable (false when one was not UTF-8).
    pub fn new(dir: PathBuf, process_env: &BTreeMap<String, String>, complete: bool) -> Self {
        Self {
            dir,
            process_env: complete.then(|| process_env.clone()),
            settle_shift_ns: 0,
        }
    }

    fn key(&self, go: &Path, dir: &Path) -> Option<Digest> {
        let env = self.process_env.as_ref()?;
        // Relative paths would be resolved against a working directory the key cannot see.
        if dir.is_relative() || (go.is_relative() && go.components().count() > 1) {
            return None;
        }
        let material = KeyMaterial {
            version: GO_ENV_CACHE_VERSION,
            go,
            dir,
            env,
        };
        Some(Digest::of_bytes(&serde_json::to_vec(&material).ok()?))
    }

    fn entry_path(&self, key: &Digest) -> PathBuf {
        let hex = key.hex();
        self.dir.join(&hex[..2]).join(format!("{hex}.json"))
    }

    /// The recorded output of `go env -json` for `go` in `dir`, when every witness is unchanged.
    pub(crate) fn get(&self, go: &Path, dir: &Path) -> Option<Vec<u8>> {
        let key = self.key(go, dir)?;
        let bytes = std::fs::read(self.entry_path(&key)).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        if e.version != GO_ENV_CACHE_VERSION || e.key != key.hex() {
            return None;
        }
        if Digest::of_bytes(e.output.as_bytes()).hex() != e.output_sha256 {
            return None;
        }
        let vars: BTreeMap<String, String> = serde_json::from_str(&e.output).ok()?;
        // The witness list is recomputed, not taken from the entry: a file that now resolves
        // differently (a compiler installed earlier on PATH) is a different list.
        let now = self.witnesses(go, dir, &vars);
        let recorded = e.recorded_ns + self.settle_shift_ns;
        let same = now.len() == e.witnesses.len()
            && now.iter().zip(&e.witnesses).all(|(p, (q, then))| {
                p == q
                    && match Stamp::of(p) {
                        Ok(s) => s == *then && s.is_none_or(|s| s.settled_before(recorded)),
                        Err(_) => false,
                    }
            });
        same.then(|| e.output.into_bytes())
    }

    /// Records `output` (what `go env -json` printed, run at `started_ns`). Best effort.
    pub(crate) fn put(&self, go: &Path, dir: &Path, started_ns: i128, output: &[u8]) {
        let Some(key) = self.key(go, dir) else {
            return;
        };
        let Ok(output) = std::str::from_utf8(output) else {
            return;
        };
        let Ok(vars) = serde_json::from_str::<BTreeMap<String, String>>(output) else {
            return;
        };
        let mut witnesses = Vec::new();
        for p in self.witnesses(go, dir, &vars) {
            match Stamp::of(&p) {
                Ok(s) => witnesses.push((p, s)),
                Err(_) => return,
            }
        }
        let e = Entry {
            version: GO_ENV_CACHE_VERSION,
            key: key.hex(),
            recorded_ns: started_ns,
            witnesses,
            output_sha256: Digest::of_bytes(output.as_bytes()).hex(),
            output: output.to_string(),
        };
        write_entry(&self.entry_path(&key), &e);
    }

    /// Every file whose stamp (or absence) vouches for the answer, in a fixed order.
    fn witnesses(&self, go: &Path, dir: &Path, vars: &BTreeMap<String, String>) -> Vec<PathBuf> {
        let env = self.process_env.as_ref();
        let path_var = env.and_then(|e| e.get("PATH")).map(String::as_str);
        let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("");
        let mut w = Vec::new();
        w.push(resolve_on_path(go, path_var).unwrap_or_else(|| PathBuf::from("/nonexistent/go")));
        let goroot = PathBuf::from(get("GOROOT"));
        for f in ["bin/go", "go.env", "VERSION"] {
            w.push(goroot.join(f));
        }
        let goenv = get("GOENV");
        if !goenv.is_empty() && goenv != "off" {
            w.push(PathBuf::from(goenv));
        }
        for a in dir.ancestors() {
            w.push(a.join("go.mod"));
            w.push(a.join("go.work"));
        }
        let cc = get("CC");
        if !cc.is_empty() {
            let first = cc.split_whitespace().next().unwrap_or(cc);
            w.push(
                resolve_on_path(Path::new(first), path_var)
                    .unwrap_or_else(|| PathBuf::from("/nonexistent/cc")),
            );
        }
        w
    }

    /// Test hook: treat every recording as `ns` later than it was.
    #[cfg(test)]
    pub(crate) fn settle_after(mut self, ns: i128) -> Self {
        self.settle_shift_ns = ns;
        self
    }
}

#[cfg(test)]
mod tests {
    //! With the real `go`: each test changes one thing `go env` depends on and expects a miss,
    //! or nothing and expects the recorded answer.
    use super::*;
    use crate::GoEnv;

    /// Far beyond the racy window, so entries recorded by the test count as settled.
    const SETTLED: i128 = 3_600 * 1_000_000_000;

    struct Fixture {
        tmp: tempfile::TempDir,
        root: PathBuf,
        cache: GoEnvCache,
        go: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("outer/repo");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("go.mod"), "module example.com/m\n\ngo 1.22\n").unwrap();
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let cache = GoEnvCache::new(tmp.path().join("cache"), &env, true).settle_after(SETTLED);
        let go = PathBuf::from("go");
        let f = Fixture {
            tmp,
            root,
            cache,
            go,
        };
        GoEnv::load_cached(&f.go, &f.root, Some(&f.cache)).expect(
            "the real `go` is needed on PATH for these tests (install Go 1.22+ from https://go.dev/dl/)",
        );
        f
    }

    #[test]
    fn issue_8_an_unchanged_setup_is_answered_from_the_cache() {
        let f = fixture();
        let cached = f.cache.get(&f.go, &f.root).expect("recorded and unchanged");
        let fresh = GoEnv::load(&f.go, &f.root).unwrap();
        let vars: BTreeMap<String, String> = serde_json::from_slice(&cached).unwrap();
        assert_eq!(vars.get("GOMOD"), fresh.vars.get("GOMOD"));
        assert_eq!(vars.get("GOVERSION"), fresh.vars.get("GOVERSION"));
    }

    #[test]
    fn issue_8_an_edited_go_mod_is_a_miss() {
        let f = fixture();
        std::fs::write(f.root.join("go.mod"), "module example.com/m\n\ngo 1.23\n").unwrap();
        assert!(f.cache.get(&f.go, &f.root).is_none());
    }

    #[test]
    fn issue_8_a_go_work_appearing_above_is_a_miss() {
        let f = fixture();
        std::fs::write(
            f.tmp.path().join("outer/go.work"),
            "go 1.22\n\nuse ./repo\n",
        )
        .unwrap();
        assert!(f.cache.get(&f.go, &f.root).is_none());
    }

    #[test]
    fn issue_8_another_environment_or_directory_is_another_key() {
        let f = fixture();
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.insert("GOFLAGS".into(), "-tags=other".into());
        let other = GoEnvCache {
            dir: f.cache.dir.clone(),
            ..GoEnvCache::new(PathBuf::new(), &env, true)
        }
        .settle_after(SETTLED);
        assert!(other.get(&f.go, &f.root).is_none(), "GOFLAGS differs");
        assert!(f.cache.get(&f.go, &f.tmp.path().join("outer")).is_none());
        assert!(f.cache.get(Path::new("./go"), &f.root).is_none());
        assert!(f.cache.get(&f.go, Path::new("repo")).is_none());
    }

    #[test]
    fn issue_8_an_environment_that_is_not_all_utf8_is_never_cached() {
        let f = fixture();
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let partial = GoEnvCache::new(f.tmp.path().join("cache2"), &env, false);
        GoEnv::load_cached(&f.go, &f.root, Some(&partial)).unwrap();
        assert!(partial.settle_after(SETTLED).get(&f.go, &f.root).is_none());
    }

    #[test]
    fn issue_8_a_fresh_or_corrupt_entry_is_a_miss() {
        let f = fixture();
        let env: BTreeMap<String, String> = std::env::vars().collect();
        // Recorded right after go.mod was written: inside the racy window.
        let unsettled = GoEnvCache::new(f.cache.dir.clone(), &env, true);
        assert!(unsettled.get(&f.go, &f.root).is_none());
        let key = f.cache.key(&f.go, &f.root).unwrap();
        let path = f.cache.entry_path(&key);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("GOVERSION", "GOVERSIOn")).unwrap();
        assert!(f.cache.get(&f.go, &f.root).is_none());
    }
}
