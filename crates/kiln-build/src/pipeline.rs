use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kiln_cache::{ActionRecord, OutputRecord, Storage};
use kiln_exec::{run_bounded, Executor, GoBuild};
use kiln_key::{collect_sources, key_env, toolchain, ActionKey, FileHasher, KeyInputs, Toolchain};
use kiln_plan::{Plan, Target};
use kiln_verify::{check, inspect_file, Expectation, Linkage, Severity};

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
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Output directory (`dist`).
    pub out_dir: PathBuf,
    /// Global bound on concurrent compile work.
    pub jobs: usize,
    /// Grouping of targets into `go build` invocations.
    pub group: GroupMode,
    /// Read the cache (writing always happens).
    pub use_cache: bool,
}

struct Pending<'a> {
    index: usize,
    target: &'a Target,
    key: ActionKey,
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
    let hasher = FileHasher::new();
    let tool = toolchain(&plan.project.env, &hasher)?;
    let mut results: Vec<Option<TargetResult>> = vec![None; plan.targets.len()];
    let mut misses: Vec<Pending> = Vec::new();
    let mut cc_cache: HashMap<String, String> = HashMap::new();
    let mut hits = 0;

    for (index, t) in plan.targets.iter().enumerate() {
        let t0 = Instant::now();
        if let Some(problem) = &t.problem {
            let r = failed(plan, t, None, problem.clone());
            reporter.finished(&r);
            results[index] = Some(r);
            continue;
        }
        let key = key_for(plan, t, &tool, &hasher, &mut cc_cache)?;
        if opts.use_cache {
            if let Some(r) = restore(plan, t, &key, storage, opts, reporter, t0) {
                hits += 1;
                reporter.finished(&r);
                results[index] = Some(r);
                continue;
            }
        }
        misses.push(Pending {
            index,
            target: t,
            key,
        });
    }

    let miss_count = misses.len();
    let tmp_root = tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .tempdir_in(ensure_dir(&opts.out_dir)?)
        .map_err(|source| BuildError::Io {
            path: opts.out_dir.clone(),
            source,
        })?;
    let jobs = group(misses, opts.group);
    let invocations = Mutex::new(0usize);
    let concurrent = opts.jobs.max(1).min(jobs.len().max(1));
    let parallelism = (opts.jobs.max(1) / concurrent).max(1);
    // Storing, placing and verifying happen in the worker right after its compile, so they overlap
    // with the compiles still running instead of queueing up behind the last one.
    let finished = run_bounded(
        jobs.into_iter().enumerate().collect(),
        concurrent,
        |(n, job): (usize, Vec<Pending>)| {
            let dir = tmp_root.path().join(n.to_string());
            let out = run_job(
                plan,
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
                    let r = match outcome {
                        Outcome::Failed(msg) => Ok(failed(plan, p.target, Some(&p.key), msg)),
                        Outcome::Built { tmp, ms } => store_and_place(
                            plan, p.target, &p.key, &tmp, ms, storage, opts, reporter,
                        ),
                    };
                    if let Ok(r) = &r {
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
    let targets: Vec<TargetResult> = results.into_iter().flatten().collect();
    Ok(BuildReport {
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        go_version: plan.project.env.version.clone(),
        out_dir: display_path(&opts.out_dir),
        targets,
        cache_hits: hits,
        cache_misses: miss_count,
        go_invocations: invocations.into_inner().unwrap_or(0),
        duration_ms: start.elapsed().as_millis() as u64,
    })
}

fn ensure_dir(dir: &Path) -> Result<&Path, BuildError> {
    std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(dir)
}

fn key_for(
    plan: &Plan,
    t: &Target,
    tool: &Toolchain,
    hasher: &FileHasher,
    cc_cache: &mut HashMap<String, String>,
) -> Result<ActionKey, BuildError> {
    let graph = &plan.contexts[t.context].graph;
    let sources = collect_sources(&plan.project, graph, &t.package, hasher)?;
    let env = key_env(&plan.project.env.vars, &t.env);
    let c_compiler = if env.get("CGO_ENABLED").map(String::as_str) == Some("1") {
        let cc = env.get("CC").cloned().unwrap_or_else(|| "gcc".into());
        cc_cache
            .entry(cc.clone())
            .or_insert_with(|| compiler_identity(&cc))
            .clone()
    } else {
        String::new()
    };
    let inputs = KeyInputs {
        toolchain: tool.clone(),
        platform: t.platform.clone(),
        main_package: t.package.clone(),
        env,
        args: t.args.clone(),
        files: sources.files,
        modules: sources.modules,
        c_compiler,
    };
    if let Some(dir) = std::env::var_os("KILN_DEBUG_KEYS") {
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(format!(
                "{}-{}.json",
                t.service,
                t.platform.dir_name()
            )),
            serde_json::to_vec_pretty(&inputs).unwrap_or_default(),
        );
    }
    Ok(inputs.key())
}

/// `CC --version`'s first line; a compiler that cannot run still gets a distinct identity.
fn compiler_identity(cc: &str) -> String {
    let mut parts = cc.split_whitespace();
    let program = parts.next().unwrap_or("gcc");
    Command::new(program)
        .args(parts)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{cc} (not runnable)"))
}

fn dest_path(opts: &BuildOptions, t: &Target) -> PathBuf {
    opts.out_dir
        .join(&t.service)
        .join(t.platform.dir_name())
        .join(&t.binary)
}

fn restore(
    plan: &Plan,
    t: &Target,
    key: &ActionKey,
    storage: &dyn Storage,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
    t0: Instant,
) -> Option<TargetResult> {
    let record = match storage.get_action(key) {
        Ok(r) => r?,
        Err(e) => {
            reporter.warn(&format!("cache read failed, building {}: {e}", t.label()));
            return None;
        }
    };
    let out = record.outputs.iter().find(|o| o.name == t.binary)?;
    let dest = dest_path(opts, t);
    match storage.get_blob(&out.digest, &dest) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            reporter.warn(&format!("cache read failed, building {}: {e}", t.label()));
            return None;
        }
    }
    set_executable(&dest);
    Some(verified(
        plan,
        t,
        key,
        &dest,
        true,
        t0.elapsed().as_millis().max(1) as u64,
    ))
}

