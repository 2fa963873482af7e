//! Benchmark of go's package cache served by `kiln gocacheprog` (local tier) against go's native
//! disk cache, on the generated monorepo of the build benchmark.
//!
//! Not a timed test: it prints wall times, ratios and the peak RSS of the `kiln gocacheprog`
//! process, and fails only when the cache did not do its job (a warm build that misses). Run it
//! with `cargo bench -p kiln --bench gocacheprog`.
//!
//! Each row is one `go build -trimpath -o DIR/ ./cmd/...` for linux/amd64 into a fresh output
//! directory (so every run links every service):
//! - `native cold`: an empty GOCACHE; `native warm`: the same GOCACHE again (median of the runs);
//! - `gocacheprog cold`: GOCACHEPROG with an empty kiln store (and an empty GOCACHE);
//! - `gocacheprog warm`: the filled store, a fresh empty GOCACHE each run (median), as on a CI
//!   runner that restored only kiln's cache;
//! - `... shared edit`: after a change to `internal/shared` (imported by every service), the
//!   native warm GOCACHE against the warm store with a fresh GOCACHE: only the changed package and
//!   its dependents compile in both.
//!
//! Knobs (environment): `KILN_BENCH_SERVICES` (default 20), `KILN_BENCH_WARM_RUNS` (default 3),
//! `KILN_BENCH_GO` (default `go` from PATH).

