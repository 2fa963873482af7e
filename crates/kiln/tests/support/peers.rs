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
    run_cosign("cosign", args)
}

/// Like [`cosign`], asserting success.
pub fn cosign_ok(args: &[&str]) -> Output {
    ok("cosign", cosign(args), args)
}

/// The real cosign 2 (`.ci/tools.sh cosign2`), with the same defaults as [`cosign`].
pub fn cosign2(args: &[&str]) -> Output {
    run_cosign("cosign2", args)
}

/// Like [`cosign2`], asserting success.
pub fn cosign2_ok(args: &[&str]) -> Output {
    ok("cosign2", cosign2(args), args)
}

fn run_cosign(tool_name: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    Command::new(tool(tool_name))
        .args(args)
        .env("COSIGN_PASSWORD", "")
        .env("COSIGN_YES", "true")
        .env("HOME", home.path())
        .env("SIGSTORE_NO_CACHE", "true")
        .env("TUF_ROOT", home.path().join("tuf"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool_name}: {e}"))
}

fn ok(tool_name: &str, out: Output, args: &[&str]) -> Output {
    assert!(
        out.status.success(),
        "{tool_name} {args:?} failed:\n{}\n{}",
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

/// A free TCP port on 127.0.0.1 (bound, then released: a server started right after gets it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `addr`, or panics with `what` after 60 s.
pub fn wait_listening(addr: &str, what: &str, child: &mut Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on {addr}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {addr} within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// bazel-remote (REAPI v2 over gRPC) on 127.0.0.1, storing blobs uncompressed in a temporary
/// directory (so a test can corrupt one); killed on drop.
pub struct BazelRemote {
    child: Option<Child>,
    /// The cache directory.
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of the gRPC listener.
    pub addr: String,
}

impl BazelRemote {
    /// Starts it on free ports and waits until it listens.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut s = Self {
            child: None,
            dir,
            addr,
        };
        s.restart();
        s
    }

    /// (Re)starts the server on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        let mut child = Command::new(tool("bazel-remote"))
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--max_size", "1", "--storage_mode", "uncompressed"])
            .args(["--grpc_address", &self.addr])
            .args(["--http_address", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start bazel-remote");
        wait_listening(&self.addr, "bazel-remote", &mut child);
        self.child = Some(child);
    }

    /// `grpc://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    /// Kills the server (the directory stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every CAS blob file on disk.
    pub fn cas_files(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("cas.v2"), &mut out);
        out
    }
}

impl Drop for BazelRemote {
    fn drop(&mut self) {
        self.stop();
    }
}

// Each test binary compiles this file; only some use the proxy.
#[allow(unused_imports)]
pub use kiln_test_support::fault::{Fault, FaultProxy};

/// What the REAPI tests need of a server, so the same tests run against each.
pub trait ReapiServer {
    /// `127.0.0.1:PORT` of its gRPC listener.
    fn addr(&self) -> String;
    /// Kills it (its storage stays).
    fn stop(&mut self);
    /// Every CAS blob file it keeps on disk.
    fn blob_files(&self) -> Vec<PathBuf>;
    /// `grpc://127.0.0.1:PORT`.
    fn url(&self) -> String {
        format!("grpc://{}", self.addr())
    }
}

impl ReapiServer for BazelRemote {
    fn addr(&self) -> String {
        self.addr.clone()
    }
    fn stop(&mut self) {
        BazelRemote::stop(self);
    }
    fn blob_files(&self) -> Vec<PathBuf> {
        self.cas_files()
    }
}

fn files_under(d: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// BuildGrid (`bgd server start`) on 127.0.0.1 with a cache-only configuration: a disk storage in
/// a temporary directory (so a test can corrupt a blob), an LRU action cache, and the ActionCache,
/// CAS and ByteStream services on the default instance; killed on drop.
pub struct BuildGrid {
    child: Option<Child>,
    /// Configuration and storage.
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl BuildGrid {
    /// Starts it on a free port and waits until it listens (BuildGrid takes a few seconds).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let cas = dir.path().join("cas");
        std::fs::create_dir_all(&cas).expect("mkdir cas");
        let config = format!(
            "server:\n  - !channel\n    address: \"{addr}\"\n    insecure-mode: true\n\
             storages:\n  - !disk-storage &main-storage\n    path: {cas}\n\
             caches:\n  - !lru-action-cache &main-action\n    storage: *main-storage\n    max-cached-refs: 10000\n    allow-updates: true\n    cache-failed-actions: true\n\
             instances:\n  - name: ''\n    services:\n      - !action-cache\n        cache: *main-action\n      - !cas\n        storage: *main-storage\n      - !bytestream\n        storage: *main-storage\n",
            cas = cas.display()
        );
        let cfg = write(dir.path(), "buildgrid.yml", config.as_bytes());
        let log = std::fs::File::create(dir.path().join("bgd.log")).expect("log");
        let mut child = Command::new(tool("bgd"))
            .args(["server", "start"])
            .arg(&cfg)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start bgd");
        wait_listening(&addr, "BuildGrid (bgd)", &mut child);
        Self {
            child: Some(child),
            dir,
            addr,
        }
    }
}

impl ReapiServer for BuildGrid {
    fn addr(&self) -> String {
        self.addr.clone()
    }
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        files_under(&self.dir.path().join("cas"), &mut out);
        out
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        self.stop();
    }
}
