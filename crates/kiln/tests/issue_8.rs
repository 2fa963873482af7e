//! Issue 8: every input that changes a binary must change kiln's action key. Each test builds
//! with kiln, changes one input, builds again and checks the second binary twice: by what it
//! prints (the change is visible) and by its bytes, which must equal a reference build made
//! without kiln's cache (`--no-cache`). The premise -- that the change really changes the
//! binary -- is asserted too, so no test can pass because nothing changed.
//!
//! All builds run the real `go` in an environment that inherits nothing but `PATH` (see
//! [`GoEnv`]). Where go's own build cache is stale as well (the cgo cases), every reference build
//! uses a fresh, empty `GOCACHE`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{binary_path, targets, GoEnv, Repo};
use tempfile::TempDir;

const GO_MOD: &str = "module example.com/app\n\ngo 1.22\n";

/// Closures appended in a three-clause loop print `012` under per-iteration loop variables
/// (language version 1.22 and later) and `333` under the older shared variable.
const LOOPVAR_BODY: &str = "\tvar fs []func() int\n\tfor i := 0; i < 3; i++ {\n\t\tfs = append(fs, func() int { return i })\n\t}\n\ts := \"\"\n\tfor _, f := range fs {\n\t\ts += fmt.Sprint(f())\n\t}\n";

/// A program printing what its own build info says about VCS stamping.
const VCS_MAIN: &str = r#"package main

import (
	"fmt"
	"runtime/debug"
)

func main() {
	info, _ := debug.ReadBuildInfo()
	rev, modified := "none", "none"
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	fmt.Printf("revision=%s modified=%s\n", rev, modified)
}
"#;

/// A program whose hot call sites depend on the profile: `mix` is too big for go's default
/// inlining budget but within PGO's budget for hot calls. `app profile mix|spin FILE` writes a CPU
/// profile in which that function is hot; otherwise it prints the `-pgo` build setting.
const PGO_MAIN: &str = r#"package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
)

func mix(x uint64) uint64 {
	for r := uint64(0); r < 2; r++ {
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
		x += r + 1
		x ^= x >> 29
		x *= 0xc4ceb9fe1a85ec53
		x += r + 2
		x ^= x >> 32
		x *= 0x9e3779b97f4a7c15
		x += r + 3
		x ^= x >> 31
		x *= 0xbf58476d1ce4e5b9
		x += r + 4
		x ^= x >> 27
		x *= 0x94d049bb133111eb
		x += r + 5
		x ^= x >> 30
		x *= 0xd6e8feb86659fd93
		x += r + 6
		x ^= x >> 17
		x *= 0xa0761d6478bd642f
		x += r + 7
		x ^= x >> 23
		x *= 0xe7037ed1a0b428db
		x += r + 8
	}
	return x
}

func spin(x uint64) uint64 {
	for r := uint64(0); r < 2; r++ {
		x = x<<13 | x>>51
		x -= 0x8ebc6af09c88c6e3
		x ^= r + 1
		x = x<<7 | x>>57
		x -= 0x589965cc75374cc3
		x ^= r + 2
		x = x<<11 | x>>53
		x -= 0x1d8e4e27c47d124f
		x ^= r + 3
		x = x<<5 | x>>59
		x -= 0x2d358dccaa6c78a5
		x ^= r + 4
		x = x<<19 | x>>45
		x -= 0x8bb84b93962eacc9
		x ^= r + 5
		x = x<<3 | x>>61
		x -= 0x4b33a62ed433d4a3
		x ^= r + 6
		x = x<<29 | x>>35
		x -= 0x4d5a2da51de1aa47
		x ^= r + 7
		x = x<<17 | x>>47
		x -= 0x9fb21c651e98df25
		x ^= r + 8
	}
	return x
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "profile" {
		f, err := os.Create(os.Args[3])
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			panic(err)
		}
		var s uint64
		for i := uint64(0); i < 20_000_000; i++ {
			if os.Args[2] == "mix" {
				s += mix(i)
			} else {
				s += spin(i)
			}
		}
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			panic(err)
		}
		fmt.Fprintln(os.Stderr, s)
		return
	}
	pgo := "off"
	info, _ := debug.ReadBuildInfo()
	for _, s := range info.Settings {
		if s.Key == "-pgo" {
			pgo = s.Value
		}
	}
	fmt.Printf("pgo=%s %d %d\n", pgo, mix(1), spin(1))
}
"#;

/// One kiln build of a single-target repository, and what its binary printed.
struct Built {
    /// `cached` from the build report.
    cached: bool,
    /// The binary.
    bytes: Vec<u8>,
    /// Where the binary is (valid while the build's output directory exists).
    path: PathBuf,
    /// What the binary printed on stdout, trimmed.
    stdout: String,
    /// The output directory of a reference build, kept so `path` stays valid.
    _out: Option<TempDir>,
}

