//! Stopping kiln stops its builds (issue 8, "Stopping"): after SIGTERM, SIGINT or SIGKILL of kiln,
//! its `go build` children must not keep running, and the next run removes the scratch
//! directories they were writing into.
//!
//! The `go` kiln runs is a wrapper (`KILN_GO`) that behaves like the real one for everything but
//! `go build`, where it records its process id and sleeps: a build that would run for a minute.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Repo;

fn real_go() -> PathBuf {
    let out = Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .expect("go env GOROOT");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin/go")
}

/// A `go` that sleeps in `go build` after writing its pid to `pidfile`.
fn slow_go(dir: &Path, pidfile: &Path) -> PathBuf {
    let script = dir.join("slow-go");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = build ]; then\n  echo $$ > {pid}\n  exec sleep 120\nfi\nexec {go} \"$@\"\n",
            pid = pidfile.display(),
            go = real_go().display()
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

fn start(repo: &Repo, go: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--platform", "linux/amd64"])
        .current_dir(repo.path())
        .env("KILN_CACHE_DIR", repo.cache.path())
        .env("KILN_GO", go)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kiln")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only a running or sleeping process counts.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

fn scratch_dirs(repo: &Repo) -> Vec<PathBuf> {
    std::fs::read_dir(repo.path().join("dist"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".kiln-tmp-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn stop_with(signal: &str) {
    let repo = common::shop();
    let tools = tempfile::tempdir().expect("tempdir");
    let pidfile = tools.path().join("go-build.pid");
    let go = slow_go(tools.path(), &pidfile);
    let mut kiln = start(&repo, &go);
    wait_for("go build to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| !s.trim().is_empty())
    });
    let child: u32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    assert!(alive(child), "the go build child should be running");
    assert_eq!(
        scratch_dirs(&repo).len(),
        1,
        "one scratch dir while building"
    );
    let st = Command::new("kill")
        .args([signal, &kiln.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = kiln.wait().expect("wait kiln");
    assert!(
        !status.success(),
        "kiln should not report success after {signal}"
    );
    wait_for(&format!("go build to die after kiln got {signal}"), || {
        !alive(child)
    });

    // The next run (with the real go) removes what the stopped run left and builds normally.
    let out = repo.kiln(&["build", "--platform", "linux/amd64"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        scratch_dirs(&repo).is_empty(),
        "leftover scratch dirs: {:?}",
        scratch_dirs(&repo)
    );
}

#[test]
fn issue_8_sigterm_stops_go_build() {
    stop_with("-TERM");
}

#[test]
fn issue_8_sigint_stops_go_build() {
    stop_with("-INT");
}

#[test]
fn issue_8_sigkill_of_kiln_kills_go_build() {
    stop_with("-KILL");
}