// The build benchmark's generator; its workspaces are not needed here.
#[allow(dead_code)]
#[path = "support/monorepo.rs"]
mod monorepo;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\nbenchmark finished, but a warm build through kiln gocacheprog missed (see UNEXPECTED above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_usize(name: &str, default: usize) -> Res<usize> {
    match std::env::var(name) {
        Ok(v) => Ok(v
            .parse()
            .map_err(|_| format!("{name}={v} is not a number"))?),
        Err(_) => Ok(default),
    }
}

struct Bench {
    go: String,
    kiln: PathBuf,
    repo: PathBuf,
    scratch: PathBuf,
    runs: usize,
}

/// One build's figures.
struct Run {
    time: Duration,
    stats: Option<serde_json::Value>,
}

impl Bench {
    /// `go build` of every service into a fresh directory, with `gocache`, and through
    /// `kiln gocacheprog` on `store` when given.
    fn build(&self, gocache: &Path, store: Option<&Path>) -> Res<Run> {
        let out = tempfile::tempdir_in(&self.scratch)?;
        let stats_file = out.path().join("stats.json");
        let mut cmd = Command::new(&self.go);
        cmd.args(["build", "-trimpath", "-o"])
            .arg(format!("{}/", out.path().join("bin").display()))
            .arg("./cmd/...")
            .current_dir(&self.repo)
            .env("GOCACHE", gocache)
            .env("CGO_ENABLED", "0")
            .env("GOOS", "linux")
            .env("GOARCH", "amd64")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOENV", "off")
            .env("GOFLAGS", "")
            .env_remove("GOWORK")
            .env_remove("GOCACHEPROG");
        if let Some(store) = store {
            cmd.env(
                "GOCACHEPROG",
                format!(
                    "{} gocacheprog --cache-dir {} --stats-file {}",
                    self.kiln.display(),
                    store.display(),
                    stats_file.display()
                ),
            );
        }
        let start = Instant::now();
        let o = cmd.output()?;
        let time = start.elapsed();
        if !o.status.success() {
            return Err(format!("go build failed:\n{}", String::from_utf8_lossy(&o.stderr)).into());
        }
        let stats = match store {
            Some(_) => Some(serde_json::from_slice(&std::fs::read(&stats_file)?)?),
            None => None,
        };
        Ok(Run { time, stats })
    }

    fn fresh_dir(&self) -> Res<PathBuf> {
        Ok(tempfile::tempdir_in(&self.scratch)?.keep())
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn num(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

fn run() -> Res<bool> {
    let services = env_usize("KILN_BENCH_SERVICES", 20)?.max(1);
    let runs = env_usize("KILN_BENCH_WARM_RUNS", 3)?.max(1);
    let root = tempfile::tempdir()?;
    let repo = root.path().join("repo");
    let names: Vec<String> = (1..=services).map(|i| format!("svc{i:02}")).collect();
    monorepo::generate(&repo, &names)?;
    let bench = Bench {
        go: std::env::var("KILN_BENCH_GO").unwrap_or_else(|_| "go".into()),
        kiln: PathBuf::from(env!("CARGO_BIN_EXE_kiln")),
        repo,
        scratch: root.path().to_path_buf(),
        runs,
    };
    println!("kiln gocacheprog benchmark: {services} services, linux/amd64, go build -trimpath ./cmd/...");
    println!("  warm rows: median of {runs} runs; every run links into a fresh output directory\n");

    let native_cache = bench.fresh_dir()?;
    let native_cold = bench.build(&native_cache, None)?.time;
    let native_warm = median(
        (0..bench.runs)
            .map(|_| bench.build(&native_cache, None).map(|r| r.time))
            .collect::<Res<Vec<_>>>()?,
    );

    let store = bench.fresh_dir()?;
    let cold = bench.build(&bench.fresh_dir()?, Some(&store))?;
    let cold_stats = cold.stats.unwrap_or_default();
    let mut ok = true;
    let mut warm_times = Vec::new();
    let mut warm_rss = 0;
    let mut warm_stats = serde_json::Value::Null;
    for _ in 0..bench.runs {
        let r = bench.build(&bench.fresh_dir()?, Some(&store))?;
        let s = r.stats.unwrap_or_default();
        warm_rss = warm_rss.max(num(&s, "peak_rss_kib"));
        if num(&s, "misses") > 0 && num(&s, "local_hits") == 0 {
            println!("UNEXPECTED: a warm build through kiln gocacheprog hit nothing: {s:#}");
            ok = false;
        }
        warm_times.push(r.time);
        warm_stats = s;
    }
    let prog_warm = median(warm_times);

    monorepo::edit_shared(&bench.repo)?;
    let native_edit = bench.build(&native_cache, None)?.time;
    let edit = bench.build(&bench.fresh_dir()?, Some(&store))?;
    let edit_stats = edit.stats.unwrap_or_default();

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("| row | time | vs native |");
    println!("| --- | --- | --- |");
    println!("| native cold | {} | 1.00x |", secs(native_cold));
    println!(
        "| gocacheprog cold | {} | {:.2}x |",
        secs(cold.time),
        ratio(cold.time, native_cold)
    );
    println!("| native warm | {} | 1.00x |", secs(native_warm));
    println!(
        "| gocacheprog warm (fresh GOCACHE) | {} | {:.2}x |",
        secs(prog_warm),
        ratio(prog_warm, native_warm)
    );
    println!("| native shared edit | {} | 1.00x |", secs(native_edit));
    println!(
        "| gocacheprog shared edit (fresh GOCACHE) | {} | {:.2}x |",
        secs(edit.time),
        ratio(edit.time, native_edit)
    );
    println!(
        "\n  cold: {} gets, {} puts ({} bytes); peak RSS of kiln gocacheprog {} KiB",
        num(&cold_stats, "gets"),
        num(&cold_stats, "puts"),
        num(&cold_stats, "put_bytes"),
        num(&cold_stats, "peak_rss_kib")
    );
    println!(
        "  warm: {} gets, {} local hits, {} misses; peak RSS of kiln gocacheprog {} KiB",
        num(&warm_stats, "gets"),
        num(&warm_stats, "local_hits"),
        num(&warm_stats, "misses"),
        warm_rss
    );
    println!(
        "  shared edit: {} gets, {} local hits, {} misses, {} puts; peak RSS {} KiB",
        num(&edit_stats, "gets"),
        num(&edit_stats, "local_hits"),
        num(&edit_stats, "misses"),
        num(&edit_stats, "puts"),
        num(&edit_stats, "peak_rss_kib")
    );
    println!(
        "  warm gocacheprog vs native cold: {:.1}x faster",
        ratio(native_cold, prog_warm)
    );
    Ok(ok)
}
