//! OCI distribution API client: push, pull, referrers, registry auth.
//!
//! kiln's flow is discover -> plan -> key -> cache -> execute -> verify -> package -> attest ->
//! **publish** -> record. This crate is *publish* (and the pull side that fetches base images):
//! `kiln-oci` produces blobs on disk and manifests as exact bytes, each addressed by a
//! [`kiln_types::Digest`]; this crate moves them to and from registries without ever re-serialising
//! a manifest, so the digest kiln computed is the digest the registry serves.
//!
//! - [`Reference`] parses `host[:port]/repo[:tag][@sha256:...]` with Docker Hub defaults.
//! - [`Client`] holds one HTTP client (keep-alive), credentials (explicit, `config.json`,
//!   credential helpers) and a Bearer token cache per scope; it retries 5xx, 429 and dropped
//!   connections with exponential backoff and jitter.
//! - Push: [`Client::push_image`] HEADs every blob concurrently, mounts across repositories,
//!   uploads monolithically or in chunks, and skips manifest PUTs the registry already has, so a
//!   no-op re-push is only HEAD requests. The [`PushReport`] says what was skipped, mounted, sent.
//! - Pull: [`Client::get_manifest`], [`Client::get_manifest_for_platform`],
//!   [`Client::get_blob_to_file`], all digest-verified, with an optional local cache.
//! - Referrers: [`Client::get_referrers`] and [`Client::list_tags`]; for verifiers,
//!   [`Client::discover_referrers`] (API or fallback tag index, saying which); for writers that
//!   keep the OCI 1.1 fallback tag index on registries without the API,
//!   [`Client::referrers_index`], [`referrers_fallback_index`] and [`Client::delete_manifest`].
//!
//! The API is async (tokio). A synchronous caller creates a runtime and `block_on`s:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kiln_registry::{Client, ClientConfig, Reference};
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let client = Client::new(ClientConfig::default())?;
//! let r: Reference = "127.0.0.1:5000/app:v1".parse()?;
//! let manifest = rt.block_on(client.get_manifest(&r))?;
//! assert_eq!(manifest.digest, kiln_types::Digest::of_bytes(&manifest.bytes));
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod auth;
mod client;
mod discover;
mod error;
pub mod media;
mod pull;
mod push;
mod reference;
mod referrers;
mod report;

pub use auth::{credential_from_docker_config, Credential};
pub use client::{Client, ClientConfig, RetryPolicy};
pub use discover::{Discovered, ReferrersSource};
pub use error::{RegistryError, Result};
pub use pull::PulledManifest;
pub use push::{
    BlobOutcome, BlobReport, BlobUpload, DeleteOutcome, ImageUpload, ManifestReport,
    ManifestUpload, PushReport,
};
pub use reference::{Reference, Repository, DOCKER_HUB, DOCKER_HUB_API_HOST};
pub use referrers::{referrers_fallback_index, referrers_fallback_tag, Referrers, ReferrersIndex};
pub use report::Reporter;
