//! `kiln build`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kiln_build::{build, write_manifest, BuildOptions, BuildReport, GroupMode};
use kiln_config::{Config, Env};
use kiln_exec::{default_jobs, Executor, LocalExecutor};
use kiln_plan::{plan, PlanRequest};
use kiln_types::Platform;

use crate::progress::Progress;
use crate::table::{human_ms, human_size, Table};
use crate::Ui;

/// Arguments of `kiln build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Package patterns, relative to the current directory as for `go build` (default: every main
    /// package of the module, or of every module go.work uses, minus kiln.toml `exclude`).
    pub patterns: Vec<String>,
    /// Platforms, comma separated (`linux/amd64,linux/arm/v7,darwin/arm64,windows/amd64`).
    #[arg(long, value_delimiter = ',')]
    pub platform: Option<Vec<Platform>>,
    /// Output directory (default: `[build] out` from kiln.toml, else `dist`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Global bound on concurrent compile work (default: CPUs, capped by available memory).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Print one JSON object with targets, outputs, digests, cache hits and timings on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not read the cache (results are still stored).
    #[arg(long)]
    pub no_cache: bool,
    /// Build even on a cache hit and compare with the cached binary; a mismatch fails the target
    /// and names its key inputs (kiln's builds are byte-reproducible, so any difference is a key
    /// that missed an input).
    #[arg(long)]
    pub verify_cache: bool,
    /// Say, per target, which key inputs differ from its previous build (why it rebuilt) or that
    /// none do (why it was a hit).
    #[arg(long)]
    pub explain: bool,
    /// Whether targets of one platform share a `go build` invocation.
    #[arg(long, value_enum, default_value_t = Group::Auto)]
    pub group: Group,
    /// `--affected [--base REF] [--head REF]`: build only services a change affects.
    #[command(flatten)]
    pub affected: super::affected::AffectedFilter,
}

/// `--group`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Group {
    /// One `go build` per platform and settings (measured faster).
    Auto,
    /// One `go build` per target.
    Never,
}

