//! The CLI's human output, pinned by snapshots (with paths, sizes, times and digests filtered).

mod common;

use common::{shop, Repo};

fn run(repo: &Repo, args: &[&str]) -> (i32, String, String) {
    let out = repo.kiln(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"\d+(\.\d+)? (B|KiB|MiB)", "[SIZE]");
    s.add_filter(r"\b\d+(\.\d+)?(ms|s)\b", "[TIME]");
    s.add_filter(r"go1\.\d+(\.\d+)?", "[GO]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "[DIGEST]");
    s.add_filter(r"/tmp/[^\s:]+", "[TMP]");
    // The list of valid keys grows with kiln; the snapshot pins the message shape, not the list.
    s.add_filter(r"expected one of [^\n]+", "expected one of [KEYS]");
    // Table columns shift with the filtered widths; collapse runs of spaces.
    s.add_filter(r" {2,}", "  ");
    s
}

#[test]
fn build_summary_then_cached_summary() {
    let repo = shop();
    let (code, first, _) = run(&repo, &["build", "--platform", "linux/amd64,linux/arm64"]);
    assert_eq!(code, 0);
    let (code, second, _) = run(&repo, &["build", "--platform", "linux/amd64,linux/arm64"]);
    assert_eq!(code, 0);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("build_first", first);
        insta::assert_snapshot!("build_cached", second);
    });
}

#[test]
fn compile_error_output() {
    let repo = shop();
    repo.write(
        "cmd/api/main.go",
        "package main\n\nfunc main() {\n\tvar x int = \"no\"\n}\n",
    );
    let (code, stdout, stderr) = run(&repo, &["build", "--platform", "linux/amd64"]);
    assert_eq!(code, 1);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("compile_error_stdout", stdout);
        insta::assert_snapshot!("compile_error_stderr", stderr);
    });
}

#[test]
fn verify_bin_table_and_json() {
    let repo = shop();
    let (code, _, _) = run(&repo, &["build", "--platform", "linux/amd64", "./cmd/api"]);
    assert_eq!(code, 0);
    // A dynamically linked Go binary, as a plain `go build` makes it on a machine with gcc.
    let dynamic = repo.path().join("api-dynamic");
    let st = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&dynamic)
        .arg("./cmd/api")
        .current_dir(repo.path())
        .env("CGO_ENABLED", "1")
        .status()
        .unwrap();
    assert!(st.success());
    let (code, stdout, stderr) = run(
        &repo,
        &["verify-bin", "dist/api/linux_amd64/api", "api-dynamic"],
    );
    assert_eq!(code, 1, "the dynamic binary fails");
    assert!(
        stderr.contains("api-dynamic [dynamic-elf]: dynamically linked"),
        "{stderr}"
    );
    assert!(stderr.contains("CGO_ENABLED=0"), "{stderr}");
    snapshot_settings().bind(|| insta::assert_snapshot!("verify_bin_table", stdout));
    let (code, stdout, _) = run(&repo, &["verify-bin", "--json", "dist/api/linux_amd64/api"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["report"]["linkage"], "static");
    let (code, _, stderr) = run(&repo, &["verify-bin", "go.mod"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("go.mod"), "{stderr}");
}

#[test]
fn init_writes_a_config_that_builds() {
    let repo = shop();
    let (code, stdout, _) = run(&repo, &["init"]);
    assert_eq!(code, 0, "{stdout}");
    let text = std::fs::read_to_string(repo.path().join("kiln.toml")).unwrap();
    snapshot_settings().bind(|| insta::assert_snapshot!("init_kiln_toml", text));
    let (code, _, stderr) = run(&repo, &["init"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&repo, &["build"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn bad_kiln_toml_is_reported_with_location() {
    let repo = shop();
    repo.write("kiln.toml", "[build]\nplatfroms = [\"linux/amd64\"]\n");
    let (code, _, stderr) = run(&repo, &["build"]);
    assert_eq!(code, 2);
    snapshot_settings().bind(|| insta::assert_snapshot!("bad_config", stderr));
    repo.write(
        "kiln.toml",
        "[build]\nldflags = [\"-X main.v={{.Verison}}\"]\n",
    );
    let (code, _, stderr) = run(&repo, &["build"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown template `{{.Verison}}`"),
        "{stderr}"
    );
}
