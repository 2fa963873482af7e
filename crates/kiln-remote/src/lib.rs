//! Remote stores and remote execution, on top of the fourth and fifth stages of kiln's flow:
//! discover -> plan -> key -> **cache** -> **execute** -> ...
//!
//! `kiln-cache` defines the [`kiln_cache::Storage`] trait and keeps everything on one machine. This
//! crate shares it between machines through the Bazel Remote Execution API v2 (REAPI), which
//! existing servers speak (bazel-remote, BuildGrid, ...):
//!
//! - [`ReapiClient`]: an async client for Capabilities, ActionCache, ContentAddressableStorage
//!   (FindMissingBlobs, BatchReadBlobs, BatchUpdateBlobs) and ByteStream (large blobs in chunks:
//!   Go binaries exceed gRPC's 4 MiB message limit), with timeouts and bounded retries;
//! - [`RemoteStore`]: [`kiln_cache::Storage`] over that client, with a circuit breaker so a dead
//!   remote costs one warning, not one timeout per target;
//! - [`LayeredStore`]: the local store first, then the remote; a remote hit is copied to the local
//!   store, results are written to both (never to the remote when it is `read_only`);
//! - [`GoPackageTier`]: go's own package cache on the same server, the remote tier of
//!   `kiln gocacheprog` ([`kiln_gocache::RemoteTier`]), so a change to one shared package
//!   recompiles only that package and its dependents on every machine;
//! - [`RemoteExecutor`]: kiln-exec's [`kiln_exec::Executor`] on a REAPI engine (`[execute]
//!   remote`): each `go build` becomes an Action over exactly the files its key hashed, run by a
//!   worker with the same Go ([`platform`]), its outputs verified on the way back; what cannot run
//!   elsewhere, or everything once the engine failed, runs on this machine.
//!
//! A kiln action is keyed remotely by a real REAPI Action digest ([`RemoteAction`]): the sha256 of
//! a deterministic `Action` whose `Command` names kiln's [`kiln_key::ActionKey`], so the same
//! entries could later be executed remotely. Every blob read from a remote is verified against its
//! digest; a bad one is a miss and a warning.
//!
//! Like every kiln library, this crate reads no environment variable and prints nothing: the CLI
//! resolves the URL, headers and token ([`RemoteCache`]) and shows [`kiln_cache::CacheTraffic`].
//!
//! ```no_run
//! use kiln_cache::{LocalStore, Storage};
//! use kiln_remote::{LayeredStore, RemoteCache, RemoteStore};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let remote = RemoteStore::open(RemoteCache::new("grpc://127.0.0.1:9092")?)?;
//! let store = LayeredStore::new(LocalStore::open_default()?, remote);
//! println!("{}", store.name());
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod action;
mod client;
mod config;
mod execute;
mod gocache;
mod layered;
pub mod platform;
mod store;

pub use action::RemoteAction;
pub use client::{Capabilities, Fetched, ReapiClient};
pub use execute::{cancel_running, RemoteExecutor, EXEC_LAYOUT_VERSION};
pub use gocache::GoPackageTier;
pub use kiln_config::RemoteCache;
pub use layered::LayeredStore;
pub use store::RemoteStore;

use std::path::PathBuf;
use std::time::Duration;

/// Why a remote cache operation failed (a miss is not an error).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The remote URL cannot be used.
    #[error("invalid remote cache URL `{url}`: {reason}\nhint: write grpc://HOST:PORT (plain) or grpcs://HOST:PORT (TLS)")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value cannot be sent as gRPC metadata.
    #[error("remote cache header `{name}` cannot be sent: {reason}\nhint: header names are lowercase ASCII letters, digits, `-`, `_` and `.`; values are printable ASCII")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration could not be set up.
    #[error("cannot set up TLS for {url}: {message}")]
    Tls {
        /// The remote.
        url: String,
        /// The TLS library's message.
        message: String,
    },
    /// A call failed with a gRPC status (after retries, when the status is worth a retry).
    #[error("{call} on {url} failed: {code:?}: {message}")]
    Status {
        /// The remote.
        url: String,
        /// The RPC.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// A call did not finish in time.
    #[error("{call} on {url} timed out after {after:?}")]
    Timeout {
        /// The remote.
        url: String,
        /// The RPC.
        call: &'static str,
        /// The time limit.
        after: Duration,
    },
    /// The server cannot hold kiln's entries.
    #[error("remote cache {url} cannot be used: {reason}")]
    Unsupported {
        /// The remote.
        url: String,
        /// Why (e.g. no SHA256 digest function).
        reason: String,
    },
    /// The server answered with something that breaks the protocol.
    #[error("remote cache {url} sent a bad answer to {call}: {reason}")]
    Protocol {
        /// The remote.
        url: String,
        /// The RPC.
        call: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a local file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The runtime behind the sync [`kiln_cache::Storage`] API is gone or could not start.
    #[error("internal error: the remote cache runtime: {0}")]
    Runtime(String),
}

impl RemoteError {
    /// Whether trying the same call again may succeed (the server or the network had a passing
    /// problem), as opposed to an answer that will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Status { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ),
            _ => false,
        }
    }
}
