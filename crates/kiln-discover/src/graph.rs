use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::goenv::run_go;
use crate::listcache::{ListCache, ListSource};
use crate::{DiscoverError, Project};

/// One `go list` question: which packages match `patterns` under this build context.
///
/// The answer depends on GOOS/GOARCH/CGO_ENABLED/tags (build constraints pick files), so the planner
/// asks once per distinct build context and shares the answer between the targets that have it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListRequest {
    /// Package patterns (`./...`, `./cmd/api`, import paths).
    pub patterns: Vec<String>,
    /// Environment that selects the context (GOOS, GOARCH, GOARM, CGO_ENABLED, GOFLAGS, ...).
    pub env: Vec<(String, String)>,
    /// Build tags.
    pub tags: Vec<String>,
    /// `-mod=` / `-modfile=` flags, which change what go resolves.
    pub mod_flags: Vec<String>,
    /// Whether to list dependencies too (`-deps`); without, only the matched packages.
    pub deps: bool,
}

/// A module as `go list` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Module {
    /// Module path.
    #[serde(default)]
    pub path: String,
    /// Version; empty for main and locally replaced modules.
    #[serde(default)]
    pub version: String,
    /// go.sum hash (`h1:...`) of the module content.
    #[serde(default)]
    pub sum: String,
    /// Whether this is a main (workspace) module.
    #[serde(default)]
    pub main: bool,
    /// Directory holding the module's files.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Its go.mod file.
    #[serde(default)]
    pub go_mod: Option<PathBuf>,
    /// The replacement, when go.mod replaces this module.
    #[serde(default)]
    pub replace: Option<Box<Module>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawError {
    #[serde(default)]
    err: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPackage {
    #[serde(default)]
    dir: PathBuf,
    import_path: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    standard: bool,
    #[serde(default)]
    dep_only: bool,
    #[serde(default)]
    module: Option<Module>,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    cgo_files: Vec<String>,
    #[serde(default)]
    ignored_go_files: Vec<String>,
    #[serde(default, rename = "CgoCPPFLAGS")]
    cgo_cppflags: Vec<String>,
    #[serde(default, rename = "CgoCFLAGS")]
    cgo_cflags: Vec<String>,
    #[serde(default, rename = "CgoCXXFLAGS")]
    cgo_cxxflags: Vec<String>,
    #[serde(default, rename = "CgoLDFLAGS")]
    cgo_ldflags: Vec<String>,
    #[serde(default, rename = "CgoPkgConfig")]
    cgo_pkg_config: Vec<String>,
    #[serde(default)]
    error: Option<RawError>,
    #[serde(flatten)]
    files: BTreeMap<String, serde_json::Value>,
}

/// File lists of `go list` that are inputs of the compile or link.
const FILE_FIELDS: &[&str] = &[
    "GoFiles",
    "CgoFiles",
    "CFiles",
    "CXXFiles",
    "MFiles",
    "HFiles",
    "FFiles",
    "SFiles",
    "SwigFiles",
    "SwigCXXFiles",
    "SysoFiles",
    "EmbedFiles",
];

/// A package in the import graph.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// Import path.
    pub import_path: String,
    /// Package name (`main` for commands).
    pub name: String,
    /// Source directory.
    pub dir: PathBuf,
    /// Part of the standard library (covered by the toolchain's identity, not hashed).
    pub standard: bool,
    /// Matched only as a dependency, not by the patterns.
    pub dep_only: bool,
    /// Its module.
    pub module: Option<Module>,
    /// Direct imports.
    pub imports: Vec<String>,
    /// Transitive imports, sorted.
    pub deps: Vec<String>,
    /// Every file the build reads, relative to `dir`, sorted: Go, cgo, C/asm, syso and embedded files.
    pub files: Vec<String>,
    /// Files importing "C" in this build context.
    pub cgo_files: Vec<String>,
    /// Go files excluded by build constraints.
    pub ignored_go_files: Vec<String>,
    /// The package's `#cgo` directives for this build context (empty without cgo).
    #[serde(skip_serializing_if = "CgoDirectives::is_empty")]
    pub cgo: CgoDirectives,
    /// go's load error for this package, if any.
    pub error: Option<String>,
}

/// The `#cgo` directives of a package as go resolved them for one build context (`${SRCDIR}`
/// expanded, the lines for other platforms dropped). The environment's `CGO_*FLAGS` are not in them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgoDirectives {
    /// `#cgo CPPFLAGS`.
    pub cppflags: Vec<String>,
    /// `#cgo CFLAGS`.
    pub cflags: Vec<String>,
    /// `#cgo CXXFLAGS`.
    pub cxxflags: Vec<String>,
    /// `#cgo LDFLAGS`.
    pub ldflags: Vec<String>,
    /// `#cgo pkg-config` package names.
    pub pkg_config: Vec<String>,
}