/// `kiln build --json EXTRA` in `dir` with `env`; runs the one binary it produced.
fn build(repo: &Repo, dir: &Path, env: &GoEnv, extra: &[&str]) -> Built {
    let report = repo.build_json_env(dir, extra, env);
    let ts = targets(&report);
    assert_eq!(ts.len(), 1, "one target expected: {report:#}");
    let t = &ts[0];
    assert!(t["error"].is_null(), "the build failed: {t:#}");
    let path = binary_path(dir, t);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stdout = run(&path, &[]);
    Built {
        cached: t["cached"]
            .as_bool()
            .unwrap_or_else(|| panic!("no cached flag: {t:#}")),
        bytes,
        path,
        stdout,
        _out: None,
    }
}

/// The reference: the same build without kiln's cache, into another output directory.
fn reference(repo: &Repo, dir: &Path, env: &GoEnv) -> Built {
    let out = tempfile::tempdir().expect("tempdir");
    let out_arg = out.path().to_str().expect("utf-8 temp path");
    let mut built = build(repo, dir, env, &["--no-cache", "--out", out_arg]);
    assert!(!built.cached, "--no-cache reported a cache hit");
    built._out = Some(out);
    built
}

/// Runs a built binary with an empty environment; returns its trimmed stdout.
fn run(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Offset of the first differing byte, or `None` when `a == b`.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

/// Why a second build came out stale, from its `cached` flag.
fn diagnosis(second: &Built) -> &'static str {
    if second.cached {
        "kiln's cache answered with an entry whose key does not cover the change"
    } else {
        "kiln ran `go build`, but go returned a stale result: go's own build cache does not see \
         this input either, so kiln must make go rebuild"
    }
}

/// The checks every case shares. `first` is the build before the change, `second` the one after,
/// `reference` a `--no-cache` build after the change; `expected` is what a binary built from the
/// changed inputs prints (`None` where the change has no visible behaviour, like a PGO profile).
fn assert_rebuilt(first: &Built, second: &Built, reference: &Built, expected: Option<&str>) {
    // The premise: the change changes the binary, so reusing the first one cannot pass.
    assert!(
        first_difference(&first.bytes, &reference.bytes).is_some(),
        "premise failed: the change did not change the binary (first printed {:?})",
        first.stdout
    );
    if let Some(expected) = expected {
        assert_eq!(
            reference.stdout, expected,
            "premise failed: the --no-cache build does not show the change"
        );
        assert_ne!(
            first.stdout, expected,
            "premise failed: the binary before the change already shows it"
        );
        assert!(
            second.stdout == expected,
            "stale binary (cached: {}): after the change kiln's binary prints {:?}, expected {:?} \
             (before the change: {:?}); {}",
            second.cached,
            second.stdout,
            expected,
            first.stdout,
            diagnosis(second)
        );
    }
    if let Some(at) = first_difference(&second.bytes, &reference.bytes) {
        let same_as_first = second.bytes == first.bytes;
        panic!(
            "stale binary (cached: {}): after the change kiln's binary differs from a --no-cache \
             build at byte {at} ({} vs {} bytes; identical to the binary before the change: \
             {same_as_first}); it printed {:?}, the reference {:?}; {}",
            second.cached,
            second.bytes.len(),
            reference.bytes.len(),
            second.stdout,
            reference.stdout,
            diagnosis(second)
        );
    }
}

/// A module `example.com/app` with one main package in `cmd/app`.
fn app(main_go: &str) -> Repo {
    let repo = Repo::new();
    repo.write("go.mod", GO_MOD)
        .write("cmd/app/main.go", main_go);
    repo
}

/// The absolute path of the real `go` binary (`$(go env GOROOT)/bin/go`).
fn real_go(env: &GoEnv) -> PathBuf {
    let goroot = env.go(Path::new("."), &["env", "GOROOT"]);
    Path::new(goroot.trim()).join("bin").join("go")
}

