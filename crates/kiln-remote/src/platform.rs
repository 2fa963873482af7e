//! The platform properties that tie a remote action to workers with the same Go toolchain. The
//! client puts them on every Action and `kiln worker` advertises them; both compute them here, so
//! they agree by construction.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_types::Digest;

/// Platform key of the Go version (`go1.25.4`).
pub const GO_VERSION_KEY: &str = "kiln-go-version";
/// Platform key of the toolchain hash: two Go installations of the same version built
/// differently (another GOEXPERIMENT, a patched compiler) must not share actions.
pub const GO_TOOLCHAIN_KEY: &str = "kiln-go-toolchain";

/// The properties of the Go toolchain `go` (a path or a name on PATH): `OSFamily` (GOOS), `ISA`
/// (`x86-64`, `aarch64` or GOARCH), [`GO_VERSION_KEY`] and [`GO_TOOLCHAIN_KEY`] (sha256 over the
/// `go` binary, the tools and the standard library, see `toolchain_hash`), sorted by name as REAPI
/// asks.
pub fn go_platform(go: &Path) -> Result<Vec<(String, String)>, String> {
    describe_go(go).map(|(_, props)| props)
}

/// The GOROOT of `go` and its properties ([`go_platform`]).
pub fn describe_go(go: &Path) -> Result<(PathBuf, Vec<(String, String)>), String> {
    let out = Command::new(go)
        .args(["env", "GOVERSION", "GOROOT", "GOHOSTOS", "GOHOSTARCH"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|e| format!("running {} env: {e}", go.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} env failed: {}",
            go.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let [version, goroot, goos, goarch] = lines[..] else {
        return Err(format!("unexpected go env output: {text:?}"));
    };
    let isa = match goarch {
        "amd64" => "x86-64",
        "arm64" => "aarch64",
        other => other,
    };
    let mut props = vec![
        ("ISA".to_string(), isa.to_string()),
        ("OSFamily".to_string(), goos.to_string()),
        (
            GO_TOOLCHAIN_KEY.to_string(),
            toolchain_hash(Path::new(goroot), goos, goarch)?,
        ),
        (GO_VERSION_KEY.to_string(), version.to_string()),
    ];
    props.sort();
    Ok((PathBuf::from(goroot), props))
}

/// sha256 over a manifest of everything in GOROOT a build reads: the `go` command, every tool of
/// the host, `VERSION`, `go.env`, `pkg/include` and the standard library's sources (test files and
/// `testdata` left out: builds never read them). kiln's cache key hashes the local standard library
/// by content; a worker whose GOROOT differs in any of it gets another hash, so it never builds
/// bytes for a key they do not belong to.
fn toolchain_hash(goroot: &Path, goos: &str, goarch: &str) -> Result<String, String> {
    let mut files: Vec<PathBuf> = vec![
        PathBuf::from("bin/go"),
        PathBuf::from("VERSION"),
        PathBuf::from("go.env"),
    ];
    let tools = PathBuf::from("pkg/tool").join(format!("{goos}_{goarch}"));
    for dir in [tools, PathBuf::from("pkg/include"), PathBuf::from("src")] {
        walk(goroot, &dir, &mut files)?;
    }
    let mut manifest = String::new();
    for rel in files {
        let path = goroot.join(&rel);
        match std::fs::File::open(&path).and_then(Digest::of_reader) {
            Ok((digest, size)) => {
                manifest.push_str(&format!("{} {size} {}\n", rel.display(), digest.hex()))
            }
            // VERSION and go.env are absent from some builds of Go: absent is part of the hash.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                manifest.push_str(&format!("{} absent\n", rel.display()))
            }
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        }
    }
    Ok(Digest::of_bytes(manifest.as_bytes()).hex())
}

/// Every file below `root/dir` a build can read, relative to `root`, in sorted order.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let full = root.join(dir);
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(&full)
        .map_err(|e| format!("reading {}: {e}", full.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let dir = e.file_type().ok()?.is_dir();
            Some((name, dir))
        })
        .collect();
    entries.sort();
    for (name, is_dir) in entries {
        if is_dir {
            if name != "testdata" {
                walk(root, &dir.join(&name), out)?;
            }
        } else if !name.ends_with("_test.go") {
            out.push(dir.join(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_platform_names_the_local_toolchain_sorted() {
        let props = go_platform(Path::new("go")).expect("go on PATH");
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("OSFamily").as_deref(), Some(std::env::consts::OS));
        assert!(get(GO_VERSION_KEY).is_some_and(|v| v.starts_with("go1.")));
        assert_eq!(get(GO_TOOLCHAIN_KEY).map(|h| h.len()), Some(64));
        let mut sorted = props.clone();
        sorted.sort();
        assert_eq!(props, sorted);
        assert_eq!(go_platform(Path::new("go")).expect("go"), props);
    }

    #[test]
    fn issue_13_toolchain_hash_follows_every_file_a_build_reads() {
        let g = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let p = g.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("bin/go", "go");
        put("pkg/tool/linux_amd64/compile", "compile");
        put("pkg/include/textflag.h", "#define NOSPLIT 4");
        put("src/fmt/print.go", "package fmt");
        put("src/fmt/print_test.go", "package fmt");
        put("src/fmt/testdata/x.txt", "x");
        let hash = || toolchain_hash(g.path(), "linux", "amd64").unwrap();
        let a = hash();
        assert_eq!(a, hash());
        // Files builds never read leave it alone.
        put("src/fmt/print_test.go", "package fmt // changed");
        put("src/fmt/testdata/x.txt", "y");
        assert_eq!(a, hash());
        // Each input a build reads changes it.
        let mut last = a;
        for (rel, text) in [
            ("src/fmt/print.go", "package fmt // patched"),
            ("pkg/tool/linux_amd64/cgo", "a new tool"),
            ("pkg/include/textflag.h", "#define NOSPLIT 5"),
            ("go.env", "GOTOOLCHAIN=auto"),
            ("VERSION", "go1.99"),
            ("bin/go", "another go"),
        ] {
            put(rel, text);
            let now = hash();
            assert_ne!(now, last, "{rel}");
            last = now;
        }
    }
}
