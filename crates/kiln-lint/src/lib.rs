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

pub use ast::{Args, Dockerfile, Flag, Heredoc, ImageRef, Instruction, Span, Stage};
pub use dockerignore::{DockerIgnore, PatternError};
pub use parser::{parse, parse_with_args, ParseError};
pub use rules::{rule, rules, RuleInfo, Severity, DOCS_PATH, DOCS_URL};
pub use sarif::{exit_code, to_sarif_with_base};
pub use shell::expand;

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
    let text = std::fs::read_to_string(dockerfile).map_err(|source| LintError::Read {
        path: dockerfile.to_path_buf(),
        source,
    })?;
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

fn read_ignore(path: &Path) -> Result<ContextIgnore, LintError> {
    match std::fs::read_to_string(path) {
        Ok(text) => DockerIgnore::parse(&text)
            .map(ContextIgnore::Present)
            .map_err(|source| LintError::DockerIgnore {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ContextIgnore::Missing),
        Err(source) => Err(LintError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn lint_text(
    text: &str,
    file: &Path,
    ignore: &ContextIgnore,
    opts: &LintOptions,
) -> Result<Report, LintError> {
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
