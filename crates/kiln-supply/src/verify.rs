//! Checking side of `kiln verify`: signature, attestations, static binaries, policy.

mod evidence;

use kiln_attest::{evaluate, BinaryFact, Facts, ModuleFact, Policy, PublicKey, SLSA_PROVENANCE_V1};
use kiln_registry::{Client, Reference, Repository};
use kiln_types::Digest;
use kiln_verify::{check, Expectation, Severity};
use serde::Serialize;

use crate::error::Result;
use crate::image::{load_image, ImageContents, ImageSource};
use crate::subject::{CYCLONEDX_PREDICATE_TYPE, SPDX_PREDICATE_TYPE};
use evidence::{Evidence, Verified};

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
    /// Short id of the public key checked against (`sha256:` + 16 hex digits of the SHA-256 of
    /// its DER), as the check details name it.
    pub key_id: String,
    /// Every check in order.
    pub checks: Vec<Check>,
    /// True when every check passed.
    pub passed: bool,
}

/// Verifies the image `reference` points at against `key` (and `policy`, if given):
///
/// 1. `signature`: a signature made by `key` over this exact digest: a `.sig` layer (cosign 2,
///    cosign 3 `--new-bundle-format=false`, kiln) whose simple-signing payload names the
///    digest, or a Sigstore bundle referrer (cosign 3's default) whose DSSE statement
///    (`https://sigstore.dev/cosign/sign/v1`) names it,
/// 2. `sbom` and `provenance`: in-toto attestations signed by `key` whose subject is this
///    digest, from `.att`, kiln's DSSE referrers or cosign 3's bundle referrers; provenance
///    must be SLSA v1,
/// 3. `static-binaries`: every executable in the image is statically linked,
/// 4. `policy`: the rules of `policy`, evaluated by kiln-attest.
///
/// Referrers come from the registry's referrers API or, without it, the OCI 1.1 fallback tag
/// index. Bundles are verified with the key only: transparency-log entries are neither
/// required nor checked. A failed check is data in the report and says what was searched;
/// `Err` means the image could not be read at all.
pub async fn verify_image(
    client: &Client,
    reference: &Reference,
    key: &PublicKey,
    policy: Option<&Policy>,
) -> Result<VerifyReport> {
    let root = client.get_manifest(reference).await?;
    let digest = root.digest;
    let repo = &reference.repository;
    let ev = evidence::collect(client, repo, &digest, &root.bytes, key).await?;
    let mut checks = vec![signature_check(&ev, repo, &digest)];

    let sbom = sbom_check(&ev);
    let has_sbom = sbom.passed;
    checks.push(sbom);
    let provenance = provenance_check(&ev);
    let has_provenance = provenance.passed;
    checks.push(provenance);

    let pinned = Reference::by_digest(repo.clone(), digest);
    let contents = load_image(client, &ImageSource::Registry(pinned)).await?;
    checks.push(static_check(&contents));
    if let Some(policy) = policy {
        let other_provenance = ev
            .attestations
            .iter()
            .map(|v| v.predicate_type.as_str())
            .find(|t| t.starts_with(SLSA_PROVENANCE_PREFIX) && *t != SLSA_PROVENANCE_V1);
        checks.extend(policy_checks(
            policy,
            &contents,
            has_sbom,
            has_provenance,
            other_provenance,
        ));
    }
    Ok(VerifyReport {
        image: reference.to_string(),
        digest,
        key_id: ev.key_id.clone(),
        passed: checks.iter().all(|c| c.passed),
        checks,
    })
}

fn is_sbom(predicate_type: &str) -> bool {
    predicate_type == SPDX_PREDICATE_TYPE || predicate_type == CYCLONEDX_PREDICATE_TYPE
}

fn sbom_check(ev: &Evidence) -> Check {
    let mut check = attestation_check("sbom", "SBOM", ev, is_sbom);
    if let (false, Some(note)) = (check.passed, ev.unsigned_sbom_note()) {
        check.detail.push_str("; ");
        check.detail.push_str(&note);
    }
    check
}

/// Predicate types of SLSA provenance of any version (v0.1, v0.2, v1).
const SLSA_PROVENANCE_PREFIX: &str = "https://slsa.dev/provenance/";

