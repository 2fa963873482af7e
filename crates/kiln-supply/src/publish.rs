//! Writing side: cosign-compatible signatures, SBOM and provenance attestations, referrers.

use std::collections::BTreeMap;

use kiln_attest::{
    cosign_tag, format_rfc3339, provenance_statement, sign_envelope, sign_payload, signature_image,
    sigstore_bundle, simple_signing_payload, statement, Descriptor, Envelope, PrivateKey,
    ProvenanceInput, PublicKey, SbomSubject, SignedLayer, BUNDLE_CONTENT_ANNOTATION,
    BUNDLE_PREDICATE_TYPE_ANNOTATION, DSSE_ENVELOPE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE_ANNOTATION, SIGSTORE_BUNDLE_MEDIA_TYPE, SLSA_PROVENANCE_V1,
};
use kiln_registry::{Client, Reference, Repository};
use kiln_types::Digest;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::image::{load_image, ImageSource};
use crate::oci::{docker_reference, push_artifact, read_tagged};
#[cfg(doc)]
use crate::referrers::KILN_ATTACHMENT_ANNOTATION;
use crate::referrers::{attach_referrers, ReferrersReport, WantedReferrer};
use crate::subject::{render_sbom, SbomFormat};

/// Media type cosign gives an SPDX JSON layer under the `.sbom` tag (`cosign attach sbom
/// --type spdxjson`).
const COSIGN_SBOM_SPDX_JSON: &str = "text/spdx+json";

/// What `kiln sign` / `kiln image --sign` pushed for one digest.
#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    /// `registry/repo`.
    pub repository: String,
    /// The signed manifest (or index) digest.
    pub digest: Digest,
    /// The cosign tag the signature image lives under (`sha256-<hex>.sig`).
    pub tag: String,
    /// Digest of the signature image manifest.
    pub signature_manifest: Digest,
    /// Signatures in the signature image (earlier signers are kept).
    pub signatures: usize,
    /// The signature's Sigstore bundle referrer.
    pub referrers: ReferrersReport,
}

/// Resolves `reference` to its manifest digest (a tag is read once; signing uses the digest).
pub async fn resolve_digest(client: &Client, reference: &Reference) -> Result<Digest> {
    Ok(client.get_manifest(reference).await?.digest)
}

/// Signs the image `reference` points at, like `cosign sign --key`: resolves the tag to a
/// digest, signs the simple-signing payload for it and pushes the `.sig` image.
pub async fn sign_image(
    client: &Client,
    reference: &Reference,
    key: &PrivateKey,
) -> Result<SignReport> {
    let digest = resolve_digest(client, reference).await?;
    sign_digest(client, &reference.repository, &digest, key).await
}

pub use kiln_attest::COSIGN_SIGN_PREDICATE_TYPE;

/// Signs `digest` in `repo`, in both of cosign's layouts:
///
/// - a simple-signing layer under the `.sig` tag (cosign 2, cosign 3 `--new-bundle-format=false`).
///   Signatures already there are kept (a layer per signer);
/// - a Sigstore bundle referrer over a [`COSIGN_SIGN_PREDICATE_TYPE`] statement, as `cosign sign`
///   3 writes it, which cosign 3 reads by default. Bundles of other keys are kept (one per
///   signing key; see [`crate::KILN_ATTACHMENT_ANNOTATION`]).
///
/// Signing twice with one key is idempotent because ECDSA nonces are deterministic (RFC 6979).
pub async fn sign_digest(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    key: &PrivateKey,
) -> Result<SignReport> {
    let payload = simple_signing_payload(&docker_reference(repo), digest);
    let sig = sign_payload(key, &payload);
    let tag = cosign_tag(digest, "sig");
    let mut layers = read_tagged(client, repo, &tag)
        .await?
        .map(|t| t.layers)
        .unwrap_or_default();
    let new = SignedLayer::signature(payload, &sig);
    if !layers.contains(&new) {
        layers.push(new);
    }
    let artifact = signature_image(&layers)?;
    push_artifact(client, repo, &artifact, Some(&tag)).await?;

    let stmt = statement(
        &[(docker_reference(repo), *digest)],
        COSIGN_SIGN_PREDICATE_TYPE,
        serde_json::json!({}),
    );
    let payload = serde_json::to_vec(&stmt).map_err(kiln_attest::AttestError::from)?;
    let env = sign_envelope(key, IN_TOTO_PAYLOAD_TYPE, &payload);
    let public = key.public_key();
    let wanted = [WantedReferrer {
        slot: format!(
            "{}:{}",
            bundle_slot(COSIGN_SIGN_PREDICATE_TYPE),
            public.key_id()?
        ),
        ..bundle_referrer(&env, &public, COSIGN_SIGN_PREDICATE_TYPE)?
    }];
    let referrers = attach_referrers(
        client,
        repo,
        digest,
        &subject_descriptor(client, repo, digest).await?,
        &wanted,
    )
    .await?;
    Ok(SignReport {
        repository: repo.to_string(),
        digest: *digest,
        tag,
        signature_manifest: artifact.manifest_digest,
        signatures: layers.len(),
        referrers,
    })
}

