use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_discover::{GoEnv, PackageGraph, Project};

use crate::{FileInput, ModuleInput, Toolchain};

/// Why key inputs could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file listed by `go list` or a toolchain binary could not be read.
    #[error("cannot read {path} while computing the cache key: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Hashes files once per run, however many targets share them (a shared package is an input of
/// every service and every platform).
#[derive(Debug, Default)]
pub struct FileHasher {
    memo: Mutex<HashMap<PathBuf, [u8; 32]>>,
}

impl FileHasher {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// BLAKE3 of the file's content, memoised by path.
    pub fn hash(&self, path: &Path) -> Result<[u8; 32], KeyError> {
        if let Some(h) = self.memo.lock().ok().and_then(|m| m.get(path).copied()) {
            return Ok(h);
        }
        // Streamed rather than memory-mapped: a large `//go:embed` asset would otherwise count
        // its whole size towards kiln's resident memory while it is hashed.
        let mut hasher = blake3::Hasher::new();
        std::fs::File::open(path)
            .and_then(|f| hasher.update_reader(f).map(|_| ()))
            .map_err(|source| KeyError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let h = *hasher.finalize().as_bytes();
        if let Ok(mut m) = self.memo.lock() {
            m.insert(path.to_path_buf(), h);
        }
        Ok(h)
    }

    /// Like [`FileHasher::hash`], but a missing file hashes to a fixed marker: an optional input
    /// such as `go.sum` or `go.work.sum` that appears later must still change the key.
    pub fn hash_optional(&self, path: &Path) -> Result<Option<[u8; 32]>, KeyError> {
        match self.hash(path) {
            Ok(h) => Ok(Some(h)),
            Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The source inputs of one main package: files by content, cached modules by identity.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Files of local packages plus go.mod/go.sum/go.work.
    pub files: Vec<FileInput>,
    /// Modules served from GOMODCACHE.
    pub modules: Vec<ModuleInput>,
}

/// Collects the source inputs of `main` from its import graph.
pub fn collect_sources(
    project: &Project,
    graph: &PackageGraph,
    main: &str,
    hasher: &FileHasher,
) -> Result<Sources, KeyError> {
    let mut out = Sources::default();
    let modcache = &project.env.gomodcache;
    let mut module_roots: Vec<(String, PathBuf)> = Vec::new();
    for pkg in graph.closure(main) {
        if pkg.standard {
            continue;
        }
        let module = pkg.module.as_ref();
        let effective = module.map(|m| m.replace.as_deref().unwrap_or(m));
        if let Some(m) = effective {
            if !m.version.is_empty()
                && !modcache.as_os_str().is_empty()
                && pkg.dir.starts_with(modcache)
            {
                out.modules.push(ModuleInput {
                    path: module.map(|m| m.path.clone()).unwrap_or_default(),
                    version: m.version.clone(),
                    sum: m.sum.clone(),
                });
                continue;
            }
        }
        let module_path = module.map(|m| m.path.clone()).unwrap_or_default();
        let root = pkg.module_root().unwrap_or(&project.root).to_path_buf();
        if !module_roots.iter().any(|(_, r)| *r == root) {
            module_roots.push((module_path.clone(), root.clone()));
        }
        for f in &pkg.files {
            let abs = pkg.dir.join(f);
            out.files.push(FileInput {
                module: module_path.clone(),
                path: relative(&abs, &root),
                hash: hasher.hash(&abs)?,
            });
        }
    }
    for (module, root) in module_roots {
        for name in ["go.mod", "go.sum"] {
            push_optional(&mut out.files, hasher, &module, name, &root.join(name))?;
        }
    }
    for w in project.workspace_files() {
        let name = w
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        push_optional(&mut out.files, hasher, "<workspace>", &name, &w)?;
    }
    out.files.sort();
    out.files.dedup();
    out.modules.sort();
    out.modules.dedup();
    Ok(out)
}

fn push_optional(
    files: &mut Vec<FileInput>,
    hasher: &FileHasher,
    module: &str,
    name: &str,
    path: &Path,
) -> Result<(), KeyError> {
    let hash = hasher.hash_optional(path)?.unwrap_or([0; 32]);
    files.push(FileInput {
        module: module.to_string(),
        path: name.to_string(),
        hash,
    });
    Ok(())
}

fn relative(path: &Path, root: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The toolchain's identity: version plus a hash of its binaries (read from `GOROOT/bin` and
/// `GOTOOLDIR`; binaries a toolchain lacks are skipped).
pub fn toolchain(env: &GoEnv, hasher: &FileHasher) -> Result<Toolchain, KeyError> {
    let tooldir = PathBuf::from(env.var("GOTOOLDIR"));
    let exe = if env.var("GOHOSTOS") == "windows" {
        ".exe"
    } else {
        ""
    };
    let mut h = blake3::Hasher::new();
    let candidates = [
        env.goroot.join("bin").join(format!("go{exe}")),
        tooldir.join(format!("compile{exe}")),
        tooldir.join(format!("link{exe}")),
        tooldir.join(format!("asm{exe}")),
        tooldir.join(format!("cgo{exe}")),
    ];
    for p in candidates {
        if let Some(fh) = hasher.hash_optional(&p)? {
            h.update(
                p.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            h.update(&fh);
        }
    }
    Ok(Toolchain {
        version: env.version.clone(),
        binaries: *h.finalize().as_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_memoises_and_tells_missing_apart() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.go");
        std::fs::write(&f, "package a").unwrap();
        let h = FileHasher::new();
        let first = h.hash(&f).unwrap();
        assert_eq!(first, *blake3::hash(b"package a").as_bytes());
        std::fs::write(&f, "package b").unwrap();
        assert_eq!(
            h.hash(&f).unwrap(),
            first,
            "memo: one run sees one snapshot"
        );
        assert!(h
            .hash_optional(&dir.path().join("missing"))
            .unwrap()
            .is_none());
        assert!(h.hash(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn relative_paths_use_slashes() {
        assert_eq!(
            relative(Path::new("/r/m/a/b.go"), Path::new("/r/m")),
            "a/b.go"
        );
    }
}
