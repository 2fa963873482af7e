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
//!    digest, and materialises the input root in a fresh directory (input files are kept by
//!    digest in `<work-dir>/inputs-v1`, so a file an earlier action fetched is copied and
//!    re-verified, not downloaded again);
//! 3. it runs the Command in [`kiln_sandbox`] with exactly the Command's environment, the input
//!    root writable at [`INPUT_ROOT_MOUNT`], the worker's Go toolchain (its GOROOT) read-only at
//!    [`GO_ROOT_MOUNT`] (so a Command whose `PATH` starts with `/kiln/go/bin` finds `go`), no
//!    network, the configured limits and the Action's timeout;
//! 4. it uploads the declared outputs, stdout and stderr to the CAS and completes the lease with
//!    an `ActionResult` (the engine writes the action cache and answers the client);
//! 5. when the engine cancels the lease (a client cancelled the operation) it kills the sandbox
//!    and drops the lease;
//! 6. when the engine goes away it keeps its session and retries with backoff; when the engine no
//!    longer knows the session it opens a new one.
//!
//! **Go's package cache through the engine.** A Command whose environment holds
//! `KILN_GOCACHEPROG=worker` ([`GOCACHEPROG_MARKER`]) asks for it; when the worker has it on
//! ([`WorkerConfig::go_cache`], Go 1.24 or newer) the worker serves a [`kiln_gocache::Server`]
//! for that action, with a local tier in `<work-dir>/go-packages` and
//! [`kiln_remote::GoPackageTier`] on the engine's action cache and CAS, so go's per-package
//! outputs are shared by every worker of the engine. The sandbox has no network, so the server
//! runs outside it on a unix socket bound into the sandbox at [`GOCACHE_SOCKET`]; the action's
//! `GOCACHEPROG` is `/kiln/bin/kiln gocacheprog --connect /kiln/gocache/sock`, a relay between
//! go's pipes and that socket (the kiln binary is bound read-only at [`KILN_BIN_MOUNT`]). The
//! local tier is bound read-only at its own path, because go opens the files the answers name.
//! Without the marker the environment is exactly the Command's. The session's counters go to
//! [`WorkerReporter::go_packages`].
//!
//! **Disk.** Between actions the worker keeps both caches within [`WorkerConfig::cache_max_bytes`],
//! least recently used files first (`trim`), so a long-running worker does not fill its disk.
//!
//! Calls to the engine (Bots and CAS) carry the headers and bearer token of
//! [`WorkerConfig::server`].
//!
//! CAS traffic goes through [`kiln_remote::ReapiClient`] (batch calls for small blobs, ByteStream
//! for large ones, bounded retries). Like every kiln library it prints nothing: progress goes to a
//! [`WorkerReporter`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bot;
mod exec;
mod gocache;
mod inputs;
mod platform;
mod trim;

use std::path::PathBuf;
use std::time::Duration;

pub use bot::{bots_metadata, Worker};
pub use exec::INPUT_ROOT_MOUNT;
pub use kiln_config::RemoteCache;
pub use kiln_gocache::Stats as GoPackageStats;
pub use kiln_sandbox::Limits;
pub use platform::{
    go_platform, gocacheprog_supported, GoToolchain, GO_TOOLCHAIN_KEY, GO_VERSION_KEY,
};
pub use trim::TrimReport;

/// Where the worker's Go toolchain (its GOROOT) appears in every sandbox, read-only.
pub const GO_ROOT_MOUNT: &str = "/kiln/go";

/// Where the kiln binary appears in a sandbox that uses go's package cache through the engine.
pub const KILN_BIN_MOUNT: &str = "/kiln/bin/kiln";

/// The unix socket of the action's GOCACHEPROG server, inside the sandbox.
pub const GOCACHE_SOCKET: &str = "/kiln/gocache/sock";

