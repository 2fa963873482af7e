//! Issue 9, items 1, 3 and 4: repositories as users have them. go.work workspaces (with and
//! without a root module, patterns relative to the current directory), images only for Linux
//! platforms with a narrower image matrix, and kiln.toml saying which main packages are services.
//! Every fixture is a set of small real Go modules built with the real `go` (no network).

mod common;

use std::path::Path;

use common::{targets, Repo};

const MAIN: &str = "package main\n\nfunc main() { println(\"hi\") }\n";

/// A workspace of `svc` (cmd/app, cmd/api) and `tools` (gen), plus, when `root_module`, a root
/// module `example.com/root` with its own cmd/app and cmd/rootsvc.
fn workspace(root_module: bool) -> Repo {
    let repo = Repo::new();
    let uses = if root_module {
        "use (\n\t.\n\t./svc\n\t./tools\n)\n"
    } else {
        "use (\n\t./svc\n\t./tools\n)\n"
    };
    repo.write("go.work", &format!("go 1.22\n\n{uses}"))
        .write("svc/go.mod", "module example.com/svc\n\ngo 1.22\n")
        .write("svc/cmd/app/main.go", MAIN)
        .write("svc/cmd/api/main.go", MAIN)
        .write("tools/go.mod", "module example.com/tools\n\ngo 1.22\n")
        .write("tools/gen/main.go", MAIN);
    if root_module {
        repo.write("go.mod", "module example.com/root\n\ngo 1.22\n")
            .write("cmd/rootapp/main.go", MAIN)
            .write("cmd/rootsvc/main.go", MAIN);
    }
    repo
}

/// A module with cmd/api, cmd/worker and tools/gen.
fn service_repo() -> Repo {
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/m\n\ngo 1.22\n")
        .write("cmd/api/main.go", MAIN)
        .write("cmd/worker/main.go", MAIN)
        .write("tools/gen/main.go", MAIN);
    repo
}

