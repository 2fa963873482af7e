//! First stage of kiln's flow: **discover** -> plan -> key -> cache -> execute -> verify -> ...
//!
//! Asks the real Go toolchain what there is to build instead of guessing from the file tree:
//! `go env` for the toolchain and the module or workspace, `go list -deps -json` for the main
//! packages and every package they import (with the exact source, embedded and cgo files that the
//! build would use under a given GOOS/GOARCH/tags), and git for the values of ldflags templates.
//! Everything here is read-only: discovery never writes into the user's tree.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod envcache;
mod error;
mod goenv;
mod graph;
mod listcache;
mod vcs;

pub use envcache::GoEnvCache;
pub use error::DiscoverError;
pub use goenv::{GoEnv, Project};
pub use graph::{binary_name, CgoDirectives, ListRequest, Module, Package, PackageGraph};
pub use listcache::{ListCache, ListSource};
pub use vcs::GitHead;
