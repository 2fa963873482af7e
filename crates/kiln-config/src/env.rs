//! Every environment variable kiln reads, named in one place, and the values resolved once.
//!
//! The `kiln` binary calls [`Env::resolve`] once at start-up with the process environment and
//! hands the result down as data; no library crate calls `std::env::var` for its own settings. That
//! keeps one build from seeing two values of one variable (the date in an SBOM disagreeing with
//! the date in the binary) and lets tests drive every setting without touching the process
//! environment.
//!
//! Go's own variables (`GOFLAGS`, `GOOS`, `CGO_ENABLED`, `CC`, ...) are not listed here: kiln
//! learns them from `go env -json`, so it sees what `go` sees.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ConfigError;

/// Directory of kiln's action cache (default: the user cache directory + `kiln`).
pub const KILN_CACHE_DIR: &str = "KILN_CACHE_DIR";
/// The remote cache (`grpc://HOST:PORT`, `grpcs://HOST:PORT`), overriding kiln.toml
/// `[cache] remote`; `off` turns a configured remote off.
pub const KILN_REMOTE_CACHE: &str = "KILN_REMOTE_CACHE";
/// The remote execution engine (`grpc://HOST:PORT`, `grpcs://HOST:PORT`), overriding kiln.toml
/// `[execute] remote`; `off` builds on this machine.
pub const KILN_REMOTE_EXECUTOR: &str = "KILN_REMOTE_EXECUTOR";
/// The `go` command to run (default: `go` from `PATH`).
pub const KILN_GO: &str = "KILN_GO";
/// Directory to write each target's cache-key inputs into, as JSON ("why did this rebuild?").
pub const KILN_DEBUG_KEYS: &str = "KILN_DEBUG_KEYS";
/// Password of the private key for signing (`kiln keygen`, `kiln sign`, `kiln image --sign`); an
/// empty value means no password, as with cosign's `COSIGN_PASSWORD`.
pub const KILN_PASSWORD: &str = "KILN_PASSWORD";
/// The build date, seconds since 1970 as decimal digits (reproducible-builds.org convention). See
/// [`BuildDate`] for the rule and where the date goes.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Directory holding docker's `config.json` with registry credentials (default: `~/.docker`).
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// The home directory: `~/.docker` when `DOCKER_CONFIG` is unset; the cache directory default.
pub const HOME: &str = "HOME";
/// Base of the user cache directory on Linux (`$XDG_CACHE_HOME/kiln`), when `KILN_CACHE_DIR` is
/// unset.
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Any value turns colours off (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// `1` or `true`: rebuild cache hits and compare them with the cached binary (`--verify-cache`),
/// so a whole test suite or CI job can run in that mode.
pub const KILN_VERIFY_CACHE: &str = "KILN_VERIFY_CACHE";
/// `1` or `true`: `kiln gocacheprog` prints its counters to stderr when go closes the cache (as
/// `--stats`). go starts that command with go's own environment, where a flag cannot be added
/// without changing GOCACHEPROG itself.
pub const KILN_GOCACHEPROG_STATS: &str = "KILN_GOCACHEPROG_STATS";
/// The resolved remote cache that `kiln build` hands to the `kiln gocacheprog` it starts for its
/// `go build` invocations (JSON; set by kiln, not by users). An environment variable, not an
/// argument, since it may hold a token and header values, which the process list would show.
pub const KILN_GOCACHEPROG_REMOTE: &str = "KILN_GOCACHEPROG_REMOTE";

/// `true` when GitHub Actions runs the job: kiln then writes workflow-command annotations
/// (`::error file=F,line=L,col=C::message`) for compile errors, verification failures and lint
/// findings.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// The file GitHub Actions renders as the step's job summary; kiln appends a Markdown report of
/// what it built and pushed when it runs under GitHub Actions.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";

/// Every variable above, for documentation checks.
pub const ALL: &[&str] = &[
    KILN_CACHE_DIR,
    KILN_REMOTE_CACHE,
    KILN_REMOTE_EXECUTOR,
    KILN_GO,
    KILN_DEBUG_KEYS,
    KILN_PASSWORD,
    SOURCE_DATE_EPOCH,
    DOCKER_CONFIG,
    HOME,
    XDG_CACHE_HOME,
    NO_COLOR,
    KILN_VERIFY_CACHE,
    KILN_GOCACHEPROG_STATS,
    KILN_GOCACHEPROG_REMOTE,
    GITHUB_ACTIONS,
    GITHUB_STEP_SUMMARY,
];

/// Latest date every format kiln writes can carry: 9999-12-31T23:59:59Z (RFC 3339 years have
/// four digits).
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// The environment as kiln uses it, read once by the binary.
#[derive(Clone, PartialEq, Eq)]
pub struct Env {
    /// The process's current directory (relative paths in output are shown against it).
    pub cwd: PathBuf,
    /// `KILN_GO`, else `go`.
    pub go: PathBuf,
    /// `KILN_CACHE_DIR` when set and non-empty (else the cache crate picks its default).
    pub cache_dir: Option<PathBuf>,
    /// `KILN_REMOTE_CACHE` when set and non-empty.
    pub remote_cache: Option<String>,
    /// `KILN_REMOTE_EXECUTOR` when set and non-empty.
    pub remote_executor: Option<String>,
    /// `KILN_DEBUG_KEYS` when set and non-empty.
    pub debug_keys_dir: Option<PathBuf>,
    /// `DOCKER_CONFIG`, else `$HOME/.docker`; `None` without either.
    pub docker_config_dir: Option<PathBuf>,
    /// `KILN_PASSWORD` as bytes (possibly empty), when set.
    pub password: Option<Vec<u8>>,
    /// `NO_COLOR` is set to a non-empty value.
    pub no_color: bool,
    /// `SOURCE_DATE_EPOCH` as given; checked by [`Env::source_date_epoch`] when a command needs a
    /// date, so a bad value fails the commands that would use it and not `kiln cache stats`.
    pub source_date_epoch: Option<OsString>,
    /// `KILN_VERIFY_CACHE` is `1` or `true`.
    pub verify_cache: bool,
    /// `KILN_GOCACHEPROG_STATS` is `1` or `true`.
    pub gocacheprog_stats: bool,
    /// `KILN_GOCACHEPROG_REMOTE` when set and non-empty (JSON of a
    /// [`crate::RemoteCache`]; may hold secrets).
    pub gocacheprog_remote: Option<String>,
    /// `GITHUB_ACTIONS` is `true` (exactly, as GitHub sets it).
    pub github_actions: bool,
    /// `GITHUB_STEP_SUMMARY` when set and non-empty and `GITHUB_ACTIONS` is `true`.
    pub github_step_summary: Option<PathBuf>,
    /// The whole process environment (UTF-8 variables), for the key stage: it decides which of
    /// them reach `go build` and keys those (see `kiln_key::env`). Set by [`Env::with_process`].
    pub process: std::collections::BTreeMap<String, String>,
    /// Whether [`Env::process`] holds every variable (false when one was not UTF-8): caches keyed
    /// by the whole environment must not be used when it does not.
    pub process_complete: bool,
}

impl std::fmt::Debug for Env {
    // The password never appears in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("cwd", &self.cwd)
            .field("go", &self.go)
            .field("cache_dir", &self.cache_dir)
            .field("remote_cache", &self.remote_cache)
            .field("remote_executor", &self.remote_executor)
            .field("debug_keys_dir", &self.debug_keys_dir)
            .field("docker_config_dir", &self.docker_config_dir)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("no_color", &self.no_color)
            .field("source_date_epoch", &self.source_date_epoch)
            .field("verify_cache", &self.verify_cache)
            .field("gocacheprog_stats", &self.gocacheprog_stats)
            .field(
                "gocacheprog_remote",
                &self.gocacheprog_remote.as_ref().map(|_| "***"),
            )
            .field("github_actions", &self.github_actions)
            .field("github_step_summary", &self.github_step_summary)
            .field("process", &format_args!("{} variables", self.process.len()))
            .finish()
    }
}