/// (service, package) of every target, sorted and de-duplicated.
fn services(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = targets(report)
        .iter()
        .map(|t| {
            (
                t["service"].as_str().unwrap_or_default().to_string(),
                t["package"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_in(repo: &Repo, dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = repo.kiln_in(dir, args);
    assert!(out.status.success(), "kiln {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("kiln --json prints JSON")
}

#[test]
fn issue_9_workspace_builds_every_main_of_every_used_module() {
    let repo = workspace(true);
    let report = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(
        services(&report),
        pairs(&[
            ("api", "example.com/svc/cmd/api"),
            ("app", "example.com/svc/cmd/app"),
            ("gen", "example.com/tools/gen"),
            ("rootapp", "example.com/root/cmd/rootapp"),
            ("rootsvc", "example.com/root/cmd/rootsvc"),
        ])
    );
    // Outputs land in the go.work directory's dist/.
    for svc in ["api", "app", "gen", "rootapp", "rootsvc"] {
        let bin = repo.path().join(format!("dist/{svc}/linux_amd64/{svc}"));
        assert!(bin.is_file(), "{}", bin.display());
    }
}

#[test]
fn issue_9_workspace_without_a_root_module_builds_and_inits() {
    let repo = workspace(false);
    let report = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(
        services(&report),
        pairs(&[
            ("api", "example.com/svc/cmd/api"),
            ("app", "example.com/svc/cmd/app"),
            ("gen", "example.com/tools/gen"),
        ])
    );
    // `kiln init` finds the same mains, spelled relative to the go.work directory, and writes
    // kiln.toml there even when run inside a member module.
    let out = repo.kiln_in(&repo.path().join("svc"), &["init"]);
    assert!(out.status.success(), "{}", text(&out));
    let toml = std::fs::read_to_string(repo.path().join("kiln.toml")).expect("kiln.toml at root");
    for (name, dir) in [
        ("api", "./svc/cmd/api"),
        ("app", "./svc/cmd/app"),
        ("gen", "./tools/gen"),
    ] {
        assert!(
            toml.contains(&format!("[services.{name}]\npackage = \"{dir}\"")),
            "{toml}"
        );
    }
    assert!(!repo.path().join("svc/kiln.toml").exists());
    // The file it wrote selects the same services again.
    let again = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(services(&again), services(&report));
}

#[test]
fn issue_9_patterns_inside_a_member_module_resolve_like_go_build() {
    // Both the root module and the member have ./cmd/app; go builds the member's from inside it.
    let repo = workspace(true);
    repo.write("cmd/app/main.go", MAIN);
    let svc = repo.path().join("svc");
    let report = json_in(
        &repo,
        &svc,
        &["build", "--json", "--platform", "linux/amd64", "./cmd/app"],
    );
    assert_eq!(
        services(&report),
        pairs(&[("app", "example.com/svc/cmd/app")])
    );
    assert!(repo.path().join("dist/app/linux_amd64/app").is_file());
    assert!(!svc.join("dist").exists());
    // A kiln.toml in the member is not read, and kiln says so instead of ignoring it silently.
    repo.write("svc/kiln.toml", "[build]\nplatforms = [\"linux/arm64\"]\n");
    let out = repo.kiln_in(&svc, &["build", "--json", "./cmd/app"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("kiln.toml is not read"), "{t}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_ne!(targets(&report)[0]["platform"], "linux/arm64", "{t}");
    std::fs::remove_file(svc.join("kiln.toml")).expect("rm");
    // From the root, the same pattern is the root module's.
    let root = repo.build_json(&["--platform", "linux/amd64", "./cmd/app"]);
    assert_eq!(
        services(&root),
        pairs(&[("app", "example.com/root/cmd/app")])
    );
    // `./...` inside the member is the member's packages only, as for go.
    let member = json_in(
        &repo,
        &svc,
        &["build", "--json", "--platform", "linux/amd64", "./..."],
    );
    assert_eq!(
        services(&member),
        pairs(&[
            ("api", "example.com/svc/cmd/api"),
            ("app", "example.com/svc/cmd/app"),
        ])
    );
}

#[test]
fn issue_9_a_pattern_matching_nothing_does_not_suggest_itself() {
    // In a member without cmd/ (go: "matched no packages"), and at a go.work directory that is
    // no module's (go: "directory prefix cmd does not contain modules listed in go.work").
    let with_root = workspace(true);
    let without_root = workspace(false);
    for (repo, dir) in [
        (&with_root, with_root.path().join("tools")),
        (&without_root, without_root.path().to_path_buf()),
    ] {
        let out = repo.kiln_in(&dir, &["build", "./cmd/..."]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("./cmd/..."), "{t}");
        assert!(err.contains("hint:"), "{t}");
        assert!(!err.contains("kiln build ./cmd/..."), "{t}");
        assert!(err.contains("relative to the current directory"), "{t}");
    }
}

#[test]
fn issue_9_image_refuses_non_linux_platforms() {
    let repo = service_repo();
    for platform in ["windows/amd64", "darwin/arm64", "linux/amd64,windows/amd64"] {
        let out = repo.kiln(&["image", "--platform", platform, "./cmd/api"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{platform}: {t}");
        assert!(t.contains("cannot be an image platform"), "{t}");
        assert!(t.contains("hint:"), "{t}");
    }
    assert!(
        !repo.path().join("dist/oci").exists(),
        "a refused platform must not write an image"
    );
    // kiln.toml cannot ask for one either.
    repo.write(
        "kiln.toml",
        "[services.api.image]\nplatforms = [\"windows/amd64\"]\n",
    );
    let out = repo.kiln(&["image", "./cmd/api"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("[services.api.image]"), "{t}");
    assert!(t.contains("cannot be an image platform"), "{t}");
}

/// (service, platform) of every image in a `kiln image --json` report.
fn images(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for i in report["package"]["images"].as_array().expect("images") {
        for p in i["platforms"].as_array().expect("platforms") {
            v.push((
                i["service"].as_str().unwrap_or_default().to_string(),
                p["platform"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    v.sort();
    v
}

#[test]
fn issue_9_wide_build_matrix_narrow_image_matrix() {
    let repo = service_repo();
    repo.write(
        "kiln.toml",
        r#"[build]
platforms = ["linux/amd64", "linux/arm64", "windows/amd64"]
exclude = ["./tools/..."]

[services.worker.image]
platforms = ["linux/arm64"]

[services.api]
package = "./cmd/api"
"#,
    );
    // The build matrix keeps every platform.
    let build = repo.build_json(&[]);
    assert_eq!(targets(&build).len(), 6, "{build:#}");
    // Images: the Linux subset by default (api), the configured list for worker.
    let report = repo.image_json(&[]);
    assert_eq!(
        images(&report),
        pairs(&[
            ("api", "linux/amd64"),
            ("api", "linux/arm64"),
            ("worker", "linux/arm64"),
        ])
    );
    // A service built only for other systems gets no image, and kiln says so.
    repo.write(
        "kiln.toml",
        "[build]\nexclude = [\"./tools/...\"]\n\n[services.api]\nplatforms = [\"windows/amd64\"]\n",
    );
    let out = repo.kiln(&["image", "--json"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let host = images(&report);
    assert_eq!(host.len(), 1, "{t}");
    assert_eq!(host[0].0, "worker", "{t}");
    assert!(t.contains("api: no image"), "{t}");
}

#[test]
fn issue_9_only_declared_services_are_built() {
    let repo = service_repo();
    repo.write(
        "kiln.toml",
        "[build]\nonly_declared = true\n\n[services.api]\npackage = \"./cmd/api\"\n\n[services.worker]\n",
    );
    let report = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(
        services(&report),
        pairs(&[
            ("api", "example.com/m/cmd/api"),
            ("worker", "example.com/m/cmd/worker"),
        ])
    );
    assert!(!repo.path().join("dist/gen").exists());
    // Asking for a left-out package by name says why it is not built.
    let out = repo.kiln(&["build", "./tools/gen"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("./tools/gen (no [services.gen] section"), "{t}");
    assert!(t.contains("only_declared"), "{t}");
}

#[test]
fn issue_9_exclude_leaves_out_helper_mains() {
    let repo = service_repo();
    repo.write("kiln.toml", "[build]\nexclude = [\"./tools/...\"]\n");
    let report = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(
        services(&report),
        pairs(&[
            ("api", "example.com/m/cmd/api"),
            ("worker", "example.com/m/cmd/worker"),
        ])
    );
    // A pattern that excludes nothing is a typo, not a silent no-op.
    repo.write("kiln.toml", "[build]\nexclude = [\"./tols/...\"]\n");
    let out = repo.kiln(&["build"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("`./tols/...` matches no main package"), "{t}");
    assert!(t.contains("./cmd/api, ./cmd/worker, ./tools/gen"), "{t}");
}

#[test]
fn issue_9_a_package_typo_in_a_section_is_an_error_listing_the_mains() {
    let repo = service_repo();
    repo.write(
        "kiln.toml",
        "[services.api]\npackage = \"./cmd/apii\"\nplatforms = [\"linux/amd64\"]\n",
    );
    // Whole project, and a narrowed run that reaches ./cmd/api (whose binary name is the section's).
    for args in [
        &["build"][..],
        &["build", "./cmd/api"][..],
        &["init", "--stdout"][..],
    ] {
        let out = repo.kiln(args);
        let t = text(&out);
        if args[0] == "init" {
            // init ignores the existing file: it proposes a fresh one.
            assert!(out.status.success(), "{t}");
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
        assert!(
            t.contains("[services.api]: package `./cmd/apii` is not among the main packages found"),
            "{t}"
        );
        assert!(
            t.contains("main packages found: ./cmd/api, ./cmd/worker, ./tools/gen"),
            "{t}"
        );
    }
    assert!(!repo.path().join("dist/api").exists());
}
