//! Go's own package cache, served by kiln: a server for the `GOCACHEPROG` protocol.
//!
//! Where it sits: beside the cache stage. kiln's action cache keeps whole binaries; this crate keeps
//! what `go build` caches below them (compiled packages, test results), so a change to one shared
//! package recompiles only that package and its dependents, on any machine that can reach the
//! entries. Go starts the program named by `GOCACHEPROG` and talks to it in JSON lines over
//! stdin/stdout (the protocol is defined by `cmd/go/internal/cacheprog` in Go's source tree):
//!
//! - the program first announces `{"ID":0,"KnownCommands":["get","put","close"]}`;
//! - go sends requests (`get`, `put` followed by its body as a base64 JSON string on its own line,
//!   `close`), many at once; answers may come in any order and carry the request's `ID`;
//! - a hit or a put answers with `DiskPath`, an absolute file holding the output that must exist
//!   until `close`; `OutputID` is the sha256 of the output, so outputs are content addressed.
//!
//! Tiers: [`LocalTier`] is a directory (kiln puts it in its cache's `go-packages` bucket) with one
//! small checksummed record per Go action ID and the outputs by sha256, written atomically and
//! verified on every read. A [`RemoteTier`] (kiln-remote implements it over REAPI; [`FakeRemote`]
//! is the test double) is asked, in batches, for what misses locally; puts are uploaded in the
//! background and flushed before `close` is answered. A failing remote never fails a request: it
//! costs a miss and a counted warning ([`Stats::remote_errors`]), and after a few failures in a row
//! the session stops asking it.
//!
//! [`Server::serve`] runs one session over any reader and writer (the `kiln gocacheprog` command
//! passes stdin and stdout) and returns the session's [`Stats`]; this crate never prints.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_gocache::GoCacheError> {
//! use kiln_gocache::{LocalTier, Server};
//! let server = Server::new(LocalTier::open("/tmp/go-packages")?);
//! let stats = server.serve(tokio::io::stdin(), tokio::io::stdout()).await?;
//! eprintln!("{} gets, {} local hits", stats.gets, stats.local_hits);
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod local;
mod protocol;
mod remote;
mod server;
mod stats;

pub use local::{touch_if_stale, LocalEntry, LocalTier};
pub use protocol::{Request, Response};
pub use remote::{BoxFuture, FakeRemote, Put, RemoteEntry, RemoteTier};
pub use server::{Server, ServerOptions};
pub use stats::{Counters, Stats};

use std::fmt;
use std::path::PathBuf;

pub use kiln_types::Digest;

/// A Go action ID: the key go computes for one action (a compile, a test run) from all its inputs.
///
/// Typed apart from [`Digest`], which names content: an action ID names a computation whose
/// result is an output, and the output's digest is its `OutputID`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId([u8; 32]);

impl ActionId {
    /// The action ID with these raw bytes.
    pub fn from_raw(raw: [u8; 32]) -> Self {
        Self(raw)
    }

    /// The action ID go sent, if it has go's size (32 bytes).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw bytes.
    pub fn as_raw(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as file names use it.
    pub fn hex(&self) -> String {
        Digest::from_raw(self.0).hex()
    }
}

impl fmt::Debug for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActionId({})", self.hex())
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Why the GOCACHEPROG server or one of its tiers failed. A miss is not an error.
#[derive(Debug, thiserror::Error)]
pub enum GoCacheError {
    /// Reading or writing a file of the local tier failed.
    #[error("go package cache I/O error on {path}: {source}\nhint: check free disk space and permissions of the kiln cache (KILN_CACHE_DIR)")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Talking to go over the protocol's pipes failed (go exited, a pipe closed).
    #[error("GOCACHEPROG pipe to go failed while {doing}: {source}")]
    Pipe {
        /// What the server was doing.
        doing: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// go sent something that is not the GOCACHEPROG protocol.
    #[error("GOCACHEPROG protocol error: {message} (in `{line}`)\nhint: run this program only as GOCACHEPROG of a go command (Go 1.24 or newer)")]
    Protocol {
        /// What is wrong.
        message: String,
        /// The offending line, shortened.
        line: String,
    },
    /// A `put` whose body does not match its `OutputID` or `BodySize`: never stored.
    #[error("put of action {action}: {message}")]
    BadPut {
        /// The Go action ID.
        action: String,
        /// What does not match.
        message: String,
    },
    /// The remote tier failed (unreachable, refused, bad answer). Requests degrade to a miss.
    #[error("remote go package cache {tier}: {message}")]
    Remote {
        /// The remote tier's name.
        tier: String,
        /// What failed.
        message: String,
    },
    /// A bug in this crate (a worker task that died): reported, never a panic.
    #[error("internal error in the GOCACHEPROG server: {0}")]
    Internal(String),
}

impl GoCacheError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> GoCacheError {
        let path = path.into();
        move |source| GoCacheError::Io { path, source }
    }
}
