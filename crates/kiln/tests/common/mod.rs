//! Shared fixtures for CLI tests: throw-away Go repositories, an isolated cache, and the real
//! `kiln` binary and `go` toolchain.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// Fails (never skips) when `go` is not installed.
pub use kiln_test_support::require_go;

/// A temporary repository plus its own kiln cache.
pub struct Repo {
    pub dir: TempDir,
    pub cache: TempDir,
}

impl Repo {
    /// An empty repository.
    pub fn new() -> Self {
        require_go();
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The repository root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating parents).
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
        self
    }

    /// `kiln ARGS` in the repository with the isolated cache.
    pub fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_in(self.path(), args)
    }

    /// `kiln ARGS` in `dir` with the isolated cache.
    pub fn kiln_in(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .current_dir(dir)
            .env("KILN_CACHE_DIR", self.cache.path())
            .env_remove("KILN_DEBUG_KEYS")
            .env_remove("SOURCE_DATE_EPOCH")
            // Tests run under GitHub Actions must not annotate the job or write its summary.
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .output()
            .expect("run kiln")
    }

    /// Runs `kiln COMMAND --json ARGS`, asserting success, and returns the parsed output.
    pub fn json(&self, command: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec![command, "--json"];
        all.extend_from_slice(args);
        let out = self.kiln(&all);
        assert!(
            out.status.success(),
            "kiln {all:?} failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("kiln --json prints JSON")
    }

    /// `kiln build --json ARGS`, asserting success.
    pub fn build_json(&self, args: &[&str]) -> serde_json::Value {
        self.json("build", args)
    }

    /// `kiln image --json ARGS`, asserting success.
    pub fn image_json(&self, args: &[&str]) -> serde_json::Value {
        self.json("image", args)
    }

    /// A second checkout of the same tree (including `.git`) at another path, with an empty cache.
    pub fn copy(&self) -> Repo {
        let r = Repo::new();
        let st = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.path().display()))
            .arg(r.path())
            .status()
            .expect("cp");
        assert!(st.success(), "cp -a failed");
        r
    }

    /// Runs `git` in the repository.
    pub fn git(&self, args: &[&str]) {
        let st = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git");
        assert!(
            st.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
}

/// A module `example.com/shop` with two services sharing `internal/greet` (with an embedded file).
pub fn shop() -> Repo {
    let r = Repo::new();
    r.write("go.mod", "module example.com/shop\n\ngo 1.22\n")
        .write(
            "internal/greet/greet.go",
            "package greet\n\nimport _ \"embed\"\n\n//go:embed message.txt\nvar message string\n\nfunc Message() string { return message }\n",
        )
        .write("internal/greet/message.txt", "hello\n")
        .write(
            "cmd/api/main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n\n\t\"example.com/shop/internal/greet\"\n)\n\nvar version = \"dev\"\n\nfunc main() {\n\thttp.HandleFunc(\"/\", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, greet.Message(), version) })\n\t_ = http.ListenAndServe(\":8080\", nil)\n}\n",
        )
        .write(
            "cmd/worker/main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\t\"os/user\"\n\n\t\"example.com/shop/internal/greet\"\n)\n\nfunc main() {\n\tu, _ := user.Current()\n\tfmt.Println(greet.Message(), u)\n}\n",
        );
    r
}

/// The targets array of a build report.
pub fn targets(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["targets"].as_array().expect("targets array")
}

/// sha256 of every target's binary, by `"service" "platform"` label, sorted: what two builds of
/// one commit must agree on.
pub fn binary_digests(report: &serde_json::Value) -> Vec<(String, String)> {
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

/// The target for `service` on `platform`.
pub fn target<'a>(
    report: &'a serde_json::Value,
    service: &str,
    platform: &str,
) -> &'a serde_json::Value {
    targets(report)
        .iter()
        .find(|t| t["service"] == service && t["platform"] == platform)
        .unwrap_or_else(|| panic!("no target {service} {platform} in {report:#}"))
}

/// Absolute path of a target's binary.
pub fn binary_path(repo: &Path, t: &serde_json::Value) -> PathBuf {
    repo.join(t["path"].as_str().expect("path"))
}

