//! Dockerfile linting for Go images.
//!
//! kiln builds images without Dockerfiles, but many Go teams keep one. `kiln-lint` sits beside the
//! build flow (discover -> plan -> key -> cache -> execute -> verify -> package -> attest ->
//! publish -> record): it checks a team's existing Dockerfile for the mistakes kiln avoids by
//! construction (source copied before go.mod, cgo left on for a scratch image, debug info shipped,
//! toolchain in the final image, unpinned bases, root user, missing .dockerignore ...) and explains
//! why each matters. `kiln-gen` writes files that pass these rules.
//!
//! The crate has its own Dockerfile [`parse`]r (directives, continuations, heredocs, exec form,
//! flags, stages, ARG expansion), a `.dockerignore` matcher ([`DockerIgnore`]), the rule table
//! ([`rules`]) and output helpers ([`to_sarif_with_base`], [`exit_code`]).
//!
//! ```
//! let report = kiln_lint::lint_str(
//!     "FROM golang:1.26\nCOPY . .\nRUN go build -o /app .\nCMD [\"/app\"]\n",
//!     None,
//!     &kiln_lint::LintOptions::default(),
//! )
//! .unwrap();
//! assert!(report.findings.iter().any(|f| f.rule == "KL001"));
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod ast;
mod dockerignore;
mod parser;
mod rules;
mod sarif;
mod shell;
mod work;

#[cfg(test)]
mod linear_tests;

pub use ast::{Args, Dockerfile, Flag, Heredoc, ImageRef, Instruction, Span, Stage};
pub use dockerignore::{DockerIgnore, PatternError};
pub use parser::{parse, parse_with_args, ParseError};
pub use rules::{rule, rules, RuleInfo, Severity, DOCS_PATH, DOCS_URL};
pub use sarif::{exit_code, to_sarif_with_base};
pub use shell::{expand, MAX_EXPANSION_DEPTH};

use rules::ContextIgnore;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What to lint and how strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintOptions {
    /// Build context directory; defaults to the Dockerfile's directory for [`lint`].
    pub context: Option<PathBuf>,
    /// Rule ids to skip (case-insensitive), e.g. `KL013`.
    pub disabled: BTreeSet<String>,
    /// Findings below this severity are dropped.
    pub min_severity: Severity,
    /// `--build-arg` values used when expanding `FROM` lines.
    pub build_args: BTreeMap<String, String>,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            context: None,
            disabled: BTreeSet::new(),
            min_severity: Severity::Info,
            build_args: BTreeMap::new(),
        }
    }
}

/// One problem found in a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Rule id, e.g. `KL003`.
    pub rule: String,
    /// Rule name, e.g. `cgo-enabled-for-static-base`.
    pub name: String,
    /// Severity of the rule.
    pub severity: Severity,
    /// What is wrong and why it matters.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// The Dockerfile as given by the caller.
    pub file: String,
    /// First line (1-based).
    pub line: usize,
    /// Last line (1-based, inclusive).
    pub end_line: usize,
}

/// The findings for one Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The Dockerfile as given by the caller.
    pub file: String,
    /// Findings sorted by line, then rule id.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The highest severity among the findings.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// The largest Dockerfile or `.dockerignore` kiln lints: 1 MiB. Real Dockerfiles are a few KB;
/// the bound keeps a generated or hostile file (or a device such as `/dev/zero`) from holding
/// `kiln lint` for long.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// Why a Dockerfile could not be linted.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The Dockerfile or .dockerignore could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Dockerfile does not parse.
    #[error("{path}:{source}\nhint: fix the syntax; `docker build` would reject this file too")]
    Parse {
        /// The Dockerfile.
        path: PathBuf,
        /// Where and why parsing failed.
        source: ParseError,
    },
    /// The file is larger than [`MAX_INPUT_BYTES`].
    #[error("{path} is larger than {limit} bytes (1 MiB), the most kiln lint reads from one file{}\nhint: real Dockerfiles and .dockerignore files are a few KB: check that this is the file you meant", size.map(|s| format!(" ({s} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, when known.
        size: Option<u64>,
        /// The limit.
        limit: u64,
    },
    /// The .dockerignore has an invalid pattern.
    #[error("{path}: {source}\nhint: fix or remove the pattern")]
    DockerIgnore {
        /// The .dockerignore file.
        path: PathBuf,
        /// The failing pattern.
        source: PatternError,
    },
}

