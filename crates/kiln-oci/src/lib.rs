//! Deterministic OCI packaging: layers, images, indexes, OCI layouts and archives.
//!
//! kiln's flow is discover -> plan -> key -> cache -> execute -> verify -> **package** -> attest ->
//! publish -> record. This crate is the *package* step: it turns verified binaries into OCI image
//! layers and images on local disk, byte-for-byte reproducibly, without Docker and without network
//! I/O (pulling bases and pushing images is `kiln-registry`'s job; it hands pulled bases in as
//! [`PulledBase`] and pushes the exact bytes this crate stored).
//!
//! - [`build_layer`] streams [`LayerEntry`]s into a tar (headers written by hand: sorted entries,
//!   explicit parents, fixed mtime/owners, no user names), compresses it with a pinned
//!   [`Compression`] (gzip, pigz-style parallel gzip, or zstd with fixed workers; none of them
//!   depends on the machine's core count), and computes diff_id, digest and sizes in one pass
//!   into a [`BlobStore`].
//! - [`build_kiln_base`] makes the built-in minimal base (CA roots from `webpki-root-certs`,
//!   passwd/group with `nonroot` 65532, nsswitch, `/tmp` 1777) without reading the host.
//! - [`assemble_image`] and [`assemble_index`] write config, manifest and index JSON once and keep
//!   the exact bytes ([`StoredJson`]).
//! - [`OciLayout`], [`write_oci_archive`] and [`write_docker_archive`] are the outputs; the read
//!   side ([`BlobStore::read_manifest`], [`BlobStore::visit_layer`], ...) serves tests and `kiln verify`.
//! - [`layer_key`] and [`build_layer_cached`] skip repacking unchanged layers (records behind the
//!   [`LayerRecords`] seam, every reused blob re-hashed); [`size_report`] summarises sizes.
//!
//! Dependencies: this crate needs only `kiln-types`. It does not depend on `kiln-cache`, although
//! kiln keeps the layer records there: `kiln-cache` depends on `kiln-key` and through it on Go
//! discovery, none of which packaging needs. So this crate defines the seam ([`LayerRecords`],
//! keyed by [`LayerKey`]) and `kiln-image`, which sits above both, implements it over
//! `kiln_cache::Storage` in the `ImageLayers` bucket.
//!
//! ```no_run
//! use kiln_oci::*;
//! # fn main() -> Result<()> {
//! let layout = OciLayout::create("out/oci")?;
//! let recipe = LayerRecipe::default().with_mtime(0);
//! let base = build_kiln_base(layout.store(), &KilnBase::default(), &recipe)?;
//! let app = build_layer(layout.store(), &[LayerEntry::executable("/app", "dist/app")], &recipe)?;
//! let config = ImageConfig { entrypoint: vec!["/app".into()], ..ImageConfig::default() };
//! let image = assemble_image(layout.store(), &"linux/amd64".parse().unwrap(), &BaseImage::Kiln(base), &[app], &config)?;
//! layout.tag("latest", &image.manifest.descriptor())?;
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod archive;
mod base;
mod cache;
mod descriptor;
mod error;
mod image;
mod layer;
mod layout;
mod read;
mod report;
mod store;
mod tarw;
mod zoneinfo;

pub use archive::{write_docker_archive, write_oci_archive, DockerArchiveImage};
pub use base::{
    build_kiln_base, ca_bundle_pem, kiln_base_entries, BaseImage, KilnBase, PulledBase,
    PulledLayer, NONROOT_ID, OS_RELEASE,
};
pub use cache::{
    build_layer_cached, layer_key, CacheOutcome, LayerKey, LayerRecords, MemoryLayerRecords,
    LAYER_CACHE_VERSION,
};
pub use descriptor::*;
pub use error::{OciError, Result};
pub use image::{
    assemble_image, assemble_index, rfc3339, BuiltImage, Empty, ExecConfig, History, ImageConfig,
    ImageIndex, ImageManifest, OciConfig, RootFs, DEFAULT_PATH,
};
pub use layer::{build_layer, BuiltLayer, Compression, EntrySource, LayerEntry, LayerRecipe};
pub use layout::{OciLayout, INDEX_LOCK_FILE, OCI_LAYOUT_FILE};
pub use read::TarEntryInfo;
pub use report::{size_report, LayerSize, SizeReport};
pub use store::BlobStore;
pub use zoneinfo::{zoneinfo_entries, ZONEINFO_DIR};
