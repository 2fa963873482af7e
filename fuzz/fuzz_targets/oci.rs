//! Registry and layout JSON -> the types kiln reads them into: kiln-oci's manifest, index, config
//! and descriptor documents, kiln-registry's index entries with platform selection, and the image
//! references, digests and platforms those documents and kiln.toml spell. None of it may panic, and
//! what kiln serialises from a parsed document must parse again.

#![no_main]

use kiln_oci::{Descriptor, ImageIndex, ImageManifest, OciConfig};
use kiln_registry::media::{self, select_platform};
use kiln_registry::{PulledManifest, Reference};
use kiln_types::{Digest, Platform};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses `data` as `T`; when it parses, kiln's serialisation of it must parse back.
fn reparses<T: DeserializeOwned + Serialize>(data: &[u8]) {
    if let Ok(doc) = serde_json::from_slice::<T>(data) {
        let bytes = serde_json::to_vec(&doc).expect("serialise a parsed document");
        if let Err(e) = serde_json::from_slice::<T>(&bytes) {
            panic!(
                "{} does not parse back: {e}\n{}",
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    reparses::<ImageManifest>(data);
    reparses::<ImageIndex>(data);
    reparses::<OciConfig>(data);
    reparses::<Descriptor>(data);

    let platforms: [Platform; 3] = [
        "linux/amd64".parse().expect("platform"),
        "linux/arm/v7".parse().expect("platform"),
        "linux/arm64".parse().expect("platform"),
    ];
    for media_type in [
        media::OCI_INDEX,
        media::DOCKER_MANIFEST_LIST,
        media::OCI_MANIFEST,
    ] {
        let pulled = PulledManifest {
            media_type: media_type.to_string(),
            digest: Digest::of_bytes(data),
            bytes: data.to_vec(),
        };
        if let Ok(entries) = pulled.index_entries() {
            for p in &platforms {
                let _ = select_platform(&entries, p);
            }
            for e in &entries {
                let _ = e.platform.as_ref().map(kiln_types::OciPlatform::spelled);
            }
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<Reference>() {
        let _ = r.manifest_reference();
        let _ = r.repository.api_host();
        // The canonical spelling kiln prints and stores must name the same image.
        let again: Reference = r
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{r} does not parse back: {e}"));
        assert_eq!(again, r, "reference changes when spelled and parsed again");
    }
    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d));
    }
    if let Ok(p) = text.parse::<Platform>() {
        let again: Platform = p.to_string().parse().expect("platform parses back");
        assert_eq!(again, p);
    }
});
