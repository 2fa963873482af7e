//! Benchmark of `kiln build` on a generated Go monorepo, against what people run without kiln: a plain
//! `go build` loop (one invocation per service x platform, as a shell loop or Makefile does) and one
//! batched `go build ./cmd/...` per platform.
//!
//! Not a timed test: it prints wall times and ratios and fails only when kiln's own accounting is wrong
//! (a no-op rebuild that is not all cache hits, a shared change that still hits). Run it with
//! `cargo bench -p kiln --bench build`; see `docs/benchmarks.md` for what the rows mean.
//!
//! Knobs (environment):
//! - `KILN_BENCH_SERVICES` (default 20): services in the generated repo, each built for 2 platforms.
//! - `KILN_BENCH_NOOP_RUNS` (default 5): no-op rebuilds per contender; the median is reported.
//! - `KILN_BENCH_ONLY` (default all): comma list of `loop,batched,go-native,kiln,kiln-never,kiln-baseline`.
//! - `KILN_BENCH_GO` (default `go` from PATH): the Go toolchain.
//! - `KILN_BENCH_REMOTE=1`: also the remote cache cases, with bazel-remote
//!   (`.ci/tools.sh bazel-remote`) on 127.0.0.1: machine A builds cold and fills it (binaries and,
//!   through `kiln gocacheprog`, go's packages), machine B (another copy, empty caches) builds
//!   with it, against the same build cold; then a change to the shared package on a fresh machine
//!   with the remote against a machine with a warm local GOCACHE and no remote, with the peak RSS
//!   of `kiln gocacheprog`. `KILN_BENCH_ONLY=remote` runs only these.
//! - `KILN_BENCH_BASELINE_KILN`: another `kiln` binary (e.g. a release build of an earlier
//!   commit), run as the `kiln-baseline` contender, so before/after figures come from one run.
//!
//! `go-native` is go's own no-op as users meet it: `go build -trimpath -o DIR ./cmd/...` per
//! platform with go's default linker flags, so go can tell its outputs are up to date (with
//! `-buildid=`, as the other contenders use for reproducible bytes, go relinks every binary on
//! every run). kiln's no-op goal is to be no slower than this row.

#[path = "support/monorepo.rs"]
mod monorepo;

use monorepo::Workspace;

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// A table row: its name and how to read its time from a contender's results.
type Case = (&'static str, fn(&Results) -> Duration);

/// Every contender gets the same flags, so the comparison is about scheduling and caching only.
const LDFLAGS: &str = "-s -w -buildid=";
const PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a filter argument makes no sense for one scenario.
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\nbenchmark finished, but kiln's cache accounting was not as expected (see UNEXPECTED above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Loop,
    Batched,
    GoNative,
    Kiln,
    KilnNever,
    KilnBaseline,
}

impl Contender {
    const ALL: [Contender; 6] = [
        Contender::Loop,
        Contender::Batched,
        Contender::GoNative,
        Contender::Kiln,
        Contender::KilnNever,
        Contender::KilnBaseline,
    ];

    fn name(self) -> &'static str {
        match self {
            Contender::Loop => "loop",
            Contender::Batched => "batched",
            Contender::GoNative => "go-native",
            Contender::Kiln => "kiln",
            Contender::KilnNever => "kiln-never",
            Contender::KilnBaseline => "kiln-baseline",
        }
    }
}

/// What kiln's `--json` report said about one run.
#[derive(Debug, Clone)]
struct KilnRun {
    targets: usize,
    hits: usize,
    misses: usize,
    invocations: usize,
    reported_ms: u64,
    peak_rss_kib: Option<u64>,
    /// `go list` answers taken from kiln's list cache, of those the plan needed.
    lists: (u64, u64),
    /// go's package cache counters (`kiln gocacheprog` sessions, with a remote cache).
    go_packages: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
struct Sample {
    wall: Duration,
    kiln: Option<KilnRun>,
}

#[derive(Debug)]
struct Results {
    contender: Contender,
    cold: Sample,
    noop: Vec<Sample>,
    shared: Sample,
}

impl Results {
    fn noop_median(&self) -> Duration {
        let mut v: Vec<Duration> = self.noop.iter().map(|s| s.wall).collect();
        v.sort();
        v[v.len() / 2]
    }
}

/// One contender's private world: repo copy, Go build cache, kiln cache, output directory.
struct Bench {
    go: PathBuf,
    kiln: PathBuf,
    baseline_kiln: Option<PathBuf>,
    services: Vec<String>,
}

fn env_usize(name: &str, default: usize) -> Res<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v
            .trim()
            .parse()
            .map_err(|e| format!("{name}={v:?}: {e} (expected a positive number)"))?),
        _ => Ok(default),
    }
}

