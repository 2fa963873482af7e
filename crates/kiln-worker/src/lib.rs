//! A remote execution worker, on the far side of the execute stage of kiln's flow: discover ->
//! plan -> key -> cache -> **execute** -> ...
//!
//! A REAPI engine such as BuildGrid schedules actions, stores blobs and caches results; it does
//! not run anything itself. Workers connect to it through the Remote Workers API (the "bots"
//! protocol, vendored under `proto/` and compiled with protox) and this crate is one:
//!
//! 1. [`Worker::run`] opens a bot session (`CreateBotSession`) advertising the worker's platform
//!    properties ([`go_platform`]: OSFamily, ISA, Go version and toolchain hash), so the engine
//!    only hands it actions whose platform matches;
//! 2. it long-polls `UpdateBotSession` (about 10 s per call) and, for each ACTIVE lease, fetches
//!    the Action, its Command and its input root from the CAS, verifying every blob against its
//!    digest, and materialises the input root in a fresh directory;
//! 3. it runs the Command in [`kiln_sandbox`] with exactly the Command's environment, the input
//!    root writable at [`INPUT_ROOT_MOUNT`], no network, the configured limits and the Action's
//!    timeout;
//! 4. it uploads the declared outputs, stdout and stderr to the CAS and completes the lease with
//!    an `ActionResult` (the engine writes the action cache and answers the client);
//! 5. when the engine goes away it keeps its session and retries with backoff; when the engine no
//!    longer knows the session it opens a new one.
//!
//! CAS traffic goes through [`kiln_remote::ReapiClient`] (batch calls for small blobs, ByteStream
//! for large ones, bounded retries). Like every kiln library it prints nothing: progress goes to a
//! [`WorkerReporter`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bot;
mod exec;
mod platform;

use std::path::PathBuf;
use std::time::Duration;

pub use bot::Worker;
pub use exec::INPUT_ROOT_MOUNT;
pub use kiln_config::RemoteCache;
pub use kiln_sandbox::Limits;
pub use platform::{go_platform, GO_TOOLCHAIN_KEY, GO_VERSION_KEY};

/// Generated Remote Workers API (`google.devtools.remoteworkers.v1test2`) messages and the Bots
/// client, from the vendored protos.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("google.devtools.remoteworkers.v1test2");
}

/// Why the worker could not do its job. Failures of one action are reported to the engine in
/// that action's lease; only these stop [`Worker::run`] or a single lease.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The server URL cannot be used.
    #[error("invalid worker server URL `{url}`: {reason}\nhint: write grpc://HOST:PORT (plain) or grpcs://HOST:PORT (TLS)")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Bots call failed.
    #[error("{call} on {url} failed: {code:?}: {message}")]
    Bots {
        /// The server.
        url: String,
        /// The RPC.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// A CAS transfer failed.
    #[error(transparent)]
    Remote(#[from] kiln_remote::RemoteError),
    /// A blob the action needs is not in the CAS.
    #[error("blob {digest} ({what}) is missing from the CAS")]
    MissingBlob {
        /// `hash/size`.
        digest: String,
        /// What the blob is (Action, Command, a file's path, ...).
        what: String,
    },
    /// A blob from the CAS did not match its digest or did not decode.
    #[error("blob {digest} ({what}) is corrupt: {reason}")]
    BadBlob {
        /// `hash/size`.
        digest: String,
        /// What the blob is.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// The action asks for something this worker refuses (an unsafe path, another platform).
    #[error("action refused: {0}")]
    Refused(String),
    /// The sandbox could not run the command.
    #[error(transparent)]
    Sandbox(#[from] kiln_sandbox::SandboxError),
    /// Local file I/O failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Detecting the local Go toolchain failed.
    #[error("cannot describe the Go toolchain: {0}\nhint: install Go, put it on PATH, or pass --platform explicitly")]
    Go(String),
}

impl WorkerError {
    /// The gRPC status code the lease reports for this failure (REAPI: a missing input is
    /// FAILED_PRECONDITION so the client re-uploads it).
    pub fn lease_code(&self) -> tonic::Code {
        match self {
            WorkerError::MissingBlob { .. } => tonic::Code::FailedPrecondition,
            WorkerError::BadBlob { .. } | WorkerError::Refused(_) => tonic::Code::InvalidArgument,
            _ => tonic::Code::Internal,
        }
    }
}

/// Everything a worker needs, resolved by the caller (the CLI) as plain data.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The engine (URL and instance name); CAS calls use its timeouts and retries.
    pub server: RemoteCache,
    /// The bot id the engine shows (host name and pid by default in the CLI).
    pub bot_id: String,
    /// Platform properties advertised to the scheduler.
    pub platform: Vec<(String, String)>,
    /// Where action directories are created (each removed after its action).
    pub work_dir: PathBuf,
    /// Extra read-only binds into every sandbox, `(host, inside)`: a Go toolchain outside `/usr`.
    pub ro_binds: Vec<(PathBuf, PathBuf)>,
    /// Resource limits of every action.
    pub limits: Limits,
    /// Timeout of an action whose Action sets none.
    pub default_timeout: Duration,
    /// Deadline of one `UpdateBotSession` long poll.
    pub poll: Duration,
}

impl WorkerConfig {
    /// Defaults for `server`: no extra properties, the system temp dir, no limits, a 15 min
    /// default timeout and a 10 s poll.
    pub fn new(server: RemoteCache, bot_id: impl Into<String>) -> Self {
        WorkerConfig {
            server,
            bot_id: bot_id.into(),
            platform: Vec::new(),
            work_dir: std::env::temp_dir(),
            ro_binds: Vec::new(),
            limits: Limits::default(),
            default_timeout: kiln_sandbox::DEFAULT_TIMEOUT,
            poll: Duration::from_secs(10),
        }
    }
}

/// What the worker is doing, for the CLI to show. Every method has an empty default.
pub trait WorkerReporter: Send + Sync {
    /// A bot session was opened.
    fn session_opened(&self, _name: &str) {}
    /// The engine could not be reached or refused; the worker tries again after `retry_in`.
    fn connection_problem(&self, _error: &WorkerError, _retry_in: Duration) {}
    /// A lease was taken: `action` is the Action digest (`hash/size`).
    fn lease_started(&self, _lease: &str, _action: &str) {}
    /// A lease was finished: the command's exit code, or the error reported to the engine.
    fn lease_finished(&self, _lease: &str, _result: Result<i32, &WorkerError>) {}
}

/// A reporter that shows nothing.
pub struct Silent;

impl WorkerReporter for Silent {}
