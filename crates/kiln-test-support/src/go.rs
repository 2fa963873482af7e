//! The Go toolchain and the small Go modules tests write as fixtures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to get Go, for every test that cannot find it.
pub const GO_INSTALL: &str = "install Go 1.22 or newer (https://go.dev/dl) and put `go` on PATH";

/// Fails (never skips) with [`GO_INSTALL`] unless `go version` runs.
pub fn require_go() {
    let ok = Command::new("go")
        .arg("version")
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "these tests need the Go toolchain: {GO_INSTALL}"
    );
}

/// A Go module as a test fixture: its `go.mod` (module path, `go` line, requirements,
/// replacements) and its source files, written into a directory with [`GoModule::write_to`].
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// kiln_test_support::GoModule::new("example.com/hello")
///     .main("cmd/hello", "fmt.Println(\"hello\")")
///     .write_to(dir.path());
/// assert!(dir.path().join("cmd/hello/main.go").is_file());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct GoModule {
    path: String,
    go: String,
    requires: Vec<(String, String)>,
    replaces: Vec<(String, String)>,
    files: Vec<(PathBuf, String)>,
}

impl GoModule {
    /// A module named `path` with a `go 1.22` line and no files yet.
    pub fn new(path: &str) -> Self {
        Self {
            path: path.into(),
            go: "1.22".into(),
            requires: Vec::new(),
            replaces: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Sets the `go` line (the language version, e.g. `1.21`).
    pub fn go(mut self, version: &str) -> Self {
        self.go = version.into();
        self
    }

    /// Adds `require module version`.
    pub fn require(mut self, module: &str, version: &str) -> Self {
        self.requires.push((module.into(), version.into()));
        self
    }

    /// Adds `replace module => target` (a directory such as `../dep`, or `other vX`).
    pub fn replace(mut self, module: &str, target: &str) -> Self {
        self.replaces.push((module.into(), target.into()));
        self
    }

    /// Adds a file at `rel` (relative to the module root) with `text`.
    pub fn file(mut self, rel: &str, text: &str) -> Self {
        self.files.push((rel.into(), text.into()));
        self
    }

    /// Adds `dir/main.go`: `package main` importing `fmt` with `body` as `main`'s body.
    pub fn main(self, dir: &str, body: &str) -> Self {
        let rel = if dir.is_empty() || dir == "." {
            "main.go".to_owned()
        } else {
            format!("{dir}/main.go")
        };
        self.file(&rel, &main_go(&["fmt"], body))
    }

    /// The text of its `go.mod`.
    pub fn go_mod(&self) -> String {
        let mut s = format!("module {}\n\ngo {}\n", self.path, self.go);
        if !self.requires.is_empty() {
            s.push_str("\nrequire (\n");
            for (m, v) in &self.requires {
                let _ = writeln!(s, "\t{m} {v}");
            }
            s.push_str(")\n");
        }
        for (m, to) in &self.replaces {
            let _ = write!(s, "\nreplace {m} => {to}\n");
        }
        s
    }

    /// Writes `go.mod` and every file below `dir` (creating directories) and returns `dir`.
    /// Writes no `go.sum`: tests that need one add it as a file.
    pub fn write_to<'a>(&self, dir: &'a Path) -> &'a Path {
        write_file(&dir.join("go.mod"), &self.go_mod());
        for (rel, text) in &self.files {
            write_file(&dir.join(rel), text);
        }
        dir
    }

    /// Publishes this module as `version` into a `GOPROXY=file://<proxy>` directory: adds the
    /// version to `@v/list` and writes `.info`, `.mod` and the `.zip` (every file under
    /// `module@version/`) as the module proxy protocol lays them out. Fails (never skips) with
    /// the install command when python3, which writes the zip, is missing.
    pub fn publish(&self, proxy: &Path, version: &str) {
        let at = proxy.join(&self.path).join("@v");
        let go_mod = self.go_mod();
        write_file(&at.join(format!("{version}.mod")), &go_mod);
        write_file(
            &at.join(format!("{version}.info")),
            &format!("{{\"Version\":\"{version}\",\"Time\":\"2024-01-02T03:04:05Z\"}}"),
        );
        let stage = tempfile::tempdir().expect("tempdir");
        self.write_to(stage.path());
        let zip = at.join(format!("{version}.zip"));
        let status = Command::new("python3")
            .args(["-c", ZIP_MODULE])
            .arg(&zip)
            .arg(format!("{}@{version}", self.path))
            .arg(stage.path())
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 ({e}) to write a module zip: apt-get install -y python3")
            });
        assert!(status.success(), "writing {} failed", zip.display());
        let list = at.join("list");
        let mut versions = std::fs::read_to_string(&list).unwrap_or_default();
        versions.push_str(version);
        versions.push('\n');
        write_file(&list, &versions);
    }
}

