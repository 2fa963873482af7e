use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use kiln_discover::{Package, PackageGraph, Project};
use kiln_plan::flags;
use kiln_plan::Target;

use crate::env::{build_env, BuildEnv};
use crate::hasher::{FileHash, FileHasher};
use crate::{ActionKey, CProgram, CToolchain, GoCommand, KeyInputs, PackageInput, Toolchain};

/// Why key inputs could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file listed by `go list`, named by a flag, or a toolchain binary could not be read.
    #[error("cannot read {path} while computing the cache key: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key-side cache file (the stat cache) could not be written.
    #[error("cannot write {path}: {source}\nhint: check free disk space and permissions of the kiln cache directory (KILN_CACHE_DIR)")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Everything one build action needs from this stage: its key, the inputs behind it, and the exact
/// command that will run. [`KeyContext::prepare`] is the only way to make one, so what runs is
/// what was hashed.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The key.
    pub key: ActionKey,
    /// The inputs the key was computed from.
    pub inputs: KeyInputs,
    /// The packages behind the digests in `inputs.packages`, for `--explain`.
    pub packages: BTreeMap<String, Arc<PackageInput>>,
    /// Set when kiln cannot be sure its key covers every input: the action runs, but its result is
    /// neither looked up nor stored.
    pub uncacheable: Option<String>,
    /// The command the executor runs.
    pub command: GoCommand,
    files: Vec<Arc<[PathBuf]>>,
}

impl Prepared {
    /// Every file hashed into the key, for the after-build check.
    pub fn hashed_files(&self) -> impl Iterator<Item = &Path> {
        self.files
            .iter()
            .flat_map(|f| f.iter().map(PathBuf::as_path))
    }

    /// Every hashed file except the toolchain's own (the `go` command and its tools): the package
    /// sources (standard library included), go.mod/go.sum, go.work and the files flags name. What
    /// another machine with the same toolchain needs to run this build.
    pub fn source_files(&self) -> impl Iterator<Item = &Path> {
        self.files
            .iter()
            .skip(1)
            .flat_map(|f| f.iter().map(PathBuf::as_path))
    }

    /// Why this build can only run on this machine, or `None` when another machine with the same
    /// toolchain, given [`Self::source_files`], builds the same bytes. Remote execution runs only
    /// actions without a reason; the reasons are inputs that are not files kiln can ship, or that
    /// are named by this machine's paths.
    pub fn local_only(&self) -> Option<String> {
        let i = &self.inputs;
        if let Some(why) = &self.uncacheable {
            return Some(format!(
                "kiln cannot be sure its key covers every input ({why})"
            ));
        }
        if i.paths.is_some() {
            return Some("-trimpath is off, so the binary records this machine's paths".into());
        }
        if i.vcs.is_some() {
            return Some(
                "the build stamps VCS state, which go reads from this checkout's .git (set -buildvcs=false to build remotely)".into(),
            );
        }
        if i.c_toolchain.is_some() {
            return Some("cgo is on, and the C toolchain is this machine's".into());
        }
        if let Some(name) = i.files.keys().find(|k| {
            k.starts_with("-overlay") || k.starts_with("-modfile") || k.as_str() == "-pgo"
        }) {
            return Some(format!(
                "{} names a file by its path on this machine",
                name.split(' ').next().unwrap_or(name)
            ));
        }
        if i.toolchain.driver.get("invoked") != i.toolchain.driver.get("GOROOT/bin/go") {
            return Some(
                "the go command is a wrapper (KILN_GO), which a remote worker does not have".into(),
            );
        }
        match self.command.env().get("GOWORK").map(String::as_str) {
            None | Some("") | Some("off") => None,
            Some(_) => Some("GOWORK names a go.work file by its path on this machine".into()),
        }
    }
}

/// A package's input, its digest, the absolute paths behind it and, for cgo packages, the digest of
/// the files below its directory that go does not list (headers in subdirectories), computed once
/// per run.
type PackageMemo = (
    FileHash,
    Arc<PackageInput>,
    Arc<[PathBuf]>,
    Option<FileHash>,
);

/// The answer of one scan of the C toolchain (the files it reads, or why kiln cannot tell).
type CScan = Result<Arc<BTreeSet<PathBuf>>, String>;

/// One scan of the C toolchain, ready to run on its own thread.
type CScanJob<'s> = Box<dyn FnOnce() -> Result<BTreeSet<PathBuf>, String> + Send + 's>;

