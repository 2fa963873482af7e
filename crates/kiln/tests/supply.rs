//! `kiln keygen`, `kiln sign`, `kiln sbom` and `kiln verify` against a real registry
//! (docker-registry 2.8 on 127.0.0.1, which has no referrers API, so the cosign tag scheme
//! is the path under test), real Go binaries with third-party modules, and the official SBOM
//! validators (`pip install spdx-tools==0.8.5 'cyclonedx-python-lib[json-validation]==11.12.0'`).

mod supply_support;

use std::path::Path;
use std::process::Command;

use kiln_attest::{cosign_tag, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use kiln_registry::{Reference, Repository};
use kiln_test_support::sbom::{assert_cyclonedx_valid, assert_spdx_valid};
use kiln_test_support::{require_go, GoModule};
use kiln_types::Digest;
use supply_support::*;

fn keygen(dir: &Path, prefix: &str) {
    let out = kiln_ok(dir, &["keygen", "--output-prefix", prefix]);
    assert!(
        dir.join(format!("{prefix}.key")).is_file(),
        "{}",
        text(&out)
    );
    assert!(dir.join(format!("{prefix}.pub")).is_file());
}

/// Copies the manifest under `from_tag` to `to_tag` byte for byte (same repository, so the
/// blobs are there already): what an attacker with push rights can do.
fn copy_tag(repo: &Repository, from_tag: &str, to_tag: &str) {
    let client = client();
    let rt = rt();
    let m = rt
        .block_on(client.get_manifest(&Reference::by_tag(repo.clone(), from_tag).unwrap()))
        .unwrap();
    rt.block_on(client.push_manifest(repo, to_tag, &m.media_type, &m.bytes))
        .unwrap();
}

fn tags(repo: &Repository) -> Vec<String> {
    rt().block_on(client().list_tags(repo)).unwrap()
}

#[test]
fn keygen_never_overwrites_and_needs_a_password() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "kiln");
    let before = std::fs::read(dir.path().join("kiln.key")).unwrap();
    let again = kiln(dir.path(), &["keygen"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        text(&again)
    );
    assert_eq!(std::fs::read(dir.path().join("kiln.key")).unwrap(), before);
    let pem = String::from_utf8(before).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
        "{pem}"
    );

    // No KILN_PASSWORD and no terminal: a clear error instead of a hang or an empty password.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["keygen", "--output-prefix", "other"])
        .current_dir(dir.path())
        .env_remove("KILN_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KILN_PASSWORD"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("other.key").exists());
}