/// The descriptor of the manifest `digest` (a referrer's `subject`).
async fn subject_descriptor(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
) -> Result<Descriptor> {
    let root = client
        .get_manifest(&Reference::by_digest(repo.clone(), *digest))
        .await?;
    Ok(Descriptor::of(&root.media_type, &root.bytes))
}

/// A Sigstore bundle referrer for `env`, annotated as cosign 3 annotates its own.
fn bundle_referrer(
    env: &Envelope,
    public: &PublicKey,
    predicate_type: &str,
) -> Result<WantedReferrer> {
    Ok(WantedReferrer {
        artifact_type: SIGSTORE_BUNDLE_MEDIA_TYPE.to_owned(),
        content: sigstore_bundle(env, public)?,
        annotations: BTreeMap::from([
            (
                BUNDLE_CONTENT_ANNOTATION.to_owned(),
                "dsse-envelope".to_owned(),
            ),
            (
                BUNDLE_PREDICATE_TYPE_ANNOTATION.to_owned(),
                predicate_type.to_owned(),
            ),
        ]),
        slot: bundle_slot(predicate_type),
    })
}

/// Build facts recorded in the provenance; all optional, the CLI fills what it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildParams {
    /// Source repository URI, e.g. `git+https://example.com/org/app`.
    pub repo: Option<String>,
    /// Source revision (git commit).
    pub revision: Option<String>,
    /// Build targets.
    pub targets: Vec<String>,
    /// User-controlled flags that influenced the build.
    pub flags: Vec<String>,
    /// Build start, RFC 3339 (default: the build's `date`).
    pub started_on: Option<String>,
    /// Build end, RFC 3339 (default: the build's `date`).
    pub finished_on: Option<String>,
    /// The build's date, seconds since 1970: the creation time of the attached SBOMs. The CLI
    /// resolves it once (`SOURCE_DATE_EPOCH`, else the commit time, else 0).
    pub date: u64,
}

/// The SLSA provenance input for an image: subject, base image and Go version from the SBOM
/// subject, the rest from `build`.
///
/// Nothing comes from the clock: times the caller does not know are the build's date, and the
/// invocation id is the image digest and that date. So attesting the same image twice gives
/// byte-identical provenance (ECDSA signatures are deterministic too), and kiln pushes nothing
/// new the second time.
pub fn provenance_input(
    subject: &SbomSubject,
    docker_ref: &str,
    build: &BuildParams,
) -> ProvenanceInput {
    let date = format_rfc3339(i64::try_from(build.date).unwrap_or(i64::MAX));
    ProvenanceInput {
        subjects: vec![(docker_ref.to_owned(), subject.digest)],
        repo: build.repo.clone(),
        revision: build.revision.clone(),
        targets: build.targets.clone(),
        flags: build.flags.clone(),
        internal: BTreeMap::new(),
        base_image: subject.base.as_ref().map(|b| (b.name.clone(), b.digest)),
        go_version: subject.binaries.first().map(|b| b.go_version.clone()),
        builder_id: concat!(
            "https://github.com/kiln-build/kiln@v",
            env!("CARGO_PKG_VERSION")
        )
        .to_owned(),
        invocation_id: format!("{}-{}", &subject.digest.hex()[..16], build.date),
        started_on: build.started_on.clone().unwrap_or_else(|| date.clone()),
        finished_on: build.finished_on.clone().unwrap_or(date),
    }
}

