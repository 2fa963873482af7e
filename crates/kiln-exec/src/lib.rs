//! Fifth stage of kiln's flow: discover -> plan -> key -> cache -> **execute** -> verify -> ...
//!
//! An [`Executor`] runs one [`Action`] and reports what happened. An action wraps a
//! [`kiln_key::GoCommand`], which only the key stage can make: an executor cannot run anything
//! other than the command whose inputs were hashed. [`LocalExecutor`] runs the real `go build` as a
//! child process with a cleared environment plus exactly the command's variables, in its own
//! process group, tied to kiln's life (a parent-death signal on Linux; [`kill_running`] for
//! SIGINT/SIGTERM), so no compile outlives an interrupted kiln. A remote executor (Bazel Remote
//! Execution API) will implement the same trait. [`ScriptedExecutor`] is a fake for tests of the
//! stages above. [`run_bounded`] is the one scheduler: every action of a run goes through it under a
//! single global bound. [`default_jobs`] picks that bound from the cores and the memory available.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod local;
mod schedule;
mod scripted;

pub use local::{kill_running, GoCacheProgram, LocalExecutor};
pub use schedule::{default_jobs, run_bounded, MEMORY_PER_JOB};
pub use scripted::{Script, ScriptedExecutor};

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_key::GoCommand;

/// One `go build` invocation building one or more main packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Label for progress and errors, e.g. `api linux/arm64`.
    pub label: String,
    /// The keyed command.
    pub command: GoCommand,
    /// Main packages (import paths); several share one compile of their common packages.
    pub packages: Vec<String>,
}

/// The outcome of an [`Action`] that ran.
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
    /// Runs `action` to completion, writing its binaries into `out_dir` (named by go after their
    /// packages), with go's own `-p` set to `parallelism`.
    fn run(
        &self,
        action: &Action,
        out_dir: &Path,
        parallelism: usize,
    ) -> Result<Completed, ExecError>;
}
