//! From changed files to affected services.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use kiln_config::{Config, CONFIG_FILE};
use kiln_discover::Package;
use kiln_plan::Plan;
use serde::Serialize;

use crate::git::Git;
use crate::gomod::{diff_mod, diff_sum};
use crate::{Affected, AffectedError, AffectedRequest, AffectedService, Reason};

/// The changed files between a base and a head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// The repository's top-level directory; `files` are relative to it.
    pub top: PathBuf,
    /// The base as asked for or derived.
    pub base: String,
    /// The merge-base of base and head; `None` when the base is not in the clone.
    pub merge_base: Option<String>,
    /// The head revision, `None` for the working tree.
    pub head: Option<String>,
    /// Changed files, both sides of renames, sorted.
    pub files: Vec<String>,
    /// Why the change set is unknown, when it is (then `files` is empty and everything counts).
    pub missing_base: Option<String>,
}

/// Computes the changed files for `req` in the repository containing `dir`.
pub fn changes(dir: &Path, req: &AffectedRequest) -> Result<Changes, AffectedError> {
    let git = Git::open(dir)?;
    changes_in(&git, req)
}

fn changes_in(git: &Git, req: &AffectedRequest) -> Result<Changes, AffectedError> {
    let shallow = git.is_shallow()?;
    let head_rev = req.head.clone().unwrap_or_else(|| "HEAD".into());
    let mut out = Changes {
        top: git.top.clone(),
        base: req.base.clone().unwrap_or_default(),
        merge_base: None,
        head: req.head.clone(),
        files: Vec::new(),
        missing_base: None,
    };
    let head_commit = match git.commit(&head_rev)? {
        Some(c) => c,
        None if req.head.is_some() => {
            return Err(AffectedError::UnknownRevision {
                reference: head_rev,
            })
        }
        // No commit yet: every file is new.
        None => {
            out.missing_base = Some("the repository has no commits yet".into());
            return Ok(out);
        }
    };
    let base = match &req.base {
        Some(b) => b.clone(),
        None => match git.default_branch()? {
            Some(b) => b,
            None if shallow => {
                out.base = "the default branch".into();
                out.missing_base = Some(
                    "this is a shallow clone without a default branch (origin/HEAD, main or master)"
                        .into(),
                );
                return Ok(out);
            }
            None => return Err(AffectedError::NoDefaultBranch),
        },
    };
    out.base.clone_from(&base);
    let Some(base_commit) = git.commit(&base)? else {
        if shallow {
            out.missing_base = Some(format!("{base} is not in this shallow clone"));
            return Ok(out);
        }
        return Err(AffectedError::UnknownRevision { reference: base });
    };
    let Some(mb) = git.merge_base(&base_commit, &head_commit)? else {
        out.missing_base = Some(if shallow {
            format!("the history between {base} and {head_rev} is cut off in this shallow clone")
        } else {
            format!("{base} and {head_rev} have no common ancestor")
        });
        return Ok(out);
    };
    let mut files = git.diff(&mb, &head_commit)?;
    if req.head.is_none() {
        files.extend(git.status()?);
    }
    out.merge_base = Some(mb);
    out.files = files.into_iter().collect();
    Ok(out)
}

/// One service and the packages it compiles, over every platform it is planned for.
struct ServiceInfo<'a> {
    package: String,
    closure: BTreeMap<&'a str, &'a Package>,
    data: Vec<(String, GlobMatcher)>,
}

