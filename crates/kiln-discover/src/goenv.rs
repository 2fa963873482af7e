use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_types::Platform;

use crate::{DiscoverError, Module};

/// The Go toolchain as `go env` reports it for one directory.
///
/// Read in the project directory because `go.mod`'s `toolchain` line and `GOTOOLCHAIN` can select a
/// different Go than the one on PATH; what matters is the one that will compile.
#[derive(Debug, Clone)]
pub struct GoEnv {
    /// The `go` command used.
    pub go: PathBuf,
    /// `GOVERSION`, e.g. `go1.26.8`.
    pub version: String,
    /// `GOROOT` of the selected toolchain.
    pub goroot: PathBuf,
    /// `GOMODCACHE`: content there is immutable and verified against go.sum.
    pub gomodcache: PathBuf,
    /// `GOMOD`, absent outside a module.
    pub gomod: Option<PathBuf>,
    /// `GOWORK`, absent outside a workspace.
    pub gowork: Option<PathBuf>,
    /// Every variable `go env -json` printed.
    pub vars: BTreeMap<String, String>,
}

impl GoEnv {
    /// Runs `go env -json` in `dir`.
    pub fn load(go: &Path, dir: &Path) -> Result<Self, DiscoverError> {
        Self::load_cached(go, dir, None)
    }

    /// [`GoEnv::load`], answered from `cache` when nothing it depends on changed
    /// ([`GoEnvCache`](crate::GoEnvCache) says what that is).
    pub fn load_cached(
        go: &Path,
        dir: &Path,
        cache: Option<&crate::GoEnvCache>,
    ) -> Result<Self, DiscoverError> {
        let out = match cache.and_then(|c| c.get(go, dir)) {
            Some(out) => out,
            None => {
                let started = crate::listcache::start();
                let out = run_go(go, dir, &["env", "-json"], &[])?;
                if let Some(c) = cache {
                    c.put(go, dir, started, &out);
                }
                out
            }
        };
        let vars: BTreeMap<String, String> =
            serde_json::from_slice(&out).map_err(|e| DiscoverError::BadOutput {
                args: "env -json".into(),
                message: e.to_string(),
            })?;
        let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
        let non_empty = |k: &str| {
            let v = get(k);
            (!v.is_empty() && v != "off" && v != "/dev/null" && v != "NUL")
                .then(|| PathBuf::from(v))
        };
        let version = get("GOVERSION");
        check_version(&version)?;
        Ok(Self {
            go: go.to_path_buf(),
            goroot: PathBuf::from(get("GOROOT")),
            gomodcache: PathBuf::from(get("GOMODCACHE")),
            gomod: non_empty("GOMOD"),
            gowork: non_empty("GOWORK"),
            version,
            vars,
        })
    }

    /// The default target: Linux on the host's architecture (containers run Linux).
    pub fn default_platform(&self) -> Platform {
        let arch = self
            .vars
            .get("GOHOSTARCH")
            .cloned()
            .unwrap_or_else(|| "amd64".into());
        Platform::new("linux", arch)
    }

    /// The value of a `go env` variable, or the empty string when go did not print it.
    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).map(String::as_str).unwrap_or("")
    }
}

