//! cosign 2, both directions: what `kiln sign --attest` writes verifies with the real cosign 2.x
//! (which reads only the legacy `.sig` / `.att` / `.sbom` tags), and what cosign 2 signs and
//! attests verifies with `kiln verify`. On Debian's docker-registry (no referrers API) and on a
//! registry with the referrers API.
//!
//! Needs the pinned cosign 2 and referrers-registry (`.ci/tools.sh cosign2 referrers-registry`),
//! `docker-registry` (apt) and Go.

#[path = "support/peers.rs"]
mod peers;
mod supply_support;

use std::path::Path;

use kiln_types::Digest;
use peers::{cosign2, cosign2_ok, ReferrersRegistry};
use supply_support::*;

/// Flags that keep cosign 2's verification offline: no transparency log, plain HTTP.
const OFFLINE_VERIFY: [&str; 3] = [
    "--insecure-ignore-tlog=true",
    "--allow-http-registry=true",
    "--allow-insecure-registry=true",
];

/// An empty Sigstore trusted root: no CA, no log, no timestamp authority. cosign 2.6 verifies
/// Sigstore bundles only with a trusted root loaded, which it fetches from Sigstore's TUF
/// repository when online; offline, with a key, this is enough.
const EMPTY_TRUSTED_ROOT: &str =
    r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#;

/// Flags that keep cosign 2's signing offline.
const OFFLINE_SIGN: [&str; 2] = ["--tlog-upload=false", "--allow-http-registry=true"];

fn path(d: &Path, f: &str) -> String {
    d.join(f).to_str().unwrap().to_owned()
}