/// File extensions go compiles or links when they sit in a package directory.
const SOURCE_EXTS: &[&str] = &[
    "go", "c", "h", "s", "S", "sx", "cc", "cpp", "cxx", "hh", "hpp", "hxx", "m", "f", "F", "for",
    "f90", "swig", "swigcxx", "syso",
];

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Computes the services of `plan` affected by the changes `req` describes. `config` is the
/// configuration the plan was made with (the head's kiln.toml).
pub fn affected(
    plan: &Plan,
    config: &Config,
    req: &AffectedRequest,
) -> Result<Affected, AffectedError> {
    let git = Git::open(&plan.project.root)?;
    let ch = changes_in(&git, req)?;
    let root = canonical(&plan.project.root);

    let mut services: BTreeMap<String, ServiceInfo> = BTreeMap::new();
    let mut warnings = Vec::new();
    for t in &plan.targets {
        let info = services
            .entry(t.service.clone())
            .or_insert_with(|| ServiceInfo {
                package: t.package.clone(),
                closure: BTreeMap::new(),
                data: Vec::new(),
            });
        let graph = &plan.contexts[t.context].graph;
        info.closure.extend(
            graph
                .closure(&t.package)
                .filter(|p| !p.standard)
                .map(|p| (p.import_path.as_str(), p)),
        );
    }
    for (name, info) in &mut services {
        for pattern in config
            .services
            .get(name)
            .map(|s| s.data.as_slice())
            .unwrap_or_default()
        {
            match Glob::new(pattern.trim_start_matches("./")) {
                Ok(g) => info.data.push((pattern.clone(), g.compile_matcher())),
                Err(e) => warnings.push(format!(
                    "kiln.toml [services.{name}] data pattern {pattern:?} is invalid ({e}); \
                     changes to the files it meant are not detected"
                )),
            }
        }
    }

    let mut reasons: BTreeMap<String, BTreeSet<Reason>> = BTreeMap::new();
    let mut ignored = Vec::new();
    if let Some(why) = &ch.missing_base {
        warnings.push(format!(
            "cannot compute changes since {}: {why}; treating every service as affected\nhint: fetch the base (`git fetch --deepen=100 origin` or `git fetch --unshallow`) or pass --base",
            if ch.base.is_empty() { "the base" } else { &ch.base }
        ));
        for name in services.keys() {
            reasons
                .entry(name.clone())
                .or_default()
                .insert(Reason::BaseMissing {
                    base: ch.base.clone(),
                });
        }
    }

    let index = FileIndex::new(&services);
    let ctx = Ctx {
        git: &git,
        ch: &ch,
        root: &root,
        config,
        services: &services,
    };
    for file in &ch.files {
        let before = reasons.values().map(BTreeSet::len).sum::<usize>();
        ctx.classify(file, &index, &mut reasons, &mut warnings)?;
        if reasons.values().map(BTreeSet::len).sum::<usize>() == before {
            ignored.push(file.clone());
        }
    }

    let mut affected = Vec::new();
    let mut unaffected = Vec::new();
    for (name, info) in &services {
        match reasons.remove(name) {
            Some(r) if !r.is_empty() => affected.push(AffectedService {
                name: name.clone(),
                package: info.package.clone(),
                reasons: r.into_iter().collect(),
            }),
            _ => unaffected.push(name.clone()),
        }
    }
    Ok(Affected {
        base: ch.base.clone(),
        merge_base: ch.merge_base.clone(),
        head: ch.head.clone(),
        changed: ch.files.clone(),
        ignored,
        services: affected,
        unaffected,
        everything: ch.missing_base.is_some(),
        warnings,
    })
}

/// Which packages read which files and directories.
struct FileIndex<'a> {
    /// Absolute file -> packages whose build reads it.
    files: BTreeMap<PathBuf, BTreeSet<&'a str>>,
    /// Package directory -> packages.
    dirs: BTreeMap<PathBuf, BTreeSet<&'a str>>,
    /// Directories packages read non-Go files from (embed directories) -> packages.
    read_dirs: BTreeMap<PathBuf, BTreeSet<&'a str>>,
}

impl<'a> FileIndex<'a> {
    fn new(services: &BTreeMap<String, ServiceInfo<'a>>) -> Self {
        let mut ix = FileIndex {
            files: BTreeMap::new(),
            dirs: BTreeMap::new(),
            read_dirs: BTreeMap::new(),
        };
        let mut seen = BTreeSet::new();
        for p in services.values().flat_map(|s| s.closure.values()) {
            if !seen.insert(p.import_path.as_str()) {
                continue;
            }
            let dir = canonical(&p.dir);
            ix.dirs
                .entry(dir.clone())
                .or_default()
                .insert(&p.import_path);
            for f in &p.files {
                let abs = dir.join(f);
                if let Some(parent) = abs.parent() {
                    ix.read_dirs
                        .entry(parent.to_path_buf())
                        .or_default()
                        .insert(&p.import_path);
                }
                ix.files.entry(abs).or_default().insert(&p.import_path);
            }
        }
        ix
    }
}

struct Ctx<'a> {
    git: &'a Git,
    ch: &'a Changes,
    root: &'a Path,
    config: &'a Config,
    services: &'a BTreeMap<String, ServiceInfo<'a>>,
}

type Reasons = BTreeMap<String, BTreeSet<Reason>>;

