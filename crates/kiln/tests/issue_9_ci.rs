//! Issue 9, items 5, 10, 12 and 14, end to end with the real `kiln`, `go`, `git` and Debian's
//! `docker-registry`: one rule for the image version label, GoReleaser-style templates (and their
//! errors printed once), cross-repository blob mounts, and GitHub Actions annotations and job
//! summaries.

mod common;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use common::{binary_path, target, Repo};
use serde_json::Value;
use support::registry::Registry;

/// `kiln ARGS` in the repository with extra environment variables (and none of the GitHub ones
/// the test runner may have, unless given).
fn kiln_with(repo: &Repo, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args)
        .current_dir(repo.path())
        .env("KILN_CACHE_DIR", repo.cache.path())
        .env_remove("KILN_DEBUG_KEYS")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("NO_COLOR", "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run kiln")
}

fn ok_json(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kiln --json prints JSON")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

const PRINT_MAIN: &str = r#"package main

import "fmt"

var who, version, describe, tag, branch, ts = "", "", "", "", "", ""

func main() { fmt.Println(who, version, describe, tag, branch, ts) }
"#;

/// A module with one command printing its ldflags variables, committed on branch `trunk`, tagged
/// `v1.2.0`, plus one more commit (so `git describe` is `v1.2.0-1-g<hash>`).
fn template_repo() -> Repo {
    let r = Repo::new();
    r.write("go.mod", "module example.com/tpl\n\ngo 1.22\n")
        .write("cmd/app/main.go", PRINT_MAIN)
        .write(
            "kiln.toml",
            "[build]\nldflags = [\"-X main.who={{.Env.KILN_TEST_WHO}} -X main.version={{.Version}} -X main.describe={{.GitDescribe}} -X main.tag={{.Tag}} -X main.branch={{.Branch}} -X main.ts={{.Timestamp}}\"]\n",
        );
    r.git(&["init", "-q", "-b", "trunk"]);
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "one"]);
    r.git(&["tag", "v1.2.0"]);
    r.write("README", "two\n");
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "two"]);
    r
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn run_binary(repo: &Repo, report: &Value) -> String {
    let t = target(report, "app", &host_platform());
    let out = Command::new(binary_path(repo.path(), t))
        .output()
        .expect("run the built binary");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn issue_9_templates_render_goreleaser_values_and_env_feeds_the_key() {
    let repo = template_repo();
    let describe = git_out(repo.path(), &["describe", "--tags", "--always", "--dirty"]);
    assert!(describe.starts_with("v1.2.0-1-g"), "{describe}");
    let ts = git_out(repo.path(), &["log", "-1", "--format=%ct"]);
    let build = |who: &str| {
        ok_json(
            &kiln_with(&repo, &["build", "--json"], &[("KILN_TEST_WHO", who)]),
            "kiln build",
        )
    };

    let first = build("alpha");
    let want = format!(
        "alpha {} {describe} v1.2.0 trunk {ts}",
        describe.trim_start_matches('v')
    );
    assert_eq!(run_binary(&repo, &first), want);
    let t = target(&first, "app", &host_platform());
    assert_eq!(t["cached"], false);
    let flags = t["flags"].to_string();
    assert!(
        flags.contains("-X main.who=alpha"),
        "the rendered ldflags are recorded (and keyed): {flags}"
    );

    // The variable reaches the key only through the rendered ldflags: a new value rebuilds ...
    let second = build("beta");
    assert_eq!(target(&second, "app", &host_platform())["cached"], false);
    assert!(run_binary(&repo, &second).starts_with("beta "));
    // ... and the old value is a hit again, with the old bytes.
    let third = build("alpha");
    let t3 = target(&third, "app", &host_platform());
    assert_eq!(t3["cached"], true);
    assert_eq!(t3["sha256"], t["sha256"]);
    assert_eq!(run_binary(&repo, &third), want);
}

#[test]
fn issue_9_template_errors_are_printed_once() {
    let repo = template_repo();
    // The variable is unset: an error naming it, once.
    let out = kiln_with(&repo, &["build"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("environment variable KILN_TEST_WHO is not set")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches("hint:").count(), 1, "{err}");
    // A typo: one message, one hint.
    repo.write(
        "kiln.toml",
        "[build]\nldflags = [\"-X main.version={{.Verison}}\"]\n",
    );
    let out = kiln_with(&repo, &["build"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.matches("unknown template").count(), 1, "{err}");
    assert_eq!(err.matches("hint:").count(), 1, "{err}");
    assert!(
        err.contains("{{.GitDescribe}}"),
        "hint lists the names: {err}"
    );
}

const HELLO_MAIN: &str = "package main\n\nfunc main() { println(\"hello\") }\n";

/// Two services in one module, committed and tagged `v1.0.0` plus one commit.
fn services_repo() -> Repo {
    let r = Repo::new();
    r.write("go.mod", "module example.com/svc\n\ngo 1.22\n")
        .write("cmd/hello/main.go", HELLO_MAIN)
        .write(
            "cmd/bye/main.go",
            "package main\n\nfunc main() { println(\"bye\") }\n",
        );
    r.git(&["init", "-q", "-b", "main"]);
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "one"]);
    r.git(&["tag", "v1.0.0"]);
    r.write("README", "x\n");
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "two"]);
    r
}

