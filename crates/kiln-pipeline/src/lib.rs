//! kiln's image flow as a library: plan -> build -> verify -> package -> push -> sign.
//!
//! This crate sits on top of the stage crates (`kiln-build` builds and verifies, `kiln-image`
//! packs and pushes, `kiln-supply` signs and attests) and below every front end: the CLI's
//! `kiln image`, and later `kiln serve` and `kiln worker`, call [`prepare`] (the plan stage: which
//! services get images, each one's settings from kiln.toml under the caller's overrides, where
//! each goes; all before any compile), then [`image`] with an [`ImageJob`] (what was prepared, the
//! stores and executor to build with) and get an [`ImageRun`] back; progress goes out through one [`Reporter`], which is the stage crates'
//! reporters together. The crate never prints.
//!
//! The stages overlap per target: a binary is packed as soon as its build is verified and
//! placed, and its blobs go up to the registry right after, while other targets still compile.
//! Manifests, indexes and tags are written and pushed only once the whole build succeeded, so a
//! failed build still publishes nothing a user can pull (at worst, unreferenced blobs). Packing
//! shares the cores with compiling: while the build runs, at most half of the job bound packs at
//! once (at least one), and all of it once the build is done.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod prepare;

pub use prepare::{prepare, ImageOptions, Prepared};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use kiln_attest::PrivateKey;
use kiln_build::{BuildError, BuildOptions, BuildReport, TargetResult};
use kiln_cache::Storage;
use kiln_exec::Executor;
use kiln_image::{
    ImageError, PackageReport, Packager, PackagerOptions, PlatformBinary, PlatformImage,
    PushResult, PushTarget, ServiceImage, TarballFormat,
};
use kiln_plan::Target;
use kiln_registry::{BlobReport, Client, ClientConfig, Reference};
use kiln_supply::{BuildParams, PublishReport};
use kiln_types::Platform;
use serde::Serialize;

/// Why the image flow as a whole stopped (a target that fails to build is in the report, not
/// an error).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// kiln.toml or the packages cannot be planned.
    #[error(transparent)]
    Plan(#[from] kiln_plan::PlanError),
    /// `--affected` could not tell what changed.
    #[error(transparent)]
    Affected(#[from] kiln_affected::AffectedError),
    /// A service's image settings in kiln.toml cannot be used.
    #[error(transparent)]
    Config(#[from] kiln_config::ConfigError),
    /// A setting that cannot be used (the message says which and what to do).
    #[error("{0}")]
    Invalid(String),
    /// The build stage could not run.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Packing, writing the archive or pushing failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Signing or attaching to a pushed image failed.
    #[error("signing {reference}: {source}")]
    Sign {
        /// The pushed image.
        reference: String,
        /// What went wrong.
        source: kiln_supply::SupplyError,
    },
    /// A registry client for signing could not be made, or a pushed reference not parsed.
    #[error("signing {reference}: {source}")]
    Registry {
        /// The pushed image.
        reference: String,
        /// What went wrong.
        source: kiln_registry::RegistryError,
    },
    /// The async runtime for signing could not be started.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
    /// A worker of the pipeline stopped without a result (a bug).
    #[error(
        "internal error: {0}\nhint: this is a bug in kiln; please report it with the command line"
    )]
    Internal(String),
}

/// Signing of every pushed image (`kiln image --sign`).
pub struct Signing {
    /// The private key (already decrypted by the caller).
    pub key: PrivateKey,
    /// What the provenance says about the build.
    pub build: BuildParams,
    /// Registry client settings for the signature pushes.
    pub registry: ClientConfig,
}

