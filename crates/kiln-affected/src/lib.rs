//! Which services a change affects: the question behind `kiln affected` and `kiln build --affected`.
//!
//! Sits between **plan** and the rest of kiln's flow (discover -> plan -> key -> cache -> execute ->
//! verify -> package -> attest -> publish -> record): it takes a [`kiln_plan::Plan`] (services, their
//! main packages and the import graphs of their build contexts), asks git which files changed
//! between a base and a head (by default the merge-base with the default branch and the working
//! tree, uncommitted and untracked files included), and maps every changed file to the services
//! whose output it may change:
//!
//! - a file the build reads (Go, cgo/asm, syso or `//go:embed` file: everything in
//!   [`kiln_discover::Package::files`]) affects every main whose import closure contains its package;
//! - `go.mod`/`go.work` changes affect only services that compile a package of a module whose
//!   required, replaced or excluded version moved; a change that cannot be narrowed (`go` or
//!   `toolchain` line, `use` list, a pre-1.17 go.mod) affects every service using that module;
//!   `go.sum` changes are narrowed the same way;
//! - `kiln.toml` changes affect the services whose `[services.NAME]` section changed, or all of
//!   them when `[build]` or `[platform.*]` changed;
//! - files matching a service's declared `data = [...]` globs affect that service;
//! - anything else (a README, tests, docs) affects nothing.
//!
//! When the base is not in the clone (a shallow CI checkout), the answer is "everything" with a
//! warning, never "nothing". Each affected service carries the [`Reason`]s that put it there. The
//! crate never prints: warnings come back in [`Affected::warnings`].
//!
//! Limits: the import graph is the working tree's. With `head` set to a commit other than the
//! checked-out one, files that exist only in that commit are matched by directory and extension.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod compute;
mod git;
mod gomod;

use std::path::PathBuf;

use serde::Serialize;

pub use compute::{affected, changes, Changes};

/// What to compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AffectedRequest {
    /// The base revision; `None` means the merge-base with the default branch (`origin/HEAD`, else
    /// `main`, else `master`).
    pub base: Option<String>,
    /// The head revision; `None` means the working tree, uncommitted and untracked files included.
    pub head: Option<String>,
}

/// Why a service is affected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// A file read by a package in the service's import closure changed.
    File {
        /// The file, relative to the repository root.
        file: String,
        /// The package that reads it.
        package: String,
    },
    /// A module the service compiles packages from changed version in go.mod / go.sum / go.work.
    Module {
        /// The go.mod / go.sum / go.work file, relative to the repository root.
        file: String,
        /// The module path.
        module: String,
        /// Its version (or replacement) before; `None` when it was not listed.
        old: Option<String>,
        /// Its version (or replacement) after; `None` when it is no longer listed.
        new: Option<String>,
    },
    /// A go.mod / go.work change that cannot be narrowed to module versions.
    ModuleFile {
        /// The file, relative to the repository root.
        file: String,
        /// Why it could not be narrowed.
        why: String,
    },
    /// A kiln.toml section that applies to the service changed.
    Config {
        /// The section, e.g. `services.api` or `build`.
        section: String,
    },
    /// A declared data file of the service changed.
    Data {
        /// The file, relative to the repository root.
        file: String,
        /// The `data` glob it matched.
        pattern: String,
    },
    /// The base revision is not available, so every service counts as affected.
    BaseMissing {
        /// The base that was asked for or derived.
        base: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::File { file, package } => write!(f, "{file} (package {package})"),
            Reason::Module {
                file,
                module,
                old,
                new,
            } => write!(
                f,
                "{file}: {module} {} -> {}",
                old.as_deref().unwrap_or("(none)"),
                new.as_deref().unwrap_or("(none)")
            ),
            Reason::ModuleFile { file, why } => write!(f, "{file}: {why}"),
            Reason::Config { section } => write!(f, "kiln.toml [{section}] changed"),
            Reason::Data { file, pattern } => write!(f, "{file} (data file, matches {pattern:?})"),
            Reason::BaseMissing { base } => {
                write!(
                    f,
                    "base {base} is not in this clone: everything counts as affected"
                )
            }
        }
    }
}

/// One affected service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedService {
    /// Service name.
    pub name: String,
    /// Import path of its main package.
    pub package: String,
    /// Why it is affected, sorted, without duplicates.
    pub reasons: Vec<Reason>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// The base as asked for or derived (`origin/main`, `HEAD~3`, ...).
    pub base: String,
    /// The commit changes are counted from (the merge-base of base and head); `None` when the
    /// base is missing.
    pub merge_base: Option<String>,
    /// The head revision, or `None` for the working tree.
    pub head: Option<String>,
    /// Changed files, relative to the repository root, sorted.
    pub changed: Vec<String>,
    /// Changed files that affect no service (docs, tests, unrelated modules), sorted.
    pub ignored: Vec<String>,
    /// Affected services, sorted by name.
    pub services: Vec<AffectedService>,
    /// Services not affected, sorted.
    pub unaffected: Vec<String>,
    /// Whether every service counts as affected because the change could not be computed.
    pub everything: bool,
    /// Things the caller should tell the user (missing base, unreadable old kiln.toml, ...).
    pub warnings: Vec<String>,
}

impl Affected {
    /// Whether `service` is affected.
    pub fn contains(&self, service: &str) -> bool {
        self.services.iter().any(|s| s.name == service)
    }

    /// Main packages of the affected services, sorted: patterns for `go list`/`kiln build`.
    pub fn packages(&self) -> Vec<String> {
        let mut p: Vec<String> = self.services.iter().map(|s| s.package.clone()).collect();
        p.sort();
        p.dedup();
        p
    }
}

/// Why the affected set could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum AffectedError {
    /// git is not installed.
    #[error("cannot run git: {source}\nhint: install git (`apt-get install -y git`)")]
    GitMissing {
        /// The spawn error.
        source: std::io::Error,
    },
    /// The project is not inside a git work tree.
    #[error("{dir} is not inside a git repository: {stderr}\nhint: `kiln affected` compares git revisions; run it in a git checkout (or `git init` and commit first)")]
    NotAGitRepository {
        /// The project root.
        dir: PathBuf,
        /// What git said.
        stderr: String,
    },
    /// A git command failed.
    #[error("`git {args}` failed in {dir}:\n{stderr}")]
    Git {
        /// The arguments, joined.
        args: String,
        /// Where it ran.
        dir: PathBuf,
        /// What git printed.
        stderr: String,
    },
    /// A revision does not exist in a complete (non-shallow) clone.
    #[error("unknown revision {reference:?}\nhint: check the spelling, or fetch it first (`git fetch origin {reference}`)")]
    UnknownRevision {
        /// The revision as given.
        reference: String,
    },
    /// No base was given and no default branch exists.
    #[error("cannot find the default branch (no origin/HEAD, main or master)\nhint: pass the base explicitly, e.g. `--base origin/develop`, or run `git remote set-head origin --auto`")]
    NoDefaultBranch,
}
