//! Resolving a [`BaseChoice`] for one platform into a [`BaseImage`].

use std::path::Path;

use kiln_oci::{
    build_layer_cached, kiln_base_entries, BaseImage, BlobStore, CacheOutcome, ImageManifest,
    KilnBase, LayerRecipe, LayerRecords, PulledBase, PulledLayer,
};
use kiln_registry::{Client, Reference};
use kiln_types::{Digest, Platform};
use serde::Serialize;

use crate::error::{ImageError, Result};
use crate::records::reuse_pulled_blob;

/// Which base an image was built on, for labels and the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BaseInfo {
    /// `scratch`, `kiln`, or the reference it was pulled by.
    pub name: String,
    /// Digest pinning it: the platform manifest of a pulled base, the layer of the kiln base.
    pub digest: Option<Digest>,
}

pub(crate) fn kiln_base(
    store: &BlobStore,
    records: &dyn LayerRecords,
    recipe: &LayerRecipe,
    zoneinfo: Option<&Path>,
) -> Result<(BaseImage, BaseInfo, CacheOutcome)> {
    let entries = kiln_base_entries(&KilnBase {
        go_zoneinfo: zoneinfo.map(Path::to_path_buf),
        ..KilnBase::default()
    })?;
    let (layer, outcome) = build_layer_cached(store, records, &entries, recipe)?;
    let info = BaseInfo {
        name: "kiln".into(),
        digest: Some(layer.descriptor.digest),
    };
    Ok((BaseImage::Kiln(layer), info, outcome))
}

/// Pulls the platform's manifest of `reference` and its blobs into `blobs` (a cache by digest:
/// blobs already there are re-hashed and, when intact, not downloaded again).
pub(crate) async fn pull_base(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    blobs: &BlobStore,
) -> Result<(BaseImage, BaseInfo)> {
    let what = || format!("pulling base {reference} for {platform}");
    let reg = |source| ImageError::Registry {
        what: what(),
        error: source,
    };
    let pulled = client
        .get_manifest_for_platform(reference, platform)
        .await
        .map_err(reg)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&pulled.bytes).map_err(|e| ImageError::Base {
            name: reference.to_string(),
            reason: format!("its manifest for {platform} is not an image manifest ({e}); hint: use an OCI or Docker v2 image"),
        })?;
    let repo = &reference.repository;
    let fetch = |d: Digest| async move {
        let path = blobs.path(&d);
        if !reuse_pulled_blob(blobs, &d) {
            client
                .get_blob_to_file(repo, &d, &path)
                .await
                .map_err(|source| ImageError::Registry {
                    what: format!("pulling blob {d} of base {reference}"),
                    error: source,
                })?;
        }
        Ok::<_, ImageError>(path)
    };
    let config_path = fetch(manifest.config.digest).await?;
    let config_json = read(&config_path)?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for l in &manifest.layers {
        let blob = fetch(l.digest).await?;
        layers.push(PulledLayer {
            descriptor: l.clone(),
            blob,
        });
    }
    let info = BaseInfo {
        name: reference.to_string(),
        digest: Some(pulled.digest),
    };
    let base = PulledBase {
        name: reference.to_string(),
        manifest_digest: pulled.digest,
        config_json,
        layers,
    };
    Ok((BaseImage::Pulled(base), info))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| {
        ImageError::Oci(kiln_oci::OciError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })
    })
}
