//! `kiln verify-bin`: the build's binary check, for any binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use kiln_verify::{check, inspect_file, BinaryReport, Expectation, Finding, Severity};
use serde::Serialize;

use crate::table::{human_size, Table};
use crate::Ui;

/// Arguments of `kiln verify-bin`.
#[derive(Debug, Args)]
pub struct VerifyBinArgs {
    /// Binaries to inspect.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Accept dynamically linked binaries and cgo (report only).
    #[arg(long)]
    pub allow_dynamic: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Entry {
    file: PathBuf,
    ok: bool,
    report: Option<BinaryReport>,
    findings: Vec<Finding>,
    error: Option<String>,
}

/// Runs `kiln verify-bin`.
pub fn run(dir: &Path, args: VerifyBinArgs, ui: Ui) -> Result<ExitCode> {
    let exp = Expectation {
        static_required: !args.allow_dynamic,
        ..Expectation::default()
    };
    let entries: Vec<Entry> = args
        .files
        .iter()
        .map(|f| match inspect_file(&dir.join(f)) {
            Ok(report) => {
                let findings = check(&report, &exp);
                Entry {
                    file: f.clone(),
                    ok: !findings.iter().any(|x| x.severity == Severity::Error),
                    report: Some(report),
                    findings,
                    error: None,
                }
            }
            Err(e) => Entry {
                file: f.clone(),
                ok: false,
                report: None,
                findings: Vec::new(),
                error: Some(e.to_string()),
            },
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        let mut t = Table::new(&[
            "FILE",
            "FORMAT",
            "ARCH",
            "LINKAGE",
            "LIBRARIES",
            "SIZE",
            "GO",
            "CGO",
            "RESULT",
        ]);
        for e in &entries {
            let r = e.report.as_ref();
            let go = r.and_then(|r| r.go.as_ref());
            t.row(vec![
                e.file.display().to_string(),
                r.map(|r| r.format.to_string()).unwrap_or_default(),
                r.map(|r| r.arch.clone()).unwrap_or_default(),
                r.map(|r| r.linkage.to_string()).unwrap_or_default(),
                r.map(|r| {
                    if r.needed.is_empty() {
                        "-".into()
                    } else {
                        r.needed.join(",")
                    }
                })
                .unwrap_or_default(),
                r.map(|r| human_size(r.size)).unwrap_or_default(),
                go.map(|g| g.go_version.clone())
                    .unwrap_or_else(|| "-".into()),
                go.and_then(|g| g.setting("CGO_ENABLED").map(str::to_string))
                    .unwrap_or_else(|| "-".into()),
                if e.ok { "ok" } else { "FAILED" }.into(),
            ]);
        }
        print!("{}", t.render());
        for e in &entries {
            if let Some(err) = &e.error {
                eprintln!(
                    "{} {}: {err}",
                    console::style("error:").red().bold(),
                    e.file.display()
                );
            }
            for f in &e.findings {
                if f.severity == Severity::Warning && ui.quiet {
                    continue;
                }
                let label = match f.severity {
                    Severity::Error => console::style("error:").red().bold(),
                    Severity::Warning => console::style("warning:").yellow().bold(),
                };
                eprintln!("{label} {} [{}]: {}", e.file.display(), f.code, f.message);
                if let Some(h) = &f.hint {
                    eprintln!("  hint: {h}");
                }
            }
        }
    }
    Ok(if entries.iter().all(|e| e.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
