use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kiln_cache::{ActionRecord, OutputRecord, Storage};
use kiln_exec::{run_bounded, Action, Executor, LocalExecutor, Portable};
use kiln_key::explain::{differences, ExplainRecord};
use kiln_key::{ActionKey, FileHasher, GoCommand, KeyContext, Prepared};
use kiln_plan::{Plan, Target};
use kiln_types::Digest;
use kiln_verify::{check, inspect_file, inspect_file_known, Expectation, Linkage, Severity};

use crate::records::{Placed, Records, Scratch};
use crate::report::{display_path, BuildReport, TargetResult};

/// Why the pipeline as a whole could not run (single target failures are in the report).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Key inputs could not be read.
    #[error(transparent)]
    Key(#[from] kiln_key::KeyError),
    /// An output file or directory could not be written.
    #[error("cannot write {path}: {source}\nhint: check permissions and free space of the output directory (--out)")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Progress of a build. Every method has an empty default so a reporter implements only what it
/// shows; calls come from worker threads.
pub trait Reporter: Send + Sync {
    /// The targets that will be processed, before any work starts.
    fn planned(&self, _targets: &[Target]) {}
    /// A target's compile started.
    fn started(&self, _label: &str) {}
    /// A `go build` invocation is about to run: its environment overrides and arguments, as a
    /// shell-like line for `--verbose` and logs.
    fn command(&self, _line: &str) {}
    /// A target finished (built, restored or failed).
    fn finished(&self, _result: &TargetResult) {}
    /// Something worth a warning that does not fail the build (e.g. a cache store error).
    fn warn(&self, _message: &str) {}
}

/// A reporter that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;
impl Reporter for NoReporter {}

/// Whether targets sharing a build context are compiled by one `go build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupMode {
    /// Group (the measured default; see the benchmark in the README).
    #[default]
    Auto,
    /// One `go build` per target.
    Never,
}

/// Knobs of one run.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Output directory (`dist`).
    pub out_dir: PathBuf,
    /// Global bound on concurrent compile work.
    pub jobs: usize,
    /// Grouping of targets into `go build` invocations.
    pub group: GroupMode,
    /// Read the cache (writing always happens).
    pub use_cache: bool,
    /// Build even on a hit and compare with the cached binary (like Go's
    /// `GODEBUG=gocacheverify=1`); a mismatch fails the target and names the key inputs.
    pub verify_cache: bool,
    /// Compare each target's key inputs with its previous build and report the differences.
    pub explain: bool,
    /// kiln's own environment, captured once by the caller: the key stage splits it into keyed
    /// and passthrough variables, and nothing else reaches `go build`.
    pub process_env: BTreeMap<String, String>,
    /// Directory for the stat cache and the explain records (the key bucket of the kiln cache);
    /// `None` keeps neither.
    pub key_dir: Option<PathBuf>,
    /// Directory for the Go build caches of cgo builds (see
    /// [`kiln_key::KeyContext::with_cgo_gocache`]); `None` uses the user's GOCACHE.
    pub cgo_gocache_dir: Option<PathBuf>,
    /// Also write every target's key inputs as JSON here (`KILN_DEBUG_KEYS`).
    pub debug_keys_dir: Option<PathBuf>,
    /// Paths in the report are shown relative to this directory when below it (the caller's
    /// current directory), so manifests carry no machine paths.
    pub display_base: PathBuf,
}

struct Pending<'a> {
    index: usize,
    target: &'a Target,
    prepared: Prepared,
    /// A hit being verified (`--verify-cache`): the cached digest the fresh build must match.
    expect: Option<Digest>,
}

enum Outcome {
    Built { tmp: PathBuf, ms: u64 },
    Failed(String),
}

