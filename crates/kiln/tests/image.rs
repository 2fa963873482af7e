//! `kiln image` end to end with real components: the Go toolchain builds a small HTTP service,
//! kiln packs and pushes it to Debian's `docker-registry`, skopeo inspects and copies it, umoci
//! unpacks it and bubblewrap runs the unpacked rootfs's entrypoint, which must answer HTTP 200.

mod common;
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Repo;
use kiln_test_support::sandbox::Bundle;
use serde_json::Value;
use support::registry::{free_port, http_get, require_tool, run_tool, Registry};

const MAIN_GO: &str = r#"package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		cfg, err := os.ReadFile("/etc/hello/config.txt")
		if err != nil {
			cfg = []byte("no-config")
		}
		fmt.Fprintf(w, "%s uid=%d %s", os.Getenv("GREETING"), os.Getuid(), cfg)
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
"#;

const KILN_TOML: &str = r#"
[image]
env = { GREETING = "hello-from-kiln" }
ports = [8080]
labels = { "com.example.team" = "core" }

[profiles.prod]
files = [{ src = "config/prod.txt", dst = "/etc/hello/config.txt", mode = "0640" }]
"#;

/// A throw-away Go repository with an HTTP service, committed to git and tagged v1.0.0.
fn hello_repo() -> Repo {
    let r = Repo::new();
    r.write("go.mod", "module example.com/shop\n\ngo 1.22\n")
        .write("cmd/hello/main.go", MAIN_GO)
        .write("kiln.toml", KILN_TOML)
        .write("config/prod.txt", "prod-config");
    r.git(&["init", "-q", "-b", "main"]);
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "init"]);
    r.git(&["tag", "v1.0.0"]);
    r
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {ptr} in {v:#}"))
}

fn skopeo_inspect(target: &str, raw: bool) -> Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    if raw {
        args.push("--raw");
    }
    args.push(target);
    serde_json::from_slice(&run_tool("skopeo", &args).stdout).expect("skopeo prints JSON")
}

