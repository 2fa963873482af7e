//! Issue 11: kiln's action cache shared between machines through a real REAPI v2 server
//! (bazel-remote, built by `.ci/tools.sh bazel-remote`; BuildGrid, `.ci/tools.sh buildgrid`),
//! started on 127.0.0.1 by each test.
//!
//! "Machines" are separate checkouts at different paths with their own HOME, GOCACHE,
//! GOMODCACHE and KILN_CACHE_DIR on one host, sharing one remote. Faults go through a TCP proxy
//! in front of the real server (slow, cut mid-run) or corrupt the server's own storage.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use support::peers::{BazelRemote, BuildGrid, Fault, FaultProxy, ReapiServer};

/// kiln's bucket of go's package cache (`kiln gocacheprog`), inside a kiln cache directory.
const GO_PACKAGES_BUCKET: &str = "go-packages-v1";

/// A go package cache holding every package the shop's services need, built once per test
/// process through `kiln gocacheprog` without a remote. Machines of the tests about kiln's own
/// action cache start from a copy, so they do not each compile the standard library; the
/// package-level tests use cold machines.
fn warm_packages() -> &'static Path {
    static WARM: OnceLock<(Repo, PathBuf)> = OnceLock::new();
    let (_, dir) = WARM.get_or_init(|| {
        let repo = shop_with_solo();
        let mut env = GoEnv::new();
        env.fresh_gocache().set(
            "GOCACHEPROG",
            format!(
                "{} gocacheprog --cache-dir {}",
                env!("CARGO_BIN_EXE_kiln"),
                repo.cache.path().display()
            ),
        );
        let out = repo.kiln_env(repo.path(), &["build"], &env);
        assert!(
            out.status.success(),
            "warming go's packages: {}",
            dump(&out)
        );
        let dir = repo.cache.path().join(GO_PACKAGES_BUCKET);
        assert!(
            dir.is_dir(),
            "no {GO_PACKAGES_BUCKET} in {}",
            repo.cache.path().display()
        );
        (repo, dir)
    });
    dir
}

/// One machine: its own checkout (a copy of `origin` at another path), kiln cache, HOME and
/// module cache. A warm machine's go package cache starts as a copy of [`warm_packages`]; a cold
/// one has empty caches, go's included.
struct Machine {
    repo: Repo,
    env: GoEnv,
}

impl Machine {
    /// A machine whose go package cache is warm (its kiln action cache is empty).
    fn new(origin: &Repo, remote: &str) -> Self {
        let m = Self::cold(origin, remote);
        let st = std::process::Command::new("cp")
            .arg("-al")
            .arg(warm_packages())
            .arg(m.repo.cache.path().join(GO_PACKAGES_BUCKET))
            .status()
            .expect("cp");
        assert!(st.success(), "cp -al of the warm go package cache failed");
        m
    }

