//! The pipeline's decisions (hit, miss, grouping, uncacheable, verify, input changes, store
//! failures) with an in-memory store and a scripted executor: no compiler involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_cache::MemoryStore;
use kiln_config::{BuildSettings, TemplateVars};
use kiln_discover::{GoEnv, Package, PackageGraph, Project};
use kiln_exec::{Script, ScriptedExecutor};
use kiln_plan::{Context, Plan, Target};

use crate::{build, BuildOptions, BuildReport, Reporter, TargetResult};

/// A project on disk with `services` main packages sharing `lib`, planned for linux/amd64.
struct Fixture {
    dir: tempfile::TempDir,
    plan: Plan,
}

fn settings() -> BuildSettings {
    BuildSettings {
        env: BTreeMap::new(),
        tags: vec![],
        flags: vec![],
        ldflags: vec![],
        cgo: false,
        trimpath: true,
        strip: true,
        buildvcs: false,
    }
}

impl Fixture {
    fn new(services: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("go.mod", "module example.com/m\n\ngo 1.22\n");
        write("lib/lib.go", "package lib\n");
        let module = kiln_discover::Module {
            path: "example.com/m".into(),
            main: true,
            dir: Some(root.clone()),
            ..Default::default()
        };
        let mut packages = BTreeMap::new();
        packages.insert(
            "example.com/m/lib".to_string(),
            package(
                "example.com/m/lib",
                "lib",
                &root.join("lib"),
                &module,
                vec![],
            ),
        );
        let mut targets = Vec::new();
        for s in services {
            write(&format!("cmd/{s}/main.go"), "package main\n");
            let path = format!("example.com/m/cmd/{s}");
            packages.insert(
                path.clone(),
                package(
                    &path,
                    "main",
                    &root.join("cmd").join(s),
                    &module,
                    vec!["example.com/m/lib".into()],
                ),
            );
            targets.push(Target {
                service: s.to_string(),
                package: path,
                binary: s.to_string(),
                platform: "linux/amd64".parse().unwrap(),
                settings: settings(),
                env: vec![("CGO_ENABLED".into(), "0".into())],
                args: vec!["-trimpath".into(), "-buildvcs=false".into()],
                context: 0,
                problem: None,
            });
        }
        let graph = PackageGraph {
            mains: targets.iter().map(|t| t.package.clone()).collect(),
            unloadable: Default::default(),
            packages,
        };
        let env = GoEnv {
            go: PathBuf::from("go-is-not-run-by-these-tests"),
            version: "go1.26.8".into(),
            goroot: root.join("goroot"),
            gomodcache: root.join("modcache"),
            gomod: Some(root.join("go.mod")),
            gowork: None,
            vars: BTreeMap::from([(
                "GOTOOLDIR".to_string(),
                root.join("tools").display().to_string(),
            )]),
        };
        let project = Project { root, env };
        let plan = Plan {
            project,
            targets,
            contexts: vec![Context {
                request: Default::default(),
                graph,
            }],
            vars: TemplateVars::default(),
            lists_cached: (0, 1),
        };
        Self { dir, plan }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn options(&self) -> BuildOptions {
        BuildOptions {
            out_dir: self.path("dist"),
            jobs: 2,
            use_cache: true,
            key_dir: Some(self.path("keys")),
            ..Default::default()
        }
    }
}

fn package(
    path: &str,
    name: &str,
    dir: &Path,
    module: &kiln_discover::Module,
    deps: Vec<String>,
) -> Package {
    let file = if name == "main" { "main.go" } else { "lib.go" };
    Package {
        import_path: path.into(),
        name: name.into(),
        dir: dir.to_path_buf(),
        standard: false,
        dep_only: name != "main",
        module: Some(module.clone()),
        imports: deps.clone(),
        deps,
        files: vec![file.into()],
        cgo_files: vec![],
        ignored_go_files: vec![],
        cgo: Default::default(),
        error: None,
    }
}

fn executor(services: &[&str], content: &str) -> ScriptedExecutor {
    let e = ScriptedExecutor::new();
    for s in services {
        e.script(
            &format!("example.com/m/cmd/{s}"),
            Script::Write {
                binary: s.to_string(),
                bytes: format!("{content} {s}").into_bytes(),
            },
        );
    }
    e
}

#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);
impl Reporter for Warnings {
    fn warn(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn run(
    f: &Fixture,
    store: &MemoryStore,
    exec: &ScriptedExecutor,
    opts: &BuildOptions,
) -> BuildReport {
    build(&f.plan, store, exec, opts, &Warnings::default()).unwrap()
}

fn cached(r: &BuildReport) -> Vec<bool> {
    r.targets.iter().map(|t: &TargetResult| t.cached).collect()
}

#[test]
fn miss_then_hit_without_running_go() {
    let f = Fixture::new(&["api", "worker"]);
    let store = MemoryStore::new();
    let exec = executor(&["api", "worker"], "v1");
    let r = run(&f, &store, &exec, &f.options());
    assert_eq!(cached(&r), [false, false]);
    assert_eq!(exec.calls().len(), 1, "one build context, one go build");
    assert_eq!(store.action_count(), 2);
    let exec2 = executor(&["api", "worker"], "v1");
    let r = run(&f, &store, &exec2, &f.options());
    assert_eq!(cached(&r), [true, true]);
    assert!(exec2.calls().is_empty(), "a hit must not run go");
    assert_eq!(
        std::fs::read(f.path("dist/api/linux_amd64/api")).unwrap(),
        b"v1 api"
    );
}

#[test]
fn changed_shared_source_rebuilds_every_dependent() {
    let f = Fixture::new(&["api", "worker"]);
    let store = MemoryStore::new();
    run(
        &f,
        &store,
        &executor(&["api", "worker"], "v1"),
        &f.options(),
    );
    std::fs::write(f.path("lib/lib.go"), "package lib // changed\n").unwrap();
    let exec = executor(&["api", "worker"], "v2");
    let r = run(&f, &store, &exec, &f.options());
    assert_eq!(cached(&r), [false, false]);
    assert_eq!(exec.calls().len(), 1);
}

#[test]
fn group_never_runs_one_go_build_per_target() {
    let f = Fixture::new(&["api", "worker"]);
    let exec = executor(&["api", "worker"], "v1");
    let opts = BuildOptions {
        group: crate::GroupMode::Never,
        ..f.options()
    };
    run(&f, &MemoryStore::new(), &exec, &opts);
    assert_eq!(exec.calls().len(), 2);
}

#[test]
fn no_cache_reads_nothing_but_stores() {
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    run(&f, &store, &executor(&["api"], "v1"), &f.options());
    let exec = executor(&["api"], "v1");
    let opts = BuildOptions {
        use_cache: false,
        ..f.options()
    };
    let r = run(&f, &store, &exec, &opts);
    assert_eq!(cached(&r), [false]);
    assert_eq!(exec.calls().len(), 1);
}

#[test]
fn unknown_flag_is_neither_looked_up_nor_stored() {
    let mut f = Fixture::new(&["api"]);
    f.plan.targets[0].args.push("-frobnicate".into());
    let store = MemoryStore::new();
    for _ in 0..2 {
        let exec = executor(&["api"], "v1");
        let r = run(&f, &store, &exec, &f.options());
        assert_eq!(exec.calls().len(), 1, "uncacheable targets always build");
        let note = r.targets[0].not_cached.as_deref().unwrap_or_default();
        assert!(note.contains("-frobnicate"), "{note}");
    }
    assert_eq!(store.action_count(), 0);
}

#[test]
fn verify_cache_rebuilds_hits_and_reports_a_mismatch() {
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    run(&f, &store, &executor(&["api"], "v1"), &f.options());
    let opts = BuildOptions {
        verify_cache: true,
        ..f.options()
    };
    // Same output: verified, still reported as a hit.
    let exec = executor(&["api"], "v1");
    let r = run(&f, &store, &exec, &opts);
    assert_eq!(exec.calls().len(), 1, "verify mode builds hits");
    assert_eq!(r.cache_verified, 1);
    assert!(!r.targets[0]
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("cache verification failed"));
    // Different output for the same key: the key missed an input.
    let exec = executor(&["api"], "v2");
    let r = run(&f, &store, &exec, &opts);
    let err = r.targets[0].error.as_deref().unwrap_or_default();
    assert!(err.contains("cache verification failed"), "{err}");
    assert!(err.contains("key inputs:"), "{err}");
}

#[test]
fn store_failures_are_warnings_and_the_build_lands() {
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    store.fail_writes(true);
    let warnings = Warnings::default();
    let r = build(
        &f.plan,
        &store,
        &executor(&["api"], "v1"),
        &f.options(),
        &warnings,
    )
    .unwrap();
    assert_eq!(r.targets.len(), 1);
    assert!(f.path("dist/api/linux_amd64/api").is_file());
    let w = warnings.0.lock().unwrap();
    assert!(w.iter().any(|m| m.contains("cannot store")), "{w:?}");
}

#[test]
fn compile_failure_is_a_target_result() {
    let f = Fixture::new(&["api"]);
    let exec = ScriptedExecutor::new();
    exec.script("example.com/m/cmd/api", Script::Fail("undefined: x".into()));
    let r = run(&f, &MemoryStore::new(), &exec, &f.options());
    assert_eq!(r.targets[0].error.as_deref(), Some("undefined: x"));
}

#[test]
fn explain_names_the_changed_file() {
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    let opts = BuildOptions {
        explain: true,
        ..f.options()
    };
    run(&f, &store, &executor(&["api"], "v1"), &opts);
    let r = run(&f, &store, &executor(&["api"], "v1"), &opts);
    assert_eq!(
        r.targets[0].explain.as_deref(),
        Some(&["key inputs unchanged".to_string()][..])
    );
    std::fs::write(f.path("lib/lib.go"), "package lib // changed\n").unwrap();
    let r = run(&f, &store, &executor(&["api"], "v2"), &opts);
    let e = r.targets[0].explain.clone().unwrap_or_default();
    assert!(
        e.iter()
            .any(|l| l.contains("package example.com/m/lib: files.lib.go")),
        "{e:?}"
    );
}

#[test]
fn default_pgo_appearing_changes_the_key() {
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    run(&f, &store, &executor(&["api"], "v1"), &f.options());
    std::fs::write(f.path("cmd/api/default.pgo"), "profile").unwrap();
    let exec = executor(&["api"], "v2");
    let r = run(&f, &store, &exec, &f.options());
    assert_eq!(cached(&r), [false]);
}

#[test]
fn source_saved_during_the_build_is_not_stored() {
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    let exec = ScriptedExecutor::new();
    exec.script(
        "example.com/m/cmd/api",
        Script::WriteWhileEditing {
            binary: "api".into(),
            bytes: b"built from the edit".to_vec(),
            file: f.path("lib/lib.go"),
            content: b"package lib // saved during the build\n".to_vec(),
        },
    );
    let warnings = Warnings::default();
    let r = build(&f.plan, &store, &exec, &f.options(), &warnings).unwrap();
    assert_eq!(
        store.action_count(),
        0,
        "a result of changed inputs was stored"
    );
    let note = r.targets[0].not_cached.as_deref().unwrap_or_default();
    assert!(note.contains("changed while go build ran"), "{note}");
    assert_eq!(warnings.0.lock().unwrap().len(), 1, "warned once");
    assert!(
        f.path("dist/api/linux_amd64/api").is_file(),
        "the binary is still placed"
    );
}

#[test]
fn issue_8_a_binary_already_in_place_is_not_written_again() {
    use std::os::unix::fs::MetadataExt;
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    run(&f, &store, &executor(&["api"], "v1"), &f.options());
    let dest = f.path("dist/api/linux_amd64/api");
    let before = std::fs::metadata(&dest).unwrap();
    let r = run(&f, &store, &executor(&["api"], "v1"), &f.options());
    assert_eq!(cached(&r), [true]);
    let after = std::fs::metadata(&dest).unwrap();
    assert_eq!(
        (before.ino(), before.ctime(), before.ctime_nsec()),
        (after.ino(), after.ctime(), after.ctime_nsec()),
        "a hit whose bytes are already in dist must leave the file alone"
    );
}

#[test]
fn issue_8_a_binary_edited_in_dist_is_restored_from_the_cache() {
    let f = Fixture::new(&["api"]);
    let store = MemoryStore::new();
    run(&f, &store, &executor(&["api"], "v1"), &f.options());
    let dest = f.path("dist/api/linux_amd64/api");
    // Same size, other bytes, old mtime: only the content (or ctime) tells them apart.
    std::fs::write(&dest, b"v9 api").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&dest)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let r = run(&f, &store, &executor(&["api"], "v1"), &f.options());
    assert_eq!(cached(&r), [true]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"v1 api");
}

/// Records, in one sequence, each `go build` the executor runs and each target the reporter
/// hears about.
#[derive(Default)]
struct Sequence(Mutex<Vec<String>>);

struct Logged<'a> {
    inner: ScriptedExecutor,
    log: &'a Sequence,
}

impl kiln_exec::Executor for Logged<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn run(
        &self,
        action: &kiln_exec::Action,
        out_dir: &Path,
        parallelism: usize,
    ) -> Result<kiln_exec::Completed, kiln_exec::ExecError> {
        self.log
            .0
            .lock()
            .unwrap()
            .push(format!("run {}", action.packages.join(" ")));
        self.inner.run(action, out_dir, parallelism)
    }
}

impl Reporter for Sequence {
    fn finished(&self, result: &TargetResult) {
        self.0
            .lock()
            .unwrap()
            .push(format!("finished {}", result.service));
    }
}

/// The image pipeline packs a target while others compile, so the build must report each
/// target as soon as it is verified and placed, not once every compile is over.
#[test]
fn issue_12_each_target_is_reported_as_soon_as_it_is_placed() {
    let f = Fixture::new(&["api", "worker"]);
    let store = MemoryStore::new();
    let log = Sequence::default();
    let exec = Logged {
        inner: executor(&["api", "worker"], "v1"),
        log: &log,
    };
    let opts = BuildOptions {
        jobs: 1,
        group: crate::GroupMode::Never,
        ..f.options()
    };
    let r = build(&f.plan, &store, &exec, &opts, &log).unwrap();
    assert_eq!(cached(&r), [false, false]);
    assert_eq!(
        *log.0.lock().unwrap(),
        [
            "run example.com/m/cmd/api",
            "finished api",
            "run example.com/m/cmd/worker",
            "finished worker"
        ]
    );
}