/// Runs the pipeline for every target of `plan`.
pub fn build(
    plan: &Plan,
    storage: &dyn Storage,
    executor: &dyn Executor,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildReport, BuildError> {
    let start = Instant::now();
    reporter.planned(&plan.targets);
    let hasher = match &opts.key_dir {
        Some(d) => FileHasher::with_stat_cache(d.join("stat-cache")),
        None => FileHasher::new(),
    };
    let records = opts.key_dir.as_ref().map(|d| Records::new(d.clone()));
    let placed = Placed::load(opts.key_dir.as_ref().map(|d| d.join("placed.json")));
    let mut ctx = KeyContext::new(
        &plan.project,
        &opts.process_env,
        &hasher,
        vec![opts.out_dir.clone()],
    )?;
    if let Some(d) = &opts.cgo_gocache_dir {
        crate::records::prune_cgo_gocaches(d);
        ctx = ctx.with_cgo_gocache(d.clone());
    }
    let mut results: Vec<Option<TargetResult>> = vec![None; plan.targets.len()];
    let mut explanations: Vec<Option<Vec<String>>> = vec![None; plan.targets.len()];
    let mut misses: Vec<Pending> = Vec::new();
    let mut hits = 0;

    // Keys are independent per target; compute them on the job bound's threads.
    let prepared = run_bounded(
        plan.targets.iter().collect::<Vec<_>>(),
        opts.jobs.max(1),
        |t: &Target| {
            t.problem
                .is_none()
                .then(|| ctx.prepare(&plan.contexts[t.context].graph, t))
        },
    );
    for (index, (t, prepared)) in plan.targets.iter().zip(prepared).enumerate() {
        let t0 = Instant::now();
        let Some(prepared) = prepared else {
            let r = failed(plan, t, None, t.problem.clone().unwrap_or_default());
            reporter.finished(&r);
            results[index] = Some(r);
            continue;
        };
        let prepared = prepared?;
        if let Some(dir) = &opts.debug_keys_dir {
            // A debugging aid: failing to write it must not fail the build.
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(
                dir.join(format!("{}-{}.json", t.service, t.platform.dir_name())),
                serde_json::to_vec_pretty(&ExplainRecord::from(&prepared)).unwrap_or_default(),
            );
        }
        explanations[index] = opts
            .explain
            .then(|| explain(records.as_ref(), t, &prepared));
        let key = prepared.key;
        let mut expect = None;
        if opts.use_cache && prepared.uncacheable.is_none() {
            if let Some((mut r, digest)) = restore(
                plan,
                t,
                &key,
                &Restore {
                    storage,
                    opts,
                    placed: &placed,
                    reporter,
                },
                t0,
            ) {
                if let Some(rec) = &records {
                    // Entries written by another machine or an older kiln have no record yet.
                    let _ = rec.remember(t, &key, || ExplainRecord::from(&prepared));
                }
                if opts.verify_cache {
                    expect = Some(digest);
                } else {
                    hits += 1;
                    r.explain = explanations[index].take();
                    reporter.finished(&r);
                    results[index] = Some(r);
                    continue;
                }
            }
        }
        if let Some(why) = &prepared.uncacheable {
            reporter.warn(&format!("{}: not cached: {why}", t.label()));
        }
        misses.push(Pending {
            index,
            target: t,
            prepared,
            expect,
        });
    }

    let verified_count = misses.iter().filter(|p| p.expect.is_some()).count();
    let miss_count = misses.len() - verified_count;
    let scratch = Scratch::create(ensure_dir(&opts.out_dir)?).map_err(|source| BuildError::Io {
        path: opts.out_dir.clone(),
        source,
    })?;
    let jobs = group(misses, opts.group);
    let invocations = Mutex::new(0usize);
    let changed_warned = Mutex::new(false);
    let concurrent = opts.jobs.max(1).min(jobs.len().max(1));
    let parallelism = (opts.jobs.max(1) / concurrent).max(1);
    let finish = Finish {
        plan,
        storage,
        opts,
        reporter,
        hasher: &hasher,
        records: records.as_ref(),
        placed: &placed,
        changed_warned: &changed_warned,
    };
    // Checking, storing, placing and verifying happen in the worker right after its compile, so
    // they overlap with the compiles still running instead of queueing up behind the last one;
    // each target is reported as finished from there too, so a caller (the image pipeline) can
    // pack it while other targets still compile.
    let explanations = Mutex::new(explanations);
    let finished = run_bounded(
        jobs.into_iter().enumerate().collect(),
        concurrent,
        |(n, job): (usize, Vec<Pending>)| {
            let dir = scratch.path().join(n.to_string());
            let out = run_job(
                &plan.project,
                executor,
                &job,
                &dir,
                parallelism,
                reporter,
                &invocations,
            );
            job.into_iter()
                .zip(out)
                .map(|(p, outcome)| {
                    let mut r = match outcome {
                        Outcome::Failed(mut msg) => {
                            if let Some(note) = kiln_plan::left_out_cgo_files(plan, p.target, &msg)
                            {
                                msg = format!("{}\n{note}", msg.trim_end());
                            }
                            Ok(failed(plan, p.target, Some(&p.prepared.key), msg))
                        }
                        Outcome::Built { tmp, ms } => finish.built(&p, &tmp, ms),
                    };
                    if let Ok(r) = &mut r {
                        r.explain = explanations
                            .lock()
                            .ok()
                            .and_then(|mut e| e.get_mut(p.index).and_then(Option::take));
                        reporter.finished(r);
                    }
                    (p.index, r)
                })
                .collect::<Vec<_>>()
        },
    );
    for (index, r) in finished.into_iter().flatten() {
        results[index] = Some(r?);
    }
    if let Err(e) = placed.save() {
        reporter.warn(&format!(
            "cannot save the record of placed binaries (the next run re-reads them): {e}"
        ));
    }
    if let Err(e) = hasher.save() {
        reporter.warn(&format!(
            "cannot save the stat cache (the next run re-reads every input): {e}"
        ));
    }
    drop(scratch);
    let targets: Vec<TargetResult> = results.into_iter().flatten().collect();
    Ok(BuildReport {
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        go_version: plan.project.env.version.clone(),
        out_dir: display_path(&opts.out_dir, &opts.display_base),
        targets,
        cache_hits: hits + verified_count,
        cache_misses: miss_count,
        go_invocations: invocations.into_inner().unwrap_or(0),
        go_lists: crate::report::GoLists {
            total: plan.lists_cached.1,
            cached: plan.lists_cached.0,
        },
        cache_verified: verified_count,
        duration_ms: start.elapsed().as_millis() as u64,
        remote_cache: storage.traffic(),
        go_packages: None,
        remote_execution: executor.stats(),
    })
}

/// What `--explain` says about one target.
fn explain(records: Option<&Records>, t: &Target, prepared: &Prepared) -> Vec<String> {
    let Some(records) = records else {
        return vec!["no key records are kept (no cache directory)".into()];
    };
    match records.previous(t) {
        None => vec!["no earlier build of this target is recorded".into()],
        Some((key, _)) if key == prepared.key => vec!["key inputs unchanged".into()],
        Some((key, None)) => vec![format!(
            "key changed (previous key {}), but its inputs were not recorded",
            &key.hex()[..12]
        )],
        Some((_, Some(prev))) => {
            let d = differences(&prev, &ExplainRecord::from(prepared));
            if d.is_empty() {
                // Same inputs, other key: only the key layout version can do that.
                vec!["key inputs equal, key format changed (kiln upgrade)".into()]
            } else {
                d.iter().map(ToString::to_string).collect()
            }
        }
    }
}

fn ensure_dir(dir: &Path) -> Result<&Path, BuildError> {
    std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(dir)
}

fn dest_path(opts: &BuildOptions, t: &Target) -> PathBuf {
    opts.out_dir
        .join(&t.service)
        .join(t.platform.dir_name())
        .join(&t.binary)
}

/// What restoring a hit needs besides the target.
struct Restore<'a> {
    storage: &'a dyn Storage,
    opts: &'a BuildOptions,
    placed: &'a Placed,
    reporter: &'a dyn Reporter,
}

