//! Issue 13, the client side: `kiln build` with `[execute] remote` / `KILN_REMOTE_EXECUTOR` runs
//! its compiles on a real BuildGrid 0.9.1 (PostgreSQL from Debian) through real `kiln worker`
//! processes, and gets the same bytes as a local build.
//!
//! "Machines" are copies of a repo at different paths with their own HOME, GOCACHE, GOMODCACHE
//! and kiln cache, on one host.

mod common;
// The generator the build benchmarks use; its edits are not needed here.
#[allow(dead_code)]
#[path = "../benches/support/monorepo.rs"]
mod monorepo;

/// What the generator returns (the benchmark's result type).
type Res<T> = Result<T, Box<dyn std::error::Error>>;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use kiln_test_support::buildgrid::BuildGridExec;
use kiln_test_support::go::GoModule;
use kiln_test_support::worker::KilnWorker;

/// A `kiln worker` (it binds its Go at /kiln/go, where the client's Commands look for it).
struct Worker;

impl Worker {
    fn start(addr: &str, bot_id: &str) -> KilnWorker {
        Self::start_with(addr, bot_id, &[])
    }

    fn start_with(addr: &str, bot_id: &str, extra: &[&str]) -> KilnWorker {
        KilnWorker::start(Path::new(env!("CARGO_BIN_EXE_kiln")), addr, bot_id, extra)
    }
}

/// A module `example.com/dep` published to a file:// proxy, and a repo whose services use it
/// (so the input root holds module-cache packages), with a module cache filled by `go mod
/// download` in `env`.
fn shop_with_dependency(env: &mut GoEnv) -> Repo {
    // Only `go mod tidy` below reads the proxy.
    let proxy = tempfile::tempdir().expect("tempdir");
    GoModule::new("example.com/dep")
        .file(
            "greeting/greeting.go",
            "package greeting\n\nfunc Word() string { return \"hi from dep\" }\n",
        )
        .publish(proxy.path(), "v1.2.0");
    let repo = shop();
    repo.write(
        "go.mod",
        "module example.com/shop\n\ngo 1.22\n\nrequire example.com/dep v1.2.0\n",
    )
    .write(
        "cmd/tool/main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/dep/greeting\"\n)\n\nfunc main() { fmt.Println(greeting.Word()) }\n",
    );
    env.set("GOPROXY", format!("file://{}", proxy.path().display()))
        .set("GOSUMDB", "off")
        // A writable module cache, so the environment's temporary HOME can be removed.
        .set("GOFLAGS", "-modcacherw");
    env.go(repo.path(), &["mod", "tidy"]);
    env.set("GOFLAGS", "");
    env.set("GOPROXY", "off");
    repo
}

/// The report of a `kiln build --json` that succeeded (else the workers' logs are shown) and
/// whose binaries are `expected`.
fn identical_build(
    out: &std::process::Output,
    expected: &[(String, String)],
    workers: &[&KilnWorker],
) -> serde_json::Value {
    assert!(
        out.status.success(),
        "remote build failed:\n{}\nworkers:\n{}",
        dump(out),
        workers
            .iter()
            .map(|w| w.log())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        binary_digests(&report),
        expected,
        "remote bytes differ from local ones"
    );
    report
}

fn exec_stats(report: &serde_json::Value) -> &serde_json::Value {
    let x = &report["remote_execution"];
    assert!(
        x.is_object(),
        "no remote_execution in the report: {report:#}"
    );
    x
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v:#}"))
}

/// A machine: a copy of `origin` at another path, with its own caches and the engine set.
fn machine(origin: &Repo, base: &GoEnv, engine: &str) -> (Repo, GoEnv) {
    let repo = origin.copy();
    // A new HOME and module cache; GOCACHE stays the tests' shared one, which only a fallback to
    // local execution would use (and the tests count those).
    let mut env = GoEnv::new();
    env.set("KILN_REMOTE_EXECUTOR", engine);
    // The module cache is a copy of the origin's: a machine that built before has it.
    if let Some(m) = base.get("GOMODCACHE").filter(|m| Path::new(m).is_dir()) {
        let mine = PathBuf::from(env.get("GOMODCACHE").expect("GoEnv sets GOMODCACHE"));
        std::fs::create_dir_all(&mine).expect("mkdir GOMODCACHE");
        let st = Command::new("cp")
            .arg("-a")
            .arg(Path::new(m).join("."))
            .arg(&mine)
            .status()
            .expect("cp");
        assert!(st.success());
        // Writable, like the origin's, so the temporary HOME it lives in can be removed.
        let st = Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&mine)
            .status()
            .expect("chmod");
        assert!(st.success());
    }
    (repo, env)
}