impl CgoDirectives {
    /// Whether the package has no directive at all.
    pub fn is_empty(&self) -> bool {
        self.cppflags.is_empty()
            && self.cflags.is_empty()
            && self.cxxflags.is_empty()
            && self.ldflags.is_empty()
            && self.pkg_config.is_empty()
    }
}

impl Package {
    /// Whether the package uses cgo when cgo is off: some ignored file imports "C".
    ///
    /// With CGO_ENABLED=0 go silently drops files that `import "C"`; that is why a static build of a
    /// cgo program fails with a puzzling "build constraints exclude all Go files". Reading the
    /// ignored files' imports tells the real cause.
    pub fn needs_cgo(&self) -> bool {
        !self.cgo_files.is_empty() || !self.ignored_cgo_files().is_empty()
    }

    /// Files go left out of this package because they import "C" and cgo is off, relative to
    /// `dir`. Code in the remaining files that uses them fails with a bare `undefined: name`.
    pub fn ignored_cgo_files(&self) -> Vec<&str> {
        self.ignored_go_files
            .iter()
            .filter(|f| imports_c(&self.dir.join(f)))
            .map(String::as_str)
            .collect()
    }

    /// The directory that file paths of this package are keyed relative to: the module root, so a
    /// checkout in another directory produces the same keys.
    pub fn module_root(&self) -> Option<&Path> {
        self.module.as_ref().and_then(|m| {
            m.replace
                .as_ref()
                .and_then(|r| r.dir.as_deref())
                .or(m.dir.as_deref())
        })
    }
}

fn imports_c(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    text.lines()
        .map(str::trim)
        .any(|l| l == "import \"C\"" || l.starts_with("import \"C\" ") || l == "\"C\"")
}

/// The answer to a [`ListRequest`]: every package reachable from the matched ones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackageGraph {
    /// Packages by import path.
    pub packages: BTreeMap<String, Package>,
    /// Matched `main` packages, sorted.
    pub mains: Vec<String>,
    /// Matched packages whose import path go refuses (a directory named with a space or a
    /// non-ASCII letter: "malformed import path"), sorted. Each is in `packages` with go's message
    /// as its `error`. go cannot say whether they are commands and `go build` refuses them, so
    /// the planner fails each as a target of its own instead of failing discovery of every service.
    pub unloadable: Vec<String>,
}

/// How go begins the error of a package whose import path it refuses (cmd/go/internal/load).
const MALFORMED_IMPORT_PATH: &str = "malformed import path";

impl PackageGraph {
    /// Runs `go list -e -deps -json` for `req` in the project root.
    pub fn load(project: &Project, req: &ListRequest) -> Result<Self, DiscoverError> {
        Self::load_in(project, &project.root, req)
    }

    /// Runs `go list -e -deps -json` for `req` in `dir`, so that relative patterns mean what they
    /// mean to `go build` run there (`./cmd/app` inside a workspace member is that member's).
    pub fn load_in(
        project: &Project,
        dir: &Path,
        req: &ListRequest,
    ) -> Result<Self, DiscoverError> {
        Self::load_cached(project, dir, req, None).map(|(g, _)| g)
    }

    /// Like [`PackageGraph::load_in`], but answers from `cache` when everything the recorded
    /// answer depends on is unchanged (see [`ListCache`]), and records fresh answers there.
    pub fn load_cached(
        project: &Project,
        dir: &Path,
        req: &ListRequest,
        cache: Option<&ListCache>,
    ) -> Result<(Self, ListSource), DiscoverError> {
        let mut fields = vec![
            "Dir",
            "ImportPath",
            "Name",
            "Standard",
            "DepOnly",
            "Module",
            "Imports",
            "Deps",
            "IgnoredGoFiles",
            "CgoCPPFLAGS",
            "CgoCFLAGS",
            "CgoCXXFLAGS",
            "CgoLDFLAGS",
            "CgoPkgConfig",
            "Error",
        ];
        fields.extend_from_slice(FILE_FIELDS);
        let mut args: Vec<String> = vec![
            "list".into(),
            "-e".into(),
            format!("-json={}", fields.join(",")),
        ];
        if req.deps {
            args.push("-deps".into());
        }
        if !req.tags.is_empty() {
            args.push(format!("-tags={}", req.tags.join(",")));
        }
        args.extend(req.mod_flags.iter().cloned());
        args.push("--".into());
        args.extend(req.patterns.iter().cloned());
        let shown = args.join(" ");
        let run_dir = dir;
        let key = cache.and_then(|c| {
            c.key(project, run_dir, &args, &req.patterns, &req.env)
                .map(|k| (c, k))
        });
        if let Some((c, k)) = &key {
            if let Some(out) = c.get(k) {
                // A recorded answer that no longer parses is a miss, not an error.
                if let Ok(g) = Self::parse(&out, &req.patterns, &shown) {
                    return Ok((g, ListSource::Cache));
                }
            }
        }
        let started = crate::listcache::start();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_go(&project.env.go, run_dir, &argv, &req.env)?;
        let graph = Self::parse(&out, &req.patterns, &shown)?;
        if let Some((c, k)) = &key {
            let witnesses = c.witnesses(project, run_dir, &req.patterns, &graph);
            c.put(k, started, &out, witnesses);
        }
        Ok((graph, ListSource::Go))
    }