fn restore(
    plan: &Plan,
    t: &Target,
    key: &ActionKey,
    with: &Restore<'_>,
    t0: Instant,
) -> Option<(TargetResult, Digest)> {
    let Restore {
        storage,
        opts,
        placed,
        reporter,
    } = *with;
    let record = match storage.get_action(key) {
        Ok(r) => r?,
        Err(e) => {
            reporter.warn(&format!("cache read failed, building {}: {e}", t.label()));
            return None;
        }
    };
    let out = record.outputs.iter().find(|o| o.name == t.binary)?;
    let dest = dest_path(opts, t);
    // A no-op rebuild finds the binary already in place: proven by its recorded stamp, or else by
    // hashing it, which is still cheaper than writing it again.
    let in_place = placed.holds(&dest, &out.digest)
        || (std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == out.size)
            && std::fs::File::open(&dest)
                .and_then(|f| Digest::of_reader(std::io::BufReader::new(f)))
                .is_ok_and(|(d, _)| d == out.digest));
    if !in_place {
        match storage.get_blob(&out.digest, &dest) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                reporter.warn(&format!("cache read failed, building {}: {e}", t.label()));
                return None;
            }
        }
    }
    set_executable(&dest);
    placed.record(&dest, &out.digest);
    let digest = out.digest;
    Some((
        verified(
            &opts.display_base,
            plan,
            t,
            key,
            &dest,
            Placement {
                cached: true,
                known: Some((digest, out.size)),
                ms: t0.elapsed().as_millis().max(1) as u64,
            },
        ),
        digest,
    ))
}