fn signature_check(ev: &Evidence, repo: &Repository, digest: &Digest) -> Check {
    const NAME: &str = "signature";
    if !ev.signatures.is_empty() {
        let found: Vec<String> = ev
            .signatures
            .iter()
            .map(|v| format!("{} ({})", v.source, v.predicate_type))
            .collect();
        return Check::pass(
            NAME,
            format!(
                "signed by the key {}; payload names {digest}: {}",
                ev.key_id,
                found.join(", ")
            ),
        );
    }
    let searched = format!(
        "searched {}; {}",
        ev.sig_tag_summary(),
        ev.referrers_summary("a signature bundle")
    );
    if ev.sig_problems.is_empty() {
        return Check::fail(
            NAME,
            format!("no signature for {digest} ({searched}); the image is unsigned or changed after it was signed; hint: kiln sign {repo}@{digest} --key KEY"),
        );
    }
    Check::fail(
        NAME,
        format!(
            "no signature for {digest} verifies with key {}: {} ({searched})",
            ev.key_id,
            ev.sig_problems.join("; ")
        ),
    )
}

fn attestation_check(name: &str, what: &str, ev: &Evidence, wanted: fn(&str) -> bool) -> Check {
    let found: Vec<String> = ev
        .attestations
        .iter()
        .filter(|v| wanted(&v.predicate_type))
        .map(|v| format!("{} ({})", v.predicate_type, v.source))
        .collect();
    if !found.is_empty() {
        return Check::pass(
            name,
            format!("signed attestation present: {}", found.join(", ")),
        );
    }
    let searched = format!(
        "searched {}; {}",
        ev.att_tag_summary(),
        ev.referrers_summary(&format!("a matching {what} attestation"))
    );
    if !ev.any_attestation_found() {
        return Check::fail(
            name,
            format!("no {what} attached (no attestations for this digest; {searched}); hint: kiln sign --attest or kiln image --push --sign"),
        );
    }
    let mut detail = format!(
        "no {what} attestation signed by key {} for this digest",
        ev.key_id
    );
    // Problems of attestations claiming another predicate type are about another check.
    let problems: Vec<&str> = ev
        .att_problems
        .iter()
        .filter(|(t, _)| t.as_deref().is_none_or(wanted))
        .map(|(_, p)| p.as_str())
        .collect();
    if !problems.is_empty() {
        detail.push_str(": ");
        detail.push_str(&problems.join("; "));
    }
    let others: Vec<&str> = ev
        .attestations
        .iter()
        .map(|v| v.predicate_type.as_str())
        .collect();
    if !others.is_empty() {
        detail.push_str(&format!(
            "; verified attestations of other types: {}",
            others.join(", ")
        ));
    }
    detail.push_str(&format!(" ({searched})"));
    Check::fail(name, detail)
}

fn provenance_check(ev: &Evidence) -> Check {
    let check = attestation_check("provenance", "SLSA provenance", ev, |t| {
        t == SLSA_PROVENANCE_V1
    });
    if check.passed {
        return check;
    }
    // Older SLSA provenance signed by the key: found, but not what kiln accepts.
    let older: Vec<&Verified> = ev
        .attestations
        .iter()
        .filter(|v| v.predicate_type.starts_with(SLSA_PROVENANCE_PREFIX))
        .collect();
    if let Some(v) = older.first() {
        let version = v
            .predicate_type
            .trim_start_matches(SLSA_PROVENANCE_PREFIX)
            .to_owned();
        return Check::fail(
            "provenance",
            format!(
                "provenance found but SLSA {version} ({}, {}); kiln requires {SLSA_PROVENANCE_V1}; hint: attest with predicate type {SLSA_PROVENANCE_V1} (cosign attest --type slsaprovenance1, or kiln sign --attest)",
                v.predicate_type, v.source
            ),
        );
    }
    // An older provenance that did not verify: say so in the terms of the version rule too.
    let unverified_older = ev.att_problems.iter().find_map(|(t, problem)| {
        t.as_deref()
            .filter(|t| t.starts_with(SLSA_PROVENANCE_PREFIX) && *t != SLSA_PROVENANCE_V1)
            .map(|t| (t, problem))
    });
    match unverified_older {
        Some((t, problem)) => Check::fail(
            "provenance",
            format!(
                "{}; an attestation for predicate {t} was found ({problem}), but v1 ({SLSA_PROVENANCE_V1}) is required",
                check.detail
            ),
        ),
        None => check,
    }
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
                other_provenance: None,
            }
        })
        .collect()
}

