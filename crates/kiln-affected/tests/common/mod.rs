//! A fixture monorepo in a real git repository, built with the real `go` and `git`, with a local
//! module proxy (`GOPROXY=file://...`) so dependency version bumps need no network.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use kiln_affected::{Affected, AffectedRequest};
use kiln_test_support::GoModule;
use tempfile::TempDir;

/// The shared proxy and module cache, and the environment that points go at them.
pub struct GoEnv {
    _dir: TempDir,
    pub vars: Vec<(String, String)>,
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

/// Sets up the proxy once per test process and points this process's environment at it (the
/// library runs `go` with the inherited environment, exactly as the CLI does).
pub fn go_env() -> &'static GoEnv {
    static ENV: OnceLock<GoEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        kiln_test_support::require_go();
        kiln_test_support::require_tool("git", "git");
        let dir = tempfile::tempdir().expect("tempdir");
        let proxy = dir.path().join("proxy");
        for v in ["v1.0.0", "v1.1.0"] {
            for (module, pkg) in [("example.com/dep", "dep"), ("example.com/testonly", "testonly")] {
                GoModule::new(module)
                    .file(
                        &format!("{pkg}.go"),
                        &format!("package {pkg}\n\n// Version of this module.\nfunc Version() string {{ return \"{v}\" }}\n"),
                    )
                    .publish(&proxy, v);
            }
        }
        let vars: Vec<(String, String)> = vec![
            ("GOPROXY".into(), format!("file://{}", proxy.display())),
            ("GOSUMDB".into(), "off".into()),
            (
                "GOMODCACHE".into(),
                dir.path().join("modcache").display().to_string(),
            ),
            ("GOFLAGS".into(), "-modcacherw -buildvcs=false".into()),
            ("GOTOOLCHAIN".into(), "local".into()),
            ("GOWORK".into(), "off".into()),
            ("GIT_AUTHOR_NAME".into(), "t".into()),
            ("GIT_AUTHOR_EMAIL".into(), "t@example.com".into()),
            ("GIT_COMMITTER_NAME".into(), "t".into()),
            ("GIT_COMMITTER_EMAIL".into(), "t@example.com".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ];
        for (k, v) in &vars {
            // Set once, before any test thread runs a command (every test calls this first and
            // the OnceLock makes the others wait).
            std::env::set_var(k, v);
        }
        GoEnv { _dir: dir, vars }
    })
}

/// A fixture repository.
pub struct Repo {
    pub dir: TempDir,
}

impl Repo {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) -> &Self {
        write(&self.path().join(rel), content);
        self
    }

    pub fn run(&self, cmd: &str, args: &[&str]) -> String {
        run_in(self.path(), cmd, args)
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.run("git", args)
    }

    /// Commits everything with `msg`.
    pub fn commit(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--no-gpg-sign", "-m", msg]);
    }

    /// Plans every service for linux/amd64 and computes what changed for `req`.
    pub fn affected(&self, req: &AffectedRequest) -> Affected {
        affected_in(self.path(), req)
    }
}

pub fn run_in(dir: &Path, cmd: &str, args: &[&str]) -> String {
    go_env();
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn affected_in(dir: &Path, req: &AffectedRequest) -> Affected {
    let project = kiln_discover::Project::open(Path::new("go"), dir).expect("project");
    let config = kiln_config::Config::load(&project.root).expect("config");
    let plan = kiln_plan::plan(
        &project,
        &config,
        &kiln_plan::PlanRequest {
            patterns: Vec::new(),
            platforms: Some(vec!["linux/amd64".parse().expect("platform")]),
            vars: kiln_config::TemplateVars::default(),
            jobs: 2,
            list_cache: None,
            dir: None,
        },
    )
    .expect("plan");
    kiln_affected::affected(&plan, &config, req).expect("affected")
}

/// Names of the affected services.
pub fn names(a: &Affected) -> Vec<&str> {
    a.services.iter().map(|s| s.name.as_str()).collect()
}

/// The monorepo of the issue: `api` and `worker` share `internal/greet` (which embeds
/// `message.txt`); `api` alone uses `internal/billing` and declares `configs/api/*.yaml` as data;
/// `worker` alone uses the versioned module `example.com/dep`; `tool` uses nothing shared;
/// `example.com/testonly` is required only by a test. Committed on `main`, checked out on a
/// `feature` branch.
pub fn monorepo() -> Repo {
    go_env();
    let r = Repo {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    r.write("go.mod", "module example.com/shop\n\ngo 1.22\n")
        .write("README.md", "# shop\n")
        .write(
            "kiln.toml",
            "[build]\nplatforms = [\"linux/amd64\"]\n\n[services.api]\npackage = \"./cmd/api\"\ndata = [\"configs/api/*.yaml\"]\n\n[services.worker]\npackage = \"./cmd/worker\"\nenv = { MODE = \"batch\" }\n",
        )
        .write("configs/api/app.yaml", "port: 8080\n")
        .write("configs/other.yaml", "x: 1\n")
        .write(
            "internal/greet/greet.go",
            "package greet\n\nimport _ \"embed\"\n\n//go:embed message.txt\nvar message string\n\n// Message is the greeting.\nfunc Message() string { return message }\n",
        )
        .write("internal/greet/message.txt", "hello\n")
        .write("internal/billing/billing.go", "package billing\n\n// Price in cents.\nfunc Price() int { return 100 }\n")
        .write(
            "internal/billing/billing_test.go",
            "package billing\n\nimport (\n\t\"testing\"\n\n\t\"example.com/testonly\"\n)\n\nfunc TestPrice(t *testing.T) { _ = testonly.Version(); if Price() != 100 { t.Fatal() } }\n",
        )
        .write(
            "cmd/api/main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/shop/internal/billing\"\n\t\"example.com/shop/internal/greet\"\n)\n\nfunc main() { fmt.Println(greet.Message(), billing.Price()) }\n",
        )
        .write(
            "cmd/worker/main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/dep\"\n\t\"example.com/shop/internal/greet\"\n)\n\nfunc main() { fmt.Println(greet.Message(), dep.Version()) }\n",
        )
        .write("cmd/tool/main.go", "package main\n\nfunc main() { println(\"tool\") }\n");
    r.run(
        "go",
        &[
            "get",
            "example.com/dep@v1.0.0",
            "example.com/testonly@v1.0.0",
        ],
    );
    r.run("go", &["mod", "tidy"]);
    r.git(&["init", "-q", "-b", "main"]);
    r.commit("initial");
    r.git(&["checkout", "-q", "-b", "feature"]);
    r
}

/// The default request: base = merge-base with the default branch, head = working tree.
pub fn worktree() -> AffectedRequest {
    AffectedRequest::default()
}
