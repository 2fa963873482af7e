//! One module per subcommand.

pub mod affected;
pub mod build;
pub mod cache;
pub mod gen;
pub mod image;
pub mod init;
pub mod keygen;
pub mod lint;
pub mod sbom;
pub mod sign;
pub mod verify;
pub mod verify_bin;

use std::path::{Path, PathBuf};

use anyhow::Result;
use kiln_discover::Project;

/// The `go` command: `KILN_GO` or `go` from PATH.
pub fn go_command() -> PathBuf {
    std::env::var_os("KILN_GO")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("go"), PathBuf::from)
}

/// Opens the Go module or workspace containing `dir`.
pub fn open_project(dir: &Path) -> Result<Project> {
    Ok(Project::open(&go_command(), dir)?)
}