fn check_version(v: &str) -> Result<(), DiscoverError> {
    // "go1.26.8", "go1.22rc1", "devel go1.27-abcdef": only reject what clearly is older than 1.22.
    let Some(rest) = v.strip_prefix("go1.") else {
        return Ok(());
    };
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match minor.parse::<u32>() {
        Ok(m) if m < 22 => Err(DiscoverError::GoTooOld {
            found: v.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A Go module or workspace that kiln builds.
#[derive(Debug, Clone)]
pub struct Project {
    /// The workspace root (directory of `go.work`) or the module root (directory of `go.mod`).
    pub root: PathBuf,
    /// The toolchain for this project.
    pub env: GoEnv,
}

impl Project {
    /// Finds the module or workspace containing `dir`.
    pub fn open(go: &Path, dir: &Path) -> Result<Self, DiscoverError> {
        Self::open_cached(go, dir, None)
    }

    /// [`Project::open`] with `go env` answered from `cache` when it can be.
    pub fn open_cached(
        go: &Path,
        dir: &Path,
        cache: Option<&crate::GoEnvCache>,
    ) -> Result<Self, DiscoverError> {
        let env = GoEnv::load_cached(go, dir, cache)?;
        let anchor = env
            .gowork
            .as_deref()
            .or(env.gomod.as_deref())
            .ok_or_else(|| DiscoverError::NotAModule {
                dir: dir.to_path_buf(),
            })?;
        let root = anchor.parent().unwrap_or(dir).to_path_buf();
        Ok(Self { root, env })
    }

    /// Whether the project is a `go.work` workspace.
    pub fn is_workspace(&self) -> bool {
        self.env.gowork.is_some()
    }

    /// The main modules: the module itself, or every module a `go.work` file `use`s (with or
    /// without a module in the workspace directory itself), as `go list -m -json` lists them.
    pub fn main_modules(&self) -> Result<Vec<Module>, DiscoverError> {
        let args = ["list", "-m", "-json"];
        let out = run_go(&self.env.go, &self.root, &args, &[])?;
        let mut modules = Vec::new();
        for m in serde_json::Deserializer::from_slice(&out).into_iter::<Module>() {
            modules.push(m.map_err(|e| DiscoverError::BadOutput {
                args: args.join(" "),
                message: e.to_string(),
            })?);
        }
        Ok(modules)
    }

    /// The patterns that mean "every main package of the project", relative to [`Project::root`].
    ///
    /// For a module, `./...`. In a workspace, go's directory patterns stop at module boundaries
    /// (`./...` at the go.work directory covers the root module only, and fails when there is
    /// none), so there is one `DIR/...` per `use`d module.
    pub fn default_patterns(&self) -> Result<Vec<String>, DiscoverError> {
        if !self.is_workspace() {
            return Ok(vec!["./...".to_string()]);
        }
        let mut patterns: Vec<String> = self
            .main_modules()?
            .iter()
            .filter_map(|m| m.dir.as_deref())
            .map(|dir| module_pattern(&self.root, dir))
            .collect();
        patterns.sort();
        patterns.dedup();
        Ok(patterns)
    }

    /// `go.work`, `go.work.sum` when in a workspace: inputs of every build.
    pub fn workspace_files(&self) -> Vec<PathBuf> {
        match &self.env.gowork {
            Some(w) => vec![w.clone(), w.with_extension("work.sum")],
            None => Vec::new(),
        }
    }
}

/// The directory pattern for every package of the module in `dir`: `./...`, `./svc/...`, or the
/// absolute directory for a module `use`d from outside the workspace directory.
fn module_pattern(root: &Path, dir: &Path) -> String {
    match dir.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => "./...".to_string(),
        Ok(rel) => format!("./{}/...", rel.to_string_lossy().replace('\\', "/")),
        Err(_) => format!("{}/...", dir.display()),
    }
}

/// Runs `go ARGS` in `dir` with extra environment, returning stdout or a [`DiscoverError`] that
/// carries go's stderr verbatim.
pub(crate) fn run_go(
    go: &Path,
    dir: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> Result<Vec<u8>, DiscoverError> {
    let out = Command::new(go)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|source| DiscoverError::GoMissing {
            go: go.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(DiscoverError::GoFailed {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_patterns_stay_relative_to_the_workspace() {
        let root = Path::new("/ws");
        assert_eq!(module_pattern(root, Path::new("/ws")), "./...");
        assert_eq!(
            module_pattern(root, Path::new("/ws/svc/api")),
            "./svc/api/..."
        );
        assert_eq!(module_pattern(root, Path::new("/other")), "/other/...");
    }

    #[test]
    fn version_gate() {
        assert!(check_version("go1.21.5").is_err());
        assert!(check_version("go1.22.0").is_ok());
        assert!(check_version("go1.26.8").is_ok());
        assert!(check_version("devel go1.27-abc").is_ok());
    }
}