impl Ctx<'_> {
    fn add_where(&self, reasons: &mut Reasons, pred: impl Fn(&ServiceInfo) -> bool, r: &Reason) {
        for (name, info) in self.services {
            if pred(info) {
                reasons.entry(name.clone()).or_default().insert(r.clone());
            }
        }
    }

    /// The file at the head: the working tree's or the head revision's.
    fn head_text(&self, file: &str) -> Result<Option<String>, AffectedError> {
        Ok(match &self.ch.head {
            None => std::fs::read_to_string(self.ch.top.join(file)).ok(),
            Some(h) => self
                .git
                .show(h, file)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        })
    }

    fn base_text(&self, file: &str) -> Result<Option<String>, AffectedError> {
        Ok(match &self.ch.merge_base {
            Some(mb) => self
                .git
                .show(mb, file)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            None => None,
        })
    }

    fn exists_at_head(&self, file: &str) -> Result<bool, AffectedError> {
        Ok(match &self.ch.head {
            None => self.ch.top.join(file).exists(),
            Some(h) => self.git.show(h, file)?.is_some(),
        })
    }

    fn classify(
        &self,
        file: &str,
        index: &FileIndex,
        reasons: &mut Reasons,
        warnings: &mut Vec<String>,
    ) -> Result<(), AffectedError> {
        let abs = self.ch.top.join(file);
        let name = abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.as_str() {
            "go.mod" | "go.work" => self.module_file(file, &abs, name == "go.work", reasons)?,
            "go.sum" | "go.work.sum" => self.sum_file(file, reasons)?,
            _ => {}
        }
        if abs == self.root.join(CONFIG_FILE) {
            self.config_file(file, reasons, warnings)?;
        }
        if let Ok(rel) = abs.strip_prefix(self.root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            for (sname, info) in self.services {
                for (pattern, m) in &info.data {
                    if m.is_match(&rel) {
                        reasons
                            .entry(sname.clone())
                            .or_default()
                            .insert(Reason::Data {
                                file: file.to_string(),
                                pattern: pattern.clone(),
                            });
                    }
                }
            }
        }
        let mut packages: BTreeSet<&str> = index.files.get(&abs).cloned().unwrap_or_default();
        if packages.is_empty() {
            // Files the current graph cannot list: deleted ones, and (for a head other than the
            // working tree) ones that only exist there. Match them by where they live.
            let ext = abs
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let is_source = SOURCE_EXTS.contains(&ext.as_str()) && !name.ends_with("_test.go");
            let parent = abs.parent().map(Path::to_path_buf).unwrap_or_default();
            let existing = self.exists_at_head(file)?;
            if is_source && (!existing || self.ch.head.is_some()) {
                packages.extend(index.dirs.get(&parent).into_iter().flatten());
            }
            if !existing {
                packages.extend(index.read_dirs.get(&parent).into_iter().flatten());
            }
        }
        for pkg in packages {
            let r = Reason::File {
                file: file.to_string(),
                package: pkg.to_string(),
            };
            self.add_where(reasons, |s| s.closure.contains_key(pkg), &r);
        }
        Ok(())
    }

    fn uses_module_dir(info: &ServiceInfo, dir: &Path) -> bool {
        info.closure.values().any(|p| {
            p.module_root().is_some_and(|d| canonical(d) == dir)
                || p.module
                    .as_ref()
                    .and_then(|m| m.dir.as_deref())
                    .is_some_and(|d| canonical(d) == dir)
        })
    }

    fn uses_module(info: &ServiceInfo, module: &str) -> bool {
        info.closure
            .values()
            .any(|p| p.module.as_ref().is_some_and(|m| m.path == module))
    }

    fn module_file(
        &self,
        file: &str,
        abs: &Path,
        workspace: bool,
        reasons: &mut Reasons,
    ) -> Result<(), AffectedError> {
        let (old, new) = (self.base_text(file)?, self.head_text(file)?);
        let d = diff_mod(old.as_deref(), new.as_deref(), workspace);
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(why) = d.undecidable {
            let r = Reason::ModuleFile {
                file: file.to_string(),
                why,
            };
            // A workspace file decides every module in it; a go.mod its own module's users.
            self.add_where(reasons, |s| workspace || Self::uses_module_dir(s, &dir), &r);
        }
        for (module, (old, new)) in d.modules {
            let r = Reason::Module {
                file: file.to_string(),
                module: module.clone(),
                old,
                new,
            };
            self.add_where(reasons, |s| Self::uses_module(s, &module), &r);
        }
        Ok(())
    }

    fn sum_file(&self, file: &str, reasons: &mut Reasons) -> Result<(), AffectedError> {
        let old = self.base_text(file)?.unwrap_or_default();
        let new = self.head_text(file)?.unwrap_or_default();
        for (module, (old, new)) in diff_sum(&old, &new) {
            let r = Reason::Module {
                file: file.to_string(),
                module: module.clone(),
                old,
                new,
            };
            self.add_where(reasons, |s| Self::uses_module(s, &module), &r);
        }
        Ok(())
    }

    fn config_file(
        &self,
        file: &str,
        reasons: &mut Reasons,
        warnings: &mut Vec<String>,
    ) -> Result<(), AffectedError> {
        let mut parse = |text: Option<String>, which: &str| -> Option<Config> {
            match text {
                None => Some(Config::default()),
                Some(t) => match Config::parse(&t, Path::new(file)) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        warnings.push(format!("cannot compare kiln.toml at the {which}: {e}"));
                        None
                    }
                },
            }
        };
        let old = parse(self.base_text(file)?, "base");
        let new = match &self.ch.head {
            None => Some(self.config.clone()),
            Some(_) => parse(self.head_text(file)?, "head"),
        };
        let all = |section: &str, reasons: &mut Reasons| {
            let r = Reason::Config {
                section: section.to_string(),
            };
            self.add_where(reasons, |_| true, &r);
        };
        let (Some(old), Some(new)) = (old, new) else {
            all("unreadable", reasons);
            return Ok(());
        };
        if old.build != new.build {
            all("build", reasons);
        }
        if old.platform != new.platform {
            all("platform", reasons);
        }
        for name in self.services.keys() {
            if old.services.get(name) != new.services.get(name) {
                reasons
                    .entry(name.clone())
                    .or_default()
                    .insert(Reason::Config {
                        section: format!("services.{name}"),
                    });
            }
        }
        Ok(())
    }
}