/// The benchmark's synthetic monorepo with 20 services: 40 targets on two platforms.
fn monorepo_20() -> Repo {
    let repo = Repo::new();
    let services: Vec<String> = (0..20).map(|i| format!("svc{i:02}")).collect();
    monorepo::generate(repo.path(), &services).expect("generate the monorepo");
    repo
}

const BOTH: &[&str] = &["--platform", "linux/amd64,linux/arm64"];

/// Runs `kiln build --json` with `BOTH` platforms on `repo` in `env`, in a thread.
fn build_in_background(
    repo: &Repo,
    env: GoEnv,
) -> std::thread::JoinHandle<(std::process::Output, GoEnv)> {
    let mut cmd = env.command(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(["build", "--json"])
        .args(BOTH)
        .current_dir(repo.path())
        .env("KILN_CACHE_DIR", repo.cache.path())
        .env("NO_COLOR", "1");
    std::thread::spawn(move || (cmd.output().expect("run kiln"), env))
}

/// The tests that run BuildGrid, in one module so `.ci/run` can run them beside the rest
/// (`--skip buildgrid::` there, this file alone here).
mod buildgrid {
    use super::*;

    #[test]
    fn issue_13_remote_build_is_byte_identical_and_a_second_machine_gets_it_from_the_engine() {
        let mut base = GoEnv::new();
        let origin = shop_with_dependency(&mut base);
        // The reference: a local build, no engine.
        let local = origin.build_json_env(
            origin.path(),
            &["--platform", "linux/amd64,linux/arm64"],
            &base,
        );
        let expected = binary_digests(&local);
        assert_eq!(expected.len(), 6, "{local:#}");

        let bg = BuildGridExec::start();
        let engine = format!("grpc://{}", bg.addr);
        let w1 = Worker::start(&bg.addr, "bot-1");
        let w2 = Worker::start(&bg.addr, "bot-2");
        // A third worker claims another Go version: the engine must never pick it.
        let wrong = Worker::start_with(
            &bg.addr,
            "bot-other-go",
            &["--platform", "kiln-go-version=go1.0"],
        );
        wrong.wait_for("session");

        let (a, env_a) = machine(&origin, &base, &engine);
        let out = a.kiln_env(
            a.path(),
            &["build", "--json", "--platform", "linux/amd64,linux/arm64"],
            &env_a,
        );
        let report = identical_build(&out, &expected, &[&w1, &w2]);
        let x = exec_stats(&report);
        assert!(n(x, "remote") >= 1, "{x:#}\n{}", dump(&out));
        assert_eq!(n(x, "local"), 0, "{x:#}\n{}", dump(&out));
        assert_eq!(n(x, "remote_cached"), 0, "{x:#}");
        assert!(n(x, "uploaded_blobs") > 0, "{x:#}");

        // Another machine: other path, HOME, caches. Its kiln cache is empty, so it asks the engine,
        // which answers every action from its action cache: nothing runs, nothing is uploaded but
        // what the engine lacks (nothing).
        let (b, env_b) = machine(&origin, &base, &engine);
        assert_ne!(a.path(), b.path());
        let out = b.kiln_env(
            b.path(),
            &["build", "--json", "--platform", "linux/amd64,linux/arm64"],
            &env_b,
        );
        assert!(
            out.status.success(),
            "second machine failed:\n{}",
            dump(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(binary_digests(&report), expected);
        let y = exec_stats(&report);
        assert_eq!(n(y, "remote"), n(x, "remote"), "{y:#}");
        assert_eq!(n(y, "remote_cached"), n(y, "remote"), "{y:#}");
        assert_eq!(n(y, "uploaded_blobs"), 0, "{y:#}");

        // `kiln image` shares the build stage: a third machine packs images of binaries the
        // engine answers from its action cache.
        let (c, env_c) = machine(&origin, &base, &engine);
        let tar = c.path().join("images.tar");
        let out = c.kiln_env(
            c.path(),
            &[
                "image",
                "--json",
                "--platform",
                "linux/amd64,linux/arm64",
                "--tarball",
                tar.to_str().expect("utf-8 path"),
            ],
            &env_c,
        );
        assert!(out.status.success(), "kiln image failed:\n{}", dump(&out));
        let image: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let z = &image["build"]["remote_execution"];
        assert!(n(z, "remote_cached") >= 1, "{image:#}");
        assert_eq!(n(z, "local"), 0, "{z:#}");
        assert!(tar.is_file());

        // The worker with another Go was never handed anything.
        assert!(
            !wrong.log().contains("running action"),
            "a worker with another Go ran an action:\n{}",
            wrong.log()
        );
    }

    #[test]
    fn issue_13_forty_targets_build_remotely_identical_to_local_while_a_worker_is_killed() {
        let base = GoEnv::new();
        let origin = monorepo_20();
        let local = origin.build_json_env(origin.path(), BOTH, &base);
        let expected = binary_digests(&local);
        assert_eq!(expected.len(), 40, "{local:#}");

        let bg = BuildGridExec::start();
        let engine = format!("grpc://{}", bg.addr);
        let mut w1 = Worker::start(&bg.addr, "bot-doomed");
        let w2 = Worker::start(&bg.addr, "bot-steady");
        w1.wait_for("session");
        w2.wait_for("session");
        let (m, env) = machine(&origin, &base, &engine);
        // One action per platform, as kiln groups them: both workers get one.
        let mut cmd = env.command(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(["build", "--json"])
            .args(BOTH)
            .current_dir(m.path())
            .env("KILN_CACHE_DIR", m.cache.path())
            .env("NO_COLOR", "1");
        let running = std::thread::spawn(move || cmd.output().expect("run kiln"));
        // Kill the first worker in the middle of an action; the engine hands it to the other.
        w1.wait_for("running action");
        w1.kill();
        let out = running.join().expect("build thread");
        let report = identical_build(&out, &expected, &[&w1, &w2]);
        let x = exec_stats(&report);
        assert_eq!(
            n(x, "remote") as usize,
            report["go_invocations"].as_u64().unwrap_or(0) as usize,
            "{x:#}\n{}",
            dump(&out)
        );
        assert_eq!(n(x, "local"), 0, "{x:#}\n{}", dump(&out));
        assert!(
            w2.log().contains("running action"),
            "the steady worker ran nothing:\n{}",
            w2.log()
        );
    }

    #[test]
    fn issue_13_the_engine_restarting_mid_build_loses_no_target() {
        let mut base = GoEnv::new();
        let origin = shop_with_dependency(&mut base);
        let local = origin.build_json_env(origin.path(), BOTH, &base);
        let expected = binary_digests(&local);

        let mut bg = BuildGridExec::start();
        let engine = format!("grpc://{}", bg.addr);
        let w = Worker::start(&bg.addr, "bot-through-restart");
        w.wait_for("session");
        let (m, env) = machine(&origin, &base, &engine);
        let running = build_in_background(&m, env);
        w.wait_for("running action");
        bg.restart();
        let (out, _env) = running.join().expect("build thread");
        assert!(
            out.status.success(),
            "build failed across the restart:\n{}\nworker:\n{}\nbgd:\n{}",
            dump(&out),
            w.log(),
            bg.log()
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(binary_digests(&report), expected);
        let x = exec_stats(&report);
        assert_eq!(
            n(x, "local"),
            0,
            "the client fell back instead of waiting for the engine: {x:#}\n{}",
            dump(&out)
        );
        assert_eq!(n(x, "remote"), 2, "{x:#}");
    }

    #[test]
    fn issue_13_an_engine_that_is_down_costs_one_warning_and_builds_here() {
        let mut base = GoEnv::new();
        let origin = shop_with_dependency(&mut base);
        let local = origin.build_json_env(origin.path(), BOTH, &base);
        let expected = binary_digests(&local);
        // Nothing listens there.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("grpc://{}", l.local_addr().expect("addr"))
        };
        let (m, env) = machine(&origin, &base, &dead);
        let out = m.kiln_env(
            m.path(),
            &[
                "build",
                "--json",
                "--group",
                "never",
                "-j",
                "2",
                "--platform",
                "linux/amd64,linux/arm64",
            ],
            &env,
        );
        assert!(
            out.status.success(),
            "fallback build failed:\n{}",
            dump(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(binary_digests(&report), expected);
        let x = exec_stats(&report);
        assert_eq!(n(x, "local"), 6, "{x:#}");
        assert_eq!(n(x, "remote"), 0, "{x:#}");
        assert!(x["disabled"].is_string(), "{x:#}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("remote execution on").count(),
            1,
            "one warning expected:\n{stderr}"
        );
        assert!(stderr.contains("fallback = \"fail\""), "{stderr}");

        // With fallback = "fail", the targets fail, with a hint, and nothing is built here.
        m.write("kiln.toml", "[execute]\nfallback = \"fail\"\n");
        let out = m.kiln_env(
            m.path(),
            &["build", "--no-cache", "--platform", "linux/amd64"],
            &env,
        );
        assert!(!out.status.success(), "{}", dump(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("remote execution of"), "{stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }

    #[test]
    fn issue_13_a_compile_error_on_the_engine_is_the_target_s_error() {
        let mut base = GoEnv::new();
        let origin = shop_with_dependency(&mut base);
        origin.write(
            "cmd/tool/main.go",
            "package main\n\nfunc main() { undefinedThing() }\n",
        );
        let bg = BuildGridExec::start();
        let engine = format!("grpc://{}", bg.addr);
        let _w = Worker::start(&bg.addr, "bot-errors");
        let (m, env) = machine(&origin, &base, &engine);
        let out = m.kiln_env(
            m.path(),
            &["build", "--json", "--platform", "linux/amd64"],
            &env,
        );
        assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let tool = target(&report, "tool", "linux/amd64");
        let err = tool["error"].as_str().unwrap_or_default();
        assert!(err.contains("undefined: undefinedThing"), "{tool:#}");
        // The healthy services still land, built by the engine.
        for svc in ["api", "worker"] {
            assert!(
                target(&report, svc, "linux/amd64")["sha256"].is_string(),
                "{report:#}"
            );
        }
        let x = exec_stats(&report);
        assert_eq!(n(x, "local"), 0, "{x:#}");
    }

    #[test]
    fn issue_13_interrupting_kiln_cancels_its_operations_on_the_engine() {
        let origin = shop();
        let base = GoEnv::new();
        let bg = BuildGridExec::start();
        let engine = format!("grpc://{}", bg.addr);
        // One worker: one action runs (a cold standard library takes a while), the other waits.
        let w = Worker::start(&bg.addr, "bot-interrupted");
        w.wait_for("session");
        let (m, env) = machine(&origin, &base, &engine);
        let mut kiln = env
            .command(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", "-j", "2", "--platform", "linux/amd64,linux/arm64"])
            .current_dir(m.path())
            .env("KILN_CACHE_DIR", m.cache.path())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kiln");
        w.wait_for("running action");
        let st = Command::new("kill")
            .args(["-INT", &kiln.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        let status = kiln.wait().expect("wait for kiln");
        assert_eq!(status.code(), Some(130), "kiln's interrupted exit code");
        // kiln cancelled both operations before it exited. The waiting one is never handed to the
        // worker: once the running one is over, the worker stays idle (without the cancel it would
        // take the second action at once).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !(w.log().contains("exit code")
            || w.log().contains("cancel")
            || w.log().contains("failed"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the first action never ended:\n{}",
                w.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        std::thread::sleep(std::time::Duration::from_secs(10));
        assert_eq!(
            w.log().matches("running action").count(),
            1,
            "the worker ran an action of an interrupted kiln:\n{}\nbgd:\n{}",
            w.log(),
            bg.log()
        );
    }

    #[test]
    fn issue_13_workspaces_and_vendored_modules_build_remotely_identical_to_local() {
        let base = GoEnv::new();
        let origin = Repo::new();
        origin
            .write("go.work", "go 1.22\n\nuse (\n\t./svc-a\n\t./lib\n)\n")
            .write("lib/go.mod", "module example.com/lib\n\ngo 1.22\n")
            .write(
                "lib/lib.go",
                "package lib\n\nfunc Name() string { return \"lib\" }\n",
            )
            .write(
                "svc-a/go.mod",
                "module example.com/a\n\ngo 1.22\n\nrequire example.com/lib v0.0.0\n",
            )
            .write(
                "svc-a/main.go",
                "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(\"a\", lib.Name()) }\n",
            );
        let args = ["--platform", "linux/amd64", "./svc-a/..."];
        let local = origin.build_json_env(origin.path(), &args, &base);
        let bg = BuildGridExec::start();
        let _w = Worker::start(&bg.addr, "bot-workspace");
        let (m, env) = machine(&origin, &base, &format!("grpc://{}", bg.addr));
        let remote = m.build_json_env(m.path(), &args, &env);
        assert_eq!(binary_digests(&remote), binary_digests(&local));
        let x = exec_stats(&remote);
        assert_eq!((n(x, "remote"), n(x, "local")), (1, 0), "{x:#}");

        // A module with its dependencies vendored: go reads vendor/ (by default, as go.mod says
        // go 1.22 and vendor/modules.txt exists), and the worker gets exactly that.
        let mut venv = GoEnv::new();
        let vendored = shop_with_dependency(&mut venv);
        venv.go(vendored.path(), &["mod", "vendor"]);
        assert!(vendored.path().join("vendor/modules.txt").is_file());
        let args = ["--platform", "linux/arm64"];
        let local = vendored.build_json_env(vendored.path(), &args, &venv);
        // An empty module cache: only vendor/ can provide the dependency.
        let (m, env) = machine(&vendored, &GoEnv::new(), &format!("grpc://{}", bg.addr));
        let remote = m.build_json_env(m.path(), &args, &env);
        assert_eq!(binary_digests(&remote), binary_digests(&local));
        let x = exec_stats(&remote);
        assert_eq!((n(x, "remote"), n(x, "local")), (1, 0), "{x:#}");
    }
}
