//! The platform properties a worker advertises, so an action reaches only workers that can run it
//! and produce the same bytes. They come from `kiln_remote::platform`, the function kiln's client
//! uses for its Actions, so both sides agree by construction.

use std::path::{Path, PathBuf};

pub use kiln_remote::platform::{GO_TOOLCHAIN_KEY, GO_VERSION_KEY};

use crate::WorkerError;

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
        let (root, platform) = kiln_remote::platform::describe_go(go).map_err(WorkerError::Go)?;
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

/// The properties of the Go toolchain `go` (a path or a name on PATH): `OSFamily`, `ISA`,
/// [`GO_VERSION_KEY`] and [`GO_TOOLCHAIN_KEY`] (see [`kiln_remote::platform::go_platform`]).
pub fn go_platform(go: &Path) -> Result<Vec<(String, String)>, WorkerError> {
    kiln_remote::platform::go_platform(go).map_err(WorkerError::Go)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toolchain_is_described_by_the_shared_platform_function() {
        // The properties themselves are tested in kiln_remote::platform.
        let props = go_platform(Path::new("go")).expect("go on PATH");
        let tc = GoToolchain::detect(Path::new("go")).expect("go");
        assert_eq!(tc.platform, props);
        assert!(tc.root.join("bin/go").is_file(), "{tc:?}");
        assert!(props
            .iter()
            .any(|(k, v)| k == GO_VERSION_KEY && *v == tc.version));
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
