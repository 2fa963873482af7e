//! Which discovered main packages are services, by kiln.toml: `[build] exclude` leaves some out,
//! `[build] only_declared` keeps only those a `[services.NAME]` section declares, and a section's
//! `package` must name a main package that exists (a typo is an error, never a silent no-op).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kiln_config::Config;
use kiln_discover::{binary_name, PackageGraph, Project};

use crate::args::PlanError;

/// A main package chosen as a service.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    /// Import path.
    pub package: String,
    /// Service name.
    pub service: String,
    /// Whether a `[services.NAME]` section named it (so the name was checked when parsed).
    pub configured: bool,
}

/// The directory of `dir` relative to the project root, `/`-separated (empty for the root or
/// outside it).
pub(crate) fn rel_dir(project: &Project, dir: &Path) -> String {
    dir.strip_prefix(&project.root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default()
}

/// How a main package is written in kiln.toml and in messages: `./cmd/api`, or its import path
/// when it is not under the project root.
fn spelled(project: &Project, graph: &PackageGraph, import_path: &str) -> String {
    graph
        .packages
        .get(import_path)
        .and_then(|p| p.dir.strip_prefix(&project.root).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(|rel| format!("./{}", rel.to_string_lossy().replace('\\', "/")))
        .unwrap_or_else(|| import_path.to_string())
}

/// Every main package of `graph`, spelled for a hint.
fn found_list(project: &Project, graph: &PackageGraph) -> String {
    let list: Vec<String> = graph
        .mains
        .iter()
        .map(|m| spelled(project, graph, m))
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

/// `pkg`'s directory relative to the project root, as kiln.toml's `package` and `exclude` name it.
fn package_dir(project: &Project, graph: &PackageGraph, pkg: &str) -> String {
    graph
        .packages
        .get(pkg)
        .map(|p| rel_dir(project, &p.dir))
        .unwrap_or_default()
}

/// The section that names `pkg` by its `package` key.
fn configured_for<'a>(
    project: &Project,
    config: &'a Config,
    graph: &PackageGraph,
    pkg: &str,
) -> Option<&'a str> {
    config.service_for_package(pkg, &package_dir(project, graph, pkg))
}

/// The `exclude` pattern that leaves `pkg` out, if any.
fn excluded<'a>(
    project: &Project,
    config: &'a Config,
    graph: &PackageGraph,
    pkg: &str,
) -> Option<&'a str> {
    config.excluded_by(pkg, &package_dir(project, graph, pkg))
}

/// Checks kiln.toml against every main package of the project (`all`): each section's `package`
/// is one of them and is not excluded, and each `exclude` pattern leaves out at least one.
pub(crate) fn check_sections(
    project: &Project,
    config: &Config,
    all: &PackageGraph,
) -> Result<(), PlanError> {
    let mains: Vec<&String> = all.mains.iter().chain(&all.unloadable).collect();
    let mut matched: BTreeMap<&str, &str> = BTreeMap::new();
    for m in &mains {
        if let Some(name) = configured_for(project, config, all, m) {
            matched.insert(name, m.as_str());
        }
    }
    for (name, svc) in &config.services {
        let Some(package) = &svc.package else {
            continue;
        };
        match matched.get(name.as_str()) {
            None => {
                return Err(PlanError::UnknownServicePackage {
                    service: name.clone(),
                    package: package.clone(),
                    config: config.source.clone(),
                    found: found_list(project, all),
                })
            }
            Some(pkg) => {
                if let Some(pattern) = excluded(project, config, all, pkg) {
                    return Err(PlanError::Selection {
                        message: format!(
                            "kiln.toml [services.{name}] declares package `{package}`, but [build] exclude pattern `{pattern}` leaves it out"
                        ),
                        hint: "remove the section or narrow the exclude pattern".into(),
                    });
                }
            }
        }
    }
    for pattern in &config.build.exclude {
        let used = mains.iter().any(|m| {
            let dir = all
                .packages
                .get(m.as_str())
                .map(|p| rel_dir(project, &p.dir))
                .unwrap_or_default();
            kiln_config::package_pattern_matches(pattern, m, &dir)
        });
        if !used {
            return Err(PlanError::Selection {
                message: format!(
                    "kiln.toml [build] exclude pattern `{pattern}` matches no main package"
                ),
                hint: format!(
                    "patterns are directories relative to the project root (\"./tools/...\") or import paths; main packages found: {}",
                    found_list(project, all)
                ),
            });
        }
    }
    Ok(())
}

