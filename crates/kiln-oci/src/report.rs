use kiln_types::Digest;
use serde::Serialize;

use crate::image::BuiltImage;

/// Size of one layer of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerSize {
    /// Compressed blob digest.
    pub digest: Digest,
    /// Layer media type.
    pub media_type: String,
    /// Compressed (blob) size.
    pub compressed: u64,
    /// Uncompressed tar size, when known (unknown for pulled base layers).
    pub uncompressed: Option<u64>,
    /// Whether the layer comes from the base image.
    pub from_base: bool,
}

/// Sizes of a single-platform image, for `kiln image --json` and size budgets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SizeReport {
    /// Platform (`linux/amd64`).
    pub platform: String,
    /// Size of the packaged binary.
    pub binary_size: u64,
    /// Every layer, bottom first.
    pub layers: Vec<LayerSize>,
    /// Compressed size of the base's layers.
    pub base_compressed: u64,
    /// Compressed size of all layers plus config and manifest (what a pull downloads).
    pub total_compressed: u64,
    /// Uncompressed size of all layers, when every layer's is known.
    pub total_uncompressed: Option<u64>,
}

/// Computes the size report of `image`; `binary_size` is the size of the packaged binary.
pub fn size_report(image: &BuiltImage, binary_size: u64) -> SizeReport {
    let layers: Vec<LayerSize> = image
        .layers
        .iter()
        .enumerate()
        .map(|(i, d)| LayerSize {
            digest: d.digest,
            media_type: d.media_type.clone(),
            compressed: d.size,
            uncompressed: image.uncompressed_sizes.get(i).copied().flatten(),
            from_base: i < image.base_layers,
        })
        .collect();
    let base_compressed = layers
        .iter()
        .filter(|l| l.from_base)
        .map(|l| l.compressed)
        .sum();
    let total_compressed = layers.iter().map(|l| l.compressed).sum::<u64>()
        + image.config.bytes.len() as u64
        + image.manifest.bytes.len() as u64;
    let total_uncompressed = layers.iter().map(|l| l.uncompressed).sum();
    SizeReport {
        platform: image.platform.to_string(),
        binary_size,
        layers,
        base_compressed,
        total_compressed,
        total_uncompressed,
    }
}
