//! Tests with the real bubblewrap.

use super::*;
use std::collections::BTreeSet;
use std::time::Duration;

fn sandbox() -> Sandbox {
    match Sandbox::locate() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn sh(script: &str) -> SandboxCommand {
    SandboxCommand::new(["/bin/sh", "-c", script]).env("PATH", "/usr/bin:/bin")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exit_code_stdout_and_stderr_are_captured() {
    let out = sandbox()
        .run(&sh("echo hello; echo oops >&2; exit 7"))
        .unwrap();
    assert_eq!(out.exit, Exit::Code(7));
    assert_eq!(text(&out.stdout), "hello\n");
    assert_eq!(text(&out.stderr), "oops\n");
    assert!(!out.success());
}

#[test]
fn command_sees_only_its_inputs() {
    let outer = tempfile::tempdir().unwrap();
    let input = outer.path().join("input");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("in.txt"), "data").unwrap();
    let secret = outer.path().join("secret.txt");
    std::fs::write(&secret, "host secret").unwrap();

    let script = format!(
        "ls -A /; echo ---; ls -A /input; echo ---; cat {} || echo no-secret; ls /root /home /etc 2>/dev/null | wc -l",
        secret.display()
    );
    let out = sandbox()
        .run(&sh(&script).input(&input, "/input", Access::ReadOnly))
        .unwrap();
    assert!(out.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let parts: Vec<&str> = stdout.split("---\n").collect();
    let root: BTreeSet<&str> = parts[0].lines().collect();
    let allowed: BTreeSet<&str> = [
        "bin", "dev", "lib", "lib32", "lib64", "proc", "sbin", "tmp", "usr", "input",
    ]
    .into_iter()
    .collect();
    assert!(
        root.is_subset(&allowed),
        "unexpected entries in /: {root:?}"
    );
    assert!(root.contains("input") && root.contains("usr"));
    assert_eq!(parts[1].trim(), "in.txt");
    assert!(
        parts[2].contains("no-secret"),
        "host file was visible: {stdout}"
    );
    assert_eq!(parts[2].lines().last(), Some("0"));
}

#[test]
fn read_only_input_cannot_be_written_and_writable_input_can() {
    let dir = tempfile::tempdir().unwrap();
    let ro = sandbox()
        .run(&sh("echo x > /input/new.txt").input(dir.path(), "/input", Access::ReadOnly))
        .unwrap();
    assert!(!ro.success());
    assert!(!dir.path().join("new.txt").exists());

    let rw = sandbox()
        .run(&sh("echo x > /input/new.txt").input(dir.path(), "/input", Access::Writable))
        .unwrap();
    assert!(rw.success(), "{}", text(&rw.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "x\n"
    );
}

#[test]
fn extra_read_only_bind_is_visible() {
    let tool = tempfile::tempdir().unwrap();
    std::fs::write(tool.path().join("VERSION"), "go1.99").unwrap();
    let out = sandbox()
        .run(&sh("cat /opt/go/VERSION; echo y > /opt/go/x").ro_bind(tool.path(), "/opt/go"))
        .unwrap();
    assert_eq!(text(&out.stdout), "go1.99");
    assert!(!out.success(), "the bind must be read-only");
}

#[test]
fn network_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("echo hi > /dev/tcp/127.0.0.1/{port} && echo connected");
    // The same connection from outside the sandbox works, so a failure inside is the sandbox's.
    let outside = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(text(&outside.stdout), "connected\n");
    let inside = sandbox()
        .run(&SandboxCommand::new(["/bin/bash", "-c", &script]))
        .unwrap();
    assert!(!inside.success());
    assert!(!text(&inside.stdout).contains("connected"));
}

#[test]
fn environment_is_exactly_what_was_given() {
    let out = sandbox()
        .run(
            &SandboxCommand::new(["/usr/bin/env"])
                .env("A", "1")
                .env("GOFLAGS", "-trimpath"),
        )
        .unwrap();
    assert!(out.success(), "{}", text(&out.stderr));
    let vars: BTreeSet<String> = text(&out.stdout).lines().map(str::to_string).collect();
    // PWD is bwrap's: it always sets it to the working directory after --chdir.
    let want: BTreeSet<String> = ["A=1", "GOFLAGS=-trimpath", "PWD=/"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(vars, want);
}

#[test]
fn timeout_kills_the_whole_sandbox() {
    let out = sandbox()
        .run(&sh("sleep 1000 & sleep 1000; echo never").timeout(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
    assert!(!text(&out.stdout).contains("never"));
}

#[test]
fn cancel_token_kills_the_whole_sandbox() {
    let token = CancelToken::new();
    let canceller = token.clone();
    // Cancelled from another thread once the command has started (it says so on a file).
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let watch = started.clone();
    let t = std::thread::spawn(move || {
        while !watch.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        canceller.cancel();
    });
    let out = sandbox()
        .run(
            &sh("touch /input/started; sleep 1000 & sleep 1000; echo never")
                .input(dir.path(), "/input", Access::Writable)
                .cancel_token(token),
        )
        .unwrap();
    t.join().unwrap();
    // Returning at all means the background sleep, which holds stdout, died too.
    assert_eq!(out.exit, Exit::Cancelled);
    assert!(!text(&out.stdout).contains("never"));
}

#[test]
fn a_token_cancelled_before_the_run_stops_it_at_once() {
    let token = CancelToken::new();
    token.cancel();
    let out = sandbox()
        .run(&sh("sleep 1000; echo never").cancel_token(token))
        .unwrap();
    assert_eq!(out.exit, Exit::Cancelled);
    assert!(!text(&out.stdout).contains("never"));
}

#[test]
fn file_size_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        file_size_bytes: Some(1 << 20),
        ..Limits::default()
    };
    let out = sandbox()
        .run(
            &sh("head -c 3000000 /dev/zero > /input/big")
                .input(dir.path(), "/input", Access::Writable)
                .limits(limits),
        )
        .unwrap();
    assert!(!out.success());
    let len = std::fs::metadata(dir.path().join("big")).unwrap().len();
    assert!(len <= 1 << 20, "file grew to {len} bytes");
}

#[test]
fn memory_limit_is_enforced() {
    let limits = Limits {
        address_space_bytes: Some(64 << 20),
        ..Limits::default()
    };
    let grow = |n: usize| {
        sh(&format!(
            "x=$(head -c {n} /dev/zero | tr '\\0' a); echo ${{#x}}"
        ))
        .limits(limits)
    };
    // A small allocation under the same limit works: the limit does not just break everything.
    let small = sandbox().run(&grow(1000)).unwrap();
    assert!(small.success(), "{}", text(&small.stderr));
    assert_eq!(text(&small.stdout), "1000\n");
    let big = sandbox().run(&grow(200_000_000)).unwrap();
    assert_ne!(text(&big.stdout), "200000000\n");
    assert!(!big.success());
}

#[test]
fn output_is_capped() {
    let out = sandbox()
        .run(&sh("head -c 100000 /dev/zero").output_cap(1000))
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout_truncated);
    assert!(!out.stderr_truncated);
}

#[test]
fn missing_input_and_relative_paths_are_errors() {
    let err = sandbox()
        .run(&sh("true").input("/nonexistent/kiln-sandbox", "/input", Access::ReadOnly))
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = sandbox()
        .run(&sh("true").ro_bind("/usr", "relative"))
        .unwrap_err();
    assert!(err.to_string().contains("not absolute"), "{err}");
    assert!(matches!(
        sandbox().run(&SandboxCommand::new(Vec::<String>::new())),
        Err(SandboxError::EmptyCommand)
    ));
}

#[test]
fn missing_bwrap_error_says_how_to_install() {
    assert!(SandboxError::BwrapMissing
        .to_string()
        .contains("apt-get install -y bubblewrap"));
}