/// The per-run state of the key stage: the toolchain identity, memoised packages and C
/// toolchains, and the hasher with its stat cache. Shared by every target of a run.
pub struct KeyContext<'a> {
    project: &'a Project,
    process_env: &'a BTreeMap<String, String>,
    hasher: &'a FileHasher,
    ignore: Vec<PathBuf>,
    cgo_gocache: Option<PathBuf>,
    toolchain: Toolchain,
    toolchain_files: Arc<[PathBuf]>,
    packages: Mutex<HashMap<String, PackageMemo>>,
    c_toolchains: Mutex<HashMap<String, CToolchain>>,
    /// What the C side of cgo builds reads, by the scan that found it (see [`crate::cinputs`]).
    c_scans: Mutex<HashMap<String, CScan>>,
    vcs: Mutex<Option<String>>,
}

impl<'a> KeyContext<'a> {
    /// Hashes the toolchain and prepares the memos. `process_env` is kiln's environment, captured
    /// once by the caller; `ignore` lists directories never hashed (kiln's output directory).
    pub fn new(
        project: &'a Project,
        process_env: &'a BTreeMap<String, String>,
        hasher: &'a FileHasher,
        ignore: Vec<PathBuf>,
    ) -> Result<Self, KeyError> {
        let (toolchain, files) = toolchain(project, process_env, hasher)?;
        Ok(Self {
            project,
            process_env,
            hasher,
            ignore,
            cgo_gocache: None,
            toolchain,
            toolchain_files: files.into(),
            packages: Mutex::default(),
            c_toolchains: Mutex::default(),
            c_scans: Mutex::default(),
            vcs: Mutex::default(),
        })
    }

    /// Gives cgo builds a Go build cache below `root`, one per state of the C inputs go's own
    /// cache does not see. Without it, cgo builds use the user's GOCACHE.
    pub fn with_cgo_gocache(mut self, root: PathBuf) -> Self {
        self.cgo_gocache = Some(root);
        self
    }

    /// The toolchain identity of this run.
    pub fn toolchain(&self) -> &Toolchain {
        &self.toolchain
    }