/// Splits misses into `go build` invocations: targets of one build context with identical
/// arguments and distinct binary names share one, so their common packages compile once.
fn group(misses: Vec<Pending>, mode: GroupMode) -> Vec<Vec<Pending>> {
    if mode == GroupMode::Never {
        return misses.into_iter().map(|p| vec![p]).collect();
    }
    let mut groups: BTreeMap<(usize, Vec<String>), Vec<Vec<Pending>>> = BTreeMap::new();
    for p in misses {
        let slot = groups
            .entry((p.target.context, p.target.args.clone()))
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

fn run_job(
    plan: &Plan,
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
    let first = &job[0].target;
    let go_build = GoBuild {
        label: job
            .iter()
            .map(|p| p.target.label())
            .collect::<Vec<_>>()
            .join(", "),
        go: plan.project.env.go.clone(),
        dir: plan.project.root.clone(),
        env: first.env.clone(),
        args: first.args.clone(),
        packages: job.iter().map(|p| p.target.package.clone()).collect(),
        out_dir: dir.to_path_buf(),
        parallelism,
    };
    if let Ok(mut n) = invocations.lock() {
        *n += 1;
    }
    let mut line: Vec<String> = go_build
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    line.push(go_build.go.display().to_string());
    line.extend(
        kiln_exec::LocalExecutor::command_line(&go_build)
            .into_iter()
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a }),
    );
    reporter.command(&line.join(" "));
    let done = executor.run(&go_build);
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
                    plan,
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

#[allow(clippy::too_many_arguments)]
fn store_and_place(
    plan: &Plan,
    t: &Target,
    key: &ActionKey,
    tmp: &Path,
    ms: u64,
    storage: &dyn Storage,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<TargetResult, BuildError> {
    match storage.put_blob(tmp) {
        Ok((digest, size)) => {
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
            if let Err(e) = storage.put_action(key, &record) {
                reporter.warn(&format!("cannot store {} in the cache: {e}", t.label()));
            }
        }
        Err(e) => reporter.warn(&format!("cannot store {} in the cache: {e}", t.label())),
    }
    let dest = dest_path(opts, t);
    let parent = dest.parent().unwrap_or(&opts.out_dir);
    ensure_dir(parent)?;
    std::fs::rename(tmp, &dest).map_err(|source| BuildError::Io {
        path: dest.clone(),
        source,
    })?;
    Ok(verified(plan, t, key, &dest, false, ms))
}

#[cfg(unix)]
fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: a restored binary that is not executable still verifies; the user sees mode.
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
    }
}

fn failed(plan: &Plan, t: &Target, key: Option<&ActionKey>, error: String) -> TargetResult {
    TargetResult {
        error: Some(error),
        ..base_result(plan, t, key)
    }
}

/// Inspects the binary at `dest` and checks it against what the target promised.
fn verified(
    plan: &Plan,
    t: &Target,
    key: &ActionKey,
    dest: &Path,
    cached: bool,
    ms: u64,
) -> TargetResult {
    let mut r = base_result(plan, t, Some(key));
    r.cached = cached;
    r.duration_ms = ms;
    r.path = Some(display_path(dest));
    let report = match inspect_file(dest) {
        Ok(rep) => rep,
        Err(e) => {
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
    }
    r.findings = findings;
    r.verify = Some(report);
    r
}