fn config_of(repo: &Repo, image: &Value) -> Value {
    let digest = image
        .pointer("/platforms/0/config/digest")
        .and_then(Value::as_str)
        .expect("config digest");
    let hex = digest.trim_start_matches("sha256:");
    let bytes =
        std::fs::read(repo.path().join("dist/oci/blobs/sha256").join(hex)).expect("config blob");
    serde_json::from_slice(&bytes).expect("config JSON")
}

#[test]
fn issue_9_version_label_is_the_source_version_however_the_tag_is_spelled() {
    let registry = Registry::start();
    let repo = services_repo();
    let reg = registry.host();
    let describe = git_out(repo.path(), &["describe", "--tags", "--always", "--dirty"]);
    let push = |args: &[&str]| {
        let mut all = vec!["image", "--json", "./cmd/hello"];
        all.extend_from_slice(args);
        ok_json(&kiln_with(&repo, &all, &[]), "kiln image")
    };
    let full_ref = push(&["--push", &format!("{reg}/team/hello:v1")]);
    let flag = push(&["--tag", "v1", "--push", &format!("{reg}/team/hello")]);
    let other = push(&["--tag", "v1-rc", "--push", &format!("{reg}/team/hello")]);
    let digest = |v: &Value| v.pointer("/push/0/digest").cloned().expect("pushed digest");
    assert_eq!(
        full_ref
            .pointer("/push/0/reference")
            .and_then(Value::as_str),
        Some(format!("{reg}/team/hello:v1").as_str())
    );
    assert_eq!(digest(&full_ref), digest(&flag), "same source, same digest");
    assert_eq!(digest(&flag), digest(&other), "the tag is not in the image");
    let config = config_of(&repo, &flag["package"]["images"][0]);
    assert_eq!(
        config
            .pointer("/config/Labels/org.opencontainers.image.version")
            .and_then(Value::as_str),
        Some(describe.trim_start_matches('v')),
        "{config:#}"
    );
}

