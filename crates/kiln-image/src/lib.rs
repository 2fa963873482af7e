//! The *package* stage of kiln: verified binaries from a build report become OCI images.
//!
//! kiln's flow is discover -> plan -> key -> cache -> execute -> verify -> **package** -> attest ->
//! **publish** -> record. `kiln-build` hands over a [`kiln_build::BuildReport`]; this crate turns
//! each service's binaries (one per platform) into images with `kiln-oci` (deterministic layers,
//! images, indexes, OCI layout, archives) and moves them with `kiln-registry` (pulling bases,
//! pushing results). The CLI (`kiln image`) builds an [`ImageRequest`] from kiln.toml and flags,
//! then calls [`Packager::package`], [`Packager::write_tarball`] and [`Packager::push`].
//!
//! - Layout of an image: the base (`scratch`, the built-in `kiln` base, or a registry image pulled
//!   per platform), then one layer with the binary at `/usr/local/bin/<service>` (root-owned,
//!   0755; see [`BINARY_DIR`]), then, when a profile declares data files, one layer with them.
//! - Skip work: layers are keyed by binary digest, files, modes and recipe ([`kiln_oci::layer_key`],
//!   a [`kiln_oci::LayerKey`]) and recorded in kiln's cache, bucket
//!   [`kiln_cache::CacheBucket::ImageLayers`]; an unchanged layer is not repacked, once its blob in
//!   the layout re-hashes to the recorded digest (a corrupted blob is repacked). Pulled base blobs
//!   are cached by digest in [`kiln_cache::CacheBucket::PulledBlobs`] and re-hashed before reuse.
//!   So `kiln cache stats|prune|clear` see both. Pushes HEAD every blob first, so a re-push
//!   uploads nothing.
//! - Cross-repository mounts: where blobs live in registries (pulled bases, pushed images) is
//!   recorded in [`kiln_cache::CacheBucket::BlobLocations`]; a blob another repository of the
//!   target's registry holds is mounted from it instead of uploaded, and so is a blob an earlier
//!   image of the same push sends to the same registry.
//! - Dependencies: this crate wires `kiln-oci` to `kiln-cache` (`records.rs`): `kiln-oci` only
//!   defines the [`kiln_oci::LayerRecords`] seam, so the OCI library does not pull in kiln's key
//!   and discovery crates that `kiln-cache` depends on.
//! - Reproducible: mtimes and `created` come from `SOURCE_DATE_EPOCH` (0 when unset), so two
//!   checkouts of one commit produce the same manifest and index digests.
//!
//! The library never prints: progress goes through [`Reporter`] (and `kiln_registry::Reporter`
//! for registry events), results are serialisable reports.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod base;
mod error;
mod labels;
mod locations;
mod output;
mod package;
mod ports;
mod records;
mod request;

pub use base::BaseInfo;
pub use error::{ImageError, Result};
pub use labels::{standard_labels, VcsInfo};
pub use output::{push_targets, push_targets_named, PushResult, PushTarget, TarballFormat};
pub use package::{
    BinaryInfo, NoReporter, PackSession, PackageReport, Packager, PackagerOptions, PlatformImage,
    Reporter, ServiceOutput,
};
pub use ports::low_port_warning;
pub use request::{
    binaries_from_report, parse_compression, sanitize_tag, BaseChoice, DataFile, ImageRequest,
    PlatformBinary, ServiceImage, BINARY_DIR,
};
