//! Image settings: `[image]`, `[services.NAME.image]` and `[profiles.NAME]`.
//!
//! Merging follows the build settings' rule: scalars and lists override (a service's `ports`
//! replaces the default list, since appending ports is rarely what anyone means), maps (`env`,
//! `labels`, `annotations`) merge by key. A profile adds env and data files on top, first its global
//! part, then its `[profiles.NAME.services.SERVICE]` part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_types::Platform;
use serde::{Deserialize, Serialize};

use crate::model::{Config, ConfigError};

/// An exposed port: `8080` (tcp) or `"53/udp"`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PortSpec {
    /// A bare number, tcp.
    Number(u16),
    /// `port/proto`.
    Text(String),
}

impl PortSpec {
    /// The `port/proto` spelling used in image configs.
    pub fn spelled(&self) -> String {
        match self {
            Self::Number(n) => format!("{n}/tcp"),
            Self::Text(t) if t.contains('/') => t.clone(),
            Self::Text(t) => format!("{t}/tcp"),
        }
    }
}

/// A data file placed into the image by a profile.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    /// Source file, relative to the project root.
    pub src: PathBuf,
    /// Absolute path inside the image.
    pub dst: String,
    /// Octal mode (`"0644"`), default `0644`.
    pub mode: Option<String>,
}

impl ImageFile {
    /// The mode as a number (`0o644` when unset).
    pub fn mode_bits(&self) -> Result<u32, String> {
        match &self.mode {
            None => Ok(0o644),
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|v| *v <= 0o7777)
                .ok_or_else(|| {
                    format!(
                        "mode `{m}` of `{}` is not an octal mode like \"0644\"",
                        self.dst
                    )
                }),
        }
    }
}

/// `[image]` (defaults for every service) and `[services.NAME.image]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// Base image: `kiln` (built-in, default), `scratch`, or a registry reference.
    pub base: Option<String>,
    /// Image tag (default: the git version, sanitised).
    pub tag: Option<String>,
    /// Registry/repository prefix for pushes (`ghcr.io/acme`); the service name is appended.
    pub repository: Option<String>,
    /// Layer compression: `gzip`, `gzip:LEVEL`, `gzip-parallel[:LEVEL]`, `zstd[:LEVEL]`, `none`.
    pub compression: Option<String>,
    /// `uid[:gid]` the process runs as (default the non-root `65532:65532`).
    pub user: Option<String>,
    /// Config labels; merge by key.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations; merge by key.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Environment of the container; merges by key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Exposed ports.
    pub ports: Option<Vec<PortSpec>>,
    /// Entrypoint (default: the binary).
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    pub cmd: Option<Vec<String>>,
    /// Stop signal (`SIGTERM`).
    pub stop_signal: Option<String>,
    /// Platforms images are made for (Linux only). Default: the Linux platforms among the
    /// service's build platforms; `[]` makes no image of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<Platform>>,
}

/// Refuses a platform kiln cannot make a usable image for: every image kiln makes has a Linux
/// layout (`/usr/local/bin`, `/etc/passwd`, a numeric user), which a Windows or macOS runtime
/// cannot run.
pub fn check_image_platform(p: &Platform) -> Result<(), String> {
    if p.os == "linux" {
        return Ok(());
    }
    Err(format!(
        "{p} cannot be an image platform: kiln makes Linux images (Linux file layout, base and user), and a {os} binary cannot run in one\nhint: build {p} binaries with `kiln build --platform {p}` (they can stay in [build] platforms) and make images for linux/... platforms only; `[image] platforms` or `[services.NAME.image] platforms` narrows the image matrix",
        os = p.os
    ))
}

/// The env and files a profile adds for one service.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProfileLayer {
    /// Environment; merges by key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Data files; appended.
    #[serde(default)]
    pub files: Vec<ImageFile>,
}

/// `[profiles.NAME]`: per-environment env and data files, with per-service additions.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Environment for every service.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Data files for every service.
    #[serde(default)]
    pub files: Vec<ImageFile>,
    /// `[profiles.NAME.services.SERVICE]`.
    #[serde(default)]
    pub services: BTreeMap<String, ProfileLayer>,
}

/// Image settings resolved for one service (and optionally one profile): every layer merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResolvedImage {
    /// Base (`kiln` when unset).
    pub base: String,
    /// Tag, if configured.
    pub tag: Option<String>,
    /// Push prefix, if configured.
    pub repository: Option<String>,
    /// Compression spelling, if configured.
    pub compression: Option<String>,
    /// User, if configured.
    pub user: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Ports as `port/proto`.
    pub ports: Vec<String>,
    /// Entrypoint, if configured.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd, if configured.
    pub cmd: Option<Vec<String>>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Data files, with `src` resolved against the project root.
    pub files: Vec<ImageFile>,
}

