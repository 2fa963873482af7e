//! A program that needs cgo: refused when static is expected, accepted when the service opts in.

mod common;

use common::{target, Repo};

const CGO_MAIN: &str = "package main\n\n/*\n#include <stdlib.h>\nstatic int answer(void) { return 42; }\n*/\nimport \"C\"\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(C.answer()) }\n";

fn cgo_repo(config: &str) -> Repo {
    let r = Repo::new();
    r.write("go.mod", "module example.com/native\n\ngo 1.22\n")
        .write("cmd/native/main.go", CGO_MAIN)
        .write("kiln.toml", config);
    r
}

#[test]
fn static_build_of_cgo_program_names_the_cause_and_the_fix() {
    let repo = cgo_repo("");
    let out = repo.kiln(&["build", "--platform", "linux/amd64"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("native needs cgo: example.com/native/cmd/native import \"C\""),
        "{err}"
    );
    assert!(err.contains("cgo = true"), "the fix is named: {err}");
}

#[test]
fn cgo_forced_through_env_without_opt_in_fails_verification() {
    // The user turned cgo on through the environment but did not opt the service into cgo: the
    // binary links libc dynamically and would fail in a scratch image, so the build fails.
    let repo = cgo_repo("[build]\nenv = { CGO_ENABLED = \"1\" }\n");
    let out = repo.kiln(&["build", "--json", "--platform", "linux/amd64"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = target(&report, "native", "linux/amd64");
    let error = t["error"].as_str().unwrap();
    assert!(error.contains("dynamically linked"), "{error}");
    assert!(error.contains("libc.so.6"), "{error}");
    assert!(
        error.contains("CGO_ENABLED=0"),
        "the hint names the fix: {error}"
    );
    assert!(
        error.contains("example.com/native/cmd/native"),
        "the hint names the cgo package: {error}"
    );
    assert_eq!(t["is_static"], false);
}

#[test]
fn cgo_opt_in_builds_and_passes_verification() {
    let repo = cgo_repo("[services.native]\npackage = \"./cmd/native\"\ncgo = true\n");
    let report = repo.build_json(&["--platform", "linux/amd64"]);
    let t = target(&report, "native", "linux/amd64");
    assert!(t["error"].is_null(), "{t:#}");
    assert_eq!(t["static_required"], false);
    assert_eq!(t["verify"]["linkage"], "dynamic");
    let out = std::process::Command::new(repo.path().join("dist/native/linux_amd64/native"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[test]
fn net_and_os_user_stay_static_by_default() {
    // With gcc on the machine a plain `go build` of net/http links the cgo resolver dynamically;
    // kiln's default CGO_ENABLED=0 must produce a static binary.
    let repo = common::shop();
    let report = repo.build_json(&["--platform", "linux/amd64"]);
    for svc in ["api", "worker"] {
        let t = target(&report, svc, "linux/amd64");
        assert_eq!(t["is_static"], true, "{svc}: {t:#}");
        assert!(t["verify"]["interpreter"].is_null());
        assert_eq!(t["verify"]["needed"].as_array().unwrap().len(), 0);
    }
}