impl Env {
    /// Resolves every variable through `var` (the binary passes `std::env::var_os`), with `cwd`
    /// the current directory.
    pub fn resolve(cwd: PathBuf, var: impl Fn(&str) -> Option<OsString>) -> Self {
        let non_empty = |name: &str| var(name).filter(|v| !v.is_empty());
        let path = |name: &str| non_empty(name).map(PathBuf::from);
        let github_actions = var(GITHUB_ACTIONS).is_some_and(|v| v == "true");
        Self {
            cwd,
            go: path(KILN_GO).unwrap_or_else(|| PathBuf::from("go")),
            cache_dir: path(KILN_CACHE_DIR),
            remote_cache: non_empty(KILN_REMOTE_CACHE)
                .map(|v| v.to_string_lossy().trim().to_string()),
            remote_executor: non_empty(KILN_REMOTE_EXECUTOR)
                .map(|v| v.to_string_lossy().trim().to_string()),
            debug_keys_dir: path(KILN_DEBUG_KEYS),
            docker_config_dir: path(DOCKER_CONFIG)
                .or_else(|| path(HOME).map(|h| h.join(".docker"))),
            password: var(KILN_PASSWORD).map(OsString::into_encoded_bytes),
            no_color: non_empty(NO_COLOR).is_some(),
            source_date_epoch: var(SOURCE_DATE_EPOCH),
            verify_cache: non_empty(KILN_VERIFY_CACHE).is_some_and(|v| v == "1" || v == "true"),
            gocacheprog_stats: non_empty(KILN_GOCACHEPROG_STATS)
                .is_some_and(|v| v == "1" || v == "true"),
            gocacheprog_remote: non_empty(KILN_GOCACHEPROG_REMOTE)
                .map(|v| v.to_string_lossy().into_owned()),
            github_actions,
            github_step_summary: path(GITHUB_STEP_SUMMARY).filter(|_| github_actions),
            process: std::collections::BTreeMap::new(),
            process_complete: true,
        }
    }