fn policy_checks(
    policy: &Policy,
    contents: &ImageContents,
    has_sbom: bool,
    has_provenance: bool,
    other_provenance: Option<&str>,
) -> Vec<Check> {
    let multi = contents.images.len() > 1;
    let mut out = Vec::new();
    for (img, mut facts) in
        contents
            .images
            .iter()
            .zip(policy_facts(contents, has_sbom, has_provenance))
    {
        facts.other_provenance = other_provenance.map(str::to_owned);
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
    use super::evidence::{verify_sig_layer, verify_statement};
    use super::*;
    use kiln_attest::{
        generate_keypair, load_private_key, load_public_key, sign_envelope, sign_payload,
        simple_signing_payload, statement, SignedLayer, IN_TOTO_PAYLOAD_TYPE, SIGNATURE_ANNOTATION,
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

    fn evidence(attestations: &[&str], problems: &[(Option<&str>, &str)]) -> Evidence {
        use evidence::{ReferrersSeen, TagSeen};
        let digest = Digest::of_bytes(b"image");
        Evidence {
            key_id: "sha256:0123456789abcdef".into(),
            sig_tag: TagSeen {
                tag: kiln_attest::cosign_tag(&digest, "sig"),
                layers: None,
            },
            att_tag: TagSeen {
                tag: kiln_attest::cosign_tag(&digest, "att"),
                layers: Some(attestations.len() + problems.len()),
            },
            sbom_tag: TagSeen {
                tag: kiln_attest::cosign_tag(&digest, "sbom"),
                layers: None,
            },
            referrers: ReferrersSeen::Listed {
                discovered: kiln_registry::Discovered {
                    source: kiln_registry::ReferrersSource::Api,
                    fallback_tag: kiln_registry::referrers_fallback_tag(&digest),
                    descriptors: Vec::new(),
                },
                bundles: 0,
                envelopes: 0,
            },
            signatures: Vec::new(),
            sig_problems: Vec::new(),
            attestations: attestations
                .iter()
                .map(|t| Verified {
                    predicate_type: (*t).to_owned(),
                    source: "bundle referrer sha256:0123456789ab".into(),
                })
                .collect(),
            att_problems: problems
                .iter()
                .map(|(t, p)| (t.map(str::to_owned), (*p).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn issue_10_slsa_v02_is_named_not_missing() {
        let ev = evidence(
            &["https://slsa.dev/provenance/v0.2", SPDX_PREDICATE_TYPE],
            &[],
        );
        let c = provenance_check(&ev);
        assert!(!c.passed);
        assert!(
            c.detail.starts_with(
                "provenance found but SLSA v0.2 (https://slsa.dev/provenance/v0.2, bundle referrer"
            ) && c
                .detail
                .contains("kiln requires https://slsa.dev/provenance/v1"),
            "{}",
            c.detail
        );
        // With v1 present as well, v1 wins.
        let ev = evidence(
            &["https://slsa.dev/provenance/v0.2", SLSA_PROVENANCE_V1],
            &[],
        );
        assert!(provenance_check(&ev).passed);
        // A v0.2 that did not verify: the key failure and the version rule are both said.
        let ev = evidence(
            &[],
            &[(
                Some("https://slsa.dev/provenance/v0.2"),
                "bundle referrer sha256:0123: does not verify with key k",
            )],
        );
        let c = provenance_check(&ev);
        assert!(
            c.detail
                .contains("(bundle referrer sha256:0123: does not verify with key k), but v1"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn problems_are_reported_by_the_check_they_concern() {
        let ev = evidence(
            &[SLSA_PROVENANCE_V1],
            &[
                (Some(SPDX_PREDICATE_TYPE), "spdx problem"),
                (None, "unreadable problem"),
            ],
        );
        let sbom = attestation_check("sbom", "SBOM", &ev, is_sbom);
        assert!(!sbom.passed);
        assert!(
            sbom.detail.contains("spdx problem")
                && sbom.detail.contains("unreadable problem")
                && sbom.detail.contains(
                    "verified attestations of other types: https://slsa.dev/provenance/v1"
                )
                && sbom
                    .detail
                    .contains("signed by key sha256:0123456789abcdef"),
            "{}",
            sbom.detail
        );
        let prov = provenance_check(&ev);
        assert!(prov.passed, "{}", prov.detail);
        let ev = evidence(&[], &[(Some(SPDX_PREDICATE_TYPE), "spdx problem")]);
        let prov = provenance_check(&ev);
        assert!(!prov.detail.contains("spdx problem"), "{}", prov.detail);
    }

    #[test]
    fn missing_signature_says_what_was_searched() {
        let ev = evidence(&[], &[]);
        let digest = Digest::of_bytes(b"image");
        let repo = Repository::new("127.0.0.1:5000", "app").unwrap();
        let c = signature_check(&ev, &repo, &digest);
        assert!(!c.passed);
        assert!(
            c.detail.contains(&format!("no signature for {digest}"))
                && c.detail.contains(&format!("tag sha256-{}.sig absent", digest.hex()))
                && c.detail.contains("0 referrer(s) (0 Sigstore bundle(s), 0 DSSE envelope(s)) found via the referrers API, none a signature bundle for this key"),
            "{}",
            c.detail
        );
        let mut ev = evidence(&[], &[]);
        ev.sig_problems
            .push("bundle referrer x: does not verify".into());
        let c = signature_check(&ev, &repo, &digest);
        assert!(
            c.detail
                .contains("verifies with key sha256:0123456789abcdef: bundle referrer x"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn bundles_are_filed_by_what_they_sign_and_must_name_the_digest() {
        use base64::Engine as _;
        let (key, public) = keys();
        let digest = Digest::of_bytes(b"image");
        let bundle = |predicate_type: &str, subject: &Digest| {
            let stmt = statement(
                &[("app".into(), *subject)],
                predicate_type,
                serde_json::json!({}),
            );
            let env = sign_envelope(
                &key,
                IN_TOTO_PAYLOAD_TYPE,
                &serde_json::to_vec(&stmt).unwrap(),
            );
            serde_json::to_vec(&serde_json::json!({
                "mediaType": kiln_attest::SIGSTORE_BUNDLE_MEDIA_TYPE,
                "verificationMaterial": {"publicKey": {"hint": ""}},
                "dsseEnvelope": {
                    "payload": env.payload,
                    "payloadType": IN_TOTO_PAYLOAD_TYPE,
                    "signatures": [{"sig": env.signatures[0].sig}],
                },
            }))
            .unwrap()
        };
        let mut ev = evidence(&[], &[]);
        let sign = bundle(kiln_attest::COSIGN_SIGN_PREDICATE_TYPE, &digest);
        evidence::check_bundle(
            &sign,
            &public,
            &digest,
            b"manifest",
            "bundle referrer a",
            &mut ev,
        );
        let spdx = bundle(SPDX_PREDICATE_TYPE, &digest);
        evidence::check_bundle(
            &spdx,
            &public,
            &digest,
            b"manifest",
            "bundle referrer b",
            &mut ev,
        );
        assert_eq!(ev.signatures.len(), 1);
        assert_eq!(ev.attestations[0].predicate_type, SPDX_PREDICATE_TYPE);
        // A signature bundle copied from another image verifies with the key, but fails.
        let copied = bundle(
            kiln_attest::COSIGN_SIGN_PREDICATE_TYPE,
            &Digest::of_bytes(b"other"),
        );
        let mut ev = evidence(&[], &[]);
        evidence::check_bundle(
            &copied,
            &public,
            &digest,
            b"manifest",
            "bundle referrer c",
            &mut ev,
        );
        assert!(ev.signatures.is_empty());
        assert!(
            ev.sig_problems[0].contains("about another image"),
            "{:?}",
            ev.sig_problems
        );
        // A message signature over the manifest bytes is a signature of this digest.
        let manifest = b"{\"schemaVersion\":2}";
        let msg = serde_json::to_vec(&serde_json::json!({
            "mediaType": kiln_attest::SIGSTORE_BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {}},
            "messageSignature": {
                "messageDigest": {
                    "algorithm": "SHA2_256",
                    "digest": base64::engine::general_purpose::STANDARD.encode(Digest::of_bytes(manifest).as_raw()),
                },
                "signature": sign_payload(&key, manifest),
            },
        }))
        .unwrap();
        let mut ev = evidence(&[], &[]);
        evidence::check_bundle(
            &msg,
            &public,
            &digest,
            manifest,
            "bundle referrer d",
            &mut ev,
        );
        assert_eq!(ev.signatures[0].predicate_type, "message signature");
        let mut ev = evidence(&[], &[]);
        evidence::check_bundle(
            &msg,
            &public,
            &digest,
            b"other manifest",
            "bundle referrer d",
            &mut ev,
        );
        assert!(ev.signatures.is_empty() && !ev.sig_problems.is_empty());
    }
}