    /// A machine with every cache empty.
    fn cold(origin: &Repo, remote: &str) -> Self {
        let repo = origin.copy();
        let mut env = GoEnv::new();
        env.fresh_gocache().set("KILN_REMOTE_CACHE", remote);
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
    let a = Machine::new(&origin, url);
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

    let b = Machine::cold(&origin, url);
    assert_ne!(a.repo.path(), b.repo.path());
    let (rb, stderr) = b.build(&[]);
    let tb = traffic(&rb);
    assert_eq!(rb["go_invocations"], 0, "B compiled something: {rb:#}");
    assert_eq!(n(tb, "remote_hits"), count, "{tb:#}");
    assert_eq!(n(tb, "misses"), 0, "{tb:#}");
    assert_eq!(n(tb, "remote_writes"), 0, "{tb:#}");
    assert!(n(tb, "bytes_down") > 4 << 20, "{tb:#}");
    assert!(targets(&rb).iter().all(|t| t["cached"] == true), "{rb:#}");
    assert_eq!(binary_digests(&ra), binary_digests(&rb));
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
    assert_eq!(binary_digests(&ra), binary_digests(&rb));
}

/// Fills a remote with kiln's entries from a fresh machine (warm go packages, so it uploads none
/// of those), returning the report (the reference digests).
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
    assert_eq!(binary_digests(&reference), binary_digests(&r));
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
    assert_eq!(binary_digests(&reference), binary_digests(&r));
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
    assert_eq!(binary_digests(&reference), binary_digests(&r));
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
    let origin = small_shop();
    // A binary over gRPC's 4 MiB message limit, so a corrupted ByteStream download is met too.
    let payload: String = (0..5usize << 20)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    origin.write("cmd/big/payload.txt", &payload).write(
        "cmd/big/main.go",
        "package main\n\nimport (\n\t_ \"embed\"\n\t\"fmt\"\n)\n\n//go:embed payload.txt\nvar payload string\n\nfunc main() { fmt.Println(len(payload)) }\n",
    );
    // Cold machines: go's packages go through the remote too.
    let (reference, _) = Machine::cold(&origin, &server.url()).build(&[]);
    assert!(n(go_packages(&reference), "uploads") > 0);
    corrupt_all(&server.blob_files());
    let m = Machine::cold(&origin, &server.url());
    let (r, stderr) = m.build(&[]);
    let t = traffic(&r);
    assert!(t["warnings"].is_array(), "no warning: {t:#}");
    assert!(stderr.contains("warning:"), "{stderr}");
    assert_eq!(binary_digests(&reference), binary_digests(&r));
    assert_binaries_match(&m, &r);
    assert!(
        targets(&r).iter().all(|t| t["cached"] == false),
        "a corrupted blob was restored: {r:#}"
    );
    // go's packages too: none is served; a damaged output is dropped and counted, and a server
    // that keeps its action results among the damaged blobs (BuildGrid) fails the look-ups,
    // which count as remote errors.
    let g = go_packages(&r);
    assert!(n(g, "corrupt") + n(g, "remote_errors") > 0, "{g:#}");
    assert_eq!(n(g, "remote_hits"), 0, "{g:#}");
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

/// go's package counters of a build (`kiln gocacheprog` sessions summed).
fn go_packages(report: &serde_json::Value) -> &serde_json::Value {
    let g = &report["go_packages"];
    assert!(g.is_object(), "no go_packages in the report: {report:#}");
    g
}

/// The shop with a third service that does not import the shared package `internal/greet`.
fn shop_with_solo() -> Repo {
    let r = shop();
    r.write(
        "cmd/solo/main.go",
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"solo\") }\n",
    );
    r
}

/// The shape of [`shop_with_solo`] on a smaller part of the standard library (fmt, strings: about
/// 60 packages instead of net/http's 150), for the tests whose machines compile it cold.
fn small_shop() -> Repo {
    let r = shop_with_solo();
    r.write(
        "cmd/api/main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/shop/internal/greet\"\n)\n\nfunc main() { fmt.Println(greet.Message()) }\n",
    )
    .write(
        "cmd/worker/main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n\n\t\"example.com/shop/internal/greet\"\n)\n\nfunc main() { fmt.Println(strings.ToUpper(greet.Message())) }\n",
    );
    r
}

/// The change to the shared package of [`shop`] and [`small_shop`].
fn edit_greet(repo: &Repo) {
    repo.write(
        "internal/greet/greet.go",
        "package greet\n\nimport _ \"embed\"\n\n//go:embed message.txt\nvar message string\n\nfunc Message() string { return \"changed \" + message }\n",
    );
}

/// Package level, through `kiln build`: after a change to a shared package, a fresh machine whose
/// only cache is the remote compiles exactly what a machine with a warm local cache compiles
/// (the changed package and its dependents), gets the rest of go's packages from the remote and
/// the unaffected binary from kiln's action cache, and builds the same bytes.
fn shared_edit_compiles_what_a_warm_machine_compiles(server: &mut dyn ReapiServer) {
    let url = &server.url();
    let origin = small_shop();
    let a = Machine::cold(&origin, url);
    let (ra, _) = a.build(&[]);
    let cold = go_packages(&ra);
    assert!(
        n(cold, "misses") > 40 && n(cold, "uploads") > 40,
        "a cold build compiles and uploads the standard library: {cold:#}"
    );
    assert_eq!(n(cold, "remote_errors"), 0, "{cold:#}");

    // The reference: A makes the change with its warm local tier, writing nothing to the remote.
    // One go invocation at a time: go processes running side by side may both compile a package
    // neither has yet, which would make the counts depend on timing.
    edit_greet(&a.repo);
    a.repo.write("kiln.toml", "[cache]\nread_only = true\n");
    let (warm_report, _) = a.build(&["--jobs", "1"]);
    let warm = go_packages(&warm_report);
    assert_eq!(n(warm, "uploads"), 0, "read_only uploaded: {warm:#}");

    let b = Machine::cold(&origin, url);
    edit_greet(&b.repo);
    let (rb, stderr) = b.build(&["--jobs", "1"]);
    let g = go_packages(&rb);
    assert_eq!(n(g, "local_hits"), 0, "B's caches were not empty: {g:#}");
    assert!(
        n(g, "remote_hits") > 50,
        "go's packages came from the remote: {g:#}"
    );
    // What B had to produce is what the warm machine produced: the same package archives (a
    // single extra package from the standard library would add kilobytes to what is put). go also
    // keeps a few small entries of a few hundred bytes whose IDs differ between checkouts and go
    // processes; they are why misses are compared within a margin and bytes within 4 KiB.
    let (bm, wm) = (n(g, "misses"), n(warm, "misses"));
    assert!(
        bm >= wm && bm <= wm + 3,
        "B missed {bm} entries, the warm machine {wm}: B {g:#}\nwarm {warm:#}"
    );
    assert!(
        n(g, "put_bytes").abs_diff(n(warm, "put_bytes")) < 4096,
        "B produced other packages than the warm machine: B {g:#}\nwarm {warm:#}"
    );
    assert!(n(g, "misses") * 10 < n(cold, "misses"), "{g:#}");
    for t in targets(&rb) {
        let solo = t["service"] == "solo";
        assert_eq!(t["cached"] == true, solo, "only solo is unaffected: {rb:#}");
    }
    assert_eq!(binary_digests(&warm_report), binary_digests(&rb));
    assert_binaries_match(&b, &rb);
    assert!(stderr.contains("go packages:"), "{stderr}");
}

/// `GOCACHEPROG="kiln gocacheprog"` on its own, with `KILN_REMOTE_CACHE`: machine 2 compiles
/// nothing go's `-x` shows, and after a change to the shared package machine 3 compiles exactly
/// that package and the command importing it.
fn standalone_gocacheprog_shares_packages(server: &mut dyn ReapiServer) {
    let url = server.url();
    let origin = small_shop();
    let go_build = |repo: &Repo| -> (String, Vec<u8>, serde_json::Value) {
        let kiln_cache = tempfile::tempdir().expect("tempdir");
        let stats = kiln_cache.path().join("stats.json");
        let mut env = GoEnv::new();
        env.fresh_gocache()
            .set("GOFLAGS", "-trimpath")
            .set("KILN_REMOTE_CACHE", &url)
            .set(
                "GOCACHEPROG",
                format!(
                    "{} gocacheprog --cache-dir {} --stats-file {}",
                    env!("CARGO_BIN_EXE_kiln"),
                    kiln_cache.path().display(),
                    stats.display()
                ),
            );
        let bin = kiln_cache.path().join("api");
        let out = env
            .command("go")
            .args(["build", "-x", "-o"])
            .arg(&bin)
            .arg("./cmd/api")
            .current_dir(repo.path())
            .output()
            .expect("run go");
        assert!(out.status.success(), "{}", dump(&out));
        let stats = serde_json::from_slice(&std::fs::read(&stats).expect("stats file"))
            .expect("stats JSON");
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            std::fs::read(&bin).expect("binary"),
            stats,
        )
    };
    let (x1, bin1, s1) = go_build(&origin.copy());
    assert!(compiles(&x1) > 30, "cold: {s1:#}");
    assert!(n(&s1, "uploads") > 30, "{s1:#}");
    let (x2, bin2, s2) = go_build(&origin.copy());
    assert_eq!(compiles(&x2), 0, "machine 2 compiled: {s2:#}");
    assert!(n(&s2, "remote_hits") > 30, "{s2:#}");
    assert_eq!(bin1, bin2);
    let changed = origin.copy();
    edit_greet(&changed);
    let (x3, _, s3) = go_build(&changed);
    let mut compiled = compiled_packages(&x3);
    compiled.sort();
    assert_eq!(
        compiled,
        vec!["example.com/shop/internal/greet".to_string(), "main".into()],
        "{s3:#}"
    );
}