/// The environment variable and value by which a Command asks for go's package cache through
/// the engine. No Go tool reads it; it stays in the Command's environment.
pub const GOCACHEPROG_MARKER: (&str, &str) = ("KILN_GOCACHEPROG", "worker");

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
    /// The client cancelled the operation and the engine the lease: the sandbox was killed.
    #[error("the lease was cancelled")]
    Cancelled,
    /// A header of the engine's settings cannot be sent as gRPC metadata.
    #[error("header `{name}` cannot be sent to the engine: {reason}\nhint: header names are lowercase ASCII without spaces, values printable ASCII")]
    BadHeader {
        /// The header's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The GOCACHEPROG server of an action failed to start.
    #[error(transparent)]
    GoCache(#[from] kiln_gocache::GoCacheError),
    /// A unix socket path would be longer than the OS allows.
    #[error("the socket path {path} is too long for a unix socket ({len} bytes, at most 107)\nhint: pass a shorter --work-dir")]
    SocketPath {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
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
            WorkerError::Cancelled => tonic::Code::Cancelled,
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
    /// Extra read-only binds into every sandbox, `(host, inside)`.
    pub ro_binds: Vec<(PathBuf, PathBuf)>,
    /// The GOROOT bound read-only at [`GO_ROOT_MOUNT`] in every sandbox (the toolchain the
    /// platform properties describe); `None` binds nothing.
    pub go_root: Option<PathBuf>,
    /// Go's package cache through the engine for actions that ask ([`GOCACHEPROG_MARKER`]);
    /// `None` turns it off (a Go older than 1.24, or `--no-go-cache`).
    pub go_cache: Option<GoCacheConfig>,
    /// Resource limits of every action.
    pub limits: Limits,
    /// Timeout of an action whose Action sets none.
    pub default_timeout: Duration,
    /// Deadline of one `UpdateBotSession` long poll.
    pub poll: Duration,
    /// The most bytes the worker's caches (`inputs-v1`, `go-packages`) may hold between actions;
    /// least recently used files are removed beyond it. `None`: no limit.
    pub cache_max_bytes: Option<u64>,
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
            go_root: None,
            go_cache: None,
            limits: Limits::default(),
            default_timeout: kiln_sandbox::DEFAULT_TIMEOUT,
            poll: Duration::from_secs(10),
            cache_max_bytes: None,
        }
    }
}

/// Settings of go's package cache through the engine.
#[derive(Debug, Clone)]
pub struct GoCacheConfig {
    /// The kiln binary bound at [`KILN_BIN_MOUNT`], whose `gocacheprog --connect` relays go's
    /// GOCACHEPROG pipes to the worker (the CLI passes its own executable).
    pub kiln: PathBuf,
}

impl WorkerConfig {
    /// The local tier of go's package cache, shared by the actions of this worker.
    pub fn go_packages_dir(&self) -> PathBuf {
        self.work_dir.join("go-packages")
    }

    /// The directories [`WorkerConfig::cache_max_bytes`] bounds.
    pub fn cache_dirs(&self) -> Vec<PathBuf> {
        vec![
            inputs::InputCache::dir_in(&self.work_dir),
            self.go_packages_dir(),
        ]
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
    /// The engine cancelled a running lease and its sandbox was killed.
    fn lease_cancelled(&self, _lease: &str) {}
    /// How an action's input files came: `downloaded` from the CAS (small ones in
    /// `batch_calls` BatchReadBlobs calls), `cached` copied from the worker's input cache
    /// (`<work-dir>/inputs-v1`, by digest, verified on every use).
    fn inputs_fetched(&self, _lease: &str, _downloaded: u64, _cached: u64, _batch_calls: u64) {}
    /// What go's package cache did for an action that used it (once per action).
    fn go_packages(&self, _lease: &str, _stats: &GoPackageStats) {}
    /// The caches were trimmed to [`WorkerConfig::cache_max_bytes`] and files were removed.
    fn caches_trimmed(&self, _report: &TrimReport, _limit: u64) {}
}

/// A reporter that shows nothing.
pub struct Silent;

impl WorkerReporter for Silent {}
