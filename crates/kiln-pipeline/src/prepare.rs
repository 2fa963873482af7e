//! The plan stage of the image flow: which services get images (Linux platforms only, and with
//! `--affected` only those a change reaches), each one's image settings from kiln.toml under the
//! caller's overrides, and where each goes, all resolved before any compile so a bad setting costs
//! no build.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_affected::{Affected, AffectedRequest};
use kiln_config::Config;
use kiln_discover::Project;
use kiln_image::{
    parse_compression, push_targets_named, sanitize_tag, standard_labels, BaseChoice, DataFile,
    ImageRequest, PushTarget, ServiceImage, VcsInfo,
};
use kiln_oci::{Compression, ImageConfig};
use kiln_plan::{plan_images, Plan, PlanRequest};

use crate::PipelineError;

/// What the caller (`kiln image`'s flags) sets on top of kiln.toml.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// Patterns, platforms, template values and the `go list` cache for planning.
    pub plan: PlanRequest,
    /// Only services a change since the default branch affects.
    pub affected: bool,
    /// `[profiles.NAME]` to apply.
    pub profile: Option<String>,
    /// Tag for every image (else `[image] tag`, else the sanitised `default_tag`).
    pub tag: Option<String>,
    /// Base for every image (`kiln`, `scratch` or a reference).
    pub base: Option<String>,
    /// Layer compression for every image (`gzip:2`, `zstd`, ...).
    pub compression: Option<String>,
    /// `--push REF`: a prefix, or with one service a full `repo:tag`; empty pushes each service
    /// to its configured `repository`; `None` pushes nothing.
    pub push: Option<String>,
    /// Speak plain HTTP to the push and base registries.
    pub insecure_registry: bool,
    /// Source, revision and version for the standard labels.
    pub vcs: VcsInfo,
    /// The source version, made a tag when nothing else sets one.
    pub default_tag: String,
    /// `SOURCE_DATE_EPOCH`: layer mtimes and `created`.
    pub source_date_epoch: u64,
}

/// The planned image flow: what [`crate::image`] builds, packs and pushes.
#[derive(Debug)]
pub struct Prepared {
    /// The build plan, restricted to services with an image (and affected ones with
    /// `--affected`).
    pub plan: Plan,
    /// One image per service of the plan, in plan order, without binaries yet.
    pub images: ImageRequest,
    /// Where each service is pushed (empty: no push).
    pub push: Vec<PushTarget>,
    /// Registries (`host[:port]`) to speak plain HTTP to.
    pub insecure_registries: Vec<String>,
    /// Services that get no image because none of their platforms is Linux.
    pub without_image: Vec<String>,
    /// What `--affected` found (`None` without it).
    pub affected: Option<Affected>,
    /// Things the user should hear about that do not stop the run (e.g. no zoneinfo).
    pub warnings: Vec<String>,
}

impl Prepared {
    /// Whether there is nothing to build (only possible with `--affected`).
    pub fn is_empty(&self) -> bool {
        self.plan.targets.is_empty()
    }
}

/// Plans the image flow of `project` (see the module docs).
pub fn prepare(
    project: &Project,
    config: &Config,
    opts: &ImageOptions,
) -> Result<Prepared, PipelineError> {
    let (mut plan, without_image) = plan_images(project, config, &opts.plan)?;
    if plan.targets.is_empty() {
        return Err(PipelineError::Invalid(format!(
            "no service has an image platform: images are Linux images, and none of {} is built for Linux\nhint: add a linux/... platform to [build] platforms, or set [image] platforms = [\"linux/amd64\"]",
            without_image.join(", ")
        )));
    }
    let affected = if opts.affected {
        let req = AffectedRequest {
            base: None,
            head: None,
        };
        let a = kiln_affected::affected(&plan, config, &req)?;
        plan.targets.retain(|t| a.contains(&t.service));
        Some(a)
    } else {
        None
    };
    let mut services = Vec::new();
    let mut repositories: BTreeMap<String, Option<String>> = BTreeMap::new();
    for t in &plan.targets {
        if repositories.contains_key(&t.service) {
            continue;
        }
        let (image, repository) = service_image(config, &project.root, opts, t.service.clone())?;
        repositories.insert(image.service.clone(), repository);
        services.push(image);
    }
    let push = push_targets(opts.push.as_deref(), &services, &repositories)?;
    let mut warnings = Vec::new();
    // The kiln base's zones come from the Go release that builds the binaries, not the host.
    let zoneinfo = project.env.goroot.join("lib/time/zoneinfo.zip");
    let zoneinfo = if zoneinfo.is_file() {
        Some(zoneinfo)
    } else {
        if services.iter().any(|s| s.base == BaseChoice::Kiln) {
            warnings.push(format!(
                "{} does not exist: the kiln base gets no /usr/share/zoneinfo\nhint: embed the zones in the binary with `import _ \"time/tzdata\"`, or install Go from go.dev (some distribution packages leave lib/time out)",
                zoneinfo.display()
            ));
        }
        None
    };
    let mut insecure_registries = Vec::new();
    if opts.insecure_registry {
        let dests = opts.push.iter().chain(repositories.values().flatten());
        for p in dests.filter(|p| !p.is_empty()) {
            insecure_registries.push(p.split('/').next().unwrap_or_default().to_string());
        }
        for s in &services {
            if let BaseChoice::Registry(r) = &s.base {
                insecure_registries.push(r.repository.registry.clone());
            }
        }
    }
    Ok(Prepared {
        plan,
        images: ImageRequest {
            services,
            source_date_epoch: opts.source_date_epoch,
            zoneinfo,
        },
        push,
        insecure_registries,
        without_image,
        affected,
        warnings,
    })
}

