//! `kiln gen`: Dockerfile, .dockerignore, systemd unit and Kubernetes manifests for a service,
//! filled from discovery, for teams that must keep those files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use kiln_config::{Config, Env};
use kiln_discover::binary_name;
use kiln_exec::default_jobs;
use kiln_gen::{Port, ServiceSpec, PLACEHOLDER_DIGEST, PLACEHOLDER_REGISTRY};
use kiln_plan::{plan, Plan, PlanRequest};

use crate::Ui;

/// Arguments of `kiln gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// What to generate.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The service (default: the only one; with --write and several services: all of them).
    pub service: Option<String>,
    /// Write the files instead of printing them: the Dockerfile, unit and manifests next to the
    /// service's main package, the .dockerignore at the project root (the build context).
    #[arg(long)]
    pub write: bool,
    /// With --write, replace existing files.
    #[arg(long, requires = "write")]
    pub force: bool,
}

/// `kiln gen` file kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A multi-stage Dockerfile that passes `kiln lint`.
    Dockerfile,
    /// A .dockerignore for the build context.
    Dockerignore,
    /// A hardened systemd unit.
    Systemd,
    /// A Kubernetes Deployment and Service.
    K8s,
}

/// A service as `kiln gen` sees it.
struct Service {
    spec: ServiceSpec,
    /// Directory of the main package.
    dir: PathBuf,
    /// kiln.toml settings the generated files cannot carry.
    warnings: Vec<String>,
}

/// The `go` line of a go.mod, e.g. `1.22` or `1.22.3`.
fn go_line(go_mod: &Path) -> Option<String> {
    let text = std::fs::read_to_string(go_mod).ok()?;
    text.lines().find_map(|l| {
        let l = l.split("//").next()?.trim();
        l.strip_prefix("go ").map(|v| v.trim().to_string())
    })
}

fn slash(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

/// What `kiln image` would use for a service, from `[image]` and `[services.NAME.image]`: ports,
/// environment, user, base and the image reference (the configured `repository` and `tag`, else
/// the git version as `kiln image` tags it). Returns warnings for settings the generated files
/// cannot carry.
fn apply_image_settings(
    spec: &mut ServiceSpec,
    config: &Config,
    root: &Path,
    version: &dyn Fn() -> String,
) -> Result<Vec<String>> {
    let r = config.resolve_image(&spec.name, None, root)?;
    let mut warnings = Vec::new();
    spec.ports = r
        .ports
        .iter()
        .map(|p| Port::parse(p))
        .collect::<Result<_, _>>()
        .with_context(|| format!("ports of service `{}` in kiln.toml", spec.name))?;
    spec.env.extend(r.env.clone());
    if let Some(user) = &r.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, user));
        match (uid.trim().parse::<u32>(), gid.trim().parse::<u32>()) {
            (Ok(u), Ok(g)) => {
                spec.user = u;
                spec.group = g;
            }
            _ => warnings.push(format!(
                "user `{user}` of service `{}` is not numeric uid[:gid]: the generated files run as {}:{} (Kubernetes runAsUser and the Dockerfile need numbers)",
                spec.name, spec.user, spec.group
            )),
        }
    }
    match r.base.as_str() {
        // kiln's built-in base cannot be named in a Dockerfile; distroless static is its match.
        "kiln" => {}
        "scratch" => spec.base = "scratch".into(),
        reference if reference.contains("@sha256:") => spec.base = reference.into(),
        reference => spec.base = format!("{reference}@{PLACEHOLDER_DIGEST}"),
    }
    let tag = r
        .tag
        .clone()
        .unwrap_or_else(|| kiln_image::sanitize_tag(&version()));
    let repository = r.repository.as_deref().unwrap_or(PLACEHOLDER_REGISTRY);
    spec.image = format!("{}/{}:{tag}", repository.trim_end_matches('/'), spec.name);
    for (what, set) in [
        ("entrypoint", r.entrypoint.is_some()),
        ("cmd", r.cmd.is_some()),
        ("workdir", r.workdir.is_some()),
        ("stop_signal", r.stop_signal.is_some()),
        ("labels", !r.labels.is_empty()),
    ] {
        if set {
            warnings.push(format!(
                "`{what}` of service `{}` is not carried into generated files yet: add it by hand",
                spec.name
            ));
        }
    }
    Ok(warnings)
}

