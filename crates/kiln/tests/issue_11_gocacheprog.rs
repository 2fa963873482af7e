//! Issue 11: `kiln gocacheprog` serves go's own package cache from kiln's store. Every test runs
//! the real `go` with `GOCACHEPROG` naming the real `kiln` binary, and a fresh, empty `GOCACHE`
//! (with GOCACHEPROG set, go keeps no build outputs there), so what go finds came through kiln.
//!
//! One cold fill (a `go build` and a `go test` of a small multi-package module) is shared by the
//! tests as a template store; each test works on its own copy, as another machine would on a
//! store synchronised from the first.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{binary_path, compiles, dump, target, GoEnv, Repo};
use tempfile::TempDir;

/// Three packages, one depending on the next; the main one prints with the builtin `println`, so a
/// cold build compiles only the runtime's part of the standard library.
fn write_module(dir: &Path) {
    let files = [
        ("go.mod", "module example.com/multi\n\ngo 1.22\n"),
        (
            "internal/a/a.go",
            "package a\n\nfunc Shout(s string) string { return s + \"!\" }\n",
        ),
        (
            "internal/a/a_test.go",
            "package a\n\nimport \"testing\"\n\nfunc TestShout(t *testing.T) {\n\tif Shout(\"hi\") != \"hi!\" {\n\t\tt.Fatal(Shout(\"hi\"))\n\t}\n}\n",
        ),
        (
            "internal/b/b.go",
            "package b\n\nimport \"example.com/multi/internal/a\"\n\nfunc Greet(name string) string { return a.Shout(\"hello \" + name) }\n",
        ),
        (
            "cmd/app/main.go",
            "package main\n\nimport \"example.com/multi/internal/b\"\n\nfunc main() { println(b.Greet(\"kiln\")) }\n",
        ),
    ];
    for (rel, text) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// The counters `kiln gocacheprog --stats-file` wrote.
fn read_stats(file: &Path) -> serde_json::Value {
    let text = std::fs::read(file)
        .unwrap_or_else(|e| panic!("kiln gocacheprog wrote no stats to {}: {e}", file.display()));
    serde_json::from_slice(&text).unwrap()
}

fn n(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {stats:#}"))
}

/// One go invocation through `kiln gocacheprog` on the kiln cache `store`.
struct Through {
    env: GoEnv,
    stats: PathBuf,
    _scratch: TempDir,
}

impl Through {
    fn new(store: &Path) -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let stats = scratch.path().join("stats.json");
        let mut env = GoEnv::new();
        env.fresh_gocache().set(
            "GOCACHEPROG",
            format!(
                "{} gocacheprog --cache-dir {} --stats-file {}",
                env!("CARGO_BIN_EXE_kiln"),
                store.display(),
                stats.display()
            ),
        );
        Self {
            env,
            stats,
            _scratch: scratch,
        }
    }

    /// `go ARGS` in `dir`, asserting success; returns stdout and stderr.
    fn go(&self, dir: &Path, args: &[&str]) -> (String, String) {
        let out = self
            .env
            .command("go")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "go {args:?}: {}", dump(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn stats(&self) -> serde_json::Value {
        read_stats(&self.stats)
    }
}

struct Fixture {
    module: TempDir,
    /// A kiln cache filled by one cold `go build` and one `go test` through kiln gocacheprog.
    store: TempDir,
    binary: Vec<u8>,
    cold_compiles: usize,
    cold_stats: serde_json::Value,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let module = tempfile::tempdir().unwrap();
        write_module(module.path());
        let store = tempfile::tempdir().unwrap();
        let out = module.path().join("app-cold");
        let through = Through::new(store.path());
        let (_, x) = through.go(
            module.path(),
            &["build", "-x", "-o", out.to_str().unwrap(), "./cmd/app"],
        );
        let cold_stats = through.stats();
        let test = Through::new(store.path());
        let (stdout, _) = test.go(module.path(), &["test", "./..."]);
        assert!(
            stdout.contains("ok  \texample.com/multi/internal/a"),
            "{stdout}"
        );
        Fixture {
            binary: std::fs::read(&out).unwrap(),
            cold_compiles: compiles(&x),
            cold_stats,
            module,
            store,
        }
    })
}

/// A copy of the fixture's store, as another machine would have it.
fn copy_store() -> TempDir {
    let to = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture().store.path().display()))
        .arg(to.path())
        .status()
        .unwrap();
    assert!(status.success());
    to
}

fn go_packages_dir(store: &Path) -> PathBuf {
    store.join("go-packages-v1")
}

