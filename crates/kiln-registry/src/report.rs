//! What the client tells its caller: the [`Reporter`] events while it works and the reports it
//! returns. The library never prints; the CLI implements [`Reporter`] to draw progress or log
//! retries.
//!
//! Plain data under every layer of the client: `retry` reports retries through it, `push` fills
//! the reports. It imports none of them.

use std::time::Duration;

use kiln_types::Digest;
use serde::Serialize;

use crate::error::RegistryError;
use crate::reference::Repository;

/// Receives events while the client works. Every method has an empty default, so an implementation
/// overrides only what it shows. Called from async tasks: keep implementations quick.
pub trait Reporter: Send + Sync {
    /// A blob of a push finished (skipped, mounted or uploaded).
    fn blob_done(&self, _repo: &Repository, _blob: &BlobReport) {}
    /// A manifest push finished (pushed or already present).
    fn manifest_done(&self, _repo: &Repository, _manifest: &ManifestReport) {}
    /// A transient failure; the operation is tried again after `delay`.
    fn retrying(&self, _what: &str, _attempt: u32, _delay: Duration, _error: &RegistryError) {}
}

/// The reporter used when the caller gives none.
pub(crate) struct Silent;

impl Reporter for Silent {}

/// What happened to one blob during a push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BlobOutcome {
    /// The registry already had it, nothing sent: one HEAD request, or none when the image's root
    /// manifest was already in place under every reference (a registry accepts a manifest only
    /// once everything it references is present).
    Skipped,
    /// Mounted from another repository on the same registry: nothing sent.
    Mounted {
        /// The repository it was mounted from.
        from: String,
    },
    /// Uploaded.
    Uploaded {
        /// Content bytes sent in the successful attempt.
        bytes_sent: u64,
        /// Upload sessions used (more than 1 after a failure the session did not survive).
        attempts: u32,
        /// Times a chunked upload went on after a failed `PATCH` from the offset the registry
        /// reported, in the same session, instead of starting again at byte 0.
        resumed: u32,
        /// Content bytes put on the wire for this blob over every session and resume, including
        /// those of requests that failed: the blob's size when nothing failed.
        bytes_transferred: u64,
    },
}

/// One blob's line in a [`PushReport`].
#[derive(Clone, Debug, Serialize)]
pub struct BlobReport {
    /// Blob digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: BlobOutcome,
}

/// One manifest push (by digest or tag).
#[derive(Clone, Debug, Serialize)]
pub struct ManifestReport {
    /// Manifest digest.
    pub digest: Digest,
    /// Tag or digest it was pushed under.
    pub reference: String,
    /// False when the registry already had this digest under this reference.
    pub pushed: bool,
}

/// The result of [`Client::push_image`](crate::Client::push_image).
#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    /// `registry/name`.
    pub repository: String,
    /// Digest of the root manifest, if one was pushed.
    pub digest: Option<Digest>,
    /// Blob outcomes in input order.
    pub blobs: Vec<BlobReport>,
    /// Manifest outcomes, children first.
    pub manifests: Vec<ManifestReport>,
    /// Blob content bytes uploaded.
    pub bytes_sent: u64,
}

impl PushReport {
    fn count(&self, f: impl Fn(&BlobOutcome) -> bool) -> usize {
        self.blobs.iter().filter(|b| f(&b.outcome)).count()
    }
    /// Blobs the registry already had.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, BlobOutcome::Skipped))
    }
    /// Blobs mounted from another repository.
    pub fn mounted(&self) -> usize {
        self.count(|o| matches!(o, BlobOutcome::Mounted { .. }))
    }
    /// Blobs uploaded.
    pub fn uploaded(&self) -> usize {
        self.count(|o| matches!(o, BlobOutcome::Uploaded { .. }))
    }
    /// Manifests actually PUT (not already present).
    pub fn manifests_pushed(&self) -> usize {
        self.manifests.iter().filter(|m| m.pushed).count()
    }
}
