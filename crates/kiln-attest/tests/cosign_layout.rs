//! Known answers for cosign's storage layout and the signature checks built on it.

use std::collections::BTreeMap;

use kiln_attest::{
    attestation_manifest, cosign_tag, referrer_manifest, sign_envelope, sign_payload,
    signature_manifest, simple_signing_payload, verify_signature, verify_simple_signing,
    AttestError, Descriptor, PrivateKey, IN_TOTO_PAYLOAD_TYPE, OCI_MANIFEST_MEDIA_TYPE,
    SLSA_PROVENANCE_V1, SPDX_MEDIA_TYPE,
};
use kiln_types::Digest;
use serde_json::Value;

const HEX: &str = "97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36";

fn digest() -> Digest {
    format!("sha256:{HEX}").parse().unwrap()
}

#[test]
fn payload_bytes_match_cosign() {
    // What cosign's Go encoder produces for `cosign sign gcr.io/dlorenc-vmtest2/demo@sha256:97fc..`.
    let expected = format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"gcr.io/dlorenc-vmtest2/demo\"}},\"image\":{{\"docker-manifest-digest\":\"sha256:{HEX}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}"
    );
    assert_eq!(
        String::from_utf8(simple_signing_payload(
            "gcr.io/dlorenc-vmtest2/demo",
            &digest()
        ))
        .unwrap(),
        expected
    );
}

#[test]
fn tag_names_follow_the_spec() {
    // Example from cosign's SIGNATURE_SPEC.md.
    assert_eq!(cosign_tag(&digest(), "sig"), format!("sha256-{HEX}.sig"));
    assert_eq!(cosign_tag(&digest(), "att"), format!("sha256-{HEX}.att"));
    assert_eq!(cosign_tag(&digest(), "sbom"), format!("sha256-{HEX}.sbom"));
}

#[test]
fn signature_image_layout() {
    let payload = simple_signing_payload("registry.example/app", &digest());
    let art = signature_manifest(&payload, "MEUCIQ==").unwrap();
    let m: Value = serde_json::from_slice(&art.manifest).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(m["config"]["digest"], art.config.digest.to_string());
    let layer = &m["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert_eq!(layer["digest"], Digest::of_bytes(&payload).to_string());
    assert_eq!(layer["size"], payload.len());
    assert_eq!(
        layer["annotations"]["dev.cosignproject.cosign/signature"],
        "MEUCIQ=="
    );
    assert_eq!(art.layers[0].bytes, payload);
    assert_eq!(art.manifest_digest, Digest::of_bytes(&art.manifest));
    // The config blob cosign's image library writes for a one-layer signature image.
    assert_eq!(
        String::from_utf8(art.config.bytes.clone()).unwrap(),
        format!(
            "{{\"architecture\":\"\",\"created\":\"0001-01-01T00:00:00Z\",\"history\":[{{\"created\":\"0001-01-01T00:00:00Z\"}}],\"os\":\"\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{}\"]}},\"config\":{{}}}}",
            Digest::of_bytes(&payload)
        )
    );
    // Same input, same bytes: the registry can compare digests instead of re-pushing.
    assert_eq!(
        signature_manifest(&payload, "MEUCIQ==").unwrap().manifest,
        art.manifest
    );
}

#[test]
fn attestation_image_layout() {
    let key = PrivateKey::generate().unwrap();
    let env = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, b"{}");
    let art = attestation_manifest(&env, SLSA_PROVENANCE_V1).unwrap();
    let m: Value = serde_json::from_slice(&art.manifest).unwrap();
    let layer = &m["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    assert_eq!(layer["annotations"]["predicateType"], SLSA_PROVENANCE_V1);
    assert_eq!(
        layer["annotations"]["dev.cosignproject.cosign/signature"],
        ""
    );
    let stored: Value = serde_json::from_slice(&art.layers[0].bytes).unwrap();
    assert_eq!(stored["payloadType"], IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(stored["payload"], "e30=");
}

#[test]
fn referrer_artifact_layout() {
    let subject = Descriptor::of(OCI_MANIFEST_MEDIA_TYPE, b"{\"schemaVersion\":2}");
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#;
    let art = referrer_manifest(SPDX_MEDIA_TYPE, sbom, subject.clone(), BTreeMap::new()).unwrap();
    let m: Value = serde_json::from_slice(&art.manifest).unwrap();
    assert_eq!(m["artifactType"], "application/spdx+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    // The OCI 1.1 empty descriptor is the two bytes `{}`.
    assert_eq!(
        m["config"]["digest"],
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(m["config"]["size"], 2);
    assert_eq!(m["config"]["data"], "e30=");
    assert_eq!(art.config.bytes, b"{}");
    assert_eq!(m["layers"][0]["mediaType"], "application/spdx+json");
    assert_eq!(m["layers"][0]["digest"], Digest::of_bytes(sbom).to_string());
    assert_eq!(m["subject"]["digest"], subject.digest.to_string());
    assert_eq!(m["subject"]["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
    assert!(m.get("annotations").is_none());
}

#[test]
fn sign_verify_and_every_kind_of_tampering() {
    let key = PrivateKey::generate().unwrap();
    let public = key.public_key();
    let payload = simple_signing_payload("registry.example/app", &digest());
    let sig = sign_payload(&key, &payload);
    verify_signature(&public, &payload, &sig).unwrap();
    let parsed = verify_simple_signing(&payload, &digest()).unwrap();
    assert_eq!(parsed.docker_reference, "registry.example/app");

    // Changed payload.
    let mut changed = payload.clone();
    changed.extend_from_slice(b" ");
    assert!(matches!(
        verify_signature(&public, &changed, &sig),
        Err(AttestError::BadSignature)
    ));
    // Wrong key.
    let other = PrivateKey::generate().unwrap().public_key();
    assert!(matches!(
        verify_signature(&other, &payload, &sig),
        Err(AttestError::BadSignature)
    ));
    // Truncated signature.
    let truncated = &sig[..sig.len() - 8];
    assert!(matches!(
        verify_signature(&public, &payload, truncated),
        Err(AttestError::MalformedSignature { .. })
    ));
    // Valid signature over a payload for another image.
    let another = Digest::of_bytes(b"another image");
    let other_payload = simple_signing_payload("registry.example/app", &another);
    let other_sig = sign_payload(&key, &other_payload);
    verify_signature(&public, &other_payload, &other_sig).unwrap();
    let err = verify_simple_signing(&other_payload, &digest()).unwrap_err();
    assert!(
        matches!(err, AttestError::PayloadForAnotherImage { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&another.to_string()));
    // Malformed payloads.
    for bad in [
        &b"not json"[..],
        br#"{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"sha256:abc"},"type":"cosign container image signature"},"optional":null}"#,
        br#"{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"x"},"type":"atomic container signature"},"optional":null}"#,
    ] {
        assert!(matches!(
            verify_simple_signing(bad, &digest()),
            Err(AttestError::MalformedPayload { .. })
        ));
    }
}

#[test]
fn signatures_are_ecdsa_p256_der() {
    let key = PrivateKey::generate().unwrap();
    let sig = sign_payload(&key, b"x");
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&sig)
        .unwrap();
    // ASN.1 SEQUENCE of two INTEGERs, at most 72 bytes for P-256.
    assert_eq!(der[0], 0x30);
    assert!(der.len() <= 72 && der.len() >= 8, "{}", der.len());
    assert_eq!(usize::from(der[1]), der.len() - 2);
}
