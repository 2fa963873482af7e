//! Media types and the few manifest fields the client reads (everything else stays as exact bytes).

use kiln_types::Platform;
/// The one OCI descriptor and platform types (defined in kiln-types, shared with kiln-oci and
/// kiln-attest), as found in indexes and referrer lists.
pub use kiln_types::{Descriptor, OciPlatform};
use serde::Deserialize;

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

/// Exact match including the variant.
fn matches_exactly(p: &OciPlatform, want: &Platform) -> bool {
    p.os == want.os && p.architecture == want.arch && p.variant == want.variant
}

/// Match where a missing variant on either side counts as "any" (arm64 images seldom say `v8`).
fn matches_loosely(p: &OciPlatform, want: &Platform) -> bool {
    p.os == want.os
        && p.architecture == want.arch
        && (p.variant.is_none() || want.variant.is_none() || p.variant == want.variant)
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
                .is_some_and(|p| matches_exactly(p, platform))
        })
        .or_else(|| {
            with_platform().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| matches_loosely(p, platform))
            })
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kiln_types::Digest;

    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            platform: Some(OciPlatform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
            ..Descriptor::new(OCI_MANIFEST, Digest::of_bytes(&[n]), 1)
        }
    }

    /// issue 12: the exact bytes of the referrers fallback index kiln pushes, from before the
    /// descriptor moved to kiln-types (mediaType, digest, size, artifactType, annotations).
    #[test]
    fn issue_12_referrers_fallback_index_bytes_are_pinned() {
        let referrer = |n: u8, annotations: BTreeMap<String, String>| Descriptor {
            artifact_type: Some("application/vnd.dev.sigstore.bundle.v0.3+json".into()),
            annotations,
            ..Descriptor::new(OCI_MANIFEST, Digest::of_bytes(&[n]), u64::from(n))
        };
        let slot = BTreeMap::from([("dev.kiln.slot".to_owned(), "bundle".to_owned())]);
        let entries = [
            referrer(2, slot.clone()),
            referrer(1, BTreeMap::new()),
            referrer(2, slot),
        ];
        let bytes = crate::referrers::referrers_fallback_index(&entries).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), FALLBACK_INDEX);
    }

    const FALLBACK_INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a","size":1,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:dbc1b4c900ffe48d575b5da5c638040125f65db0fe3e24494b76ea986457d986","size":2,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","annotations":{"dev.kiln.slot":"bundle"}}]}"#;

    /// Index entries and referrers with and without annotations (and with an empty object, which
    /// OCI allows) all parse; a missing field is no error.
    #[test]
    fn issue_12_index_entries_parse_with_and_without_annotations() {
        let doc = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d","size":1,
             "platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a","size":2,
             "artifactType":"application/spdx+json","annotations":{"dev.kiln.slot":"sbom"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:dbc1b4c900ffe48d575b5da5c638040125f65db0fe3e24494b76ea986457d986","size":3,
             "annotations":{}}
        ]}"#;
        let index: IndexDoc = serde_json::from_slice(doc).unwrap();
        let [plain, referrer, empty] = &index.manifests[..] else {
            panic!("three entries expected: {:?}", index.manifests)
        };
        assert_eq!(
            plain.platform.as_ref().map(|p| p.spelled()).as_deref(),
            Some("linux/arm64/v8")
        );
        assert!(plain.annotations.is_empty() && plain.artifact_type.is_none());
        assert_eq!(
            referrer
                .annotations
                .get("dev.kiln.slot")
                .map(String::as_str),
            Some("sbom")
        );
        assert_eq!(
            referrer.artifact_type.as_deref(),
            Some("application/spdx+json")
        );
        assert!(empty.annotations.is_empty());
        assert_eq!(empty.size, 3);
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