    /// Computes the key inputs and the command of `target`, whose import graph is `graph`.
    pub fn prepare(&self, graph: &PackageGraph, target: &Target) -> Result<Prepared, KeyError> {
        let project = self.project;
        let env: BuildEnv = build_env(&project.env.vars, self.process_env, &target.env);
        let goflags = env.keyed.get("GOFLAGS").map(String::as_str).unwrap_or("");
        let flags = flags::parse(goflags, &target.args, &project.root);
        let mut uncacheable = flags.uncacheable.clone();
        let mut files: Vec<Arc<[PathBuf]>> = vec![self.toolchain_files.clone()];
        let mut extra: Vec<PathBuf> = Vec::new();

        let mut packages = BTreeMap::new();
        let mut digests = BTreeMap::new();
        let mut main_roots: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut module_roots: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut unlisted_c_inputs: BTreeMap<String, FileHash> = BTreeMap::new();
        for pkg in graph.closure(&target.package) {
            let (origin, root) = self.origin(pkg);
            if origin.starts_with("main ") {
                main_roots.insert(origin.clone(), root.clone());
            } else if origin.starts_with("mod ") {
                module_roots.insert(origin.clone(), root.clone());
            }
            let (digest, input, paths, unlisted) = self.package(pkg, origin, &root)?;
            if let Some(u) = unlisted {
                unlisted_c_inputs.insert(pkg.import_path.clone(), u);
            }
            digests.insert(pkg.import_path.clone(), digest);
            packages.insert(pkg.import_path.clone(), input);
            files.push(paths);
        }

        let mut named: BTreeMap<String, Option<FileHash>> = BTreeMap::new();
        let add = |named: &mut BTreeMap<String, Option<FileHash>>,
                   extra: &mut Vec<PathBuf>,
                   name: String,
                   path: PathBuf|
         -> Result<Option<FileHash>, KeyError> {
            let h = self.hasher.hash_optional(&path)?;
            named.insert(name, h);
            extra.push(path);
            Ok(h)
        };
        for (origin, root) in &main_roots {
            for f in ["go.mod", "go.sum", "vendor/modules.txt"] {
                add(
                    &mut named,
                    &mut extra,
                    format!("{origin} {f}"),
                    root.join(f),
                )?;
            }
        }
        for (origin, root) in &module_roots {
            add(
                &mut named,
                &mut extra,
                format!("{origin} go.mod"),
                root.join("go.mod"),
            )?;
        }
        for w in project.workspace_files() {
            let name = w
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            add(&mut named, &mut extra, format!("workspace {name}"), w)?;
        }
        if let Some(o) = &flags.overlay {
            let json = add(&mut named, &mut extra, "-overlay".into(), o.clone())?;
            match std::fs::read(o)
                .map_err(|e| e.to_string())
                .and_then(|b| flags::overlay_targets(&b, &project.root))
            {
                Ok(targets) if json.is_some() => {
                    for (from, to) in targets {
                        match to {
                            Some(to) => {
                                add(&mut named, &mut extra, format!("-overlay {from}"), to)?;
                            }
                            None => {
                                named.insert(format!("-overlay {from} (deleted)"), None);
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    uncacheable = Some(format!(
                        "cannot read the -overlay file {}: {e}",
                        o.display()
                    ))
                }
            }
        }
        if let Some(m) = &flags.modfile {
            add(&mut named, &mut extra, "-modfile".into(), m.clone())?;
            add(
                &mut named,
                &mut extra,
                "-modfile sum".into(),
                m.with_extension("sum"),
            )?;
        }
        match flags.pgo.as_str() {
            "off" | "" => {}
            "auto" => {
                if let Some(main) = graph.packages.get(&target.package) {
                    add(
                        &mut named,
                        &mut extra,
                        "default.pgo".into(),
                        main.dir.join("default.pgo"),
                    )?;
                }
            }
            p => {
                let path = Path::new(p);
                let path = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    project.root.join(path)
                };
                add(&mut named, &mut extra, "-pgo".into(), path)?;
            }
        }

        let vcs = flags.stamps_vcs().then(|| self.vcs_state());
        let paths = (!flags.trimpath).then(|| {
            let mut p = BTreeMap::from([
                ("root".to_string(), project.root.display().to_string()),
                (
                    "GOROOT".to_string(),
                    project.env.goroot.display().to_string(),
                ),
                (
                    "GOMODCACHE".to_string(),
                    project.env.gomodcache.display().to_string(),
                ),
            ]);
            for (origin, root) in &main_roots {
                p.insert(origin.clone(), root.display().to_string());
            }
            p
        });
        let cgo = env.keyed.get("CGO_ENABLED").map(String::as_str) == Some("1");
        let c_toolchain = if cgo {
            Some(self.c_toolchain(&env)?)
        } else {
            None
        };
        let mut c_inputs = None;
        if cgo {
            match self.c_inputs(graph, target, &env) {
                Ok((named, paths)) => {
                    c_inputs = Some(named);
                    files.push(paths);
                }
                Err(why) => {
                    uncacheable = Some(format!(
                        "kiln cannot tell which headers and libraries the C toolchain reads: {why}"
                    ))
                }
            }
        }
        let mut child_env = env.child.clone();
        if let (Some(c), Some(root)) = (&c_toolchain, &self.cgo_gocache) {
            // Go's own build cache does not see what a C compile reads beyond the listed files
            // and flags (headers in subdirectories, CPATH and friends, the compiler binary behind
            // an unchanged --version): a miss would get go's stale object. A GOCACHE per state
            // of those inputs makes go recompile exactly when they change. GOCACHE is not a key
            // input (it cannot change the output), so this does not change the key.
            let digest = blake3::hash(
                &serde_json::to_vec(&(c, &env.keyed, &unlisted_c_inputs, &c_inputs))
                    .unwrap_or_default(),
            );
            child_env.insert(
                "GOCACHE".into(),
                root.join(&digest.to_hex()[..24]).display().to_string(),
            );
            // A cache program (the user's GOCACHEPROG, or `kiln gocacheprog` that kiln-exec
            // sets for remote caching) would replace that GOCACHE with one shared by every C
            // toolchain state. Empty turns it off for this build; executors keep it.
            child_env.insert("GOCACHEPROG".into(), String::new());
        }
        files.push(extra.into());

        let inputs = KeyInputs {
            toolchain: self.toolchain.clone(),
            platform: target.platform.to_string(),
            main_package: target.package.clone(),
            args: target.args.clone(),
            env: env.keyed.clone(),
            packages: digests,
            files: named,
            vcs,
            paths,
            c_toolchain,
            c_inputs,
        };
        Ok(Prepared {
            key: inputs.key(),
            inputs,
            packages,
            uncacheable,
            command: GoCommand::new(
                project.env.go.clone(),
                project.root.clone(),
                target.args.clone(),
                child_env,
            ),
            files,
        })
    }

    /// Where a package comes from and the root its paths are relative to.
    fn origin(&self, pkg: &Package) -> (String, PathBuf) {
        let env = &self.project.env;
        if pkg.standard {
            return ("std".into(), env.goroot.join("src"));
        }
        if let Some(m) = &pkg.module {
            let eff = m.replace.as_deref().unwrap_or(m);
            let root = pkg
                .module_root()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.project.root.clone());
            let in_modcache = !env.gomodcache.as_os_str().is_empty()
                && !eff.version.is_empty()
                && root.starts_with(&env.gomodcache);
            if in_modcache {
                return (
                    format!("mod {}@{} {}", eff.path, eff.version, eff.sum),
                    root,
                );
            }
            return (format!("main {}", m.path), root);
        }
        ("main ".into(), self.project.root.clone())
    }

    fn package(&self, pkg: &Package, origin: String, root: &Path) -> Result<PackageMemo, KeyError> {
        let memo_key = format!(
            "{}\0{}\0{}",
            pkg.import_path,
            pkg.dir.display(),
            pkg.files.join("\0")
        );
        if let Some(m) = self
            .packages
            .lock()
            .ok()
            .and_then(|m| m.get(&memo_key).cloned())
        {
            return Ok(m);
        }
        let mut names: Vec<String> = pkg.files.clone();
        // A cgo package can include headers from anywhere below its directory (`#include
        // "inc/y.h"`), and go list reports only the ones in the directory itself: hash them all.
        // Standard-library cgo packages list their headers; they are not searched.
        let cgo = !pkg.cgo_files.is_empty() && !pkg.standard;
        if cgo {
            walk_skipping(&pkg.dir, &pkg.dir, &self.ignore, &mut names);
        }
        names.sort();
        names.dedup();
        let mut files = BTreeMap::new();
        let mut paths = Vec::with_capacity(names.len());
        let mut unlisted = blake3::Hasher::new();
        for name in names {
            let abs = pkg.dir.join(&name);
            let h = self.hasher.hash(&abs)?;
            if cgo && !pkg.files.contains(&name) {
                unlisted.update(name.as_bytes());
                unlisted.update(&[0]);
                unlisted.update(&h.0);
            }
            files.insert(name, h);
            paths.push(abs);
        }
        let input = PackageInput {
            origin,
            dir: relative(&pkg.dir, root),
            files,
        };
        let memo = (
            input.digest(),
            Arc::new(input),
            Arc::<[PathBuf]>::from(paths),
            cgo.then(|| FileHash(*unlisted.finalize().as_bytes())),
        );
        if let Ok(mut m) = self.packages.lock() {
            m.insert(memo_key, memo.clone());
        }
        Ok(memo)
    }

    /// `git` revision, commit time and work-tree status of the project, as go's `-buildvcs`
    /// stamping sees them. Computed once per run.
    fn vcs_state(&self) -> String {
        if let Some(s) = self.vcs.lock().ok().and_then(|v| v.clone()) {
            return s;
        }
        let git = |args: &[&str]| -> String {
            match Command::new("git")
                .args(args)
                .current_dir(&self.project.root)
                .output()
            {
                Ok(o) => format!(
                    "{} {} {}",
                    o.status.code().unwrap_or(-1),
                    blake3::hash(&o.stdout).to_hex(),
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                ),
                Err(e) => format!("git not runnable: {e}"),
            }
        };
        let state = format!(
            "HEAD {}; time {}; status {}",
            git(&["rev-parse", "HEAD"]),
            git(&["log", "-1", "--format=%ct"]),
            git(&["status", "--porcelain=v1", "--untracked-files=all"]),
        );
        if let Ok(mut v) = self.vcs.lock() {
            *v = Some(state.clone());
        }
        state
    }

    /// What the C compiler and linker of a cgo build of `target` read beyond the package files:
    /// every header of every cgo package's preamble and C files, every file the external link
    /// opens, and the compiler's own passes. Named relative to GOROOT, the module cache or the
    /// project where they live there, absolute otherwise.
    #[allow(clippy::type_complexity)] // the named inputs and the paths behind them
    fn c_inputs(
        &self,
        graph: &PackageGraph,
        target: &Target,
        env: &BuildEnv,
    ) -> Result<(BTreeMap<String, Option<FileHash>>, Arc<[PathBuf]>), String> {
        use crate::cinputs::{self, split_quoted, Compile};
        let var = |name: &str, default: &str| -> Result<Vec<String>, String> {
            let v = env.keyed.get(name).map(String::as_str).unwrap_or("");
            split_quoted(if v.is_empty() { default } else { v })
        };
        let cc = var("CC", "gcc")?;
        let cxx = var("CXX", "g++")?;
        let pkg_config = var("PKG_CONFIG", "pkg-config")?;
        if cc.is_empty() || cxx.is_empty() || pkg_config.is_empty() {
            return Err("CC, CXX or PKG_CONFIG is blank".into());
        }
        let env_flags = |name: &str| var(name, "");
        let child = &env.child;
        let env_digest = blake3::hash(&serde_json::to_vec(child).unwrap_or_default()).to_hex();
        let mut all: BTreeSet<PathBuf> = BTreeSet::new();
        let mut ldflags = env_flags("CGO_LDFLAGS")?;
        let mut uses_cxx = false;
        let mut jobs: Vec<(String, CScanJob)> = Vec::new();
        for pkg in graph.closure(&target.package) {
            if pkg.cgo_files.is_empty() {
                continue;
            }
            let d = &pkg.cgo;
            let (pc_cflags, pc_libs) = if d.pkg_config.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                (
                    cinputs::pkg_config(&pkg_config, "--cflags", &d.pkg_config, &pkg.dir, child)?,
                    cinputs::pkg_config(&pkg_config, "--libs", &d.pkg_config, &pkg.dir, child)?,
                )
            };
            let mut cppflags = env_flags("CGO_CPPFLAGS")?;
            cppflags.extend(d.cppflags.iter().cloned());
            cppflags.extend(pc_cflags);
            let mut cflags = cppflags.clone();
            cflags.extend(env_flags("CGO_CFLAGS")?);
            cflags.extend(d.cflags.iter().cloned());
            let mut cxxflags = cppflags;
            cxxflags.extend(env_flags("CGO_CXXFLAGS")?);
            cxxflags.extend(d.cxxflags.iter().cloned());
            ldflags.extend(d.ldflags.iter().cloned());
            ldflags.extend(pc_libs);

            let (mut c_files, mut cxx_files) = (Vec::new(), Vec::new());
            for f in &pkg.files {
                match f.rsplit_once('.').map(|(_, e)| e).unwrap_or("") {
                    "c" | "m" | "S" | "sx" => c_files.push(f.clone()),
                    "cc" | "cpp" | "cxx" => cxx_files.push(f.clone()),
                    "f" | "F" | "for" | "f90" | "swig" | "swigcxx" => {
                        return Err(format!(
                            "{} has {f}, and kiln does not scan Fortran or SWIG inputs",
                            pkg.import_path
                        ))
                    }
                    _ => {}
                }
            }
            uses_cxx |= !cxx_files.is_empty();
            let mut preambles = String::new();
            for f in &pkg.cgo_files {
                let path = pkg.dir.join(f);
                let src = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if let Some(p) = cinputs::preamble(&src) {
                    preambles.push_str(&p);
                }
            }
            let c = Compile {
                cc: cc.clone(),
                flags: cflags,
            };
            let x = Compile {
                cc: cxx.clone(),
                flags: cxxflags,
            };
            let memo = format!(
                "headers\0{}\0{}\0{env_digest}\0{c:?}\0{x:?}\0{preambles}\0{c_files:?}\0{cxx_files:?}",
                pkg.import_path,
                pkg.dir.display()
            );
            let dir = &pkg.dir;
            jobs.push((
                memo,
                Box::new(move || {
                    let mut h =
                        cinputs::headers(&c, dir, Some(("c", &preambles)), &c_files, child)?;
                    if !cxx_files.is_empty() {
                        h.extend(cinputs::headers(&x, dir, None, &cxx_files, child)?);
                    }
                    Ok(h)
                }),
            ));
        }
        ldflags.extend(cinputs::extldflags(&target.args)?);
        let linker = if uses_cxx { cxx.clone() } else { cc.clone() };
        let memo = format!("link\0{env_digest}\0{linker:?}\0{ldflags:?}");
        jobs.push((
            memo,
            Box::new(move || cinputs::link_inputs(&linker, &ldflags, child)),
        ));
        for prog in if uses_cxx { vec![cc, cxx] } else { vec![cc] } {
            let memo = format!("passes\0{env_digest}\0{prog:?}");
            jobs.push((memo, Box::new(move || Ok(cinputs::passes(&prog, child)))));
        }
        // Each scan is a few compiler starts; running them side by side keeps a no-op cgo build
        // from paying for them one after another.
        let scans: Vec<CScan> = std::thread::scope(|s| {
            let running: Vec<_> = jobs
                .into_iter()
                .map(|(memo, job)| s.spawn(move || self.c_scan(memo, job)))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a scan of the C toolchain panicked".into()))
                })
                .collect()
        });
        for scan in scans {
            all.extend(scan?.iter().cloned());
        }
        let env = &self.project.env;
        let roots = [
            ("goroot", env.goroot.as_path()),
            ("gomodcache", env.gomodcache.as_path()),
            ("project", self.project.root.as_path()),
        ];
        let mut named = BTreeMap::new();
        for path in &all {
            let name = roots
                .iter()
                .filter(|(_, r)| !r.as_os_str().is_empty())
                .find_map(|(label, r)| {
                    path.strip_prefix(r)
                        .ok()
                        .map(|rel| format!("{label}:{}", relative(rel, Path::new(""))))
                })
                .unwrap_or_else(|| path.display().to_string());
            let h = self.hasher.hash_optional(path).map_err(|e| e.to_string())?;
            named.insert(name, h);
        }
        Ok((named, all.into_iter().collect::<Vec<_>>().into()))
    }

    /// One scan of [`Self::c_inputs`], run once per run for equal inputs.
    fn c_scan(
        &self,
        memo: String,
        scan: impl FnOnce() -> Result<BTreeSet<PathBuf>, String>,
    ) -> CScan {
        if let Some(r) = self.c_scans.lock().ok().and_then(|m| m.get(&memo).cloned()) {
            return r;
        }
        let r = scan().map(Arc::new);
        if let Ok(mut m) = self.c_scans.lock() {
            m.insert(memo, r.clone());
        }
        r
    }

    /// The C toolchain go would use for a cgo build in `env`, by content.
    fn c_toolchain(&self, env: &BuildEnv) -> Result<CToolchain, KeyError> {
        let path_var = env.child.get("PATH").cloned().unwrap_or_default();
        let pick = |name: &str, default: &str| {
            env.keyed
                .get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| default.to_string())
        };
        let commands = [
            ("CC", pick("CC", "gcc")),
            ("CXX", pick("CXX", "g++")),
            ("FC", pick("FC", "gfortran")),
            ("PKG_CONFIG", pick("PKG_CONFIG", "pkg-config")),
        ];
        let memo_key = format!("{path_var}\0{commands:?}");
        if let Some(c) = self
            .c_toolchains
            .lock()
            .ok()
            .and_then(|m| m.get(&memo_key).cloned())
        {
            return Ok(c);
        }
        let mut programs = BTreeMap::new();
        for (name, command) in commands {
            let program = command.split_whitespace().next().unwrap_or("").to_string();
            let resolved = resolve(&program, &path_var);
            let content = match &resolved {
                Some(p) => self.hasher.hash_optional(p)?,
                None => None,
            };
            let version = match (&resolved, name) {
                (Some(p), "CC" | "CXX" | "FC") => version_line(p),
                _ => String::new(),
            };
            programs.insert(
                name.to_string(),
                CProgram {
                    command,
                    content,
                    version,
                },
            );
        }
        let c = CToolchain { programs };
        if let Ok(mut m) = self.c_toolchains.lock() {
            m.insert(memo_key, c.clone());
        }
        Ok(c)
    }
}

