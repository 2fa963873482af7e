//! cosign's storage layout: simple-signing payloads, `.sig`/`.att` signature images and
//! OCI 1.1 referrer artifacts. Everything here is bytes; the registry code pushes them.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
/// The one OCI descriptor type (defined in kiln-types, shared with kiln-oci and kiln-registry).
pub use kiln_types::Descriptor;
use kiln_types::Digest;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::dsse::{Envelope, DSSE_ENVELOPE_MEDIA_TYPE};
use crate::error::{AttestError, Result};
use crate::keys::PublicKey;

/// Media type of the simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation carrying the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation carrying an attestation's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// `critical.type` of cosign signatures.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";
/// OCI image manifest media type.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// OCI 1.1 empty descriptor media type.
pub const OCI_EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
use crate::bundle::SIGSTORE_BUNDLE_MEDIA_TYPE;
/// Referrer manifest annotation saying what a bundle holds (`dsse-envelope`).
pub const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SimpleSigningDoc {
    critical: Critical,
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a verified simple-signing payload says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimpleSigning {
    /// `critical.identity.docker-reference` (cosign ignores it when verifying).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Digest,
    /// `optional` annotations, if any.
    pub optional: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The payload `cosign sign` signs, byte for byte as cosign's Go encoder writes it:
/// `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
/// "type":"cosign container image signature"},"optional":null}`.
///
/// `docker_reference` is the repository without tag or digest, e.g. `registry.example/app`.
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &Digest) -> Vec<u8> {
    let doc = SimpleSigningDoc {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_owned(),
            },
            image: Image {
                docker_manifest_digest: manifest_digest.to_string(),
            },
            kind: COSIGN_SIGNATURE_TYPE.to_owned(),
        },
        optional: None,
    };
    // Go's encoder escapes <, > and & as \u003c etc.; match it so signatures over the same
    // reference are identical whichever tool made the payload.
    let json = serde_json::to_string(&doc).unwrap_or_default();
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .into_bytes()
}

/// Checks that `payload` is a cosign simple-signing document for `expected`.
///
/// Errors: [`AttestError::MalformedPayload`] for anything that is not such a document,
/// [`AttestError::PayloadForAnotherImage`] when it names another digest.
pub fn verify_simple_signing(payload: &[u8], expected: &Digest) -> Result<SimpleSigning> {
    let doc: SimpleSigningDoc =
        serde_json::from_slice(payload).map_err(|e| AttestError::MalformedPayload {
            reason: e.to_string(),
        })?;
    if doc.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(AttestError::MalformedPayload {
            reason: format!("critical.type is {:?}", doc.critical.kind),
        });
    }
    let found = doc.critical.image.docker_manifest_digest;
    let digest: Digest = found.parse().map_err(|_| AttestError::MalformedPayload {
        reason: format!("docker-manifest-digest {found:?} is not a sha256 digest"),
    })?;
    if &digest != expected {
        return Err(AttestError::PayloadForAnotherImage {
            expected: *expected,
            found,
        });
    }
    Ok(SimpleSigning {
        docker_reference: doc.critical.identity.docker_reference,
        manifest_digest: digest,
        optional: doc.optional,
    })
}

/// cosign's tag for things attached to `digest`: `sha256-<hex>.<suffix>` where suffix is
/// `sig`, `att` or `sbom`.
pub fn cosign_tag(digest: &Digest, suffix: &str) -> String {
    format!("sha256-{}.{suffix}", digest.hex())
}

/// A descriptor as cosign writes it in signature manifests: go-containerregistry's field
/// order (`mediaType`, `size`, `digest`, `data`, `annotations`, `platform`, `artifactType`),
/// where [`Descriptor`]'s own order (kiln's image manifests) puts `digest` before `size`.
/// Verifiers do not care about the order, but a signature manifest's digest does, and kiln's
/// `.sig`/`.att`/`.sbom`/referrer manifests have always had these bytes.
struct CosignOrder<'a> {
    descriptor: &'a Descriptor,
    /// Writes `"annotations":{}` when there are none. Layers of a signature image always
    /// carried the object (a `.sbom` layer has no annotations), and their digests depend on it.
    empty_annotations: bool,
}

impl<'a> CosignOrder<'a> {
    fn of(descriptor: &'a Descriptor) -> Self {
        Self {
            descriptor,
            empty_annotations: false,
        }
    }
}

