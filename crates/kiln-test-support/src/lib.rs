//! Dev-only: the test harness kiln's crates share, so each end-to-end test starts the same real
//! components the same way instead of carrying its own copy.
//!
//! Where it sits: beside the data flow, under `[dev-dependencies]` only; no library crate depends
//! on it. It knows nothing about kiln's types: crates wrap what they need (a `Repository` for a
//! registry, a client configuration) around the plain processes and addresses it hands out.
//!
//! A test that needs a tool that is missing fails with the command that installs it; nothing here
//! skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fault;
mod registry;
mod tools;

pub use registry::{http_get, DockerRegistry, RegistryOptions};
pub use tools::{free_port, require_tool, run_tool};