/// Writes an executable shell script.
fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Replaces a file with new content through a new inode, so a hard link elsewhere keeps the old one.
fn replace_file(path: &Path, content: &str) {
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::write(path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn issue_8_vendor_modules_txt() {
    let repo = Repo::new();
    repo.write(
        "go.mod",
        "module example.com/app\n\ngo 1.22\n\nrequire example.com/dep v1.0.0\n",
    )
    .write(
        "vendor/modules.txt",
        "# example.com/dep v1.0.0\n## explicit; go 1.22\nexample.com/dep\n",
    )
    .write(
        "vendor/example.com/dep/dep.go",
        &format!("package dep\n\nimport \"fmt\"\n\nfunc Loop() string {{\n{LOOPVAR_BODY}\treturn s\n}}\n"),
    )
    .write(
        "cmd/app/main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/dep\"\n)\n\nfunc main() { fmt.Println(dep.Loop()) }\n",
    );
    let env = GoEnv::new();
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(
        first.stdout, "012",
        "go 1.22 semantics for the vendored module"
    );

    // The vendored module's language version lives only in vendor/modules.txt.
    repo.write(
        "vendor/modules.txt",
        "# example.com/dep v1.0.0\n## explicit; go 1.21\nexample.com/dep\n",
    );
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    assert_rebuilt(&first, &second, &reference, Some("333"));
}

#[test]
fn issue_8_goroot_stdlib_source() {
    let repo = app("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n");
    let mut env = GoEnv::new();
    let goroot = real_go(&env)
        .parent()
        .and_then(Path::parent)
        .expect("GOROOT")
        .to_path_buf();
    // A copy of the toolchain (same version, same tool binaries) as a tree of symlinks, so only
    // the file replaced below takes space. Not hard links: linking changes every file's ctime,
    // which tells the kiln builds of concurrently running tests that their inputs changed while
    // go ran (so they would not store their results). `go` itself is a real copy, because go
    // finds GOROOT from its own resolved path.
    let copy = tempfile::tempdir().expect("tempdir");
    let root = copy.path().join("go");
    let linked = Command::new("cp")
        .arg("-as")
        .arg(&goroot)
        .arg(&root)
        .status()
        .expect("cp");
    assert!(linked.success(), "cannot mirror {}", goroot.display());
    let go_bin = root.join("bin").join("go");
    std::fs::remove_file(&go_bin).expect("remove the go symlink");
    std::fs::copy(goroot.join("bin").join("go"), &go_bin).expect("copy go");
    env.set("KILN_GO", root.join("bin").join("go"));
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "hello");

    let print_go = root.join("src/fmt/print.go");
    let original = std::fs::read_to_string(&print_go).expect("read fmt/print.go");
    // print.go imports os for Println, so an init appended to it compiles in every Go version.
    replace_file(
        &print_go,
        &format!("{original}\nfunc init() {{ os.Stdout.WriteString(\"patched fmt\\n\") }}\n"),
    );
    assert_eq!(
        std::fs::read_to_string(goroot.join("src/fmt/print.go")).expect("read"),
        original,
        "the real GOROOT must stay untouched"
    );
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    assert_rebuilt(&first, &second, &reference, Some("patched fmt\nhello"));
}

/// A repository whose `cmd/app/msg.go` is replaced through `-overlay` in GOFLAGS, and the directory
/// holding the overlay JSON and the two replacement files `a.go` and `b.go`.
fn overlay_repo() -> (Repo, TempDir, GoEnv) {
    let repo = app("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(message) }\n");
    repo.write(
        "cmd/app/msg.go",
        "package main\n\nconst message = \"on disk\"\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.go"),
        "package main\n\nconst message = \"overlay a\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("b.go"),
        "package main\n\nconst message = \"overlay b\"\n",
    )
    .expect("write");
    write_overlay(&repo, dir.path(), "a.go");
    let mut env = GoEnv::new();
    env.set(
        "GOFLAGS",
        format!("-overlay={}", dir.path().join("overlay.json").display()),
    );
    (repo, dir, env)
}

/// Writes `overlay.json` in `dir` mapping the repository's msg.go to `dir/replacement`.
fn write_overlay(repo: &Repo, dir: &Path, replacement: &str) {
    let target = repo.path().join("cmd/app/msg.go");
    let json = serde_json::json!({
        "Replace": { target.to_str().expect("utf-8"): dir.join(replacement).to_str().expect("utf-8") }
    });
    std::fs::write(dir.join("overlay.json"), json.to_string()).expect("write overlay.json");
}

#[test]
fn issue_8_overlay_file_edited() {
    let (repo, dir, env) = overlay_repo();
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "overlay a");

    std::fs::write(
        dir.path().join("a.go"),
        "package main\n\nconst message = \"overlay a, edited\"\n",
    )
    .expect("write");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    assert_rebuilt(&first, &second, &reference, Some("overlay a, edited"));
}

#[test]
fn issue_8_overlay_json_remapped() {
    let (repo, dir, env) = overlay_repo();
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "overlay a");

    write_overlay(&repo, dir.path(), "b.go");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    assert_rebuilt(&first, &second, &reference, Some("overlay b"));
}