impl Serialize for CosignOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let d = self.descriptor;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("mediaType", &d.media_type)?;
        map.serialize_entry("size", &d.size)?;
        map.serialize_entry("digest", &d.digest)?;
        if let Some(data) = &d.data {
            map.serialize_entry("data", data)?;
        }
        if self.empty_annotations || !d.annotations.is_empty() {
            map.serialize_entry("annotations", &d.annotations)?;
        }
        if let Some(platform) = &d.platform {
            map.serialize_entry("platform", platform)?;
        }
        if let Some(artifact_type) = &d.artifact_type {
            map.serialize_entry("artifactType", artifact_type)?;
        }
        map.end()
    }
}

/// A blob to push: media type, digest and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blob {
    /// Media type.
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// Content.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: Digest::of_bytes(&bytes),
            bytes,
        }
    }
}

/// A complete OCI artifact: push the blobs, then the manifest bytes exactly as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OciArtifact {
    /// The config blob.
    pub config: Blob,
    /// The layer blobs, in manifest order.
    pub layers: Vec<Blob>,
    /// Manifest JSON bytes (these are what `manifest_digest` hashes).
    #[serde(skip)]
    pub manifest: Vec<u8>,
    /// Digest of `manifest`.
    pub manifest_digest: Digest,
    /// Media type of the manifest.
    pub manifest_media_type: String,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    config: CosignOrder<'a>,
    layers: Vec<CosignOrder<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<CosignOrder<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

/// One layer of a cosign signature or attestation image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLayer {
    /// Layer bytes (the simple-signing payload, or a DSSE envelope).
    pub bytes: Vec<u8>,
    /// Layer media type.
    pub media_type: String,
    /// Layer annotations, including [`SIGNATURE_ANNOTATION`].
    pub annotations: BTreeMap<String, String>,
}

impl SignedLayer {
    /// A `.sig` layer: simple-signing payload with its base64 signature.
    pub fn signature(payload: Vec<u8>, sig_b64: &str) -> Self {
        let mut annotations = BTreeMap::new();
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), sig_b64.to_owned());
        Self {
            bytes: payload,
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            annotations,
        }
    }

    /// An `.att` layer: a DSSE envelope; cosign leaves the signature annotation empty
    /// because the signature lives inside the envelope.
    pub fn attestation(envelope: &Envelope, predicate_type: &str) -> Result<Self> {
        let mut annotations = BTreeMap::new();
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), String::new());
        annotations.insert(
            PREDICATE_TYPE_ANNOTATION.to_owned(),
            predicate_type.to_owned(),
        );
        Ok(Self {
            bytes: envelope.to_json()?,
            media_type: DSSE_ENVELOPE_MEDIA_TYPE.to_owned(),
            annotations,
        })
    }
}

/// The image cosign stores under a `.sig` or `.att` tag: an OCI manifest whose layers are
/// the signed payloads, plus the config blob cosign's image library generates for it
/// (zero timestamps, one history entry and one diff id per layer).
pub fn signature_image(layers: &[SignedLayer]) -> Result<OciArtifact> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::of_bytes(&l.bytes).to_string())
        .collect();
    let history: Vec<serde_json::Value> = layers
        .iter()
        .map(|_| serde_json::json!({"created": "0001-01-01T00:00:00Z"}))
        .collect();
    // Field order of go-containerregistry's ConfigFile, which cosign serialises.
    let config = format!(
        "{{\"architecture\":\"\",\"created\":\"0001-01-01T00:00:00Z\",\"history\":{},\"os\":\"\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":{}}},\"config\":{{}}}}",
        serde_json::to_string(&history)?,
        serde_json::to_string(&diff_ids)?
    );
    let config = Blob::new(OCI_CONFIG_MEDIA_TYPE, config.into_bytes());
    let blobs: Vec<Blob> = layers
        .iter()
        .map(|l| Blob::new(&l.media_type, l.bytes.clone()))
        .collect();
    let config_desc = Descriptor::of(OCI_CONFIG_MEDIA_TYPE, &config.bytes);
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor {
            annotations: l.annotations.clone(),
            ..Descriptor::of(&l.media_type, &l.bytes)
        })
        .collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST_MEDIA_TYPE,
        artifact_type: None,
        config: CosignOrder::of(&config_desc),
        layers: layer_descs
            .iter()
            .map(|descriptor| CosignOrder {
                descriptor,
                empty_annotations: true,
            })
            .collect(),
        subject: None,
        annotations: None,
    };
    finish(manifest, config, blobs)
}