/// skopeo copy -> umoci unpack -> bwrap the entrypoint with the config's env and user; returns the
/// HTTP answer of the service inside.
fn run_image(source: &str) -> (u16, String, PathBuf, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("tempdir");
    let oci = work.path().join("oci");
    let oci_ref = format!("oci:{}:img", oci.display());
    run_tool(
        "skopeo",
        &["copy", "--src-tls-verify=false", source, &oci_ref],
    );
    let bundle = Bundle::unpack(
        &format!("{}:img", oci.display()),
        &work.path().join("bundle"),
    );
    let rootfs = bundle.rootfs();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = bundle.bwrap(&[("ADDR", &addr)]);
    let mut child = cmd.spawn().expect("bwrap: apt-get install -y bubblewrap");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Some(a) = http_get(port, "/") {
            break a;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the service exited inside bwrap: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the service never answered on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    (answer.0, answer.1, rootfs, work)
}

#[test]
fn push_single_and_multi_arch_run_them_and_noop_repush() {
    require_tool("skopeo", "skopeo");
    let reg = Registry::start();
    let repo = hello_repo();

    // Single platform, full repo:tag, prod profile (adds a data file layer).
    let dest = format!("{}/team/hello:v1", reg.host());
    let single = repo.image_json(&[
        "--platform",
        "linux/amd64",
        "--profile",
        "prod",
        "--push",
        &dest,
    ]);
    let digest = str_at(&single, "/package/images/0/root/digest").to_string();
    assert_eq!(str_at(&single, "/push/0/digest"), digest);
    let inspected = skopeo_inspect(&format!("docker://{dest}"), false);
    assert_eq!(
        str_at(&inspected, "/Digest"),
        digest,
        "registry serves our digest"
    );
    assert_eq!(str_at(&inspected, "/Labels/com.example.team"), "core");
    assert_eq!(
        str_at(&inspected, "/Labels/org.opencontainers.image.base.name"),
        "kiln"
    );
    assert!(inspected["Labels"]["org.opencontainers.image.revision"].is_string());
    let sizes = &single["package"]["images"][0]["platforms"][0]["size"];
    assert_eq!(
        sizes["layers"].as_array().expect("layers").len(),
        3,
        "base + binary + data"
    );
    assert!(sizes["binary_size"].as_u64().expect("binary size") > 1_000_000);

    let (status, body, rootfs, _work) = run_image(&format!("docker://{dest}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "hello-from-kiln uid=65532 prod-config");
    let meta = std::fs::metadata(rootfs.join("usr/local/bin/hello")).expect("binary in rootfs");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    let cfg_mode = std::fs::metadata(rootfs.join("etc/hello/config.txt")).expect("data file");
    assert_eq!(cfg_mode.permissions().mode() & 0o7777, 0o640);
    assert!(
        rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "kiln base CA bundle"
    );

    // Multi-arch to a prefix: team/<service>:<tag>.
    let prefix = format!("{}/team", reg.host());
    let multi = repo.image_json(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "--tag",
        "v2",
        "--push",
        &prefix,
    ]);
    let index_digest = str_at(&multi, "/package/images/0/root/digest").to_string();
    let target = format!("docker://{prefix}/hello:v2");
    let raw = skopeo_inspect(&target, true);
    assert_eq!(
        str_at(&raw, "/mediaType"),
        "application/vnd.oci.image.index.v1+json"
    );
    let mut arches: Vec<&str> = raw["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| str_at(m, "/platform/architecture"))
        .collect();
    arches.sort_unstable();
    assert_eq!(arches, ["amd64", "arm64"]);
    let served = {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "skopeo inspect --tls-verify=false --raw {target} | sha256sum"
            ))
            .output()
            .expect("sh");
        String::from_utf8_lossy(&o.stdout)
            .split(' ')
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        format!("sha256:{served}"),
        index_digest,
        "index bytes are ours"
    );
    let (status, body, _, _w) = run_image(&target);
    assert_eq!(status, 200);
    assert!(body.starts_with("hello-from-kiln uid=65532"), "{body}");

    // No-op re-push: every blob is only HEADed.
    let again = repo.image_json(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "--tag",
        "v2",
        "--push",
        &prefix,
    ]);
    assert_eq!(
        str_at(&again, "/package/images/0/root/digest"),
        index_digest
    );
    assert_eq!(
        again["package"]["layers_packed"], 0,
        "nothing repacked: {again:#}"
    );
    let push = &again["push"][0];
    let blobs = push["report"]["blobs"].as_array().expect("blobs");
    assert!(!blobs.is_empty());
    for b in blobs {
        assert_eq!(b["outcome"], "skipped", "{b:#}");
    }
    assert_eq!(push["uploaded"], 0);
    assert_eq!(push["bytes_sent"], 0);

    // The multi-arch image as a registry base: pulled per platform from its index.
    let base_ref = format!("{prefix}/hello:v2");
    let on_base = repo.image_json(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "--base",
        &base_ref,
        "--tag",
        "v3",
    ]);
    for (i, p) in on_base["package"]["images"][0]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .enumerate()
    {
        assert_eq!(str_at(p, "/base/name"), base_ref);
        let base_manifest = str_at(
            &multi,
            &format!("/package/images/0/platforms/{i}/manifest/digest"),
        );
        assert_eq!(
            str_at(p, "/base/digest"),
            base_manifest,
            "base pinned by its platform manifest"
        );
        let layers = p["size"]["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 3, "two base layers + binary");
        assert_eq!(layers.iter().filter(|l| l["from_base"] == true).count(), 2);
    }

    // `--push=` pushes under the kiln.toml `repository` prefix.
    let toml = KILN_TOML.replacen(
        "[image]\n",
        &format!("[image]\nrepository = \"{}/cfg\"\n", reg.host()),
        1,
    );
    repo.write("kiln.toml", &toml);
    let cfg = repo.image_json(&["--platform", "linux/amd64", "--tag", "v4", "--push="]);
    let pushed = str_at(&cfg, "/push/0/digest");
    assert_eq!(
        str_at(&cfg, "/push/0/reference"),
        format!("{}/cfg/hello:v4", reg.host())
    );
    let inspected = skopeo_inspect(&format!("docker://{}/cfg/hello:v4", reg.host()), false);
    assert_eq!(str_at(&inspected, "/Digest"), pushed);
}

