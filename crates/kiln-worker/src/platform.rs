//! The platform properties a worker advertises, so an action reaches only workers that can run it
//! and produce the same bytes. Computed by `kiln_remote::platform`, the function kiln's client
//! uses for its Actions, so both sides agree by construction.

use std::path::Path;

pub use kiln_remote::platform::{GO_TOOLCHAIN_KEY, GO_VERSION_KEY};

use crate::WorkerError;

/// The properties of the Go toolchain `go` (a path or a name on PATH): `OSFamily`, `ISA`,
/// [`GO_VERSION_KEY`] and [`GO_TOOLCHAIN_KEY`] (see [`kiln_remote::platform::go_platform`]).
pub fn go_platform(go: &Path) -> Result<Vec<(String, String)>, WorkerError> {
    kiln_remote::platform::go_platform(go).map_err(WorkerError::Go)
}