#[test]
fn issue_8_modfile_go_line() {
    let repo = app(&format!(
        "package main\n\nimport \"fmt\"\n\nfunc main() {{\n{LOOPVAR_BODY}\tfmt.Println(s)\n}}\n"
    ));
    repo.write("alt.mod", "module example.com/app\n\ngo 1.21\n");
    let mut env = GoEnv::new();
    // Relative, as users write it: go resolves it against the module root, where go runs.
    env.set("GOFLAGS", "-modfile=alt.mod");
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "333", "alt.mod's go 1.21, not go.mod's 1.22");

    repo.write("alt.mod", "module example.com/app\n\ngo 1.22\n");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    assert_rebuilt(&first, &second, &reference, Some("012"));
}

/// The `pgo=... mix(1) spin(1)` line [`PGO_MAIN`] prints for a `-pgo` build setting.
fn pgo_line(setting: &str, printed: &str) -> String {
    let numbers = printed.split_once(' ').map(|(_, n)| n).unwrap_or_default();
    format!("pgo={setting} {numbers}")
}

#[test]
fn issue_8_default_pgo_added() {
    let repo = app(PGO_MAIN);
    let env = GoEnv::new();
    let first = build(&repo, repo.path(), &env, &[]);
    assert!(first.stdout.starts_with("pgo=off "), "{}", first.stdout);

    // go build's default -pgo=auto picks up default.pgo in the main package's directory.
    let profile = repo.path().join("cmd/app/default.pgo");
    run(
        &first.path,
        &["profile", "mix", profile.to_str().expect("utf-8")],
    );
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    let expected = pgo_line("default.pgo", &first.stdout);
    assert_rebuilt(&first, &second, &reference, Some(&expected));
}

#[test]
fn issue_8_pgo_flag_profile_changed() {
    let repo = app(PGO_MAIN);
    let env = GoEnv::new();
    // Two profiles with different hot functions, written by a build without PGO.
    let profiler = reference(&repo, repo.path(), &env);
    let profiles = tempfile::tempdir().expect("tempdir");
    let hot_mix = profiles.path().join("mix.pprof");
    let hot_spin = profiles.path().join("spin.pprof");
    run(
        &profiler.path,
        &["profile", "mix", hot_mix.to_str().expect("utf-8")],
    );
    run(
        &profiler.path,
        &["profile", "spin", hot_spin.to_str().expect("utf-8")],
    );

    repo.write("kiln.toml", "[build]\nflags = [\"-pgo=prof.pprof\"]\n");
    std::fs::copy(&hot_mix, repo.path().join("prof.pprof")).expect("copy profile");
    let first = build(&repo, repo.path(), &env, &[]);
    let expected = pgo_line("prof.pprof", &profiler.stdout);
    assert_eq!(first.stdout, expected);

    // Same file name, other content: only the compiled code can show it.
    std::fs::copy(&hot_spin, repo.path().join("prof.pprof")).expect("copy profile");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    assert_eq!(second.stdout, expected);
    assert_rebuilt(&first, &second, &reference, None);
}

/// A git repository with `buildvcs = true`, one commit, and `dist/` ignored (an untracked output
/// would make every build `vcs.modified=true`).
fn vcs_repo() -> Repo {
    let repo = app(VCS_MAIN);
    repo.write("kiln.toml", "[build]\nbuildvcs = true\n")
        .write(".gitignore", "dist/\n")
        .write("README.md", "app\n");
    repo.git(&["init", "-q"]);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "first"]);
    repo
}

/// `git rev-parse HEAD`.
fn head(repo: &Repo) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo.path())
        .output()
        .expect("git");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn issue_8_buildvcs_new_commit() {
    let repo = vcs_repo();
    let env = GoEnv::new();
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(
        first.stdout,
        format!("revision={} modified=false", head(&repo))
    );

    // A commit that touches no file of the build: only the stamped revision changes.
    repo.write("README.md", "app, documented\n");
    repo.git(&["commit", "-q", "-am", "second"]);
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    let expected = format!("revision={} modified=false", head(&repo));
    assert_rebuilt(&first, &second, &reference, Some(&expected));
}

#[test]
fn issue_8_buildvcs_uncommitted_change() {
    let repo = vcs_repo();
    let env = GoEnv::new();
    let first = build(&repo, repo.path(), &env, &[]);
    let revision = head(&repo);
    assert_eq!(first.stdout, format!("revision={revision} modified=false"));

    repo.write("README.md", "app, not committed yet\n");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    let expected = format!("revision={revision} modified=true");
    assert_rebuilt(&first, &second, &reference, Some(&expected));
}

