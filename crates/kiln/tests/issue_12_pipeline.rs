//! Issue 12: `kiln image` as one pipeline whose stages overlap per target, end to end with the
//! real Go toolchain and Debian's `docker-registry`.
//!
//! - Each target's blobs go up as soon as it is packed, so the final push of a first run finds
//!   every blob already in the registry and sends only manifests and tags; the report still
//!   counts them as uploaded or mounted, and says they were sent early.
//! - Manifests and tags wait for the whole build: a run in which one target fails to compile
//!   publishes nothing a user can pull, as before the stages overlapped.

mod common;
mod support;

use common::{dump, shop};
use kiln_test_support::get_manifest;
use support::registry::Registry;

#[test]
fn issue_12_blobs_go_up_before_the_manifests() {
    let reg = Registry::start();
    let repo = shop();
    let prefix = format!("{}/team", reg.host());
    let out = repo.image_json(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "--tag",
        "p1",
        "--push",
        &prefix,
    ]);
    let pushes = out["push"].as_array().expect("push");
    assert_eq!(pushes.len(), 2, "api and worker: {out:#}");
    for p in pushes {
        let blobs = p["report"]["blobs"].as_array().expect("blobs");
        // 2 platforms x (config + binary layer), and the kiln base's one layer both share.
        assert_eq!(blobs.len(), 5, "{p:#}");
        assert_eq!(
            p["sent_early"], 5,
            "every blob went up while its target was packed, before the manifests: {p:#}"
        );
        // Reported as what happened to them then: uploaded, or (the shared base layer, for
        // the second service) mounted from the first service's repository.
        let uploaded = p["uploaded"].as_u64().expect("uploaded");
        let mounted = p["mounted"].as_u64().expect("mounted");
        assert_eq!(uploaded + mounted, 5, "{p:#}");
        assert_eq!(p["skipped"], 0, "{p:#}");
        assert!(
            p["report"]["manifests"]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "the manifests went up in the final push: {p:#}"
        );
    }
    for service in ["api", "worker"] {
        let (status, body) =
            get_manifest(reg.port, &format!("team/{service}"), "p1").expect("registry answers");
        assert_eq!(status, 200, "{service}:p1 is pullable: {body}");
    }
}

#[test]
fn issue_12_a_failed_build_pushes_no_manifest() {
    let reg = Registry::start();
    let repo = shop();
    repo.write(
        "cmd/broken/main.go",
        "package main\n\nfunc main() { undefined() }\n",
    );
    let prefix = format!("{}/team", reg.host());
    let out = repo.kiln(&[
        "image",
        "--platform",
        "linux/amd64",
        "--tag",
        "p1",
        "--push",
        &prefix,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken"),
        "the failed target is named: {stderr}"
    );
    assert!(stderr.contains("no image was built"), "{stderr}");
    for service in ["api", "worker", "broken"] {
        let (status, body) =
            get_manifest(reg.port, &format!("team/{service}"), "p1").expect("registry answers");
        assert_eq!(
            status, 404,
            "{service}:p1 must not be pullable after a failed build: {body}"
        );
        assert!(body.contains("UNKNOWN"), "{body}");
    }
}

/// The plan stage of the pipeline resolves every image setting and push destination before
/// the build, so a bad one fails at once, names what to fix, and compiles nothing.
#[test]
fn issue_12_bad_image_settings_fail_before_any_compile() {
    let repo = shop();
    let cases: [(&[&str], &str); 3] = [
        (&["image", "--tag", ".bad"], "not a valid image tag"),
        (
            &["image", "--push="],
            "pushes to the configured repository, but service `api` has none",
        ),
        (
            &["image", "--platform", "darwin/arm64"],
            "cannot be an image platform",
        ),
    ];
    for (args, expected) in cases {
        let out = repo.kiln(args);
        assert!(!out.status.success(), "{args:?}: {}", dump(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            stderr.contains("hint:"),
            "{args:?} says what to do: {stderr}"
        );
        assert!(
            !repo.path().join("dist/kiln-build.json").exists(),
            "{args:?} ran a build before failing"
        );
    }
}
