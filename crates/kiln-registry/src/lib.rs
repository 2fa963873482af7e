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
//!   uploads monolithically or in chunks (a cut chunked upload goes on from the offset the
//!   registry reports), at most `concurrency` uploads per registry, and skips manifest PUTs the
//!   registry already has, so a no-op re-push is only HEAD requests. The [`PushReport`] says what was skipped, mounted, sent.
//! - Pull: [`Client::get_manifest`], [`Client::get_manifest_for_platform`],
//!   [`Client::get_blob_to_file`], all digest-verified, with an optional local cache.
//! - Referrers: [`Client::get_referrers`] and [`Client::list_tags`]; for verifiers,
//!   [`Client::discover_referrers`] (API or fallback tag index, saying which); for writers that
//!   keep the OCI 1.1 fallback tag index on registries without the API,
//!   [`Client::referrers_index`], [`referrers_fallback_index`] and [`Client::delete_manifest`].
//!
//! Inside, the client is layered, each module importing only from those below it (a unit test
//! checks): `report` (the data and events the caller sees) -> `transport` (reqwest clients, TLS,
//! plain-HTTP registries, user agent) -> `retry` ([`RetryPolicy`], backoff, which failures are
//! transient) -> `auth` (credentials, challenges, token cache) -> `client` (one request through
//! all of them) -> the protocol modules `push`, `pull`, `referrers`, `discover`.
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
mod retry;
mod transport;

pub use auth::{credential_from_docker_config, Credential};
pub use client::{Client, ClientConfig};
pub use discover::{Discovered, ReferrersSource};
pub use error::{RegistryError, Result};
pub use pull::PulledManifest;
pub use push::{BlobUpload, DeleteOutcome, ImageUpload, ManifestUpload};
pub use reference::{Reference, Repository, DOCKER_HUB, DOCKER_HUB_API_HOST};
pub use referrers::{referrers_fallback_index, referrers_fallback_tag, Referrers, ReferrersIndex};
pub use report::{BlobOutcome, BlobReport, ManifestReport, PushReport, Reporter};
pub use retry::RetryPolicy;

#[cfg(test)]
mod layering {
    /// The client's layers, bottom first, then the protocol modules on top.
    const LAYERS: [(&str, &str); 9] = [
        ("report", include_str!("report.rs")),
        ("transport", include_str!("transport.rs")),
        ("retry", include_str!("retry.rs")),
        ("auth", include_str!("auth.rs")),
        ("client", include_str!("client.rs")),
        ("push", include_str!("push.rs")),
        ("pull", include_str!("pull.rs")),
        ("referrers", include_str!("referrers.rs")),
        ("discover", include_str!("discover.rs")),
    ];
    /// Where the protocol modules start: they may use each other; no layer below uses them.
    const PROTOCOLS: usize = 5;

    #[test]
    fn lower_layers_do_not_import_higher_ones() {
        for (i, (name, src)) in LAYERS.iter().enumerate().take(PROTOCOLS) {
            let code: Vec<&str> = src
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            for (higher, _) in &LAYERS[i + 1..] {
                for l in &code {
                    for pat in ["::", ";", ",", "}"] {
                        assert!(
                            !l.contains(&format!("crate::{higher}{pat}")),
                            "{name}.rs uses the higher layer {higher}: {l}"
                        );
                    }
                }
            }
        }
    }
}
