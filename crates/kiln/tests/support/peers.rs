//! The pinned interop peers `.ci/tools.sh` builds (the real cosign, a registry with the OCI 1.1
//! referrers API, bazel-remote): where they are, and launchers that fail with the command that
//! installs a missing one instead of skipping.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The directory `.ci/tools.sh` builds into: `$KILN_TOOLS_DIR/bin`, default `~/.cache/kiln-tools/bin`.
pub fn tools_dir() -> PathBuf {
    let base = std::env::var_os("KILN_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
                .join(".cache/kiln-tools")
        });
    base.join("bin")
}

/// The path of a pinned tool; panics with how to build it when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `.ci/tools.sh {name}` from the repository root (it builds the pinned \
         version from the Go module proxy once; set KILN_TOOLS_DIR to use another directory)",
        path.display()
    );
    path
}

/// The real cosign, with offline defaults: no transparency log, no signing config, plain-HTTP
/// loopback registries, and `COSIGN_PASSWORD` empty (kiln test keys have no password).
pub fn cosign(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    Command::new(tool("cosign"))
        .args(args)
        .env("COSIGN_PASSWORD", "")
        .env("COSIGN_YES", "true")
        .env("HOME", home.path())
        .env("SIGSTORE_NO_CACHE", "true")
        .env("TUF_ROOT", home.path().join("tuf"))
        .output()
        .expect("cannot run cosign")
}

/// Like [`cosign`], asserting success.
pub fn cosign_ok(args: &[&str]) -> Output {
    let out = cosign(args);
    assert!(
        out.status.success(),
        "cosign {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A registry with the OCI 1.1 referrers API (go-containerregistry's `pkg/registry`, in memory),
/// on 127.0.0.1; killed on drop.
pub struct ReferrersRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl ReferrersRegistry {
    /// Starts it on a free port (the server binds port 0 and prints the address it got).
    pub fn start() -> Self {
        let mut child = Command::new(tool("referrers-registry"))
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start referrers-registry");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the registry's address");
        let addr = line.trim().to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "referrers-registry printed {addr:?} instead of its address"
        );
        Self { child, addr }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.clone()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a file and returns its path (small convenience for key files).
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}
