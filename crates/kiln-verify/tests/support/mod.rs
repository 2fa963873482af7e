//! Builds small Go programs with the real toolchain, once per test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kiln_test_support::GoModule;

/// The three programs of the fixture module and how each fixture builds one.
pub struct Fixture {
    pub name: &'static str,
    pub package: &'static str,
    pub env: &'static [(&'static str, &'static str)],
    pub args: &'static [&'static str],
}

const HELLO: &str =
    "package main\n\nimport \"example.com/kilndep\"\n\nfunc main() { println(kilndep.Name()) }\n";
const NETUSER: &str = "package main\n\nimport (\n\t\"net\"\n\t\"os/user\"\n)\n\n\
func main() {\n\t_, _ = net.LookupHost(\"localhost\")\n\t_, _ = user.Current()\n}\n";
const CGO: &str =
    "package main\n\n/*\nstatic int answer(void) { return 42; }\n*/\nimport \"C\"\n\n\
import \"example.com/kilndep\"\n\nfunc main() { println(kilndep.Name(), int(C.answer())) }\n";

/// The `go` on PATH; fails the test with an install hint when there is none.
pub fn go() -> &'static Path {
    static GO: OnceLock<PathBuf> = OnceLock::new();
    GO.get_or_init(|| {
        kiln_test_support::require_go();
        PathBuf::from("go")
    })
}

/// `go env GOVERSION` of the toolchain the fixtures are built with.
pub fn go_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let out = Command::new(go())
            .args(["env", "GOVERSION"])
            .output()
            .expect("run go env");
        assert!(out.status.success(), "go env GOVERSION failed");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    })
}

/// The fixture module: `app` (main module, three commands) requiring `example.com/kilndep`,
/// replaced by the sibling directory `dep` so no network is needed.
fn workspace() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Under cargo's per-target tmp dir so `cargo clean` removes it; the dir outlives the
        // statics (they are never dropped), so clear leftovers of earlier runs first.
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(entries) = std::fs::read_dir(base) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("kiln-verify-go-")
                    && old.is_some_and(|age| age.as_secs() > 3600)
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("kiln-verify-go-")
            .tempdir_in(base)
            .expect("create fixture dir")
            .keep();
        GoModule::new("example.com/kilndep")
            .file(
                "dep.go",
                "package kilndep\n\nfunc Name() string { return \"dep\" }\n",
            )
            .write_to(&dir.join("dep"));
        GoModule::new("example.com/kilnapp")
            .require("example.com/kilndep", "v0.0.0")
            .replace("example.com/kilndep", "../dep")
            .file("cmd/hello/main.go", HELLO)
            .file("cmd/netuser/main.go", NETUSER)
            .file("cmd/cgo/main.go", CGO)
            .write_to(&dir.join("app"));
        dir
    })
}

/// Builds `fixture` once and returns the binary's path.
pub fn build(fixture: &Fixture) -> PathBuf {
    let out = workspace().join("out").join(fixture.name);
    let mut cmd = Command::new(go());
    cmd.current_dir(workspace().join("app"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .env_remove("GOOS")
        .env_remove("GOARCH")
        .envs(fixture.env.iter().copied())
        .arg("build")
        .arg("-o")
        .arg(&out)
        .args(fixture.args)
        .arg(format!("./cmd/{}", fixture.package));
    let output = cmd.output().expect("run go build");
    assert!(
        output.status.success(),
        "go build for fixture {} failed ({cmd:?}); the cgo fixtures need gcc and glibc's static \
         libraries (apt-get install -y gcc libc6-dev):\n{}",
        fixture.name,
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Declares a lazily built fixture: `fixture!(NAME, package, env, args)` gives `fn NAME() -> &Path`.
#[macro_export]
macro_rules! fixture {
    ($fn:ident, $package:literal, $env:expr, $args:expr) => {
        fn $fn() -> &'static std::path::Path {
            static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
            BUILT.get_or_init(|| {
                support::build(&support::Fixture {
                    name: stringify!($fn),
                    package: $package,
                    env: $env,
                    args: $args,
                })
            })
        }
    };
}

/// `readelf` output, an independent reading of the same headers.
pub fn readelf(args: &[&str], file: &Path) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("readelf not runnable ({e}): apt-get install -y binutils"));
    assert!(out.status.success(), "readelf {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `objdump -p` output (binutils reads PE as well as ELF).
pub fn objdump_p(file: &Path) -> String {
    let out = Command::new("objdump")
        .arg("-p")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("objdump not runnable ({e}): apt-get install -y binutils"));
    assert!(out.status.success(), "objdump -p {} failed", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}