fn run() -> Res<bool> {
    let services = env_usize("KILN_BENCH_SERVICES", 20)?.max(1);
    let noop_runs = env_usize("KILN_BENCH_NOOP_RUNS", 5)?.max(1);
    let remote = std::env::var("KILN_BENCH_REMOTE").is_ok_and(|v| v == "1");
    let only: Vec<Contender> = match std::env::var("KILN_BENCH_ONLY") {
        Ok(v) if remote && v.trim() == "remote" => Vec::new(),
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|n| {
                Contender::ALL
                    .into_iter()
                    .find(|c| c.name() == n.trim())
                    .ok_or_else(|| format!("KILN_BENCH_ONLY: unknown contender {n:?} (loop, batched, go-native, kiln, kiln-never, kiln-baseline)"))
            })
            .collect::<Result<_, _>>()?,
        _ => Contender::ALL
            .into_iter()
            .filter(|c| *c != Contender::KilnBaseline || std::env::var_os("KILN_BENCH_BASELINE_KILN").is_some())
            .collect(),
    };
    let baseline_kiln = std::env::var_os("KILN_BENCH_BASELINE_KILN").map(PathBuf::from);
    if only.contains(&Contender::KilnBaseline) && baseline_kiln.is_none() {
        return Err("kiln-baseline needs KILN_BENCH_BASELINE_KILN=/path/to/another/kiln".into());
    }
    let bench = Bench {
        go: std::env::var_os("KILN_BENCH_GO").map_or_else(|| PathBuf::from("go"), PathBuf::from),
        kiln: PathBuf::from(env!("CARGO_BIN_EXE_kiln")),
        baseline_kiln,
        services: (1..=services).map(|i| format!("svc{i:02}")).collect(),
    };
    let go_version = capture(Command::new(&bench.go).arg("version")).map_err(|e| {
        format!("{e}\nhint: the benchmark needs the Go toolchain on PATH (https://go.dev/dl/, or set KILN_BENCH_GO)")
    })?;
    let kiln_version = capture(Command::new(&bench.kiln).arg("--version"))?;
    let targets = services * PLATFORMS.len();
    let load_start = loadavg();
    println!("kiln build benchmark");
    println!("  {}", go_version.trim());
    println!("  {}", kiln_version.trim());
    println!("  machine: {}", machine());
    println!("  load average at start: {load_start}");
    println!(
        "  repo: {services} services (cmd/svc01..) x {} platforms = {targets} targets; no-op runs: {noop_runs} (median)",
        PLATFORMS.len()
    );
    println!("  flags for all: CGO_ENABLED=0 -trimpath -buildvcs=false -ldflags \"{LDFLAGS}\"");
    println!("  each contender: own repo copy, own empty GOCACHE, own empty KILN_CACHE_DIR\n");

    let mut all = Vec::new();
    let mut ok = true;
    for c in only {
        let ws = bench.workspace()?;
        // Read GOROOT's sources once so the first contender does not pay for a cold page cache.
        if all.is_empty() {
            bench
                .go_cmd(&ws)
                .args(["list", "-deps", "./cmd/..."])
                .stdout(Stdio::null())
                .status()?;
        }
        eprintln!("== {}", c.name());
        let cold = bench.measure(c, &ws, "cold")?;
        let mut noop = Vec::new();
        for i in 0..noop_runs {
            noop.push(bench.measure(c, &ws, &format!("no-op #{}", i + 1))?);
        }
        monorepo::edit_shared(&ws.repo)?;
        let shared = bench.measure(c, &ws, "shared change")?;
        let n = count_binaries(&ws.out)?;
        if n != targets {
            return Err(format!(
                "{}: {n} binaries in {}, expected {targets}",
                c.name(),
                ws.out.display()
            )
            .into());
        }
        let r = Results {
            contender: c,
            cold,
            noop,
            shared,
        };
        ok &= check_kiln(&r, targets);
        all.push(r);
    }
    println!("\n{}", render(&all, targets, noop_runs));
    let noop = |c: Contender| {
        all.iter()
            .find(|r| r.contender == c)
            .map(Results::noop_median)
    };
    if let (Some(k), Some(g)) = (noop(Contender::Kiln), noop(Contender::GoNative)) {
        let ratio = k.as_secs_f64() / g.as_secs_f64();
        println!(
            "goal (issue 8): kiln no-op {} vs go's own no-op (go-native) {}: kiln takes {ratio:.2}x go's time ({})",
            secs(k),
            secs(g),
            if ratio <= 1.0 { "met" } else { "NOT met" }
        );
    }
    if let (Some(k), Some(b)) = (noop(Contender::Kiln), noop(Contender::KilnBaseline)) {
        println!(
            "kiln no-op {} vs kiln-baseline no-op {}: {:.2}x faster",
            secs(k),
            secs(b),
            b.as_secs_f64() / k.as_secs_f64()
        );
    }
    if remote {
        remote_case(&bench)?;
    }
    println!("load average at end: {}", loadavg());
    Ok(ok)
}