/// The toolchain identity and the files it was computed from.
fn toolchain(
    project: &Project,
    process_env: &BTreeMap<String, String>,
    hasher: &FileHasher,
) -> Result<(Toolchain, Vec<PathBuf>), KeyError> {
    let env = &project.env;
    let exe = if env.var("GOHOSTOS") == "windows" {
        ".exe"
    } else {
        ""
    };
    let mut files = Vec::new();
    let mut driver = BTreeMap::new();
    let path_var = process_env.get("PATH").cloned().unwrap_or_default();
    let invoked = resolve(&env.go.to_string_lossy(), &path_var).unwrap_or_else(|| env.go.clone());
    driver.insert("invoked".to_string(), hasher.hash_optional(&invoked)?);
    files.push(invoked);
    let goroot_go = env.goroot.join("bin").join(format!("go{exe}"));
    driver.insert(
        "GOROOT/bin/go".to_string(),
        hasher.hash_optional(&goroot_go)?,
    );
    files.push(goroot_go);

    let tooldir = PathBuf::from(env.var("GOTOOLDIR"));
    let mut tools = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    walk(&tooldir, &tooldir, &mut names);
    for name in names {
        let p = tooldir.join(&name);
        tools.insert(name, hasher.hash(&p)?);
        files.push(p);
    }

    let mut goroot_names: Vec<String> = vec![
        "go.env".into(),
        "VERSION".into(),
        "src/go.mod".into(),
        "src/vendor/modules.txt".into(),
    ];
    let include = env.goroot.join("pkg").join("include");
    let mut inc = Vec::new();
    walk(&include, &include, &mut inc);
    goroot_names.extend(inc.into_iter().map(|n| format!("pkg/include/{n}")));
    let mut goroot_files = BTreeMap::new();
    for name in goroot_names {
        let p = env.goroot.join(&name);
        goroot_files.insert(name, hasher.hash_optional(&p)?);
        files.push(p);
    }
    Ok((
        Toolchain {
            version: env.version.clone(),
            driver,
            tools,
            goroot_files,
        },
        files,
    ))
}