/// What was attached to one digest.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    /// `registry/repo`.
    pub repository: String,
    /// The image digest the attachments describe.
    pub digest: Digest,
    /// cosign tag of the plain SPDX SBOM (`sha256-<hex>.sbom`, one layer, as `cosign attach
    /// sbom` writes it and `cosign download sbom` reads it).
    pub sbom_tag: String,
    /// cosign tag of the signed attestations (`sha256-<hex>.att`).
    pub attestation_tag: String,
    /// Predicate types of the attestations kiln wrote (its layers in `.att`).
    pub predicate_types: Vec<String>,
    /// Layers under `.att` that other tools wrote (other predicate types), kept as they were.
    pub attestations_kept: usize,
    /// Whether the registry has the OCI referrers API (else the fallback tag index is written).
    pub referrers_api: bool,
    /// kiln's referrer manifests (plain SPDX and CycloneDX SBOMs, and per predicate type the
    /// DSSE envelope and its Sigstore bundle) attached after this run: listed by the referrers
    /// API, or in the `sha256-<hex>` fallback index.
    pub referrers: Vec<Digest>,
    /// Details: which referrers were new, which replaced, what the registry refused.
    pub referrers_detail: ReferrersReport,
}

/// Slot of a plain SBOM referrer (see [`KILN_ATTACHMENT_ANNOTATION`]).
fn sbom_slot(format: SbomFormat) -> String {
    format!("sbom:{}", format.media_type())
}

/// Slot of an attestation referrer.
fn attestation_slot(predicate_type: &str) -> String {
    format!("attestation:{predicate_type}")
}

/// Slot of an attestation's Sigstore bundle referrer.
fn bundle_slot(predicate_type: &str) -> String {
    format!("bundle:{predicate_type}")
}

