//! SBOMs checked by the official validators: `pyspdxtools` (PyPI spdx-tools) and
//! cyclonedx-python-lib's strict JSON schema validator for CycloneDX 1.6.
//!
//! Needs: `pip install spdx-tools==0.8.5 'cyclonedx-python-lib[json-validation]==11.12.0'`
//! (kiln-test-support's `sbom` module runs them).

use std::process::Command;

use kiln_attest::{
    default_namespace, go_purl, h1_to_sha256_hex, to_cyclonedx, to_cyclonedx_bytes, to_spdx,
    to_spdx_bytes, BaseImageInfo, BinaryInfo, CreationInfo, GoModule, SbomSubject, SubjectKind,
};
use kiln_test_support::sbom::{
    assert_cyclonedx_bytes_valid, assert_spdx_bytes_valid, cyclonedx_verdict, spdx_verdict,
    SBOM_VALIDATORS_INSTALL,
};
use kiln_types::Digest;
use serde_json::Value;

fn module(path: &str, version: &str, sum: &str) -> GoModule {
    GoModule {
        path: path.into(),
        version: version.into(),
        sum: Some(sum.into()),
        replace: None,
    }
}

/// Third-party modules with their real go.sum hashes.
fn deps() -> Vec<GoModule> {
    vec![
        module(
            "github.com/google/uuid",
            "v1.6.0",
            "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=",
        ),
        module(
            "golang.org/x/sys",
            "v0.39.0",
            "h1:CvCKL8MeisomCi6qNZ+wbb0DN9E5AATixKsvNtMoMFk=",
        ),
        module(
            "golang.org/x/text",
            "v0.32.0",
            "h1:ZD01bjUt1FQ9WJ0ClOL5vxgxOI/sVCNgX1YtKwcY0mU=",
        ),
        module(
            "github.com/BurntSushi/toml",
            "v1.4.0",
            "h1:kuoIxZQy2WRRk1pttg9asf+WVv6tWQuBNVmK8+nqPr0=",
        ),
    ]
}

fn binary(path: &str, content: &[u8], deps: Vec<GoModule>) -> BinaryInfo {
    BinaryInfo {
        path_in_image: path.into(),
        sha256: Digest::of_bytes(content),
        go_version: "go1.27.1".into(),
        main_module: GoModule::new("example.com/kiln-demo", "(devel)"),
        deps,
        settings: vec![
            ("-buildmode".into(), "exe".into()),
            ("-ldflags".into(), "-s -w".into()),
            ("CGO_ENABLED".into(), "0".into()),
            ("GOOS".into(), "linux".into()),
            ("GOARCH".into(), "amd64".into()),
            (
                "vcs.revision".into(),
                "0123456789abcdef0123456789abcdef01234567".into(),
            ),
        ],
    }
}

fn image_subject() -> SbomSubject {
    let mut server_deps = deps();
    // A module replaced by a local directory: no version, no hash, but still listed.
    server_deps.push(GoModule {
        path: "example.com/internal/lib".into(),
        version: "v0.0.0".into(),
        sum: None,
        replace: Some(Box::new(GoModule::new("../lib", ""))),
    });
    // A module replaced by another module (a fork): described as the fork.
    server_deps.push(GoModule {
        path: "example.com/upstream/log".into(),
        version: "v1.0.0".into(),
        sum: None,
        replace: Some(Box::new(GoModule {
            path: "example.com/fork/log".into(),
            version: "v1.0.1-fix".into(),
            sum: Some("h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=".into()),
            replace: None,
        })),
    });
    SbomSubject {
        name: "registry.example:5000/team/kiln-demo".into(),
        version: Some("1.0.0".into()),
        kind: SubjectKind::Image,
        digest: Digest::of_bytes(b"image manifest"),
        platform: Some("linux/amd64".parse().unwrap()),
        binaries: vec![
            binary("/usr/bin/server", b"server binary", server_deps),
            // Shares modules with the server: they must appear once.
            binary("/usr/bin/cli", b"cli binary", deps()[..2].to_vec()),
        ],
        base: Some(BaseImageInfo {
            name: "kiln/static".into(),
            digest: Digest::of_bytes(b"base manifest"),
            files: vec![
                ("/etc/passwd".into(), Digest::of_bytes(b"root:x:0:0")),
                (
                    "/etc/ssl/certs/ca-certificates.crt".into(),
                    Digest::of_bytes(b"certs"),
                ),
                ("/etc/group".into(), Digest::of_bytes(b"root:x:0:")),
            ],
        }),
    }
}

