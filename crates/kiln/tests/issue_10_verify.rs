//! Issue 10, reading side: `kiln verify --key cosign.pub` accepts what the real cosign 3
//! writes, on a registry without the referrers API (Debian's docker-registry: cosign 3 keeps
//! its bundles in the `sha256-<hex>` fallback tag index) and on one with it
//! (go-containerregistry's registry): Sigstore bundles (cosign 3's default) and the legacy
//! `.sig`/`.att` layout (`--new-bundle-format=false`, whose DSSE signatures have no keyid).
//! Wrong keys, unsigned images and SLSA v0.2 provenance fail with what was found.
//!
//! Needs the pinned cosign and referrers-registry (`.ci/tools.sh cosign referrers-registry`),
//! `docker-registry` (apt) and Go.

mod supply_support;
// Only the peers launcher: supply_support already brings the docker-registry harness.
#[path = "support/peers.rs"]
mod peers;

use std::path::Path;

use kiln_registry::Repository;
use kiln_types::Digest;
use peers::{cosign, cosign_ok, ReferrersRegistry};
use supply_support::*;

/// Flags that keep cosign 3 offline: no transparency log, no signing config (Sigstore's TUF
/// repository), plain HTTP to the loopback registry.
const OFFLINE_SIGN: [&str; 3] = [
    "--tlog-upload=false",
    "--use-signing-config=false",
    "--allow-http-registry=true",
];

/// A registry under test: its host and whether it has the referrers API.
struct Target {
    host: String,
    referrers_api: bool,
}

/// Builds the Go fixture image and pushes it to `host/repo:tag` (any registry, unlike
/// `push_image`, which is tied to the docker-registry harness).
fn push_to(host: &str, repo: &str, tag: &str, marker: &str) -> Digest {
    push_image_to(
        &Repository::new(host, repo).unwrap(),
        tag,
        &nonroot_spec(marker),
    )
}

/// `cosign generate-key-pair` into `dir` (empty password, as the harness sets it).
fn cosign_keys(dir: &Path, prefix: &str) {
    let p = dir.join(prefix);
    cosign_ok(&[
        "generate-key-pair",
        "--output-key-prefix",
        p.to_str().unwrap(),
    ]);
    assert!(dir.join(format!("{prefix}.pub")).is_file());
}

/// Predicates for `cosign attest`: SLSA v1 and v0.2 provenance, and real SBOMs of the image
/// written by `kiln sbom`.
fn write_predicates(dir: &Path, image: &str) {
    std::fs::write(
        dir.join("provenance-v1.json"),
        r#"{"buildDefinition":{"buildType":"https://example.com/buildtypes/test@v1","externalParameters":{"target":"./cmd/app"}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("provenance-v02.json"),
        r#"{"builder":{"id":"https://example.com/builder"},"buildType":"https://example.com/buildtypes/test@v1","invocation":{"configSource":{}}}"#,
    )
    .unwrap();
    kiln_ok(
        dir,
        &[
            "sbom",
            image,
            "--format",
            "spdx",
            "--output",
            "sbom.spdx.json",
        ],
    );
    kiln_ok(
        dir,
        &[
            "sbom",
            image,
            "--format",
            "cyclonedx",
            "--output",
            "sbom.cdx.json",
        ],
    );
}

/// `cosign sign` and `cosign attest` (SLSA v1, SPDX, CycloneDX) of `image`, in cosign 3's
/// default bundle format or, with `legacy`, the `.sig`/`.att` layout.
fn cosign_sign_and_attest(dir: &Path, image: &str, key: &str, legacy: bool) {
    let key = dir.join(key);
    let key = key.to_str().unwrap();
    let mut sign = vec!["sign", "--key", key];
    sign.extend(OFFLINE_SIGN);
    if legacy {
        sign.push("--new-bundle-format=false");
    }
    sign.push(image);
    cosign_ok(&sign);
    for (kind, file) in [
        ("slsaprovenance1", "provenance-v1.json"),
        ("spdxjson", "sbom.spdx.json"),
        ("cyclonedx", "sbom.cdx.json"),
    ] {
        cosign_attest(dir, image, key, kind, file, legacy);
    }
}

fn cosign_attest(dir: &Path, image: &str, key: &str, kind: &str, file: &str, legacy: bool) {
    let predicate = dir.join(file);
    let mut args = vec![
        "attest",
        "--key",
        key,
        "--type",
        kind,
        "--predicate",
        predicate.to_str().unwrap(),
    ];
    args.extend(OFFLINE_SIGN);
    if legacy {
        args.push("--new-bundle-format=false");
    }
    args.push(image);
    cosign_ok(&args);
}