    /// Records the whole process environment (the binary passes `std::env::vars()`).
    pub fn with_process(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.process = vars.into_iter().collect();
        self
    }

    /// Records the whole process environment from `std::env::vars_os()`: variables that are
    /// not UTF-8 are left out of [`Env::process`] (and [`Env::process_complete`] says so) instead
    /// of aborting, as `std::env::vars()` would.
    pub fn with_process_os(mut self, vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        self.process.clear();
        self.process_complete = true;
        for (k, v) in vars {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => {
                    self.process.insert(k, v);
                }
                _ => self.process_complete = false,
            }
        }
        self
    }

    /// An environment with nothing set: for tests and library callers that want defaults.
    pub fn empty(cwd: impl Into<PathBuf>) -> Self {
        Self::resolve(cwd.into(), |_| None)
    }

    /// `SOURCE_DATE_EPOCH` as seconds: `None` when unset or empty, an error when it is not a
    /// plain decimal number of seconds between 1970 and 9999.
    pub fn source_date_epoch(&self) -> Result<Option<u64>, ConfigError> {
        let Some(raw) = self.source_date_epoch.as_ref().filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let invalid = |why: &str| {
            ConfigError::Env {
            name: SOURCE_DATE_EPOCH,
            value: raw.to_string_lossy().into_owned(),
            why: why.to_string(),
            hint: "set it to whole seconds since 1970, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct), or unset it to date the build by the commit time of HEAD",
        }
        };
        let text = raw.to_str().ok_or_else(|| invalid("it is not UTF-8"))?;
        parse_epoch(text).map(Some).map_err(|why| invalid(&why))
    }

    /// The date of this build: see [`BuildDate`]. `commit_time` is asked only when
    /// `SOURCE_DATE_EPOCH` is unset (it runs git).
    pub fn build_date(
        &self,
        commit_time: impl FnOnce() -> Option<u64>,
    ) -> Result<BuildDate, ConfigError> {
        Ok(match self.source_date_epoch()? {
            Some(epoch) => BuildDate {
                epoch,
                source: DateSource::SourceDateEpoch,
            },
            None => BuildDate::from_commit(commit_time()),
        })
    }

    /// `path` relative to the current directory when it lies below it, else as given.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.cwd)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Parses seconds since 1970: ASCII digits only (no sign, no spaces, no fraction), at most
