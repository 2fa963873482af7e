//! `kiln image`: build, then package every service into an OCI image (index when several
//! platforms), then write the layout / a tarball and push.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use kiln_config::{Config, Env};
use kiln_exec::default_jobs;
use kiln_image::{
    PackageReport, PackagerOptions, PlatformImage, PushResult, TarballFormat, VcsInfo,
};
use kiln_plan::PlanRequest;
use kiln_registry::{ClientConfig, RegistryError, Repository};
use kiln_types::Platform;
use serde::Serialize;

use super::build::Group;
use crate::progress::Progress;
use crate::table::{human_ms, human_size, Table};
use crate::Ui;

/// Arguments of `kiln image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Package patterns, relative to the current directory as for `go build` (default: every main
    /// package of the module, or of every module go.work uses, minus kiln.toml `exclude`).
    pub patterns: Vec<String>,
    /// Platforms, comma separated; several make a multi-arch image index.
    #[arg(long, value_delimiter = ',')]
    pub platform: Option<Vec<Platform>>,
    /// Push to REF: with several services a prefix (`127.0.0.1:5000/team` pushes
    /// `team/<service>:<tag>`), with one service also a full `repo:tag`. `--push=` (empty) pushes
    /// each service under its kiln.toml `repository`.
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Image tag (default: `[image] tag` from kiln.toml, else the git version).
    #[arg(long)]
    pub tag: Option<String>,
    /// Also write every image into one archive (oci-archive; docker-archive for `*.docker.tar`).
    #[arg(long, value_name = "FILE")]
    pub tarball: Option<PathBuf>,
    /// Archive format of `--tarball` (default: from the file name).
    #[arg(long, value_enum, requires = "tarball")]
    pub tarball_format: Option<TarballKind>,
    /// Profile from kiln.toml (`[profiles.NAME]`): extra env and data files.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Base image for every service: `kiln` (built-in), `scratch`, or a registry reference.
    #[arg(long, value_name = "REF|scratch|kiln")]
    pub base: Option<String>,
    /// Layer compression: gzip, gzip:LEVEL, gzip-parallel, zstd, zstd:LEVEL, none.
    #[arg(long)]
    pub compression: Option<String>,
    /// Speak plain HTTP to the push and base registries (always the case for 127.0.0.1/localhost).
    #[arg(long)]
    pub insecure_registry: bool,
    /// Sign every pushed image (cosign-compatible) and attach SBOMs and SLSA provenance;
    /// needs --push and --key (password: KILN_PASSWORD). See docs/commands/supply-chain.md.
    #[arg(long, requires_all = ["push", "key"])]
    pub sign: bool,
    /// Private key for --sign (`kiln keygen` or `cosign generate-key-pair`).
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub key: Option<PathBuf>,
    /// OCI layout directory (default: `<out>/oci`, `dist/oci`).
    #[arg(long, value_name = "DIR")]
    pub oci_dir: Option<PathBuf>,
    /// Only services affected by changes since the default branch (see `kiln affected`).
    #[arg(long)]
    pub affected: bool,
    /// Global bound on concurrent compile and pack work.
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Do not read the build cache (results are still stored).
    #[arg(long)]
    pub no_cache: bool,
    /// Print one JSON object (build summary, images with sizes and digests, pushes) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--tarball-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TarballKind {
    /// OCI layout in a tar (multi-arch indexes kept).
    Oci,
    /// `docker save` format, one entry per platform.
    Docker,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    build: BuildSummary,
    package: &'a PackageReport,
    tarball: Option<&'a Path>,
    push: &'a [PushResult],
    timings: Timings,
}

/// Wall time per stage, so a slow run shows where it went.
#[derive(Serialize)]
struct Timings {
    /// Discovery and planning (`go list`, git).
    plan_ms: u64,
    /// The build stage (cache lookups, compiles, verification).
    build_ms: u64,
    /// Packing, archive included.
    package_ms: u64,
    /// Registry pushes.
    push_ms: u64,
}