fn binary_subject() -> SbomSubject {
    let bin = binary("kiln-demo", b"just the binary", deps());
    SbomSubject {
        name: "kiln-demo".into(),
        version: None,
        kind: SubjectKind::Binary,
        digest: bin.sha256,
        platform: Some("linux/arm64".parse().unwrap()),
        binaries: vec![bin],
        base: None,
    }
}

fn creation() -> CreationInfo {
    CreationInfo::at_epoch(1_700_000_000, "kiln-0.1.0")
}

#[test]
fn image_sbom_passes_official_validators() {
    let s = image_subject();
    assert_spdx_bytes_valid(&to_spdx_bytes(&s, &creation(), &default_namespace(&s)).unwrap());
    assert_cyclonedx_bytes_valid(&to_cyclonedx_bytes(&s, &creation()).unwrap());
}

#[test]
fn binary_sbom_passes_official_validators() {
    let s = binary_subject();
    assert_spdx_bytes_valid(&to_spdx_bytes(&s, &creation(), &default_namespace(&s)).unwrap());
    assert_cyclonedx_bytes_valid(&to_cyclonedx_bytes(&s, &creation()).unwrap());
}

#[test]
fn validators_catch_broken_documents() {
    // Guard against a harness that passes everything: break each document and expect a failure.
    let s = image_subject();
    let mut spdx = to_spdx(&s, &creation(), &default_namespace(&s)).unwrap();
    spdx["packages"][1]["checksums"][0]["checksumValue"] = Value::from("not-hex");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.spdx.json");
    std::fs::write(&file, serde_json::to_vec(&spdx).unwrap()).unwrap();
    let v = spdx_verdict(&file);
    assert!(!v.valid, "{}", v.output);

    let mut cdx = to_cyclonedx(&s, &creation()).unwrap();
    cdx["components"][0]["hashes"][0]["alg"] = Value::from("SHA-257");
    let file = dir.path().join("bad.cdx.json");
    std::fs::write(&file, serde_json::to_vec(&cdx).unwrap()).unwrap();
    let v = cyclonedx_verdict(&file);
    assert!(!v.valid, "{}", v.output);
}

#[test]
fn every_dependency_has_version_purl_and_hash_in_both_formats() {
    let s = image_subject();
    let spdx = to_spdx(&s, &creation(), &default_namespace(&s)).unwrap();
    let cdx = to_cyclonedx(&s, &creation()).unwrap();
    let spdx_pkgs = spdx["packages"].as_array().unwrap();
    let cdx_comps = cdx["components"].as_array().unwrap();
    for dep in deps() {
        let sha = h1_to_sha256_hex(&dep.path, dep.sum.as_deref().unwrap()).unwrap();
        let purl = go_purl(&dep.path, Some(&dep.version));
        let in_spdx: Vec<&Value> = spdx_pkgs
            .iter()
            .filter(|p| p["name"] == dep.path.as_str())
            .collect();
        assert_eq!(
            in_spdx.len(),
            1,
            "{} must appear exactly once in SPDX",
            dep.path
        );
        let p = in_spdx[0];
        assert_eq!(p["versionInfo"], dep.version.as_str());
        assert_eq!(p["externalRefs"][0]["referenceLocator"], purl.as_str());
        assert_eq!(p["checksums"][0]["algorithm"], "SHA256");
        assert_eq!(p["checksums"][0]["checksumValue"], sha.as_str());

        let in_cdx: Vec<&Value> = cdx_comps
            .iter()
            .filter(|c| c["name"] == dep.path.as_str())
            .collect();
        assert_eq!(
            in_cdx.len(),
            1,
            "{} must appear exactly once in CycloneDX",
            dep.path
        );
        let c = in_cdx[0];
        assert_eq!(c["version"], dep.version.as_str());
        assert_eq!(c["purl"], purl.as_str());
        assert_eq!(c["hashes"][0]["alg"], "SHA-256");
        assert_eq!(c["hashes"][0]["content"], sha.as_str());
    }
    // Known answer for one module (h1 base64 -> hex, as Python's base64 module decodes it).
    assert_eq!(
        h1_to_sha256_hex(
            "github.com/google/uuid",
            "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0="
        )
        .unwrap(),
        "348bda24330eb231c0f27d630212d2833ac0cf2d4782bfa136b6f9edefbde05d"
    );
    // Upper case in module paths survives (Go paths are case-sensitive).
    assert!(cdx_comps
        .iter()
        .any(|c| c["purl"] == "pkg:golang/github.com/BurntSushi/toml@v1.4.0"));
    // The locally replaced module is listed, without an invented version or hash.
    let local = cdx_comps
        .iter()
        .find(|c| c["name"] == "example.com/internal/lib")
        .unwrap();
    assert!(local.get("hashes").is_none() && local.get("version").is_none());
}