/// Resolves `--push` against the services (and, for `--push=`, their configured repositories).
fn push_targets(
    dest: Option<&str>,
    services: &[ServiceImage],
    repositories: &BTreeMap<String, Option<String>>,
) -> Result<Vec<PushTarget>, PipelineError> {
    let named: Vec<(&str, &str)> = services
        .iter()
        .map(|s| (s.service.as_str(), s.tag.as_str()))
        .collect();
    Ok(match dest {
        None => Vec::new(),
        // `--push=`: each service to its configured `repository` prefix.
        Some("") => {
            let mut targets = Vec::new();
            for (service, tag) in &named {
                let Some(Some(prefix)) = repositories.get(*service) else {
                    return Err(PipelineError::Invalid(format!(
                        "--push= pushes to the configured repository, but service `{service}` has none\nhint: set `repository` in [image] or [services.{service}.image], or give --push REF"
                    )));
                };
                targets.extend(push_targets_named(prefix, &[(service, tag)])?);
            }
            targets
        }
        Some(dest) => push_targets_named(dest, &named)?,
    })
}

/// One service's image from kiln.toml (`[image]`, `[services.S.image]`, the profile) under the
/// caller's overrides, and its configured repository.
fn service_image(
    config: &Config,
    root: &Path,
    opts: &ImageOptions,
    service: String,
) -> Result<(ServiceImage, Option<String>), PipelineError> {
    let r = config.resolve_image(&service, opts.profile.as_deref(), root)?;
    let tag = opts
        .tag
        .clone()
        .or(r.tag.clone())
        .unwrap_or_else(|| sanitize_tag(&opts.default_tag));
    if sanitize_tag(&tag) != tag {
        return Err(PipelineError::Invalid(format!(
            "tag `{tag}` is not a valid image tag\nhint: use letters, digits, `_`, `.` and `-` (at most 128, not starting with `.` or `-`)"
        )));
    }
    let base: BaseChoice = opts.base.as_deref().unwrap_or(&r.base).parse()?;
    let compression = match opts.compression.as_deref().or(r.compression.as_deref()) {
        Some(c) => parse_compression(c)?,
        None => Compression::default(),
    };
    // The version label is the source version, not `tag`: a re-tag must not change the image.
    let mut labels = standard_labels(&opts.vcs);
    labels.extend(r.labels.clone());
    let defaults = ImageConfig::default();
    let config = ImageConfig {
        entrypoint: r.entrypoint.clone().unwrap_or_default(),
        cmd: r.cmd.clone().unwrap_or_default(),
        env: r.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: r.workdir.clone(),
        user: r.user.clone().unwrap_or(defaults.user),
        exposed_ports: r.ports.clone(),
        labels,
        stop_signal: r.stop_signal.clone(),
        annotations: r.annotations.clone(),
        created: opts.source_date_epoch,
    };
    let mut files = Vec::new();
    for f in &r.files {
        files.push(DataFile {
            src: f.src.clone(),
            dst: f.dst.clone(),
            mode: f.mode_bits().map_err(PipelineError::Invalid)?,
        });
    }
    let image = ServiceImage {
        service,
        tag,
        binaries: Vec::new(),
        base,
        config,
        files,
        compression,
    };
    Ok((image, r.repository.clone()))
}