/// [`MAX_EPOCH`].
pub fn parse_epoch(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it must be a whole number of seconds since 1970-01-01 (digits only)".into());
    }
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_EPOCH => Ok(n),
        _ => Err(format!(
            "it is after 9999-12-31T23:59:59Z (at most {MAX_EPOCH})"
        )),
    }
}

/// Where a [`BuildDate`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DateSource {
    /// The `SOURCE_DATE_EPOCH` variable.
    SourceDateEpoch,
    /// The committer date of `HEAD`.
    CommitTime,
    /// Neither: 1970-01-01T00:00:00Z.
    Zero,
}

/// The one date of a build, used everywhere a date ends up in an output: `{{.Date}}` in ldflags,
/// image config `created` and layer entry mtimes, and SBOM creation times.
///
/// The rule: `SOURCE_DATE_EPOCH` when set (an invalid value is an error, never a silent
/// fallback), else the commit time of `HEAD`, else 0. Never the clock: a clock date would change
/// every output, and so every cache key, on every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BuildDate {
    /// Seconds since 1970-01-01T00:00:00Z, at most [`MAX_EPOCH`].
    pub epoch: u64,
    /// Where it came from.
    pub source: DateSource,
}

impl BuildDate {
    /// The date when `SOURCE_DATE_EPOCH` is unset: the commit time, else 0. A commit time past
    /// [`MAX_EPOCH`] counts as none.
    pub fn from_commit(commit_time: Option<u64>) -> Self {
        match commit_time.filter(|t| *t <= MAX_EPOCH) {
            Some(epoch) => Self {
                epoch,
                source: DateSource::CommitTime,
            },
            None => Self {
                epoch: 0,
                source: DateSource::Zero,
            },
        }
    }

    /// The date as signed seconds, for formatters that take `i64` (always exact: the epoch is at
    /// most [`MAX_EPOCH`]).
    pub fn epoch_i64(&self) -> i64 {
        i64::try_from(self.epoch).unwrap_or(i64::MAX)
    }