/// Lints a Dockerfile on disk, reading the context's `.dockerignore` (or the Dockerfile-specific
/// `<name>.dockerignore` beside it, which BuildKit prefers).
pub fn lint(dockerfile: &Path, opts: &LintOptions) -> Result<Report, LintError> {
    let text = read_bounded(dockerfile)?;
    let dir = dockerfile
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let context = opts.context.clone().unwrap_or_else(|| dir.to_path_buf());
    let specific = dockerfile
        .file_name()
        .map(|n| dir.join(format!("{}.dockerignore", n.to_string_lossy())));
    let ignore_file = specific
        .filter(|p| p.is_file())
        .unwrap_or_else(|| context.join(".dockerignore"));
    let ignore = read_ignore(&ignore_file)?;
    lint_text(&text, dockerfile, &ignore, opts)
}

/// Lints Dockerfile text. With `context`, the context's `.dockerignore` is checked too (KL010);
/// without it that rule does not run.
pub fn lint_str(
    text: &str,
    context: Option<&Path>,
    opts: &LintOptions,
) -> Result<Report, LintError> {
    let ignore = match context.or(opts.context.as_deref()) {
        Some(dir) => read_ignore(&dir.join(".dockerignore"))?,
        None => ContextIgnore::Unknown,
    };
    lint_text(text, Path::new("Dockerfile"), &ignore, opts)
}

/// Reads a text file of at most [`MAX_INPUT_BYTES`]. The size is checked before reading, and the
/// read itself stops one byte past the limit, for files whose size the metadata does not tell.
fn read_bounded(path: &Path) -> Result<String, LintError> {
    use std::io::Read;
    let io = |source| LintError::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size| LintError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_INPUT_BYTES,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_file() && meta.len() > MAX_INPUT_BYTES {
        return Err(too_large(Some(meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large(None));
    }
    String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })
}

fn read_ignore(path: &Path) -> Result<ContextIgnore, LintError> {
    match read_bounded(path) {
        Ok(text) => DockerIgnore::parse(&text)
            .map(ContextIgnore::Present)
            .map_err(|source| LintError::DockerIgnore {
                path: path.to_path_buf(),
                source,
            }),
        Err(LintError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(ContextIgnore::Missing)
        }
        Err(e) => Err(e),
    }
}

fn lint_text(
    text: &str,
    file: &Path,
    ignore: &ContextIgnore,
    opts: &LintOptions,
) -> Result<Report, LintError> {
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(LintError::TooLarge {
            path: file.to_path_buf(),
            size: Some(text.len() as u64),
            limit: MAX_INPUT_BYTES,
        });
    }
    let df = parse_with_args(text, &opts.build_args).map_err(|source| LintError::Parse {
        path: file.to_path_buf(),
        source,
    })?;
    let file_name = file.to_string_lossy().into_owned();
    let findings = rules::run(&df, ignore)
        .into_iter()
        .filter(|h| !opts.disabled.iter().any(|d| d.eq_ignore_ascii_case(h.rule)))
        .filter_map(|h| {
            let info = rule(h.rule)?;
            (info.severity >= opts.min_severity).then(|| Finding {
                rule: h.rule.to_string(),
                name: info.name.to_string(),
                severity: info.severity,
                message: h.message,
                hint: h.hint,
                file: file_name.clone(),
                line: h.line,
                end_line: h.end_line,
            })
        })
        .collect();
    Ok(Report {
        file: file_name,
        findings,
    })
}