#[test]
fn issue_9_push_mounts_blobs_other_repositories_of_the_registry_hold() {
    let registry = Registry::start();
    let repo = services_repo();
    let reg = registry.host();
    let summary = repo.cache.path().join("summary.md");
    let summary_s = summary.to_str().expect("utf-8");
    let gh = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary_s),
    ];

    // Two services in one push: the built-in base layer is uploaded once and mounted once.
    let both = ok_json(
        &kiln_with(
            &repo,
            &["image", "--json", "--push", &format!("{reg}/team")],
            &gh,
        ),
        "kiln image --push",
    );
    let pushes = both["push"].as_array().expect("push array");
    let mounted: u64 = pushes.iter().map(|p| p["mounted"].as_u64().unwrap()).sum();
    let uploaded: u64 = pushes.iter().map(|p| p["uploaded"].as_u64().unwrap()).sum();
    eprintln!("two services: {uploaded} uploaded, {mounted} mounted");
    assert_eq!(mounted, 1, "the shared base layer is mounted: {both:#}");
    // Configs and binary layers differ: 2 each, plus the base layer once.
    assert_eq!(uploaded, 5, "{both:#}");

    // A base pulled from this registry: its layers are mounted into the new repository.
    let base_ref = pushes
        .iter()
        .find(|p| p["service"] == "hello")
        .and_then(|p| p["reference"].as_str())
        .expect("hello was pushed")
        .to_string();
    let on_base = ok_json(
        &kiln_with(
            &repo,
            &[
                "image",
                "--json",
                "./cmd/bye",
                "--base",
                &base_ref,
                "--push",
                &format!("{reg}/apps/bye:v1"),
            ],
            &gh,
        ),
        "kiln image --base",
    );
    let p = &on_base["push"][0];
    eprintln!(
        "on a base from the same registry: {} uploaded, {} mounted, {} already there",
        p["uploaded"], p["mounted"], p["skipped"]
    );
    // hello's two layers (kiln base, hello binary) come from team/hello, bye's binary layer from
    // team/bye (pushed above); only the config, which names the base, is new.
    assert_eq!(p["mounted"], 3, "{on_base:#}");
    assert_eq!(p["uploaded"], 1, "{on_base:#}");

    // The job summary lists every pushed digest.
    let md = std::fs::read_to_string(&summary).expect("summary written");
    for p in pushes.iter().chain([p]) {
        let d = p["digest"].as_str().expect("digest");
        assert!(md.contains(d), "{d} missing from the summary:\n{md}");
    }
    assert!(
        md.contains("| pushed | digest | uploaded | mounted |"),
        "{md}"
    );
}

#[test]
fn issue_9_github_actions_annotations_and_job_summary() {
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/m\n\ngo 1.22\n")
        .write(
            "cmd/app/main.go",
            "package main\n\nfunc main() { println(undefinedThing) }\n",
        )
        .write(
            "Dockerfile",
            "FROM golang:1.22 AS build\nRUN go build -o /app ./cmd/app\nFROM ubuntu\nCOPY --from=build /app /app\n",
        );
    let summary = repo.cache.path().join("summary.md");
    let summary_s = summary.to_str().expect("utf-8");
    let gh = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary_s),
    ];

    // Outside GitHub Actions: no workflow commands, no summary.
    let out = kiln_with(&repo, &["build"], &[("GITHUB_STEP_SUMMARY", summary_s)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("::error"), "{}", stderr(&out));
    assert!(!summary.exists());

    // A compile error lands on its file, line and column.
    let out = kiln_with(&repo, &["build"], &gh);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let platform = host_platform();
    assert!(
        err.contains(&format!(
            "::error file=cmd/app/main.go,line=3,col=23,title=kiln build app {platform}::undefined: undefinedThing"
        )),
        "{err}"
    );
    let md = std::fs::read_to_string(&summary).expect("summary written");
    assert!(
        md.contains("### kiln build: 1 target(s), 0 built, 0 from cache, 1 failed"),
        "{md}"
    );
    assert!(md.contains(&format!("| `app {platform}` |")), "{md}");
    assert!(md.contains("**FAILED**"), "{md}");

    // Fixed: the summary is appended to, with the size and cache state.
    repo.write("cmd/app/main.go", HELLO_MAIN);
    let out = kiln_with(&repo, &["build"], &gh);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("::error"), "{}", stderr(&out));
    let md = std::fs::read_to_string(&summary).expect("summary");
    assert_eq!(md.matches("### kiln build").count(), 2, "{md}");
    assert!(md.contains("1 built, 0 from cache, 0 failed"), "{md}");
    assert!(md.contains("| ok |"), "{md}");

    // Lint findings are annotated on their Dockerfile lines.
    let out = kiln_with(&repo, &["lint"], &gh);
    let err = stderr(&out);
    assert!(err.contains("::warning file=Dockerfile,line="), "{err}");
    assert!(err.contains("title=KL"), "{err}");

    // A configuration error (exit 2) is annotated once.
    repo.write("kiln.toml", "[build]\nldflags = [\"{{.Nope}}\"]\n");
    let out = kiln_with(&repo, &["build"], &gh);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.matches("::error title=kiln::").count(), 1, "{err}");
}
