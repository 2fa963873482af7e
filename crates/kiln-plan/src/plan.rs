use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_config::{BuildSettings, Config, TemplateVars};
use kiln_discover::{binary_name, ListCache, ListRequest, ListSource, PackageGraph, Project};
use kiln_types::Platform;
use serde::Serialize;

use crate::args::{check_flags, go_args, PlanError};

/// What the user asked to build.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Package patterns; empty means `./...`.
    pub patterns: Vec<String>,
    /// Platforms from the command line, overriding kiln.toml.
    pub platforms: Option<Vec<Platform>>,
    /// Template values (from git / SOURCE_DATE_EPOCH).
    pub vars: TemplateVars,
    /// Worker bound for the `go list` calls of distinct build contexts.
    pub jobs: usize,
    /// Recorded `go list` answers to reuse while everything they depend on is unchanged; `None`
    /// always runs `go list`.
    pub list_cache: Option<ListCache>,
    /// The directory relative patterns are relative to, as for `go build` run there (inside a
    /// workspace member, `./cmd/app` is that member's); `None`: the project root.
    pub dir: Option<PathBuf>,
}

/// One (service, platform) build.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Service name (the binary name unless kiln.toml renames it).
    pub service: String,
    /// Import path of the main package.
    pub package: String,
    /// Binary file name go writes (`.exe` on Windows).
    pub binary: String,
    /// Target platform.
    pub platform: Platform,
    /// Merged settings.
    pub settings: BuildSettings,
    /// Environment overrides passed to go.
    pub env: Vec<(String, String)>,
    /// `go build` arguments (without `-o` and packages).
    pub args: Vec<String>,
    /// Index into [`Plan::contexts`].
    pub context: usize,
    /// A reason the target cannot build, found before building (e.g. it needs cgo).
    pub problem: Option<String>,
}

impl Target {
    /// `service os/arch`, for progress lines and errors.
    pub fn label(&self) -> String {
        format!("{} {}", self.service, self.platform)
    }

    /// Whether a static binary is required (cgo not opted into).
    pub fn static_required(&self) -> bool {
        !self.settings.cgo
    }
}

/// One build context (GOOS/GOARCH/cgo/tags/env) and its import graph.
#[derive(Debug, Clone)]
pub struct Context {
    /// The `go list` request that produced the graph.
    pub request: ListRequest,
    /// The graph.
    pub graph: PackageGraph,
}

/// Everything to build.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The project.
    pub project: Project,
    /// The targets, ordered by service then platform.
    pub targets: Vec<Target>,
    /// Build contexts with their graphs.
    pub contexts: Vec<Context>,
    /// Template values used.
    pub vars: TemplateVars,
    /// How many `go list` answers came from the list cache, of how many asked.
    pub lists_cached: (usize, usize),
}

/// What makes two targets share a `go list` answer: environment, tags, module flags.
type ContextKey = (Vec<(String, String)>, Vec<String>, Vec<String>);

/// Discovers main packages, assigns services and platforms, and loads one import graph per
/// distinct build context.
pub fn plan(project: &Project, config: &Config, req: &PlanRequest) -> Result<Plan, PlanError> {
    plan_for(project, config, req, false).map(|(plan, _)| plan)
}

/// The plan of `kiln image`: each service for its image platforms (Linux only; by default the
/// Linux platforms among its build platforms) instead of its build platforms. Also returns the
/// services left without an image because they have no image platform.
pub fn plan_images(
    project: &Project,
    config: &Config,
    req: &PlanRequest,
) -> Result<(Plan, Vec<String>), PlanError> {
    for p in req.platforms.iter().flatten() {
        kiln_config::check_image_platform(p)
            .map_err(|message| PlanError::ImagePlatform { message })?;
    }
    plan_for(project, config, req, true)
}