#[test]
fn sign_verify_round_trip_and_tampering() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "kiln");
    keygen(d, "intruder");
    let host = reg.host();
    let repo = reg.repo("app");
    let spec = |marker: &str| ImageSpec {
        user: "65532".into(),
        marker: marker.into(),
        ..ImageSpec::default()
    };
    let a = push_image(&reg, "app", "v1", &spec("a"));
    let b = push_image(&reg, "app", "v2", &spec("b"));
    let c = push_image(&reg, "app", "v3", &spec("c"));
    let image = format!("{host}/app:v1");

    // Missing signature.
    let (code, report) = verify_json(d, &image, "kiln.pub", None);
    assert_eq!(code, 1, "{report:#}");
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(
        !ok && detail.contains("no signature") && detail.contains(&a.to_string()),
        "{detail}"
    );
    assert!(!check(&report, "sbom").unwrap().0);
    assert!(!check(&report, "provenance").unwrap().0);

    // Sign by tag: the digest is what gets signed; attestations go under cosign tags, and
    // because registry 2.8 has no referrers API the referrer artifacts are listed in the OCI 1.1
    // fallback index `sha256-<hex>`.
    let out = kiln_ok(
        d,
        &["sign", &image, "--key", "kiln.key", "--attest", "--json"],
    );
    let signed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(signed["signature"]["digest"], a.to_string());
    assert_eq!(signed["attachments"]["referrers_api"], false);
    assert_eq!(
        signed["attachments"]["referrers"].as_array().unwrap().len(),
        8
    );
    let t = tags(&repo);
    assert!(t.contains(&format!("sha256-{}", a.hex())), "{t:?}");
    for suffix in ["sig", "att", "sbom"] {
        assert!(
            t.contains(&cosign_tag(&a, suffix)),
            "{suffix} missing in {t:?}"
        );
    }

    // The signature image is cosign's layout: one simple-signing layer with the annotation,
    // payload naming the repository (no tag) and the digest.
    let sig = rt()
        .block_on(
            client()
                .get_manifest(&Reference::by_tag(repo.clone(), &cosign_tag(&a, "sig")).unwrap()),
        )
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&sig.bytes).unwrap();
    let layer = &m["layers"][0];
    assert_eq!(layer["mediaType"], SIMPLE_SIGNING_MEDIA_TYPE);
    assert!(
        layer["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap()
            .len()
            > 40
    );
    let tmp = tempfile::tempdir().unwrap();
    let payload_path = tmp.path().join("payload");
    let layer_digest: Digest = layer["digest"].as_str().unwrap().parse().unwrap();
    rt().block_on(client().get_blob_to_file(&repo, &layer_digest, &payload_path))
        .unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&payload_path).unwrap()).unwrap();
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        format!("{host}/app")
    );
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        a.to_string()
    );

    // Round trip passes, by tag and by digest; the human report says so too.
    let (code, report) = verify_json(d, &image, "kiln.pub", None);
    assert_eq!(code, 0, "{report:#}");
    for name in ["signature", "sbom", "provenance", "static-binaries"] {
        let (ok, detail) = check(&report, name).unwrap_or_else(|| panic!("no {name} check"));
        assert!(ok, "{name}: {detail}");
    }
    assert!(check(&report, "sbom")
        .unwrap()
        .1
        .contains("https://spdx.dev/Document"));
    let by_digest = format!("{host}/app@{a}");
    assert_eq!(verify_json(d, &by_digest, "kiln.pub", None).0, 0);
    let human = kiln(d, &["verify", &image, "--key", "kiln.pub"]);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human));
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert!(
        stdout.contains("CHECK") && stdout.contains("verified"),
        "{stdout}"
    );

    // SBOM straight from the registry image (layers pulled and walked).
    kiln_ok(
        d,
        &[
            "sbom",
            &by_digest,
            "--format",
            "spdx",
            "--output",
            "image.spdx.json",
        ],
    );
    assert_spdx_valid(&d.join("image.spdx.json"));
    let sbom = std::fs::read_to_string(d.join("image.spdx.json")).unwrap();
    assert!(sbom.contains("pkg:golang/example.org/dep@v1.2.3") && sbom.contains(&a.hex()));

    // Wrong key: every signed thing is rejected.
    let (code, report) = verify_json(d, &image, "intruder.pub", None);
    assert_eq!(code, 1);
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(!ok && detail.contains("another key"), "{detail}");
    let (ok, detail) = check(&report, "provenance").unwrap();
    assert!(
        !ok && detail.contains("signature does not verify"),
        "{detail}"
    );

    // Signature of another image copied onto this image's .sig tag.
    kiln_ok(d, &["sign", &format!("{host}/app:v2"), "--key", "kiln.key"]);
    copy_tag(&repo, &cosign_tag(&b, "sig"), &cosign_tag(&c, "sig"));
    let (code, report) = verify_json(d, &format!("{host}/app:v3"), "kiln.pub", None);
    assert_eq!(code, 1);
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(!ok, "{detail}");
    assert!(
        detail.contains(&format!("payload is for {b}")) && detail.contains("another image"),
        "{detail}"
    );

    // Attestations of another image copied, too: signed by the key but about another digest.
    kiln_ok(
        d,
        &[
            "sign",
            &format!("{host}/app:v2"),
            "--key",
            "kiln.key",
            "--attest",
        ],
    );
    copy_tag(&repo, &cosign_tag(&b, "att"), &cosign_tag(&c, "att"));
    let (_, report) = verify_json(d, &format!("{host}/app:v3"), "kiln.pub", None);
    let (ok, detail) = check(&report, "sbom").unwrap();
    assert!(!ok && detail.contains("about another image"), "{detail}");

    // Changed manifest: different content pushed under the signed tag.
    let changed = push_image(&reg, "app", "v1", &spec("tampered"));
    assert_ne!(changed, a);
    let (code, report) = verify_json(d, &image, "kiln.pub", None);
    assert_eq!(code, 1);
    let (ok, detail) = check(&report, "signature").unwrap();
    assert!(
        !ok && detail.contains(&format!("no signature for {changed}")),
        "{detail}"
    );
    // The original digest still verifies: the signature is bound to it, not to the tag.
    assert_eq!(verify_json(d, &by_digest, "kiln.pub", None).0, 0);

    // Re-signing is idempotent (deterministic ECDSA) and keeps one layer per signer.
    let again = kiln_ok(d, &["sign", &by_digest, "--key", "kiln.key", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["signatures"], 1);
    let other = kiln_ok(d, &["sign", &by_digest, "--key", "intruder.key", "--json"]);
    let other: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_eq!(other["signatures"], 2);
    assert!(
        check(
            &verify_json(d, &by_digest, "intruder.pub", None).1,
            "signature"
        )
        .unwrap()
        .0
    );
    assert!(
        check(&verify_json(d, &by_digest, "kiln.pub", None).1, "signature")
            .unwrap()
            .0
    );

    // Usage errors exit 2.
    let bad = kiln(d, &["verify", &image]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn sbom_for_binary_and_layout_is_valid_and_complete() {
    let fx = go_fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fx.binary.display().to_string();
    kiln_ok(
        d,
        &[
            "sbom",
            &bin,
            "--format",
            "spdx",
            "--output",
            "app.spdx.json",
        ],
    );
    kiln_ok(
        d,
        &[
            "sbom",
            &bin,
            "--format",
            "cyclonedx",
            "--output",
            "app.cdx.json",
        ],
    );
    assert_spdx_valid(&d.join("app.spdx.json"));
    assert_cyclonedx_valid(&d.join("app.cdx.json"));

    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("app.spdx.json")).unwrap()).unwrap();
    let cdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("app.cdx.json")).unwrap()).unwrap();
    for (path, version, h1) in &fx.modules {
        let purl = format!("pkg:golang/{path}@{version}");
        let hex = kiln_attest::h1_to_sha256_hex(path, h1).unwrap();
        let pkg = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} missing from SPDX"));
        assert_eq!(pkg["versionInfo"], version.as_str(), "{pkg:#}");
        assert!(pkg["externalRefs"].to_string().contains(&purl), "{pkg:#}");
        assert!(pkg["checksums"].to_string().contains(&hex), "{pkg:#}");
        let comp = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purl"] == purl.as_str())
            .unwrap_or_else(|| panic!("{purl} missing from CycloneDX"));
        assert_eq!(comp["version"], version.as_str());
        assert!(comp["hashes"].to_string().contains(&hex), "{comp:#}");
    }

    // The same modules through an image in an OCI layout (layers walked, /app found).
    let layout = d.join("layout");
    let digest = build_layout(&layout, "v1", &ImageSpec::default());
    let out = kiln_ok(d, &["sbom", "oci:layout:v1", "--format", "cyclonedx"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let doc_text = doc.to_string();
    assert!(doc_text.contains(&digest.hex()), "image digest missing");
    for (path, version, _) in &fx.modules {
        assert!(
            doc_text.contains(&format!("pkg:golang/{path}@{version}")),
            "{path}"
        );
    }
    std::fs::write(d.join("image.cdx.json"), &out.stdout).unwrap();
    assert_cyclonedx_valid(&d.join("image.cdx.json"));

    // A file that is not a Go binary is a clear error.
    std::fs::write(d.join("notes.txt"), "hello").unwrap();
    let bad = kiln(d, &["sbom", "notes.txt"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not an executable"),
        "{}",
        text(&bad)
    );
}

#[test]
fn policy_rules_and_static_check() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "kiln");
    let base = Digest::of_bytes(b"approved base");
    let other_base = Digest::of_bytes(b"some other base");
    let host = reg.host();
    push_image(
        &reg,
        "svc",
        "nonroot",
        &ImageSpec {
            user: "65532:65532".into(),
            base: Some(("registry.example/base:1".into(), base)),
            marker: "nonroot".into(),
            ..ImageSpec::default()
        },
    );
    push_image(
        &reg,
        "svc",
        "root",
        &ImageSpec {
            user: String::new(),
            base: Some(("registry.example/base:1".into(), base)),
            base_in_labels: true,
            marker: "root".into(),
            ..ImageSpec::default()
        },
    );
    // A dynamically linked executable (the host's /bin/true) makes the static check fail.
    let true_bin = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .expect("/bin/true missing: apt-get install -y coreutils");
    push_image(
        &reg,
        "svc",
        "dynamic",
        &ImageSpec {
            user: "65532".into(),
            extra: vec![("/bin/true".into(), true_bin)],
            marker: "dynamic".into(),
            ..ImageSpec::default()
        },
    );
    for tag in ["nonroot", "root", "dynamic"] {
        kiln_ok(
            d,
            &[
                "sign",
                &format!("{host}/svc:{tag}"),
                "--key",
                "kiln.key",
                "--attest",
            ],
        );
    }
    let policy = |name: &str, body: &str| {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let nonroot = format!("{host}/svc:nonroot");
    let root = format!("{host}/svc:root");

    let cases = [
        (
            "allowed_base_digests",
            format!("allowed_base_digests = [\"{base}\"]\n"),
            format!("allowed_base_digests = [\"{other_base}\"]\n"),
            &nonroot,
        ),
        (
            "denied_modules",
            "denied_modules = [\"example.org/dep@v9.9.9\"]\n".to_string(),
            "denied_modules = [\"example.org/dep\"]\n".to_string(),
            &nonroot,
        ),
        (
            "require_non_root",
            "require_non_root = true\n".to_string(),
            "require_non_root = true\n".to_string(),
            &root,
        ),
    ];
    for (rule, passing, failing, failing_image) in cases {
        let ok = policy(&format!("{rule}-ok.toml"), &passing);
        let (code, report) = verify_json(d, &nonroot, "kiln.pub", Some(&ok));
        assert_eq!(code, 0, "{rule} should pass: {report:#}");
        assert!(check(&report, "policy").unwrap().0);
        let bad = policy(&format!("{rule}-bad.toml"), &failing);
        let (code, report) = verify_json(d, failing_image, "kiln.pub", Some(&bad));
        assert_eq!(code, 1, "{rule} should fail: {report:#}");
        let (passed, detail) = check(&report, &format!("policy:{rule}"))
            .unwrap_or_else(|| panic!("no policy:{rule} check in {report:#}"));
        assert!(!passed, "{detail}");
        // Everything else about the image is fine: only the policy fails.
        assert!(check(&report, "signature").unwrap().0);
    }
    // The root image records its base in config labels, as `kiln image` does.
    let ok_base = d.join("allowed_base_digests-ok.toml");
    let (code, report) = verify_json(d, &root, "kiln.pub", Some(&ok_base));
    assert_eq!(code, 0, "{report:#}");
    let bad_base = d.join("allowed_base_digests-bad.toml");
    let (code, report) = verify_json(d, &root, "kiln.pub", Some(&bad_base));
    assert_eq!(code, 1, "{report:#}");
    assert!(check(&report, "policy:allowed_base_digests")
        .unwrap()
        .1
        .contains(&format!("base image {base} is not in the allowed list")));
    let (_, report) = verify_json(
        d,
        &root,
        "kiln.pub",
        Some(&d.join("denied_modules-bad.toml")),
    );
    assert!(check(&report, "policy:denied_modules")
        .unwrap()
        .1
        .contains("example.org/dep@v1.2.3"));

    // An unknown policy key is a usage error, not a silent pass.
    let typo = policy("typo.toml", "require_non_rot = true\n");
    let out = kiln(
        d,
        &[
            "verify",
            &nonroot,
            "--key",
            "kiln.pub",
            "--policy",
            typo.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let (code, report) = verify_json(d, &format!("{host}/svc:dynamic"), "kiln.pub", None);
    assert_eq!(code, 1);
    let (ok, detail) = check(&report, "static-binaries").unwrap();
    assert!(
        !ok && detail.contains("/bin/true") && detail.contains("dynamically linked"),
        "{detail}"
    );
    assert!(check(&report, "signature").unwrap().0);
}

/// Files of kiln's built-in base every SBOM of an image on it must list.
const KILN_BASE_FILES: [&str; 2] = ["/etc/passwd", "/etc/ssl/certs/ca-certificates.crt"];

fn is_sha256_hex(v: &serde_json::Value) -> bool {
    v.as_str()
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `kiln sbom IMAGE` in both formats: valid for the official tools, with the kiln base as a
/// package/component carrying its digest and its files with hashes.
fn sbom_lists_kiln_base_files(d: &Path, image: &str) {
    for (format, file) in [("spdx", "base.spdx.json"), ("cyclonedx", "base.cdx.json")] {
        kiln_ok(d, &["sbom", image, "--format", format, "--output", file]);
    }
    assert_spdx_valid(&d.join("base.spdx.json"));
    assert_cyclonedx_valid(&d.join("base.cdx.json"));
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join(f)).unwrap()).unwrap()
    };

    let spdx = read("base.spdx.json");
    let packages = spdx["packages"].as_array().unwrap();
    let base = packages
        .iter()
        .find(|p| p["primaryPackagePurpose"] == "CONTAINER" && p["name"] == "kiln")
        .unwrap_or_else(|| panic!("no kiln base package in SPDX: {spdx:#}"));
    assert!(
        is_sha256_hex(&base["checksums"][0]["checksumValue"]),
        "{base:#}"
    );
    for path in KILN_BASE_FILES {
        let p = packages
            .iter()
            .find(|p| p["name"] == path && p["primaryPackagePurpose"] == "FILE")
            .unwrap_or_else(|| panic!("{path} missing from SPDX"));
        assert_eq!(p["checksums"][0]["algorithm"], "SHA256", "{p:#}");
        assert!(is_sha256_hex(&p["checksums"][0]["checksumValue"]), "{p:#}");
        let contained = spdx["relationships"].as_array().unwrap().iter().any(|r| {
            r["spdxElementId"] == base["SPDXID"]
                && r["relationshipType"] == "CONTAINS"
                && r["relatedSpdxElement"] == p["SPDXID"]
        });
        assert!(contained, "{path} is not CONTAINed by the base");
    }

    let cdx = read("base.cdx.json");
    let base = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "container" && c["name"] == "kiln")
        .unwrap_or_else(|| panic!("no kiln base component in CycloneDX: {cdx:#}"));
    assert!(is_sha256_hex(&base["hashes"][0]["content"]), "{base:#}");
    assert_eq!(
        base["hashes"][0]["content"],
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "kiln")
            .unwrap()["checksums"][0]["checksumValue"],
        "both formats pin the same base digest"
    );
    let files = base["components"].as_array().expect("base files nested");
    for path in KILN_BASE_FILES {
        let f = files
            .iter()
            .find(|f| f["name"] == path)
            .unwrap_or_else(|| panic!("{path} missing from CycloneDX"));
        assert_eq!(f["type"], "file");
        assert_eq!(f["hashes"][0]["alg"], "SHA-256", "{f:#}");
        assert!(is_sha256_hex(&f["hashes"][0]["content"]), "{f:#}");
    }
}