/// Splits misses into `go build` invocations: targets of one build context with identical
/// arguments and distinct binary names share one, so their common packages compile once.
/// Splits misses into `go build` invocations: targets of one build context with the same command
/// (arguments and environment) and distinct binary names share one, so their common packages
/// compile once.
fn group(misses: Vec<Pending>, mode: GroupMode) -> Vec<Vec<Pending>> {
    if mode == GroupMode::Never {
        return misses.into_iter().map(|p| vec![p]).collect();
    }
    let mut groups: BTreeMap<(usize, GoCommand), Vec<Vec<Pending>>> = BTreeMap::new();
    for p in misses {
        let slot = groups
            .entry((p.target.context, p.prepared.command.clone()))
            .or_default();
        match slot
            .iter_mut()
            .find(|g| g.iter().all(|q| q.target.binary != p.target.binary))
        {
            Some(g) => g.push(p),
            None => slot.push(vec![p]),
        }
    }
    let mut jobs: Vec<Vec<Pending>> = groups.into_values().flatten().collect();
    // Largest first, so the longest invocation does not start last.
    jobs.sort_by_key(|g| std::cmp::Reverse(g.len()));
    jobs
}

/// What a remote executor needs to run `job` elsewhere: the union of its targets' source files,
/// the keyed environment, the binaries it writes, and the first reason it must stay here.
fn portable(project: &kiln_discover::Project, job: &[Pending]) -> Portable {
    let mut files = std::collections::BTreeSet::new();
    for p in job {
        files.extend(p.prepared.source_files().map(Path::to_path_buf));
    }
    Portable {
        files: files.into_iter().collect(),
        goroot: project.env.goroot.clone(),
        gomodcache: project.env.gomodcache.clone(),
        keyed_env: job
            .first()
            .map(|p| p.prepared.inputs.env.clone())
            .unwrap_or_default(),
        binaries: job.iter().map(|p| p.target.binary.clone()).collect(),
        local_only: job.iter().find_map(|p| p.prepared.local_only()),
    }
}

#[allow(clippy::too_many_arguments)] // the recursion passes each through unchanged
fn run_job(
    project: &kiln_discover::Project,
    executor: &dyn Executor,
    job: &[Pending],
    dir: &Path,
    parallelism: usize,
    reporter: &dyn Reporter,
    invocations: &Mutex<usize>,
) -> Vec<Outcome> {
    for p in job {
        reporter.started(&p.target.label());
    }
    let t0 = Instant::now();
    let action = Action {
        label: job
            .iter()
            .map(|p| p.target.label())
            .collect::<Vec<_>>()
            .join(", "),
        command: job[0].prepared.command.clone(),
        packages: job.iter().map(|p| p.target.package.clone()).collect(),
        portable: executor
            .needs_portable()
            .then(|| Arc::new(portable(project, job))),
    };
    if let Ok(mut n) = invocations.lock() {
        *n += 1;
    }
    let mut line: Vec<String> = action
        .command
        .env()
        .iter()
        .filter(|(k, _)| kiln_key::env::is_key_var(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    line.push(action.command.go().display().to_string());
    line.extend(
        LocalExecutor::command_line(&action, dir, parallelism)
            .into_iter()
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a }),
    );
    reporter.command(&line.join(" "));
    let done = executor.run(&action, dir, parallelism);
    for w in executor.drain_warnings() {
        reporter.warn(&w);
    }
    let ms = t0.elapsed().as_millis() as u64;
    match done {
        Ok(c) if c.success => job
            .iter()
            .map(|p| {
                let tmp = dir.join(&p.target.binary);
                if tmp.is_file() {
                    Outcome::Built { tmp, ms }
                } else {
                    Outcome::Failed(format!("go build succeeded but wrote no {}", tmp.display()))
                }
            })
            .collect(),
        // With several packages, go's errors do not always say which main they break: rebuild one
        // by one so every target gets its own verdict and the healthy ones still land.
        Ok(_) if job.len() > 1 => job
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                let sub = dir.join(format!("single-{i}"));
                run_job(
                    project,
                    executor,
                    std::slice::from_ref(p),
                    &sub,
                    parallelism,
                    reporter,
                    invocations,
                )
            })
            .collect(),
        Ok(c) => vec![Outcome::Failed(c.stderr)],
        Err(e) => job.iter().map(|_| Outcome::Failed(e.to_string())).collect(),
    }
}

