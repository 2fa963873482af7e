//! `kiln lint`: checks Dockerfiles for the mistakes Go teams make (rules in docs/lint-rules.md).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use kiln_lint::{exit_code, lint, to_sarif_with_base, LintOptions, Report, Severity};
use serde::Serialize;

use crate::Ui;

/// Arguments of `kiln lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Dockerfiles to lint (default: every `Dockerfile`, `*.Dockerfile` and `Dockerfile.*` in the
    /// repository, skipping `.git` and `dist`).
    pub dockerfiles: Vec<PathBuf>,
    /// Output format (default: human).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// JSON output, as every other command spells it: the same as `--format json`.
    #[arg(long)]
    pub json: bool,
    /// Exit with 1 when a finding is at or above this severity.
    #[arg(long, value_name = "LEVEL", default_value = "warning", value_parser = parse_severity)]
    pub severity: Severity,
    /// Do not report findings below this severity.
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = parse_severity)]
    pub min_severity: Severity,
    /// Build context directory, for the `.dockerignore` check (default: the Dockerfile's directory
    /// when it has a `.dockerignore`, else the nearest parent holding go.mod, else the Dockerfile's
    /// directory).
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// Rule ids to skip, comma separated (`KL013,KL008`).
    #[arg(long, value_delimiter = ',', value_name = "RULE")]
    pub disable: Vec<String>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `file:line: severity[ID] name: message` with a hint line.
    Human,
    /// One JSON object with every report.
    Json,
    /// SARIF 2.1.0 for code-scanning services.
    Sarif,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

#[derive(Serialize)]
struct JsonOut<'a> {
    reports: &'a [Report],
    threshold: Severity,
    exit_code: i32,
}

/// The output format from `--format` and `--json`; they agree or it is a usage error.
fn output_format(args: &LintArgs) -> Result<Format> {
    match (args.json, args.format) {
        (false, f) => Ok(f.unwrap_or(Format::Human)),
        (true, None | Some(Format::Json)) => Ok(Format::Json),
        (true, Some(other)) => anyhow::bail!(
            "--json and --format {} ask for different outputs\nhint: use one of them: --json is the same as --format json",
            other.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
        ),
    }
}

/// Runs `kiln lint`.
pub fn run(dir: &Path, args: LintArgs, ui: Ui, ci: &crate::ci::Ci) -> Result<ExitCode> {
    let format = output_format(&args)?;
    let files: Vec<PathBuf> = if args.dockerfiles.is_empty() {
        let root = repo_root(dir);
        let mut found = Vec::new();
        find_dockerfiles(&root, &mut found);
        found.sort();
        found
    } else {
        args.dockerfiles.iter().map(|f| dir.join(f)).collect()
    };
    if files.is_empty() {
        if !ui.quiet {
            eprintln!("no Dockerfile found (looked for Dockerfile, *.Dockerfile and Dockerfile.*)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut reports = Vec::new();
    let mut failed = false;
    for file in &files {
        let context = match &args.context {
            Some(c) => dir.join(c),
            None => default_context(file),
        };
        let opts = LintOptions {
            context: Some(context),
            disabled: args
                .disable
                .iter()
                .map(|d| d.to_ascii_uppercase())
                .collect::<BTreeSet<_>>(),
            min_severity: args.min_severity,
            ..LintOptions::default()
        };
        match lint(file, &opts) {
            Ok(mut r) => {
                let shown = display(dir, file);
                r.file.clone_from(&shown);
                for f in &mut r.findings {
                    f.file.clone_from(&shown);
                }
                reports.push(r);
            }
            Err(e) => {
                eprintln!("{} {e}", console::style("error:").red().bold());
                failed = true;
            }
        }
    }
    let code = exit_code(&reports, args.severity);
    ci.lint_findings(&reports);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&JsonOut {
                reports: &reports,
                threshold: args.severity,
                exit_code: if failed { 2 } else { code },
            })?
        ),
        Format::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&to_sarif_with_base(&reports, dir))?
        ),
        Format::Human => print_human(&reports, args.severity, ui),
    }
    if failed {
        eprintln!(
            "{} of {} Dockerfile(s) could not be linted",
            files.len() - reports.len(),
            files.len()
        );
    }
    Ok(ExitCode::from(if failed { 2 } else { code as u8 }))
}

fn print_human(reports: &[Report], threshold: Severity, ui: Ui) {
    let mut counts = [0usize; 3];
    for f in reports.iter().flat_map(|r| &r.findings) {
        counts[f.severity as usize] += 1;
        let sev = match f.severity {
            Severity::Error => console::style("error").red().bold(),
            Severity::Warning => console::style("warning").yellow().bold(),
            Severity::Info => console::style("info").cyan(),
        };
        println!(
            "{}:{}: {sev}[{}] {}: {}",
            f.file, f.line, f.rule, f.name, f.message
        );
        println!("  hint: {}", f.hint);
    }
    if ui.quiet {
        return;
    }
    let total: usize = counts.iter().sum();
    let files = reports.len();
    if total == 0 {
        println!("{files} Dockerfile(s) checked, no findings");
    } else {
        println!(
            "{files} Dockerfile(s) checked: {} error(s), {} warning(s), {} info; failing at {threshold} and above",
            counts[Severity::Error as usize],
            counts[Severity::Warning as usize],
            counts[Severity::Info as usize],
        );
    }
}

/// `dir`-relative when below it, else as is.
fn display(dir: &Path, file: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let file_c = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    file_c
        .strip_prefix(&dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| file.display().to_string())
}

/// The git work tree's top level, else `dir`.
fn repo_root(dir: &Path) -> PathBuf {
    std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| dir.to_path_buf())
}

/// Names that match `Dockerfile.*` but are not Dockerfiles: ignore files, docs, editor leftovers.
const NOT_DOCKERFILE: &[&str] = &[
    ".dockerignore",
    ".md",
    ".txt",
    ".orig",
    ".rej",
    ".bak",
    ".swp",
    "~",
];

fn is_dockerfile(name: &str) -> bool {
    if NOT_DOCKERFILE.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    name == "Dockerfile" || name.ends_with(".Dockerfile") || name.starts_with("Dockerfile.")
}

fn find_dockerfiles(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if name != ".git" && name != "dist" {
                find_dockerfiles(&e.path(), out);
            }
        } else if ft.is_file() && is_dockerfile(&name) {
            out.push(e.path());
        }
    }
}

/// A Go Dockerfile's context is usually its module root (it copies go.mod first), and
/// `docker build -f cmd/api/Dockerfile .` is the common monorepo spelling.
fn default_context(file: &Path) -> PathBuf {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if dir.join(".dockerignore").is_file() {
        return dir;
    }
    dir.ancestors()
        .find(|d| d.join("go.mod").is_file() || d.join("go.work").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_names() {
        for n in ["Dockerfile", "api.Dockerfile", "Dockerfile.prod"] {
            assert!(is_dockerfile(n), "{n}");
        }
        for n in [
            "Dockerfile.dockerignore",
            "dockerfile.md",
            "Dockerfiles",
            "README.md",
        ] {
            assert!(!is_dockerfile(n), "{n}");
        }
    }
}