/// Everything one `kiln image` run does.
pub struct ImageJob<'a> {
    /// What to build, pack and push ([`prepare`]).
    pub prepared: &'a Prepared,
    /// The action cache to build with.
    pub storage: &'a dyn Storage,
    /// Runs the `go build`s.
    pub executor: &'a dyn Executor,
    /// Build knobs (`jobs` is the global bound for compiling and packing).
    pub build: BuildOptions,
    /// Where relative paths of the build report are resolved (where kiln runs).
    pub cwd: PathBuf,
    /// Layout, caches and registry settings of the packager (the prepared insecure registries
    /// are added to its client settings).
    pub packager: PackagerOptions,
    /// Also write every image into this archive.
    pub tarball: Option<(PathBuf, TarballFormat)>,
    /// Sign and attest every pushed image (the prepared insecure registries are added to its
    /// client settings).
    pub sign: Option<Signing>,
}

/// Where one target is in the flow after its build (see [`Reporter::stage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Its image is being packed.
    Packing,
    /// Its image is packed.
    Packed,
    /// Its blobs are going up to the registry.
    Uploading,
    /// Its blobs are in the registry (its manifest follows once the whole build succeeded).
    Uploaded,
}

/// Progress of the whole flow: the stage crates' reporters, plus the per-target stages after
/// the build and the signatures. Every method has an empty default; calls come from worker
/// threads.
pub trait Reporter: kiln_build::Reporter + kiln_image::Reporter + kiln_registry::Reporter {
    /// A target moved to `stage`.
    fn stage(&self, _service: &str, _platform: &Platform, _stage: Stage) {}
    /// A pushed image was signed and its SBOM and provenance attached.
    fn signed(&self, _report: &PublishReport) {}
}

/// Wall time per stage. The build and packing overlap, so `package_ms` is only what packing
/// added after the build (the tail the overlap could not hide), archive included.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// The build stage (cache look-ups, compiles, verification).
    pub build_ms: u64,
    /// Packing after the build finished, archive included.
    pub package_ms: u64,
    /// The final push (manifests, indexes, tags, and any blob not sent early).
    pub push_ms: u64,
    /// Signing and attaching.
    pub sign_ms: u64,
}

/// What one run did.
#[derive(Debug, Serialize)]
pub struct ImageRun {
    /// The build, failures included.
    pub build: BuildReport,
    /// The images; `None` when a target failed to build (then nothing was tagged or pushed).
    pub package: Option<PackageReport>,
    /// The archive written.
    pub tarball: Option<PathBuf>,
    /// One per push target.
    pub pushes: Vec<PushResult>,
    /// One per signed image.
    pub signatures: Vec<PublishReport>,
    /// Where the time went.
    pub timings: Timings,
}

impl ImageRun {
    /// Whether every target built (and so every image was made).
    pub fn ok(&self) -> bool {
        self.package.is_some()
    }
}

fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs the whole flow of `job`. Returns `Ok` with `package: None` when targets failed to
/// build (their errors are in `build`); an error only when the flow itself could not go on.
pub fn image(
    mut job: ImageJob<'_>,
    reporter: Arc<dyn Reporter>,
) -> Result<ImageRun, PipelineError> {
    let events: &dyn Reporter = reporter.as_ref();
    let prepared = job.prepared;
    let insecure = &prepared.insecure_registries;
    job.packager
        .registry
        .insecure_registries
        .extend(insecure.iter().cloned());
    if let Some(s) = &mut job.sign {
        s.registry
            .insecure_registries
            .extend(insecure.iter().cloned());
    }
    let jobs = job.build.jobs.max(1);
    let packager = Packager::new(&job.packager, Some(reporter.clone()))?;
    let session = packager.session(&prepared.images, events)?;
    let services: HashMap<&str, &ServiceImage> = prepared
        .images
        .services
        .iter()
        .map(|s| (s.service.as_str(), s))
        .collect();
    let destinations: HashMap<&str, &PushTarget> = prepared
        .push
        .iter()
        .map(|t| (t.service.as_str(), t))
        .collect();
    let gate = Gate::new((jobs / 2).max(1), jobs);
    let packed: Mutex<HashMap<(String, String), Result<PlatformImage, ImageError>>> =
        Mutex::new(HashMap::new());
    // Blobs sent early save the final push their uploads; once one fails, the rest wait for the
    // final push, whose retries and errors are the ones the user sees.
    let upload_early = AtomicBool::new(!prepared.push.is_empty());
    let early: Mutex<HashMap<String, Vec<BlobReport>>> = Mutex::new(HashMap::new());
    let t_build = Instant::now();
    let (done_tx, done_rx) = channel::<TargetResult>();
    let done_rx = Mutex::new(done_rx);
    let (packed_tx, packed_rx) = channel::<(String, Platform, PlatformImage)>();
    let mut build_ms = 0;
    let report = std::thread::scope(|scope| {
        // One uploader, images in the order they were packed: a blob two repositories share
        // (the base layer) is uploaded by the first image and mounted by the next, never sent
        // twice at once. Each image's blobs are few; the compiles are what it overlaps.
        scope.spawn(|| {
            for (service, platform, img) in packed_rx {
                let Some(dest) = destinations.get(service.as_str()) else {
                    continue;
                };
                if !upload_early.load(Ordering::Relaxed) {
                    continue;
                }
                events.stage(&service, &platform, Stage::Uploading);
                match packager.push_blobs(&img, dest, events) {
                    Ok(reports) => {
                        events.stage(&service, &platform, Stage::Uploaded);
                        early
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry(service)
                            .or_default()
                            .extend(reports);
                    }
                    Err(_) => upload_early.store(false, Ordering::Relaxed),
                }
            }
        });
        for _ in 0..jobs {
            let packed_tx = packed_tx.clone();
            let (done_rx, packed, gate, session) = (&done_rx, &packed, &gate, &session);
            let (services, cwd) = (&services, &job.cwd);
            scope.spawn(move || loop {
                let next = done_rx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv();
                let Ok(t) = next else { break };
                let Some(svc) = services.get(t.service.as_str()) else {
                    continue;
                };
                if !t.ok() {
                    continue;
                }
                let r = {
                    let _slot = gate.enter();
                    events.stage(&t.service, &t.platform, Stage::Packing);
                    PlatformBinary::from_target(&t, cwd).and_then(|b| session.pack(svc, &b))
                };
                if let Ok(img) = &r {
                    events.stage(&t.service, &t.platform, Stage::Packed);
                    // The uploader stops only after every packer is gone, so this cannot fail.
                    let _ = packed_tx.send((t.service.clone(), t.platform.clone(), img.clone()));
                }
                packed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((t.service.clone(), t.platform.to_string()), r);
            });
        }
        // The packers hold the clones; the uploader ends when the last of them is done.
        drop(packed_tx);
        let forward = Forward {
            inner: events,
            done: done_tx,
        };
        let report = kiln_build::build(
            &prepared.plan,
            job.storage,
            job.executor,
            &job.build,
            &forward,
        );
        build_ms = ms_since(t_build);
        gate.build_done();
        // Closing the channel lets the packers finish the queue and stop.
        drop(forward);
        report
    });
    let build = report?;
    let mut run = ImageRun {
        build,
        package: None,
        tarball: None,
        pushes: Vec::new(),
        signatures: Vec::new(),
        timings: Timings {
            build_ms,
            ..Timings::default()
        },
    };
    if run.build.failures().next().is_some() {
        return Ok(run);
    }
    let t_package = Instant::now();
    let mut packed = packed.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut images = Vec::new();
    for s in &prepared.images.services {
        let mut platforms = Vec::new();
        for t in run.build.targets.iter().filter(|t| t.service == s.service) {
            let key = (t.service.clone(), t.platform.to_string());
            let img = packed.remove(&key).ok_or_else(|| {
                PipelineError::Internal(format!("{} was built but never packed", t.label()))
            })??;
            platforms.push(img);
        }
        images.push((s, platforms));
    }
    let package = session.finish(images)?;
    if let Some((path, format)) = &job.tarball {
        packager.write_tarball(&package.images, path, *format)?;
        run.tarball = Some(path.clone());
    }
    run.timings.package_ms = ms_since(t_package);
    let t_push = Instant::now();
    if !prepared.push.is_empty() {
        run.pushes = packager.push(&package.images, &prepared.push, events)?;
        let early = early.into_inner().unwrap_or_else(PoisonError::into_inner);
        for p in &mut run.pushes {
            if let Some(e) = early.get(&p.service) {
                p.count_early_blobs(e);
            }
        }
    }
    run.timings.push_ms = ms_since(t_push);
    run.package = Some(package);
    if let Some(signing) = &job.sign {
        let t_sign = Instant::now();
        run.signatures = sign(&run.pushes, signing, events)?;
        run.timings.sign_ms = ms_since(t_sign);
    }
    Ok(run)
}

