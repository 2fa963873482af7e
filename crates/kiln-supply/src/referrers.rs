//! kiln's OCI 1.1 referrers for one image: pushed once, replaced per slot, never piled up, and
//! listed in the `sha256-<hex>` fallback tag index on registries without the referrers API.
//!
//! Other tools' referrers (cosign 3 bundles, `oras attach`, ...) are never touched: kiln only
//! replaces manifests that carry its own [`KILN_ATTACHMENT_ANNOTATION`] with a slot it is
//! writing in this run.

use std::collections::{BTreeMap, BTreeSet};

use kiln_attest::{referrer_manifest, OciArtifact};
use kiln_registry::{
    referrers_fallback_index, referrers_fallback_tag, Client, DeleteOutcome, Repository,
};
use kiln_types::{Descriptor, Digest};
use serde::Serialize;

use crate::error::Result;
use crate::oci::push_artifact;

/// Annotation on every referrer manifest kiln writes; its value names the slot (the predicate
/// type, e.g. `https://slsa.dev/provenance/v1`, or the SBOM format's for a plain SBOM) and
/// the artifact type, so a later run replaces exactly its own referrer of that slot.
pub const KILN_ATTACHMENT_ANNOTATION: &str = "dev.kiln.attachment";

/// One referrer kiln wants attached: an artifact of `artifact_type` with one layer `content`.
pub(crate) struct WantedReferrer {
    /// The layer's media type and the manifest's `artifactType`.
    pub artifact_type: String,
    /// The layer bytes.
    pub content: Vec<u8>,
    /// Extra manifest annotations (e.g. `predicateType`).
    pub annotations: BTreeMap<String, String>,
    /// What kiln replaces on the next run: one referrer per slot.
    pub slot: String,
}

/// What happened to kiln's referrers of one image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReferrersReport {
    /// Whether the registry has the referrers API (else the fallback tag index was written).
    pub api: bool,
    /// The fallback tag index written or confirmed (registries without the API).
    pub fallback_tag: Option<String>,
    /// kiln's referrer manifests attached after this run, in slot order.
    pub attached: Vec<Digest>,
    /// Those that were not attached before this run.
    pub pushed: Vec<Digest>,
    /// kiln's earlier referrers of the same slots, taken out of the list.
    pub replaced: Vec<Digest>,
    /// Referrers of other tools left as they were.
    pub kept: usize,
    /// What could not be done (a refused delete, an unreadable referrers list); never fatal.
    pub notes: Vec<String>,
}

fn slot_of(d: &Descriptor) -> Option<&str> {
    d.annotations
        .get(KILN_ATTACHMENT_ANNOTATION)
        .map(String::as_str)
}