#[test]
fn issue_8_trimpath_off_second_checkout() {
    let repo = app(
        "package main\n\nimport (\n\t\"fmt\"\n\t\"runtime\"\n)\n\nfunc main() {\n\t_, file, _, _ := runtime.Caller(0)\n\tfmt.Println(file)\n}\n",
    );
    repo.write("kiln.toml", "[build]\ntrimpath = false\n");
    let second_checkout = repo.copy();
    let env = GoEnv::new();
    let first = build(&repo, repo.path(), &env, &[]);
    let main_go = |r: &Repo| {
        let dir = std::fs::canonicalize(r.path()).expect("canonicalize");
        dir.join("cmd/app/main.go").display().to_string()
    };
    assert_eq!(first.stdout, main_go(&repo));

    // The second checkout is built with the first one's kiln cache.
    let second = build(&repo, second_checkout.path(), &env, &[]);
    let reference = reference(&repo, second_checkout.path(), &env);
    assert_rebuilt(
        &first,
        &second,
        &reference,
        Some(&main_go(&second_checkout)),
    );
}

#[test]
fn issue_8_source_saved_during_build() {
    const ORIGINAL: &str =
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"original\") }\n";
    const EDITED: &str =
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"edited\") }\n";
    let repo = app(ORIGINAL);
    let mut env = GoEnv::new();
    let go = real_go(&env);
    let scratch = tempfile::tempdir().expect("tempdir");
    let armed = scratch.path().join("armed");
    let edited = scratch.path().join("edited.go");
    let original = scratch.path().join("original.go");
    std::fs::write(&edited, EDITED).expect("write");
    std::fs::write(&original, ORIGINAL).expect("write");
    std::fs::write(&armed, "").expect("write");
    // Both builds go through this same script, so the `go` command is identical and only the
    // edit differs. Armed, `go build` runs with main.go edited (after kiln hashed the original)
    // and main.go is reverted when go is done, as an editor saving during a build would.
    let wrapper = scratch.path().join("go");
    write_script(
        &wrapper,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = build ] && [ -e '{armed}' ]; then\n\trm '{armed}'\n\tcp '{edited}' '{target}'\n\t'{go}' \"$@\"\n\tstatus=$?\n\tcp '{original}' '{target}'\n\texit $status\nfi\nexec '{go}' \"$@\"\n",
            armed = armed.display(),
            edited = edited.display(),
            original = original.display(),
            target = repo.path().join("cmd/app/main.go").display(),
            go = go.display(),
        ),
    );
    env.set("KILN_GO", &wrapper);

    let first = build(&repo, repo.path(), &env, &[]);
    assert!(!armed.exists(), "the wrapper did not run `go build`");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("cmd/app/main.go")).expect("read"),
        ORIGINAL
    );

    // The source is back to what kiln hashed: its key must not give the edited binary.
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    match first.stdout.as_str() {
        // go built the edited file: the usual outcome, whose result must not be stored.
        "edited" => assert_rebuilt(&first, &second, &reference, Some("original")),
        // kiln noticed the change and built again (the wrapper is disarmed by then): also right,
        // as long as nothing edited was stored.
        "original" => {
            assert_eq!(second.stdout, "original", "cached: {}", second.cached);
            assert!(
                second.bytes == reference.bytes,
                "stale binary (cached: {}): differs from a --no-cache build",
                second.cached
            );
        }
        other => panic!("the first build printed {other:?}"),
    }
}

#[test]
fn issue_8_gomodcache_file_edited() {
    let repo = app("package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/google/uuid\"\n)\n\nfunc main() { fmt.Println(uuid.NewSHA1(uuid.NameSpaceURL, []byte(\"kiln\")).String()) }\n");
    repo.write(
        "go.mod",
        "module example.com/app\n\ngo 1.22\n\nrequire github.com/google/uuid v1.6.0\n",
    )
    .write(
        "go.sum",
        "github.com/google/uuid v1.6.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n\
         github.com/google/uuid v1.6.0/go.mod h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo=\n",
    );
    let modcache = tempfile::tempdir().expect("tempdir");
    let mut env = GoEnv::new();
    // A private, writable module cache; the module comes from the Go module proxy and is checked
    // against go.sum above (so no checksum database is needed).
    env.set("GOMODCACHE", modcache.path())
        .set("GOFLAGS", "-modcacherw")
        .set(
            "GOPROXY",
            std::env::var("GOPROXY").unwrap_or_else(|_| "https://proxy.golang.org".into()),
        )
        .set("GOSUMDB", "off");
    let download = env
        .command("go")
        .args(["mod", "download", "github.com/google/uuid"])
        .current_dir(repo.path())
        .output()
        .expect("run go");
    assert!(
        download.status.success(),
        "this test needs the Go module proxy (GOPROXY, default https://proxy.golang.org) to fetch \
         github.com/google/uuid v1.6.0: {}",
        String::from_utf8_lossy(&download.stderr)
    );
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "53f8b315-3f19-5a81-9257-9fda522dfe5c");

    let uuid_go = modcache
        .path()
        .join("github.com/google/uuid@v1.6.0/uuid.go");
    let source = std::fs::read_to_string(&uuid_go).expect("read uuid.go");
    let edited = source.replacen(
        "\tencodeHex(buf[:], uuid)\n\treturn string(buf[:])",
        "\tencodeHex(buf[:], uuid)\n\treturn \"edited:\" + string(buf[:])",
        1,
    );
    assert_ne!(edited, source, "uuid.go: String() not found where expected");
    // Module files are read-only even with -modcacherw (only directories are writable).
    replace_file(&uuid_go, &edited);
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = reference(&repo, repo.path(), &env);
    assert_rebuilt(
        &first,
        &second,
        &reference,
        Some("edited:53f8b315-3f19-5a81-9257-9fda522dfe5c"),
    );
}

