//! One date per build (issue 8): `{{.Date}}` in ldflags, the image config's `created` and label,
//! the layer entries' mtimes and the SBOMs' creation times all agree. The date is
//! `SOURCE_DATE_EPOCH` when set, else the commit time of `HEAD`; an invalid `SOURCE_DATE_EPOCH`
//! is an error, not a silent fallback.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{shop, target, Repo};
use serde_json::Value;

const LDFLAGS_TOML: &str = "[build]\nldflags = [\"-X main.version=built-{{.Date}}\"]\n";

/// `kiln ARGS` in the repository with the isolated cache and `SOURCE_DATE_EPOCH` as given.
fn kiln(repo: &Repo, sde: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.args(args)
        .current_dir(repo.path())
        .env("KILN_CACHE_DIR", repo.cache.path())
        .env_remove("KILN_DEBUG_KEYS")
        .env("NO_COLOR", "1");
    match sde {
        Some(v) => c.env("SOURCE_DATE_EPOCH", v),
        None => c.env_remove("SOURCE_DATE_EPOCH"),
    };
    c.output().expect("run kiln")
}

fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob in the layout")
}

/// Every date kiln wrote for `kiln image ./cmd/api` (which builds first), each with where it was
/// found, as `YYYY-MM-DDThh:mm:ssZ`; layer mtimes, which tar lists to the minute, as
/// `YYYY-MM-DD hh:mm`.
fn dates_written(repo: &Repo, sde: Option<&str>) -> (Vec<(String, String)>, Vec<String>) {
    let image: Value = serde_json::from_slice(&ok(
        kiln(
            repo,
            sde,
            &[
                "image",
                "--json",
                "--platform",
                "linux/amd64",
                "--tag",
                "v1",
                "./cmd/api",
            ],
        ),
        "kiln image",
    ))
    .expect("JSON");
    let mut dates = Vec::new();

    // {{.Date}} in the binary's ldflags, as recorded and inside the binary itself.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("dist/kiln-build.json")).unwrap())
            .unwrap();
    let t = target(&manifest, "api", "linux/amd64");
    let flags = t["flags"].to_string();
    let date = flags
        .split("-X main.version=built-")
        .nth(1)
        .expect("ldflags in the manifest")
        .split(['"', ' '])
        .next()
        .unwrap()
        .to_string();
    let bin = std::fs::read(repo.path().join("dist/api/linux_amd64/api")).unwrap();
    let needle = format!("built-{date}");
    assert!(
        bin.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "{needle} is not in the binary"
    );
    dates.push(("ldflags {{.Date}}".into(), date));

    // The image config.
    let layout = repo.path().join("dist/oci");
    let platform = &image["package"]["images"][0]["platforms"][0];
    let config: Value = serde_json::from_slice(&blob(
        &layout,
        platform["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    dates.push((
        "image config created".into(),
        config["created"].as_str().unwrap().into(),
    ));
    dates.push((
        "image label org.opencontainers.image.created".into(),
        config["config"]["Labels"]["org.opencontainers.image.created"]
            .as_str()
            .unwrap()
            .into(),
    ));
    for (i, h) in config["history"].as_array().unwrap().iter().enumerate() {
        dates.push((
            format!("image history {i} created"),
            h["created"].as_str().unwrap().into(),
        ));
    }

    // SBOMs of the built binary, in both formats.
    let sbom = |format: &str| -> Value {
        serde_json::from_slice(&ok(
            kiln(
                repo,
                sde,
                &["sbom", "dist/api/linux_amd64/api", "--format", format],
            ),
            "kiln sbom",
        ))
        .unwrap()
    };
    dates.push((
        "SPDX creationInfo.created".into(),
        sbom("spdx")["creationInfo"]["created"]
            .as_str()
            .unwrap()
            .into(),
    ));
    dates.push((
        "CycloneDX metadata.timestamp".into(),
        sbom("cyclonedx")["metadata"]["timestamp"]
            .as_str()
            .unwrap()
            .into(),
    ));

    // Layer entry mtimes, every layer (the kiln base and the binary).
    let manifest: Value = serde_json::from_slice(&blob(
        &layout,
        platform["manifest"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let mut mtimes = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let path = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let out = Command::new("tar")
            .args(["--numeric-owner", "--utc", "-tvzf"])
            .arg(&path)
            .output()
            .expect("tar is needed to list layers: apt-get install -y tar");
        assert!(out.status.success(), "tar -tvzf {}", path.display());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // mode owner size date time name
            let f: Vec<&str> = line.split_whitespace().collect();
            mtimes.push(format!("{} {}", f[3], f[4]));
        }
    }
    assert!(!mtimes.is_empty());
    (dates, mtimes)
}

fn assert_all(dates: &[(String, String)], mtimes: &[String], want: &str) {
    for (what, got) in dates {
        assert_eq!(got, want, "{what}");
    }
    let minute = want.replace('T', " ");
    let minute = &minute[..16];
    for m in mtimes {
        assert_eq!(m, minute, "layer entry mtime");
    }
}

#[test]
fn issue_8_source_date_epoch_dates_binary_image_and_sboms_alike() {
    let repo = shop();
    repo.write("kiln.toml", LDFLAGS_TOML);
    // A commit with another date: SOURCE_DATE_EPOCH wins over it everywhere.
    commit_at(&repo, 1_600_000_000);
    let (dates, mtimes) = dates_written(&repo, Some("1700000000"));
    assert!(dates.len() >= 6, "{dates:?}");
    assert_all(&dates, &mtimes, "2023-11-14T22:13:20Z");
}

#[test]
fn issue_8_without_source_date_epoch_the_commit_time_dates_everything() {
    let repo = shop();
    repo.write("kiln.toml", LDFLAGS_TOML);
    commit_at(&repo, 1_600_000_000);
    let (dates, mtimes) = dates_written(&repo, None);
    assert_all(&dates, &mtimes, "2020-09-13T12:26:40Z");
}

#[test]
fn issue_8_invalid_source_date_epoch_is_an_error_not_a_fallback() {
    let repo = shop();
    repo.write("kiln.toml", LDFLAGS_TOML);
    commit_at(&repo, 1_600_000_000);
    for bad in ["yesterday", "1700000000.5", "-1", "253402300800"] {
        for args in [
            &["build", "--platform", "linux/amd64"][..],
            &["image", "--platform", "linux/amd64"][..],
        ] {
            let out = kiln(&repo, Some(bad), args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} with {bad}: {err}");
            assert!(
                err.contains(&format!("SOURCE_DATE_EPOCH=\"{bad}\" is invalid")),
                "{err}"
            );
            assert!(err.contains("hint:"), "{err}");
        }
        assert!(
            !repo.path().join("dist/api").exists(),
            "nothing is built with an invalid date"
        );
    }
    // Documents are dated by the same rule: `kiln sbom` refuses too.
    ok(
        kiln(
            &repo,
            Some("1700000000"),
            &["build", "--platform", "linux/amd64"],
        ),
        "kiln build",
    );
    let out = kiln(&repo, Some("soon"), &["sbom", "dist/api/linux_amd64/api"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SOURCE_DATE_EPOCH=\"soon\""));
}

/// `git init` and one commit whose committer date is `epoch`.
fn commit_at(repo: &Repo, epoch: u64) {
    repo.git(&["init", "-q", "-b", "main"]);
    repo.git(&["add", "-A"]);
    let st = Command::new("git")
        .args(["commit", "-q", "-m", "init"])
        .current_dir(repo.path())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", format!("@{epoch} +0000"))
        .env("GIT_COMMITTER_DATE", format!("@{epoch} +0000"))
        .output()
        .expect("git");
    assert!(
        st.status.success(),
        "git commit: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}