#[test]
fn relationships_and_dependency_graph() {
    let s = image_subject();
    let spdx = to_spdx(&s, &creation(), &default_namespace(&s)).unwrap();
    let rels = spdx["relationships"].as_array().unwrap();
    let id_of = |name: &str| -> String {
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no package {name}"))["SPDXID"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let has = |a: &str, kind: &str, b: &str| {
        rels.iter().any(|r| {
            r["spdxElementId"] == a && r["relationshipType"] == kind && r["relatedSpdxElement"] == b
        })
    };
    let image = id_of(&s.name);
    assert!(has("SPDXRef-DOCUMENT", "DESCRIBES", &image));
    assert!(has(&image, "CONTAINS", &id_of("/usr/bin/server")));
    assert!(has(&image, "DESCENDANT_OF", &id_of("kiln/static")));
    assert!(has(
        &id_of("kiln/static"),
        "CONTAINS",
        &id_of("/etc/passwd")
    ));
    assert!(has(
        &id_of("/usr/bin/server"),
        "CONTAINS",
        &id_of("golang.org/x/text")
    ));
    assert!(has(
        &id_of("example.com/kiln-demo"),
        "DEPENDS_ON",
        &id_of("github.com/google/uuid")
    ));
    // The CLI does not link x/text.
    assert!(!has(
        &id_of("/usr/bin/cli"),
        "CONTAINS",
        &id_of("golang.org/x/text")
    ));

    let cdx = to_cyclonedx(&s, &creation()).unwrap();
    let root_ref = cdx["metadata"]["component"]["bom-ref"].as_str().unwrap();
    let deps = cdx["dependencies"].as_array().unwrap();
    let refs: Vec<&str> = deps.iter().map(|d| d["ref"].as_str().unwrap()).collect();
    let mut unique = refs.clone();
    unique.dedup();
    assert_eq!(refs.len(), unique.len(), "each ref once");
    let root = deps.iter().find(|d| d["ref"] == root_ref).unwrap();
    assert_eq!(
        root["dependsOn"].as_array().unwrap().len(),
        3,
        "two binaries and the base"
    );
    // Every ref in the graph is a component or the subject.
    let mut known: Vec<String> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap().to_owned())
        .collect();
    known.push(root_ref.to_owned());
    for d in deps {
        assert!(known.contains(&d["ref"].as_str().unwrap().to_owned()));
        for on in d["dependsOn"].as_array().unwrap() {
            assert!(known.contains(&on.as_str().unwrap().to_owned()), "{on}");
        }
    }
}

