//! Fifth stage of kiln's flow: discover -> plan -> key -> cache -> **execute** -> verify -> ...
//!
//! An [`Executor`] runs one [`Action`] and reports what happened. An action wraps a
//! [`kiln_key::GoCommand`], which only the key stage can make: an executor cannot run anything
//! other than the command whose inputs were hashed. [`LocalExecutor`] runs the real `go build` as a
//! child process with a cleared environment plus exactly the command's variables, in its own
//! process group, tied to kiln's life (a parent-death signal on Linux; [`kill_running`] for
//! SIGINT/SIGTERM), so no compile outlives an interrupted kiln. `kiln_remote::RemoteExecutor` (Bazel Remote
//! Execution API) implements the same trait for an engine's workers, with the [`Portable`] part
//! of an action. [`ScriptedExecutor`] is a fake for tests of the
//! stages above. [`run_bounded`] is the one scheduler: every action of a run goes through it under a
//! single global bound. [`default_jobs`] picks that bound from the cores and the memory available.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod local;
mod schedule;
mod scripted;

pub use local::{kill_running, GoCacheProgram, LocalExecutor};
pub use schedule::{default_jobs, run_bounded, MEMORY_PER_JOB};
pub use scripted::{Script, ScriptedExecutor};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// What running it on another machine needs; `None` when the executor does not ask for it
    /// ([`Executor::needs_portable`]).
    pub portable: Option<Arc<Portable>>,
}

/// What an executor on another machine needs beyond the command: the files the keys hashed and
/// where they live here, the keyed environment, and the binaries to bring back. Made by the build
/// stage from the key stage's [`kiln_key::Prepared`], so a remote input root holds exactly what the
/// key covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Portable {
    /// Every source file hashed into the key of any of the action's targets (absolute paths; the
    /// toolchain's binaries excluded, standard-library sources included).
    pub files: Vec<PathBuf>,
    /// This machine's GOROOT: files below it come with the toolchain the worker has.
    pub goroot: PathBuf,
    /// This machine's module cache: files below it are shipped as a module cache of their own.
    pub gomodcache: PathBuf,
    /// Every variable of the key families as the build sees it (`KeyInputs::env`).
    pub keyed_env: BTreeMap<String, String>,
    /// The file names go writes into the output directory, one per package, in order.
    pub binaries: Vec<String>,
    /// Why the action must run on this machine ([`kiln_key::Prepared::local_only`]).
    pub local_only: Option<String>,
}

/// What an executor did over a run, for the build report (`None` from executors with nothing
/// to tell).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionStats {
    /// The executor (`remote grpc://...`).
    pub executor: String,
    /// Actions the engine answered (run by a worker or from its action cache).
    pub remote: u64,
    /// Of those, the ones the engine answered from its action cache.
    pub remote_cached: u64,
    /// Actions run on this machine: they cannot run elsewhere, or the engine failed.
    pub local: u64,
    /// Input blobs the engine lacked and kiln uploaded, and their bytes.
    pub uploaded_blobs: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Bytes of outputs and logs downloaded (each verified against its digest).
    pub downloaded_bytes: u64,
    /// Why the engine stopped being used in this run, if it did.
    pub disabled: Option<String>,
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
    /// A remote engine could not run the action and falling back to local execution is off.
    #[error("remote execution of {label} failed: {message}\nhint: check that the engine is up, or set `fallback = \"local\"` under [execute] in kiln.toml to build here when it is not")]
    Remote {
        /// The action's label.
        label: String,
        /// What went wrong.
        message: String,
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

    /// Whether actions must carry their [`Portable`] part (executors that run elsewhere); the
    /// build stage skips gathering it otherwise.
    fn needs_portable(&self) -> bool {
        false
    }

    /// Warnings gathered since the last call (the build stage shows them as they come); each is
    /// returned once.
    fn drain_warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// What the executor did over the run, for the report.
    fn stats(&self) -> Option<ExecutionStats> {
        None
    }
}