/// Attaches `wanted` to `subject` (described by `subject_desc`) as referrers, idempotently:
///
/// 1. reads the current referrers (API, or the fallback tag index);
/// 2. pushes only the manifests whose digest is not already a referrer;
/// 3. without the API, writes the fallback index: the existing entries minus kiln's old ones of
///    the slots written now, plus the new ones (other entries stay);
/// 4. deletes kiln's old manifests of those slots; a registry that refuses deletes keeps them
///    (with the API they then stay listed): said in `notes`, not an error.
pub(crate) async fn attach_referrers(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    subject_desc: &Descriptor,
    wanted: &[WantedReferrer],
) -> Result<ReferrersReport> {
    let mut report = ReferrersReport::default();
    let current = match client.referrers_index(repo, subject).await {
        Ok(c) => c,
        Err(e) => {
            // The cosign tags are written already and are what most tools read; a registry
            // whose referrers cannot be read gets none rather than a failed sign.
            report.notes.push(format!(
                "referrers not written: cannot read the referrers of {subject}: {e}"
            ));
            return Ok(report);
        }
    };
    report.api = current.api_supported;
    let present: BTreeSet<Digest> = current.descriptors.iter().map(|d| d.digest).collect();

    let mut artifacts: Vec<(OciArtifact, Descriptor)> = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut annotations = w.annotations.clone();
        annotations.insert(KILN_ATTACHMENT_ANNOTATION.to_owned(), w.slot.clone());
        let art = referrer_manifest(
            &w.artifact_type,
            &w.content,
            subject_desc.clone(),
            annotations.clone(),
        )?;
        let desc = Descriptor {
            artifact_type: Some(w.artifact_type.clone()),
            annotations,
            ..Descriptor::new(
                art.manifest_media_type.clone(),
                art.manifest_digest,
                art.manifest.len() as u64,
            )
        };
        artifacts.push((art, desc));
    }
    let wanted_digests: BTreeSet<Digest> =
        artifacts.iter().map(|(a, _)| a.manifest_digest).collect();
    let slots: BTreeSet<&str> = wanted.iter().map(|w| w.slot.as_str()).collect();

    for (art, _) in &artifacts {
        report.attached.push(art.manifest_digest);
        if !present.contains(&art.manifest_digest) {
            push_artifact(client, repo, art, None).await?;
            report.pushed.push(art.manifest_digest);
        }
    }
    let (stale, kept): (Vec<&Descriptor>, Vec<&Descriptor>) =
        current.descriptors.iter().partition(|d| {
            slot_of(d).is_some_and(|s| slots.contains(s)) && !wanted_digests.contains(&d.digest)
        });
    report.kept = kept.iter().filter(|d| slot_of(d).is_none()).count();
    report.replaced = stale.iter().map(|d| d.digest).collect();

    if !current.api_supported {
        let tag = referrers_fallback_tag(subject);
        let mut entries: Vec<Descriptor> = kept.into_iter().cloned().collect();
        entries.extend(
            artifacts
                .iter()
                .filter(|(a, _)| !present.contains(&a.manifest_digest))
                .map(|(_, d)| d.clone()),
        );
        let index = referrers_fallback_index(&entries)?;
        client
            .push_manifest(repo, &tag, kiln_registry::media::OCI_INDEX, &index)
            .await?;
        report.fallback_tag = Some(tag);
    }

    let mut refused: Vec<String> = Vec::new();
    let mut reason = String::new();
    for d in &stale {
        let why = match client.delete_manifest(repo, &d.digest).await {
            Ok(DeleteOutcome::Deleted | DeleteOutcome::NotFound) => continue,
            Ok(DeleteOutcome::Refused { status, detail }) => format!("HTTP {status}: {detail}"),
            Err(e) => e.to_string(),
        };
        refused.push(d.digest.to_string());
        if reason.is_empty() {
            reason = why;
        }
    }
    if !refused.is_empty() {
        // One note for the lot: a registry that refuses one delete refuses them all.
        let tail = if current.api_supported {
            "they stay listed as referrers beside the new ones until they are deleted"
        } else {
            "they are no longer in the fallback index, only their manifests stay stored"
        };
        report.notes.push(format!(
            "the registry refused to delete {} replaced referrer manifest(s) of kiln ({reason}): {}; {tail}",
            refused.len(),
            refused.join(", ")
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(n: u8, slot: Option<&str>) -> Descriptor {
        Descriptor {
            artifact_type: Some("application/x".into()),
            annotations: slot
                .map(|s| BTreeMap::from([(KILN_ATTACHMENT_ANNOTATION.to_owned(), s.to_owned())]))
                .unwrap_or_default(),
            ..Descriptor::new(
                kiln_registry::media::OCI_MANIFEST,
                Digest::of_bytes(&[n]),
                1,
            )
        }
    }

    #[test]
    fn slot_is_read_from_kiln_annotation_only() {
        assert_eq!(slot_of(&desc(1, Some("a"))), Some("a"));
        assert_eq!(slot_of(&desc(2, None)), None);
        let mut other = desc(3, None);
        other.annotations = BTreeMap::from([(
            "predicateType".to_owned(),
            "https://slsa.dev/provenance/v1".to_owned(),
        )]);
        assert_eq!(
            slot_of(&other),
            None,
            "a predicate type alone is not kiln's"
        );
    }
}
