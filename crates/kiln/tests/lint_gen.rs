//! `kiln lint` (human, JSON, SARIF, exit codes, discovery) and `kiln gen` through the real binary.

mod common;

use common::{dump, shop, stdout, Repo};
use kiln_test_support::sarif::assert_sarif_valid;

const BAD: &str = "FROM golang:1.26\nCOPY . .\nRUN go build -o /app .\nCMD [\"/app\"]\n";
/// Only warnings: root user (KL009) and, without a .dockerignore, KL010.
const WARN_ONLY: &str = "FROM gcr.io/distroless/static-debian12@sha256:0000000000000000000000000000000000000000000000000000000000000001\nCOPY app /app\nENTRYPOINT [\"/app\"]\n";

#[test]
fn lint_formats_and_exit_codes() {
    let repo = Repo::new();
    repo.write("Dockerfile", BAD)
        .write("svc/warn.Dockerfile", WARN_ONLY);

    let out = repo.kiln(&["lint", "Dockerfile"]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Dockerfile:1: error[KL001] go-toolchain-in-final-stage:"),
        "{text}"
    );
    assert!(text.contains("  hint: "), "{text}");
    assert!(text.contains("failing at warning and above"), "{text}");

    let out = repo.kiln(&["lint", "--format", "json", "Dockerfile"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["threshold"], "warning");
    let rules: Vec<&str> = v["reports"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"KL001") && rules.contains(&"KL002"),
        "{rules:?}"
    );

    let out = repo.kiln(&[
        "lint",
        "--format",
        "sarif",
        "Dockerfile",
        "svc/warn.Dockerfile",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let sarif = stdout(&out);
    assert_sarif_valid(sarif.as_bytes());
    let v: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let uris: Vec<&str> = v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        uris.contains(&"Dockerfile") && uris.contains(&"svc/warn.Dockerfile"),
        "{uris:?}"
    );

    // Thresholds: warnings fail by default, not with --severity error; errors always fail.
    let out = repo.kiln(&["lint", "svc/warn.Dockerfile"]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert!(stdout(&out).contains("KL009"));
    let out = repo.kiln(&["lint", "--severity", "error", "svc/warn.Dockerfile"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let out = repo.kiln(&["lint", "--severity", "error", "Dockerfile"]);
    assert_eq!(out.status.code(), Some(1));
    // --disable and --min-severity drop findings.
    let out = repo.kiln(&["lint", "--disable", "kl009,KL010", "svc/warn.Dockerfile"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let out = repo.kiln(&[
        "lint",
        "--min-severity",
        "error",
        "--format",
        "json",
        "svc/warn.Dockerfile",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["reports"][0]["findings"], serde_json::json!([]));

    // A file that does not parse, or does not exist: exit 2 with the line.
    repo.write("broken.Dockerfile", "FROM scratch\nCOPY app\n");
    let out = repo.kiln(&["lint", "broken.Dockerfile"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.Dockerfile:line 2:"),
        "{}",
        dump(&out)
    );
    let out = repo.kiln(&["lint", "missing/Dockerfile"]);
    assert_eq!(out.status.code(), Some(2));
    let out = repo.kiln(&["lint", "--severity", "fatal"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown level is a usage error"
    );
}

#[test]
fn lint_finds_dockerfiles_in_the_repository() {
    let repo = Repo::new();
    repo.write("Dockerfile", BAD)
        .write("svc/api.Dockerfile", WARN_ONLY)
        .write("svc/Dockerfile.prod", WARN_ONLY)
        .write("svc/Dockerfile.dockerignore", ".git\n")
        .write("dist/Dockerfile", BAD)
        .write("docs/Dockerfile.md", "not a Dockerfile\n");
    repo.git(&["init", "-q"]);
    // Run from a subdirectory: discovery starts at the repository root.
    let out = repo.kiln_in(&repo.path().join("svc"), &["lint", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let files: Vec<&str> = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    let root = repo.path().canonicalize().unwrap();
    assert_eq!(
        files,
        vec![
            root.join("Dockerfile").display().to_string(),
            "Dockerfile.prod".to_string(),
            "api.Dockerfile".to_string()
        ]
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn gen_writes_files_that_lint_clean() {
    let repo = shop();
    // Two services: printing needs a name.
    let out = repo.kiln(&["gen", "dockerfile"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hint: kiln gen dockerfile api"),
        "{}",
        dump(&out)
    );

    let out = repo.kiln(&["gen", "dockerfile", "api"]);
    assert!(out.status.success(), "{}", dump(&out));
    let df = stdout(&out);
    assert!(
        df.contains("FROM golang:1.22@sha256:"),
        "the Go version comes from go.mod: {df}"
    );
    assert!(df.contains("-o /out/api ./cmd/api"), "{df}");
    assert!(
        df.contains("USER 65532:65532") && !df.contains("EXPOSE"),
        "{df}"
    );
    let out = repo.kiln(&["gen", "dockerfile", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api, worker"),
        "{}",
        dump(&out)
    );

    // --write: one Dockerfile per service next to it, one .dockerignore at the context root.
    let out = repo.kiln(&["gen", "dockerfile", "--write"]);
    assert!(out.status.success(), "{}", dump(&out));
    let out = repo.kiln(&["gen", "dockerignore", "--write"]);
    assert!(out.status.success(), "{}", dump(&out));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("cmd/api/Dockerfile")).unwrap(),
        df
    );
    assert!(repo.path().join("cmd/worker/Dockerfile").is_file());
    assert!(std::fs::read_to_string(repo.path().join(".dockerignore"))
        .unwrap()
        .contains(".git"));

    // Every generated Dockerfile passes every rule, info included, through the CLI.
    let out = repo.kiln(&["lint", "--severity", "info", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{v:#}");
    assert!(
        reports
            .iter()
            .all(|r| r["findings"] == serde_json::json!([])),
        "{v:#}"
    );

    // No silent overwrite.
    let out = repo.kiln(&["gen", "dockerfile", "api", "--write"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        dump(&out)
    );
    std::fs::write(repo.path().join("cmd/api/Dockerfile"), "edited\n").unwrap();
    let out = repo.kiln(&["gen", "dockerfile", "api", "--write", "--force"]);
    assert!(out.status.success(), "{}", dump(&out));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("cmd/api/Dockerfile")).unwrap(),
        df
    );

    let unit = stdout(&repo.kiln(&["gen", "systemd", "worker"]));
    assert!(
        unit.contains("[Service]")
            && unit.contains("/usr/local/bin/worker")
            && unit.contains("NoNewPrivileges=yes"),
        "{unit}"
    );
    let k8s = stdout(&repo.kiln(&["gen", "k8s", "api"]));
    assert!(
        k8s.contains("kind: Deployment") && k8s.contains("name: \"api\""),
        "{k8s}"
    );
    let out = repo.kiln(&["gen", "systemd", "api", "--write"]);
    assert!(out.status.success(), "{}", dump(&out));
    assert!(repo.path().join("cmd/api/api.service").is_file());
}