fn plan_for(
    project: &Project,
    config: &Config,
    req: &PlanRequest,
    images: bool,
) -> Result<(Plan, Vec<String>), PlanError> {
    let mut user_patterns = req.patterns.clone();
    kiln_config::dedup_first_seen(&mut user_patterns);
    let list_dir = req.dir.clone().unwrap_or_else(|| project.root.clone());
    // `./...` at a module's root always meant the whole project; in a workspace it means what it
    // means to go (the root module only), so only no patterns at all stands for every module.
    let whole_project = user_patterns.is_empty()
        || (user_patterns == ["./..."]
            && !project.is_workspace()
            && same_dir(&list_dir, &project.root));
    let go_flags = project.env.var("GOFLAGS").to_string();
    check_flags("GOFLAGS", go_flags.split_whitespace())?;

    // First pass: which packages are commands. Cheap (no -deps) and context-independent enough:
    // whether a package is `main` does not depend on GOOS. Listed with cgo on because `./...`
    // silently skips a package whose files all import "C" when cgo is off, and such a command must
    // be found to be reported ("needs cgo") rather than vanish.
    // One stamp snapshot for every `go list` look-up of this plan.
    let run_cache = req.list_cache.as_ref().map(ListCache::for_run);
    let cache = run_cache.as_ref();
    // (answers from the list cache, answers asked for)
    let lists = std::cell::Cell::new((0usize, 0usize));
    let count = |source: ListSource| {
        let (c, t) = lists.get();
        lists.set((c + usize::from(source == ListSource::Cache), t + 1));
    };
    let list_mains = |patterns: Vec<String>, dir: &Path| {
        PackageGraph::load_cached(
            project,
            dir,
            &ListRequest {
                patterns,
                env: vec![("CGO_ENABLED".into(), "1".into())],
                ..ListRequest::default()
            },
            cache,
        )
        .map(|(g, source)| {
            count(source);
            g
        })
    };
    let list_all = || -> Result<PackageGraph, PlanError> {
        Ok(list_mains(project.default_patterns()?, &project.root)?)
    };
    let mains = if user_patterns.is_empty() {
        list_all()?
    } else {
        list_mains(user_patterns, &list_dir)?
    };
    let chosen = crate::select::choose(project, config, &mains, whole_project, list_all)?;

    let mut services: BTreeMap<String, String> = BTreeMap::new();
    let mut targets = Vec::new();
    let mut no_image = Vec::new();
    let mut context_index: BTreeMap<ContextKey, usize> = BTreeMap::new();
    let mut requests: Vec<ListRequest> = Vec::new();
    for crate::select::Chosen {
        package: pkg_path,
        service,
        configured,
    } in chosen
    {
        let pkg_path = &pkg_path;
        let pkg = &mains.packages[pkg_path];
        // kiln.toml names were checked when it was parsed; a derived name is checked here, so no
        // unchecked name reaches an output path.
        let problem = unloadable_problem(pkg).or_else(|| {
            (!configured)
                .then(|| kiln_config::check_service_name(&service).err())
                .flatten()
                .map(|why| bad_name_problem(&service, pkg_path, &why))
        });
        if let Some(first) = services.insert(service.clone(), pkg_path.clone()) {
            return Err(PlanError::DuplicateService {
                service,
                first,
                second: pkg_path.clone(),
            });
        }
        let default = project.env.default_platform();
        let mut platforms = match (&req.platforms, images) {
            (Some(p), _) => p.clone(),
            (None, false) => config.platforms_for(&service, &default),
            (None, true) => config.image_platforms_for(&service, &default),
        };
        if platforms.is_empty() && images {
            no_image.push(service.clone());
        }
        // `--platform linux/amd64,linux/amd64` would run two builds into one output path.
        kiln_config::dedup_first_seen(&mut platforms);
        for platform in platforms {
            let settings = config.resolve(&service, &platform);
            let mut env: BTreeMap<String, String> = platform.go_env().into_iter().collect();
            env.insert(
                "CGO_ENABLED".into(),
                if settings.cgo { "1" } else { "0" }.into(),
            );
            env.extend(settings.env.clone());
            if let Some(f) = env.get("GOFLAGS") {
                check_flags(
                    &format!("kiln.toml env GOFLAGS of service {service}"),
                    f.split_whitespace(),
                )?;
            }
            let env: Vec<(String, String)> = env.into_iter().collect();
            let args = go_args(&service, &settings, &req.vars)?;
            // Flags that change which packages and files go resolves must reach `go list` too,
            // or the graph (and so the key) would miss packages the build links (`-race` adds
            // runtime/race, `-cover` the coverage runtime, `-modfile` another module graph).
            // GOFLAGS reaches `go list` through the environment already.
            let mut mod_flags: Vec<String> = settings
                .flags
                .iter()
                .filter(|f| {
                    f.starts_with("-mod=")
                        || f.starts_with("-modfile=")
                        || f.starts_with("-overlay=")
                })
                .cloned()
                .collect();
            mod_flags.extend(crate::flags::parse("", &args, &project.root).graph_flags);
            let ctx_key = (env.clone(), settings.tags.clone(), mod_flags.clone());
            let context = *context_index.entry(ctx_key).or_insert_with(|| {
                requests.push(ListRequest {
                    patterns: Vec::new(),
                    env: env.clone(),
                    tags: settings.tags.clone(),
                    mod_flags,
                    deps: true,
                });
                requests.len() - 1
            });
            if !requests[context].patterns.contains(pkg_path) {
                requests[context].patterns.push(pkg_path.clone());
            }
            targets.push(Target {
                service: service.clone(),
                package: pkg_path.clone(),
                binary: format!("{}{}", binary_name(pkg_path), platform.exe_suffix()),
                platform,
                settings,
                env,
                args,
                context,
                problem: problem.clone(),
            });
        }
    }
    let graphs = kiln_types::run_bounded(requests.clone(), req.jobs.max(1), |r| {
        PackageGraph::load_cached(project, &project.root, &r, cache)
    });
    let mut contexts = Vec::with_capacity(graphs.len());
    for (request, graph) in requests.into_iter().zip(graphs) {
        let (graph, source) = graph?;
        count(source);
        contexts.push(Context { request, graph });
    }
    for t in &mut targets {
        if t.problem.is_none() {
            t.problem = cgo_problem(&contexts[t.context].graph, t);
        }
    }
    targets.sort_by(|a, b| (&a.service, &a.platform).cmp(&(&b.service, &b.platform)));
    let plan = Plan {
        project: project.clone(),
        targets,
        contexts,
        vars: req.vars.clone(),
        lists_cached: lists.get(),
    };
    Ok((plan, no_image))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// A package go refuses by its import path fails as a target, with go's reason.
fn unloadable_problem(pkg: &kiln_discover::Package) -> Option<String> {
    let err = pkg.error.as_deref().filter(|_| pkg.name.is_empty())?;
    Some(format!(
        "go cannot load {}: {err}\nhint: Go allows only ASCII letters, digits and `-` `.` `_` `~` `+` in the directory names of an import path; rename the directory",
        pkg.import_path
    ))
}

fn bad_name_problem(service: &str, package: &str, why: &str) -> String {
    format!(
        "`{service}` (from the import path {package}) cannot be a service name: {why}\n{}\nhint: name the service in kiln.toml:\n  [services.<name>]\n  package = \"{package}\"",
        kiln_config::SERVICE_NAME_RULE
    )
}

/// What to add to the `go build` error `stderr` of `t` when cgo is off and a package go failed
/// to compile (its `# import/path` header in `stderr`) had files left out for importing "C":
/// those files' names, and how to opt in. go itself only says `undefined: name` for code that
/// uses them.
pub fn left_out_cgo_files(plan: &Plan, t: &Target, stderr: &str) -> Option<String> {
    let cgo_off = t.env.iter().any(|(k, v)| k == "CGO_ENABLED" && v == "0");
    let graph = &plan.contexts.get(t.context)?.graph;
    if !cgo_off {
        return None;
    }
    let failing: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let left_out: Vec<String> = graph
        .closure(&t.package)
        .filter(|p| !p.standard && failing.contains(&p.import_path.as_str()))
        .filter_map(|p| {
            let files = p.ignored_cgo_files();
            (!files.is_empty()).then(|| format!("  {}: {}", p.import_path, files.join(", ")))
        })
        .collect();
    (!left_out.is_empty()).then(|| {
        format!(
            "note: CGO_ENABLED=0 (kiln's static default) left out these files, which import \"C\":\n{}\nhint: if the errors above name code from them, either provide a non-cgo fallback (a file with the `!cgo` build constraint) or opt the service into cgo (dynamic linking) in kiln.toml:\n  [services.{}]\n  cgo = true",
            left_out.join("\n"),
            t.service
        )
    })
}

/// A static target whose own code needs cgo cannot build: go drops the files importing "C" and
/// then fails with "build constraints exclude all Go files". Say what is really going on.
fn cgo_problem(graph: &PackageGraph, t: &Target) -> Option<String> {
    if !t.static_required() {
        return None;
    }
    let cgo_off = t.env.iter().any(|(k, v)| k == "CGO_ENABLED" && v == "0");
    if !cgo_off {
        return None;
    }
    let broken: Vec<String> = graph
        .closure(&t.package)
        .filter(|p| !p.standard && p.error.is_some() && p.needs_cgo())
        .map(|p| p.import_path.clone())
        .collect();
    (!broken.is_empty()).then(|| {
        format!(
            "{} needs cgo: {} import \"C\", and static builds use CGO_ENABLED=0, which drops those files\nhint: remove the cgo dependency, or opt the service into cgo (dynamic linking) in kiln.toml:\n  [services.{}]\n  cgo = true",
            t.service,
            broken.join(", "),
            t.service
        )
    })
}