/// cgo builds keep go's cache private to their C toolchain's state even with a remote cache (go's
/// action IDs do not see a header in a subdirectory): their GOCACHEPROG is empty, so a changed
/// header is compiled, never served from the shared package cache.
fn cgo_builds_keep_go_cache_private(server: &mut dyn ReapiServer) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let origin = Repo::new();
    origin
        .write(
            "go.mod",
            &format!("module example.com/native{nonce:x}\n\ngo 1.22\n"),
        )
        .write(
            "cmd/native/main.go",
            "package main\n\n/*\n#include \"inc/y.h\"\n*/\nimport \"C\"\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"value\", C.VALUE) }\n",
        )
        .write("cmd/native/inc/y.h", "#define VALUE 1\n")
        .write(
            "kiln.toml",
            "[services.native]\npackage = \"./cmd/native\"\ncgo = true\n",
        );
    let m = Machine::new(&origin, &server.url());
    let run = |report: &serde_json::Value| {
        let t = &targets(report)[0];
        let out = std::process::Command::new(binary_path(m.repo.path(), t))
            .output()
            .expect("run the binary");
        stdout(&out).trim().to_string()
    };
    let (r1, _) = m.build(&[]);
    assert_eq!(run(&r1), "value 1");
    assert!(
        r1["go_packages"].is_null(),
        "a cgo build used kiln gocacheprog: {r1:#}"
    );
    m.repo.write("cmd/native/inc/y.h", "#define VALUE 2\n");
    let (r2, _) = m.build(&[]);
    assert_eq!(run(&r2), "value 2", "{r2:#}");
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
    shared_edit_compiles_what_a_warm_machine_compiles,
    standalone_gocacheprog_shares_packages,
    cgo_builds_keep_go_cache_private,
);
