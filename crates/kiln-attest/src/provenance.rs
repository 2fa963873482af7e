//! SLSA Provenance v1 inside an in-toto Statement v1.

use std::collections::BTreeMap;

use kiln_types::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Result;
use crate::model::{oci_purl, stdlib_purl};

/// `_type` of in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Predicate type of SLSA Provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// kiln's build type URI: what `externalParameters` mean is defined by this version.
pub const KILN_BUILD_TYPE: &str = "https://github.com/kiln-build/kiln/buildtypes/go@v1";

/// Everything the provenance records about one build; the CLI fills it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceInput {
    /// Artifacts produced: (name, sha256), e.g. the image reference and manifest digest.
    pub subjects: Vec<(String, Digest)>,
    /// Source repository URI, e.g. `git+https://example.com/org/app`.
    pub repo: Option<String>,
    /// Source revision (git commit).
    pub revision: Option<String>,
    /// Build targets (Go packages or kiln target names).
    pub targets: Vec<String>,
    /// User-controlled flags that influenced the build.
    pub flags: Vec<String>,
    /// Builder-controlled parameters (cache settings, kiln config hash...).
    pub internal: BTreeMap<String, String>,
    /// Base image (reference, manifest digest).
    pub base_image: Option<(String, Digest)>,
    /// Go toolchain version, e.g. `go1.27.1`.
    pub go_version: Option<String>,
    /// `runDetails.builder.id`, e.g. `https://github.com/kiln-build/kiln@v0.1.0`.
    pub builder_id: String,
    /// Unique id of this invocation.
    pub invocation_id: String,
    /// Start time, RFC 3339.
    pub started_on: String,
    /// End time, RFC 3339.
    pub finished_on: String,
}

/// The in-toto statement (JSON value) carrying SLSA v1 provenance for `input`.
pub fn provenance_statement(input: &ProvenanceInput) -> Result<Value> {
    let subject: Vec<Value> = input
        .subjects
        .iter()
        .map(|(name, d)| json!({"name": name, "digest": {"sha256": d.hex()}}))
        .collect();
    let mut external = json!({
        "targets": input.targets,
        "flags": input.flags,
    });
    if let Some(r) = &input.repo {
        external["repo"] = json!(r);
    }
    if let Some(r) = &input.revision {
        external["revision"] = json!(r);
    }
    let mut resolved = Vec::new();
    if let Some(repo) = &input.repo {
        let mut dep = json!({"uri": repo, "name": "source"});
        if let Some(rev) = &input.revision {
            dep["uri"] = json!(format!("{repo}@{rev}"));
            dep["digest"] = json!({"gitCommit": rev});
        }
        resolved.push(dep);
    }
    if let Some((name, d)) = &input.base_image {
        resolved.push(json!({
            "uri": base_image_uri(name, d),
            "name": "base-image",
            "digest": {"sha256": d.hex()},
            "annotations": {"reference": name},
        }));
    }
    if let Some(go) = &input.go_version {
        resolved.push(json!({
            "uri": stdlib_purl(go),
            "name": "go-toolchain",
            "annotations": {"version": go},
        }));
    }
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": KILN_BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": input.internal,
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {"id": input.builder_id},
                "metadata": {
                    "invocationId": input.invocation_id,
                    "startedOn": input.started_on,
                    "finishedOn": input.finished_on,
                },
            },
        },
    }))
}

/// Name of kiln's built-in base (the `org.opencontainers.image.base.name` kiln writes for it).
pub const BUILTIN_BASE_NAME: &str = "kiln";

/// `resolvedDependencies[].uri` of a base image; SLSA wants a URI, and a purl is one (scheme
/// `pkg:`) that SLSA recommends for packages.
///
/// A pulled base is `pkg:oci/<name>@sha256:...?repository_url=<repo>`, resolvable like any
/// image reference. kiln's built-in base is no registry image: kiln writes that layer itself,
/// so the resource is "the base of this kiln release", `pkg:cargo/kiln@<version>`, and the
/// sha256 digest beside it pins the exact bytes (an https URL would name a web page, not the
/// artifact, and `oci://` is no registered scheme).
fn base_image_uri(name: &str, digest: &Digest) -> String {
    if name == BUILTIN_BASE_NAME || name.is_empty() {
        format!("pkg:cargo/kiln@{}", env!("CARGO_PKG_VERSION"))
    } else {
        oci_purl(name, digest, None)
    }
}

/// A generic in-toto statement wrapping any predicate (e.g. an SBOM document).
pub fn statement(subjects: &[(String, Digest)], predicate_type: &str, predicate: Value) -> Value {
    let subject: Vec<Value> = subjects
        .iter()
        .map(|(name, d)| json!({"name": name, "digest": {"sha256": d.hex()}}))
        .collect();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": predicate_type,
        "predicate": predicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_image_uris_are_uris() {
        let d = Digest::of_bytes(b"base");
        assert_eq!(
            base_image_uri(BUILTIN_BASE_NAME, &d),
            format!("pkg:cargo/kiln@{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            base_image_uri("cgr.dev/chainguard/static:latest", &d),
            format!(
                "pkg:oci/static@sha256:{}?repository_url=cgr.dev/chainguard/static",
                d.hex()
            )
        );
    }
}
