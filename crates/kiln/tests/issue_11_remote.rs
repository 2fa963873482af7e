//! Issue 11: kiln's action cache shared between machines through a real REAPI v2 server
//! (bazel-remote, built by `.ci/tools.sh bazel-remote`; BuildGrid, `.ci/tools.sh buildgrid`),
//! started on 127.0.0.1 by each test.
//!
//! "Machines" are separate checkouts at different paths with their own HOME, GOCACHE,
//! GOMODCACHE and KILN_CACHE_DIR on one host, sharing one remote. Faults go through a TCP proxy
//! in front of the real server (slow, cut mid-run) or corrupt the server's own storage.

mod common;
mod support;

use common::*;
use support::peers::{BazelRemote, BuildGrid, Fault, FaultProxy, ReapiServer};

/// One machine: its own checkout (a copy of `origin` at another path), kiln cache, HOME and
/// module cache; its own empty Go build cache too when `fresh_gocache` (else the tests' shared
/// one, which keeps the fault tests' local builds quick).
struct Machine {
    repo: Repo,
    env: GoEnv,
}

impl Machine {
    fn new(origin: &Repo, remote: &str) -> Self {
        Self::with_gocache(origin, remote, false)
    }

    fn with_gocache(origin: &Repo, remote: &str, fresh_gocache: bool) -> Self {
        let repo = origin.copy();
        let mut env = GoEnv::new();
        if fresh_gocache {
            env.fresh_gocache();
        }
        env.set("KILN_REMOTE_CACHE", remote);
        Self { repo, env }
    }