/// Attaches SPDX and CycloneDX SBOMs and SLSA provenance to `digest`, next to whatever other
/// tools attached:
///
/// - the plain SPDX SBOM under cosign's `.sbom` tag, one layer (`cosign download sbom` reads
///   exactly one); the CycloneDX SBOM is reachable as its attestation and as a referrer;
/// - all three as DSSE-signed in-toto attestations under the `.att` tag (as `cosign attest`
///   does): layers of the predicate types kiln writes are replaced, every other layer is kept
///   (like `cosign attest --replace`);
/// - both SBOMs, the three envelopes, and the envelopes again as Sigstore bundles (cosign 3's
///   layout) as OCI 1.1 referrer artifacts whose `subject` is the image: through the referrers
///   API when the registry has it, else listed in the `sha256-<hex>` fallback tag index. A manifest already attached is not pushed again;
///   kiln's earlier referrers of the same kind are replaced (see [`ReferrersReport`]).
///
/// `date` (seconds since 1970) is the SBOMs' creation time: the build's date, not the clock.
pub async fn attach_attestations(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    key: &PrivateKey,
    subject: &SbomSubject,
    provenance: &ProvenanceInput,
    date: u64,
) -> Result<AttachReport> {
    let docker_ref = docker_reference(repo);
    let subjects = vec![(docker_ref.clone(), *digest)];
    let spdx = render_sbom(subject, SbomFormat::Spdx, date)?;
    let cdx = render_sbom(subject, SbomFormat::Cyclonedx, date)?;

    let sbom_tag = cosign_tag(digest, "sbom");
    let sbom_layer = SignedLayer {
        bytes: spdx.clone(),
        media_type: COSIGN_SBOM_SPDX_JSON.to_owned(),
        annotations: BTreeMap::new(),
    };
    push_artifact(
        client,
        repo,
        &signature_image(&[sbom_layer])?,
        Some(&sbom_tag),
    )
    .await?;

    let mut provenance = provenance.clone();
    provenance.subjects = subjects.clone();
    let statements = [
        (
            SbomFormat::Spdx.predicate_type(),
            statement(
                &subjects,
                SbomFormat::Spdx.predicate_type(),
                serde_json::from_slice(&spdx).map_err(kiln_attest::AttestError::from)?,
            ),
        ),
        (
            SbomFormat::Cyclonedx.predicate_type(),
            statement(
                &subjects,
                SbomFormat::Cyclonedx.predicate_type(),
                serde_json::from_slice(&cdx).map_err(kiln_attest::AttestError::from)?,
            ),
        ),
        (SLSA_PROVENANCE_V1, provenance_statement(&provenance)?),
    ];
    let mut envelopes = Vec::new();
    let mut kiln_layers = Vec::new();
    for (predicate_type, stmt) in &statements {
        let payload = serde_json::to_vec(stmt).map_err(kiln_attest::AttestError::from)?;
        let env = sign_envelope(key, IN_TOTO_PAYLOAD_TYPE, &payload);
        kiln_layers.push(SignedLayer::attestation(&env, predicate_type)?);
        envelopes.push((*predicate_type, env));
    }
    let kiln_types: Vec<&str> = statements.iter().map(|(t, _)| *t).collect();
    let attestation_tag = cosign_tag(digest, "att");
    let mut att_layers = merge_attestations(
        read_tagged(client, repo, &attestation_tag)
            .await?
            .map(|t| t.layers)
            .unwrap_or_default(),
        &kiln_types,
    );
    let attestations_kept = att_layers.len();
    att_layers.extend(kiln_layers);
    push_artifact(
        client,
        repo,
        &signature_image(&att_layers)?,
        Some(&attestation_tag),
    )
    .await?;

    let subject_desc = subject_descriptor(client, repo, digest).await?;
    let mut wanted = vec![
        WantedReferrer {
            artifact_type: SbomFormat::Spdx.media_type().to_owned(),
            content: spdx,
            annotations: BTreeMap::new(),
            slot: sbom_slot(SbomFormat::Spdx),
        },
        WantedReferrer {
            artifact_type: SbomFormat::Cyclonedx.media_type().to_owned(),
            content: cdx,
            annotations: BTreeMap::new(),
            slot: sbom_slot(SbomFormat::Cyclonedx),
        },
    ];
    let public = key.public_key();
    for (predicate_type, env) in &envelopes {
        wanted.push(WantedReferrer {
            artifact_type: DSSE_ENVELOPE_MEDIA_TYPE.to_owned(),
            // The same envelope bytes as the `.att` layer: the two places cannot drift.
            content: env.to_json()?,
            annotations: BTreeMap::from([(
                PREDICATE_TYPE_ANNOTATION.to_owned(),
                (*predicate_type).to_owned(),
            )]),
            slot: attestation_slot(predicate_type),
        });
    }
    // The same envelopes once more, as cosign 3 stores attestations: a Sigstore bundle per
    // referrer. cosign 3 reads only bundles as soon as any bundle refers to the image (one of
    // its own, say), so without these kiln's attestations would stop verifying there.
    for (predicate_type, env) in &envelopes {
        wanted.push(bundle_referrer(env, &public, predicate_type)?);
    }
    let referrers_detail = attach_referrers(client, repo, digest, &subject_desc, &wanted).await?;
    Ok(AttachReport {
        repository: repo.to_string(),
        digest: *digest,
        sbom_tag,
        attestation_tag,
        predicate_types: kiln_types.iter().map(|t| (*t).to_owned()).collect(),
        attestations_kept,
        referrers_api: referrers_detail.api,
        referrers: referrers_detail.attached.clone(),
        referrers_detail,
    })
}

