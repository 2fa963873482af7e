//! SLSA v1 provenance: structure, subject digests, and a signed round trip through DSSE.

use std::collections::BTreeMap;

use kiln_attest::{
    attestation_manifest, provenance_statement, sign_envelope, verify_envelope, PrivateKey,
    ProvenanceInput, BUILTIN_BASE_NAME, IN_TOTO_PAYLOAD_TYPE, KILN_BUILD_TYPE, SLSA_PROVENANCE_V1,
    STATEMENT_TYPE,
};
use kiln_types::Digest;
use serde_json::Value;

fn input() -> ProvenanceInput {
    let mut internal = BTreeMap::new();
    internal.insert(
        "configDigest".to_owned(),
        Digest::of_bytes(b"kiln.toml").to_string(),
    );
    ProvenanceInput {
        subjects: vec![
            ("registry.example/app".into(), Digest::of_bytes(b"index")),
            (
                "registry.example/app@linux/amd64".into(),
                Digest::of_bytes(b"manifest"),
            ),
        ],
        repo: Some("git+https://example.com/org/app".into()),
        revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        targets: vec!["./cmd/server".into()],
        flags: vec!["--platform=linux/amd64".into()],
        internal,
        base_image: Some(("kiln/static".into(), Digest::of_bytes(b"base"))),
        go_version: Some("go1.27.1".into()),
        builder_id: "https://github.com/kiln-build/kiln@v0.1.0".into(),
        invocation_id: "b2f1c7e0-0000-4000-8000-000000000001".into(),
        started_on: "2026-11-24T10:00:00Z".into(),
        finished_on: "2026-11-24T10:01:30Z".into(),
    }
}

#[test]
fn statement_structure() {
    let inp = input();
    let st = provenance_statement(&inp).unwrap();
    assert_eq!(st["_type"], STATEMENT_TYPE);
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], SLSA_PROVENANCE_V1);
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    let subjects = st["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), inp.subjects.len());
    for (s, (name, d)) in subjects.iter().zip(&inp.subjects) {
        assert_eq!(s["name"], name.as_str());
        assert_eq!(s["digest"]["sha256"], d.hex());
        assert_eq!(s["digest"].as_object().unwrap().len(), 1);
    }
    let bd = &st["predicate"]["buildDefinition"];
    assert_eq!(bd["buildType"], KILN_BUILD_TYPE);
    assert_eq!(
        bd["externalParameters"]["repo"],
        "git+https://example.com/org/app"
    );
    assert_eq!(
        bd["externalParameters"]["revision"],
        inp.revision.as_deref().unwrap()
    );
    assert_eq!(bd["externalParameters"]["targets"][0], "./cmd/server");
    assert_eq!(
        bd["externalParameters"]["flags"][0],
        "--platform=linux/amd64"
    );
    assert_eq!(
        bd["internalParameters"]["configDigest"],
        Digest::of_bytes(b"kiln.toml").to_string()
    );
    let deps = bd["resolvedDependencies"].as_array().unwrap();
    let base = deps.iter().find(|d| d["name"] == "base-image").unwrap();
    assert_eq!(base["digest"]["sha256"], Digest::of_bytes(b"base").hex());
    let go = deps.iter().find(|d| d["name"] == "go-toolchain").unwrap();
    assert_eq!(go["annotations"]["version"], "go1.27.1");
    let src = deps.iter().find(|d| d["name"] == "source").unwrap();
    assert_eq!(src["digest"]["gitCommit"], inp.revision.as_deref().unwrap());
    // Every resource descriptor must carry a uri or a digest (SLSA's rule).
    assert!(deps
        .iter()
        .all(|d| d.get("uri").is_some() || d.get("digest").is_some()));
    // Issue 10: every uri is a URI (has a scheme), never a bare name such as `kiln`.
    for d in deps {
        let uri = d["uri"].as_str().unwrap();
        let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
        assert!(
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)),
            "{uri} is not a URI"
        );
    }
    assert_eq!(go["uri"], "pkg:golang/stdlib@1.27.1");
    assert_eq!(
        base["uri"],
        format!(
            "pkg:oci/static@sha256:{}?repository_url=kiln/static",
            Digest::of_bytes(b"base").hex()
        )
    );
    let rd = &st["predicate"]["runDetails"];
    assert_eq!(rd["builder"]["id"], inp.builder_id.as_str());
    assert_eq!(rd["metadata"]["invocationId"], inp.invocation_id.as_str());
    assert_eq!(rd["metadata"]["startedOn"], "2026-11-24T10:00:00Z");
    assert_eq!(rd["metadata"]["finishedOn"], "2026-11-24T10:01:30Z");
}

#[test]
fn issue_10_builtin_base_is_a_kiln_purl() {
    let mut inp = input();
    inp.base_image = Some((BUILTIN_BASE_NAME.into(), Digest::of_bytes(b"base")));
    let st = provenance_statement(&inp).unwrap();
    let deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let base = deps.iter().find(|d| d["name"] == "base-image").unwrap();
    let uri = base["uri"].as_str().unwrap();
    assert!(uri.starts_with("pkg:cargo/kiln@"), "{uri}");
    assert_eq!(base["digest"]["sha256"], Digest::of_bytes(b"base").hex());
}

#[test]
fn optional_inputs_are_left_out_not_nulled() {
    let mut inp = input();
    inp.repo = None;
    inp.revision = None;
    inp.base_image = None;
    inp.go_version = None;
    let st = provenance_statement(&inp).unwrap();
    let ext = &st["predicate"]["buildDefinition"]["externalParameters"];
    assert!(ext.get("repo").is_none() && ext.get("revision").is_none());
    assert_eq!(
        st["predicate"]["buildDefinition"]["resolvedDependencies"],
        Value::Array(vec![])
    );
    assert!(!serde_json::to_string(&st).unwrap().contains("null"));
}

#[test]
fn signed_provenance_round_trip() {
    let key = PrivateKey::generate().unwrap();
    let payload = serde_json::to_vec(&provenance_statement(&input()).unwrap()).unwrap();
    let env = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, &payload);
    let art = attestation_manifest(&env, SLSA_PROVENANCE_V1).unwrap();
    let stored = kiln_attest::Envelope::from_json(&art.layers[0].bytes).unwrap();
    let back = verify_envelope(&key.public_key(), &stored, IN_TOTO_PAYLOAD_TYPE).unwrap();
    let st: Value = serde_json::from_slice(&back).unwrap();
    assert_eq!(
        st["subject"][1]["digest"]["sha256"],
        Digest::of_bytes(b"manifest").hex()
    );
}