    fn parse(out: &[u8], patterns: &[String], args: &str) -> Result<Self, DiscoverError> {
        let mut graph = PackageGraph::default();
        for raw in serde_json::Deserializer::from_slice(out).into_iter::<RawPackage>() {
            let raw = raw.map_err(|e| DiscoverError::BadOutput {
                args: args.to_string(),
                message: e.to_string(),
            })?;
            let mut files: Vec<String> = FILE_FIELDS
                .iter()
                .filter_map(|f| raw.files.get(*f))
                .filter_map(|v| v.as_array())
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            files.sort();
            let cgo_files = raw
                .files
                .get("CgoFiles")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let pkg = Package {
                import_path: raw.import_path,
                name: raw.name,
                dir: raw.dir,
                standard: raw.standard,
                dep_only: raw.dep_only,
                module: raw.module,
                imports: raw.imports,
                deps: raw.deps,
                files,
                cgo_files: if raw.cgo_files.is_empty() {
                    cgo_files
                } else {
                    raw.cgo_files
                },
                ignored_go_files: raw.ignored_go_files,
                cgo: CgoDirectives {
                    cppflags: raw.cgo_cppflags,
                    cflags: raw.cgo_cflags,
                    cxxflags: raw.cgo_cxxflags,
                    ldflags: raw.cgo_ldflags,
                    pkg_config: raw.cgo_pkg_config,
                },
                error: raw.error.map(|e| e.err).filter(|e| !e.is_empty()),
            };
            if !pkg.dep_only {
                // A pattern that matched nothing comes back as a nameless package with an error.
                // Errors of real packages (syntax, missing imports) are left to `go build`, which
                // reports them verbatim for the target they break instead of failing discovery.
                if let (Some(err), true) = (&pkg.error, pkg.name.is_empty()) {
                    // One badly named directory must not hide every other service.
                    if err.starts_with(MALFORMED_IMPORT_PATH) {
                        graph.unloadable.push(pkg.import_path.clone());
                        graph.packages.insert(pkg.import_path.clone(), pkg);
                        continue;
                    }
                    return Err(DiscoverError::Package {
                        package: pkg.import_path.clone(),
                        message: err.clone(),
                        hint: load_hint(err),
                    });
                }
                if pkg.name == "main" {
                    graph.mains.push(pkg.import_path.clone());
                }
            }
            graph.packages.insert(pkg.import_path.clone(), pkg);
        }
        graph.mains.sort();
        graph.mains.dedup();
        graph.unloadable.sort();
        graph.unloadable.dedup();
        if graph.mains.is_empty() && graph.unloadable.is_empty() {
            return Err(DiscoverError::NoMains {
                patterns: patterns.join(" "),
            });
        }
        Ok(graph)
    }

    /// The main package and every package it imports, transitively, in import-path order.
    pub fn closure<'a>(&'a self, main: &str) -> impl Iterator<Item = &'a Package> + 'a {
        let root = self.packages.get(main);
        let deps = root.map(|p| p.deps.as_slice()).unwrap_or_default();
        root.into_iter()
            .chain(deps.iter().filter_map(|d| self.packages.get(d)))
    }

    /// Packages in `main`'s closure that use cgo in this context (or would, for ignored files).
    pub fn cgo_packages(&self, main: &str) -> Vec<String> {
        self.closure(main)
            .filter(|p| p.needs_cgo())
            .map(|p| p.import_path.clone())
            .collect()
    }
}

/// What to do about a pattern go cannot load, when kiln knows better than go's message.
fn load_hint(err: &str) -> String {
    // go's words for a directory pattern outside every module of a go.work workspace.
    if err.contains("does not contain modules listed in go.work") {
        return "\nhint: patterns are relative to the current directory, as with `go build`, and this directory is outside the modules go.work uses; run kiln inside a member module, name its directory (`./svc/...`), or give no pattern to build every main package of every module".into();
    }
    // A pattern (not a package) go could not expand: most often a directory that is not there.
    if err.starts_with("pattern ") {
        return "\nhint: patterns are relative to the current directory, as with `go build`; without patterns kiln builds every main package of the module or workspace".into();
    }
    String::new()
}

