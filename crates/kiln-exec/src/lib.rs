//! Fifth stage of kiln's flow: discover -> plan -> key -> cache -> **execute** -> verify -> ...
//!
//! An [`Executor`] runs one [`GoBuild`] action and reports what happened; [`LocalExecutor`] runs the
//! real `go build` as a child process. A remote executor (Bazel Remote Execution API) will implement
//! the same trait. [`run_bounded`] is the one scheduler: every action of a run goes through it under
//! a single global bound, so `-j` means the same thing whatever mix of services and platforms a run
//! has. [`default_jobs`] picks that bound from the cores and the memory actually available.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod local;
mod schedule;

pub use local::LocalExecutor;
pub use schedule::{default_jobs, run_bounded, MEMORY_PER_JOB};

use std::path::PathBuf;
use std::time::Duration;

/// One `go build` invocation building one or more main packages into `out_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuild {
    /// Label for progress and errors, e.g. `api linux/arm64`.
    pub label: String,
    /// The `go` command.
    pub go: PathBuf,
    /// Working directory (the module or workspace root).
    pub dir: PathBuf,
    /// Environment on top of the inherited one.
    pub env: Vec<(String, String)>,
    /// Arguments after `go build`, before `-o` and the packages.
    pub args: Vec<String>,
    /// Main packages (import paths); several share one compile of their common packages.
    pub packages: Vec<String>,
    /// Directory the binaries are written to (go names them after the packages).
    pub out_dir: PathBuf,
    /// Value for go's own `-p` (parallel compile processes inside this invocation).
    pub parallelism: usize,
}

/// The outcome of a [`GoBuild`] that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Whether go exited with status 0.
    pub success: bool,
    /// go's standard error, verbatim (compiler errors).
    pub stderr: String,
    /// Wall time.
    pub duration: Duration,
}

/// Why an action could not be run at all (a failing compile is a [`Completed`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The command could not be started.
    #[error("cannot start `{program}` for {label}: {source}\nhint: install Go 1.22 or newer and put it on PATH, or set KILN_GO")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The action's label.
        label: String,
        /// The spawn error.
        source: std::io::Error,
    },
    /// The output directory could not be prepared.
    #[error("cannot create {path}: {source}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Something that runs build actions.
pub trait Executor: Send + Sync {
    /// A short name for messages (`local`, later `remote grpc://...`).
    fn name(&self) -> String;
    /// Runs one action to completion.
    fn run(&self, build: &GoBuild) -> Result<Completed, ExecError>;
}