/// Runs `kiln build`.
pub fn run(dir: &Path, env: &Env, args: BuildArgs, ui: Ui) -> Result<ExitCode> {
    let project = super::open_project_with(env, dir, !args.no_cache && !args.verify_cache)?;
    let config = Config::load(&project.root)?;
    super::warn_ignored_configs(&project, &env.cwd.join(dir), ui);
    let ctx = super::BuildContext::resolve(env, &project.root)?;
    let jobs = args.jobs.unwrap_or_else(default_jobs).max(1);
    let out_dir = match &args.out {
        Some(o) => dir.join(o),
        None => project.root.join(config.out_dir()),
    };
    let read_caches = !args.no_cache && !args.verify_cache;
    let req = PlanRequest {
        patterns: args.patterns.clone(),
        platforms: args.platform.clone(),
        vars: ctx.template_vars(),
        jobs,
        list_cache: super::list_cache(env, out_dir.clone(), read_caches),
        dir: Some(env.cwd.join(dir)),
    };
    let mut plan = plan(&project, &config, &req)?;
    if let Some(a) = super::affected::restrict_plan(&mut plan, &config, &args.affected, ui)? {
        if plan.targets.is_empty() {
            if args.json {
                println!("{}", serde_json::json!({ "targets": [], "affected": a }));
            } else {
                println!(
                    "nothing affected since {}: nothing to build",
                    super::affected::describe_base(&a)
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    let cache = CacheFlags {
        use_cache: !args.no_cache,
        verify: args.verify_cache || env.verify_cache,
        explain: args.explain,
    };
    let (report, manifest) = execute(&plan, env, &config, out_dir, jobs, args.group, cache, ui)?;
    let ci = crate::ci::Ci::new(env);
    ci.build_failures(&report, &project.root);
    ci.summary(&crate::ci::build_summary_markdown("kiln build", &report));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !ui.quiet || report.failures().next().is_some() {
        print!("{}", summary(&report, &env.display_path(&manifest)));
    }
    let failures: Vec<_> = report.failures().collect();
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for f in &failures {
        eprintln!(
            "\n{} {}:\n{}",
            console::style("error:").red().bold(),
            f.label(),
            f.error.as_deref().unwrap_or_default()
        );
    }
    eprintln!(
        "\n{} of {} targets failed: {}",
        failures.len(),
        report.targets.len(),
        failures
            .iter()
            .map(|f| f.label())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::from(1))
}

/// How a run uses the action cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheFlags {
    /// Read the cache (`--no-cache` turns it off).
    pub use_cache: bool,
    /// `--verify-cache`.
    pub verify: bool,
    /// `--explain`.
    pub explain: bool,
}

/// Runs the build pipeline over `plan` with progress on stderr and writes the build manifest.
/// Returns the report and the manifest's path.
#[allow(clippy::too_many_arguments)] // each is one decision of the caller; a struct would only rename them
pub fn execute(
    plan: &kiln_plan::Plan,
    env: &Env,
    config: &Config,
    out_dir: std::path::PathBuf,
    jobs: usize,
    group: Group,
    cache: CacheFlags,
    ui: Ui,
) -> Result<(BuildReport, std::path::PathBuf)> {
    let setup = BuildSetup::prepare(env, config, out_dir, jobs, group, cache, ui)?;
    let progress = Progress::new(ui);
    let report = build(
        plan,
        setup.store.storage.as_ref(),
        setup.executor.as_ref(),
        &setup.opts,
        &progress,
    );
    progress.finish();
    let mut report = report?;
    let manifest = setup.conclude(&mut report, ui)?;
    Ok((report, manifest))
}

/// What a build runs with (`kiln build` and `kiln image` share it): the stores, the executor
/// with its GOCACHEPROG, and the options; [`BuildSetup::conclude`] reports and records after.
pub struct BuildSetup {
    /// The local store, the store the pipeline uses, and the remote.
    pub store: super::BuildStore,
    /// Runs `go build`: here, or on the `[execute] remote` engine.
    pub executor: Box<dyn Executor>,
    /// The build knobs.
    pub opts: BuildOptions,
    /// Every `kiln gocacheprog` session of this run writes its counters here.
    go_stats: tempfile::TempDir,
}

impl BuildSetup {
    /// Opens the stores and makes the executor and options for one build.
    #[allow(clippy::too_many_arguments)] // as `execute`
    pub fn prepare(
        env: &Env,
        config: &Config,
        out_dir: std::path::PathBuf,
        jobs: usize,
        group: Group,
        cache: CacheFlags,
        ui: Ui,
    ) -> Result<Self> {
        let store = super::open_build_store(env, config, ui)?;
        let go_stats = tempfile::Builder::new()
            .prefix("kiln-gocacheprog-")
            .tempdir()
            .context("creating a directory for go package cache counters")?;
        let opts = BuildOptions {
            out_dir,
            jobs,
            group: match group {
                Group::Auto => GroupMode::Auto,
                Group::Never => GroupMode::Never,
            },
            use_cache: cache.use_cache,
            verify_cache: cache.verify,
            explain: cache.explain,
            // Captured once at start-up; the key stage decides what of it reaches `go build`.
            process_env: env.process.clone(),
            display_base: env.cwd.clone(),
            key_dir: Some(store.local.bucket_dir(kiln_cache::CacheBucket::Keys)?),
            cgo_gocache_dir: Some(
                store
                    .local
                    .bucket_dir(kiln_cache::CacheBucket::CgoGoCaches)?,
            ),
            debug_keys_dir: env.debug_keys_dir.clone(),
        };
        let local = LocalExecutor::default().with_gocacheprog(super::gocacheprog::for_build(
            &store.local,
            store.remote.as_ref(),
            go_stats.path(),
        )?);
        let executor: Box<dyn Executor> = match config.execute.resolve(env)? {
            Some(remote) => {
                if !ui.quiet {
                    for n in &remote.remote.notes {
                        eprintln!("{} {n}", console::style("warning:").yellow().bold());
                    }
                }
                Box::new(kiln_remote::RemoteExecutor::open(remote, local)?)
            }
            None => Box::new(local),
        };
        Ok(Self {
            store,
            executor,
            opts,
            go_stats,
        })
    }

    /// After the build: the remote's traffic and go's package counters (printed, and added to
    /// the report), then the build manifest, whose path is returned.
    pub fn conclude(&self, report: &mut BuildReport, ui: Ui) -> Result<std::path::PathBuf> {
        if let Some(t) = &report.remote_cache {
            super::print_remote_traffic(t, ui);
        }
        if let Some(x) = &report.remote_execution {
            print_remote_execution(x, ui);
        }
        report.go_packages = kiln_gocache::Stats::sum_dir(self.go_stats.path())?;
        if let Some(s) = &report.go_packages {
            let warned = report
                .remote_cache
                .as_ref()
                .is_some_and(|t| !t.warnings.is_empty() || t.disabled.is_some());
            super::gocacheprog::print_build_line(s, ui, warned);
        }
        write_manifest(report).context("writing the build manifest")
    }
}

/// One line about remote execution: what the engine ran, answered from its cache, and what was
/// built here instead.
fn print_remote_execution(x: &kiln_exec::ExecutionStats, ui: Ui) {
    if ui.quiet || (x.remote == 0 && x.local == 0) {
        return;
    }
    eprintln!(
        "{}: {} action(s) on the engine ({} from its action cache), {} built here; {} up in {} blob(s), {} down",
        x.executor,
        x.remote,
        x.remote_cached,
        x.local,
        crate::table::human_size(x.uploaded_bytes),
        x.uploaded_blobs,
        crate::table::human_size(x.downloaded_bytes),
    );
}

/// The table and the closing line: how many targets, and of them how many were built, failed and
/// came from the cache, so a failed target is never counted as built.
fn summary(report: &BuildReport, manifest: &str) -> String {
    let mut t = Table::new(&["TARGET", "SIZE", "STATIC", "CACHED", "TIME", "STATUS"]);
    for r in &report.targets {
        t.row(vec![
            r.label(),
            r.size.map(human_size).unwrap_or_else(|| "-".into()),
            match r.is_static {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "-".into(),
            },
            if r.cached { "yes" } else { "no" }.into(),
            human_ms(r.duration_ms),
            if r.ok() { "ok" } else { "FAILED" }.into(),
        ]);
    }
    let c = Counts::of(report);
    let mut notes = String::new();
    for r in &report.targets {
        if let Some(lines) = &r.explain {
            notes.push_str(&format!("{}:\n", r.label()));
            for l in lines {
                notes.push_str(&format!("  {l}\n"));
            }
        }
        if let Some(why) = &r.not_cached {
            notes.push_str(&format!("{}: not cached: {why}\n", r.label()));
        }
    }
    format!(
        "{}{notes}{} targets: {} built, {} failed, {} cached; {} go invocation(s), {}; manifest {manifest}\n",
        t.render(),
        report.targets.len(),
        c.built,
        c.failed,
        c.cached,
        report.go_invocations,
        human_ms(report.duration_ms),
    )
}

/// Targets by outcome; each target is in exactly one.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    /// Compiled now and verified.
    built: usize,
    /// Failed to compile, verify or be stored in place.
    failed: usize,
    /// Restored from the cache.
    cached: usize,
}

impl Counts {
    fn of(report: &BuildReport) -> Self {
        let failed = report.targets.iter().filter(|t| !t.ok()).count();
        let cached = report.targets.iter().filter(|t| t.ok() && t.cached).count();
        Self {
            built: report.targets.len() - failed - cached,
            failed,
            cached,
        }
    }
}