/// Signs every pushed image by the digest that was pushed, not whatever its tag points at by
/// now, and attaches its SBOM and provenance.
fn sign(
    pushes: &[PushResult],
    signing: &Signing,
    events: &dyn Reporter,
) -> Result<Vec<PublishReport>, PipelineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PipelineError::Runtime)?;
    let client =
        Client::new(signing.registry.clone()).map_err(|source| PipelineError::Registry {
            reference: pushes
                .first()
                .map(|p| p.reference.clone())
                .unwrap_or_default(),
            source,
        })?;
    let mut out = Vec::new();
    for p in pushes {
        let parsed: Reference = p
            .reference
            .parse()
            .map_err(|source| PipelineError::Registry {
                reference: p.reference.clone(),
                source,
            })?;
        let pinned = Reference::by_digest(parsed.repository, p.digest);
        let report = rt
            .block_on(kiln_supply::sign_and_attest(
                &client,
                &pinned,
                &signing.key,
                &signing.build,
            ))
            .map_err(|source| PipelineError::Sign {
                reference: p.reference.clone(),
                source,
            })?;
        events.signed(&report);
        out.push(report);
    }
    Ok(out)
}

/// The build's reporter: passes every event on and hands each finished target to the packers.
struct Forward<'a> {
    inner: &'a dyn Reporter,
    done: Sender<TargetResult>,
}

impl kiln_build::Reporter for Forward<'_> {
    fn planned(&self, targets: &[Target]) {
        self.inner.planned(targets);
    }
    fn started(&self, label: &str) {
        self.inner.started(label);
    }
    fn command(&self, line: &str) {
        self.inner.command(line);
    }
    fn finished(&self, result: &TargetResult) {
        self.inner.finished(result);
        // The packers only stop once this sender is dropped, so the send cannot fail while the
        // build runs; if it did, the missing image is reported as an internal error.
        let _ = self.done.send(result.clone());
    }
    fn warn(&self, message: &str) {
        kiln_build::Reporter::warn(self.inner, message);
    }
}

/// Bounds how many packers run at once: fewer while the build compiles (they share its cores),
/// all of them after.
struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
    during_build: usize,
    after_build: usize,
}

/// One packer's place in the [`Gate`], given back when dropped.
struct Slot<'a>(&'a Gate);

impl Gate {
    fn new(during_build: usize, after_build: usize) -> Self {
        Self {
            state: Mutex::new((0, false)),
            changed: Condvar::new(),
            during_build,
            after_build,
        }
    }

    fn enter(&self) -> Slot<'_> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let limit = if s.1 {
                self.after_build
            } else {
                self.during_build
            };
            if s.0 < limit {
                break;
            }
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.0 += 1;
        Slot(self)
    }

    fn build_done(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.changed.notify_all();
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.0 -= 1;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// While the build runs, packing takes only its share of the cores; after, all of them.
    #[test]
    fn gate_bounds_packers_during_and_after_the_build() {
        let gate = Gate::new(1, 3);
        let active = AtomicUsize::new(0);
        let peak_during = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let _slot = gate.enter();
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    peak_during.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(30));
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(peak_during.load(Ordering::SeqCst), 1);
        gate.build_done();
        let peak_after = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let _slot = gate.enter();
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    peak_after.fetch_max(now, Ordering::SeqCst);
                    // All three must be inside at once, or this waits forever.
                    barrier.wait();
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(peak_after.load(Ordering::SeqCst), 3);
    }
}