/// Picks the services among `graph`'s main packages. `whole_project` says that `graph` holds
/// every main package of the project; otherwise `load_all` lists them, only when a section needs
/// checking against the whole project.
pub(crate) fn choose(
    project: &Project,
    config: &Config,
    graph: &PackageGraph,
    whole_project: bool,
    load_all: impl FnOnce() -> Result<PackageGraph, PlanError>,
) -> Result<Vec<Chosen>, PlanError> {
    if whole_project {
        check_sections(project, config, graph)?;
    }
    let mut chosen = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    let mut conflict: Option<(String, String)> = None;
    for pkg in graph.mains.iter().chain(&graph.unloadable) {
        let configured = configured_for(project, config, graph, pkg);
        let service = configured.unwrap_or_else(|| binary_name(pkg)).to_string();
        let section = config.services.get(&service);
        // `[services.api] package = "./cmd/apii"` with a main ./cmd/api: the section names another
        // package, so ./cmd/api must not quietly take the section's name and settings.
        if configured.is_none() && section.is_some_and(|s| s.package.is_some()) {
            conflict.get_or_insert((service.clone(), pkg.clone()));
            continue;
        }
        if let Some(pattern) = excluded(project, config, graph, pkg) {
            left_out.push(format!(
                "{} (excluded by `{pattern}`)",
                spelled(project, graph, pkg)
            ));
            continue;
        }
        let declared = configured.is_some() || section.is_some();
        if config.only_declared() && !declared {
            left_out.push(format!(
                "{} (no [services.{service}] section, and only_declared = true)",
                spelled(project, graph, pkg)
            ));
            continue;
        }
        chosen.push(Chosen {
            package: pkg.clone(),
            service,
            configured: configured.is_some(),
        });
    }
    if let Some((service, pkg)) = conflict {
        let all = if whole_project {
            graph.clone()
        } else {
            load_all()?
        };
        check_sections(project, config, &all)?;
        let first = all
            .mains
            .iter()
            .find(|m| configured_for(project, config, &all, m) == Some(service.as_str()))
            .cloned()
            .unwrap_or_default();
        return Err(PlanError::DuplicateService {
            service,
            first,
            second: pkg,
        });
    }
    if chosen.is_empty() && !left_out.is_empty() {
        let unique: BTreeSet<String> = left_out.into_iter().collect();
        return Err(PlanError::Selection {
            message: format!(
                "every main package that matches is left out by kiln.toml: {}",
                unique.into_iter().collect::<Vec<_>>().join(", ")
            ),
            hint: "declare the services to build as [services.NAME] sections, or change [build] exclude / only_declared".into(),
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_discover::{GoEnv, Package};
    use std::path::PathBuf;

    fn project() -> Project {
        Project {
            root: PathBuf::from("/m"),
            env: GoEnv {
                go: PathBuf::from("go"),
                version: "go1.26.0".into(),
                goroot: PathBuf::new(),
                gomodcache: PathBuf::new(),
                gomod: Some(PathBuf::from("/m/go.mod")),
                gowork: None,
                vars: Default::default(),
            },
        }
    }

    /// A graph of main packages `example.com/m/<dir>` for each dir.
    fn graph(dirs: &[&str]) -> PackageGraph {
        let mut g = PackageGraph::default();
        for d in dirs {
            let path = format!("example.com/m/{d}");
            g.mains.push(path.clone());
            g.packages.insert(
                path.clone(),
                Package {
                    import_path: path,
                    name: "main".into(),
                    dir: PathBuf::from("/m").join(d),
                    standard: false,
                    dep_only: false,
                    module: None,
                    imports: Vec::new(),
                    deps: Vec::new(),
                    files: Vec::new(),
                    cgo_files: Vec::new(),
                    ignored_go_files: Vec::new(),
                    cgo: Default::default(),
                    error: None,
                },
            );
        }
        g
    }

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("kiln.toml")).unwrap()
    }

    fn names(chosen: &[Chosen]) -> Vec<&str> {
        chosen.iter().map(|c| c.service.as_str()).collect()
    }

    fn never() -> Result<PackageGraph, PlanError> {
        panic!("the whole project must not be listed here")
    }

    const ALL: &[&str] = &["cmd/api", "cmd/worker", "tools/gen"];

    #[test]
    fn issue_9_exclude_and_only_declared_choose_services() {
        let p = project();
        let all = graph(ALL);
        let c = config("[build]\nexclude = [\"./tools/...\"]\n");
        assert_eq!(
            names(&choose(&p, &c, &all, true, never).unwrap()),
            ["api", "worker"]
        );
        let c = config("[build]\nonly_declared = true\n[services.worker]\n[services.server]\npackage = \"./cmd/api\"\n");
        let chosen = choose(&p, &c, &all, true, never).unwrap();
        assert_eq!(names(&chosen), ["server", "worker"]);
        assert!(chosen[0].configured && !chosen[1].configured);
        // Everything matched left out: say which rule left out what.
        let e = choose(&p, &c, &graph(&["tools/gen"]), false, never).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("./tools/gen (no [services.gen] section"),
            "{text}"
        );
    }

    #[test]
    fn issue_9_section_packages_are_checked() {
        let p = project();
        let all = graph(ALL);
        // A typo: found in a whole-project run, with the mains in the hint.
        let c = config("[services.api]\npackage = \"./cmd/apii\"\n");
        let text = choose(&p, &c, &all, true, never).unwrap_err().to_string();
        assert!(text.contains("package `./cmd/apii` is not among"), "{text}");
        assert!(
            text.contains("main packages found: ./cmd/api, ./cmd/worker, ./tools/gen"),
            "{text}"
        );
        // Also from a narrowed run that reaches ./cmd/api: the whole project is listed then.
        let narrowed = graph(&["cmd/api"]);
        let text = choose(&p, &c, &narrowed, false, || Ok(graph(ALL)))
            .unwrap_err()
            .to_string();
        assert!(text.contains("package `./cmd/apii` is not among"), "{text}");
        // A narrowed run that does not reach the section's name does not list anything.
        assert!(choose(&p, &c, &graph(&["cmd/worker"]), false, never).is_ok());
        // The section names another existing main: ./cmd/api cannot take its name as well.
        let c = config("[services.api]\npackage = \"./cmd/worker\"\n");
        let e = choose(&p, &c, &narrowed, false, || Ok(graph(ALL))).unwrap_err();
        assert!(matches!(e, PlanError::DuplicateService { .. }), "{e}");
        // A section whose package exclude leaves out contradicts itself.
        let c = config(
            "[build]\nexclude = [\"./tools/...\"]\n[services.gen]\npackage = \"./tools/gen\"\n",
        );
        let text = choose(&p, &c, &all, true, never).unwrap_err().to_string();
        assert!(text.contains("leaves it out"), "{text}");
        // An exclude pattern that matches nothing is a typo.
        let c = config("[build]\nexclude = [\"./tols/...\"]\n");
        let text = choose(&p, &c, &all, true, never).unwrap_err().to_string();
        assert!(
            text.contains("`./tols/...` matches no main package"),
            "{text}"
        );
    }
}