/// What finishing a built target needs, shared by the workers.
struct Finish<'a> {
    plan: &'a Plan,
    storage: &'a dyn Storage,
    opts: &'a BuildOptions,
    reporter: &'a dyn Reporter,
    hasher: &'a FileHasher,
    records: Option<&'a Records>,
    placed: &'a Placed,
    changed_warned: &'a Mutex<bool>,
}

impl Finish<'_> {
    /// Checks, stores, places and verifies a freshly built binary.
    fn built(&self, p: &Pending, tmp: &Path, ms: u64) -> Result<TargetResult, BuildError> {
        let t = p.target;
        let key = &p.prepared.key;
        let mut not_cached = p.prepared.uncacheable.clone();
        // An input saved while go ran may have been read in its new state: the binary would then
        // not belong to the key. It is still what go built, so it is placed, but never stored.
        let changed = self.hasher.changed_since_hashed(p.prepared.hashed_files());
        if !changed.is_empty() {
            let why = format!(
                "{} input file(s) changed while go build ran ({}); the result is not cached",
                changed.len(),
                changed
                    .iter()
                    .take(3)
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Ok(mut warned) = self.changed_warned.lock() {
                if !*warned {
                    *warned = true;
                    self.reporter.warn(&format!("{}: {why}", t.label()));
                }
            }
            not_cached = Some(why);
        }
        let mut verify_error = None;
        if let Some(expected) = p.expect {
            verify_error = self.compare(key, expected, tmp)?;
        } else if not_cached.is_none() {
            self.store(p, tmp, ms);
        }
        let dest = dest_path(self.opts, t);
        ensure_dir(dest.parent().unwrap_or(&self.opts.out_dir))?;
        std::fs::rename(tmp, &dest).map_err(|source| BuildError::Io {
            path: dest.clone(),
            source,
        })?;
        // The same mode as a restored binary, whatever the umask go ran with.
        set_executable(&dest);
        let mut r = verified(
            &self.opts.display_base,
            self.plan,
            t,
            key,
            &dest,
            Placement {
                cached: p.expect.is_some(),
                known: None,
                ms,
            },
        );
        if let Some(d) = r.sha256 {
            self.placed.record(&dest, &d);
        }
        r.not_cached = not_cached;
        if let Some(e) = verify_error {
            r.error = Some(e);
        }
        Ok(r)
    }

    /// `--verify-cache`: the fresh build must be byte-identical to the cached one.
    fn compare(
        &self,
        key: &ActionKey,
        expected: Digest,
        fresh: &Path,
    ) -> Result<Option<String>, BuildError> {
        let file = std::fs::File::open(fresh).map_err(|source| BuildError::Io {
            path: fresh.to_path_buf(),
            source,
        })?;
        let (got, _) =
            Digest::of_reader(std::io::BufReader::new(file)).map_err(|source| BuildError::Io {
                path: fresh.to_path_buf(),
                source,
            })?;
        if got == expected {
            return Ok(None);
        }
        let inputs = self.opts.key_dir.as_ref().map_or_else(
            || "(no key records kept)".to_string(),
            |d| {
                let hex = key.hex();
                d.join("inputs")
                    .join(&hex[..2])
                    .join(format!("{hex}.json"))
                    .display()
                    .to_string()
            },
        );
        Ok(Some(format!(
            "cache verification failed: the cached binary (sha256 {}) differs from a fresh build (sha256 {}) for key {}: an input is missing from the key\nkey inputs: {inputs}\nhint: please report this with the key inputs file; `kiln cache clear` removes the bad entry",
            expected.hex(),
            got.hex(),
            key.hex(),
        )))
    }

    fn store(&self, p: &Pending, tmp: &Path, ms: u64) {
        let t = p.target;
        let key = &p.prepared.key;
        let stored = self.storage.put_blob(tmp).and_then(|(digest, size)| {
            let record = ActionRecord {
                outputs: vec![OutputRecord {
                    name: t.binary.clone(),
                    digest,
                    size,
                    executable: true,
                }],
                created: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                duration_ms: ms,
            };
            self.storage.put_action(key, &record)
        });
        if let Err(e) = stored {
            self.reporter
                .warn(&format!("cannot store {} in the cache: {e}", t.label()));
            return;
        }
        if let Some(rec) = self.records {
            if let Err(e) = rec.remember(t, key, || ExplainRecord::from(&p.prepared)) {
                self.reporter.warn(&format!(
                    "cannot record the key inputs of {} for --explain: {e}",
                    t.label()
                ));
            }
        }
    }
}

