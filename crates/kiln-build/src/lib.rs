//! The build pipeline: discover -> plan -> **key -> cache -> execute -> verify -> record**.
//!
//! [`build`] takes a [`kiln_plan::Plan`] and, for every target, computes its action key, restores
//! the binary from the [`kiln_cache::Storage`] on a hit, or runs `go build` through a
//! [`kiln_exec::Executor`] on a miss (several targets of one build context in one invocation when
//! grouping pays), stores the result, verifies every binary with `kiln-verify` and returns a
//! [`BuildReport`] that [`write_manifest`] records as `dist/kiln-build.json`.
//!
//! It never prints: progress goes to a [`Reporter`] that the binary implements (progress bars,
//! quiet mode, JSON). Failures of single targets are results, not errors, so one broken service does
//! not hide the state of the others.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod pipeline;
mod records;
mod report;
#[cfg(test)]
mod tests;

pub use pipeline::{build, BuildError, BuildOptions, GroupMode, NoReporter, Reporter};
pub use report::{write_manifest, BuildReport, GoLists, TargetResult, MANIFEST_FILE};