/// cosign itself accepts what it wrote (so a kiln failure is kiln's).
fn cosign_verifies(dir: &Path, image: &str, legacy: bool) {
    let key = dir.join("cosign.pub");
    let mut args = vec![
        "verify",
        "--key",
        key.to_str().unwrap(),
        "--insecure-ignore-tlog=true",
        "--allow-http-registry=true",
    ];
    if legacy {
        args.push("--new-bundle-format=false");
    }
    args.push(image);
    cosign_ok(&args);
}

fn assert_all_found(report: &serde_json::Value, how: &str) {
    for name in ["signature", "sbom", "provenance", "static-binaries"] {
        let (ok, detail) = check(report, name).unwrap_or_else(|| panic!("no {name} check"));
        assert!(ok, "{how}: {name}: {detail}\n{report:#}");
    }
    let sbom = check(report, "sbom").unwrap().1;
    assert!(
        sbom.contains("https://spdx.dev/Document") && sbom.contains("https://cyclonedx.org/bom"),
        "{how}: {sbom}"
    );
    assert!(
        check(report, "provenance")
            .unwrap()
            .1
            .contains("https://slsa.dev/provenance/v1"),
        "{how}"
    );
    assert_eq!(report["passed"], true);
}

/// Everything a registry must show for the bundle layout.
fn bundle_layout(t: &Target) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cosign_keys(d, "cosign");
    kiln_ok(d, &["keygen", "--output-prefix", "other"]);
    let digest = push_to(&t.host, "app", "v1", "bundle");
    let image = format!("{}/app@{digest}", t.host);
    write_predicates(d, &image);
    cosign_sign_and_attest(d, &image, "cosign.key", false);
    cosign_verifies(d, &image, false);

    // cosign 3 wrote no legacy tags: only bundles, as referrers or in the fallback index.
    let tags = rt()
        .block_on(client().list_tags(&Repository::new(&t.host, "app").unwrap()))
        .unwrap();
    assert!(
        !tags
            .iter()
            .any(|t| t.ends_with(".sig") || t.ends_with(".att")),
        "{tags:?}"
    );
    assert_eq!(
        tags.contains(&format!("sha256-{}", digest.hex())),
        !t.referrers_api,
        "fallback tag only without the referrers API: {tags:?}"
    );

    let (code, report) = verify_json(d, &image, "cosign.pub", None);
    assert_eq!(code, 0, "{report:#}");
    assert_all_found(&report, "bundles");
    let sig = check(&report, "signature").unwrap().1;
    assert!(
        sig.contains("bundle referrer") && sig.contains("https://sigstore.dev/cosign/sign/v1"),
        "{sig}"
    );
    // By tag too, and the human report names the key file.
    let by_tag = format!("{}/app:v1", t.host);
    let human = kiln(d, &["verify", &by_tag, "--key", "cosign.pub"]);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human));
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert!(
        stdout.contains("verified") && stdout.contains("cosign.pub"),
        "{stdout}"
    );

    // The wrong key: fails, naming the key that did not verify.
    let (code, report) = verify_json(d, &image, "other.pub", None);
    assert_eq!(code, 1, "{report:#}");
    let key_id = report["key_id"].as_str().unwrap().to_owned();
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(!ok, "{detail}");
    assert!(
        detail.contains(&format!("does not verify with key {key_id}"))
            && detail.contains("https://sigstore.dev/cosign/sign/v1"),
        "{detail}"
    );
    let (ok, detail) = check(&report, "provenance").unwrap();
    assert!(
        !ok && detail.contains("https://slsa.dev/provenance/v1")
            && detail.contains("does not verify"),
        "{detail}"
    );
    let human = kiln(d, &["verify", &image, "--key", "other.pub"]);
    assert_eq!(human.status.code(), Some(1), "{}", text(&human));
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert!(
        stdout.contains("NOT verified") && stdout.contains("other.pub") && stdout.contains(&key_id),
        "{stdout}"
    );

    // An image nobody signed: says what was searched, in the terms of this registry.
    let unsigned = push_to(&t.host, "app", "v2", "unsigned");
    let (code, report) = verify_json(d, &format!("{}/app@{unsigned}", t.host), "cosign.pub", None);
    assert_eq!(code, 1);
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(!ok);
    assert!(
        detail.contains(&format!("no signature for {unsigned}"))
            && detail.contains(&format!("tag sha256-{}.sig absent", unsigned.hex()))
            && detail
                .contains("0 referrer(s) (0 Sigstore bundle(s), 0 DSSE envelope(s)) found via"),
        "{detail}"
    );
    let searched = if t.referrers_api {
        "the referrers API".to_owned()
    } else {
        format!("fallback tag sha256-{} (absent", unsigned.hex())
    };
    assert!(detail.contains(&searched), "{detail}");
    let (ok, detail) = check(&report, "sbom").unwrap();
    assert!(
        !ok && detail.contains("no SBOM attached")
            && detail.contains(&format!("tag sha256-{}.att absent", unsigned.hex())),
        "{detail}"
    );
    // An unsigned `cosign attach sbom` is named, and still does not count.
    let sbom = d.join("sbom.spdx.json");
    let unsigned_image = format!("{}/app@{unsigned}", t.host);
    cosign_ok(&[
        "attach",
        "sbom",
        "--sbom",
        sbom.to_str().unwrap(),
        "--type",
        "spdx",
        "--allow-http-registry=true",
        &unsigned_image,
    ]);
    let (code, report) = verify_json(d, &unsigned_image, "cosign.pub", None);
    assert_eq!(code, 1);
    let (ok, detail) = check(&report, "sbom").unwrap();
    assert!(
        !ok && detail.contains(&format!(
            "tag sha256-{}.sbom holds 1 unsigned SBOM layer(s), which do not count",
            unsigned.hex()
        )),
        "{detail}"
    );

    // SLSA v0.2 provenance only (cosign's `slsaprovenance`): found, but not v1.
    let old = push_to(&t.host, "app", "v3", "v0.2");
    let old_image = format!("{}/app@{old}", t.host);
    let key = d.join("cosign.key");
    cosign_attest(
        d,
        &old_image,
        key.to_str().unwrap(),
        "slsaprovenance",
        "provenance-v02.json",
        false,
    );
    let (code, report) = verify_json(d, &old_image, "cosign.pub", None);
    assert_eq!(code, 1);
    let (ok, detail) = check(&report, "provenance").unwrap();
    assert!(
        !ok && detail.contains("provenance found but SLSA v0.2")
            && detail.contains("kiln requires https://slsa.dev/provenance/v1"),
        "{detail}"
    );
    // The policy rule says the same.
    std::fs::write(d.join("policy.toml"), "require_provenance = true\n").unwrap();
    let (_, report) = verify_json(d, &old_image, "cosign.pub", Some(&d.join("policy.toml")));
    let (ok, detail) = check(&report, "policy:require_provenance").unwrap();
    assert!(
        !ok && detail.contains("provenance found but it is https://slsa.dev/provenance/v0.2"),
        "{detail}"
    );
    // ... and with the wrong key it is still named as the v0.2 it claims to be.
    let (_, report) = verify_json(d, &old_image, "other.pub", None);
    let (ok, detail) = check(&report, "provenance").unwrap();
    assert!(
        !ok && detail.contains("https://slsa.dev/provenance/v0.2")
            && detail.contains("does not verify with key")
            && detail.contains("v1 (https://slsa.dev/provenance/v1) is required"),
        "{detail}"
    );
}

