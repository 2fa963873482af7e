//! Dev-only: the test harness kiln's crates share, so each end-to-end test starts the same real
//! components the same way instead of carrying its own copy.
//!
//! Where it sits: beside the data flow, under `[dev-dependencies]` only; no library crate depends
//! on it. It knows nothing about kiln's types: crates wrap what they need (a `Repository` for a
//! registry, a client configuration) around the plain processes and addresses it hands out.
//!
//! What it holds: a `docker-registry` on loopback ([`DockerRegistry`]); free ports and tools that
//! must be there ([`require_tool`], [`run_tool`]); the Go toolchain and module fixtures ([`go`]);
//! the official SBOM validators ([`sbom`]) and SARIF schema ([`sarif`]); an image's filesystem run
//! under bubblewrap after `umoci unpack` ([`sandbox`]); a TCP proxy that cuts, slows or refuses
//! traffic on command ([`fault`]); BuildGrid with remote execution on a private PostgreSQL
//! cluster ([`buildgrid`]) and `kiln worker` processes for it ([`worker`]).
//!
//! A test that needs a tool that is missing fails with the command that installs it; nothing here
//! skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod buildgrid;
pub mod fault;
pub mod go;
mod registry;
pub mod sandbox;
pub mod sarif;
pub mod sbom;
mod tools;
pub mod worker;

pub use go::{main_go, require_go, GoModule};
pub use registry::{get_manifest, http_get, DockerRegistry, RegistryOptions, MANIFEST_ACCEPT};
pub use tools::{free_port, require_tool, run_tool};