    /// `kiln build --json ARGS`, asserting success; returns the report and stderr.
    fn build(&self, args: &[&str]) -> (serde_json::Value, String) {
        let mut all = vec!["build", "--json"];
        all.extend_from_slice(args);
        let out = self.repo.kiln_env(self.repo.path(), &all, &self.env);
        assert!(out.status.success(), "kiln {all:?} failed:\n{}", dump(&out));
        let report = serde_json::from_slice(&out.stdout).expect("kiln --json prints JSON");
        (report, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// sha256 of every target's binary, by label.
fn digests(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<_> = targets(report)
        .iter()
        .map(|t| {
            (
                format!("{} {}", t["service"], t["platform"]),
                t["sha256"].as_str().expect("sha256").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn traffic(report: &serde_json::Value) -> &serde_json::Value {
    let t = &report["remote_cache"];
    assert!(t.is_object(), "no remote_cache in the report: {report:#}");
    t
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v:#}"))
}

/// The binaries on disk have the digests the report gives (restored files are the real thing).
fn assert_binaries_match(m: &Machine, report: &serde_json::Value) {
    for t in targets(report) {
        let path = binary_path(m.repo.path(), t);
        let bytes = std::fs::read(&path).expect("binary");
        assert_eq!(
            format!("sha256:{}", kiln_types::Digest::of_bytes(&bytes).hex()),
            t["sha256"].as_str().expect("sha256"),
            "{}",
            path.display()
        );
    }
}

/// Machine A builds and fills the remote; machine B, elsewhere, restores every binary without
/// running `go build` once; B's next run is all local.
fn two_machines(server: &mut dyn ReapiServer) {
    let url = &server.url();
    let origin = shop();
    let a = Machine::with_gocache(&origin, url, true);
    let (ra, _) = a.build(&[]);
    let ta = traffic(&ra);
    let count = targets(&ra).len() as u64;
    assert!(count >= 2);
    assert_eq!(n(ta, "misses"), count, "{ta:#}");
    assert_eq!(n(ta, "remote_writes"), count, "{ta:#}");
    assert!(
        n(ta, "bytes_up") > 4 << 20,
        "binaries were uploaded: {ta:#}"
    );
    assert!(ta.get("warnings").is_none(), "{ta:#}");

    let b = Machine::with_gocache(&origin, url, true);
    assert_ne!(a.repo.path(), b.repo.path());
    let (rb, stderr) = b.build(&[]);
    let tb = traffic(&rb);
    assert_eq!(rb["go_invocations"], 0, "B compiled something: {rb:#}");
    assert_eq!(n(tb, "remote_hits"), count, "{tb:#}");
    assert_eq!(n(tb, "misses"), 0, "{tb:#}");
    assert_eq!(n(tb, "remote_writes"), 0, "{tb:#}");
    assert!(n(tb, "bytes_down") > 4 << 20, "{tb:#}");
    assert!(targets(&rb).iter().all(|t| t["cached"] == true), "{rb:#}");
    assert_eq!(digests(&ra), digests(&rb));
    assert_binaries_match(&b, &rb);
    assert!(stderr.contains("remote hit(s)"), "{stderr}");

    // B's second run: everything is local now (removed outputs come from the local store).
    std::fs::remove_dir_all(b.repo.path().join("dist")).expect("rm dist");
    let (rb2, _) = b.build(&[]);
    let tb2 = traffic(&rb2);
    assert_eq!(n(tb2, "local_hits"), count, "{tb2:#}");
    assert_eq!(n(tb2, "remote_hits"), 0, "{tb2:#}");
    assert_eq!(rb2["go_invocations"], 0);
    assert_binaries_match(&b, &rb2);
}

/// A read-only machine reads the remote but never writes it: a later machine finds nothing.
fn read_only_writes_nothing(server: &mut dyn ReapiServer) {
    let url = &server.url();
    let origin = shop();
    let a = Machine::new(&origin, url);
    a.repo.write("kiln.toml", "[cache]\nread_only = true\n");
    let (ra, _) = a.build(&[]);
    let ta = traffic(&ra);
    assert_eq!(ta["read_only"], true);
    assert_eq!(n(ta, "remote_writes"), 0, "{ta:#}");
    assert_eq!(n(ta, "bytes_up"), 0, "{ta:#}");

    let b = Machine::new(&origin, url);
    let (rb, _) = b.build(&[]);
    let tb = traffic(&rb);
    assert_eq!(
        n(tb, "remote_hits"),
        0,
        "a read-only build wrote to the remote: {tb:#}"
    );
    assert_eq!(digests(&ra), digests(&rb));
}

/// Fills a remote from a fresh machine, returning the report (the reference digests).
fn fill(origin: &Repo, url: &str) -> serde_json::Value {
    let (r, _) = Machine::new(origin, url).build(&[]);
    assert!(n(traffic(&r), "remote_writes") > 0);
    r
}

fn remote_down_from_the_start(server: &mut dyn ReapiServer) {
    let url = server.url();
    server.stop();
    let origin = shop();
    let m = Machine::new(&origin, &url);
    let (r, stderr) = m.build(&[]);
    let t = traffic(&r);
    assert!(t["disabled"].is_string(), "{t:#}");
    assert_eq!(t["warnings"].as_array().map(Vec::len), Some(1), "{t:#}");
    assert_eq!(stderr.matches("warning:").count(), 1, "{stderr}");
    assert!(targets(&r)
        .iter()
        .all(|t| t["cached"] == false && t["error"].is_null()));
    assert_binaries_match(&m, &r);
}

fn remote_dies_mid_run(server: &mut dyn ReapiServer) {
    let proxy = FaultProxy::start(&server.addr());
    let origin = shop_origin();
    let reference = fill(&origin, &server.url());
    // Enough for the capabilities and the first lookups, then the server "dies" in the middle of
    // the first large download.
    proxy.set(Fault::CutAfter(1 << 20));
    let m = Machine::new(&origin, &proxy.url());
    let (r, _) = m.build(&[]);
    let t = traffic(&r);
    assert!(
        t["warnings"].is_array(),
        "no warning about the remote: {t:#}"
    );
    assert!(n(t, "remote_hits") < targets(&r).len() as u64, "{t:#}");
    assert_eq!(digests(&reference), digests(&r));
    assert_binaries_match(&m, &r);
}

/// The shop fixture (kept in one place so every machine of a test starts from the same tree).
fn shop_origin() -> Repo {
    shop()
}

fn slow_remote_still_serves(server: &mut dyn ReapiServer) {
    let origin = shop_origin();
    let reference = fill(&origin, &server.url());
    let proxy = FaultProxy::start(&server.addr());
    proxy.set(Fault::Slow(std::time::Duration::from_millis(50)));
    let m = Machine::new(&origin, &proxy.url());
    let (r, _) = m.build(&[]);
    let t = traffic(&r);
    assert_eq!(n(t, "remote_hits"), targets(&r).len() as u64, "{t:#}");
    assert_eq!(r["go_invocations"], 0);
    assert_eq!(digests(&reference), digests(&r));
    assert_binaries_match(&m, &r);
}

fn remote_slower_than_the_limit_is_off(server: &mut dyn ReapiServer) {
    let origin = shop_origin();
    let reference = fill(&origin, &server.url());
    let proxy = FaultProxy::start(&server.addr());
    proxy.set(Fault::Slow(std::time::Duration::from_millis(2500)));
    let m = Machine::new(&origin, &proxy.url());
    m.repo.write("kiln.toml", "[cache]\ntimeout_secs = 1\n");
    let (r, _) = m.build(&[]);
    let t = traffic(&r);
    assert!(t["disabled"].is_string(), "{t:#}");
    let w = t["warnings"].to_string();
    assert!(w.contains("timed out"), "{w}");
    assert_eq!(n(t, "remote_hits"), 0, "{t:#}");
    assert_eq!(digests(&reference), digests(&r));
    assert_binaries_match(&m, &r);
}

/// Flips one byte in the middle of every blob the server keeps (sizes unchanged).
fn corrupt_all(files: &[std::path::PathBuf]) {
    assert!(!files.is_empty(), "the server stored no blob");
    for f in files {
        let mut bytes = std::fs::read(f).expect("read blob");
        if bytes.is_empty() {
            continue;
        }
        let i = bytes.len() / 2;
        bytes[i] ^= 0xff;
        std::fs::write(f, bytes).expect("write blob");
    }
}

fn corrupted_blobs_are_misses(server: &mut dyn ReapiServer) {
    let origin = shop_origin();
    let reference = fill(&origin, &server.url());
    corrupt_all(&server.blob_files());
    let m = Machine::new(&origin, &server.url());
    let (r, stderr) = m.build(&[]);
    let t = traffic(&r);
    assert!(t["warnings"].is_array(), "no warning: {t:#}");
    assert!(stderr.contains("warning:"), "{stderr}");
    assert_eq!(digests(&reference), digests(&r));
    assert_binaries_match(&m, &r);
    assert!(
        targets(&r).iter().all(|t| t["cached"] == false),
        "a corrupted blob was restored: {r:#}"
    );
}

fn cache_stats_shows_the_remote(server: &mut dyn ReapiServer) {
    let m = Machine::new(&shop_origin(), &server.url());
    let out = m
        .repo
        .kiln_env(m.repo.path(), &["cache", "stats", "--json"], &m.env);
    assert!(out.status.success(), "{}", dump(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["remote"]["url"], server.url());
    assert_eq!(v["remote"]["reachable"], true, "{v:#}");
    assert_eq!(v["remote"]["capabilities"]["sha256"], true, "{v:#}");
    let text = m.repo.kiln_env(m.repo.path(), &["cache", "stats"], &m.env);
    assert!(
        stdout(&text).contains("reachable; REAPI"),
        "{}",
        dump(&text)
    );
}

/// Each scenario above, once against bazel-remote and once against BuildGrid.
macro_rules! against_both {
    ($($scenario:ident),* $(,)?) => {
        mod issue_11_bazel_remote {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&mut super::BazelRemote::start());
                }
            )*
        }
        mod issue_11_buildgrid {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&mut super::BuildGrid::start());
                }
            )*
        }
    };
}

// Test names: issue_11_bazel_remote::SCENARIO and issue_11_buildgrid::SCENARIO.
against_both!(
    two_machines,
    read_only_writes_nothing,
    remote_down_from_the_start,
    remote_dies_mid_run,
    slow_remote_still_serves,
    remote_slower_than_the_limit_is_off,
    corrupted_blobs_are_misses,
    cache_stats_shows_the_remote,
);