#[cfg(unix)]
fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: a restored binary that is not executable still verifies; the user sees mode.
    // Only when needed: a chmod changes the file's ctime, which would void its placed record.
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o755) {
        return;
    }
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) {}

fn base_result(plan: &Plan, t: &Target, key: Option<&ActionKey>) -> TargetResult {
    TargetResult {
        service: t.service.clone(),
        package: t.package.clone(),
        platform: t.platform.clone(),
        path: None,
        sha256: None,
        size: None,
        cached: false,
        duration_ms: 0,
        key: key.map(ActionKey::hex),
        is_static: None,
        static_required: t.static_required(),
        go_version: plan.project.env.version.clone(),
        flags: t.args.clone(),
        env: t.env.clone(),
        verify: None,
        findings: Vec::new(),
        error: None,
        not_cached: None,
        explain: None,
    }
}

fn failed(plan: &Plan, t: &Target, key: Option<&ActionKey>, error: String) -> TargetResult {
    TargetResult {
        error: Some(error),
        ..base_result(plan, t, key)
    }
}

/// How a binary came to be at its destination.
struct Placement {
    /// Restored from the cache (or a verified hit).
    cached: bool,
    /// Its digest and size when already verified (a restore), so it is not read again.
    known: Option<(Digest, u64)>,
    /// Time spent.
    ms: u64,
}

/// Inspects the binary at `dest` and checks it against what the target promised.
fn verified(
    base: &Path,
    plan: &Plan,
    t: &Target,
    key: &ActionKey,
    dest: &Path,
    how: Placement,
) -> TargetResult {
    let Placement { cached, known, ms } = how;
    let mut r = base_result(plan, t, Some(key));
    r.cached = cached;
    r.duration_ms = ms;
    r.path = Some(display_path(dest, base));
    let inspected = match known {
        Some((digest, size)) => inspect_file_known(dest, digest, size),
        None => inspect_file(dest),
    };
    let report = match inspected {
        Ok(rep) => rep,
        Err(e) => {
            // Left in place: the pipeline's tests place stand-in bytes that cannot be inspected.
            r.error = Some(format!("cannot verify {}: {e}", dest.display()));
            return r;
        }
    };
    let graph = &plan.contexts[t.context].graph;
    let cgo_packages: Vec<String> = graph
        .closure(&t.package)
        .filter(|p| !p.cgo_files.is_empty())
        .map(|p| p.import_path.clone())
        .collect();
    let exp = Expectation {
        static_required: t.static_required(),
        goos: Some(t.platform.os.clone()),
        goarch: Some(t.platform.arch.clone()),
        cgo_packages,
    };
    let findings = check(&report, &exp);
    let cgo = report.go.as_ref().and_then(|g| g.cgo_enabled()) == Some(true);
    r.is_static = Some(report.linkage != Linkage::Dynamic && !cgo);
    r.sha256 = Some(report.sha256);
    r.size = Some(report.size);
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| match &f.hint {
            Some(h) => format!("{}\nhint: {h}", f.message),
            None => f.message.clone(),
        })
        .collect();
    if !errors.is_empty() {
        r.error = Some(format!("verification failed: {}", errors.join("\n")));
        remove_failed(dest, &mut r);
    }
    r.findings = findings;
    r.verify = Some(report);
    r
}

/// A binary that failed verification must not be picked up from dist by a script or a later
/// packaging step: it is removed (it stays in the cache, where a hit is verified again).
fn remove_failed(dest: &Path, r: &mut TargetResult) {
    match std::fs::remove_file(dest) {
        Ok(()) => r.path = None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.path = None,
        Err(e) => {
            if let Some(msg) = &mut r.error {
                msg.push_str(&format!(
                    "\n(cannot remove the failed binary {}: {e})",
                    dest.display()
                ));
            }
        }
    }
}