/// Fresh machine with a warm remote cache vs the same build cold: three workspaces (other paths,
/// empty GOCACHE and kiln caches each), one bazel-remote.
fn remote_case(bench: &Bench) -> Res<()> {
    let base = std::env::var_os("KILN_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kiln-tools")))
        .ok_or("KILN_TOOLS_DIR and HOME are unset")?;
    let tool = base.join("bin/bazel-remote");
    if !tool.is_file() {
        return Err(format!(
            "{} is missing: run `.ci/tools.sh bazel-remote` (or set KILN_TOOLS_DIR)",
            tool.display()
        )
        .into());
    }
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let http = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(&tool)
        .arg("--dir")
        .arg(dir.path())
        .args(["--max_size", "5", "--grpc_address", &addr])
        .args(["--http_address", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            let _ = server.kill();
            return Err("bazel-remote did not listen within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("grpc://{addr}");
    eprintln!("== remote ({url})");
    let runs = remote_runs(bench, &url);
    let _ = server.kill();
    let _ = server.wait();
    let r = runs?;
    let inv = |s: &Sample| s.kiln.as_ref().map_or(0, |k| k.invocations);
    let pkgs = |s: &Sample| {
        s.kiln
            .as_ref()
            .and_then(|k| k.go_packages.clone())
            .unwrap_or_default()
    };
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    println!("remote cache (bazel-remote on loopback):");
    println!(
        "  cold, no remote:                    {}  ({} go invocations)",
        secs(r.cold.wall),
        inv(&r.cold)
    );
    let fill = pkgs(&r.fill);
    println!(
        "  cold, filling the remote (A):       {}  ({} go invocations; go packages: {} compiled, {} uploaded, peak RSS of kiln gocacheprog {} KiB)",
        secs(r.fill.wall),
        inv(&r.fill),
        n(&fill, "misses"),
        n(&fill, "uploads"),
        n(&fill, "peak_rss_kib")
    );
    println!(
        "  fresh machine, warm remote (B):     {}  ({} go invocations)",
        secs(r.warm.wall),
        inv(&r.warm)
    );
    println!(
        "  shared edit, warm local GOCACHE:    {}  ({} go invocations, no remote)",
        secs(r.edit_local.wall),
        inv(&r.edit_local)
    );
    let edit = pkgs(&r.edit_remote);
    println!(
        "  shared edit, fresh machine + remote: {}  ({} go invocations; go packages: {} from the remote, {} compiled, {} bytes down, gets waited {} ms on the remote in all; peak RSS of kiln gocacheprog {} KiB)",
        secs(r.edit_remote.wall),
        inv(&r.edit_remote),
        n(&edit, "remote_hits"),
        n(&edit, "misses"),
        n(&edit, "remote_bytes_down"),
        n(&edit, "remote_wait_ms"),
        n(&edit, "peak_rss_kib")
    );
    println!(
        "  same edit, another fresh machine:   {}  ({} go invocations: kiln's cold start and restoring 40 binaries)",
        secs(r.edit_restored.wall),
        inv(&r.edit_restored)
    );
    let ratio = r.cold.wall.as_secs_f64() / r.warm.wall.as_secs_f64();
    println!(
        "goal (issue 11): fresh machine with a warm remote {ratio:.1}x faster than cold ({}); filling costs {:.2}x cold",
        if ratio >= 5.0 { "met" } else { "NOT met" },
        r.fill.wall.as_secs_f64() / r.cold.wall.as_secs_f64()
    );
    let edit_ratio = r.edit_remote.wall.as_secs_f64() / r.edit_local.wall.as_secs_f64();
    println!(
        "goal (issue 11): shared edit on a fresh machine {edit_ratio:.2}x the machine with a warm local GOCACHE ({}, goal <= 1.3x)",
        if edit_ratio <= 1.3 { "met" } else { "NOT met" },
    );
    if inv(&r.warm) != 0 {
        return Err(format!(
            "the warm-remote build ran {} go invocations, expected 0",
            inv(&r.warm)
        )
        .into());
    }
    // (Local hits are possible: go asks for some entries again after putting them.)
    if n(&edit, "remote_hits") == 0 {
        return Err(format!(
            "the fresh machine's shared edit did not take go's packages from the remote: {edit:#}"
        )
        .into());
    }
    Ok(())
}

/// The builds of the remote case.
struct RemoteRuns {
    cold: Sample,
    fill: Sample,
    warm: Sample,
    edit_local: Sample,
    edit_remote: Sample,
    edit_restored: Sample,
}

/// Cold without a remote (a workspace kept: its GOCACHE is the warm local cache of the edit
/// case), A filling the remote, B fresh with it; then the shared-package edit on the warm local
/// workspace (no remote) and on a fresh workspace with the remote.
fn remote_runs(bench: &Bench, url: &str) -> Res<RemoteRuns> {
    let local = bench.workspace()?;
    let cold = bench.run_kiln_with(&local, "auto", None)?;
    let fill = bench.run_kiln_with(&bench.workspace()?, "auto", Some(url))?;
    let warm = bench.run_kiln_with(&bench.workspace()?, "auto", Some(url))?;
    monorepo::edit_shared(&local.repo)?;
    let edit_local = bench.run_kiln_with(&local, "auto", None)?;
    let fresh = bench.workspace()?;
    monorepo::edit_shared(&fresh.repo)?;
    let edit_remote = bench.run_kiln_with(&fresh, "auto", Some(url))?;
    // What a fresh machine pays besides go's packages (kiln's own cold start: go list, go env,
    // hashing, with empty caches): the same edit once more on another fresh machine, now that the
    // remote holds every binary of it.
    let fresh2 = bench.workspace()?;
    monorepo::edit_shared(&fresh2.repo)?;
    let edit_restored = bench.run_kiln_with(&fresh2, "auto", Some(url))?;
    Ok(RemoteRuns {
        edit_restored,
        cold,
        fill,
        warm,
        edit_local,
        edit_remote,
    })
}

impl Bench {
    fn workspace(&self) -> Res<Workspace> {
        Workspace::create("kiln-bench-", &self.services)
    }

    /// `go` with the isolated environment every contender shares; the user's GOFLAGS and go.env are
    /// kept out so they cannot favour one contender.
    fn go_cmd(&self, ws: &Workspace) -> Command {
        let mut c = Command::new(&self.go);
        ws.isolate(&mut c);
        c
    }

    fn measure(&self, c: Contender, ws: &Workspace, case: &str) -> Res<Sample> {
        let s = match c {
            Contender::Loop => self.run_loop(ws)?,
            Contender::Batched => self.run_batched(ws, Some(LDFLAGS))?,
            Contender::GoNative => self.run_batched(ws, None)?,
            Contender::Kiln => self.run_kiln(&self.kiln, ws, "auto")?,
            Contender::KilnNever => self.run_kiln(&self.kiln, ws, "never")?,
            Contender::KilnBaseline => {
                let k = self.baseline_kiln.clone().ok_or("no baseline kiln")?;
                self.run_kiln(&k, ws, "auto")?
            }
        };
        let extra = s.kiln.as_ref().map_or(String::new(), |k| {
            format!(
                "  ({}/{} hits, {} go invocations, {}/{} go list answers cached, reported {} ms)",
                k.hits, k.targets, k.invocations, k.lists.0, k.lists.1, k.reported_ms
            )
        });
        eprintln!("   {case:<14} {:>9}{extra}", secs(s.wall));
        Ok(s)
    }

    fn run_loop(&self, ws: &Workspace) -> Res<Sample> {
        let start = Instant::now();
        for svc in &self.services {
            for (os, arch) in PLATFORMS {
                let out = format!("{}/{svc}/{os}_{arch}/", ws.out.display());
                let mut cmd = self.go_cmd(ws);
                cmd.env("GOOS", os).env("GOARCH", arch);
                cmd.args([
                    "build",
                    "-trimpath",
                    "-buildvcs=false",
                    "-ldflags",
                    LDFLAGS,
                    "-o",
                    &out,
                ]);
                cmd.arg(format!("./cmd/{svc}"));
                checked(&mut cmd)?;
            }
        }
        Ok(Sample {
            wall: start.elapsed(),
            kiln: None,
        })
    }

    /// One `go build ./cmd/...` per platform, with `ldflags` or go's defaults.
    fn run_batched(&self, ws: &Workspace, ldflags: Option<&str>) -> Res<Sample> {
        let start = Instant::now();
        for (os, arch) in PLATFORMS {
            let out = format!("{}/{os}_{arch}/", ws.out.display());
            let mut cmd = self.go_cmd(ws);
            cmd.env("GOOS", os).env("GOARCH", arch);
            cmd.args(["build", "-trimpath", "-buildvcs=false"]);
            if let Some(l) = ldflags {
                cmd.args(["-ldflags", l]);
            }
            cmd.args(["-o", &out]);
            cmd.arg("./cmd/...");
            checked(&mut cmd)?;
        }
        Ok(Sample {
            wall: start.elapsed(),
            kiln: None,
        })
    }

    /// This kiln, with or without a remote cache.
    fn run_kiln_with(&self, ws: &Workspace, group: &str, remote: Option<&str>) -> Res<Sample> {
        self.run_kiln_remote(&self.kiln, ws, group, remote)
    }

    fn run_kiln(&self, kiln: &Path, ws: &Workspace, group: &str) -> Res<Sample> {
        self.run_kiln_remote(kiln, ws, group, None)
    }

    fn run_kiln_remote(
        &self,
        kiln: &Path,
        ws: &Workspace,
        group: &str,
        remote: Option<&str>,
    ) -> Res<Sample> {
        let platforms: Vec<String> = PLATFORMS.iter().map(|(o, a)| format!("{o}/{a}")).collect();
        let mut cmd = Command::new(kiln);
        ws.isolate(&mut cmd);
        cmd.env("KILN_GO", &self.go);
        match remote {
            Some(url) => cmd.env("KILN_REMOTE_CACHE", url),
            None => cmd.env_remove("KILN_REMOTE_CACHE"),
        };
        cmd.args([
            "build",
            "./cmd/...",
            "--json",
            "--group",
            group,
            "--platform",
        ]);
        cmd.arg(platforms.join(","));
        cmd.arg("--out").arg(&ws.out);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", kiln.display()))?;
        let (out, peak) = wait_with_peak_rss(child)?;
        let wall = start.elapsed();
        if !out.status.success() {
            return Err(format!(
                "kiln build --group {group} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("kiln --json printed something that is not JSON: {e}"))?;
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("kiln --json report has no numeric {k:?}"))
        };
        let targets = v
            .get("targets")
            .and_then(serde_json::Value::as_array)
            .ok_or("kiln --json report has no \"targets\" array")?;
        Ok(Sample {
            wall,
            kiln: Some(KilnRun {
                targets: targets.len(),
                hits: usize::try_from(num("cache_hits")?)?,
                misses: usize::try_from(num("cache_misses")?)?,
                invocations: usize::try_from(num("go_invocations")?)?,
                reported_ms: num("duration_ms")?,
                peak_rss_kib: peak,
                // Older kilns (the baseline) do not report it.
                lists: (
                    v["go_lists"]["cached"].as_u64().unwrap_or(0),
                    v["go_lists"]["total"].as_u64().unwrap_or(0),
                ),
                go_packages: v.get("go_packages").filter(|g| g.is_object()).cloned(),
            }),
        })
    }
}

fn checked(cmd: &mut Command) -> Res<()> {
    let out = cmd.output().map_err(|e| format!("starting {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}

fn capture(cmd: &mut Command) -> Res<String> {
    let out = cmd.output().map_err(|e| format!("starting {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed ({})", out.status).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits for `child` while sampling its peak resident set (`VmHWM`, which the kernel keeps as a
/// high-water mark, so sampling misses nothing but the last few milliseconds). Only kiln's own
/// process is measured, not the `go` and compiler processes it starts. `getrusage` would need
/// `unsafe`, which the workspace forbids.
fn wait_with_peak_rss(child: std::process::Child) -> Res<(Output, Option<u64>)> {
    let pid = child.id();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let poll = s.spawn(|| {
            let mut peak = None;
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = vm_hwm_kib(pid) {
                    peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        let out = child.wait_with_output();
        done.store(true, Ordering::Relaxed);
        let peak = poll.join().unwrap_or(None);
        Ok((out?, peak))
    })
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let mut s = String::new();
    std::fs::File::open(format!("/proc/{pid}/status"))
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Checks kiln's own accounting: the point of a cache is that a no-op does nothing and a change to
/// code every service imports rebuilds everything.
fn check_kiln(r: &Results, targets: usize) -> bool {
    let name = r.contender.name();
    let Some(cold) = &r.cold.kiln else {
        return true;
    };
    let mut ok = true;
    let mut complain = |what: String| {
        println!("UNEXPECTED {name}: {what}");
        ok = false;
    };
    if cold.targets != targets || cold.misses != targets {
        complain(format!(
            "cold build: {} targets, {} misses, expected {targets} of each",
            cold.targets, cold.misses
        ));
    }
    for (i, s) in r.noop.iter().enumerate() {
        if let Some(k) = &s.kiln {
            if k.hits != targets || k.invocations != 0 {
                complain(format!("no-op #{}: {}/{targets} hits, {} go invocations, expected {targets}/{targets} and 0", i + 1, k.hits, k.invocations));
            }
        }
    }
    if let Some(k) = &r.shared.kiln {
        if k.hits != 0 || k.misses != targets {
            complain(format!(
                "shared change: {} hits, {} misses, expected 0 and {targets}",
                k.hits, k.misses
            ));
        }
    }
    ok
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Wall times with speed-ups against the loop, one line per case, then kiln's accounting.
fn render(all: &[Results], targets: usize, noop_runs: usize) -> String {
    let mut s = String::new();
    let baseline = all.iter().find(|r| r.contender == Contender::Loop);
    let cases: [Case; 3] = [
        ("cold", |r| r.cold.wall),
        ("no-op", Results::noop_median),
        ("shared change", |r| r.shared.wall),
    ];
    let _ = writeln!(
        s,
        "wall time (x = loop time / this time; higher is faster; no-op = median of {noop_runs})"
    );
    let _ = writeln!(s);
    let mut header = "| case |".to_string();
    let mut rule = "|---|".to_string();
    for r in all {
        let _ = write!(header, " {} |", r.contender.name());
        rule.push_str("---:|");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    for (case, get) in cases {
        let mut line = format!("| {case} |");
        for r in all {
            let t = get(r);
            let ratio = baseline.map_or("-".to_string(), |b| {
                format!("{:.2}x", get(b).as_secs_f64() / t.as_secs_f64())
            });
            let _ = write!(line, " {} ({ratio}) |", secs(t));
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s);
    for (case, get) in cases {
        let mut line = format!("{case}:");
        for r in all {
            let t = get(r);
            let ratio = baseline.map_or("-".to_string(), |b| {
                format!("{:.2}x", get(b).as_secs_f64() / t.as_secs_f64())
            });
            let _ = write!(line, "  {} {} ({ratio})", r.contender.name(), secs(t));
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s);
    for r in all {
        let (Some(c), Some(sh)) = (&r.cold.kiln, &r.shared.kiln) else {
            continue;
        };
        let noop: Vec<String> = r
            .noop
            .iter()
            .filter_map(|n| {
                n.kiln
                    .as_ref()
                    .map(|k| format!("{}/{targets} hits {} inv", k.hits, k.invocations))
            })
            .collect();
        let peak = r
            .cold
            .kiln
            .iter()
            .chain(r.noop.iter().filter_map(|n| n.kiln.as_ref()))
            .chain(r.shared.kiln.iter())
            .filter_map(|k| k.peak_rss_kib)
            .max();
        let _ = writeln!(
            s,
            "{}: cold {}/{targets} hits, {} go invocations; no-op [{}]; shared change {}/{targets} hits, {} go invocations; peak RSS of the kiln process {}",
            r.contender.name(),
            c.hits,
            c.invocations,
            noop.join(", "),
            sh.hits,
            sh.invocations,
            peak.map_or("unknown".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        );
    }
    s
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or("unknown".into(), |k| {
            format!("{:.1} GiB", k as f64 / 1024.0 / 1024.0)
        });
    format!(
        "{cores} CPUs ({cpu}), {mem} RAM, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn count_binaries(dir: &Path) -> Res<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            n += count_binaries(&e.path())?;
        } else if ft.is_file() && e.file_name().to_string_lossy().starts_with("svc") {
            n += 1;
        }
    }
    Ok(n)
}