/// A cgo service `native` (opted in through kiln.toml) printing the C macro `VALUE`, with `head`
/// as the C preamble. go's own cache does not notice the changes these tests make, and the shared
/// Go build cache outlives a test run, so the module path is unique to this run: nothing cached
/// for it before can answer, while the standard library stays warm.
fn cgo_repo(head: &str) -> (Repo, GoEnv) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let repo = Repo::new();
    repo.write(
        "go.mod",
        &format!("module example.com/native{:x}{nonce:x}\n\ngo 1.22\n", std::process::id()),
    )
    .write(
        "cmd/native/main.go",
        &format!("package main\n\n/*\n{head}\n*/\nimport \"C\"\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println(\"value\", C.VALUE) }}\n"),
    )
    .write(
        "kiln.toml",
        "[services.native]\npackage = \"./cmd/native\"\ncgo = true\n",
    );
    (repo, GoEnv::new())
}

/// The cgo reference: `--no-cache` with an empty Go build cache (go's cache holds the entry of the
/// first build under the same action ID).
fn cgo_reference(repo: &Repo, env: &mut GoEnv) -> Built {
    env.fresh_gocache();
    reference(repo, repo.path(), env)
}

/// The first executable called `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[test]
fn issue_8_cgo_header_in_subdir() {
    let (repo, mut env) = cgo_repo("#include \"inc/y.h\"");
    repo.write("cmd/native/inc/y.h", "#define VALUE 1\n");
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "value 1");

    repo.write("cmd/native/inc/y.h", "#define VALUE 2\n");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = cgo_reference(&repo, &mut env);
    assert_rebuilt(&first, &second, &reference, Some("value 2"));
}

#[test]
fn issue_8_cgo_cpath_switched() {
    let (repo, mut env) = cgo_repo("#include <y.h>");
    let includes = tempfile::tempdir().expect("tempdir");
    for (dir, value) in [("one", 1), ("two", 2)] {
        let d = includes.path().join(dir);
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(d.join("y.h"), format!("#define VALUE {value}\n")).expect("write");
    }
    env.set("CPATH", includes.path().join("one"));
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "value 1");

    env.set("CPATH", includes.path().join("two"));
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = cgo_reference(&repo, &mut env);
    assert_rebuilt(&first, &second, &reference, Some("value 2"));
}

#[test]
fn issue_8_cgo_compiler_on_path() {
    let gcc = on_path("gcc").expect(
        "this test needs gcc on PATH: install it (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc)",
    );
    let (repo, mut env) = cgo_repo("#ifndef VALUE\n#define VALUE 1\n#endif");
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "value 1");

    // Another `gcc` earlier on PATH that reports exactly what the real one reports (version,
    // driver commands, search paths) but compiles with -DVALUE=2.
    let bin = tempfile::tempdir().expect("tempdir");
    write_script(
        &bin.path().join("gcc"),
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do\n\tcase \"$a\" in\n\t--version | -v | -dumpversion | -dumpfullversion | -dumpmachine | -dumpspecs | '-###' | -print-* | --print-*)\n\t\texec '{gcc}' \"$@\" ;;\n\tesac\ndone\nexec '{gcc}' -DVALUE=2 \"$@\"\n",
            gcc = gcc.display()
        ),
    );
    let mut path = vec![bin.path().to_path_buf()];
    path.extend(std::env::split_paths(env.get("PATH").expect("PATH")));
    env.set("PATH", std::env::join_paths(path).expect("join PATH"));
    let version = |env: &GoEnv| {
        let out = env
            .command("gcc")
            .arg("--version")
            .output()
            .expect("gcc --version");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        version(&env),
        version(&GoEnv::new()),
        "premise: the other gcc reports the same version"
    );
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = cgo_reference(&repo, &mut env);
    assert_rebuilt(&first, &second, &reference, Some("value 2"));
}