/// The `.sig` image for one simple-signing payload and its base64 signature.
pub fn signature_manifest(payload: &[u8], sig_b64: &str) -> Result<OciArtifact> {
    signature_image(&[SignedLayer::signature(payload.to_vec(), sig_b64)])
}

/// The `.att` image for one DSSE envelope.
pub fn attestation_manifest(envelope: &Envelope, predicate_type: &str) -> Result<OciArtifact> {
    signature_image(&[SignedLayer::attestation(envelope, predicate_type)?])
}

/// A key-based Sigstore bundle v0.3 (protobuf JSON, as cosign 3 writes with `--key` and no
/// transparency log) around a DSSE envelope: the public key is named by its hint, base64 of the
/// SHA-256 of its SPKI DER, and there are no transparency-log entries or timestamps, so
/// verifiers need their "ignore tlog" option (`cosign --insecure-ignore-tlog=true`).
pub fn sigstore_bundle(envelope: &Envelope, key: &PublicKey) -> Result<Vec<u8>> {
    let hint = B64.encode(Digest::of_bytes(&key.to_der()?).as_raw());
    // Only `sig`: an empty keyid is omitted in protobuf JSON, as cosign writes it.
    let signatures: Vec<serde_json::Value> = envelope
        .signatures
        .iter()
        .map(|s| serde_json::json!({ "sig": s.sig }))
        .collect();
    let bundle = serde_json::json!({
        "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
        "verificationMaterial": { "publicKey": { "hint": hint } },
        "dsseEnvelope": {
            "payload": envelope.payload,
            "payloadType": envelope.payload_type,
            "signatures": signatures,
        },
    });
    Ok(serde_json::to_vec(&bundle)?)
}

/// An OCI 1.1 referrer artifact: one layer `content` of `artifact_type`, the empty config,
/// and `subject` pointing at the image manifest it describes.
pub fn referrer_manifest(
    artifact_type: &str,
    content: &[u8],
    subject: Descriptor,
    annotations: BTreeMap<String, String>,
) -> Result<OciArtifact> {
    let empty = b"{}".to_vec();
    let config_desc = Descriptor {
        data: Some(B64.encode(&empty)),
        ..Descriptor::of(OCI_EMPTY_MEDIA_TYPE, &empty)
    };
    let config = Blob::new(OCI_EMPTY_MEDIA_TYPE, empty);
    let layer = Blob::new(artifact_type, content.to_vec());
    // The subject is named by media type, size and digest only, as cosign names it.
    let subject = Descriptor::new(subject.media_type, subject.digest, subject.size);
    let layer_desc = Descriptor::of(artifact_type, content);
    let manifest = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST_MEDIA_TYPE,
        artifact_type: Some(artifact_type),
        config: CosignOrder::of(&config_desc),
        layers: vec![CosignOrder::of(&layer_desc)],
        subject: Some(CosignOrder::of(&subject)),
        annotations: (!annotations.is_empty()).then_some(annotations),
    };
    finish(manifest, config, vec![layer])
}

