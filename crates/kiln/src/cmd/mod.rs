//! One module per subcommand, and what they share: the project, the git state and the one build
//! date.

pub mod affected;
pub mod build;
pub mod cache;
pub mod gen;
pub mod gocacheprog;
pub mod image;
pub mod init;
pub mod keygen;
pub mod lint;
pub mod sbom;
pub mod sign;
pub mod verify;
pub mod verify_bin;
pub mod worker;

use std::path::Path;

use anyhow::Result;
use kiln_config::{BuildDate, Env, TemplateVars};
use kiln_discover::{GitHead, Project};

/// Opens the Go module or workspace containing `dir` with the `go` command `env` names.
pub fn open_project(env: &Env, dir: &Path) -> Result<Project> {
    open_project_with(env, dir, true)
}

/// [`open_project`], reading the `go env` cache only when `read_caches` (not for `--no-cache`
/// and verify mode, which must see go's own answer).
pub fn open_project_with(env: &Env, dir: &Path, read_caches: bool) -> Result<Project> {
    // A relative `-C` directory is never cached (the key needs an absolute one); the usual run
    // from the current directory is.
    let cache = (read_caches && !env.verify_cache)
        .then(|| open_store(env).ok())
        .flatten()
        .and_then(|s| s.bucket_dir(kiln_cache::CacheBucket::Keys).ok())
        .map(|d| {
            kiln_discover::GoEnvCache::new(d.join("goenv-v1"), &env.process, env.process_complete)
        });
    Ok(Project::open_cached(&env.go, dir, cache.as_ref())?)
}

/// The kiln cache store `env` names (`KILN_CACHE_DIR`, else the user cache directory).
pub fn open_store(env: &Env) -> Result<kiln_cache::LocalStore> {
    Ok(match &env.cache_dir {
        Some(d) => kiln_cache::LocalStore::new(d.clone()),
        None => kiln_cache::LocalStore::open_default()?,
    })
}

/// The remote cache `config` and `env` name (`[cache] remote`, `KILN_REMOTE_CACHE`), as
/// `kiln-remote` takes it; `None` when there is none. Notes about the settings (a token variable
/// that is not set) are printed as warnings.
pub fn remote_config(
    env: &Env,
    config: &kiln_config::Config,
    ui: crate::Ui,
) -> Result<Option<kiln_config::RemoteCache>> {
    let Some(r) = config.cache.resolve(env)? else {
        return Ok(None);
    };
    if !ui.quiet {
        for n in &r.notes {
            eprintln!("{} {n}", console::style("warning:").yellow().bold());
        }
    }
    Ok(Some(r))
}

/// kiln.toml of the first directory from the current one up that has one (default settings when
/// none does), for commands that run outside a project's root (`kiln cache`, `kiln gocacheprog`).
pub fn config_near_cwd(env: &Env) -> Result<kiln_config::Config> {
    Ok(env
        .cwd
        .ancestors()
        .find(|d| d.join(kiln_config::CONFIG_FILE).is_file())
        .map(kiln_config::Config::load)
        .transpose()?
        .unwrap_or_default())
}

/// What a build reads and writes: the local store, the storage (the local store, with the remote
/// cache under it when one is configured: [`kiln_remote::LayeredStore`]) and that remote's
/// settings. Connecting is lazy: a remote that is down costs a warning after the build, never the
/// build.
pub struct BuildStore {
    /// The local store.
    pub local: kiln_cache::LocalStore,
    /// The store the pipeline uses.
    pub storage: Box<dyn kiln_cache::Storage>,
    /// The remote cache, when one is configured.
    pub remote: Option<kiln_config::RemoteCache>,
}

/// Opens the [`BuildStore`] `config` and `env` describe.
pub fn open_build_store(
    env: &Env,
    config: &kiln_config::Config,
    ui: crate::Ui,
) -> Result<BuildStore> {
    let local = open_store(env)?;
    let remote = remote_config(env, config, ui)?;
    let storage: Box<dyn kiln_cache::Storage> = match &remote {
        Some(cfg) => Box::new(kiln_remote::LayeredStore::new(
            local.clone(),
            kiln_remote::RemoteStore::open(cfg.clone())?,
        )),
        None => Box::new(local.clone()),
    };
    Ok(BuildStore {
        local,
        storage,
        remote,
    })
}

