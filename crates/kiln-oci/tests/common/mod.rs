//! Helpers shared by the integration tests: real tools, a real Go binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails (never skips) when a tool the test needs is missing, saying how to install it.
pub fn require_tool(tool: &str, install: &str) -> PathBuf {
    let candidates = [
        format!("/usr/bin/{tool}"),
        format!("/usr/local/bin/{tool}"),
        format!("/usr/local/go/bin/{tool}"),
    ];
    if let Some(p) = candidates.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return p;
    }
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    match found {
        Some(o) => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        None => panic!(
            "`{tool}` is required by this test but was not found; install it with: {install}"
        ),
    }
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub const GO_PROGRAM: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

func main() {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		fmt.Println("no passwd:", err)
		os.Exit(1)
	}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "nonroot:") {
			fmt.Println("passwd:", s.Text())
		}
	}
	st, err := os.Stat("/etc/ssl/certs/ca-certificates.crt")
	if err != nil || st.Size() == 0 {
		fmt.Println("no ca bundle:", err)
		os.Exit(1)
	}
	fmt.Println("ca-bundle: present")
	fmt.Println("greeting:", os.Getenv("GREETING"))
}
"#;

/// Builds the tiny static test program with the real Go toolchain for `goarch` into `dir/app`.
pub fn go_build(dir: &Path, goarch: &str) -> PathBuf {
    let go = require_tool("go", "the Go toolchain at /usr/local/go (https://go.dev/dl), e.g. `apt-get install -y golang-go`");
    let src = dir.join("src");
    kiln_test_support::GoModule::new("example.com/app")
        .go("1.21")
        .file("main.go", GO_PROGRAM)
        .write_to(&src);
    let out = dir.join(format!("app-{goarch}"));
    let mut cmd = Command::new(go);
    // Go needs a build cache; CI environments without HOME get one inside the test dir.
    if ["GOCACHE", "XDG_CACHE_HOME", "HOME"]
        .iter()
        .all(|v| std::env::var_os(v).is_none())
    {
        cmd.env("GOCACHE", dir.join("gocache"));
    }
    run(cmd
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", goarch)
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .args(["build", "-trimpath", "-ldflags=-s -w", "-o"])
        .arg(&out)
        .arg("."));
    out
}
