use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_types::{Digest, Platform};
use kiln_verify::{BinaryReport, Finding};
use serde::Serialize;

use crate::BuildError;

/// File name of the build manifest inside the output directory.
pub const MANIFEST_FILE: &str = "kiln-build.json";

/// The result of one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    /// Service name.
    pub service: String,
    /// Main package import path.
    pub package: String,
    /// Platform.
    pub platform: Platform,
    /// Where the binary is, relative to the output directory's parent when possible.
    pub path: Option<PathBuf>,
    /// Binary digest.
    pub sha256: Option<Digest>,
    /// Binary size in bytes.
    pub size: Option<u64>,
    /// Restored from the cache instead of built.
    pub cached: bool,
    /// Wall time of this target in this run (0 for restoring is rounded up to 1 ms).
    pub duration_ms: u64,
    /// The action key (hex).
    pub key: Option<String>,
    /// Whether the binary is static (no interpreter, no non-system libraries, no cgo).
    pub is_static: Option<bool>,
    /// Whether a static binary was required.
    pub static_required: bool,
    /// Go version that built it.
    pub go_version: String,
    /// The `go build` arguments.
    pub flags: Vec<String>,
    /// Environment overrides.
    pub env: Vec<(String, String)>,
    /// What verification saw.
    pub verify: Option<BinaryReport>,
    /// Verification findings (errors fail the target).
    pub findings: Vec<Finding>,
    /// Why the target failed: compiler output verbatim, or the verification error.
    pub error: Option<String>,
    /// Why the result was neither looked up in nor stored to the cache, when it was not (a flag
    /// kiln cannot key, an input that changed while go built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_cached: Option<String>,
    /// With `--explain`: which key inputs differ from the previous build of this target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Vec<String>>,
}

impl TargetResult {
    /// `service os/arch`.
    pub fn label(&self) -> String {
        format!("{} {}", self.service, self.platform)
    }

    /// Whether the target produced a verified binary.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Everything one `kiln build` did.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// kiln's version.
    pub kiln_version: String,
    /// Go version.
    pub go_version: String,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Per-target results, ordered by service then platform.
    pub targets: Vec<TargetResult>,
    /// Targets restored from the cache.
    pub cache_hits: usize,
    /// Targets built.
    pub cache_misses: usize,
    /// `go build` invocations run.
    pub go_invocations: usize,
    /// `go list` answers the plan needed, and how many of them came from the list cache.
    pub go_lists: GoLists,
    /// Hits that were rebuilt and compared with the cached binary (`--verify-cache`).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_verified: usize,
    /// Wall time of the pipeline.
    pub duration_ms: u64,
    /// Traffic through the remote cache tier, when one is configured: local and remote hits,
    /// misses, bytes down and up, time spent waiting on the remote, warnings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_cache: Option<kiln_cache::CacheTraffic>,
    /// go's package cache served through `kiln gocacheprog` (set when a remote cache is
    /// configured): the counters of every session of the run summed; `misses` is how many
    /// package outputs go had to produce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_packages: Option<kiln_gocache::Stats>,
    /// What a remote executor did (`[execute] remote`): actions the engine answered, how many of
    /// them from its action cache, actions run here instead, bytes up and down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_execution: Option<kiln_exec::ExecutionStats>,
}

/// `go list` answers of a plan.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct GoLists {
    /// Answers the plan needed.
    pub total: usize,
    /// Answers taken from the list cache instead of running `go list`.
    pub cached: usize,
}

impl BuildReport {
    /// Targets that failed.
    pub fn failures(&self) -> impl Iterator<Item = &TargetResult> {
        self.targets.iter().filter(|t| !t.ok())
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Writes `report` as `<out_dir>/kiln-build.json` (temp file + rename) and returns the path.
pub fn write_manifest(report: &BuildReport) -> Result<PathBuf, BuildError> {
    let dir = &report.out_dir;
    let path = dir.join(MANIFEST_FILE);
    let io = |source| BuildError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(report).map_err(|e| BuildError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    // Temp files are created 0600; the manifest is an output like the binaries beside it, so it
    // gets 0666 minus the umask, as `fs::write` would give it.
    let mut builder = tempfile::Builder::new();
    builder.prefix(".kiln-build.json.");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io)?;
    tmp.write_all(&bytes).map_err(io)?;
    tmp.write_all(b"\n").map_err(io)?;
    tmp.persist(&path).map_err(|e| BuildError::Io {
        path: path.clone(),
        source: e.error,
    })?;
    Ok(path)
}

/// `path` relative to `base` (the caller's current directory) when it is below it: manifests
/// should not carry machine paths.
pub(crate) fn display_path(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