/// The closing lines about the remote cache, on stderr: what came from where, what it cost, and
/// each warning once.
pub fn print_remote_traffic(t: &kiln_cache::CacheTraffic, ui: crate::Ui) {
    use crate::table::{human_ms, human_size};
    let warn = console::style("warning:").yellow().bold();
    for w in &t.warnings {
        eprintln!("{warn} {w}");
    }
    if t.disabled.is_some() && t.warnings.is_empty() {
        eprintln!(
            "{warn} remote cache {} was off for this run: {}",
            t.remote,
            t.disabled.as_deref().unwrap_or_default()
        );
    }
    if ui.quiet {
        return;
    }
    // On stderr, like progress: `--json` keeps stdout to the report, which carries the same.
    eprintln!(
        "remote cache {}{}: {} local hit(s), {} remote hit(s), {} miss(es); {} down, {} up, {} waiting{}",
        t.remote,
        if t.read_only { " (read-only)" } else { "" },
        t.local_hits,
        t.remote_hits,
        t.misses,
        human_size(t.bytes_down),
        human_size(t.bytes_up),
        human_ms(t.remote_wait_ms),
        if t.disabled.is_some() {
            "; off after failures, built locally"
        } else {
            ""
        }
    );
}

/// The cache of `go list` answers, unless the run must not read caches (`--no-cache`, verify
/// mode). `out_dir` is kiln's output directory, which a `./...` walk skips. A cache directory that
/// cannot be opened only means `go list` runs.
pub fn list_cache(
    env: &Env,
    out_dir: std::path::PathBuf,
    read_caches: bool,
) -> Option<kiln_discover::ListCache> {
    if !read_caches || env.verify_cache {
        return None;
    }
    let dir = open_store(env)
        .ok()?
        .bucket_dir(kiln_cache::CacheBucket::Keys)
        .ok()?
        .join("list-v1");
    Some(kiln_discover::ListCache::new(
        dir,
        vec![out_dir],
        &env.process,
    ))
}

/// Warns about each kiln.toml between `dir` and the project root: kiln reads only the root's
/// (the go.work directory in a workspace), and one in a member module would otherwise do nothing
/// without a word.
pub fn warn_ignored_configs(project: &Project, dir: &Path, ui: crate::Ui) {
    if ui.quiet {
        return;
    }
    let root = std::fs::canonicalize(&project.root).unwrap_or_else(|_| project.root.clone());
    let Ok(start) = std::fs::canonicalize(dir) else {
        return;
    };
    for d in start
        .ancestors()
        .take_while(|d| *d != root && d.starts_with(&root))
    {
        let file = d.join(kiln_config::CONFIG_FILE);
        if file.is_file() {
            eprintln!(
                "{} {} is not read: kiln reads {} (the {} directory) wherever in the project it runs; move its settings there",
                console::style("warning:").yellow().bold(),
                file.display(),
                root.join(kiln_config::CONFIG_FILE).display(),
                if project.is_workspace() { "go.work" } else { "go.mod" }
            );
        }
    }
}

/// The git state and the one date of a command that produces artifacts, resolved once and the
/// only source every consumer takes its date from: `{{.Date}}` in ldflags, image `created` and
/// layer mtimes, SBOM creation times.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// `HEAD` of the project's repository.
    pub git: GitHead,
    /// The build date ([`BuildDate`]: `SOURCE_DATE_EPOCH`, else the commit time, else 0).
    pub date: BuildDate,
    /// The process environment as [`Env`] resolved it, for `{{.Env.NAME}}`.
    pub env: std::collections::BTreeMap<String, String>,
}

impl BuildContext {
    /// Reads `HEAD` at `root` once and dates the build by the rule of [`BuildDate`]; an invalid
    /// `SOURCE_DATE_EPOCH` is an error.
    pub fn resolve(env: &Env, root: &Path) -> Result<Self> {
        Self::with_git(env, GitHead::read(root))
    }

    fn with_git(env: &Env, git: GitHead) -> Result<Self> {
        let date = env.build_date(|| git.commit_time)?;
        Ok(Self {
            git,
            date,
            env: env.process.clone(),
        })
    }

    /// Values for ldflags templates.
    pub fn template_vars(&self) -> TemplateVars {
        self.git
            .template_vars(&self.date)
            .with_env(self.env.clone())
    }

