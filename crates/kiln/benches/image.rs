//! `kiln image` benchmark (`cargo bench -p kiln --bench image`), real components only:
//!
//! 1. A generated 20-service monorepo built for linux/amd64 and linux/arm64 and pushed to a local
//!    `docker-registry`: the first push (build + pack + upload of 40 images) is the baseline, then
//!    the no-op re-push (everything cached, every blob only HEADed) is timed; target: well under a
//!    second.
//! 2. A Go program embedding ~150 MB of random data (`//go:embed`), built once through the CLI
//!    (whose whole-run peak RSS is reported, build/verify stage included), then packed in-process
//!    with `kiln-image` for gzip (default), gzip-parallel and zstd: throughput in MB/s and the
//!    peak RSS of packing alone (`/proc/self/clear_refs` resets the high-water mark first).
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
    write(root, ".gitignore", b"dist/\n");
    // A committed git checkout with an origin, as users run kiln: the git calls that date and
    // label the build are part of every no-op.
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "-qm",
            "bench",
        ],
        &["tag", "v1.0.0"],
        &["remote", "add", "origin", "https://example.com/mono.git"],
    ] {
        let ok = Command::new("git")
            .args(args)
            .current_dir(root)
            .status()
            .expect("git (apt-get install -y git)")
            .success();
        assert!(ok, "git {args:?} failed");
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
    for i in 0..5 {
        let r = kiln_image(repo.path(), cache.path(), &["--push", &dest]);
        {
            let t = &r.json["timings"];
            println!(
                "no-op run {} breakdown: plan {} ms, build stage {} ms (cache hits {}), packing {} ms, push {} ms, process total {} ms",
                i + 1,
                t["plan_ms"],
                t["build_ms"],
                r.json["build"]["cache_hits"],
                t["package_ms"],
                t["push_ms"],
                r.wall.as_millis()
            );
        }
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
    // Incompressible data (xorshift), so compression does real work on every byte; written in
    // 1 MiB chunks so this process's own peak RSS stays small for the in-process measurement.
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(root.join("cmd/big/blob.bin")).expect("create blob"),
        );
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mb {
            for w in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&chunk).expect("write blob");
        }
    }
    let cache = tempfile::tempdir().expect("tempdir");
    // Build once (not measured: go and kiln's build cache), then measure packing alone.
    let first = kiln_image(root, cache.path(), &["--platform", "linux/amd64"]);
    println!(
        "large binary: whole `kiln image` run (build from cache, verify, pack): peak RSS {:.1} MiB",
        first.peak_rss_kib as f64 / 1024.0
    );
    in_process_packing(root, &first.json);
}

/// VmHWM of this process in KiB.
fn own_peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Packs the large binary with the library inside this process, resetting the peak-RSS counter
/// first (`/proc/self/clear_refs` = 5), so the figure is packing alone, without go or the
/// build/verify stage.
fn in_process_packing(root: &Path, json: &Value) {
    use kiln_image::{
        parse_compression, BaseChoice, ImageRequest, NoReporter, Packager, PackagerOptions,
        PlatformBinary, ServiceImage,
    };
    let p = &json["package"]["images"][0]["platforms"][0]["binary"];
    let digest: kiln_types::Digest = p["digest"]
        .as_str()
        .expect("digest")
        .parse()
        .expect("digest parses");
    let size = p["size"].as_u64().expect("size");
    let path = walk_find(&root.join("dist"), "big").expect("built binary under dist/");
    for compression in ["gzip", "gzip-parallel", "zstd"] {
        let work = tempfile::tempdir().expect("tempdir");
        let opts = PackagerOptions {
            layout_dir: work.path().join("oci"),
            cache: kiln_cache::LocalStore::new(work.path().join("cache")),
            registry: kiln_registry::ClientConfig::default(),
            jobs: 2,
        };
        let packager = Packager::new(&opts, None).expect("packager");
        let req = ImageRequest {
            services: vec![ServiceImage {
                service: "big".into(),
                tag: "bench".into(),
                binaries: vec![PlatformBinary {
                    platform: "linux/amd64".parse().expect("platform"),
                    path: path.clone(),
                    digest,
                    size,
                }],
                base: BaseChoice::Kiln,
                config: kiln_oci::ImageConfig::default(),
                files: Vec::new(),
                compression: parse_compression(compression).expect("compression"),
            }],
            source_date_epoch: 0,
            zoneinfo: None,
        };
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = own_peak_kib();
        let started = Instant::now();
        packager.package(&req, &NoReporter).expect("package");
        let secs = started.elapsed().as_secs_f64();
        let peak = own_peak_kib();
        println!(
            "large binary ({:.0} MB) packed in-process, {compression}: {:.2}s = {:.0} MB/s; peak RSS {:.1} MiB (before packing {:.1} MiB)",
            size as f64 / 1e6,
            secs,
            size as f64 / 1e6 / secs,
            peak as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
}

fn walk_find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
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
