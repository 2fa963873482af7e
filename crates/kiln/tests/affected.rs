//! `kiln affected` and `kiln build --affected` on a real git repository with the real Go toolchain.

mod common;

use common::{shop, targets, Repo};

fn init_git(repo: &Repo) {
    repo.git(&["init", "-q", "-b", "main"]);
    commit(repo, "initial");
    repo.git(&["checkout", "-q", "-b", "feature"]);
}

fn commit(repo: &Repo, msg: &str) {
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "--no-gpg-sign", "-m", msg]);
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "kiln failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn affected_json(repo: &Repo, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["affected", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(&repo.kiln(&all))).expect("kiln affected --json prints JSON")
}

fn service_names(v: &serde_json::Value) -> Vec<&str> {
    v["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

#[test]
fn affected_json_human_and_explain() {
    let repo = shop();
    repo.write("README.md", "# shop\n");
    init_git(&repo);

    // An uncommitted change to the embedded file of the shared package: both services.
    repo.write("internal/greet/message.txt", "bonjour\n");
    let v = affected_json(&repo, &[]);
    assert_eq!(service_names(&v), vec!["api", "worker"], "{v:#}");
    assert_eq!(v["base"], "main");
    assert_eq!(v["everything"], false);
    assert_eq!(
        v["changed"],
        serde_json::json!(["internal/greet/message.txt"])
    );
    let reason = &v["services"][0]["reasons"][0];
    assert_eq!(reason["kind"], "file");
    assert_eq!(reason["file"], "internal/greet/message.txt");
    assert_eq!(reason["package"], "example.com/shop/internal/greet");
    commit(&repo, "french");

    // A committed change to one main: only that service, in every output form.
    repo.write(
        "cmd/worker/main.go",
        "package main\n\nfunc main() { println(\"w\") }\n",
    );
    commit(&repo, "worker");
    let v = affected_json(&repo, &["--base", "HEAD~1"]);
    assert_eq!(service_names(&v), vec!["worker"], "{v:#}");
    assert_eq!(v["unaffected"], serde_json::json!(["api"]));
    let human = ok(&repo.kiln(&["affected", "--base", "HEAD~1"]));
    assert!(
        human.contains("SERVICE") && human.contains("worker") && !human.contains("api "),
        "{human}"
    );
    assert!(human.contains("1 of 2 services affected"), "{human}");
    let names = ok(&repo.kiln(&["affected", "--base", "HEAD~1", "--names"]));
    assert_eq!(names, "worker\n");
    let explain = ok(&repo.kiln(&["affected", "--explain"]));
    assert!(
        explain.contains("internal/greet/message.txt (package example.com/shop/internal/greet)"),
        "{explain}"
    );

    // Docs only: nothing.
    repo.write("README.md", "# shop\n\nmore\n");
    let human = ok(&repo.kiln(&["affected", "--base", "HEAD"]));
    assert!(
        human.contains("no service affected by 1 changed file(s)"),
        "{human}"
    );
    let v = affected_json(&repo, &["--base", "HEAD"]);
    assert_eq!(v["services"], serde_json::json!([]));
    assert_eq!(v["ignored"], serde_json::json!(["README.md"]));

    // An unknown base is an error with a hint, exit 2.
    let out = repo.kiln(&["affected", "--base", "no-such-ref"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-ref") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn shallow_clone_means_everything_with_a_warning() {
    let repo = shop();
    init_git(&repo);
    repo.write("README.md", "docs\n");
    commit(&repo, "docs");
    repo.git(&["checkout", "-q", "main"]);
    let clone = tempfile::tempdir().unwrap();
    let dest = clone.path().join("c");
    repo.git(&[
        "clone",
        "-q",
        "--depth",
        "1",
        "--branch",
        "feature",
        &format!("file://{}", repo.path().display()),
        dest.to_str().unwrap(),
    ]);
    let out = repo.kiln_in(&dest, &["affected", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["everything"], true);
    assert_eq!(service_names(&v), vec!["api", "worker"]);
    assert_eq!(v["services"][0]["reasons"][0]["kind"], "base_missing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning:") && err.contains("shallow"), "{err}");
}

#[test]
fn build_affected_builds_only_affected_services() {
    let repo = shop();
    init_git(&repo);
    repo.write("cmd/api/main.go", "package main\n\nimport \"example.com/shop/internal/greet\"\n\nfunc main() { println(greet.Message()) }\n");
    let report = repo.build_json(&["--platform", "linux/amd64", "--affected"]);
    let built: Vec<&str> = targets(&report)
        .iter()
        .map(|t| t["service"].as_str().unwrap())
        .collect();
    assert_eq!(built, vec!["api"]);
    assert!(repo.path().join("dist/api/linux_amd64/api").is_file());
    assert!(!repo.path().join("dist/worker").exists());

    // Nothing changed since HEAD: nothing built, exit 0, said so.
    commit(&repo, "api");
    std::fs::remove_dir_all(repo.path().join("dist")).unwrap();
    let out = repo.kiln(&[
        "build",
        "--platform",
        "linux/amd64",
        "--affected",
        "--base",
        "HEAD",
    ]);
    let stdout = ok(&out);
    assert!(stdout.contains("nothing affected since HEAD"), "{stdout}");
    assert!(!repo.path().join("dist").exists());
    let out = repo.kiln(&["build", "--json", "--affected", "--base", "HEAD"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["targets"], serde_json::json!([]));
    assert_eq!(v["affected"]["services"], serde_json::json!([]));

    // --base without --affected is refused by the parser.
    let out = repo.kiln(&["build", "--base", "HEAD"]);
    assert_eq!(out.status.code(), Some(2));
}
