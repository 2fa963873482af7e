//! Media types and the few manifest fields the client reads (everything else stays as exact bytes).

use std::collections::BTreeMap;

use kiln_types::{Digest, Platform};
use serde::{Deserialize, Serialize};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (schema 2 multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest media type the client accepts, as sent in `Accept`.
pub const ACCEPTED_MANIFESTS: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Whether a media type is an index / manifest list (points at other manifests).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether a media type is a single-image manifest.
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// A content descriptor as found in indexes and referrer lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the target.
    pub media_type: String,
    /// Digest of the target's bytes.
    pub digest: Digest,
    /// Size of the target in bytes.
    pub size: u64,
    /// Artifact type (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
}

/// The `platform` object of an index entry, in OCI's field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub architecture: String,
    /// Architecture variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl DescriptorPlatform {
    /// `os/arch[/variant]` for messages.
    pub fn spelled(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Exact match including the variant.
    fn matches_exactly(&self, p: &Platform) -> bool {
        self.os == p.os && self.architecture == p.arch && self.variant == p.variant
    }

    /// Match where a missing variant on either side counts as "any" (arm64 images seldom say `v8`).
    fn matches_loosely(&self, p: &Platform) -> bool {
        self.os == p.os
            && self.architecture == p.arch
            && (self.variant.is_none() || p.variant.is_none() || self.variant == p.variant)
    }
}

/// The parts of an index / manifest list the client reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexDoc {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// The `mediaType` field of any manifest, to tell indexes from images when the header is vague.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MediaTypeDoc {
    #[serde(default)]
    pub media_type: Option<String>,
}

/// Picks the index entry for `platform`: an exact match first, then one that differs only by a missing variant.
pub fn select_platform<'a>(
    entries: &'a [Descriptor],
    platform: &Platform,
) -> Option<&'a Descriptor> {
    let with_platform = || entries.iter().filter(|d| d.platform.is_some());
    with_platform()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.matches_exactly(platform))
        })
        .or_else(|| {
            with_platform().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.matches_loosely(platform))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of_bytes(&[n]),
            size: 1,
            artifact_type: None,
            annotations: None,
            platform: Some(DescriptorPlatform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    #[test]
    fn platform_selection_prefers_exact_variant() {
        let entries = vec![
            entry("linux", "amd64", None, 1),
            entry("linux", "arm", Some("v6"), 2),
            entry("linux", "arm", Some("v7"), 3),
            entry("linux", "arm64", Some("v8"), 4),
        ];
        let pick = |s: &str| select_platform(&entries, &s.parse().unwrap()).map(|d| d.digest);
        assert_eq!(pick("linux/amd64"), Some(Digest::of_bytes(&[1])));
        assert_eq!(pick("linux/arm/v7"), Some(Digest::of_bytes(&[3])));
        assert_eq!(pick("linux/arm64"), Some(Digest::of_bytes(&[4])));
        assert_eq!(pick("windows/amd64"), None);
        assert_eq!(pick("linux/arm/v5"), None);
    }
}