fn ms_since(t: std::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[derive(Serialize)]
struct BuildSummary {
    targets: usize,
    cache_hits: usize,
    cache_misses: usize,
    duration_ms: u64,
    /// What the remote execution engine did, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_execution: Option<kiln_exec::ExecutionStats>,
}

/// Runs `kiln image`.
pub fn run(dir: &Path, env: &Env, args: ImageArgs, ui: Ui) -> Result<ExitCode> {
    let t_plan = std::time::Instant::now();
    let project = super::open_project_with(env, dir, !args.no_cache)?;
    let config = Config::load(&project.root)?;
    super::warn_ignored_configs(&project, &env.cwd.join(dir), ui);
    let ctx = super::BuildContext::resolve(env, &project.root)?;
    let jobs = args.jobs.unwrap_or_else(default_jobs).max(1);
    let out_dir = project.root.join(config.out_dir());
    let opts = kiln_pipeline::ImageOptions {
        plan: PlanRequest {
            patterns: args.patterns.clone(),
            platforms: args.platform.clone(),
            vars: ctx.template_vars(),
            jobs,
            list_cache: super::list_cache(env, out_dir.clone(), !args.no_cache),
            dir: Some(env.cwd.join(dir)),
        },
        affected: args.affected,
        profile: args.profile.clone(),
        tag: args.tag.clone(),
        base: args.base.clone(),
        compression: args.compression.clone(),
        push: args.push.clone(),
        insecure_registry: args.insecure_registry,
        vcs: VcsInfo {
            source: ctx.git.origin.clone(),
            revision: ctx.git.commit.clone(),
            version: Some(ctx.image_version()),
        },
        default_tag: ctx.git.version.clone(),
        source_date_epoch: ctx.image_epoch(),
    };
    let prepared = kiln_pipeline::prepare(&project, &config, &opts)?;
    if !ui.quiet {
        for service in &prepared.without_image {
            eprintln!(
                "note: {service}: no image: it has no Linux platform (set [services.{service}.image] platforms to make one)"
            );
        }
        for w in &prepared.warnings {
            eprintln!("{} {w}", console::style("warning:").yellow().bold());
        }
    }
    if let (true, Some(a)) = (prepared.is_empty(), &prepared.affected) {
        if args.json {
            println!("{}", serde_json::json!({ "images": [], "affected": a }));
        } else {
            println!("nothing affected since {}: no image to build", a.base);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let plan_ms = ms_since(t_plan);
    let registry = ClientConfig {
        docker_config_dir: env.docker_config_dir.clone(),
        ..ClientConfig::default()
    };
    let layout_dir = match &args.oci_dir {
        Some(d) => dir.join(d),
        None => out_dir.join("oci"),
    };
    let sign = match (args.sign, &args.key) {
        (true, Some(key)) => {
            let password = super::keygen::password(env, false)?;
            Some(kiln_pipeline::Signing {
                key: kiln_attest::load_private_key_file(&dir.join(key), &password)?,
                build: kiln_supply::BuildParams {
                    repo: opts.vcs.source.clone(),
                    revision: opts.vcs.revision.clone(),
                    targets: args.patterns.clone(),
                    date: ctx.sbom_date(),
                    ..Default::default()
                },
                registry: registry.clone(),
            })
        }
        _ => None,
    };
    let tarball = args.tarball.as_ref().map(|t| {
        let path = dir.join(t);
        let format = match args.tarball_format {
            Some(TarballKind::Oci) => TarballFormat::OciArchive,
            Some(TarballKind::Docker) => TarballFormat::DockerArchive,
            None => TarballFormat::from_file_name(&path),
        };
        (path, format)
    });
    let setup = super::build::BuildSetup::prepare(
        env,
        &config,
        out_dir,
        jobs,
        Group::Auto,
        super::build::CacheFlags {
            use_cache: !args.no_cache,
            verify: env.verify_cache,
            explain: false,
        },
        ui,
    )?;
    let job = kiln_pipeline::ImageJob {
        prepared: &prepared,
        storage: setup.store.storage.as_ref(),
        executor: setup.executor.as_ref(),
        build: setup.opts.clone(),
        cwd: env.cwd.clone(),
        packager: PackagerOptions {
            layout_dir,
            cache: super::open_store(env)?,
            registry,
            jobs,
        },
        tarball,
        sign,
    };
    let events = Arc::new(Events {
        ui,
        progress: Progress::new(ui),
        quiet_sign: ui.quiet || args.json,
        packed: Default::default(),
        uploaded: Default::default(),
    });
    let run = kiln_pipeline::image(job, events.clone());
    events.progress.finish();
    let mut run = run?;
    setup.conclude(&mut run.build, ui)?;
    let report = &run.build;
    let ci = crate::ci::Ci::new(env);
    ci.build_failures(report, &project.root);
    let Some(packed) = &run.package else {
        ci.summary(&crate::ci::build_summary_markdown("kiln image", report));
        let failures: Vec<_> = report.failures().collect();
        for f in &failures {
            eprintln!(
                "{} {}:\n{}",
                console::style("error:").red().bold(),
                f.label(),
                f.error.as_deref().unwrap_or_default()
            );
        }
        eprintln!(
            "{} of {} targets failed: no image was built",
            failures.len(),
            report.targets.len()
        );
        return Ok(ExitCode::from(1));
    };
    let pushes = &run.pushes;
    ci.summary(&format!(
        "{}{}",
        crate::ci::build_summary_markdown("kiln image", report),
        crate::ci::image_summary_markdown(packed, pushes)
    ));
    if args.json {
        let out = JsonOut {
            build: BuildSummary {
                targets: report.targets.len(),
                cache_hits: report.cache_hits,
                cache_misses: report.cache_misses,
                duration_ms: report.duration_ms,
                remote_execution: report.remote_execution.clone(),
            },
            package: packed,
            tarball: run.tarball.as_deref(),
            push: pushes,
            timings: Timings {
                plan_ms,
                build_ms: run.timings.build_ms,
                package_ms: run.timings.package_ms,
                push_ms: run.timings.push_ms,
            },
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if !ui.quiet {
        print_summary(env, packed, run.tarball.as_deref(), pushes);
    }
    Ok(ExitCode::SUCCESS)
}

/// Progress on stderr: the build's bars, packing and stages with `--verbose`, registry retries
/// and signatures unless `--quiet`.
struct Events {
    ui: Ui,
    progress: Progress,
    /// `--quiet` or `--json`: no line per signature.
    quiet_sign: bool,
    /// Platform images packed and uploaded so far, shown beside the build's bar.
    packed: std::sync::atomic::AtomicUsize,
    uploaded: std::sync::atomic::AtomicUsize,
}

impl kiln_build::Reporter for Events {
    fn planned(&self, targets: &[kiln_plan::Target]) {
        self.progress.planned(targets);
    }
    fn started(&self, label: &str) {
        self.progress.started(label);
    }
    fn command(&self, line: &str) {
        self.progress.command(line);
    }
    fn finished(&self, result: &kiln_build::TargetResult) {
        self.progress.finished(result);
    }
    fn warn(&self, message: &str) {
        kiln_build::Reporter::warn(&self.progress, message);
    }
}

impl kiln_image::Reporter for Events {
    fn pulling_base(&self, reference: &str, platform: &Platform) {
        if !self.ui.quiet {
            self.progress
                .line(format!("pulling base {reference} for {platform}"));
        }
    }

    fn warn(&self, message: &str) {
        kiln_build::Reporter::warn(&self.progress, message);
    }

    fn packed(&self, service: &str, image: &PlatformImage) {
        if self.ui.verbose {
            self.progress.line(format!(
                "  packed {service} {}: {} ({} layer(s) reused, {} packed)",
                image.platform, image.manifest.digest, image.layers_reused, image.layers_packed
            ));
        }
    }
}

impl kiln_registry::Reporter for Events {
    fn retrying(&self, what: &str, attempt: u32, delay: Duration, error: &RegistryError) {
        if !self.ui.quiet {
            self.progress.line(format!(
                "{} {what}: {error}; retry {} in {}",
                console::style("warning:").yellow().bold(),
                attempt + 1,
                human_ms(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            ));
        }
    }

    fn blob_done(&self, repo: &Repository, blob: &kiln_registry::BlobReport) {
        if self.ui.verbose {
            self.progress
                .line(format!("  {repo}: {} {:?}", blob.digest, blob.outcome));
        }
    }
}

impl kiln_pipeline::Reporter for Events {
    fn stage(&self, service: &str, platform: &Platform, stage: kiln_pipeline::Stage) {
        use kiln_pipeline::Stage;
        use std::sync::atomic::Ordering::Relaxed;
        match stage {
            Stage::Packed => self.packed.fetch_add(1, Relaxed),
            Stage::Uploaded => self.uploaded.fetch_add(1, Relaxed),
            Stage::Packing | Stage::Uploading => 0,
        };
        let (packed, uploaded) = (self.packed.load(Relaxed), self.uploaded.load(Relaxed));
        self.progress.status(if uploaded > 0 {
            format!("| {packed} packed, {uploaded} uploaded")
        } else {
            format!("| {packed} packed")
        });
        // `Packed` has its own line (`packed`); the others say where the target is.
        let what = match stage {
            Stage::Packing => "packing",
            Stage::Uploading => "uploading blobs",
            Stage::Uploaded => "blobs uploaded",
            Stage::Packed => return,
        };
        if self.ui.verbose {
            self.progress
                .line(format!("  {service} {platform}: {what}"));
        }
    }

    fn signed(&self, report: &kiln_supply::PublishReport) {
        if self.quiet_sign {
            return;
        }
        self.progress.line(format!(
            "signed {}@{} and attached SBOM + provenance ({}, {})",
            report.signature.repository,
            report.signature.digest,
            report.signature.tag,
            report.attachments.attestation_tag
        ));
        let s = &report.signature.referrers.notes;
        for note in s.iter().chain(&report.attachments.referrers_detail.notes) {
            self.progress.line(format!("warning: {note}"));
        }
    }
}

fn print_summary(env: &Env, packed: &PackageReport, tarball: Option<&Path>, pushes: &[PushResult]) {
    let mut t = Table::new(&[
        "IMAGE",
        "PLATFORM",
        "BINARY",
        "LAYERS (gz / tar)",
        "BASE",
        "TOTAL",
        "MANIFEST",
    ]);
    for i in &packed.images {
        for p in &i.platforms {
            let own: Vec<_> = p.size.layers.iter().filter(|l| !l.from_base).collect();
            let comp: u64 = own.iter().map(|l| l.compressed).sum();
            let unc: u64 = own.iter().filter_map(|l| l.uncompressed).sum();
            t.row(vec![
                i.layout_ref.clone(),
                p.platform.to_string(),
                human_size(p.binary.size),
                format!("{} / {}", human_size(comp), human_size(unc)),
                format!("{} {}", p.base.name, human_size(p.size.base_compressed)),
                human_size(p.size.total_compressed),
                short(&p.manifest.digest.to_string()),
            ]);
        }
    }
    print!("{}", t.render());
    for i in &packed.images {
        let what = if i.is_index() { "index" } else { "manifest" };
        println!("{} {what} {}", i.layout_ref, i.digest());
    }
    println!(
        "{} image(s) in {}: {} layer(s) packed, {} reused, {}",
        packed.images.len(),
        env.display_path(&packed.layout),
        packed.layers_packed,
        packed.layers_reused,
        human_ms(packed.duration_ms)
    );
    if let Some(t) = tarball {
        println!("archive {}", env.display_path(t));
    }
    for p in pushes {
        println!(
            "pushed {}@{}: {} blob(s) uploaded ({}), {} mounted, {} already there",
            p.reference,
            p.digest,
            p.uploaded,
            human_size(p.bytes_sent),
            p.mounted,
            p.skipped
        );
    }
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}
