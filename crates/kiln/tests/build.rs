//! `kiln build` end to end with the real Go toolchain.

mod common;

use common::{binary_path, shop, target, targets, Repo};

#[test]
fn single_module_builds_static_verified_binaries_and_manifest() {
    let repo = shop();
    let report = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(targets(&report).len(), 2);
    for svc in ["api", "worker"] {
        let t = target(&report, svc, "linux/amd64");
        assert_eq!(t["is_static"], true, "{t:#}");
        assert_eq!(t["cached"], false);
        assert_eq!(t["verify"]["linkage"], "static");
        assert_eq!(
            t["verify"]["go"]["path"],
            format!("example.com/shop/cmd/{svc}")
        );
        let bin = binary_path(repo.path(), t);
        assert!(
            bin.ends_with(format!("dist/{svc}/linux_amd64/{svc}")),
            "{}",
            bin.display()
        );
        let bytes = std::fs::read(&bin).unwrap();
        assert_eq!(t["size"], bytes.len() as u64);
        let settings = t["verify"]["go"]["settings"].to_string();
        assert!(
            settings.contains("\"CGO_ENABLED\"") && settings.contains("\"-trimpath\""),
            "{settings}"
        );
    }
    // The manifest on disk says the same as --json.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("dist/kiln-build.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["targets"], report["targets"]);
    assert_eq!(manifest["go_version"], report["go_version"]);
}

#[test]
fn go_work_workspace_with_two_modules() {
    let repo = Repo::new();
    repo.write("go.work", "go 1.22\n\nuse (\n\t./svc-a\n\t./svc-b\n\t./lib\n)\n")
        .write("lib/go.mod", "module example.com/lib\n\ngo 1.22\n")
        .write("lib/lib.go", "package lib\n\nfunc Name() string { return \"lib\" }\n")
        .write("svc-a/go.mod", "module example.com/a\n\ngo 1.22\n\nrequire example.com/lib v0.0.0\n")
        .write("svc-a/main.go", "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(\"a\", lib.Name()) }\n")
        .write("svc-b/go.mod", "module example.com/b\n\ngo 1.22\n")
        .write("svc-b/cmd/b/main.go", "package main\n\nfunc main() { println(\"b\") }\n");
    let report = repo.build_json(&["--platform", "linux/amd64", "./svc-a/...", "./svc-b/..."]);
    let names: Vec<&str> = targets(&report)
        .iter()
        .map(|t| t["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    assert!(binary_path(repo.path(), target(&report, "a", "linux/amd64")).is_file());
    // A change in the shared library module rebuilds a, not b.
    repo.write(
        "lib/lib.go",
        "package lib\n\nfunc Name() string { return \"lib2\" }\n",
    );
    let again = repo.build_json(&["--platform", "linux/amd64", "./svc-a/...", "./svc-b/..."]);
    assert_eq!(target(&again, "a", "linux/amd64")["cached"], false);
    assert_eq!(target(&again, "b", "linux/amd64")["cached"], true);
}

#[test]
fn cross_targets_have_the_right_format() {
    let repo = shop();
    let report = repo.build_json(&[
        "./cmd/worker",
        "--platform",
        "linux/arm64,windows/amd64,darwin/arm64,linux/arm/v7",
    ]);
    let cases = [
        ("linux/arm64", "elf", "arm64", "worker"),
        ("windows/amd64", "pe", "amd64", "worker.exe"),
        ("darwin/arm64", "macho", "arm64", "worker"),
        ("linux/arm/v7", "elf", "arm", "worker"),
    ];
    for (platform, format, arch, file) in cases {
        let t = target(&report, "worker", platform);
        assert_eq!(t["verify"]["format"], format, "{platform}: {t:#}");
        assert_eq!(t["verify"]["arch"], arch, "{platform}");
        assert_eq!(t["is_static"], true, "{platform}: {t:#}");
        let bin = binary_path(repo.path(), t);
        assert_eq!(bin.file_name().unwrap(), file);
        assert!(
            bin.to_string_lossy().contains(&platform.replace('/', "_")),
            "{}",
            bin.display()
        );
    }
    let arm = target(&report, "worker", "linux/arm/v7");
    let settings = arm["verify"]["go"]["settings"].to_string();
    assert!(
        settings.contains("GOARM"),
        "GOARM=7 must reach the build: {settings}"
    );
}

#[test]
fn not_a_module_is_a_clear_error() {
    let repo = Repo::new();
    let out = repo.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not inside a Go module or workspace"),
        "{err}"
    );
    assert!(err.contains("go mod init"), "{err}");
}

#[test]
fn no_main_package_is_a_clear_error() {
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/lib\n\ngo 1.22\n")
        .write("lib.go", "package lib\n");
    let out = repo.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no main package matches ./..."), "{err}");
}

#[test]
fn toolexec_is_refused() {
    let repo = shop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build"])
        .current_dir(repo.path())
        .env("KILN_CACHE_DIR", repo.cache.path())
        .env("GOFLAGS", "-toolexec=/bin/true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-toolexec") && err.contains("neither cache nor verify"),
        "{err}"
    );
}

#[test]
fn compile_errors_are_shown_verbatim_with_their_target() {
    let repo = shop();
    repo.write(
        "cmd/broken/main.go",
        "package main\n\nfunc main() { undefinedThing() }\n",
    );
    let out = repo.kiln(&["build", "--platform", "linux/amd64"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: broken linux/amd64:"), "{err}");
    assert!(
        err.contains("undefined: undefinedThing"),
        "compiler output verbatim: {err}"
    );
    assert!(err.contains("1 of 3 targets failed"), "{err}");
    // The healthy services still landed.
    assert!(repo.path().join("dist/api/linux_amd64/api").is_file());
    assert!(repo.path().join("dist/worker/linux_amd64/worker").is_file());
}

#[test]
fn ldflags_templates_reach_the_binary() {
    let repo = shop();
    repo.write(
        "kiln.toml",
        "[build]\nldflags = [\"-X main.version={{.Version}}-{{.Date}}\"]\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--json", "--platform", "linux/amd64", "./cmd/api"])
        .current_dir(repo.path())
        .env("KILN_CACHE_DIR", repo.cache.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flags = target(&report, "api", "linux/amd64")["flags"].to_string();
    assert!(
        flags.contains("-X main.version=dev-2023-11-14T22:13:20Z"),
        "{flags}"
    );
    let bin = std::fs::read(repo.path().join("dist/api/linux_amd64/api")).unwrap();
    let needle = b"dev-2023-11-14T22:13:20Z";
    assert!(
        bin.windows(needle.len()).any(|w| w == needle),
        "version string not in binary"
    );
}

#[test]
fn issue2_configured_service_outside_the_patterns_is_not_an_error() {
    let repo = shop();
    repo.write(
        "kiln.toml",
        "[services.worker]\npackage = \"./cmd/worker\"\n\n[services.api]\npackage = \"./cmd/api\"\n",
    );
    let report = repo.build_json(&["--platform", "linux/amd64", "./cmd/api"]);
    assert_eq!(targets(&report).len(), 1);
    // A section whose package does not exist is still reported on a whole-project build.
    repo.write("kiln.toml", "[services.gone]\npackage = \"./cmd/gone\"\n");
    let out = repo.kiln(&["build", "--platform", "linux/amd64"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[services.gone]") && err.contains("./cmd/gone"),
        "{err}"
    );
}