fn finish(manifest: Manifest<'_>, config: Blob, layers: Vec<Blob>) -> Result<OciArtifact> {
    let bytes = serde_json::to_vec(&manifest)?;
    Ok(OciArtifact {
        config,
        layers,
        manifest_digest: Digest::of_bytes(&bytes),
        manifest: bytes,
        manifest_media_type: OCI_MANIFEST_MEDIA_TYPE.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::{sign_envelope, IN_TOTO_PAYLOAD_TYPE};
    use crate::keys::PrivateKey;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// A DSSE envelope with fixed bytes (a real signature is random per run).
    fn fixed_envelope() -> Envelope {
        Envelope {
            payload: B64.encode(b"{\"_type\":\"https://in-toto.io/Statement/v1\"}"),
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
            signatures: vec![crate::dsse::EnvelopeSignature {
                keyid: None,
                sig: "c2ln".to_owned(),
            }],
        }
    }

    /// issue 12: the exact `.sig`, `.att`, `.sbom` and referrer manifest bytes kiln wrote before
    /// the OCI descriptor moved to kiln-types (go-containerregistry's field order: mediaType,
    /// size, digest; a `.sbom` layer without annotations keeps its `"annotations":{}`). A change
    /// here changes the digest of every signature kiln pushes.
    #[test]
    fn issue_12_signature_manifest_bytes_are_pinned() {
        let payload = simple_signing_payload("registry.example/app", &Digest::of_bytes(b"image"));
        let sig = signature_manifest(&payload, "c2ln").unwrap();
        let att =
            attestation_manifest(&fixed_envelope(), "https://slsa.dev/provenance/v1").unwrap();
        let sbom = signature_image(&[SignedLayer {
            bytes: b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec(),
            media_type: "text/spdx+json".to_owned(),
            annotations: BTreeMap::new(),
        }])
        .unwrap();
        let subject = Descriptor {
            annotations: BTreeMap::from([("dropped".to_owned(), "yes".to_owned())]),
            artifact_type: Some("application/dropped".to_owned()),
            platform: Some(kiln_types::OciPlatform::from(
                &"linux/amd64".parse::<kiln_types::Platform>().unwrap(),
            )),
            ..Descriptor::of(OCI_MANIFEST_MEDIA_TYPE, b"{\"schemaVersion\":2}")
        };
        let referrer = referrer_manifest(
            SIGSTORE_BUNDLE_MEDIA_TYPE,
            b"{\"bundle\":1}",
            subject,
            BTreeMap::from([(
                BUNDLE_CONTENT_ANNOTATION.to_owned(),
                "dsse-envelope".to_owned(),
            )]),
        )
        .unwrap();
        assert_eq!(text(&sig.manifest), SIG_MANIFEST);
        assert_eq!(text(&att.manifest), ATT_MANIFEST);
        assert_eq!(text(&sbom.manifest), SBOM_MANIFEST);
        assert_eq!(text(&referrer.manifest), REFERRER_MANIFEST);
    }

    const SIG_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:8f84d91748f417c86e3780c934eb3d5c2ddf883b3e7a0e3e5b74e071332d3295"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":236,"digest":"sha256:1fdb004864cdf6721209254c57ace76ca703c1ea514e141fd8148258dc459612","annotations":{"dev.cosignproject.cosign/signature":"c2ln"}}]}"#;
    const ATT_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:3746698150cfb3bffbe1e982bfd38324295e6f61b82e6992267e0bb73659b1c9"},"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json","size":149,"digest":"sha256:f818952f1e0ad55b02d04c7916f3eeae45fa04bf3a297d421ed6a1da7399c0b0","annotations":{"dev.cosignproject.cosign/signature":"","predicateType":"https://slsa.dev/provenance/v1"}}]}"#;
    const SBOM_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:c6a65ac9b8e81662b60eb8824473563dfc133b7529e04c52f60d160bc74a4985"},"layers":[{"mediaType":"text/spdx+json","size":26,"digest":"sha256:d4f269605ffe72fbe7a3021d68284798ec364111376ee2eace17688bb52a9e1d","annotations":{}}]}"#;
    const REFERRER_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","data":"e30="},"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","size":12,"digest":"sha256:7710c630a727d03b70a53a2c12394c034b50b5834151f9c7d751e439bed08b4c"}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":19,"digest":"sha256:bafebd36189ad3688b7b3915ea55d461e0bfcfbdde11e54b0a123999fb6be50f"},"annotations":{"dev.sigstore.bundle.content":"dsse-envelope"}}"#;

    #[test]
    fn issue_10_bundle_is_cosign_3s_key_based_shape() {
        let key = PrivateKey::generate().unwrap();
        let env = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"x\"}");
        let public = key.public_key();
        let bundle: serde_json::Value =
            serde_json::from_slice(&sigstore_bundle(&env, &public).unwrap()).unwrap();
        assert_eq!(bundle["mediaType"], SIGSTORE_BUNDLE_MEDIA_TYPE);
        // cosign's hint: base64 of the SHA-256 of the SPKI DER.
        let der = public.to_der().unwrap();
        assert_eq!(
            bundle["verificationMaterial"]["publicKey"]["hint"],
            B64.encode(Digest::of_bytes(&der).as_raw())
        );
        let dsse = &bundle["dsseEnvelope"];
        assert_eq!(dsse["payload"], env.payload);
        assert_eq!(dsse["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(dsse["signatures"][0]["sig"], env.signatures[0].sig);
        assert!(dsse["signatures"][0].get("keyid").is_none());
        assert!(bundle["verificationMaterial"].get("tlogEntries").is_none());
    }
}
