//! Bad inputs and small defects (issue 8, "Also found"), on the real binary and the real `go`:
//! service names that are paths, repeated platforms, package directories go refuses, a missing
//! `-C` directory, and the manifest's file mode.

mod common;

use std::process::{Command, Output};

use common::{shop, target, targets, Repo};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn issue_8_a_service_name_that_is_a_path_is_refused() {
    let repo = shop();
    // With out = a/b/dist, `../../x` would have put the binary in a/x.
    repo.write(
        "kiln.toml",
        "[build]\nout = \"a/b/dist\"\n\n[services.\"../../x\"]\npackage = \"./cmd/api\"\n",
    );
    let out = repo.kiln(&["build", "--platform", "linux/amd64"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[services.\"../../x\"]: invalid service name")
            && err.contains("a service name is one path element")
            && err.contains("hint: rename the section"),
        "{err}"
    );
    assert!(
        !repo.path().join("a/x").exists(),
        "binary escaped the output directory"
    );
    assert!(!repo.path().join("a/b/dist").exists());
}

#[test]
fn issue_8_repeated_platforms_and_patterns_build_each_target_once() {
    let repo = shop();
    let many = vec!["linux/amd64"; 500].join(",");
    let report = repo.build_json(&["--platform", &many, "./cmd/api", "./cmd/api", "./cmd/..."]);
    let labels: Vec<String> = targets(&report)
        .iter()
        .map(|t| format!("{} {}", t["service"], t["platform"]))
        .collect();
    assert_eq!(
        labels,
        ["\"api\" \"linux/amd64\"", "\"worker\" \"linux/amd64\""],
        "{report:#}"
    );

    repo.write(
        "kiln.toml",
        "[build]\nplatforms = [\"linux/amd64\", \"linux/amd64\"]\n\n[services.worker]\nplatforms = [\"linux/amd64\", \"LINUX/AMD64\"]\n",
    );
    let report = repo.build_json(&[]);
    assert_eq!(targets(&report).len(), 2, "{report:#}");
    target(&report, "api", "linux/amd64");
    target(&report, "worker", "linux/amd64");
}

#[test]
fn issue_8_a_package_directory_go_refuses_fails_only_its_target() {
    let repo = shop();
    repo.write("cmd/my svc/main.go", "package main\n\nfunc main() {}\n")
        .write("cmd/café/main.go", "package main\n\nfunc main() {}\n");
    let out = repo.kiln(&["build", "--json", "--platform", "linux/amd64"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    // The healthy services still built.
    for svc in ["api", "worker"] {
        let t = target(&report, svc, "linux/amd64");
        assert!(t["error"].is_null(), "{t:#}");
        assert!(repo
            .path()
            .join(format!("dist/{svc}/linux_amd64/{svc}"))
            .is_file());
    }
    // Each refused directory is a failed target carrying go's own reason.
    for (svc, reason) in [("my svc", "invalid char ' '"), ("café", "invalid char 'é'")] {
        let t = target(&report, svc, "linux/amd64");
        let msg = t["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains("malformed import path") && msg.contains(reason),
            "{svc}: {msg}"
        );
    }
    assert!(err.contains("2 of 4 targets failed"), "{err}");
}

#[test]
fn issue_8_a_missing_dash_c_directory_says_so() {
    let repo = Repo::new();
    let out = repo.kiln(&["-C", "no-such-dir", "build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("-C no-such-dir: no such directory"), "{err}");
    assert!(!err.contains("install Go"), "{err}");

    repo.write("a-file", "");
    let out = repo.kiln(&["-C", "a-file", "build"]);
    assert!(
        stderr(&out).contains("-C a-file: not a directory"),
        "{}",
        stderr(&out)
    );
}

/// Runs `kiln build` under `umask` and returns the manifest's permission bits.
fn manifest_mode(repo: &Repo, umask: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {umask} && exec \"$0\" build --platform linux/amd64 ./cmd/api"
        ))
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(repo.path())
        .env("KILN_CACHE_DIR", repo.cache.path())
        .output()
        .expect("sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::metadata(repo.path().join("dist/kiln-build.json")).expect("manifest");
    meta.permissions().mode() & 0o777
}

#[test]
fn issue_8_the_build_manifest_honours_the_umask() {
    let repo = shop();
    assert_eq!(manifest_mode(&repo, "022"), 0o644);
    assert_eq!(manifest_mode(&repo, "027"), 0o640);
}

#[test]
fn issue_8_init_skips_a_package_directory_go_refuses() {
    let repo = shop();
    repo.write("cmd/my svc/main.go", "package main\n\nfunc main() {}\n");
    let out = repo.kiln(&["init", "--stdout"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("[services.api]") && text.contains("[services.worker]"),
        "{text}"
    );
    assert!(
        text.contains("# example.com/shop/cmd/my svc: no section: go cannot load"),
        "{text}"
    );
}