/// One spec per service: name and package from the plan, binary from go's naming rule, Go version
/// from the module's go.mod, module directory relative to the project root (the build context).
fn services(plan: &Plan) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    for t in &plan.targets {
        // Names become file names (`<service>.service`): only checked ones (a target whose
        // derived name fails the check is reported by `kiln build`).
        if out.iter().any(|s| s.spec.name == t.service)
            || kiln_config::check_service_name(&t.service).is_err()
        {
            continue;
        }
        // A package go refuses by its import path has no name and no directory: nothing to
        // generate for (the build reports it as a failed target).
        let Some(pkg) = plan.contexts[t.context]
            .graph
            .packages
            .get(&t.package)
            .filter(|p| !p.name.is_empty())
        else {
            continue;
        };
        let root = &plan.project.root;
        let module_root = pkg
            .module_root()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.clone());
        let rel_pkg = pkg
            .dir
            .strip_prefix(&module_root)
            .map(slash)
            .unwrap_or_default();
        let mut spec = ServiceSpec::new(
            &t.service,
            &if rel_pkg.is_empty() {
                ".".into()
            } else {
                format!("./{rel_pkg}")
            },
        );
        spec.binary = binary_name(&t.package).to_string();
        spec.module_dir = match module_root.strip_prefix(root).map(slash) {
            Ok(d) if !d.is_empty() => d,
            _ => ".".into(),
        };
        let go_mod = pkg
            .module
            .as_ref()
            .and_then(|m| m.go_mod.clone())
            .unwrap_or_else(|| module_root.join("go.mod"));
        if let Some(v) = go_line(&go_mod) {
            spec.go_version = v;
        }
        // Ports come from kiln.toml's image settings, when there are any: never guessed.
        spec.ports.clear();
        out.push(Service {
            spec,
            dir: pkg.dir.clone(),
            warnings: Vec::new(),
        });
    }
    out
}

fn render(kind: Kind, spec: &ServiceSpec) -> Result<String> {
    Ok(match kind {
        Kind::Dockerfile => kiln_gen::dockerfile(spec)?,
        Kind::Dockerignore => kiln_gen::dockerignore(spec)?,
        Kind::Systemd => kiln_gen::systemd_unit(spec)?,
        Kind::K8s => kiln_gen::k8s_manifests(spec)?,
    })
}

fn target_path(kind: Kind, svc: &Service, root: &Path) -> PathBuf {
    match kind {
        Kind::Dockerfile => svc.dir.join("Dockerfile"),
        Kind::Dockerignore => root.join(".dockerignore"),
        Kind::Systemd => svc.dir.join(format!("{}.service", svc.spec.name)),
        Kind::K8s => svc.dir.join(format!("{}.k8s.yaml", svc.spec.name)),
    }
}

/// Runs `kiln gen`.
pub fn run(dir: &Path, env: &Env, args: GenArgs, ui: Ui) -> Result<ExitCode> {
    let project = super::open_project(env, dir)?;
    let config = Config::load(&project.root)?;
    let plan = plan(
        &project,
        &config,
        &PlanRequest {
            jobs: default_jobs().max(1),
            ..PlanRequest::default()
        },
    )?;
    let mut all = services(&plan);
    // `kiln image`'s default tag; read from git only when some service has no configured tag.
    let git = std::cell::OnceCell::new();
    let version = || {
        git.get_or_init(|| kiln_discover::GitHead::read(&project.root).version)
            .clone()
    };
    for svc in &mut all {
        svc.warnings = apply_image_settings(&mut svc.spec, &config, &project.root, &version)?;
    }
    let names = || {
        all.iter()
            .map(|s| s.spec.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&Service> = match &args.service {
        Some(name) => match all.iter().find(|s| &s.spec.name == name) {
            Some(s) => vec![s],
            None => bail!(
                "no service named {name:?}\nhint: services here: {}",
                names()
            ),
        },
        // One .dockerignore serves every service of the context.
        None if args.kind == Kind::Dockerignore => all.iter().take(1).collect(),
        None if all.len() == 1 || args.write => all.iter().collect(),
        None => bail!(
            "there are {} services ({}): name one\nhint: kiln gen {} {}",
            all.len(),
            names(),
            args.kind
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
            all.first().map(|s| s.spec.name.as_str()).unwrap_or("NAME")
        ),
    };
    if !ui.quiet {
        for w in chosen.iter().flat_map(|s| &s.warnings) {
            eprintln!("{} {w}", console::style("warning:").yellow().bold());
        }
    }
    for svc in chosen {
        let text = render(args.kind, &svc.spec)?;
        if !args.write {
            print!("{text}");
            continue;
        }
        let path = target_path(args.kind, svc, &project.root);
        if path.exists() && !args.force {
            bail!(
                "{} already exists\nhint: pass --force to replace it",
                path.display()
            );
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if !ui.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
