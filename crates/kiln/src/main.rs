//! The `kiln` command line: parses arguments, calls the library crates in flow order and draws
//! progress and tables. The only place that prints, picks colours and decides exit codes.

mod ci;
mod cmd;
mod progress;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln_config::Env;

/// kiln: static, verified Go binaries and reproducible OCI images, without a Docker daemon.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
pub struct Cli {
    /// Run as if kiln was started in DIR.
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print only errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print every go command and every finished target.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build static, verified binaries for every service and platform.
    Build(cmd::build::BuildArgs),
    /// Build, then package every service into a reproducible OCI image; write, archive or push it.
    Image(cmd::image::ImageArgs),
    /// Inspect binaries: format, linkage, libraries, Go build info; fail if not static.
    VerifyBin(cmd::verify_bin::VerifyBinArgs),
    /// Write an SPDX or CycloneDX SBOM for a Go binary or an image.
    Sbom(cmd::sbom::SbomArgs),
    /// Sign an image in a registry (cosign-compatible), optionally attaching SBOM and provenance.
    Sign(cmd::sign::SignArgs),
    /// Check an image's signature, SBOM, provenance, static binaries and policy (CI gate).
    Verify(cmd::verify::VerifyArgs),
    /// Create a cosign-compatible key pair (kiln.key, kiln.pub); password from KILN_PASSWORD.
    Keygen(cmd::keygen::KeygenArgs),
    /// List the services a change affects (import graph, go.mod, kiln.toml, data files).
    Affected(cmd::affected::AffectedArgs),
    /// Check Dockerfiles for the mistakes Go images commonly have.
    Lint(cmd::lint::LintArgs),
    /// Generate a Dockerfile, .dockerignore, systemd unit or Kubernetes manifests for a service.
    Gen(cmd::gen::GenArgs),
    /// Write a commented kiln.toml for this repository.
    Init(cmd::init::InitArgs),
    /// Inspect or clean the local build cache.
    Cache(cmd::cache::CacheArgs),
    /// Serve go's package cache from kiln's store: GOCACHEPROG="kiln gocacheprog" go build ./...
    Gocacheprog(cmd::gocacheprog::GocacheprogArgs),
    /// Run remote build actions for a REAPI engine that speaks the Remote Workers API (BuildGrid).
    Worker(cmd::worker::WorkerArgs),
}

/// Global output settings every command sees.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// `--quiet`.
    pub quiet: bool,
    /// `--verbose`.
    pub verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `go build` children run in their own process groups (so a terminal's Ctrl-C reaches only
    // kiln): on SIGINT/SIGTERM/SIGHUP, kiln stops them before it exits. Their scratch directories
    // are removed by the next run. Failing to install the handler only loses that courtesy.
    let _ = ctrlc::set_handler(|| {
        kiln_exec::kill_running();
        kiln_remote::cancel_running();
        std::process::exit(130);
    });
    let ui = Ui {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let cwd = match (std::env::current_dir(), &cli.dir) {
        (Ok(d), _) => d,
        // A deleted working directory still allows `-C DIR`.
        (Err(_), Some(d)) => d.clone(),
        (Err(e), None) => {
            eprintln!("error: cannot determine the working directory: {e}");
            return ExitCode::from(2);
        }
    };
    // Checked here: otherwise the first thing to fail is starting `go` in it, which reads as
    // "install Go".
    if let Some(problem) = cli.dir.as_deref().and_then(dir_problem) {
        eprintln!("{} {problem}", console::style("error:").red().bold());
        return ExitCode::from(2);
    }
    let dir = cli.dir.clone().unwrap_or_else(|| cwd.clone());
    // The only place kiln reads its environment: everything below gets these values as data.
    let env = Env::resolve(cwd, |name| std::env::var_os(name)).with_process_os(std::env::vars_os());
    let ci = ci::Ci::new(&env);
    if env.no_color {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    let result = match cli.command {
        Command::Build(args) => cmd::build::run(&dir, &env, args, ui),
        Command::VerifyBin(args) => cmd::verify_bin::run(&dir, args, ui),
        Command::Cache(args) => cmd::cache::run(args, &env, ui),
        Command::Init(args) => cmd::init::run(&dir, &env, args, ui),
        Command::Keygen(args) => cmd::keygen::run(&dir, &env, args, ui),
        Command::Sign(args) => cmd::sign::run(&dir, &env, args, ui),
        Command::Sbom(args) => cmd::sbom::run(&dir, &env, args, ui),
        Command::Verify(args) => cmd::verify::run(&dir, &env, args, ui),
        Command::Image(args) => cmd::image::run(&dir, &env, args, ui),
        Command::Affected(args) => cmd::affected::run(&dir, &env, args, ui),
        Command::Lint(args) => cmd::lint::run(&dir, args, ui, &ci),
        Command::Gen(args) => cmd::gen::run(&dir, &env, args, ui),
        Command::Gocacheprog(args) => cmd::gocacheprog::run(&env, args),
        Command::Worker(args) => cmd::worker::run(&env, args, ui),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let text = error_text(&e);
            ci.error(&text);
            eprintln!("{} {text}", console::style("error:").red().bold());
            ExitCode::from(2)
        }
    }
}

/// The error and its causes joined by `: `, as anyhow's `{:#}` does, but a cause whose text the
/// message already contains is left out: library errors often say `{source}` in their message
/// *and* return it from `source()`, which printed every such error twice ("unknown template ...
/// hint: ...: unknown template ... hint: ...").
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Why `-C DIR` cannot be used, if it cannot.
fn dir_problem(dir: &std::path::Path) -> Option<String> {
    let hint =
        "hint: -C (--dir) names an existing directory to run in, relative to the current directory";
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some(format!("-C {}: not a directory\n{hint}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("-C {}: no such directory\n{hint}", dir.display()))
        }
        Err(e) => Some(format!("-C {}: {e}\n{hint}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that says its source in its message and also returns it from `source()`, as
    /// thiserror's `#[error("...: {source}")]` does.
    #[derive(Debug)]
    struct Outer {
        source: std::io::Error,
    }

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "service api: {}", self.source)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn issue_9_a_cause_already_in_the_message_is_printed_once() {
        let inner = std::io::Error::other("unknown template `{{.X}}`\nhint: kiln knows ...");
        let e = anyhow::Error::new(Outer { source: inner });
        let text = error_text(&e);
        assert_eq!(text.matches("unknown template").count(), 1, "{text}");
        assert_eq!(
            text,
            "service api: unknown template `{{.X}}`\nhint: kiln knows ..."
        );
        // A cause that adds something is still printed.
        let e = anyhow::Error::msg("disk full").context("writing the build manifest");
        assert_eq!(error_text(&e), "writing the build manifest: disk full");
    }
}