#[test]
fn two_checkouts_give_the_same_digests_and_archives_load() {
    require_tool("skopeo", "skopeo");
    let a = hello_repo();
    let b = a.copy();
    let args = [
        "--platform",
        "linux/amd64,linux/arm64",
        "--tarball",
        "dist/all.tar",
    ];
    let ja = a.image_json(&args);
    let jb = b.image_json(&args);
    let digests = |j: &Value| -> Vec<String> {
        let img = &j["package"]["images"][0];
        let mut v = vec![str_at(img, "/root/digest").to_string()];
        for p in img["platforms"].as_array().expect("platforms") {
            v.push(str_at(p, "/manifest/digest").to_string());
        }
        v
    };
    assert_eq!(
        digests(&ja),
        digests(&jb),
        "index and manifest digests differ between checkouts"
    );
    assert_eq!(digests(&ja).len(), 3);
    assert_eq!(
        ja["package"]["layers_reused"], 0,
        "fresh cache packs everything"
    );
    assert_eq!(
        ja["package"]["layers_packed"], 3,
        "one kiln base layer + two binary layers"
    );

    // Layer content: the binary layer lists parents then the binary, root-owned, fixed modes, and
    // the build date as mtime (SOURCE_DATE_EPOCH unset: the commit time of HEAD).
    let commit_minute = {
        let out = Command::new("git")
            .args([
                "log",
                "-1",
                "--format=%cd",
                "--date=format-local:%Y-%m-%d %H:%M",
            ])
            .current_dir(a.path())
            .env("TZ", "UTC")
            .output()
            .expect("git log");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let layer = ja["package"]["images"][0]["platforms"][0]["size"]["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["from_base"] == false)
        .expect("binary layer")
        .clone();
    let hex = str_at(&layer, "/digest")
        .trim_start_matches("sha256:")
        .to_string();
    let blob = a.path().join("dist/oci/blobs/sha256").join(hex);
    let listing = run_tool(
        "tar",
        &[
            "--numeric-owner",
            "--utc",
            "-tvzf",
            blob.to_str().expect("utf-8"),
        ],
    );
    let lines: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for (line, (mode, path)) in lines.iter().zip([
        ("drwxr-xr-x", "usr/"),
        ("drwxr-xr-x", "usr/local/"),
        ("drwxr-xr-x", "usr/local/bin/"),
        ("-rwxr-xr-x", "usr/local/bin/hello"),
    ]) {
        assert!(line.starts_with(&format!("{mode} 0/0 ")), "{line}");
        assert!(line.contains(&format!(" {commit_minute} ")), "{line}");
        assert!(line.ends_with(path), "{line}");
    }

    // oci-archive (multi-arch) and docker-archive (one entry per platform) are readable.
    let tag = str_at(&ja, "/package/images/0/tag").to_string();
    let oci = a.path().join("dist/all.tar");
    let raw = skopeo_inspect(&format!("oci-archive:{}:hello:{tag}", oci.display()), true);
    assert_eq!(raw["manifests"].as_array().expect("index").len(), 2);
    let docker = a.path().join("dist/all.docker.tar");
    let out = a.kiln(&[
        "image",
        "--platform",
        "linux/amd64,linux/arm64",
        "--tarball",
        docker.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hello:") && text.contains("linux/arm64"),
        "summary table: {text}"
    );
    for arch in ["amd64", "arm64"] {
        let i = skopeo_inspect(
            &format!(
                "docker-archive:{}:hello:{tag}-linux-{arch}",
                docker.display()
            ),
            false,
        );
        assert_eq!(str_at(&i, "/Architecture"), arch);
    }

    // podman loads both archives (into a throw-away storage, no daemon, no network).
    require_tool("podman", "podman");
    let store = tempfile::tempdir().expect("tempdir");
    let root = store.path().join("root");
    let runroot = store.path().join("runroot");
    for archive in [&oci, &docker] {
        let out = run_tool(
            "podman",
            &[
                "--root",
                root.to_str().expect("utf-8"),
                "--runroot",
                runroot.to_str().expect("utf-8"),
                "--storage-driver",
                "vfs",
                "load",
                "-i",
                archive.to_str().expect("utf-8"),
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Loaded image"), "podman load: {text}");
    }
}
