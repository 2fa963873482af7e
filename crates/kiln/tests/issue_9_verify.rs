//! Issue 9: verification per GOOS (openbsd and darwin link the OS's own libraries even without cgo),
//! no failed binary left in dist, no Go advice for non-Go binaries, and which cgo files a static
//! build left out when it fails.

mod common;

use std::process::Command;

use common::{target, Repo};

const HELLO: &str = "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n)\n\nfunc main() { fmt.Println(\"hello\", http.StatusOK) }\n";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn issue_9_openbsd_and_darwin_pass_with_system_libs_only() {
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/hello\n\ngo 1.22\n")
        .write("cmd/hello/main.go", HELLO);
    let report = repo.build_json(&["--platform", "openbsd/amd64,darwin/arm64"]);
    for (platform, dir, libc) in [
        ("openbsd/amd64", "openbsd_amd64", "libc.so"),
        ("darwin/arm64", "darwin_arm64", "/usr/lib/libSystem.B.dylib"),
    ] {
        let t = target(&report, "hello", platform);
        assert!(t["error"].is_null(), "{platform}: {t:#}");
        assert_eq!(t["verify"]["linkage"], "system-libs", "{platform}: {t:#}");
        assert_eq!(t["is_static"], true, "{platform}");
        let needed = t["verify"]["needed"].to_string();
        assert!(needed.contains(libc), "{platform}: {needed}");
        assert!(
            repo.path()
                .join("dist/hello")
                .join(dir)
                .join("hello")
                .is_file(),
            "{platform} binary placed"
        );
    }

    // verify-bin says the same, truthfully: not `static`, and the libraries are listed.
    let out = repo.kiln(&[
        "verify-bin",
        "dist/hello/openbsd_amd64/hello",
        "dist/hello/darwin_arm64/hello",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}\n{}", stderr(&out));
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for row in rows {
        assert!(row.contains("system-libs only"), "{row}");
        assert!(!row.contains(" static "), "{row}");
    }
    assert!(table.contains("libc.so,libpthread.so"), "{table}");
}

#[test]
fn issue_9_failed_verification_leaves_no_binary_in_dist() {
    // cgo forced on through the environment without the opt-in: linked against glibc, so it fails.
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/native\n\ngo 1.22\n")
        .write(
            "cmd/native/main.go",
            "package main\n\n/*\nstatic int answer(void) { return 42; }\n*/\nimport \"C\"\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(C.answer()) }\n",
        )
        .write("kiln.toml", "[build]\nenv = { CGO_ENABLED = \"1\" }\n");
    // A binary from an earlier good build must not survive either.
    repo.write("dist/native/linux_amd64/native", "stale");
    let out = repo.kiln(&["build", "--json", "--platform", "linux/amd64"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = target(&report, "native", "linux/amd64");
    assert!(
        t["error"].as_str().unwrap().contains("dynamically linked"),
        "{t:#}"
    );
    assert!(t["path"].is_null(), "{t:#}");
    let dest = repo.path().join("dist/native/linux_amd64/native");
    assert!(!dest.exists(), "failed binary left at {}", dest.display());

    // A cache hit of the same failing binary is verified again and not placed either.
    let again = repo.kiln(&["build", "--json", "--platform", "linux/amd64"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(!dest.exists(), "failed cached binary restored to dist");
}

#[test]
fn issue_9_verify_bin_on_a_non_go_binary_gives_no_go_advice() {
    let repo = Repo::new();
    repo.write("hello.c", "int main(void) { return 0; }\n");
    let st = Command::new("gcc")
        .args(["-o", "hello", "hello.c"])
        .current_dir(repo.path())
        .status()
        .expect("these tests need gcc: apt-get install gcc");
    assert!(st.success(), "gcc failed");
    let out = repo.kiln(&["verify-bin", "hello"]);
    assert_eq!(out.status.code(), Some(1), "dynamic C binary fails");
    let err = stderr(&out);
    assert!(err.contains("dynamically linked"), "{err}");
    assert!(err.contains("not a Go binary"), "{err}");
    for go_advice in ["CGO_ENABLED", "netgo", "cgo = true", "Go 1.18", "-trimpath"] {
        assert!(!err.contains(go_advice), "Go advice {go_advice:?}: {err}");
    }
}

#[test]
fn issue_9_cgo_excluded_files_are_named_when_the_build_fails() {
    // Like a collector with a cgo implementation and no !cgo fallback: with CGO_ENABLED=0 go drops
    // sysctl_cgo.go and reports only `undefined: bsdSysctl`.
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/exporter\n\ngo 1.22\n")
        .write(
            "collector/sysctl_cgo.go",
            "package collector\n\n/*\nstatic int answer(void) { return 42; }\n*/\nimport \"C\"\n\nfunc bsdSysctl() int { return int(C.answer()) }\n",
        )
        .write(
            "collector/collector.go",
            "package collector\n\nfunc Collect() int { return bsdSysctl() }\n",
        )
        .write(
            "cmd/exporter/main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/exporter/collector\"\n)\n\nfunc main() { fmt.Println(collector.Collect()) }\n",
        );
    let out = repo.kiln(&["build", "--platform", "linux/amd64"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("undefined: bsdSysctl"),
        "go's error kept: {err}"
    );
    assert!(
        err.contains("example.com/exporter/collector: sysctl_cgo.go"),
        "the left-out file is named: {err}"
    );
    assert!(err.contains("CGO_ENABLED=0"), "{err}");
    assert!(
        err.contains("[services.exporter]\n  cgo = true"),
        "the opt-in is named: {err}"
    );
}

fn service_repo(kiln_toml: &str) -> Repo {
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/web\n\ngo 1.22\n")
        .write("cmd/web/main.go", HELLO)
        .write("kiln.toml", kiln_toml);
    repo
}

#[test]
fn issue_9_low_port_for_a_non_root_image_warns() {
    let repo = service_repo("[image]\nports = [80, 8080]\n");
    let out = repo.kiln(&["image", "--platform", "linux/amd64", "--tag", "t1"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "warning: web: port(s) 80/tcp below 1024 but the image runs as user 65532:65532"
        ),
        "{err}"
    );
    assert!(err.contains("ip_unprivileged_port_start"), "{err}");

    let root = service_repo("[image]\nports = [80]\nuser = \"0\"\n");
    let out = root.kiln(&["image", "--platform", "linux/amd64", "--tag", "t1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("below 1024"), "{}", stderr(&out));
}

#[test]
fn issue_9_kiln_base_has_os_release_and_go_zoneinfo() {
    common::require_go();
    let repo = service_repo("");
    let out = repo.kiln(&["image", "--platform", "linux/amd64", "--tag", "t1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let work = tempfile::tempdir().unwrap();
    let copy = Command::new("skopeo")
        .arg("copy")
        .arg(format!(
            "oci:{}:web:t1",
            repo.path().join("dist/oci").display()
        ))
        .arg(format!("oci:{}:img", work.path().join("oci").display()))
        .output()
        .expect("these tests need skopeo: apt-get install skopeo");
    assert!(
        copy.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let bundle = work.path().join("bundle");
    let unpack = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:img", work.path().join("oci").display()))
        .arg(&bundle)
        .output()
        .expect("these tests need umoci: apt-get install umoci");
    assert!(
        unpack.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    let rootfs = bundle.join("rootfs");
    let os_release = std::fs::read_to_string(rootfs.join("etc/os-release")).unwrap();
    assert!(os_release.contains("\nID=kiln\n"), "{os_release}");

    // Every zone of the Go toolchain's zoneinfo.zip, byte for byte.
    let goroot = Command::new("go").args(["env", "GOROOT"]).output().unwrap();
    let zip = std::path::PathBuf::from(String::from_utf8_lossy(&goroot.stdout).trim())
        .join("lib/time/zoneinfo.zip");
    for zone in ["Europe/Paris", "America/Argentina/Salta", "UTC"] {
        let want = Command::new("unzip")
            .arg("-p")
            .arg(&zip)
            .arg(zone)
            .output()
            .expect("these tests need unzip: apt-get install unzip");
        let got = std::fs::read(rootfs.join("usr/share/zoneinfo").join(zone)).unwrap();
        assert!(got.starts_with(b"TZif"), "{zone}");
        assert_eq!(got, want.stdout, "{zone}");
    }
    let listed = Command::new("unzip").arg("-Z1").arg(&zip).output().unwrap();
    let zones = String::from_utf8_lossy(&listed.stdout).lines().count();
    let mut unpacked = 0;
    let mut dirs = vec![rootfs.join("usr/share/zoneinfo")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                unpacked += 1;
            }
        }
    }
    assert_eq!(unpacked, zones);
}
