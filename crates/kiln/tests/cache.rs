//! The action cache through the CLI: hits, misses on every kind of input change, corruption.

mod common;

use std::path::PathBuf;

use common::{binary_path, shop, target, targets};

fn cached_flags(report: &serde_json::Value) -> Vec<(String, bool)> {
    targets(report)
        .iter()
        .map(|t| {
            (
                t["service"].as_str().unwrap().to_string(),
                t["cached"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn second_build_is_restored_from_cache_without_go_build() {
    let repo = shop();
    let first = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(first["cache_misses"], 2);
    std::fs::remove_dir_all(repo.path().join("dist")).unwrap();
    let second = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(second["cache_hits"], 2);
    assert_eq!(second["go_invocations"], 0, "a hit must not run go build");
    for svc in ["api", "worker"] {
        let a = target(&first, svc, "linux/amd64");
        let b = target(&second, svc, "linux/amd64");
        assert_eq!(a["sha256"], b["sha256"]);
        assert_eq!(a["key"], b["key"]);
        assert!(
            repo.path().join(b["path"].as_str().unwrap()).is_file(),
            "restored binary exists"
        );
    }
    // The human summary says so too.
    let out = repo.kiln(&["build", "--platform", "linux/amd64"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 targets: 0 built, 0 failed, 2 cached;"),
        "{text}"
    );
}

#[test]
fn changes_invalidate_exactly_the_affected_targets() {
    let repo = shop();
    repo.build_json(&["--platform", "linux/amd64"]);
    // A leaf change rebuilds one service.
    repo.write(
        "cmd/worker/main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/shop/internal/greet\"\n)\n\nfunc main() { fmt.Println(greet.Message(), 2) }\n",
    );
    let r = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(
        cached_flags(&r),
        vec![("api".into(), true), ("worker".into(), false)]
    );
    // An embedded file of a shared package rebuilds both.
    repo.write("internal/greet/message.txt", "changed\n");
    let r = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(
        cached_flags(&r),
        vec![("api".into(), false), ("worker".into(), false)]
    );
    // go.mod is an input.
    repo.write("go.mod", "module example.com/shop\n\ngo 1.23\n");
    let r = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(r["cache_hits"], 0);
    // Build settings are inputs: tags and ldflags from kiln.toml.
    repo.write(
        "kiln.toml",
        "[services.api]\npackage = \"./cmd/api\"\ntags = [\"netgo\"]\n",
    );
    let r = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(
        cached_flags(&r),
        vec![("api".into(), false), ("worker".into(), true)]
    );
    // The platform is an input.
    let r = repo.build_json(&["--platform", "linux/arm64"]);
    assert_eq!(r["cache_hits"], 0);
    // Unchanged: everything hits.
    let r = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(r["cache_hits"], 2);
}

#[test]
fn corrupted_cache_entry_is_detected_and_rebuilt() {
    let repo = shop();
    let first = repo.build_json(&["--platform", "linux/amd64", "./cmd/api"]);
    let digest = target(&first, "api", "linux/amd64")["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = digest.trim_start_matches("sha256:");
    let blob = repo
        .cache
        .path()
        .join(kiln_cache::CacheBucket::Blobs.dir_name())
        .join(&hex[..2])
        .join(hex);
    assert!(blob.is_file(), "blob stored at {}", blob.display());
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    // A hit whose bytes are already in dist does not read the blob (docs/cache-keys.md), so the
    // restore must need it: remove the placed binary.
    std::fs::remove_dir_all(repo.path().join("dist")).unwrap();
    let second = repo.build_json(&["--platform", "linux/amd64", "./cmd/api"]);
    let t = target(&second, "api", "linux/amd64");
    assert_eq!(t["cached"], false, "a corrupt entry is a miss");
    assert_eq!(
        t["sha256"].as_str().unwrap(),
        digest,
        "rebuilt binary is the original one"
    );
    assert_eq!(std::fs::read(&blob).unwrap().len(), bytes.len());
    assert_ne!(
        std::fs::read(&blob).unwrap(),
        bytes,
        "the corrupt blob was replaced"
    );
    let third = repo.build_json(&["--platform", "linux/amd64", "./cmd/api"]);
    assert_eq!(target(&third, "api", "linux/amd64")["cached"], true);
}

/// A `go` for `KILN_GO` that holds each kiln process's `go build` until `processes` different
/// kiln processes have reached one (a barrier in the file system), then runs the real `go`. When
/// it lets the builds go, every process is past its cache lookups and about to store the same
/// entries as the others. Paths are written into the script because kiln may run `go` with a
/// reduced environment.
fn barrier_go(dir: &std::path::Path, processes: usize) -> (PathBuf, PathBuf) {
    let goroot = std::process::Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .expect("go env GOROOT");
    let real_go = PathBuf::from(String::from_utf8(goroot.stdout).unwrap().trim()).join("bin/go");
    assert!(real_go.is_file(), "no go at {}", real_go.display());
    let arrived = dir.join("arrived");
    std::fs::create_dir_all(&arrived).unwrap();
    let script = dir.join("go");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# One marker per kiln process (the parent of this script), then wait for the others.
if [ "$1" = build ]; then
  : > '{arrived}/'"$PPID"
  tries=0
  while :; do
    n=0
    for f in '{arrived}'/*; do [ -e "$f" ] && n=$((n + 1)); done
    [ "$n" -ge {processes} ] && break
    tries=$((tries + 1))
    if [ "$tries" -gt 1200 ]; then
      echo "barrier: only $n of {processes} kiln processes reached go build" >&2
      exit 97
    fi
    sleep 0.1
  done
fi
exec '{go}' "$@"
"#,
            arrived = arrived.display(),
            go = real_go.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, arrived)
}

#[test]
fn two_processes_sharing_the_cache_do_not_corrupt_it() {
    const PROCESSES: usize = 3;
    let repo = shop();
    // More targets, each its own `go build` (--group never), so stores interleave.
    for i in 0..4 {
        repo.write(
            &format!("cmd/svc{i}/main.go"),
            &format!(
                "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/shop/internal/greet\"\n)\n\nfunc main() {{ fmt.Println(greet.Message(), {i}) }}\n"
            ),
        );
    }
    let tools = tempfile::tempdir().unwrap();
    let (go, arrived) = barrier_go(tools.path(), PROCESSES);
    let kiln = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.args(args)
            .current_dir(repo.path())
            .env("KILN_CACHE_DIR", repo.cache.path())
            .env("KILN_GO", &go)
            .env_remove("KILN_DEBUG_KEYS")
            .env_remove("SOURCE_DATE_EPOCH")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let build = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "build",
            "--json",
            "--platform",
            "linux/amd64",
            "--group",
            "never",
            "-j",
            "2",
            "--out",
        ];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        kiln(&args)
    };
    let json = |o: std::process::Output| -> serde_json::Value {
        assert!(
            o.status.success(),
            "kiln failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };

    let outs: Vec<_> = (0..PROCESSES)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let children: Vec<_> = outs
        .iter()
        .map(|o| build(o.path(), &[]).spawn().unwrap())
        .collect();
    let pids: std::collections::BTreeSet<String> =
        children.iter().map(|c| c.id().to_string()).collect();
    let reports: Vec<_> = children
        .into_iter()
        .map(|c| json(c.wait_with_output().unwrap()))
        .collect();
    // Every process was held in `go build` until all had arrived: they overlapped for real.
    let arrivals: std::collections::BTreeSet<String> = std::fs::read_dir(&arrived)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(arrivals, pids, "every kiln process reached the barrier");
    // And each missed every target, so all of them stored the same six entries at once.
    for r in &reports {
        assert_eq!(r["cache_hits"], 0, "{r:#}");
        assert_eq!(r["cache_misses"], 6, "{r:#}");
    }

    let stats = repo.kiln(&["cache", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["actions"], 6, "{stats:#}");

    // Every entry verifies: the next run hits all of them, and the bytes equal a build that did
    // not read the cache.
    let fresh = tempfile::tempdir().unwrap();
    let uncached = json(build(fresh.path(), &["--no-cache"]).output().unwrap());
    let restored = tempfile::tempdir().unwrap();
    let hit = json(build(restored.path(), &[]).output().unwrap());
    assert_eq!(hit["cache_hits"], 6, "{hit:#}");
    assert_eq!(hit["go_invocations"], 0);
    for t in targets(&hit) {
        let svc = t["service"].as_str().unwrap();
        let u = target(&uncached, svc, "linux/amd64");
        assert_eq!(t["sha256"], u["sha256"], "{svc}");
        assert_eq!(
            std::fs::read(binary_path(repo.path(), t)).unwrap(),
            std::fs::read(binary_path(repo.path(), u)).unwrap(),
            "{svc}: restored bytes differ from a --no-cache build"
        );
    }
}

#[test]
fn cache_commands_stats_prune_clear() {
    let repo = shop();
    repo.build_json(&["--platform", "linux/amd64"]);
    let out = repo.kiln(&["cache", "stats"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("actions: 2"), "{text}");
    let out = repo.kiln(&["cache", "prune", "--max-age", "30d"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 0 action(s)"));
    let out = repo.kiln(&["cache", "clear"]);
    assert!(out.status.success());
    let r = repo.build_json(&["--platform", "linux/amd64"]);
    assert_eq!(r["cache_hits"], 0);
    let out = repo.kiln(&["cache", "prune", "--max-size", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a size"));
}

#[test]
fn a_changed_binary_in_dist_is_replaced_on_a_hit() {
    let repo = shop();
    let first = repo.build_json(&["--platform", "linux/amd64", "./cmd/api"]);
    let t = target(&first, "api", "linux/amd64");
    let bin = repo.path().join(t["path"].as_str().unwrap());
    let original = std::fs::read(&bin).unwrap();
    // Same size, different content: a size check alone would keep it.
    let mut tampered = original.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x55;
    std::fs::write(&bin, &tampered).unwrap();
    let second = repo.build_json(&["--platform", "linux/amd64", "./cmd/api"]);
    let t2 = target(&second, "api", "linux/amd64");
    assert_eq!(t2["cached"], true);
    assert_eq!(t2["sha256"], t["sha256"]);
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        original,
        "the cached binary was put back"
    );
    // Unchanged inputs keep hitting with the same digest.
    let third = repo.build_json(&["--platform", "linux/amd64", "./cmd/api"]);
    assert_eq!(target(&third, "api", "linux/amd64")["sha256"], t["sha256"]);
}

fn cache_stats(repo: &common::Repo) -> serde_json::Value {
    let out = repo.kiln(&["cache", "stats", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `kiln image`'s layer cache is part of the kiln cache: `kiln cache stats` counts its records,
/// a layer blob corrupted behind kiln's back (same size, other bytes: a size check passes it) is
/// repacked into the correct layer instead of reused, and `kiln cache clear` removes the records.
#[test]
fn issue_8_image_layer_records_are_in_the_kiln_cache() {
    let repo = shop();
    let args = ["--platform", "linux/amd64"];
    let first = repo.image_json(&args);
    let packed = first["package"]["layers_packed"].as_u64().unwrap();
    assert!(packed >= 2, "a base and a binary layer at least: {first:#}");
    let stats = cache_stats(&repo);
    assert_eq!(stats["buckets"]["layers"]["entries"], packed, "{stats:#}");
    assert_eq!(stats["buckets"]["layers"]["dir"], "layers-v1");
    let text = String::from_utf8_lossy(&repo.kiln(&["cache", "stats"]).stdout).into_owned();
    assert!(
        text.contains(&format!("layers:  {packed} (")),
        "stats show the layer records:\n{text}"
    );
    assert!(
        !repo.cache.path().join("image-v1").exists(),
        "no private image cache beside the buckets"
    );

    let image = &first["package"]["images"][0];
    let layers = image["platforms"][0]["size"]["layers"].as_array().unwrap();
    let binary_layer = layers.last().unwrap();
    assert_eq!(binary_layer["from_base"], false);
    let hex = binary_layer["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = repo.path().join("dist/oci/blobs/sha256").join(&hex);
    let original = std::fs::read(&blob).unwrap();
    let mut corrupt = original.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    std::fs::write(&blob, &corrupt).unwrap();

    let second = repo.image_json(&args);
    assert_eq!(
        second["package"]["layers_packed"], 1,
        "only the corrupted layer is repacked: {second:#}"
    );
    assert_eq!(second["package"]["layers_reused"], packed - 1);
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        original,
        "the layer blob has its right bytes again"
    );
    assert_eq!(
        second["package"]["images"][0]["root"]["digest"], image["root"]["digest"],
        "the image is the same as before the corruption"
    );

    let out = repo.kiln(&["cache", "clear"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("layers-v1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stats = cache_stats(&repo);
    assert_eq!(stats["buckets"]["layers"]["entries"], 0, "{stats:#}");
    assert_eq!(stats["total_bytes"], 0, "{stats:#}");
    let third = repo.image_json(&args);
    assert_eq!(
        third["package"]["layers_reused"], 0,
        "no layer record survives clear: {third:#}"
    );
}

/// Directories of the layout before buckets were versioned one by one (`v1`, `image-v1`) are
/// shown by `stats` and removed by `prune`; a directory that is not kiln's is left alone.
#[test]
fn issue_8_old_cache_layouts_are_shown_and_pruned() {
    let repo = common::Repo::new();
    let cache = repo.cache.path();
    for (dir, file) in [("v1/cas/ab", "abcd"), ("image-v1/layers", "k.json")] {
        std::fs::create_dir_all(cache.join(dir)).unwrap();
        std::fs::write(cache.join(dir).join(file), b"old entry").unwrap();
    }
    std::fs::create_dir_all(cache.join("not-kiln")).unwrap();
    let stats = cache_stats(&repo);
    let other: Vec<&str> = stats["other"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(other, ["image-v1", "v1"], "{stats:#}");
    assert_eq!(stats["total_bytes"], 18);
    let text = String::from_utf8_lossy(&repo.kiln(&["cache", "stats"]).stdout).into_owned();
    assert!(text.contains("other:   v1 ("), "{text}");
    let out = repo.kiln(&["cache", "prune"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("old layout(s) image-v1, v1"), "{said}");
    assert!(!cache.join("v1").exists() && !cache.join("image-v1").exists());
    assert!(cache.join("not-kiln").is_dir());
}
