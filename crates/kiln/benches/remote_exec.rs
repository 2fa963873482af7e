//! Benchmark of remote execution (`[execute] remote`, issue 13) on one host: kiln building the
//! generated monorepo on this machine against the same build run by a real BuildGrid 0.9.1 with
//! two `kiln worker`s, all on 127.0.0.1.
//!
//! Not a timed test: it prints wall times and ratios, and fails only when the builds disagree (a
//! remote binary that differs from the local one, an action that fell back to local execution,
//! a warm engine that still ran actions). Run it with `cargo bench -p kiln --bench remote_exec`;
//! docs/benchmarks.md ("Remote execution") says what the rows mean.
//!
//! Rows (each client starts with empty caches: kiln's, GOCACHE, HOME, at its own path):
//! - `local cold`: `kiln build` compiling everything here;
//! - `remote, cold engine`: the same build with a fresh engine and workers whose caches are empty:
//!   the cost of uploading inputs, scheduling and downloading (the workers share this host's
//!   cores, so it cannot be faster);
//! - `remote, warm engine`: another cold client after that: every action comes from the engine's
//!   action cache. The goal is >= 5x faster than `local cold`.
//!
//! Knobs: `KILN_BENCH_SERVICES` (default 20, each built for 2 platforms).

// The generator the build benchmark uses; its edits are not needed here.
#[allow(dead_code)]
#[path = "support/monorepo.rs"]
mod monorepo;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use kiln_test_support::buildgrid::BuildGridExec;
use kiln_test_support::worker::KilnWorker;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PLATFORMS: &str = "linux/amd64,linux/arm64";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\nbenchmark finished, but the builds disagreed (see UNEXPECTED above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A `kiln worker` (it binds this host's Go at /kiln/go); killed on drop.
fn worker(addr: &str, id: &str) -> KilnWorker {
    KilnWorker::start(Path::new(env!("CARGO_BIN_EXE_kiln")), addr, id, &[])
}

/// A client: a copy of the repo at its own path with empty caches.
struct Client {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
}

impl Client {
    fn new(origin: &Path) -> Res<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("kiln-bench-rexec-")
            .tempdir()?;
        let repo = tmp.path().join("repo");
        let st = Command::new("cp")
            .arg("-a")
            .arg(origin)
            .arg(&repo)
            .status()?;
        if !st.success() {
            return Err("copying the repo failed".into());
        }
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home)?;
        Ok(Self {
            _tmp: tmp,
            repo,
            home,
        })
    }

    /// `kiln build --json` for both platforms, with `engine` if any; wall time and report.
    fn build(&self, engine: Option<&str>) -> Res<(Duration, serde_json::Value)> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GOENV", "off")
            .env("GOFLAGS", "")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOCACHE", self.home.join("gocache"))
            .env("GOMODCACHE", self.home.join("gomodcache"))
            .env("KILN_CACHE_DIR", self.home.join("kiln-cache"))
            .env("NO_COLOR", "1")
            .args(["build", "--json", "--platform", PLATFORMS])
            .current_dir(&self.repo);
        if let Some(e) = engine {
            cmd.env("KILN_REMOTE_EXECUTOR", e);
        }
        let t = Instant::now();
        let out = cmd.output()?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "kiln build failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok((took, serde_json::from_slice(&out.stdout)?))
    }
}

fn digests(report: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = report["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| format!("{} {} {}", t["service"], t["platform"], t["sha256"]))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn stat(report: &serde_json::Value, k: &str) -> u64 {
    report["remote_execution"][k].as_u64().unwrap_or(0)
}

fn run() -> Res<bool> {
    let services: usize = std::env::var("KILN_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let origin = tempfile::tempdir()?;
    let names: Vec<String> = (0..services).map(|i| format!("svc{i:02}")).collect();
    monorepo::generate(origin.path(), &names)?;
    let mut ok = true;

    eprintln!("{services} services x 2 platforms; local cold build ...");
    let (local, local_report) = Client::new(origin.path())?.build(None)?;
    let expected = digests(&local_report);

    eprintln!("starting BuildGrid and two workers ...");
    let bg = BuildGridExec::start();
    let engine = format!("grpc://{}", bg.addr);
    let workers = [worker(&bg.addr, "bench-1"), worker(&bg.addr, "bench-2")];
    for w in &workers {
        w.wait_for("session");
    }

    eprintln!("remote build, cold engine ...");
    let (cold, cold_report) = Client::new(origin.path())?.build(Some(&engine))?;
    eprintln!("remote build, warm engine, cold client ...");
    let (warm, warm_report) = Client::new(origin.path())?.build(Some(&engine))?;

    for (name, r) in [("cold engine", &cold_report), ("warm engine", &warm_report)] {
        if digests(r) != expected {
            eprintln!("UNEXPECTED: {name}: binaries differ from the local build");
            ok = false;
        }
        if stat(r, "local") != 0 {
            eprintln!(
                "UNEXPECTED: {name}: {} action(s) fell back to local execution",
                stat(r, "local")
            );
            ok = false;
        }
    }
    if stat(&warm_report, "remote_cached") != stat(&warm_report, "remote") {
        eprintln!("UNEXPECTED: the warm engine ran actions instead of answering from its cache");
        ok = false;
    }

    let s = |d: Duration| d.as_secs_f64();
    println!("\n| case | wall | vs local cold |");
    println!("|---|---:|---:|");
    println!("| local cold | {:.1} s | 1.00 |", s(local));
    println!(
        "| remote, cold engine ({} actions, {} blobs / {:.1} MiB up) | {:.1} s | {:.2} |",
        stat(&cold_report, "remote"),
        stat(&cold_report, "uploaded_blobs"),
        stat(&cold_report, "uploaded_bytes") as f64 / (1 << 20) as f64,
        s(cold),
        s(cold) / s(local)
    );
    println!(
        "| remote, warm engine, cold client ({} from the action cache, {:.1} MiB down) | {:.1} s | {:.2} |",
        stat(&warm_report, "remote_cached"),
        stat(&warm_report, "downloaded_bytes") as f64 / (1 << 20) as f64,
        s(warm),
        s(warm) / s(local)
    );
    println!(
        "\ncold client with a warm engine: {:.1}x faster than compiling cold here (goal >= 5x)",
        s(local) / s(warm)
    );
    Ok(ok)
}