/// The legacy layout cosign 3 still writes with `--new-bundle-format=false`.
fn legacy_layout(t: &Target) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cosign_keys(d, "cosign");
    kiln_ok(d, &["keygen", "--output-prefix", "other"]);
    let digest = push_to(&t.host, "legacy", "v1", "legacy");
    let image = format!("{}/legacy@{digest}", t.host);
    write_predicates(d, &image);
    cosign_sign_and_attest(d, &image, "cosign.key", true);
    cosign_verifies(d, &image, true);

    // The `.att` envelopes have no keyid (issue 10 item 2: kiln used to reject them).
    let repo = Repository::new(&t.host, "legacy").unwrap();
    let att = rt()
        .block_on(
            client().get_manifest(
                &kiln_registry::Reference::by_tag(
                    repo.clone(),
                    &format!("sha256-{}.att", digest.hex()),
                )
                .unwrap(),
            ),
        )
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&att.bytes).unwrap();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{m:#}");
    let blob: Digest = layers[0]["digest"].as_str().unwrap().parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("env");
    rt().block_on(client().get_blob_to_file(&repo, &blob, &path))
        .unwrap();
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        env["signatures"][0].get("keyid").is_none(),
        "expected a DSSE signature without keyid: {env}"
    );

    let (code, report) = verify_json(d, &image, "cosign.pub", None);
    assert_eq!(code, 0, "{report:#}");
    assert_all_found(&report, "legacy");
    let sig = check(&report, "signature").unwrap().1;
    assert!(
        sig.contains(&format!("tag sha256-{}.sig", digest.hex())),
        "{sig}"
    );

    let (code, report) = verify_json(d, &image, "other.pub", None);
    assert_eq!(code, 1);
    let key_id = report["key_id"].as_str().unwrap();
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(
        !ok && detail.contains(&format!(
            "no signature for {digest} verifies with key {key_id}"
        )) && detail.contains("another key"),
        "{detail}"
    );
    let (ok, detail) = check(&report, "sbom").unwrap();
    assert!(
        !ok && detail.contains("https://spdx.dev/Document attestation")
            && detail.contains("does not verify"),
        "{detail}"
    );
}