/// A header found through a `#cgo CFLAGS: -I` directory outside the repository (a system or vendored
/// SDK include directory): changing only its content rebuilds. go's cache does not hash it.
#[test]
fn cgo_include_dir_header_changed() {
    let sdk = tempfile::tempdir().expect("tempdir");
    let (repo, mut env) = cgo_repo(&format!(
        "#cgo CFLAGS: -I{}\n#include <sdk_value.h>",
        sdk.path().display()
    ));
    std::fs::write(sdk.path().join("sdk_value.h"), "#define VALUE 1\n").expect("write");
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "value 1");

    std::fs::write(sdk.path().join("sdk_value.h"), "#define VALUE 2\n").expect("write");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = cgo_reference(&repo, &mut env);
    assert_rebuilt(&first, &second, &reference, Some("value 2"));
    // And the unchanged state is a hit again: the scan does not make cgo builds uncacheable.
    let third = build(&repo, repo.path(), &env, &[]);
    assert!(third.cached, "an unchanged cgo build missed");
}

/// A header of the repository outside the package directory (`-I${SRCDIR}/../../include`).
#[test]
fn cgo_repo_header_outside_package_changed() {
    let (repo, mut env) = cgo_repo("#cgo CFLAGS: -I${SRCDIR}/../../include\n#include \"shared.h\"");
    repo.write("include/shared.h", "#define VALUE 1\n");
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "value 1");

    repo.write("include/shared.h", "#define VALUE 2\n");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = cgo_reference(&repo, &mut env);
    assert_rebuilt(&first, &second, &reference, Some("value 2"));
}

/// A header found through `#cgo pkg-config:` (the `.pc` file's `Cflags`): changing only the header
/// rebuilds.
#[test]
fn cgo_pkg_config_header_changed() {
    on_path("pkg-config").expect(
        "this test needs pkg-config on PATH: install it (Debian/Ubuntu: apt-get install pkgconf)",
    );
    let sdk = tempfile::tempdir().expect("tempdir");
    let include = sdk.path().join("include");
    std::fs::create_dir(&include).expect("mkdir");
    std::fs::write(
        sdk.path().join("kilnanswer.pc"),
        format!(
            "Name: kilnanswer\nDescription: test\nVersion: 1.0\nCflags: -I{}\nLibs:\n",
            include.display()
        ),
    )
    .expect("write .pc");
    std::fs::write(include.join("kilnanswer.h"), "#define VALUE 1\n").expect("write");
    let (repo, mut env) = cgo_repo("#cgo pkg-config: kilnanswer\n#include <kilnanswer.h>");
    env.set("PKG_CONFIG_PATH", sdk.path());
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "value 1");

    std::fs::write(include.join("kilnanswer.h"), "#define VALUE 2\n").expect("write");
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = cgo_reference(&repo, &mut env);
    assert_rebuilt(&first, &second, &reference, Some("value 2"));
}

/// A static library the external linker takes from a `-L` directory: a new build of it (same
/// name, same header) rebuilds the service.
#[test]
fn cgo_static_library_changed() {
    let gcc = on_path("gcc").expect(
        "this test needs gcc on PATH: install it (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc)",
    );
    let ar = on_path("ar").expect(
        "this test needs ar on PATH: install binutils (Debian/Ubuntu: apt-get install binutils)",
    );
    let lib = tempfile::tempdir().expect("tempdir");
    let make_lib = |value: u32| {
        let src = lib.path().join("answer.c");
        std::fs::write(&src, format!("int VALUE = {value};\n")).expect("write");
        let obj = lib.path().join("answer.o");
        let ok = Command::new(&gcc)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .expect("gcc");
        assert!(ok.success(), "gcc -c failed");
        let archive = lib.path().join("libanswer.a");
        let _ = std::fs::remove_file(&archive);
        let ok = Command::new(&ar)
            .arg("rcs")
            .arg(&archive)
            .arg(&obj)
            .status()
            .expect("ar");
        assert!(ok.success(), "ar failed");
    };
    make_lib(1);
    let (repo, mut env) = cgo_repo(&format!(
        "#cgo LDFLAGS: -L{} -lanswer\nextern int VALUE;",
        lib.path().display()
    ));
    let first = build(&repo, repo.path(), &env, &[]);
    assert_eq!(first.stdout, "value 1");

    make_lib(2);
    let second = build(&repo, repo.path(), &env, &[]);
    let reference = cgo_reference(&repo, &mut env);
    assert_rebuilt(&first, &second, &reference, Some("value 2"));
}