/// Zips the files below argv[3] as argv[2]/<relative path> into argv[1]: regular files only, no
/// directory entries (the module zip format has none).
const ZIP_MODULE: &str = r#"
import os, sys, zipfile
out, prefix, root = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(out, "w") as z:
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            path = os.path.join(d, f)
            z.write(path, prefix + "/" + os.path.relpath(path, root).replace(os.sep, "/"))
"#;

/// The source of a `package main` that imports `imports` and runs `body`.
pub fn main_go(imports: &[&str], body: &str) -> String {
    let imports = match imports {
        [] => String::new(),
        [one] => format!("import \"{one}\"\n\n"),
        many => {
            let lines: String = many.iter().map(|i| format!("\t\"{i}\"\n")).collect();
            format!("import (\n{lines})\n\n")
        }
    };
    format!("package main\n\n{imports}func main() {{\n\t{body}\n}}\n")
}

fn write_file(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mod_lists_requirements_and_replacements() {
        let m = GoModule::new("example.com/app")
            .go("1.21")
            .require("example.org/dep", "v1.2.3")
            .require("example.org/other", "v0.4.0")
            .replace("example.org/dep", "../dep");
        assert_eq!(
            m.go_mod(),
            "module example.com/app\n\ngo 1.21\n\nrequire (\n\texample.org/dep v1.2.3\n\texample.org/other v0.4.0\n)\n\nreplace example.org/dep => ../dep\n"
        );
        assert_eq!(
            GoModule::new("example.com/m").go_mod(),
            "module example.com/m\n\ngo 1.22\n"
        );
    }

    /// Runs a `go` command with the local toolchain, asserting success; returns stdout.
    fn go_run(cmd: &mut Command) -> String {
        let out = cmd.env("GOTOOLCHAIN", "local").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn the_written_module_builds_and_runs() {
        require_go();
        let dir = tempfile::tempdir().unwrap();
        GoModule::new("example.com/hello")
            .main("cmd/hello", "fmt.Println(\"hello from the fixture\")")
            .write_to(dir.path());
        let out = go_run(
            Command::new("go")
                .args(["run", "./cmd/hello"])
                .current_dir(dir.path())
                .env("GOFLAGS", "-buildvcs=false")
                .env("GOPROXY", "off"),
        );
        assert_eq!(out, "hello from the fixture\n");
    }

    #[test]
    fn a_published_module_is_fetched_through_the_file_proxy() {
        require_go();
        let dir = tempfile::tempdir().unwrap();
        let proxy = dir.path().join("proxy");
        let dep = GoModule::new("example.org/dep").file(
            "dep.go",
            "package dep\n\nfunc Hello() string { return \"hello from v1.2.3\" }\n",
        );
        dep.publish(&proxy, "v1.0.0");
        dep.publish(&proxy, "v1.2.3");
        assert_eq!(
            std::fs::read_to_string(proxy.join("example.org/dep/@v/list")).unwrap(),
            "v1.0.0\nv1.2.3\n"
        );
        let app = dir.path().join("app");
        GoModule::new("example.com/app")
            .require("example.org/dep", "v1.2.3")
            .file(
                "main.go",
                &main_go(&["fmt", "example.org/dep"], "fmt.Println(dep.Hello())"),
            )
            .write_to(&app);
        let out = go_run(
            Command::new("go")
                .args(["run", "."])
                .current_dir(&app)
                .env("GOPROXY", format!("file://{}", proxy.display()))
                .env("GOFLAGS", "-mod=mod -modcacherw -buildvcs=false")
                .env("GOSUMDB", "off")
                .env("GOWORK", "off")
                .env("GOMODCACHE", dir.path().join("modcache")),
        );
        assert_eq!(out, "hello from v1.2.3\n");
    }

    #[test]
    fn main_go_imports_one_or_many() {
        assert_eq!(
            main_go(&["os"], "os.Exit(0)"),
            "package main\n\nimport \"os\"\n\nfunc main() {\n\tos.Exit(0)\n}\n"
        );
        assert!(main_go(&["fmt", "os"], "").contains("import (\n\t\"fmt\"\n\t\"os\"\n)\n"));
        assert_eq!(main_go(&[], ""), "package main\n\nfunc main() {\n\t\n}\n");
    }
}