impl ImageSettings {
    /// Whether nothing is set (so `[image]` is left out when serialising).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl ResolvedImage {
    fn apply(&mut self, s: &ImageSettings) {
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if src.is_some() {
                dst.clone_from(src);
            }
        };
        if let Some(b) = &s.base {
            self.base.clone_from(b);
        }
        set(&mut self.tag, &s.tag);
        set(&mut self.repository, &s.repository);
        set(&mut self.compression, &s.compression);
        set(&mut self.user, &s.user);
        set(&mut self.workdir, &s.workdir);
        set(&mut self.stop_signal, &s.stop_signal);
        self.labels.extend(s.labels.clone());
        self.annotations.extend(s.annotations.clone());
        self.env.extend(s.env.clone());
        if let Some(p) = &s.ports {
            self.ports = p.iter().map(PortSpec::spelled).collect();
        }
        if s.entrypoint.is_some() {
            self.entrypoint.clone_from(&s.entrypoint);
        }
        if s.cmd.is_some() {
            self.cmd.clone_from(&s.cmd);
        }
    }

    fn apply_profile(&mut self, env: &BTreeMap<String, String>, files: &[ImageFile], root: &Path) {
        self.env.extend(env.clone());
        self.files.extend(files.iter().map(|f| ImageFile {
            src: root.join(&f.src),
            ..f.clone()
        }));
    }
}

impl Config {
    /// Names of the declared profiles.
    pub fn profile_names(&self) -> Vec<&str> {
        self.profiles.keys().map(String::as_str).collect()
    }

    /// The platforms `kiln image` makes `service`'s image for: `[services.SERVICE.image]
    /// platforms`, else `[image] platforms`, else the Linux platforms among the service's build
    /// platforms (an empty list: no image for this service).
    pub fn image_platforms_for(&self, service: &str, host: &Platform) -> Vec<Platform> {
        let configured = self
            .services
            .get(service)
            .and_then(|s| s.image.as_ref())
            .and_then(|i| i.platforms.clone())
            .or_else(|| self.image.platforms.clone());
        let mut list = match configured {
            Some(list) => list,
            None => self
                .platforms_for(service, host)
                .into_iter()
                .filter(|p| check_image_platform(p).is_ok())
                .collect(),
        };
        crate::names::dedup_first_seen(&mut list);
        list
    }

    /// Merges `[image]`, `[services.SERVICE.image]` and, when given, `[profiles.PROFILE]` (global,
    /// then its per-service part). Data file sources are resolved against `root`.
    pub fn resolve_image(
        &self,
        service: &str,
        profile: Option<&str>,
        root: &Path,
    ) -> Result<ResolvedImage, ConfigError> {
        let mut out = ResolvedImage {
            base: "kiln".into(),
            ..ResolvedImage::default()
        };
        out.apply(&self.image);
        if let Some(s) = self.services.get(service).and_then(|s| s.image.as_ref()) {
            out.apply(s);
        }
        if let Some(name) = profile {
            let p = self
                .profiles
                .get(name)
                .ok_or_else(|| ConfigError::UnknownProfile {
                    name: name.to_string(),
                    known: self.profile_names().join(", "),
                })?;
            out.apply_profile(&p.env, &p.files, root);
            if let Some(layer) = p.services.get(service) {
                out.apply_profile(&layer.env, &layer.files, root);
            }
        }
        Ok(out)
    }

