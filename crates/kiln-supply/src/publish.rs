//! Writing side: cosign-compatible signatures, SBOM and provenance attestations, referrers.

use std::collections::BTreeMap;

use kiln_attest::{
    cosign_tag, format_rfc3339, now_epoch, provenance_statement, referrer_manifest, sign_envelope,
    sign_payload, signature_image, simple_signing_payload, statement, Descriptor, PrivateKey,
    ProvenanceInput, SbomSubject, SignedLayer, DSSE_ENVELOPE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE_ANNOTATION, SLSA_PROVENANCE_V1,
};
use kiln_registry::{Client, Reference, Repository};
use kiln_types::Digest;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::image::{load_image, ImageSource};
use crate::oci::{docker_reference, push_artifact, read_tagged};
use crate::subject::{render_sbom, SbomFormat};

/// Media types cosign gives SBOM layers under the `.sbom` tag (`cosign attach sbom`).
const COSIGN_SBOM_SPDX_JSON: &str = "text/spdx+json";
const COSIGN_SBOM_CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";

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

/// Signs `digest` in `repo`. Signatures already under the `.sig` tag are kept (cosign adds a
/// layer per signer); signing twice with one key is idempotent because ECDSA nonces are
/// deterministic (RFC 6979).
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
    Ok(SignReport {
        repository: repo.to_string(),
        digest: *digest,
        tag,
        signature_manifest: artifact.manifest_digest,
        signatures: layers.len(),
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
    /// Build start, RFC 3339 (default: now).
    pub started_on: Option<String>,
    /// Build end, RFC 3339 (default: now).
    pub finished_on: Option<String>,
    /// The build's date, seconds since 1970: the creation time of the attached SBOMs. The CLI
    /// resolves it once (`SOURCE_DATE_EPOCH`, else the commit time, else 0).
    pub date: u64,
}

/// The SLSA provenance input for an image: subject, base image and Go version from the SBOM
/// subject, the rest from `build`.
pub fn provenance_input(
    subject: &SbomSubject,
    docker_ref: &str,
    build: &BuildParams,
) -> ProvenanceInput {
    let now = format_rfc3339(now_epoch());
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
        invocation_id: format!("{}-{}", &subject.digest.hex()[..16], now_epoch()),
        started_on: build.started_on.clone().unwrap_or_else(|| now.clone()),
        finished_on: build.finished_on.clone().unwrap_or(now),
    }
}

/// What was attached to one digest.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    /// `registry/repo`.
    pub repository: String,
    /// The image digest the attachments describe.
    pub digest: Digest,
    /// cosign tag of the plain SBOMs (`sha256-<hex>.sbom`).
    pub sbom_tag: String,
    /// cosign tag of the signed attestations (`sha256-<hex>.att`).
    pub attestation_tag: String,
    /// Predicate types of the attestations pushed.
    pub predicate_types: Vec<String>,
    /// Whether the registry has the OCI referrers API (then referrer artifacts were pushed too).
    pub referrers_api: bool,
    /// Digests of the referrer artifact manifests pushed (empty without the API).
    pub referrers: Vec<Digest>,
}

/// Attaches SPDX and CycloneDX SBOMs and SLSA provenance to `digest`:
///
/// - the plain SBOMs under cosign's `.sbom` tag (as `cosign attach sbom` does),
/// - all three as DSSE-signed in-toto attestations under the `.att` tag (as `cosign attest`
///   does; kiln replaces the attestation image instead of appending to it),
/// - and, when the registry implements the OCI referrers API, as artifact manifests whose
///   `subject` is the image, so OCI 1.1 tools find them without the tag scheme.
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

    let sbom_layers = [
        (COSIGN_SBOM_SPDX_JSON, &spdx),
        (COSIGN_SBOM_CYCLONEDX_JSON, &cdx),
    ]
    .map(|(media_type, bytes)| SignedLayer {
        bytes: bytes.clone(),
        media_type: media_type.to_owned(),
        annotations: BTreeMap::new(),
    });
    let sbom_tag = cosign_tag(digest, "sbom");
    push_artifact(
        client,
        repo,
        &signature_image(&sbom_layers)?,
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
    let mut att_layers = Vec::new();
    for (predicate_type, stmt) in &statements {
        let payload = serde_json::to_vec(stmt).map_err(kiln_attest::AttestError::from)?;
        let env = sign_envelope(key, IN_TOTO_PAYLOAD_TYPE, &payload);
        att_layers.push(SignedLayer::attestation(&env, predicate_type)?);
        envelopes.push((*predicate_type, env));
    }
    let attestation_tag = cosign_tag(digest, "att");
    push_artifact(
        client,
        repo,
        &signature_image(&att_layers)?,
        Some(&attestation_tag),
    )
    .await?;

    // Best effort: the cosign tags are already pushed and are what every tool reads; a
    // registry that errors on the referrers probe simply does not get referrer artifacts.
    let referrers_api = client
        .referrers_supported(repo, digest)
        .await
        .unwrap_or(false);
    let mut referrers = Vec::new();
    if referrers_api {
        let root = client
            .get_manifest(&Reference::by_digest(repo.clone(), *digest))
            .await?;
        let subject_desc = Descriptor::of(&root.media_type, &root.bytes);
        let mut items: Vec<(String, Vec<u8>, BTreeMap<String, String>)> = vec![
            (
                SbomFormat::Spdx.media_type().to_owned(),
                spdx.clone(),
                BTreeMap::new(),
            ),
            (
                SbomFormat::Cyclonedx.media_type().to_owned(),
                cdx.clone(),
                BTreeMap::new(),
            ),
        ];
        for (predicate_type, env) in &envelopes {
            let mut ann = BTreeMap::new();
            ann.insert(
                PREDICATE_TYPE_ANNOTATION.to_owned(),
                (*predicate_type).to_owned(),
            );
            items.push((DSSE_ENVELOPE_MEDIA_TYPE.to_owned(), env.to_json()?, ann));
        }
        for (artifact_type, content, ann) in items {
            let art = referrer_manifest(&artifact_type, &content, subject_desc.clone(), ann)?;
            push_artifact(client, repo, &art, None).await?;
            referrers.push(art.manifest_digest);
        }
    }
    Ok(AttachReport {
        repository: repo.to_string(),
        digest: *digest,
        sbom_tag,
        attestation_tag,
        predicate_types: statements.iter().map(|(t, _)| (*t).to_owned()).collect(),
        referrers_api,
        referrers,
    })
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