/// An environment for `kiln` and `go` that inherits nothing from the test's own environment but
/// `PATH`: no user `go env` file (`GOENV=off`), no `GOFLAGS`, a throw-away `HOME` and module cache,
/// no network (`GOPROXY=off`), and a Go build cache shared by the tests of this crate under
/// cargo's per-test-target temp directory (warm across tests, never the user's own cache).
pub struct GoEnv {
    vars: std::collections::BTreeMap<String, std::ffi::OsString>,
    /// Directories that must live as long as the environment (HOME, fresh caches).
    dirs: Vec<TempDir>,
}

impl GoEnv {
    /// The isolated environment described above.
    pub fn new() -> Self {
        require_go();
        let home = tempfile::tempdir().expect("tempdir");
        let mut env = Self {
            vars: Default::default(),
            dirs: Vec::new(),
        };
        env.set("PATH", std::env::var_os("PATH").unwrap_or_default())
            .set("HOME", home.path())
            .set("GOENV", "off")
            .set("GOFLAGS", "")
            .set("GOTOOLCHAIN", "local")
            .set("GOPROXY", "off")
            .set("GOMODCACHE", home.path().join("gomodcache"))
            .set("GOCACHE", shared_gocache());
        env.dirs.push(home);
        env
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.vars.insert(key.into(), value.as_ref().to_owned());
        self
    }

    /// Removes a variable.
    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.vars.remove(key);
        self
    }

    /// A variable's value.
    pub fn get(&self, key: &str) -> Option<&std::ffi::OsStr> {
        self.vars.get(key).map(|v| v.as_os_str())
    }

    /// Points `GOCACHE` at a new empty directory (kept until the environment is dropped): for
    /// reference builds that must not see anything go cached before.
    pub fn fresh_gocache(&mut self) -> &mut Self {
        let dir = tempfile::tempdir().expect("tempdir");
        self.set("GOCACHE", dir.path());
        self.dirs.push(dir);
        self
    }

    /// `program` with exactly this environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear().envs(&self.vars);
        cmd
    }

    /// `go ARGS` in `dir` with this environment, asserting success; returns stdout.
    pub fn go(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .command("go")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run go");
        assert!(
            out.status.success(),
            "go {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The Go build cache shared by this crate's tests that use [`GoEnv`]: go's cache is safe for
/// concurrent use, and sharing it keeps cold standard-library compiles to one per test run.
pub fn shared_gocache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-build-cache")
}

impl Repo {
    /// `kiln ARGS` in `dir` with the isolated kiln cache and exactly `env` (nothing else inherited).
    pub fn kiln_env(&self, dir: &Path, args: &[&str], env: &GoEnv) -> Output {
        env.command(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .current_dir(dir)
            .env("KILN_CACHE_DIR", self.cache.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run kiln")
    }

    /// `kiln build --json ARGS` in `dir` with `env`, asserting success; returns the report.
    pub fn build_json_env(&self, dir: &Path, args: &[&str], env: &GoEnv) -> serde_json::Value {
        let mut all = vec!["build", "--json"];
        all.extend_from_slice(args);
        let out = self.kiln_env(dir, &all, env);
        assert!(
            out.status.success(),
            "kiln {all:?} failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("kiln --json prints JSON")
    }
}

/// A command's stdout as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Status, stdout and stderr of a command, for assertion messages.
pub fn dump(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Compiles in `go build -x` output: one `.../compile -o ...` command line per compiled package.
pub fn compiles(x_output: &str) -> usize {
    compiled_packages(x_output).len()
}

/// The import paths (`-p` of each compile command) of the packages go compiled, in `go build -x`
/// output (`main` for commands).
pub fn compiled_packages(x_output: &str) -> Vec<String> {
    x_output
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|prog| prog.ends_with("/compile") || prog == "compile")
                && l.contains(" -o ")
        })
        .map(|l| {
            let mut words = l.split_whitespace();
            words
                .by_ref()
                .find(|w| *w == "-p")
                .and_then(|_| words.next())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}