    /// `org.opencontainers.image.version` of every image: the source version as `{{.Version}}`
    /// renders it, never the tag an image is pushed under, so one commit gives one image digest
    /// however the tag is spelled (`--tag v1`, `--push repo:v1`, `[image] tag`).
    pub fn image_version(&self) -> String {
        self.git.template_vars(&self.date).version().to_string()
    }

    /// `created` of image configs and the mtime of every layer entry.
    pub fn image_epoch(&self) -> u64 {
        self.date.epoch
    }

    /// Creation time of SBOMs, plain or attached.
    pub fn sbom_date(&self) -> u64 {
        self.date.epoch
    }
}

/// The build date alone, for commands that date documents without building (`kiln sbom`,
/// `kiln sign --attest`): git runs only when `SOURCE_DATE_EPOCH` is unset.
pub fn build_date(env: &Env, dir: &Path) -> Result<BuildDate> {
    Ok(env.build_date(|| GitHead::read(dir).commit_time)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn subject() -> kiln_attest::SbomSubject {
        kiln_attest::SbomSubject {
            name: "api".into(),
            version: None,
            kind: kiln_attest::SubjectKind::Binary,
            digest: kiln_types::Digest::of_bytes(b"api"),
            platform: None,
            binaries: Vec::new(),
            base: None,
        }
    }

    /// What each consumer writes, read back from its own output format.
    fn dates_written(ctx: &BuildContext) -> [String; 4] {
        let ldflags = kiln_config::render("-X main.date={{.Date}}", &ctx.template_vars()).unwrap();
        let image_created = kiln_oci::rfc3339(ctx.image_epoch());
        let spdx: serde_json::Value = serde_json::from_slice(
            &kiln_supply::render_sbom(&subject(), kiln_supply::SbomFormat::Spdx, ctx.sbom_date())
                .unwrap(),
        )
        .unwrap();
        let cdx: serde_json::Value = serde_json::from_slice(
            &kiln_supply::render_sbom(
                &subject(),
                kiln_supply::SbomFormat::Cyclonedx,
                ctx.sbom_date(),
            )
            .unwrap(),
        )
        .unwrap();
        [
            ldflags.trim_start_matches("-X main.date=").to_string(),
            image_created,
            spdx["creationInfo"]["created"]
                .as_str()
                .unwrap()
                .to_string(),
            cdx["metadata"]["timestamp"].as_str().unwrap().to_string(),
        ]
    }

    #[test]
    fn issue_8_templates_images_and_sboms_get_the_same_date() {
        let git = |time| GitHead {
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            commit_time: time,
            version: "v1.0.0".into(),
            tag: None,
            branch: None,
            origin: None,
        };
        for (sde, commit_time, want) in [
            (
                Some("1700000000"),
                Some(1_600_000_000),
                "2023-11-14T22:13:20Z",
            ),
            (None, Some(1_600_000_000), "2020-09-13T12:26:40Z"),
            (None, None, "1970-01-01T00:00:00Z"),
            (Some("0"), Some(1_600_000_000), "1970-01-01T00:00:00Z"),
        ] {
            let env = Env::resolve("/repo".into(), |k| {
                (k == kiln_config::env::SOURCE_DATE_EPOCH)
                    .then(|| sde.map(OsString::from))
                    .flatten()
            });
            let ctx = BuildContext::with_git(&env, git(commit_time)).unwrap();
            for written in dates_written(&ctx) {
                assert_eq!(
                    written, want,
                    "SOURCE_DATE_EPOCH={sde:?}, commit {commit_time:?}"
                );
            }
        }
    }

    #[test]
    fn issue_8_invalid_source_date_epoch_fails_the_build_context() {
        let env = Env::resolve("/repo".into(), |k| {
            (k == kiln_config::env::SOURCE_DATE_EPOCH).then(|| OsString::from("tomorrow"))
        });
        let err = BuildContext::with_git(
            &env,
            GitHead {
                commit: None,
                commit_time: Some(5),
                version: "dev".into(),
                tag: None,
                branch: None,
                origin: None,
            },
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("SOURCE_DATE_EPOCH=\"tomorrow\" is invalid"),
            "{text}"
        );
        assert!(text.contains("hint:"), "{text}");
    }
}
