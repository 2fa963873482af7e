//! `kiln affected`, and the `--affected` filter that `kiln build` (and later `kiln image`) share.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use kiln_affected::{Affected, AffectedRequest};
use kiln_config::{Config, Env};
use kiln_exec::default_jobs;
use kiln_plan::{plan, Plan, PlanRequest};
use kiln_types::Platform;

use crate::table::Table;
use crate::Ui;

/// Arguments of `kiln affected`.
#[derive(Debug, Args)]
pub struct AffectedArgs {
    /// Package patterns that define the services, relative to the current directory (default:
    /// every main package of the module or of every go.work module).
    pub patterns: Vec<String>,
    /// Base revision (default: the merge-base with the default branch: origin/HEAD, main or master).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Head revision (default: the working tree, uncommitted and untracked files included).
    #[arg(long, value_name = "REF")]
    pub head: Option<String>,
    /// Platforms whose build files count (default: those of kiln.toml, else the host's Linux).
    #[arg(long, value_delimiter = ',')]
    pub platform: Option<Vec<Platform>>,
    /// Print one JSON object: base, changed files, affected services with reasons, warnings.
    #[arg(long)]
    pub json: bool,
    /// Print every reason under each service, and the changed files that affect nothing.
    #[arg(long)]
    pub explain: bool,
    /// Print only the service names, one per line (for shell loops).
    #[arg(long, conflicts_with_all = ["json", "explain"])]
    pub names: bool,
}

/// The flags `kiln build --affected` and `kiln image --affected` share; flatten into a command's
/// arguments with `#[command(flatten)]` and call [`restrict_plan`] after planning.
#[derive(Debug, Clone, Default, Args)]
pub struct AffectedFilter {
    /// Only services affected by changes since the base (see `kiln affected`).
    #[arg(long)]
    pub affected: bool,
    /// Base revision for --affected (default: merge-base with the default branch).
    #[arg(long, value_name = "REF", requires = "affected")]
    pub base: Option<String>,
    /// Head revision for --affected (default: the working tree).
    #[arg(long, value_name = "REF", requires = "affected")]
    pub head: Option<String>,
}

/// Computes the affected services of `plan`.
pub fn compute(
    plan: &Plan,
    config: &Config,
    base: Option<&str>,
    head: Option<&str>,
) -> Result<Affected> {
    Ok(kiln_affected::affected(
        plan,
        config,
        &AffectedRequest {
            base: base.map(str::to_string),
            head: head.map(str::to_string),
        },
    )?)
}

/// With `--affected`, drops the plan's targets of unaffected services (the build contexts stay, so
/// target indices remain valid) and prints the warnings; returns the answer for messages. Without
/// it, leaves the plan alone and returns `None`. An empty `plan.targets` afterwards means nothing
/// is affected: say so and exit 0.
pub fn restrict_plan(
    plan: &mut Plan,
    config: &Config,
    filter: &AffectedFilter,
    ui: Ui,
) -> Result<Option<Affected>> {
    if !filter.affected {
        return Ok(None);
    }
    let a = compute(plan, config, filter.base.as_deref(), filter.head.as_deref())?;
    print_warnings(&a);
    plan.targets.retain(|t| a.contains(&t.service));
    if !ui.quiet && !a.services.is_empty() {
        let names: Vec<&str> = a.services.iter().map(|s| s.name.as_str()).collect();
        eprintln!("affected since {}: {}", describe_base(&a), names.join(", "));
    }
    Ok(Some(a))
}

/// `main (merge-base 1a2b3c4d)`.
pub fn describe_base(a: &Affected) -> String {
    let base = if a.base.is_empty() {
        "the default branch"
    } else {
        &a.base
    };
    match &a.merge_base {
        Some(mb) => format!("{base} (merge-base {})", &mb[..mb.len().min(12)]),
        None => base.to_string(),
    }
}

fn print_warnings(a: &Affected) {
    for w in &a.warnings {
        eprintln!("{} {w}", console::style("warning:").yellow().bold());
    }
}

/// Runs `kiln affected`.
pub fn run(dir: &Path, env: &Env, args: AffectedArgs, ui: Ui) -> Result<ExitCode> {
    let project = super::open_project(env, dir)?;
    let config = Config::load(&project.root)?;
    let req = PlanRequest {
        patterns: args.patterns.clone(),
        platforms: args.platform.clone(),
        vars: kiln_config::TemplateVars::default(),
        jobs: default_jobs().max(1),
        list_cache: None,
        dir: Some(env.cwd.join(dir)),
    };
    let plan = plan(&project, &config, &req)?;
    let a = compute(&plan, &config, args.base.as_deref(), args.head.as_deref())?;
    if args.json {
        print_warnings(&a);
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_warnings(&a);
    if args.names {
        for s in &a.services {
            println!("{}", s.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let head = a.head.as_deref().unwrap_or("the working tree");
    if a.services.is_empty() {
        if !ui.quiet {
            println!(
                "no service affected by {} changed file(s) between {} and {head}",
                a.changed.len(),
                describe_base(&a)
            );
        }
    } else if args.explain {
        for s in &a.services {
            println!("{} ({})", s.name, s.package);
            for r in &s.reasons {
                println!("  {r}");
            }
        }
    } else {
        let mut t = Table::new(&["SERVICE", "PACKAGE", "REASON"]);
        for s in &a.services {
            let mut reason = s
                .reasons
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            if s.reasons.len() > 1 {
                reason.push_str(&format!(" (+{} more)", s.reasons.len() - 1));
            }
            t.row(vec![s.name.clone(), s.package.clone(), reason]);
        }
        print!("{}", t.render());
    }
    if !ui.quiet && !a.services.is_empty() {
        println!(
            "{} of {} services affected by {} changed file(s) between {} and {head}",
            a.services.len(),
            a.services.len() + a.unaffected.len(),
            a.changed.len(),
            describe_base(&a)
        );
    }
    if args.explain && !a.ignored.is_empty() {
        println!("changed files that affect no service:");
        for f in &a.ignored {
            println!("  {f}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
