//! Everything attached to an image that could be a signature or an attestation, in both
//! layouts cosign has used: the legacy `.sig`/`.att` tags (cosign 2, cosign 3 with
//! `--new-bundle-format=false`, kiln) and OCI 1.1 referrers (kiln's DSSE referrers, cosign 3's
//! Sigstore bundles), read through the referrers API or the fallback tag index. Each item is
//! verified with the key; what verified and why the rest did not is kept, with where it was
//! found, so the checks can say exactly what was searched.

use kiln_attest::{
    verify_envelope, verify_signature, verify_simple_signing, AttestError, Bundle, BundleContent,
    Envelope, PublicKey, SignedLayer, COSIGN_SIGN_PREDICATE_TYPE, DSSE_ENVELOPE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE, SIGNATURE_ANNOTATION, SIGSTORE_BUNDLE_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
};
use kiln_registry::{Client, Discovered, Reference, RegistryError, Repository};
use kiln_types::Digest;
use serde::Deserialize;

use crate::error::Result;
use crate::oci::{fetch_blob, read_tagged};

/// A cosign tag and how many layers it had (`None`: the tag does not exist).
pub(super) struct TagSeen {
    pub tag: String,
    pub layers: Option<usize>,
}

impl TagSeen {
    fn describe(&self) -> String {
        match self.layers {
            None => format!("tag {} absent", self.tag),
            Some(n) => format!("tag {} ({n} layer(s))", self.tag),
        }
    }
}

/// What the referrers lookup gave.
pub(super) enum ReferrersSeen {
    Listed {
        discovered: Discovered,
        /// Referrer manifests holding a Sigstore bundle.
        bundles: usize,
        /// Referrer manifests holding a DSSE envelope (kiln's layout).
        envelopes: usize,
    },
    Failed(String),
}

/// A signature or attestation that verified with the key and names the image.
pub(super) struct Verified {
    /// Predicate type (attestations) or `signature`.
    pub predicate_type: String,
    /// Where it was found, e.g. `tag sha256-….att` or `bundle referrer sha256:0123abcd…`.
    pub source: String,
}

/// Everything found for one image digest.
pub(super) struct Evidence {
    /// Short id of the key (hex SHA-256 of its SPKI DER, 16 digits).
    pub key_id: String,
    pub sig_tag: TagSeen,
    pub att_tag: TagSeen,
    /// cosign's unsigned `.sbom` attachment: reported, never accepted as an SBOM attestation.
    pub sbom_tag: TagSeen,
    pub referrers: ReferrersSeen,
    pub signatures: Vec<Verified>,
    pub sig_problems: Vec<String>,
    pub attestations: Vec<Verified>,
    /// Attestations that did not verify: (the predicate type they claim, if readable; why).
    pub att_problems: Vec<(Option<String>, String)>,
}

impl Evidence {
    /// The referrers part of "what was searched", e.g. `2 referrer(s) (1 Sigstore bundle(s), 0
    /// DSSE envelope(s)) found via the referrers API, none a signature bundle for this key`.
    pub(super) fn referrers_summary(&self, none_what: &str) -> String {
        match &self.referrers {
            ReferrersSeen::Failed(e) => format!("referrers lookup failed: {e}"),
            ReferrersSeen::Listed {
                discovered,
                bundles,
                envelopes,
            } => format!(
                "{} referrer(s) ({bundles} Sigstore bundle(s), {envelopes} DSSE envelope(s)) found via {}, none {none_what} for this key",
                discovered.descriptors.len(),
                discovered.searched()
            ),
        }
    }

    /// Whether any attestation-like thing exists at all (tag or referrers).
    pub(super) fn any_attestation_found(&self) -> bool {
        self.att_tag.layers.is_some()
            || matches!(&self.referrers, ReferrersSeen::Listed { bundles, envelopes, .. }
                if bundles + envelopes > 0)
    }

    pub(super) fn sig_tag_summary(&self) -> String {
        self.sig_tag.describe()
    }

    pub(super) fn att_tag_summary(&self) -> String {
        self.att_tag.describe()
    }

    /// A note on an unsigned `.sbom` attachment, when there is one.
    pub(super) fn unsigned_sbom_note(&self) -> Option<String> {
        self.sbom_tag.layers.map(|n| {
            format!(
                "tag {} holds {n} unsigned SBOM layer(s), which do not count: only SBOM attestations signed by the key do",
                self.sbom_tag.tag
            )
        })
    }
}

#[derive(Deserialize)]
struct LayerDesc {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: Digest,
}

#[derive(Deserialize)]
struct ManifestLayers {
    #[serde(default)]
    layers: Vec<LayerDesc>,
}

