//! The OCI content descriptor: what a manifest, an index or a referrers list says about a blob.
//!
//! One type for every crate (packaging writes it, the registry client reads it, attestation
//! writes it into signature manifests), so a field parsed in one place is never silently lost in
//! another. The derived field order is the one kiln's images have always had (`mediaType`,
//! `digest`, `size`, ...): image digests depend on these bytes. cosign's signature manifests
//! order `size` before `digest`; kiln-attest writes that order itself at its call site.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Digest, Platform};

/// The `platform` object of an index entry, in OCI's field names (`os.version` and
/// `os.features` are not kept: kiln neither writes nor selects by them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciPlatform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// Architecture variant, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl OciPlatform {
    /// `os/arch[/variant]` for messages.
    pub fn spelled(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

impl From<&Platform> for OciPlatform {
    fn from(p: &Platform) -> Self {
        Self {
            architecture: p.arch.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
        }
    }
}

/// An OCI content descriptor. Optional fields are left out of the JSON when absent or empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the content.
    pub digest: Digest,
    /// Size of the content in bytes.
    pub size: u64,
    /// Artifact type of the referenced manifest (referrers listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<OciPlatform>,
    /// Annotations, sorted so serialisation is stable. Absent, `null` and `{}` all parse as
    /// empty and an empty map is not written, as Go's `omitempty` writers do.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The content itself, standard base64 (OCI 1.1's embedded data, e.g. the empty config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// A descriptor with only media type, digest and size.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
            data: None,
        }
    }

    /// The descriptor of `bytes` with `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::of_bytes(bytes), bytes.len() as u64)
    }
}

/// Go writers without `omitempty` spell an empty map `null`; it means the same as no map.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_fields_are_written_in_kilns_order_and_only_when_set() {
        let mut d = Descriptor::of("application/x", b"x");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!(
                r#"{{"mediaType":"application/x","digest":"{}","size":1}}"#,
                Digest::of_bytes(b"x")
            )
        );
        d.data = Some("eA==".into());
        d.annotations.insert("k".into(), "v".into());
        d.platform = Some(OciPlatform::from(
            &"linux/arm/v7".parse::<Platform>().unwrap(),
        ));
        d.artifact_type = Some("application/y".into());
        let text = serde_json::to_string(&d).unwrap();
        let at = |key: &str| text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
        let order = [
            "\"mediaType\"",
            "\"digest\"",
            "\"size\"",
            "\"artifactType\"",
            "\"platform\"",
            "\"annotations\"",
            "\"data\"",
        ]
        .map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains(r#""platform":{"architecture":"arm","os":"linux","variant":"v7"}"#));
        let back: Descriptor = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d, "every field survives a round trip");
    }

    #[test]
    fn issue_12_absent_null_and_empty_annotations_parse_as_empty() {
        let digest = Digest::of_bytes(b"x");
        for extra in ["", r#","annotations":null"#, r#","annotations":{}"#] {
            let json = format!(r#"{{"mediaType":"a","digest":"{digest}","size":1{extra}}}"#);
            let d: Descriptor = serde_json::from_str(&json).unwrap();
            assert!(d.annotations.is_empty(), "{json}");
            assert!(!serde_json::to_string(&d).unwrap().contains("annotations"));
        }
    }

    #[test]
    fn platform_is_spelled_os_first() {
        let p = OciPlatform::from(&"linux/arm/v6".parse::<Platform>().unwrap());
        assert_eq!(p.spelled(), "linux/arm/v6");
        assert_eq!(OciPlatform { variant: None, ..p }.spelled(), "linux/arm");
    }
}
