use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_types::Platform;
use serde::{Deserialize, Serialize};

/// File name of the configuration, looked up in the project root.
pub const CONFIG_FILE: &str = "kiln.toml";

/// Why `kiln.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error or an unknown/mistyped key.
    #[error("{path}: {message}\nhint: see the kiln.toml section of the README, or run `kiln init` to write a commented example")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it carries line and column).
        message: String,
    },
    /// A key used in a section where it has no meaning.
    #[error("{path}: `{key}` is not allowed in [{section}]: {why}")]
    Misplaced {
        /// The file.
        path: PathBuf,
        /// The section, as written in the file.
        section: String,
        /// The offending key.
        key: &'static str,
        /// Where it belongs instead.
        why: &'static str,
    },
    /// A `[services.NAME]` section whose name cannot be a service name.
    #[error("{path}: [services.{name:?}]: invalid service name: {reason}\n{rule}\nhint: rename the section, for example [services.api], and name the main package in it with package = \"./cmd/api\"", rule = crate::names::SERVICE_NAME_RULE)]
    ServiceName {
        /// The file.
        path: PathBuf,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A platform key that does not parse.
    #[error("{path}: [{section}]: {source}")]
    Platform {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
        /// The parse error.
        source: Box<kiln_types::PlatformError>,
    },
    /// An invalid image or profile setting.
    #[error("{path}: [{section}]: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
        /// What is wrong, with the expected spelling.
        message: String,
    },
    /// A value that cannot be used where it is written.
    #[error("{path}: [{section}]: {message}")]
    Setting {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
        /// What is wrong, with a hint.
        message: String,
    },
    /// An environment variable kiln reads has a value it cannot use.
    #[error("{name}={value:?} is invalid: {why}\nhint: {hint}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value (lossy UTF-8).
        value: String,
        /// What is wrong with it.
        why: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// A remote cache or execution URL that kiln cannot talk to.
    #[error("invalid remote URL `{url}`: {why}\nhint: write grpc://HOST:PORT (plain) or grpcs://HOST:PORT (TLS)")]
    RemoteUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--profile` names a profile kiln.toml does not declare.
    #[error("unknown profile `{name}`; declared profiles: {known}\nhint: add a [profiles.{name}] section to kiln.toml")]
    UnknownProfile {
        /// The requested profile.
        name: String,
        /// The declared ones, comma separated.
        known: String,
    },
}

/// One layer of settings. The same shape is used in `[build]`, `[platform."os/arch"]`,
/// `[services.NAME]` and `[services.NAME.platform."os/arch"]`; which keys make sense where is
/// checked after parsing so a misplaced key gets a precise error instead of being ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Target platforms (`[build]` and services only).
    pub platforms: Option<Vec<Platform>>,
    /// Output directory (`[build]` only).
    pub out: Option<PathBuf>,
    /// The main package of a service (services only): import path or `./dir` relative to the root.
    pub package: Option<String>,
    /// Extra environment for `go build`; merges by key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Build tags; appended.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Extra `go build` flags; appended.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Extra linker flags (templates allowed: `{{.Version}}`, `{{.Commit}}`, `{{.Date}}`); appended.
    #[serde(default)]
    pub ldflags: Vec<String>,
    /// Opt into cgo (and so into dynamic linking). Default `false`: static binaries.
    pub cgo: Option<bool>,
    /// Pass `-trimpath` (default `true`; needed for reproducible binaries).
    pub trimpath: Option<bool>,
    /// Strip symbols and DWARF with `-s -w` (default `true`).
    pub strip: Option<bool>,
    /// Stamp VCS information into the binary (default `false`: it would make every commit a cache
    /// miss; pass the version through `ldflags` templates instead).
    pub buildvcs: Option<bool>,
    /// Per-platform overrides (`[build]` and services only).
    #[serde(default)]
    pub platform: BTreeMap<String, Settings>,
    /// Data files the service reads at run time or ships beside its binary (services only): globs
    /// relative to the project root (`configs/api/*.yaml`, `migrations/**`). Go cannot see them, so
    /// `kiln affected` only knows a change to one matters because it is declared here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<String>,
    /// Image settings of a service (`[services.NAME.image]`; services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::image::ImageSettings>,
    /// Main packages that are not services (`[build]` only): go package patterns, relative to the
    /// project root (`./tools/...`, `./cmd/debug`) or import paths, `...` matching any string.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Only main packages that a `[services.NAME]` section declares are services (`[build]`
    /// only; default `false`: every main package is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_declared: Option<bool>,
}

/// A `[services.NAME]` section.
pub type ServiceConfig = Settings;

/// The parsed `kiln.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults for every service.
    #[serde(default)]
    pub build: Settings,
    /// Per-platform settings for every service.
    #[serde(default)]
    pub platform: BTreeMap<String, Settings>,
    /// Per-service settings, keyed by service name (the binary name unless renamed).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[image]`: image defaults for every service.
    #[serde(default, skip_serializing_if = "crate::image::ImageSettings::is_empty")]
    pub image: crate::image::ImageSettings,
    /// `[profiles.NAME]`: per-environment image env and data files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, crate::image::Profile>,
    /// `[cache]`: the remote cache shared between machines.
    #[serde(default, skip_serializing_if = "crate::cache::CacheSettings::is_empty")]
    pub cache: crate::cache::CacheSettings,
    /// `[execute]`: the remote execution engine that runs the compiles.
    #[serde(
        default,
        skip_serializing_if = "crate::execute::ExecuteSettings::is_empty"
    )]
    pub execute: crate::execute::ExecuteSettings,
    /// Where the file was read from, for error messages (not part of the file).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Settings resolved for one (service, platform) target: every layer merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildSettings {
    /// Environment overrides for `go build`.
    pub env: BTreeMap<String, String>,
    /// Build tags, de-duplicated, in first-seen order.
    pub tags: Vec<String>,
    /// Extra `go build` flags.
    pub flags: Vec<String>,
    /// Extra linker flags, templates not yet rendered.
    pub ldflags: Vec<String>,
    /// Whether cgo is allowed (and dynamic linking accepted).
    pub cgo: bool,
    /// `-trimpath`.
    pub trimpath: bool,
    /// `-s -w`.
    pub strip: bool,
    /// VCS stamping.
    pub buildvcs: bool,
}

impl Config {
    /// Reads `kiln.toml` from `root`; a missing file is the default configuration.
    pub fn load(root: &Path) -> Result<Self, ConfigError> {
        let path = root.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parses configuration text; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.source = Some(path.to_path_buf());
        cfg.validate(path)?;
        cfg.dedup_lists();
        Ok(cfg)
    }

    /// A platform listed twice would be built twice, concurrently, into one output path.
    fn dedup_lists(&mut self) {
        let sections = std::iter::once(&mut self.build).chain(self.services.values_mut());
        for s in sections {
            if let Some(p) = &mut s.platforms {
                crate::names::dedup_first_seen(p);
            }
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let misplaced =
            |section: String, key: &'static str, why: &'static str| ConfigError::Misplaced {
                path: path.to_path_buf(),
                section,
                key,
                why,
            };
        // Which mains are services is decided once for the project.
        let check_selection_keys = |section: String, s: &Settings| -> Result<(), ConfigError> {
            if !s.exclude.is_empty() {
                return Err(misplaced(
                    section,
                    "exclude",
                    "`exclude` belongs in [build]: it lists main packages that are not services",
                ));
            }
            if s.only_declared.is_some() {
                return Err(misplaced(
                    section,
                    "only_declared",
                    "`only_declared` belongs in [build]",
                ));
            }
            Ok(())
        };
        let check_platform_keys = |section: &str, s: &Settings| -> Result<(), ConfigError> {
            section
                .parse::<Platform>()
                .map_err(|source| ConfigError::Platform {
                    path: path.to_path_buf(),
                    section: section.to_string(),
                    source: Box::new(source),
                })?;
            let here = format!("platform.\"{section}\"");
            if s.platforms.is_some() {
                return Err(misplaced(
                    here,
                    "platforms",
                    "list platforms in [build] or [services.NAME]",
                ));
            }
            if s.out.is_some() {
                return Err(misplaced(here, "out", "`out` belongs in [build]"));
            }
            if s.package.is_some() {
                return Err(misplaced(
                    here,
                    "package",
                    "`package` belongs in [services.NAME]",
                ));
            }
            if !s.platform.is_empty() {
                return Err(misplaced(here, "platform", "platform sections do not nest"));
            }
            if !s.data.is_empty() {
                return Err(misplaced(here, "data", "`data` belongs in [services.NAME]"));
            }
            if s.image.is_some() {
                return Err(misplaced(
                    here,
                    "image",
                    "image settings go in [image] or [services.NAME.image]",
                ));
            }
            check_selection_keys(here, s)?;
            Ok(())
        };
        if self.build.package.is_some() {
            return Err(misplaced(
                "build".into(),
                "package",
                "`package` belongs in [services.NAME]",
            ));
        }
        if !self.build.data.is_empty() {
            return Err(misplaced(
                "build".into(),
                "data",
                "`data` belongs in [services.NAME]: each service declares its own data files",
            ));
        }
        if self.build.image.is_some() {
            return Err(misplaced(
                "build".into(),
                "image",
                "image defaults go in a top-level [image] section",
            ));
        }
        if !self.build.platform.is_empty() {
            return Err(misplaced(
                "build".into(),
                "platform",
                "write per-platform settings as top-level [platform.\"os/arch\"]",
            ));
        }
        for (k, s) in &self.platform {
            check_platform_keys(k, s)?;
        }
        for (name, svc) in &self.services {
            crate::names::check_service_name(name).map_err(|reason| ConfigError::ServiceName {
                path: path.to_path_buf(),
                name: name.clone(),
                reason,
            })?;
            if svc.out.is_some() {
                return Err(misplaced(
                    format!("services.{name}"),
                    "out",
                    "`out` belongs in [build]",
                ));
            }
            check_selection_keys(format!("services.{name}"), svc)?;
            for (k, s) in &svc.platform {
                check_platform_keys(k, s)?;
            }
        }
        for pattern in &self.build.exclude {
            if pattern.trim().is_empty() || pattern.contains(char::is_whitespace) {
                return Err(ConfigError::Setting {
                    path: path.to_path_buf(),
                    section: "build".into(),
                    message: format!(
                        "exclude pattern {pattern:?} is not a package pattern\nhint: write a directory relative to the project root (\"./tools/...\", \"./cmd/debug\") or an import path"
                    ),
                });
            }
        }
        self.validate_image(path)?;
        self.cache.validate(path)?;
        self.execute.validate(path)?;
        Ok(())
    }

    /// The platforms a service is built for: the service's own list, else `[build]`'s, else `host`;
    /// each platform once, in first-seen order.
    pub fn platforms_for(&self, service: &str, host: &Platform) -> Vec<Platform> {
        let mut list = self
            .services
            .get(service)
            .and_then(|s| s.platforms.clone())
            .or_else(|| self.build.platforms.clone())
            .unwrap_or_else(|| vec![host.clone()]);
        crate::names::dedup_first_seen(&mut list);
        list
    }

    /// The output directory from `[build] out`, default `dist`.
    pub fn out_dir(&self) -> PathBuf {
        self.build
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("dist"))
    }

    /// Merges every layer for one target.
    pub fn resolve(&self, service: &str, platform: &Platform) -> BuildSettings {
        let key = platform.to_string();
        let svc = self.services.get(service);
        let layers = [
            Some(&self.build),
            self.platform.get(&key),
            svc,
            svc.and_then(|s| s.platform.get(&key)),
        ];
        let mut out = BuildSettings {
            env: BTreeMap::new(),
            tags: Vec::new(),
            flags: Vec::new(),
            ldflags: Vec::new(),
            cgo: false,
            trimpath: true,
            strip: true,
            buildvcs: false,
        };
        for layer in layers.into_iter().flatten() {
            out.env
                .extend(layer.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            for t in &layer.tags {
                if !out.tags.contains(t) {
                    out.tags.push(t.clone());
                }
            }
            out.flags.extend(layer.flags.iter().cloned());
            out.ldflags.extend(layer.ldflags.iter().cloned());
            out.cgo = layer.cgo.unwrap_or(out.cgo);
            out.trimpath = layer.trimpath.unwrap_or(out.trimpath);
            out.strip = layer.strip.unwrap_or(out.strip);
            out.buildvcs = layer.buildvcs.unwrap_or(out.buildvcs);
        }
        out
    }

    /// Whether only main packages with a `[services.NAME]` section are services.
    pub fn only_declared(&self) -> bool {
        self.build.only_declared.unwrap_or(false)
    }

    /// The `[build] exclude` pattern that leaves the main package `import_path` (in the
    /// root-relative directory `rel_dir`) out of the services, if any.
    pub fn excluded_by(&self, import_path: &str, rel_dir: &str) -> Option<&str> {
        self.build
            .exclude
            .iter()
            .find(|p| package_pattern_matches(p, import_path, rel_dir))
            .map(String::as_str)
    }

    /// The configured name of the service whose `package` matches `import_path` or the
    /// root-relative directory `rel_dir` (spelled `./cmd/api` or `cmd/api`).
    pub fn service_for_package(&self, import_path: &str, rel_dir: &str) -> Option<&str> {
        let norm = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_string();
        let rel = norm(rel_dir);
        self.services.iter().find_map(|(name, s)| {
            let p = s.package.as_deref()?;
            (p == import_path || norm(p) == rel).then_some(name.as_str())
        })
    }
}

/// Whether a go package pattern matches a package, as `go list` would: `./dir` and `dir`
/// patterns are directories relative to the project root, others import paths; `...` matches
/// any string, and `x/...` matches `x` itself too.
pub fn package_pattern_matches(pattern: &str, import_path: &str, rel_dir: &str) -> bool {
    let trimmed = pattern.trim_end_matches('/');
    if trimmed == "." || trimmed == "./..." || trimmed == "..." {
        return true;
    }
    let local = trimmed.strip_prefix("./");
    let rel = rel_dir.trim_start_matches("./").trim_end_matches('/');
    match local {
        Some(dir) => wildcard_match(dir, rel),
        None => wildcard_match(trimmed, import_path) || wildcard_match(trimmed, rel),
    }
}

/// go's `matchPattern`: `...` is a wildcard; a trailing `/...` also matches the bare prefix.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/...") {
        if name == prefix && !prefix.contains("...") {
            return true;
        }
    }
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_9_package_patterns_match_like_go() {
        let m =
            |p: &str, rel: &str| package_pattern_matches(p, &format!("example.com/m/{rel}"), rel);
        assert!(m("./tools/...", "tools"));
        assert!(m("./tools/...", "tools/gen"));
        assert!(!m("./tools/...", "toolsx/gen"));
        assert!(m("./cmd/debug", "cmd/debug"));
        assert!(!m("./cmd/debug", "cmd/debugger"));
        assert!(m("cmd/debug", "cmd/debug"));
        assert!(m("example.com/m/cmd/...", "cmd/api"));
        assert!(m("./cmd/...-tool", "cmd/gen-tool"));
        assert!(!m("./cmd/...-tool", "cmd/api"));
        assert!(m("./...", "anything/at/all"));
        assert!(!m("example.com/other/...", "cmd/api"));
    }

    #[test]
    fn issue_9_selection_keys_belong_in_build() {
        let cfg = parse("[build]\nonly_declared = true\nexclude = [\"./tools/...\"]\n").unwrap();
        assert!(cfg.only_declared());
        assert_eq!(
            cfg.excluded_by("example.com/m/tools/gen", "tools/gen"),
            Some("./tools/...")
        );
        assert_eq!(cfg.excluded_by("example.com/m/cmd/api", "cmd/api"), None);
        assert!(!Config::default().only_declared());
        let e = parse("[services.api]\nexclude = [\"./x\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("`exclude` belongs in [build]"),
            "{e}"
        );
        let e = parse("[platform.\"linux/amd64\"]\nonly_declared = true\n").unwrap_err();
        assert!(e.to_string().contains("belongs in [build]"), "{e}");
        let e = parse("[build]\nexclude = [\"\"]\n").unwrap_err();
        assert!(e.to_string().contains("not a package pattern"), "{e}");
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("kiln.toml"))
    }

    #[test]
    fn layers_merge_in_order() {
        let cfg = parse(
            r#"
[build]
platforms = ["linux/amd64", "linux/arm64"]
env = { A = "build", B = "build" }
tags = ["netgo"]
ldflags = ["-X main.version={{.Version}}"]

[platform."linux/arm64"]
env = { B = "plat" }

[services.api]
package = "./cmd/api"
cgo = true
tags = ["osusergo", "netgo"]

[services.api.platform."linux/arm64"]
env = { C = "svcplat" }
flags = ["-v"]
"#,
        )
        .unwrap();
        let arm: Platform = "linux/arm64".parse().unwrap();
        let s = cfg.resolve("api", &arm);
        assert_eq!(s.env.get("A").map(String::as_str), Some("build"));
        assert_eq!(s.env.get("B").map(String::as_str), Some("plat"));
        assert_eq!(s.env.get("C").map(String::as_str), Some("svcplat"));
        assert_eq!(s.tags, vec!["netgo", "osusergo"]);
        assert_eq!(s.flags, vec!["-v"]);
        assert!(s.cgo && s.trimpath && s.strip && !s.buildvcs);
        let other = cfg.resolve("worker", &"linux/amd64".parse().unwrap());
        assert!(!other.cgo);
        assert_eq!(other.env.get("B").map(String::as_str), Some("build"));
        assert_eq!(cfg.service_for_package("x/cmd/api", "cmd/api"), Some("api"));
        assert_eq!(cfg.platforms_for("api", &arm).len(), 2);
    }

    #[test]
    fn unknown_and_misplaced_keys_are_errors() {
        let e = parse("[build]\nplatfroms = [\"linux/amd64\"]\n").unwrap_err();
        assert!(e.to_string().contains("platfroms"), "{e}");
        let e = parse("[platform.\"linux/arm64\"]\nout = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("`out` belongs in [build]"), "{e}");
        let e = parse("[platform.\"linux\"]\ncgo = true\n").unwrap_err();
        assert!(e.to_string().contains("invalid platform"), "{e}");
        let e = parse("[build]\nplatforms = [\"linux/amd64/v9\"]\n").unwrap_err();
        assert!(e.to_string().contains("variant"), "{e}");
        let e = parse("[build]\ndata = [\"x\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("`data` belongs in [services.NAME]"),
            "{e}"
        );
        let e = parse("[services.a.platform.\"linux/amd64\"]\ndata = [\"x\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("`data` belongs in [services.NAME]"),
            "{e}"
        );
    }

    #[test]
    fn services_declare_data_files() {
        let cfg =
            parse("[services.api]\ndata = [\"configs/api/*.yaml\", \"migrations/**\"]\n").unwrap();
        assert_eq!(
            cfg.services["api"].data,
            vec!["configs/api/*.yaml", "migrations/**"]
        );
        // Files without the key keep parsing, and serialise as before.
        let old = parse("[services.api]\ncgo = true\n").unwrap();
        assert!(old.services["api"].data.is_empty());
        let text = toml::to_string(&old).unwrap();
        assert!(!text.contains("data"), "{text}");
    }

    #[test]
    fn issue_8_service_sections_with_path_names_are_refused() {
        for name in ["../../x", "..", "a/b", "my svc"] {
            let e = parse(&format!("[services.{name:?}]\npackage = \"./cmd/x\"\n")).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(e, ConfigError::ServiceName { .. }),
                "{name}: {text}"
            );
            assert!(
                text.contains(&format!("[services.{name:?}]"))
                    && text.contains(crate::SERVICE_NAME_RULE)
                    && text.contains("hint: rename the section"),
                "{text}"
            );
        }
        assert!(parse("[services.\"a+b\"]\ncgo = true\n").is_ok());
    }

    #[test]
    fn issue_8_platform_lists_are_deduplicated_in_first_seen_order() {
        let cfg = parse(
            r#"
[build]
platforms = ["linux/arm64", "linux/amd64", "linux/arm64", "LINUX/AMD64"]

[services.api]
platforms = ["linux/amd64", "linux/amd64", "windows/amd64"]
"#,
        )
        .unwrap();
        let host: Platform = "linux/amd64".parse().unwrap();
        let names = |v: Vec<Platform>| v.iter().map(Platform::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(cfg.platforms_for("worker", &host)),
            ["linux/arm64", "linux/amd64"]
        );
        assert_eq!(
            names(cfg.platforms_for("api", &host)),
            ["linux/amd64", "windows/amd64"]
        );
        // Also for a configuration built in code rather than parsed.
        let mut built = Config::default();
        built.build.platforms = Some(vec![host.clone(), host.clone()]);
        assert_eq!(built.platforms_for("x", &host), vec![host]);
    }

    #[test]
    fn missing_file_is_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load(dir.path()).unwrap();
        assert_eq!(cfg.out_dir(), PathBuf::from("dist"));
        let host: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(cfg.platforms_for("x", &host), vec![host]);
    }
}