/// Regular files below `dir`, as `/`-separated paths relative to `base`.
fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    walk_skipping(base, dir, &[], out);
}

/// Like [`walk`], skipping directories go ignores too (names starting with `.` or `_`, such as
/// `.git`) and the `ignore` directories (kiln's own output directory: its binaries change on
/// every build and would make the key chase its own tail).
fn walk_skipping(base: &Path, dir: &Path, ignore: &[PathBuf], out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let name = e.file_name();
            let hidden = name.to_string_lossy().starts_with(['.', '_']);
            if !hidden && !ignore.contains(&p) {
                walk_skipping(base, &p, ignore, out);
            }
        } else if ft.is_file() || (ft.is_symlink() && p.is_file()) {
            out.push(relative(&p, base));
        }
    }
}

/// Finds `program` the way the child's PATH would (absolute or relative paths are taken as is).
pub(crate) fn resolve(program: &str, path_var: &str) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::split_paths(path_var)
        .map(|d| d.join(program))
        .find(|c| c.is_file())
}

fn version_line(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "(--version failed)".into())
}

fn relative(path: &Path, root: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(root: &Path) -> Project {
        let goroot = root.join("goroot");
        let tools = goroot.join("pkg/tool/linux_amd64");
        std::fs::create_dir_all(&tools).unwrap();
        std::fs::create_dir_all(goroot.join("bin")).unwrap();
        std::fs::create_dir_all(goroot.join("pkg/include")).unwrap();
        std::fs::write(tools.join("compile"), "compile v1").unwrap();
        std::fs::write(tools.join("link"), "link v1").unwrap();
        std::fs::write(goroot.join("bin/go"), "go v1").unwrap();
        std::fs::write(goroot.join("pkg/include/textflag.h"), "#define NOSPLIT 4").unwrap();
        Project {
            root: root.to_path_buf(),
            env: kiln_discover::GoEnv {
                go: goroot.join("bin/go"),
                version: "go1.26.8".into(),
                goroot,
                gomodcache: root.join("modcache"),
                gomod: None,
                gowork: None,
                vars: BTreeMap::from([("GOTOOLDIR".to_string(), tools.display().to_string())]),
            },
        }
    }

    #[test]
    fn toolchain_is_hashed_by_content() {
        let d = tempfile::tempdir().unwrap();
        let p = project(d.path());
        let env = BTreeMap::new();
        let (a, files) = toolchain(&p, &env, &FileHasher::new()).unwrap();
        assert_eq!(
            a.tools.keys().collect::<Vec<_>>(),
            ["compile", "link"],
            "every file of GOTOOLDIR"
        );
        assert!(a.goroot_files["pkg/include/textflag.h"].is_some());
        assert!(files.iter().any(|f| f.ends_with("compile")));
        let tools = p.env.goroot.join("pkg/tool/linux_amd64");
        // Same version string, patched compiler: a different toolchain.
        std::fs::write(tools.join("compile"), "compile v2").unwrap();
        let (b, _) = toolchain(&p, &env, &FileHasher::new()).unwrap();
        assert_ne!(a, b);
        // A new tool appearing counts too.
        std::fs::write(tools.join("asm"), "asm").unwrap();
        let (c, _) = toolchain(&p, &env, &FileHasher::new()).unwrap();
        assert_ne!(b, c);
        // So does an assembly header.
        std::fs::write(
            p.env.goroot.join("pkg/include/textflag.h"),
            "#define NOSPLIT 5",
        )
        .unwrap();
        let (e, _) = toolchain(&p, &env, &FileHasher::new()).unwrap();
        assert_ne!(c, e);
    }

    #[test]
    fn relative_paths_use_slashes() {
        assert_eq!(
            relative(Path::new("/r/m/a/b.go"), Path::new("/r/m")),
            "a/b.go"
        );
    }

    #[test]
    fn walk_lists_nested_files_and_skips_git() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("inc/deep")).unwrap();
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        std::fs::create_dir_all(d.path().join("dist/api")).unwrap();
        std::fs::write(d.path().join("a.go"), "").unwrap();
        std::fs::write(d.path().join("inc/deep/y.h"), "").unwrap();
        std::fs::write(d.path().join(".git/HEAD"), "").unwrap();
        std::fs::write(d.path().join("dist/api/api"), "").unwrap();
        let mut out = Vec::new();
        walk_skipping(d.path(), d.path(), &[d.path().join("dist")], &mut out);
        out.sort();
        assert_eq!(out, ["a.go", "inc/deep/y.h"]);
        let mut all = Vec::new();
        walk(d.path(), d.path(), &mut all);
        assert!(
            all.contains(&"dist/api/api".to_string()),
            "plain walk keeps dist: {all:?}"
        );
    }

    #[test]
    fn resolve_searches_path_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("cc"), "").unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        let path = path.to_string_lossy();
        assert_eq!(resolve("cc", &path), Some(b.path().join("cc")));
        std::fs::write(a.path().join("cc"), "").unwrap();
        assert_eq!(resolve("cc", &path), Some(a.path().join("cc")));
        assert_eq!(resolve("nope", &path), None);
    }

    fn prepared(inputs: KeyInputs, env: &[(&str, &str)]) -> Prepared {
        Prepared {
            key: inputs.key(),
            inputs,
            packages: BTreeMap::new(),
            uncacheable: None,
            command: GoCommand::new(
                PathBuf::from("go"),
                PathBuf::from("."),
                Vec::new(),
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            files: vec![
                Arc::from(vec![PathBuf::from("/goroot/bin/go")]),
                Arc::from(vec![PathBuf::from("/m/main.go")]),
            ],
        }
    }

    #[test]
    fn issue_13_local_only_names_every_input_a_remote_worker_cannot_have() {
        let base = crate::inputs::tests::base();
        assert_eq!(prepared(base.clone(), &[]).local_only(), None);
        assert_eq!(
            prepared(base.clone(), &[])
                .source_files()
                .collect::<Vec<_>>(),
            [Path::new("/m/main.go")],
            "the toolchain's files are not sources"
        );
        /// Inputs, the command's environment, and a word the reason must contain.
        type Case<'a> = (KeyInputs, &'a [(&'a str, &'a str)], &'a str);
        let mut cases: Vec<Case> = Vec::new();
        let mut i = base.clone();
        i.paths = Some(BTreeMap::new());
        cases.push((i, &[], "-trimpath"));
        let mut i = base.clone();
        i.vcs = Some("git abc".into());
        cases.push((i, &[], "VCS"));
        let mut i = base.clone();
        i.c_toolchain = Some(CToolchain {
            programs: BTreeMap::new(),
        });
        cases.push((i, &[], "cgo"));
        for flag in ["-overlay", "-modfile", "-pgo"] {
            let mut i = base.clone();
            i.files.insert(flag.into(), Some(FileHash([9; 32])));
            cases.push((i, &[], flag));
        }
        let mut i = base.clone();
        i.toolchain
            .driver
            .insert("invoked".into(), Some(FileHash([7; 32])));
        cases.push((i, &[], "KILN_GO"));
        cases.push((base.clone(), &[("GOWORK", "/home/me/go.work")], "GOWORK"));
        for (inputs, env, needle) in cases {
            let why = prepared(inputs, env).local_only();
            assert!(
                why.as_deref().is_some_and(|w| w.contains(needle)),
                "{needle}: {why:?}"
            );
        }
        // GOWORK=off and default.pgo (a file in the module) stay portable.
        assert_eq!(
            prepared(base.clone(), &[("GOWORK", "off")]).local_only(),
            None
        );
        let mut i = base.clone();
        i.files.insert("default.pgo".into(), None);
        assert_eq!(prepared(i, &[]).local_only(), None);
        let mut p = prepared(base, &[]);
        p.uncacheable = Some("unknown flag -foo".into());
        assert!(p.local_only().is_some_and(|w| w.contains("-foo")));
    }
}
