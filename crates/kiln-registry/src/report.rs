//! Progress reporting: the library never prints; the CLI implements [`Reporter`] to draw progress
//! or log retries.

use std::time::Duration;

use crate::error::RegistryError;
use crate::push::{BlobReport, ManifestReport};
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