#[test]
fn image_push_sign_leaves_a_verifiable_multi_arch_image() {
    require_go();
    let reg = Registry::start();
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path(), "kiln");
    let repo = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = repo.path();
    GoModule::new("example.com/shop")
        .main("cmd/hello", "fmt.Println(\"hello\")")
        .write_to(r);
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "-m",
            "init",
        ],
    ] {
        let st = Command::new("git")
            .args(args)
            .current_dir(r)
            .status()
            .expect("git");
        assert!(st.success(), "git {args:?}");
    }
    let dest = format!("{}/team/hello:v1", reg.host());
    let key = keys.path().join("kiln.key");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "image",
            "--platform",
            "linux/amd64,linux/arm64",
            "--push",
            &dest,
            "--sign",
            "--key",
        ])
        .arg(&key)
        .current_dir(r)
        .env("KILN_CACHE_DIR", cache.path())
        .env("KILN_PASSWORD", PASSWORD)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kiln image --sign failed: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signed "),
        "{}",
        text(&out)
    );

    let (code, report) = verify_json(keys.path(), &dest, "kiln.pub", None);
    assert_eq!(code, 0, "{report:#}");
    let (_, detail) = check(&report, "static-binaries").unwrap();
    assert!(
        detail.starts_with("2 executable"),
        "one binary per platform: {detail}"
    );
    // The provenance names the index digest that was pushed.
    let digest: Digest = report["digest"].as_str().unwrap().parse().unwrap();
    let t = tags(&reg.repo("team/hello"));
    assert!(t.contains(&cosign_tag(&digest, "att")), "{t:?}");

    // Issue 4: the SBOM of an image on the kiln base names the base (pinned by its layer
    // digest) and lists the base's files with their sha256, read from the pushed layer.
    sbom_lists_kiln_base_files(keys.path(), &dest);

    // --sign without --key is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["image", "--push", &dest, "--sign"])
        .current_dir(r)
        .env("KILN_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