    pub(crate) fn validate_image(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |section: String, message: String| ConfigError::Image {
            path: path.to_path_buf(),
            section,
            message,
        };
        let check_files = |section: &str, files: &[ImageFile]| -> Result<(), ConfigError> {
            for f in files {
                if !f.dst.starts_with('/') || f.dst.ends_with('/') {
                    return Err(bad(
                        section.into(),
                        format!(
                            "file destination `{}` must be an absolute file path like \"/etc/app/config.yaml\"",
                            f.dst
                        ),
                    ));
                }
                f.mode_bits().map_err(|m| bad(section.into(), m))?;
            }
            Ok(())
        };
        let check_platforms = |section: String, s: &ImageSettings| -> Result<(), ConfigError> {
            for p in s.platforms.iter().flatten() {
                check_image_platform(p).map_err(|m| bad(section.clone(), m))?;
            }
            Ok(())
        };
        check_platforms("image".into(), &self.image)?;
        for (name, svc) in &self.services {
            if let Some(i) = &svc.image {
                check_platforms(format!("services.{name}.image"), i)?;
            }
        }
        for (name, p) in &self.profiles {
            check_files(&format!("profiles.{name}"), &p.files)?;
            for (svc, layer) in &p.services {
                check_files(&format!("profiles.{name}.services.{svc}"), &layer.files)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::path::Path;

    const TOML: &str = r#"
[image]
base = "kiln"
tag = "v1"
repository = "ghcr.io/acme"
user = "65532:65532"
env = { A = "1", B = "1" }
labels = { team = "core" }
ports = [8080]

[services.api]
package = "./cmd/api"

[services.api.image]
base = "scratch"
env = { B = "api" }
ports = ["9090/udp", "9091"]
entrypoint = ["/usr/local/bin/api", "serve"]
stop_signal = "SIGINT"

[profiles.prod]
env = { MODE = "prod" }
files = [{ src = "config/prod.yaml", dst = "/etc/app/config.yaml", mode = "0640" }]

[profiles.prod.services.api]
env = { B = "prod-api" }
files = [{ src = "config/api.yaml", dst = "/etc/app/api.yaml" }]
"#;

    #[test]
    fn image_layers_and_profiles_merge() {
        let cfg = Config::parse(TOML, Path::new("kiln.toml")).unwrap();
        let root = Path::new("/repo");
        let api = cfg.resolve_image("api", None, root).unwrap();
        assert_eq!(api.base, "scratch");
        assert_eq!(api.tag.as_deref(), Some("v1"));
        assert_eq!(api.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(api.env.get("B").map(String::as_str), Some("api"));
        assert_eq!(api.ports, vec!["9090/udp", "9091/tcp"]);
        assert_eq!(api.stop_signal.as_deref(), Some("SIGINT"));
        assert!(api.files.is_empty());
        let other = cfg.resolve_image("worker", None, root).unwrap();
        assert_eq!(other.base, "kiln");
        assert_eq!(other.ports, vec!["8080/tcp"]);
        assert_eq!(other.labels.get("team").map(String::as_str), Some("core"));

        let prod = cfg.resolve_image("api", Some("prod"), root).unwrap();
        assert_eq!(prod.env.get("MODE").map(String::as_str), Some("prod"));
        assert_eq!(prod.env.get("B").map(String::as_str), Some("prod-api"));
        assert_eq!(prod.files.len(), 2);
        assert_eq!(prod.files[0].src, root.join("config/prod.yaml"));
        assert_eq!(prod.files[0].mode_bits().unwrap(), 0o640);
        assert_eq!(prod.files[1].mode_bits().unwrap(), 0o644);
        let w = cfg.resolve_image("worker", Some("prod"), root).unwrap();
        assert_eq!(w.files.len(), 1);

        let e = cfg.resolve_image("api", Some("staging"), root).unwrap_err();
        assert!(e.to_string().contains("prod"), "{e}");
    }

    #[test]
    fn issue_9_image_platforms_default_to_the_linux_build_platforms() {
        let host: kiln_types::Platform = "linux/amd64".parse().unwrap();
        let names =
            |v: Vec<kiln_types::Platform>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let cfg = Config::parse(
            r#"
[build]
platforms = ["linux/amd64", "darwin/arm64", "windows/amd64", "linux/arm64"]

[services.cli]
platforms = ["darwin/arm64", "windows/amd64"]

[services.api.image]
platforms = ["linux/arm64"]

[services.tool.image]
platforms = []
"#,
            Path::new("kiln.toml"),
        )
        .unwrap();
        assert_eq!(
            names(cfg.image_platforms_for("worker", &host)),
            ["linux/amd64", "linux/arm64"]
        );
        assert_eq!(
            names(cfg.image_platforms_for("api", &host)),
            ["linux/arm64"]
        );
        assert!(cfg.image_platforms_for("cli", &host).is_empty());
        assert!(cfg.image_platforms_for("tool", &host).is_empty());
        // [image] platforms narrows every service without its own list.
        let cfg = Config::parse(
            "[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\", \"windows/amd64\"]\n[image]\nplatforms = [\"linux/amd64\"]\n",
            Path::new("kiln.toml"),
        )
        .unwrap();
        assert_eq!(names(cfg.image_platforms_for("x", &host)), ["linux/amd64"]);
    }

    #[test]
    fn issue_9_non_linux_image_platforms_are_refused() {
        for (text, section) in [
            ("[image]\nplatforms = [\"windows/amd64\"]\n", "[image]"),
            (
                "[services.api.image]\nplatforms = [\"linux/amd64\", \"darwin/arm64\"]\n",
                "[services.api.image]",
            ),
        ] {
            let e = Config::parse(text, Path::new("kiln.toml")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(section), "{msg}");
            assert!(msg.contains("cannot be an image platform"), "{msg}");
            assert!(msg.contains("hint:"), "{msg}");
        }
    }

    #[test]
    fn image_keys_are_checked() {
        let e = Config::parse("[image]\nbsae = \"kiln\"\n", Path::new("kiln.toml")).unwrap_err();
        assert!(e.to_string().contains("bsae"), "{e}");
        let e = Config::parse(
            "[profiles.dev]\nfiles = [{ src = \"a\", dst = \"etc/a\" }]\n",
            Path::new("kiln.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = Config::parse(
            "[profiles.dev]\nfiles = [{ src = \"a\", dst = \"/etc/a\", mode = \"rw\" }]\n",
            Path::new("kiln.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("octal"), "{e}");
        let e =
            Config::parse("[build.image]\nbase = \"kiln\"\n", Path::new("kiln.toml")).unwrap_err();
        assert!(e.to_string().contains("[image]"), "{e}");
        // A file without any image keys still parses (backwards compatible).
        let cfg = Config::parse("[build]\ncgo = false\n", Path::new("kiln.toml")).unwrap();
        assert_eq!(
            cfg.resolve_image("x", None, Path::new("/r")).unwrap().base,
            "kiln"
        );
    }
}