/// A build flag whose inputs kiln cannot hash (`-pkgdir` reads compiled packages from a directory)
/// makes the target uncacheable: it builds every time, is never stored, and says why.
#[test]
fn issue_8_unhashable_goflag_is_uncacheable() {
    let repo = Repo::new();
    repo.write("go.mod", "module example.com/pkgdir\n\ngo 1.22\n")
        .write(
            "cmd/app/main.go",
            "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"app\") }\n",
        );
    let pkgdir = tempfile::tempdir().expect("tempdir");
    let mut env = GoEnv::new();
    env.set("GOFLAGS", format!("-pkgdir={}", pkgdir.path().display()));
    for run in 0..2 {
        let r = repo.build_json_env(repo.path(), &["--platform", "linux/amd64"], &env);
        let t = &targets(&r)[0];
        assert_eq!(
            t["cached"], false,
            "run {run}: an uncacheable target was a hit: {t:#}"
        );
        let note = t["not_cached"].as_str().unwrap_or_default();
        assert!(note.contains("-pkgdir"), "run {run}: note {note:?}");
    }
    let stats = repo.kiln(&["cache", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats json");
    assert_eq!(stats["actions"], 0, "nothing stored: {stats:#}");
}

/// `(cached, total)` of the `go list` answers a build report says its plan used.
fn go_lists(report: &serde_json::Value) -> (u64, u64) {
    let n = |k: &str| {
        report["go_lists"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("no go_lists.{k} in {report:#}"))
    };
    (n("cached"), n("total"))
}

#[test]
fn issue_8_go_list_answers_reused_until_the_tree_changes() {
    common::require_go();
    let repo = app("package main\n\nfunc main() { println(\"a\") }\n");
    // The first build would create dist/ and so change the root directory it witnesses.
    std::fs::create_dir_all(repo.path().join("dist")).unwrap();
    // Files written within go's timestamp granularity of the recording vouch for nothing (the
    // racy rule): let them settle so the second build can use the recorded answers.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let first = repo.build_json(&[]);
    assert_eq!(go_lists(&first).0, 0, "nothing recorded yet: {first:#}");
    let second = repo.build_json(&[]);
    let (cached, total) = go_lists(&second);
    assert!(
        total > 0 && cached == total,
        "unchanged tree: every answer recorded, got {cached}/{total}"
    );
    assert!(targets(&second)[0]["cached"].as_bool().unwrap());

    // A new command anywhere below ./... must be found, not hidden by a recorded answer.
    repo.write(
        "tools/gen/main.go",
        "package main\n\nfunc main() { println(\"gen\") }\n",
    );
    let third = repo.build_json(&[]);
    let services: Vec<&str> = targets(&third)
        .iter()
        .map(|t| t["service"].as_str().unwrap())
        .collect();
    assert!(services.contains(&"gen"), "new main missed: {services:?}");
    assert!(go_lists(&third).0 < go_lists(&third).1);

    // --no-cache reads no recorded answer either.
    let fresh = repo.build_json(&["--no-cache"]);
    assert_eq!(go_lists(&fresh).0, 0);
}

#[test]
fn issue_8_a_settled_no_op_starts_no_go_process() {
    common::require_go();
    let repo = app("package main\n\nfunc main() { println(\"a\") }\n");
    std::fs::create_dir_all(repo.path().join("dist")).unwrap();
    // Every `go` kiln starts is logged by a wrapper in front of the real one.
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut env = GoEnv::new();
    let real_go = real_go(&env);
    let log = scratch.path().join("go.log");
    let wrapper = scratch.path().join("go");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real_go.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.set("KILN_GO", &wrapper);
    // Let the files settle past the racy window so the first run's answers can vouch.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    repo.build_json_env(repo.path(), &[], &env);
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        calls().contains("env -json"),
        "first run asks go: {}",
        calls()
    );
    let before = calls().lines().count();
    let second = repo.build_json_env(repo.path(), &[], &env);
    assert!(targets(&second)[0]["cached"].as_bool().unwrap());
    let after: Vec<String> = calls().lines().skip(before).map(str::to_string).collect();
    assert!(after.is_empty(), "a settled no-op ran go: {after:?}");

    // go.mod edited: `go env` (and `go list`) run again.
    repo.write("go.mod", &GO_MOD.replace("go 1.22", "go 1.23"));
    repo.build_json_env(repo.path(), &[], &env);
    let again: Vec<String> = calls().lines().skip(before).map(str::to_string).collect();
    assert!(
        again.iter().any(|c| c.contains("env -json")),
        "go.mod changed but go env was not asked: {again:?}"
    );
}