/// First build fills kiln's store; a build with a fresh GOCACHE and the same store compiles
/// nothing and links the same bytes; and GOCACHEPROG does not change the binary go writes.
#[test]
fn issue_11_second_build_with_fresh_gocache_compiles_nothing_and_is_identical() {
    let f = fixture();
    assert!(
        f.cold_compiles > 3,
        "the cold build compiled the runtime and the 3 packages"
    );
    assert!(n(&f.cold_stats, "puts") > 0, "{:#}", f.cold_stats);
    assert_eq!(n(&f.cold_stats, "local_hits"), 0, "{:#}", f.cold_stats);
    assert!(go_packages_dir(f.store.path()).is_dir());

    let store = copy_store();
    let warm = Through::new(store.path());
    let out = f.module.path().join("app-warm");
    let (_, x) = warm.go(
        f.module.path(),
        &["build", "-x", "-o", out.to_str().unwrap(), "./cmd/app"],
    );
    assert_eq!(compiles(&x), 0, "nothing compiled:\n{x}");
    let stats = warm.stats();
    assert!(n(&stats, "local_hits") > 0, "{stats:#}");
    assert_eq!(n(&stats, "corrupt"), 0, "{stats:#}");
    assert_eq!(std::fs::read(&out).unwrap(), f.binary, "same binary");

    // go's own disk cache builds the same bytes: the cache program is not an input.
    let plain = GoEnv::new();
    let native = f.module.path().join("app-native");
    plain.go(
        f.module.path(),
        &["build", "-o", native.to_str().unwrap(), "./cmd/app"],
    );
    assert_eq!(std::fs::read(&native).unwrap(), f.binary);
}

/// A stored output whose bytes no longer match its digest is a miss (and removed): go compiles
/// again and the binary is still right.
#[test]
fn issue_11_corrupted_stored_blob_is_a_miss_and_the_build_is_correct() {
    let f = fixture();
    let store = copy_store();
    let outputs = go_packages_dir(store.path()).join("o");
    let mut damaged = 0;
    for shard in std::fs::read_dir(&outputs).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            if let Some(b) = bytes.first_mut() {
                // Same size, different content: only the digest check notices.
                *b ^= 0x55;
                std::fs::write(&path, bytes).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 3);

    let through = Through::new(store.path());
    let out = f.module.path().join("app-repaired");
    let (_, x) = through.go(
        f.module.path(),
        &["build", "-x", "-o", out.to_str().unwrap(), "./cmd/app"],
    );
    let stats = through.stats();
    assert!(n(&stats, "corrupt") > 0, "{stats:#}");
    assert_eq!(
        n(&stats, "local_hits"),
        0,
        "no damaged output served: {stats:#}"
    );
    assert!(compiles(&x) > 0, "go compiled what it could not get");
    assert_eq!(std::fs::read(&out).unwrap(), f.binary, "the right binary");
    let run = std::process::Command::new(&out).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stderr), "hello kiln!\n");

    // The build's puts repaired the store: the next build compiles nothing.
    let again = Through::new(store.path());
    let (_, x) = again.go(
        f.module.path(),
        &["build", "-x", "-o", out.to_str().unwrap(), "./cmd/app"],
    );
    assert_eq!(compiles(&x), 0, "{x}");
}

/// `go test` works through kiln gocacheprog: the result of the fixture's run is a cache hit on a
/// fresh GOCACHE, and a forced run compiles nothing and passes.
#[test]
fn issue_11_go_test_works_through_gocacheprog() {
    let f = fixture();
    let store = copy_store();
    let cached = Through::new(store.path());
    let (stdout, _) = cached.go(f.module.path(), &["test", "./..."]);
    assert!(
        stdout.contains("ok  \texample.com/multi/internal/a\t(cached)"),
        "the test result came from kiln's store:\n{stdout}"
    );
    let forced = Through::new(store.path());
    let (stdout, x) = forced.go(f.module.path(), &["test", "-x", "-count=1", "./..."]);
    assert!(
        stdout.contains("ok  \texample.com/multi/internal/a"),
        "{stdout}"
    );
    assert_eq!(compiles(&x), 0, "{x}");
    assert!(n(&forced.stats(), "local_hits") > 0);
}

/// `kiln build` with GOCACHEPROG in its environment: go uses the cache program (it stored
/// packages), the binary is byte-identical to one built without it, and the action key is the
/// same (GOCACHEPROG only says where go's cache lives), so the cache of the plain build hits.
#[test]
fn issue_11_kiln_build_binary_is_identical_with_and_without_gocacheprog() {
    let repo = Repo::new();
    write_module(repo.path());
    let plain = GoEnv::new();
    let report = repo.build_json_env(repo.path(), &[], &plain);
    let t = target(&report, "app", "linux/amd64");
    assert_eq!(t["cached"], false);
    let without = std::fs::read(binary_path(repo.path(), t)).unwrap();

    // A second kiln cache, so this build runs go instead of restoring the first binary.
    let other = Repo {
        dir: tempfile::tempdir().unwrap(),
        cache: tempfile::tempdir().unwrap(),
    };
    let go_store = tempfile::tempdir().unwrap();
    let through = Through::new(go_store.path());
    let report = other.build_json_env(repo.path(), &[], &through.env);
    let t = target(&report, "app", "linux/amd64");
    assert_eq!(t["cached"], false, "{report:#}");
    let stats = through.stats();
    assert!(
        n(&stats, "puts") > 0,
        "go used the cache program: {stats:#}"
    );
    assert_eq!(
        std::fs::read(binary_path(repo.path(), t)).unwrap(),
        without,
        "GOCACHEPROG does not change the binary"
    );

    let through = Through::new(go_store.path());
    let report = repo.build_json_env(repo.path(), &[], &through.env);
    assert_eq!(
        target(&report, "app", "linux/amd64")["cached"],
        true,
        "GOCACHEPROG is not part of the key: {report:#}"
    );
}