    /// `YYYY-MM-DDThh:mm:ssZ`.
    pub fn rfc3339(&self) -> String {
        kiln_types::format_rfc3339(self.epoch_i64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(vars: &[(&str, &str)]) -> Env {
        let map: BTreeMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Env::resolve(PathBuf::from("/src/repo"), |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_without_variables() {
        let e = env(&[]);
        assert_eq!(e.go, PathBuf::from("go"));
        assert_eq!(e.cache_dir, None);
        assert_eq!(e.debug_keys_dir, None);
        assert_eq!(e.docker_config_dir, None);
        assert_eq!(e.password, None);
        assert!(!e.no_color);
        assert_eq!(e.source_date_epoch().unwrap(), None);
        assert_eq!(e, Env::empty("/src/repo"));
    }

    #[test]
    fn every_variable_reaches_its_field() {
        let e = env(&[
            (KILN_GO, "/opt/go/bin/go"),
            (KILN_CACHE_DIR, "/c"),
            (KILN_DEBUG_KEYS, "/keys"),
            (DOCKER_CONFIG, "/d"),
            (HOME, "/home/u"),
            (KILN_PASSWORD, ""),
            (NO_COLOR, "1"),
            (SOURCE_DATE_EPOCH, "1700000000"),
        ]);
        assert_eq!(e.go, PathBuf::from("/opt/go/bin/go"));
        assert_eq!(e.cache_dir, Some(PathBuf::from("/c")));
        assert_eq!(e.debug_keys_dir, Some(PathBuf::from("/keys")));
        assert_eq!(e.docker_config_dir, Some(PathBuf::from("/d")));
        assert_eq!(e.password, Some(Vec::new()), "empty password is a password");
        assert!(e.no_color);
        assert_eq!(e.source_date_epoch().unwrap(), Some(1_700_000_000));
        assert!(!format!("{e:?}").contains("password: Some([])"));
    }

    #[test]
    fn empty_values_count_as_unset_and_home_gives_docker_dir() {
        let e = env(&[
            (KILN_GO, ""),
            (KILN_CACHE_DIR, ""),
            (KILN_DEBUG_KEYS, ""),
            (DOCKER_CONFIG, ""),
            (HOME, "/home/u"),
            (NO_COLOR, ""),
            (SOURCE_DATE_EPOCH, ""),
        ]);
        assert_eq!(e.go, PathBuf::from("go"));
        assert_eq!(e.cache_dir, None);
        assert_eq!(e.debug_keys_dir, None);
        assert_eq!(e.docker_config_dir, Some(PathBuf::from("/home/u/.docker")));
        assert!(!e.no_color);
        assert_eq!(e.source_date_epoch().unwrap(), None);
    }

    #[test]
    fn issue_9_github_actions_needs_exactly_true() {
        let e = env(&[
            (GITHUB_ACTIONS, "true"),
            (GITHUB_STEP_SUMMARY, "/runner/summary.md"),
        ]);
        assert!(e.github_actions);
        assert_eq!(
            e.github_step_summary,
            Some(PathBuf::from("/runner/summary.md"))
        );
        for other in ["1", "TRUE", ""] {
            let e = env(&[
                (GITHUB_ACTIONS, other),
                (GITHUB_STEP_SUMMARY, "/runner/summary.md"),
            ]);
            assert!(!e.github_actions, "{other:?}");
            assert_eq!(e.github_step_summary, None, "{other:?}");
        }
    }

    #[test]
    fn password_is_redacted_in_debug_output() {
        let e = env(&[(KILN_PASSWORD, "hunter2")]);
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
    }

    #[test]
    fn build_date_rule() {
        let never = || -> Option<u64> { panic!("git must not run when SOURCE_DATE_EPOCH is set") };
        let d = env(&[(SOURCE_DATE_EPOCH, "1700000000")])
            .build_date(never)
            .unwrap();
        assert_eq!(
            d,
            BuildDate {
                epoch: 1_700_000_000,
                source: DateSource::SourceDateEpoch
            }
        );
        assert_eq!(d.rfc3339(), "2023-11-14T22:13:20Z");
        // SOURCE_DATE_EPOCH=0 is a valid date, not "unset".
        let d = env(&[(SOURCE_DATE_EPOCH, "0")]).build_date(never).unwrap();
        assert_eq!(d.source, DateSource::SourceDateEpoch);
        let d = env(&[]).build_date(|| Some(1_600_000_000)).unwrap();
        assert_eq!(
            d,
            BuildDate {
                epoch: 1_600_000_000,
                source: DateSource::CommitTime
            }
        );
        let d = env(&[]).build_date(|| None).unwrap();
        assert_eq!(
            d,
            BuildDate {
                epoch: 0,
                source: DateSource::Zero
            }
        );
        assert_eq!(d.rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            BuildDate::from_commit(Some(MAX_EPOCH + 1)).source,
            DateSource::Zero
        );
    }

    #[test]
    fn invalid_source_date_epoch_is_an_error_with_a_hint() {
        for bad in [
            "yesterday",
            "-1",
            "+5",
            " 1700000000",
            "1700000000.5",
            "1e9",
            "253402300800",
            "99999999999999999999999",
        ] {
            let e = env(&[(SOURCE_DATE_EPOCH, bad)]);
            let err = e.build_date(|| Some(1)).unwrap_err().to_string();
            assert!(err.contains("SOURCE_DATE_EPOCH"), "{bad}: {err}");
            assert!(err.contains(bad.trim()), "{bad}: {err}");
            assert!(err.contains("hint:"), "{bad}: {err}");
        }
        assert_eq!(parse_epoch("253402300799"), Ok(MAX_EPOCH));
    }

    #[test]
    fn every_variable_is_documented_in_the_readme() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .unwrap();
        let section = readme
            .split("## Environment")
            .nth(1)
            .expect("README has an Environment section");
        for name in ALL {
            assert!(
                section.contains(&format!("`{name}`")),
                "{name} is missing from the README's Environment table"
            );
        }
    }

    #[test]
    fn display_path_is_relative_below_cwd() {
        let e = env(&[]);
        assert_eq!(
            e.display_path(Path::new("/src/repo/dist/kiln-build.json")),
            "dist/kiln-build.json"
        );
        assert_eq!(e.display_path(Path::new("/elsewhere/x")), "/elsewhere/x");
        assert_eq!(e.display_path(Path::new("/src/repo")), "/src/repo");
    }
}
