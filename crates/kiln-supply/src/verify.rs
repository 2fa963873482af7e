//! Checking side of `kiln verify`: signature, attestations, static binaries, policy.

use kiln_attest::{
    cosign_tag, evaluate, verify_envelope, verify_signature, verify_simple_signing, BinaryFact,
    Envelope, Facts, ModuleFact, Policy, PublicKey, SignedLayer, DSSE_ENVELOPE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SLSA_PROVENANCE_V1,
};
use kiln_registry::{Client, Reference, Repository};
use kiln_types::Digest;
use kiln_verify::{check, Expectation, Severity};
use serde::Serialize;

use crate::error::Result;
use crate::image::{load_image, ImageContents, ImageSource};
use crate::oci::{fetch_blob, read_tagged};
use crate::subject::{CYCLONEDX_PREDICATE_TYPE, SPDX_PREDICATE_TYPE};

/// One check of `kiln verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Check name: `signature`, `sbom`, `provenance`, `static-binaries`, `policy` or
    /// `policy:<rule>` for a broken policy rule.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why it passed or failed, naming the item concerned.
    pub detail: String,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            passed: true,
            detail: detail.into(),
        }
    }
    fn fail(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            passed: false,
            detail: detail.into(),
        }
    }
}

/// The result of [`verify_image`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The image as given.
    pub image: String,
    /// The digest the reference resolved to; every check is about this digest.
    pub digest: Digest,
    /// Every check in order.
    pub checks: Vec<Check>,
    /// True when every check passed.
    pub passed: bool,
}

/// Verifies the image `reference` points at against `key` (and `policy`, if given):
///
/// 1. `signature`: a `.sig` layer whose signature verifies with `key` and whose simple-signing
///    payload names this exact digest,
/// 2. `sbom` and `provenance`: DSSE attestations under `.att` (or OCI referrers) signed by
///    `key` whose in-toto subject is this digest,
/// 3. `static-binaries`: every executable in the image is statically linked,
/// 4. `policy`: the rules of `policy`, evaluated by kiln-attest.
///
/// A failed check is data in the report; `Err` means the image could not be read at all.
pub async fn verify_image(
    client: &Client,
    reference: &Reference,
    key: &PublicKey,
    policy: Option<&Policy>,
) -> Result<VerifyReport> {
    let root = client.get_manifest(reference).await?;
    let digest = root.digest;
    let repo = &reference.repository;
    let mut checks = vec![check_signature(client, repo, &digest, key).await?];

    let att = read_attestations(client, repo, &digest, key).await?;
    let has_sbom = att
        .verified
        .iter()
        .any(|t| t == SPDX_PREDICATE_TYPE || t == CYCLONEDX_PREDICATE_TYPE);
    let has_provenance = att.verified.iter().any(|t| t == SLSA_PROVENANCE_V1);
    checks.push(attestation_check("sbom", "SBOM", has_sbom, &att, |t| {
        t == SPDX_PREDICATE_TYPE || t == CYCLONEDX_PREDICATE_TYPE
    }));
    checks.push(attestation_check(
        "provenance",
        "SLSA provenance",
        has_provenance,
        &att,
        |t| t == SLSA_PROVENANCE_V1,
    ));

    let pinned = Reference::by_digest(repo.clone(), digest);
    let contents = load_image(client, &ImageSource::Registry(pinned)).await?;
    checks.push(static_check(&contents));
    if let Some(policy) = policy {
        checks.extend(policy_checks(policy, &contents, has_sbom, has_provenance));
    }
    Ok(VerifyReport {
        image: reference.to_string(),
        digest,
        passed: checks.iter().all(|c| c.passed),
        checks,
    })
}

