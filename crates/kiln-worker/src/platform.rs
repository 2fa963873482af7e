//! The platform properties a worker advertises, so an action reaches only workers that can run it
//! and produce the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_types::Digest;

use crate::WorkerError;

/// Platform key of the Go version (`go1.25.4`).
pub const GO_VERSION_KEY: &str = "kiln-go-version";
/// Platform key of the toolchain hash: two Go installations of the same version built
/// differently (another GOEXPERIMENT, a patched compiler) must not share actions.
pub const GO_TOOLCHAIN_KEY: &str = "kiln-go-toolchain";

/// A Go toolchain a worker runs actions with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoToolchain {
    /// Its GOROOT on this machine (bound read-only at [`crate::GO_ROOT_MOUNT`] in every sandbox).
    pub root: PathBuf,
    /// `go1.25.4`.
    pub version: String,
    /// The platform properties it gives a worker ([`go_platform`]).
    pub platform: Vec<(String, String)>,
}

impl GoToolchain {
    /// Describes the toolchain of `go` (a path or a name on PATH).
    pub fn detect(go: &Path) -> Result<Self, WorkerError> {
        let (root, platform) = describe(go)?;
        let version = platform
            .iter()
            .find(|(k, _)| k == GO_VERSION_KEY)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Ok(GoToolchain {
            root,
            version,
            platform,
        })
    }

    /// Whether go's GOCACHEPROG works without a GOEXPERIMENT: Go 1.24 and newer.
    pub fn has_gocacheprog(&self) -> bool {
        gocacheprog_supported(&self.version)
    }
}

/// Whether a Go of this version (`go1.24.0`, `go1.25rc1`, `devel ...`) reads GOCACHEPROG without
/// a GOEXPERIMENT (from Go 1.24). A version that does not parse (a development build) counts as
/// new.
pub fn gocacheprog_supported(version: &str) -> bool {
    let Some(rest) = version.strip_prefix("go") else {
        return version.starts_with("devel");
    };
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 24)
}

/// The properties of the Go toolchain `go` (a path or a name on PATH): `OSFamily` (GOOS), `ISA`
/// (`x86-64`, `aarch64` or GOARCH), [`GO_VERSION_KEY`] and [`GO_TOOLCHAIN_KEY`] (sha256 over the
/// `go` binary and the compile, link and asm tools).
pub fn go_platform(go: &Path) -> Result<Vec<(String, String)>, WorkerError> {
    describe(go).map(|(_, platform)| platform)
}

fn describe(go: &Path) -> Result<(PathBuf, Vec<(String, String)>), WorkerError> {
    let out = Command::new(go)
        .args(["env", "GOVERSION", "GOROOT", "GOOS", "GOARCH"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|e| WorkerError::Go(format!("running {} env: {e}", go.display())))?;
    if !out.status.success() {
        return Err(WorkerError::Go(format!(
            "{} env failed: {}",
            go.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let [version, goroot, goos, goarch] = lines[..] else {
        return Err(WorkerError::Go(format!(
            "unexpected go env output: {text:?}"
        )));
    };
    let isa = match goarch {
        "amd64" => "x86-64",
        "arm64" => "aarch64",
        other => other,
    };
    Ok((
        PathBuf::from(goroot),
        vec![
            ("OSFamily".to_string(), goos.to_string()),
            ("ISA".to_string(), isa.to_string()),
            (GO_VERSION_KEY.to_string(), version.to_string()),
            (
                GO_TOOLCHAIN_KEY.to_string(),
                toolchain_hash(Path::new(goroot), goos, goarch)?,
            ),
        ],
    ))
}

fn toolchain_hash(goroot: &Path, goos: &str, goarch: &str) -> Result<String, WorkerError> {
    let tools = PathBuf::from("pkg/tool").join(format!("{goos}_{goarch}"));
    let files = [
        PathBuf::from("bin/go"),
        tools.join("compile"),
        tools.join("link"),
        tools.join("asm"),
    ];
    let mut manifest = String::new();
    for rel in files {
        let path = goroot.join(&rel);
        let file = std::fs::File::open(&path).map_err(|source| WorkerError::Io {
            path: path.clone(),
            source,
        })?;
        let (digest, size) =
            Digest::of_reader(file).map_err(|source| WorkerError::Io { path, source })?;
        manifest.push_str(&format!("{} {size} {}\n", rel.display(), digest.hex()));
    }
    Ok(Digest::of_bytes(manifest.as_bytes()).hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_platform_names_the_local_toolchain() {
        let props = go_platform(Path::new("go")).expect("go on PATH");
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("OSFamily").as_deref(), Some(std::env::consts::OS));
        assert!(get(GO_VERSION_KEY).is_some_and(|v| v.starts_with("go1.")));
        assert_eq!(get(GO_TOOLCHAIN_KEY).map(|h| h.len()), Some(64));
        // Same toolchain, same hash: the key is stable between runs.
        assert_eq!(go_platform(Path::new("go")).expect("go"), props);
        let tc = GoToolchain::detect(Path::new("go")).expect("go");
        assert_eq!(tc.platform, props);
        assert!(tc.root.join("bin/go").is_file(), "{tc:?}");
        assert_eq!(Some(tc.version), get(GO_VERSION_KEY));
    }

    #[test]
    fn gocacheprog_needs_go_1_24() {
        assert!(gocacheprog_supported("go1.24.0"));
        assert!(gocacheprog_supported("go1.24rc1"));
        assert!(gocacheprog_supported("go1.26.8"));
        assert!(gocacheprog_supported("go2.0"));
        assert!(gocacheprog_supported("devel go1.27-abc"));
        assert!(!gocacheprog_supported("go1.23.4"));
        assert!(!gocacheprog_supported("go1.9"));
        assert!(!gocacheprog_supported(""));
    }
}