#[test]
fn documents_are_reproducible_and_track_the_subject() {
    let s = image_subject();
    let ns = default_namespace(&s);
    assert_eq!(
        to_spdx_bytes(&s, &creation(), &ns).unwrap(),
        to_spdx_bytes(&s, &creation(), &ns).unwrap()
    );
    let a = to_cyclonedx_bytes(&s, &creation()).unwrap();
    assert_eq!(a, to_cyclonedx_bytes(&s, &creation()).unwrap());
    // Input order of binaries must not matter for module ordering or ids.
    let mut reordered = s.clone();
    reordered.binaries.reverse();
    let spdx_a = to_spdx(&s, &creation(), &ns).unwrap();
    let spdx_b = to_spdx(&reordered, &creation(), &ns).unwrap();
    assert_eq!(spdx_a["relationships"], spdx_b["relationships"]);

    let mut other = s.clone();
    other.digest = Digest::of_bytes(b"another manifest");
    let cdx_a: Value = serde_json::from_slice(&a).unwrap();
    let cdx_b = to_cyclonedx(&other, &creation()).unwrap();
    assert_ne!(cdx_a["serialNumber"], cdx_b["serialNumber"]);
    assert_ne!(default_namespace(&s), default_namespace(&other));
    assert_eq!(cdx_a["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(cdx_a["metadata"]["tools"]["components"][0]["name"], "kiln");
    assert_eq!(
        cdx_a["metadata"]["tools"]["components"][0]["version"],
        "0.1.0"
    );
}

#[test]
fn purls_round_trip_through_the_reference_parser() {
    // packageurl-python (installed with cyclonedx-python-lib) is the purl reference
    // implementation: every purl we emit must parse and print back unchanged.
    let s = image_subject();
    let cdx = to_cyclonedx(&s, &creation()).unwrap();
    let mut purls: Vec<String> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str().map(str::to_owned))
        .collect();
    purls.push(
        cdx["metadata"]["component"]["purl"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    purls.push(go_purl(
        "github.com/docker/docker",
        Some("v27.1.1+incompatible"),
    ));
    let script = "import sys\nfrom packageurl import PackageURL\nfor p in sys.argv[1:]:\n    print(PackageURL.from_string(p).to_string())\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&purls)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {SBOM_VALIDATORS_INSTALL}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{SBOM_VALIDATORS_INSTALL}",
        String::from_utf8_lossy(&out.stderr)
    );
    let round: Vec<&str> = stdout.lines().collect();
    assert_eq!(round, purls.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn issue_10_stdlib_and_main_module_are_components() {
    let s = image_subject();
    let spdx = to_spdx(&s, &creation(), &default_namespace(&s)).unwrap();
    let pkgs = spdx["packages"].as_array().unwrap();
    let std: Vec<&Value> = pkgs.iter().filter(|p| p["name"] == "stdlib").collect();
    // Both executables were built with go1.27.1: one stdlib package.
    assert_eq!(std.len(), 1, "{std:?}");
    assert_eq!(std[0]["versionInfo"], "go1.27.1");
    assert_eq!(
        std[0]["externalRefs"][0]["referenceLocator"],
        "pkg:golang/stdlib@1.27.1"
    );
    let std_id = std[0]["SPDXID"].as_str().unwrap();
    let id_of = |name: &str| {
        pkgs.iter().find(|p| p["name"] == name).unwrap()["SPDXID"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let main_id = id_of("example.com/kiln-demo");
    let rels = spdx["relationships"].as_array().unwrap();
    let has = |a: &str, kind: &str, b: &str| {
        rels.iter().any(|r| {
            r["spdxElementId"] == a && r["relationshipType"] == kind && r["relatedSpdxElement"] == b
        })
    };
    assert!(has(&main_id, "DEPENDS_ON", std_id));
    assert!(has(&id_of("/usr/bin/server"), "CONTAINS", std_id));
    assert!(has(&id_of("/usr/bin/cli"), "CONTAINS", &main_id));

    let cdx = to_cyclonedx(&s, &creation()).unwrap();
    let comps = cdx["components"].as_array().unwrap();
    let std = comps.iter().find(|c| c["name"] == "stdlib").unwrap();
    assert_eq!(std["purl"], "pkg:golang/stdlib@1.27.1");
    assert_eq!(std["version"], "go1.27.1");
    let main = comps
        .iter()
        .find(|c| c["name"] == "example.com/kiln-demo")
        .unwrap();
    assert_eq!(main["purl"], "pkg:golang/example.com/kiln-demo");
    let main_deps = cdx["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == main["bom-ref"])
        .unwrap();
    let on: Vec<&str> = main_deps["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(on.contains(&std["bom-ref"].as_str().unwrap()), "{on:?}");
    let uuid = comps
        .iter()
        .find(|c| c["name"] == "github.com/google/uuid")
        .unwrap();
    assert!(on.contains(&uuid["bom-ref"].as_str().unwrap()), "{on:?}");

    // A binary built with another toolchain adds its own stdlib version.
    let mut two = s.clone();
    two.binaries[1].go_version = "go1.26.8".into();
    let cdx = to_cyclonedx(&two, &creation()).unwrap();
    let purls: Vec<&str> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "stdlib")
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    assert_eq!(
        purls,
        ["pkg:golang/stdlib@1.26.8", "pkg:golang/stdlib@1.27.1"]
    );
    assert_cyclonedx_bytes_valid(&to_cyclonedx_bytes(&two, &creation()).unwrap());
}

#[test]
fn issue_10_bom_refs_are_not_spdx_ids() {
    for s in [image_subject(), binary_subject()] {
        let cdx = to_cyclonedx(&s, &creation()).unwrap();
        let mut refs = vec![cdx["metadata"]["component"]["bom-ref"]
            .as_str()
            .unwrap()
            .to_owned()];
        fn walk(comps: &Value, out: &mut Vec<String>) {
            for c in comps.as_array().into_iter().flatten() {
                out.push(c["bom-ref"].as_str().unwrap().to_owned());
                walk(&c["components"], out);
            }
        }
        walk(&cdx["components"], &mut refs);
        assert!(refs.len() > 5);
        for r in &refs {
            assert!(!r.starts_with("SPDXRef-"), "{r}");
        }
        let mut unique = refs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), refs.len(), "bom-refs are unique");
    }
}

#[test]
fn issue_10_replaced_module_ids_agree_with_versions() {
    let s = image_subject();
    let spdx = to_spdx(&s, &creation(), &default_namespace(&s)).unwrap();
    let pkgs = spdx["packages"].as_array().unwrap();
    // Replaced by a fork: name, versionInfo, SPDXID and purl all describe the fork; the
    // comment names what it replaces.
    let fork = pkgs
        .iter()
        .find(|p| p["name"] == "example.com/fork/log")
        .unwrap();
    assert_eq!(fork["versionInfo"], "v1.0.1-fix");
    let id = fork["SPDXID"].as_str().unwrap();
    assert!(
        id.starts_with("SPDXRef-gomod-example.com-fork-log-v1.0.1-fix-"),
        "{id}"
    );
    assert!(!id.contains("v1.0.0"), "{id}");
    assert_eq!(
        fork["externalRefs"][0]["referenceLocator"],
        "pkg:golang/example.com/fork/log@v1.0.1-fix"
    );
    assert!(fork["comment"]
        .as_str()
        .unwrap()
        .contains("replaces example.com/upstream/log v1.0.0"));
    assert!(!pkgs.iter().any(|p| p["name"] == "example.com/upstream/log"));
    // Replaced by a local directory: no version anywhere, the id says local.
    let local = pkgs
        .iter()
        .find(|p| p["name"] == "example.com/internal/lib")
        .unwrap();
    assert!(local.get("versionInfo").is_none());
    let id = local["SPDXID"].as_str().unwrap();
    assert!(
        id.starts_with("SPDXRef-gomod-example.com-internal-lib-local-"),
        "{id}"
    );
    assert!(!id.contains("v0.0.0"), "{id}");

    let cdx = to_cyclonedx(&s, &creation()).unwrap();
    let fork = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "example.com/fork/log")
        .unwrap();
    assert_eq!(fork["version"], "v1.0.1-fix");
    assert!(fork["bom-ref"]
        .as_str()
        .unwrap()
        .starts_with("gomod-example.com-fork-log-v1.0.1-fix-"));
    assert!(fork["properties"].as_array().unwrap().iter().any(
        |p| p["name"] == "kiln:go:replaces" && p["value"] == "example.com/upstream/log v1.0.0"
    ));
}