fn docker_registry() -> (Registry, Target) {
    let reg = Registry::start();
    let t = Target {
        host: reg.host(),
        referrers_api: false,
    };
    (reg, t)
}

fn referrers_registry() -> (ReferrersRegistry, Target) {
    let reg = ReferrersRegistry::start();
    let t = Target {
        host: reg.host(),
        referrers_api: true,
    };
    (reg, t)
}

#[test]
fn issue_10_cosign3_bundles_verify_without_referrers_api() {
    let (_reg, t) = docker_registry();
    bundle_layout(&t);
}

#[test]
fn issue_10_cosign3_bundles_verify_with_referrers_api() {
    let (_reg, t) = referrers_registry();
    bundle_layout(&t);
}

#[test]
fn issue_10_cosign3_legacy_layout_verifies_without_referrers_api() {
    let (_reg, t) = docker_registry();
    legacy_layout(&t);
}

#[test]
fn issue_10_cosign3_legacy_layout_verifies_with_referrers_api() {
    let (_reg, t) = referrers_registry();
    legacy_layout(&t);
}

/// The harness itself: cosign is the pinned v3 (a v2 writes other layouts).
#[test]
fn issue_10_pinned_cosign_is_v3() {
    let out = cosign(&["version"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("v3."), "{text}");
}

/// Item 6 end to end: `kiln sbom` of a real Go binary lists the standard library as syft does
/// (`pkg:golang/stdlib@<go version without "go">`, read here from `go version -m`) and the main
/// module, with the main module depending on both in CycloneDX and no `SPDXRef-` bom-refs.
#[test]
fn issue_10_sbom_lists_stdlib_and_main_module() {
    let fx = go_fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fx.binary.to_str().unwrap();
    let out = std::process::Command::new("go")
        .args(["version", "-m", bin])
        .output()
        .expect("go is on PATH (the fixture needed it)");
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    // First line: `<file>: go1.26.8`.
    let go_version = listing
        .lines()
        .next()
        .and_then(|l| l.rsplit(": ").next())
        .unwrap()
        .trim()
        .to_owned();
    let number = go_version.strip_prefix("go").unwrap();
    let stdlib_purl = format!("pkg:golang/stdlib@{number}");

    kiln_ok(
        d,
        &["sbom", bin, "--format", "spdx", "--output", "a.spdx.json"],
    );
    kiln_ok(
        d,
        &[
            "sbom",
            bin,
            "--format",
            "cyclonedx",
            "--output",
            "a.cdx.json",
        ],
    );
    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("a.spdx.json")).unwrap()).unwrap();
    let cdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("a.cdx.json")).unwrap()).unwrap();

    let pkgs = spdx["packages"].as_array().unwrap();
    let std = pkgs.iter().find(|p| p["name"] == "stdlib").unwrap();
    assert_eq!(std["versionInfo"], go_version.as_str());
    assert_eq!(
        std["externalRefs"][0]["referenceLocator"],
        stdlib_purl.as_str()
    );
    let main = pkgs
        .iter()
        .find(|p| p["name"] == "example.com/app")
        .expect("main module package");
    let rels = spdx["relationships"].as_array().unwrap();
    for (a, kind, b) in [
        (&main["SPDXID"], "DEPENDS_ON", &std["SPDXID"]),
        (&pkgs[0]["SPDXID"], "CONTAINS", &std["SPDXID"]),
        (&pkgs[0]["SPDXID"], "CONTAINS", &main["SPDXID"]),
    ] {
        assert!(
            rels.iter().any(|r| &r["spdxElementId"] == a
                && r["relationshipType"] == kind
                && &r["relatedSpdxElement"] == b),
            "{a} {kind} {b} missing"
        );
    }

    let comps = cdx["components"].as_array().unwrap();
    let std = comps.iter().find(|c| c["name"] == "stdlib").unwrap();
    assert_eq!(std["purl"], stdlib_purl.as_str());
    let main = comps
        .iter()
        .find(|c| c["name"] == "example.com/app")
        .unwrap();
    let main_deps = cdx["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == main["bom-ref"])
        .unwrap();
    let on = main_deps["dependsOn"].as_array().unwrap();
    assert!(on.contains(&std["bom-ref"]), "{main_deps}");
    for (path, _, _) in &fx.modules {
        let dep = comps.iter().find(|c| c["name"] == path.as_str()).unwrap();
        assert!(on.contains(&dep["bom-ref"]), "{path}: {main_deps}");
    }
    let text = std::fs::read_to_string(d.join("a.cdx.json")).unwrap();
    assert!(
        !text.contains("\"SPDXRef-"),
        "CycloneDX refs must not be SPDX ids"
    );
}