/// Reads and verifies everything attached to `digest` (whose manifest bytes are `manifest`).
pub(super) async fn collect(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    manifest: &[u8],
    key: &PublicKey,
) -> Result<Evidence> {
    let key_id = key
        .key_id()
        .map(|id| format!("sha256:{}", &id[..16]))
        .unwrap_or_else(|_| "?".into());
    let mut ev = Evidence {
        key_id,
        sig_tag: TagSeen {
            tag: kiln_attest::cosign_tag(digest, "sig"),
            layers: None,
        },
        att_tag: TagSeen {
            tag: kiln_attest::cosign_tag(digest, "att"),
            layers: None,
        },
        sbom_tag: TagSeen {
            tag: kiln_attest::cosign_tag(digest, "sbom"),
            layers: None,
        },
        referrers: ReferrersSeen::Failed(String::new()),
        signatures: Vec::new(),
        sig_problems: Vec::new(),
        attestations: Vec::new(),
        att_problems: Vec::new(),
    };

    if let Some(image) = read_tagged(client, repo, &ev.sig_tag.tag).await? {
        ev.sig_tag.layers = Some(image.layers.len());
        for layer in &image.layers {
            match verify_sig_layer(layer, key, digest) {
                Ok(reference) => ev.signatures.push(Verified {
                    predicate_type: format!("simple signing ({reference})"),
                    source: format!("tag {}", ev.sig_tag.tag),
                }),
                Err(e) => ev.sig_problems.push(format!("tag {}: {e}", ev.sig_tag.tag)),
            }
        }
    }
    if let Some(image) = read_tagged(client, repo, &ev.att_tag.tag).await? {
        ev.att_tag.layers = Some(image.layers.len());
        for layer in image
            .layers
            .iter()
            .filter(|l| l.media_type == DSSE_ENVELOPE_MEDIA_TYPE)
        {
            match verify_statement(&layer.bytes, key, digest) {
                Ok(t) => ev.attestations.push(Verified {
                    predicate_type: t,
                    source: format!("tag {}", ev.att_tag.tag),
                }),
                Err(e) => ev.att_problems.push((
                    envelope_predicate_type(&layer.bytes),
                    format!("tag {}: {e}", ev.att_tag.tag),
                )),
            }
        }
    }

    // Only the layer count: the SBOM bytes themselves are unsigned and not needed.
    let sbom_ref = Reference::by_tag(repo.clone(), &ev.sbom_tag.tag)?;
    match client.get_manifest(&sbom_ref).await {
        Ok(m) => {
            ev.sbom_tag.layers = Some(
                serde_json::from_slice::<ManifestLayers>(&m.bytes)
                    .map(|m| m.layers.len())
                    .unwrap_or(0),
            );
        }
        Err(RegistryError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }

    // The cosign tags above stand on their own; a registry that refuses the referrers lookup
    // must not fail the whole verification, only be reported.
    let discovered = match client.discover_referrers(repo, digest).await {
        Ok(d) => d,
        Err(e) => {
            ev.referrers = ReferrersSeen::Failed(e.to_string());
            return Ok(ev);
        }
    };
    let (mut bundles, mut envelopes) = (0, 0);
    for d in &discovered.descriptors {
        let short = format!("sha256:{}", &d.digest.hex()[..12]);
        let m = match client
            .get_manifest(&Reference::by_digest(repo.clone(), d.digest))
            .await
        {
            Ok(m) => m,
            // A fallback tag index is kept up to date by clients, so it can list a manifest
            // that was deleted since: report it, do not fail the whole verification.
            Err(RegistryError::NotFound { .. }) => {
                ev.att_problems.push((
                    None,
                    format!("referrer {short} is listed but its manifest does not exist"),
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let layers = serde_json::from_slice::<ManifestLayers>(&m.bytes)
            .map(|m| m.layers)
            .unwrap_or_default();
        let mut counted = (false, false);
        // Only signature-bearing layers are downloaded: a referrer may be a large plain SBOM.
        for l in layers {
            if l.media_type == SIGSTORE_BUNDLE_MEDIA_TYPE
                || l.media_type
                    .starts_with("application/vnd.dev.sigstore.bundle")
            {
                counted.0 = true;
                let bytes = fetch_blob(client, repo, &l.digest).await?;
                let source = format!("bundle referrer {short}");
                check_bundle(&bytes, key, digest, manifest, &source, &mut ev);
            } else if l.media_type == DSSE_ENVELOPE_MEDIA_TYPE {
                counted.1 = true;
                let bytes = fetch_blob(client, repo, &l.digest).await?;
                let source = format!("referrer {short}");
                match verify_statement(&bytes, key, digest) {
                    Ok(t) => ev.attestations.push(Verified {
                        predicate_type: t,
                        source,
                    }),
                    Err(e) => ev
                        .att_problems
                        .push((envelope_predicate_type(&bytes), format!("{source}: {e}"))),
                }
            }
        }
        bundles += usize::from(counted.0);
        envelopes += usize::from(counted.1);
    }
    ev.referrers = ReferrersSeen::Listed {
        discovered,
        bundles,
        envelopes,
    };
    ev.sig_problems.dedup();
    ev.att_problems.dedup();
    Ok(ev)
}

/// Verifies one Sigstore bundle and files it as a signature or an attestation.
pub(super) fn check_bundle(
    bytes: &[u8],
    key: &PublicKey,
    digest: &Digest,
    manifest: &[u8],
    source: &str,
    ev: &mut Evidence,
) {
    let key_id = ev.key_id.clone();
    let bundle = match Bundle::from_json(bytes) {
        Ok(b) => b,
        Err(e) => {
            ev.att_problems.push((None, format!("{source}: {e}")));
            return;
        }
    };
    let claimed = bundle.claimed_predicate_type();
    // A message signature (no statement) can only be a signature of the manifest bytes.
    let is_signature = claimed
        .as_deref()
        .is_none_or(|t| t == COSIGN_SIGN_PREDICATE_TYPE);
    let what = match (&claimed, &bundle.dsse_envelope) {
        (Some(t), _) => format!("DSSE envelope for predicate {t}"),
        (None, Some(_)) => "DSSE envelope".to_owned(),
        (None, None) => "message signature".to_owned(),
    };
    let problem = match bundle.verify(key, Some(manifest)) {
        Ok(BundleContent::Statement {
            predicate_type,
            subject_sha256,
            ..
        }) => {
            if subject_sha256.contains(&digest.hex()) {
                let found = Verified {
                    predicate_type,
                    source: source.to_owned(),
                };
                if found.predicate_type == COSIGN_SIGN_PREDICATE_TYPE {
                    ev.signatures.push(found);
                } else {
                    ev.attestations.push(found);
                }
                return;
            }
            format!("{source}: {predicate_type} statement is about another image, not {digest}")
        }
        // The signed bytes were this manifest's, so the signature is about this digest.
        Ok(BundleContent::Message { .. }) => {
            ev.signatures.push(Verified {
                predicate_type: "message signature".into(),
                source: source.to_owned(),
            });
            return;
        }
        Err(AttestError::BadSignature) => {
            let mut p = format!(
                "{source}: bundle has a {what} that does not verify with key {key_id}: it was made by another key or changed after signing"
            );
            if bundle.is_keyless() {
                p.push_str(" (it is a keyless, certificate-signed bundle; kiln verifies key-based bundles only)");
            }
            p
        }
        Err(e) => format!("{source}: bundle has a {what}: {e}"),
    };
    if is_signature {
        ev.sig_problems.push(problem);
    } else {
        ev.att_problems.push((claimed, problem));
    }
}

/// The predicate type a DSSE envelope claims, read without verifying (for messages only).
fn envelope_predicate_type(bytes: &[u8]) -> Option<String> {
    let env = Envelope::from_json(bytes).ok()?;
    let stmt: serde_json::Value = serde_json::from_slice(&env.payload_bytes().ok()?).ok()?;
    stmt["predicateType"].as_str().map(str::to_owned)
}

/// Checks one `.sig` layer: a simple-signing payload signed by `key` naming `digest`.
pub(super) fn verify_sig_layer(
    layer: &SignedLayer,
    key: &PublicKey,
    digest: &Digest,
) -> Result<String, String> {
    if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(format!(
            "layer of type {} is not a cosign signature",
            layer.media_type
        ));
    }
    let sig = layer
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("signature layer lacks the {SIGNATURE_ANNOTATION} annotation"))?;
    verify_signature(key, &layer.bytes, sig).map_err(|e| e.to_string())?;
    let doc = verify_simple_signing(&layer.bytes, digest).map_err(|e| e.to_string())?;
    Ok(doc.docker_reference)
}

/// Checks one DSSE envelope: an in-toto statement signed by `key` whose subject is `digest`;
/// returns its predicate type.
pub(super) fn verify_statement(
    bytes: &[u8],
    key: &PublicKey,
    digest: &Digest,
) -> Result<String, String> {
    let env = Envelope::from_json(bytes).map_err(|e| e.to_string())?;
    let payload =
        verify_envelope(key, &env, IN_TOTO_PAYLOAD_TYPE).map_err(
            |e| match envelope_predicate_type(bytes) {
                Some(t) => format!("{t} attestation: {e}"),
                None => format!("attestation: {e}"),
            },
        )?;
    let stmt: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|e| format!("attestation payload is not JSON: {e}"))?;
    let predicate_type = stmt["predicateType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let names_digest = stmt["subject"].as_array().is_some_and(|subjects| {
        subjects
            .iter()
            .any(|s| s["digest"]["sha256"].as_str() == Some(digest.hex().as_str()))
    });
    if !names_digest {
        return Err(format!(
            "{predicate_type} attestation is about another image, not {digest}"
        ));
    }
    Ok(predicate_type)
}