/// The binary name go gives a main package: the last import path element, or the one before a
/// major-version suffix such as `/v2`.
pub fn binary_name(import_path: &str) -> &str {
    let mut parts = import_path.rsplit('/');
    let last = parts.next().unwrap_or(import_path);
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    match (is_major, parts.next()) {
        (true, Some(prev)) => prev,
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_names_follow_go() {
        assert_eq!(binary_name("example.com/x/cmd/api"), "api");
        assert_eq!(binary_name("example.com/tool/v2"), "tool");
        assert_eq!(binary_name("hello"), "hello");
        assert_eq!(binary_name("example.com/cmd/v"), "v");
    }

    #[test]
    fn parse_reports_missing_mains_and_errors() {
        let out = br#"{"ImportPath":"fmt","Name":"fmt","Standard":true,"DepOnly":true}
{"ImportPath":"example.com/lib","Name":"lib","Dir":"/x"}"#;
        let e = PackageGraph::parse(out, &["./...".into()], "list").unwrap_err();
        assert!(matches!(e, DiscoverError::NoMains { .. }), "{e}");
        let out = br#"{"ImportPath":"./nope","Error":{"Err":"directory not found"}}"#;
        let e = PackageGraph::parse(out, &["./nope".into()], "list").unwrap_err();
        assert!(e.to_string().contains("directory not found"), "{e}");
        assert!(!e.to_string().contains("hint:"), "{e}");
        let out = br#"{"ImportPath":"./cmd/...","Error":{"Err":"pattern ./cmd/...: lstat ./cmd/: no such file or directory"}}"#;
        let e = PackageGraph::parse(out, &["./cmd/...".into()], "list").unwrap_err();
        assert!(e.to_string().contains("hint: patterns are relative"), "{e}");
        // What go 1.26 says for `./cmd/...` at a go.work directory that is no module's.
        let out = br#"{"ImportPath":"./cmd/...","Error":{"Err":"pattern ./cmd/...: directory prefix cmd does not contain modules listed in go.work or their selected dependencies"}}"#;
        let e = PackageGraph::parse(out, &["./cmd/...".into()], "list").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("hint: patterns are relative to the current directory"),
            "{text}"
        );
        assert!(!text.contains("kiln build ./cmd/..."), "{text}");
    }

    #[test]
    fn issue_8_a_malformed_import_path_is_kept_not_fatal() {
        // What go 1.26 prints for `go list -e ./...` with cmd/api and "cmd/my svc".
        let out = br#"{"ImportPath":"m/cmd/api","Name":"main","Dir":"/m/cmd/api","GoFiles":["main.go"]}
{"ImportPath":"m/cmd/my svc","Match":["./..."],"Incomplete":true,"Error":{"ImportStack":[],"Pos":"","Err":"malformed import path \"m/cmd/my svc\": invalid char ' '"}}"#;
        let g = PackageGraph::parse(out, &["./...".into()], "list").unwrap();
        assert_eq!(g.mains, vec!["m/cmd/api"]);
        assert_eq!(g.unloadable, vec!["m/cmd/my svc"]);
        let err = g.packages["m/cmd/my svc"].error.as_deref().unwrap_or("");
        assert!(err.contains("invalid char ' '"), "{err}");
        // Alone, it is still an answer (the planner fails it as a target), not "no main package".
        let only = br#"{"ImportPath":"m/cmd/caf\u00e9","Error":{"Err":"malformed import path \"m/cmd/caf\u00e9\": invalid char '\u00e9'"}}"#;
        let g = PackageGraph::parse(only, &["./...".into()], "list").unwrap();
        assert_eq!(g.unloadable, vec!["m/cmd/café"]);
        // Other load errors of a matched package still stop discovery, as before.
        let out = br#"{"ImportPath":"m/cmd/ign","Dir":"/m/cmd/ign","Error":{"Err":"build constraints exclude all Go files in /m/cmd/ign"}}"#;
        assert!(PackageGraph::parse(out, &["./cmd/ign".into()], "list").is_err());
    }

    #[test]
    fn closure_and_files() {
        let out = br#"{"ImportPath":"m/lib","Name":"lib","Dir":"/m/lib","DepOnly":true,"GoFiles":["b.go","a.go"],"EmbedFiles":["x.txt"]}
{"ImportPath":"m/cmd/a","Name":"main","Dir":"/m/cmd/a","GoFiles":["main.go"],"Deps":["m/lib"],"Imports":["m/lib"]}"#;
        let g = PackageGraph::parse(out, &["./...".into()], "list").unwrap();
        assert_eq!(g.mains, vec!["m/cmd/a"]);
        let c: Vec<_> = g
            .closure("m/cmd/a")
            .map(|p| p.import_path.as_str())
            .collect();
        assert_eq!(c, vec!["m/cmd/a", "m/lib"]);
        assert_eq!(g.packages["m/lib"].files, vec!["a.go", "b.go", "x.txt"]);
    }
}