/// `cosign2 version` names a 2.x release: the tests below are about that line.
fn assert_cosign2() {
    let out = cosign2_ok(&["version"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.lines()
            .any(|l| l.starts_with("GitVersion:") && l.contains("v2.")),
        "not cosign 2: {text}"
    );
}

/// cosign 2 generates a key pair in `d` as `cosign.key` / `cosign.pub`.
fn cosign2_keys(d: &Path) {
    cosign2_ok(&[
        "generate-key-pair",
        "--output-key-prefix",
        &path(d, "cosign"),
    ]);
    assert!(d.join("cosign.pub").is_file());
}

fn push(host: &str, tag: &str, marker: &str) -> Digest {
    push_image_to(
        &kiln_registry::Repository::new(host, "team/app").unwrap(),
        tag,
        &nonroot_spec(marker),
    )
}

/// kiln signs and attests; cosign 2 verifies the signature and every attestation type with
/// kiln's key, downloads the SBOM, and fails with another key.
fn kiln_to_cosign2(host: &str) {
    assert_cosign2();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    kiln_ok(d, &["keygen", "--output-prefix", "kiln"]);
    cosign2_keys(d);
    let digest = push(host, "v1", "kiln-to-cosign2");
    let image = format!("{host}/team/app@{digest}");
    kiln_ok(
        d,
        &[
            "sign",
            &format!("{host}/team/app:v1"),
            "--key",
            "kiln.key",
            "--attest",
        ],
    );

    let kiln_pub = path(d, "kiln.pub");
    // cosign 2.6 sees kiln's Sigstore bundle referrers (through the API, or the fallback tag)
    // and switches to them; offline it has no trusted root then, and says so. This pins what
    // docs/commands/supply-chain.md tells cosign 2 users.
    let mut args = vec!["verify", "--key", &kiln_pub];
    args.extend(OFFLINE_VERIFY);
    args.push(&image);
    let out = cosign2(&args);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("trusted root is required when using new bundle format"),
        "cosign 2 verified offline without a trusted root: update supply-chain.md\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(d.join("trusted_root.json"), EMPTY_TRUSTED_ROOT).unwrap();
    let root = path(d, "trusted_root.json");
    let offline: Vec<&str> = OFFLINE_VERIFY
        .iter()
        .copied()
        .chain(["--trusted-root", &root])
        .collect();

    let mut args = vec!["verify", "--key", &kiln_pub];
    args.extend(&offline);
    args.push(&image);
    let out = cosign2_ok(&args);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&digest.to_string()),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for ty in ["slsaprovenance1", "spdxjson", "cyclonedx"] {
        let mut args = vec!["verify-attestation", "--key", &kiln_pub, "--type", ty];
        args.extend(&offline);
        args.push(&image);
        cosign2_ok(&args);
    }
    let out = cosign2_ok(&["download", "sbom", "--allow-http-registry=true", &image]);
    let sbom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3", "{sbom:#}");

    // With another key both fail: the checks above can fail.
    let other = path(d, "cosign.pub");
    for cmd in [
        vec!["verify", "--key", &other],
        vec![
            "verify-attestation",
            "--key",
            &other,
            "--type",
            "slsaprovenance1",
        ],
    ] {
        let mut args = cmd.clone();
        args.extend(&offline);
        args.push(&image);
        let out = cosign2(&args);
        assert!(!out.status.success(), "{cmd:?} verified with another key");
    }
}

/// cosign 2 signs and attests (SLSA v1 provenance, SPDX and CycloneDX SBOMs written by
/// `kiln sbom`); `kiln verify` with cosign's public key finds and verifies all of it, and fails
/// with another key.
fn cosign2_to_kiln(host: &str) {
    assert_cosign2();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cosign2_keys(d);
    kiln_ok(d, &["keygen", "--output-prefix", "other"]);
    let digest = push(host, "v1", "cosign2-to-kiln");
    let image = format!("{host}/team/app@{digest}");
    std::fs::write(
        d.join("provenance-v1.json"),
        r#"{"buildDefinition":{"buildType":"https://example.com/buildtypes/test@v1","externalParameters":{"target":"./cmd/app"}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}"#,
    )
    .unwrap();
    for (format, file) in [("spdx", "sbom.spdx.json"), ("cyclonedx", "sbom.cdx.json")] {
        kiln_ok(d, &["sbom", &image, "--format", format, "--output", file]);
    }

    let key = path(d, "cosign.key");
    let mut args = vec!["sign", "--key", &key];
    args.extend(OFFLINE_SIGN);
    args.push(&image);
    cosign2_ok(&args);
    for (ty, file) in [
        ("slsaprovenance1", "provenance-v1.json"),
        ("spdxjson", "sbom.spdx.json"),
        ("cyclonedx", "sbom.cdx.json"),
    ] {
        let predicate = path(d, file);
        let mut args = vec![
            "attest",
            "--key",
            &key,
            "--type",
            ty,
            "--predicate",
            &predicate,
        ];
        args.extend(OFFLINE_SIGN);
        args.push(&image);
        cosign2_ok(&args);
    }

    let (code, report) = verify_json(d, &image, "cosign.pub", None);
    assert_eq!(code, 0, "{report:#}");
    for name in ["signature", "sbom", "provenance"] {
        let (ok, detail) = check(&report, name).unwrap_or_else(|| panic!("no {name} check"));
        assert!(ok, "{name}: {detail}\n{report:#}");
    }
    let sbom = check(&report, "sbom").unwrap().1;
    assert!(
        sbom.contains("https://spdx.dev/Document") && sbom.contains("https://cyclonedx.org/bom"),
        "{sbom}"
    );
    assert!(
        check(&report, "provenance")
            .unwrap()
            .1
            .contains("https://slsa.dev/provenance/v1"),
        "{report:#}"
    );

    let (code, report) = verify_json(d, &image, "other.pub", None);
    assert_eq!(code, 1, "{report:#}");
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(!ok, "verified with another key: {detail}");
}

#[test]
fn cosign2_verifies_kiln_on_docker_registry() {
    let reg = Registry::start();
    kiln_to_cosign2(&reg.host());
}

#[test]
fn cosign2_verifies_kiln_on_referrers_registry() {
    let reg = ReferrersRegistry::start();
    kiln_to_cosign2(&reg.host());
}

#[test]
fn kiln_verifies_cosign2_on_docker_registry() {
    let reg = Registry::start();
    cosign2_to_kiln(&reg.host());
}

#[test]
fn kiln_verifies_cosign2_on_referrers_registry() {
    let reg = ReferrersRegistry::start();
    cosign2_to_kiln(&reg.host());
}