/// The layers of an existing `.att` image that stay: everything except kiln's own predicate
/// types (`replacing`), in their order. A layer without a `predicateType` annotation is not
/// kiln's and stays.
fn merge_attestations(existing: Vec<SignedLayer>, replacing: &[&str]) -> Vec<SignedLayer> {
    existing
        .into_iter()
        .filter(|l| {
            !l.annotations
                .get(PREDICATE_TYPE_ANNOTATION)
                .is_some_and(|t| replacing.contains(&t.as_str()))
        })
        .collect()
}

/// Everything `kiln image --push --sign` (or `kiln sign --attest`) did for one digest.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    /// The signature.
    pub signature: SignReport,
    /// SBOMs and provenance.
    pub attachments: AttachReport,
}

/// The *attest* stage after a push: for the image at `reference` (tag or digest), reads its
/// contents from the registry, signs its digest and attaches SBOMs and provenance.
///
/// `kiln image --push --sign --key k.key` calls this once per pushed image or index digest.
pub async fn sign_and_attest(
    client: &Client,
    reference: &Reference,
    key: &PrivateKey,
    build: &BuildParams,
) -> Result<PublishReport> {
    let digest = resolve_digest(client, reference).await?;
    let pinned = Reference::by_digest(reference.repository.clone(), digest);
    let contents = load_image(client, &ImageSource::Registry(pinned)).await?;
    let mut subject = contents.sbom_subject();
    subject.version = reference.tag.clone().filter(|_| reference.digest.is_none());
    let repo = &reference.repository;
    let provenance = provenance_input(&subject, &docker_reference(repo), build);
    let signature = sign_digest(client, repo, &digest, key).await?;
    let attachments = attach_attestations(
        client,
        repo,
        &digest,
        key,
        &subject,
        &provenance,
        build.date,
    )
    .await?;
    Ok(PublishReport {
        signature,
        attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(predicate_type: Option<&str>, bytes: &[u8]) -> SignedLayer {
        let mut annotations = BTreeMap::new();
        if let Some(t) = predicate_type {
            annotations.insert(PREDICATE_TYPE_ANNOTATION.to_owned(), t.to_owned());
        }
        SignedLayer {
            bytes: bytes.to_vec(),
            media_type: DSSE_ENVELOPE_MEDIA_TYPE.to_owned(),
            annotations,
        }
    }

    #[test]
    fn issue_10_att_merge_replaces_only_kiln_predicate_types() {
        let vuln = layer(
            Some("https://cosign.sigstore.dev/attestation/vuln/v1"),
            b"v",
        );
        let untyped = layer(None, b"u");
        let existing = vec![
            layer(Some(SLSA_PROVENANCE_V1), b"old provenance"),
            vuln.clone(),
            layer(Some("https://spdx.dev/Document"), b"old spdx"),
            untyped.clone(),
        ];
        let kept = merge_attestations(
            existing,
            &[
                "https://spdx.dev/Document",
                "https://cyclonedx.org/bom",
                SLSA_PROVENANCE_V1,
            ],
        );
        assert_eq!(
            kept,
            vec![vuln, untyped],
            "other tools' layers stay, in order"
        );
    }

    #[test]
    fn issue_10_provenance_input_does_not_read_the_clock() {
        let subject = SbomSubject {
            name: "127.0.0.1:5000/app".into(),
            version: None,
            kind: kiln_attest::SubjectKind::Image,
            digest: Digest::of_bytes(b"image"),
            platform: None,
            binaries: Vec::new(),
            base: None,
        };
        let build = BuildParams {
            date: 1_700_000_000,
            ..BuildParams::default()
        };
        let a = provenance_input(&subject, "127.0.0.1:5000/app", &build);
        let b = provenance_input(&subject, "127.0.0.1:5000/app", &build);
        assert_eq!(a.started_on, "2023-11-14T22:13:20Z");
        assert_eq!(a.finished_on, a.started_on);
        assert_eq!(
            (&a.invocation_id, &a.started_on),
            (&b.invocation_id, &b.started_on)
        );
        let later = provenance_input(
            &subject,
            "127.0.0.1:5000/app",
            &BuildParams {
                date: 1_700_000_001,
                ..build
            },
        );
        assert_ne!(later.invocation_id, a.invocation_id);
    }
}
