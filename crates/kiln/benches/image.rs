//! `kiln image` benchmark (`cargo bench -p kiln --bench image`), real components only:
//!
//! 1. A generated 20-service monorepo built for linux/amd64 and linux/arm64 and pushed to a local
//!    `docker-registry`: the first push (build + pack + upload of 40 images) is the baseline, then
//!    the no-op re-push (everything cached, every blob only HEADed) is timed; target: well under a
//!    second.
//! 2. A Go program embedding ~150 MB of random data (`//go:embed`): kiln's peak RSS while packing
//!    it (VmHWM of the kiln process, polled from /proc) and the packing throughput in MB/s, for
//!    gzip (default), gzip-parallel and zstd.
//!
//! Needs `go` on PATH and `apt-get install -y docker-registry`. `KILN_BENCH_BLOB_MB` overrides the
//! embedded size, `KILN_BENCH_SERVICES` the service count.

#[path = "../tests/support/registry.rs"]
mod registry;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

struct Run {
    wall: Duration,
    peak_rss_kib: u64,
    json: Value,
}

/// Runs `kiln image --json ARGS` in `dir`, polling the process's VmHWM.
fn kiln_image(dir: &Path, cache: &Path, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("image")
        .arg("--json")
        .args(args)
        .current_dir(dir)
        .env("KILN_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).expect("read stdout");
        buf
    });
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let out = child.wait_with_output().expect("wait");
    let stdout = reader.join().expect("reader");
    assert!(
        out.status.success(),
        "kiln image {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        wall,
        peak_rss_kib: peak,
        json: serde_json::from_slice(&stdout).expect("kiln image --json prints JSON"),
    }
}

fn monorepo(services: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "go.mod", b"module example.com/mono\n\ngo 1.22\n");
    write(
        root,
        "kiln.toml",
        b"[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[image]\ntag = \"bench\"\n",
    );
    for i in 0..services {
        write(
            root,
            &format!("cmd/svc{i:02}/main.go"),
            format!(
                "package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println(\"svc{i:02}\") }}\n"
            )
            .as_bytes(),
        );
    }
    dir
}

fn noop_push_bench() {
    let services = env_usize("KILN_BENCH_SERVICES", 20);
    let reg = registry::Registry::start();
    let repo = monorepo(services);
    let cache = tempfile::tempdir().expect("tempdir");
    let dest = format!("{}/bench", reg.host());
    let first = kiln_image(repo.path(), cache.path(), &["--push", &dest]);
    let images = first.json["push"].as_array().map_or(0, Vec::len);
    assert_eq!(images, services, "one push per service");
    let mut times = Vec::new();
    for _ in 0..5 {
        let r = kiln_image(repo.path(), cache.path(), &["--push", &dest]);
        for p in r.json["push"].as_array().expect("push") {
            assert_eq!(p["uploaded"], 0, "no-op push uploaded something: {p:#}");
        }
        assert_eq!(r.json["package"]["layers_packed"], 0, "no-op run repacked");
        times.push(r.wall);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "no-op push, {services} services x 2 platforms: first push {:.2}s (baseline), no-op median {:.0} ms (min {:.0} ms), ratio {:.3}",
        first.wall.as_secs_f64(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        median.as_secs_f64() / first.wall.as_secs_f64()
    );
}

fn large_binary_bench() {
    let mb = env_usize("KILN_BENCH_BLOB_MB", 150);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "go.mod", b"module example.com/big\n\ngo 1.22\n");
    write(
        root,
        "cmd/big/main.go",
        b"package main\n\nimport (\n\t_ \"embed\"\n\t\"fmt\"\n)\n\n//go:embed blob.bin\nvar blob []byte\n\nfunc main() { fmt.Println(len(blob)) }\n",
    );
    // Incompressible data (xorshift), so compression does real work on every byte.
    let mut data = vec![0u8; mb << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    write(root, "cmd/big/blob.bin", &data);
    drop(data);
    let cache = tempfile::tempdir().expect("tempdir");
    // Build once (not measured: go and kiln's build cache), then measure packing alone.
    kiln_image(root, cache.path(), &["--platform", "linux/amd64"]);
    for compression in ["gzip", "gzip-parallel", "zstd"] {
        // Forget packed layers so this run packs again (the binary itself stays cached).
        let _ = std::fs::remove_dir_all(cache.path().join("image-v1"));
        let _ = std::fs::remove_dir_all(root.join("dist/oci"));
        let r = kiln_image(
            root,
            cache.path(),
            &["--platform", "linux/amd64", "--compression", compression],
        );
        let pkg = &r.json["package"];
        let size = pkg["images"][0]["platforms"][0]["binary"]["size"]
            .as_u64()
            .expect("binary size");
        let ms = pkg["duration_ms"].as_u64().expect("duration").max(1);
        println!(
            "large binary ({:.0} MB), {compression}: packed in {ms} ms = {:.0} MB/s; kiln peak RSS {:.1} MiB (whole run {:.2}s)",
            size as f64 / 1e6,
            size as f64 / 1e6 / (ms as f64 / 1e3),
            r.peak_rss_kib as f64 / 1024.0,
            r.wall.as_secs_f64()
        );
    }
}

fn main() {
    // `cargo test --benches` runs this with `--test`-ish flags; only run for real with `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("image benchmark: run with `cargo bench -p kiln --bench image`");
        return;
    }
    let ok = Command::new("go")
        .arg("version")
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "the benchmark needs Go on PATH (https://go.dev/dl)"
    );
    noop_push_bench();
    large_binary_bench();
}