async fn check_signature(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    key: &PublicKey,
) -> Result<Check> {
    const NAME: &str = "signature";
    let tag = cosign_tag(digest, "sig");
    let Some(sig_image) = read_tagged(client, repo, &tag).await? else {
        return Ok(Check::fail(
            NAME,
            format!("no signature for {digest} (tag {tag} does not exist); the image is unsigned or changed after it was signed; hint: kiln sign {repo}@{digest} --key KEY"),
        ));
    };
    let mut problems = Vec::new();
    for layer in &sig_image.layers {
        match verify_sig_layer(layer, key, digest) {
            Ok(reference) => {
                return Ok(Check::pass(
                    NAME,
                    format!("signed by the key; payload names {digest} ({reference})"),
                ))
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        problems.push("the signature image has no signature layers".into());
    }
    problems.dedup();
    Ok(Check::fail(NAME, problems.join("; ")))
}

fn verify_sig_layer(
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

/// Predicate types of attestations that verified, and why the others did not.
struct Attestations {
    tag_found: bool,
    verified: Vec<String>,
    problems: Vec<String>,
}

async fn read_attestations(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    key: &PublicKey,
) -> Result<Attestations> {
    let tag = cosign_tag(digest, "att");
    let mut out = Attestations {
        tag_found: false,
        verified: Vec::new(),
        problems: Vec::new(),
    };
    let mut envelopes: Vec<Vec<u8>> = Vec::new();
    if let Some(att) = read_tagged(client, repo, &tag).await? {
        out.tag_found = true;
        envelopes.extend(
            att.layers
                .into_iter()
                .filter(|l| l.media_type == DSSE_ENVELOPE_MEDIA_TYPE)
                .map(|l| l.bytes),
        );
    }
    // The cosign tags above are authoritative; referrers are extra, so a registry that
    // refuses the lookup (no tag listing, no API) must not fail the whole verification.
    let descriptors = match client
        .get_referrers(repo, digest, Some(DSSE_ENVELOPE_MEDIA_TYPE))
        .await
    {
        Ok(r) => r.descriptors,
        Err(e) => {
            out.problems.push(format!("referrers lookup failed: {e}"));
            Vec::new()
        }
    };
    for d in descriptors {
        let m = client
            .get_manifest(&Reference::by_digest(repo.clone(), d.digest))
            .await?;
        let layers: Vec<Digest> = serde_json::from_slice::<serde_json::Value>(&m.bytes)
            .ok()
            .and_then(|v| {
                v["layers"].as_array().map(|ls| {
                    ls.iter()
                        .filter_map(|l| l["digest"].as_str()?.parse().ok())
                        .collect()
                })
            })
            .unwrap_or_default();
        for l in layers {
            envelopes.push(fetch_blob(client, repo, &l).await?);
            out.tag_found = true;
        }
    }
    for bytes in envelopes {
        match verify_statement(&bytes, key, digest) {
            Ok(t) => out.verified.push(t),
            Err(e) => out.problems.push(e),
        }
    }
    out.verified.sort();
    out.verified.dedup();
    out.problems.dedup();
    Ok(out)
}

fn verify_statement(bytes: &[u8], key: &PublicKey, digest: &Digest) -> Result<String, String> {
    let env = Envelope::from_json(bytes).map_err(|e| e.to_string())?;
    let payload = verify_envelope(key, &env, IN_TOTO_PAYLOAD_TYPE)
        .map_err(|e| format!("attestation: {e}"))?;
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

fn attestation_check(
    name: &str,
    what: &str,
    present: bool,
    att: &Attestations,
    wanted: impl Fn(&str) -> bool,
) -> Check {
    if present {
        let types: Vec<&str> = att
            .verified
            .iter()
            .map(String::as_str)
            .filter(|t| wanted(t))
            .collect();
        return Check::pass(
            name,
            format!("signed attestation present: {}", types.join(", ")),
        );
    }
    if !att.tag_found {
        return Check::fail(
            name,
            format!("no {what} attached (no attestations for this digest); hint: kiln sign --attest or kiln image --push --sign"),
        );
    }
    let mut detail = format!("no {what} attestation signed by the key for this digest");
    if !att.problems.is_empty() {
        detail.push_str(": ");
        detail.push_str(&att.problems.join("; "));
    }
    Check::fail(name, detail)
}

fn static_check(contents: &ImageContents) -> Check {
    const NAME: &str = "static-binaries";
    let mut problems = Vec::new();
    let mut count = 0;
    for img in &contents.images {
        let exp = Expectation {
            static_required: true,
            goos: img.platform.as_ref().map(|p| p.os.clone()),
            goarch: img.platform.as_ref().map(|p| p.arch.clone()),
            cgo_packages: Vec::new(),
        };
        for b in &img.binaries {
            count += 1;
            for f in check(&b.report, &exp) {
                // A static non-Go executable (busybox) is fine here: only linkage matters.
                if f.severity == Severity::Error && f.code != "no-buildinfo" {
                    problems.push(format!("{}: {} ({})", b.path, f.message, f.code));
                }
            }
        }
    }
    match (count, problems.is_empty()) {
        (0, _) => Check::pass(NAME, "no executables in the image"),
        (n, true) => Check::pass(NAME, format!("{n} executable(s), all static")),
        (_, false) => Check::fail(NAME, problems.join("; ")),
    }
}

/// The facts policy rules are evaluated on, per platform image.
pub fn policy_facts(contents: &ImageContents, has_sbom: bool, has_provenance: bool) -> Vec<Facts> {
    contents
        .images
        .iter()
        .map(|img| {
            let mut modules = Vec::new();
            for b in &img.binaries {
                let Some(go) = &b.report.go else { continue };
                for m in std::iter::once(&go.main).chain(go.deps.iter()) {
                    modules.push(ModuleFact {
                        path: m.path.clone(),
                        version: m.version.clone(),
                    });
                    // Deny lists must catch a module whether it is named or substituted in.
                    if let Some(r) = &m.replace {
                        modules.push(ModuleFact {
                            path: r.path.clone(),
                            version: r.version.clone(),
                        });
                    }
                }
            }
            modules.sort_by(|a, b| (&a.path, &a.version).cmp(&(&b.path, &b.version)));
            modules.dedup();
            Facts {
                base_digest: img.base().map(|(_, d)| d),
                modules,
                user: img.config.config.user.clone(),
                binaries: img
                    .binaries
                    .iter()
                    .map(|b| BinaryFact {
                        path: b.path.clone(),
                        is_static: b.report.linkage != kiln_verify::Linkage::Dynamic,
                    })
                    .collect(),
                has_sbom,
                has_provenance,
            }
        })
        .collect()
}

fn policy_checks(
    policy: &Policy,
    contents: &ImageContents,
    has_sbom: bool,
    has_provenance: bool,
) -> Vec<Check> {
    let multi = contents.images.len() > 1;
    let mut out = Vec::new();
    for (img, facts) in contents
        .images
        .iter()
        .zip(policy_facts(contents, has_sbom, has_provenance))
    {
        for v in evaluate(policy, &facts) {
            let prefix = match (&img.platform, multi) {
                (Some(p), true) => format!("{p}: "),
                _ => String::new(),
            };
            out.push(Check::fail(
                &format!("policy:{}", v.rule),
                format!("{prefix}{}", v.message),
            ));
        }
    }
    out.dedup();
    if out.is_empty() {
        out.push(Check::pass("policy", "every policy rule is satisfied"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_attest::{
        generate_keypair, load_private_key, load_public_key, sign_envelope, sign_payload,
        simple_signing_payload, statement,
    };

    fn keys() -> (kiln_attest::PrivateKey, PublicKey) {
        let (private, public) = generate_keypair(b"pw").unwrap();
        (
            load_private_key(private.as_bytes(), b"pw").unwrap(),
            load_public_key(public.as_bytes()).unwrap(),
        )
    }

    #[test]
    fn signature_layer_rules() {
        let (key, public) = keys();
        let (_, other_public) = keys();
        let digest = Digest::of_bytes(b"image");
        let payload = simple_signing_payload("127.0.0.1:5000/app", &digest);
        let layer = SignedLayer::signature(payload.clone(), &sign_payload(&key, &payload));
        assert_eq!(
            verify_sig_layer(&layer, &public, &digest).unwrap(),
            "127.0.0.1:5000/app"
        );
        let err = verify_sig_layer(&layer, &other_public, &digest).unwrap_err();
        assert!(err.contains("another key"), "{err}");
        let other = Digest::of_bytes(b"other image");
        let err = verify_sig_layer(&layer, &public, &other).unwrap_err();
        assert!(err.contains("another image"), "{err}");
        let mut unsigned = layer.clone();
        unsigned.annotations.clear();
        assert!(verify_sig_layer(&unsigned, &public, &digest)
            .unwrap_err()
            .contains(SIGNATURE_ANNOTATION));
        let mut tampered = layer;
        tampered.bytes = simple_signing_payload("127.0.0.1:5000/app", &other);
        assert!(verify_sig_layer(&tampered, &public, &other)
            .unwrap_err()
            .contains("does not verify"));
    }

    #[test]
    fn statement_must_name_the_digest_and_be_signed_by_the_key() {
        let (key, public) = keys();
        let (_, other_public) = keys();
        let digest = Digest::of_bytes(b"image");
        let stmt = statement(
            &[("app".into(), digest)],
            SLSA_PROVENANCE_V1,
            serde_json::json!({}),
        );
        let payload = serde_json::to_vec(&stmt).unwrap();
        let env = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, &payload)
            .to_json()
            .unwrap();
        assert_eq!(
            verify_statement(&env, &public, &digest).unwrap(),
            SLSA_PROVENANCE_V1
        );
        assert!(verify_statement(&env, &other_public, &digest).is_err());
        let err = verify_statement(&env, &public, &Digest::of_bytes(b"x")).unwrap_err();
        assert!(err.contains("another image"), "{err}");
        assert!(verify_statement(b"{}", &public, &digest).is_err());
    }
}
