use std::path::{Path, PathBuf};
use std::str::FromStr;

use kiln_build::{BuildReport, TargetResult};
use kiln_oci::{Compression, ImageConfig};
use kiln_registry::Reference;
use kiln_types::{Digest, Platform};
use serde::Serialize;

use crate::error::{ImageError, Result};

/// Where binaries go inside images: `/usr/local/bin/<service>`. On `PATH` in every base (so
/// `docker run IMAGE <service> --help` style overrides work), outside `/` so the image root stays
/// tidy, and the same place distroless-style Dockerfiles copy to.
pub const BINARY_DIR: &str = "/usr/local/bin";

/// What an image is built on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "reference", rename_all = "lowercase")]
pub enum BaseChoice {
    /// Nothing below kiln's layers.
    Scratch,
    /// kiln's built-in minimal base (CA roots, passwd/group with `nonroot`, `/tmp`).
    Kiln,
    /// An image pulled from a registry (by tag or digest), per platform from its index.
    Registry(Reference),
}

impl FromStr for BaseChoice {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "scratch" => Ok(Self::Scratch),
            "kiln" | "" => Ok(Self::Kiln),
            other => other.parse::<Reference>().map(Self::Registry).map_err(|e| {
                ImageError::Invalid(format!(
                    "base `{other}` is neither `scratch`, `kiln` nor a registry reference: {e}"
                ))
            }),
        }
    }
}

impl std::fmt::Display for BaseChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scratch => f.write_str("scratch"),
            Self::Kiln => f.write_str("kiln"),
            Self::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// Parses `gzip`, `gzip:LEVEL`, `gzip-parallel[:LEVEL]`, `zstd[:LEVEL]` and `none`.
pub fn parse_compression(s: &str) -> Result<Compression> {
    let (name, level) = match s.split_once(':') {
        Some((n, l)) => (n, Some(l)),
        None => (s, None),
    };
    let level_u = |d: u32| -> Result<u32> {
        level.map_or(Ok(d), |l| {
            l.parse().map_err(|_| {
                ImageError::Invalid(format!("compression level `{l}` is not a number"))
            })
        })
    };
    let c = match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip { level: level_u(6)? },
        "gzip-parallel" => Compression::GzipParallel { level: level_u(6)? },
        "zstd" => Compression::Zstd {
            level: i32::try_from(level_u(3)?).unwrap_or(i32::MAX),
            // Fixed, not the machine's core count: the worker count changes the bytes.
            workers: 2,
        },
        other => {
            return Err(ImageError::Invalid(format!(
                "unknown compression `{other}`; use gzip, gzip:LEVEL, gzip-parallel, zstd, zstd:LEVEL or none"
            )));
        }
    };
    c.validate()?;
    Ok(c)
}

/// Turns any version string (`v1.2.0-3-gabc+dirty`) into a valid OCI tag
/// (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`): other characters become `-`.
pub fn sanitize_tag(version: &str) -> String {
    let mut t: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if t.starts_with(['.', '-']) {
        t.replace_range(0..1, "_");
    }
    if t.is_empty() {
        "latest".into()
    } else {
        t
    }
}

/// One binary to package.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformBinary {
    /// Its platform.
    pub platform: Platform,
    /// The file.
    pub path: PathBuf,
    /// Its digest (from the build report: not re-hashed, and part of the layer cache key).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// A data file for the image (from a profile).
#[derive(Clone, Debug, Serialize)]
pub struct DataFile {
    /// Source file on disk.
    pub src: PathBuf,
    /// Absolute destination in the image.
    pub dst: String,
    /// Mode bits.
    pub mode: u32,
}

/// Everything to build the image(s) of one service.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceImage {
    /// Service name (also the binary's file name in the image).
    pub service: String,
    /// Tag in the OCI layout (`<service>:<tag>`) and for pushes.
    pub tag: String,
    /// One binary per platform; several make an image index.
    pub binaries: Vec<PlatformBinary>,
    /// Base image.
    pub base: BaseChoice,
    /// Runtime config; an empty entrypoint becomes `[/usr/local/bin/<service>]`.
    pub config: ImageConfig,
    /// Data files, in one extra layer (none when empty).
    pub files: Vec<DataFile>,
    /// Layer compression.
    pub compression: Compression,
}

impl ServiceImage {
    /// Path of the binary inside the image.
    pub fn binary_path(&self) -> String {
        format!("{BINARY_DIR}/{}", self.service)
    }

    /// Refuses binaries for a system other than Linux: the layers kiln writes (`/usr/local/bin`,
    /// `/etc/passwd`, a numeric user, no `.exe`) make a Linux image, and one labelled `windows` or
    /// `darwin` would be written without complaint and fail wherever it is run.
    pub fn check_platforms(&self) -> Result<()> {
        self.binaries
            .iter()
            .try_for_each(|b| self.check_platform(&b.platform))
    }

    /// [`Self::check_platforms`] for one platform (the pipeline checks each binary as it comes).
    pub fn check_platform(&self, platform: &Platform) -> Result<()> {
        if platform.os == "linux" {
            return Ok(());
        }
        Err(ImageError::Invalid(format!(
            "service `{}`: {platform} cannot be an image platform: kiln makes Linux images\nhint: make images for linux/... platforms only; build {platform} binaries with `kiln build`",
            self.service
        )))
    }
}

/// What to package: services plus the timestamp every layer and config carries.
#[derive(Clone, Debug, Serialize)]
pub struct ImageRequest {
    /// The services.
    pub services: Vec<ServiceImage>,
    /// `SOURCE_DATE_EPOCH` (0 when unset): mtimes in layers and `created` in configs.
    pub source_date_epoch: u64,
    /// Go's `$GOROOT/lib/time/zoneinfo.zip`, unpacked into the kiln base's `/usr/share/zoneinfo`
    /// (`None`: the kiln base has no zones).
    pub zoneinfo: Option<PathBuf>,
}

/// The binaries of a build report grouped by service (services in report order, platforms in
/// report order). Relative paths in the report are resolved against `cwd` (where kiln ran).
/// A failed or missing target is an error: an image without one of its platforms would be a
/// silently different product.
pub fn binaries_from_report(
    report: &BuildReport,
    cwd: &Path,
) -> Result<Vec<(String, Vec<PlatformBinary>)>> {
    let mut out: Vec<(String, Vec<PlatformBinary>)> = Vec::new();
    for t in &report.targets {
        let bin = PlatformBinary::from_target(t, cwd)?;
        match out.iter_mut().find(|(s, _)| *s == t.service) {
            Some((_, v)) => v.push(bin),
            None => out.push((t.service.clone(), vec![bin])),
        }
    }
    Ok(out)
}

impl PlatformBinary {
    /// The binary of one build target; a failed target, or one without a binary, is an error
    /// (see [`binaries_from_report`]).
    pub fn from_target(t: &TargetResult, cwd: &Path) -> Result<Self> {
        let missing = |reason: String| ImageError::MissingBinary {
            service: t.service.clone(),
            platform: t.platform.to_string(),
            reason,
        };
        if let Some(e) = &t.error {
            return Err(missing(
                e.lines().next().unwrap_or("build failed").to_string(),
            ));
        }
        let (Some(path), Some(digest), Some(size)) = (&t.path, t.sha256, t.size) else {
            return Err(missing("the build report has no binary".into()));
        };
        Ok(Self {
            platform: t.platform.clone(),
            path: cwd.join(path),
            digest,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_9_only_linux_binaries_make_images() {
        let bin = |p: &str| PlatformBinary {
            platform: p.parse().unwrap(),
            path: PathBuf::from("worker"),
            digest: Digest::of_bytes(b"worker"),
            size: 6,
        };
        let mut image = ServiceImage {
            service: "worker".into(),
            tag: "v1".into(),
            binaries: vec![bin("linux/amd64"), bin("linux/arm64")],
            base: BaseChoice::Kiln,
            config: ImageConfig::default(),
            files: Vec::new(),
            compression: Compression::default(),
        };
        assert!(image.check_platforms().is_ok());
        image.binaries.push(bin("windows/amd64"));
        let text = image.check_platforms().unwrap_err().to_string();
        assert!(
            text.contains("windows/amd64 cannot be an image platform"),
            "{text}"
        );
        assert!(text.contains("hint:"), "{text}");
    }

    #[test]
    fn tags_are_sanitised() {
        assert_eq!(sanitize_tag("v1.2.0"), "v1.2.0");
        assert_eq!(sanitize_tag("v1.2.0-3-gabc+dirty"), "v1.2.0-3-gabc-dirty");
        assert_eq!(sanitize_tag("-x/y"), "_x-y");
        assert_eq!(sanitize_tag(""), "latest");
        assert_eq!(sanitize_tag(&"a".repeat(300)).len(), 128);
    }

    #[test]
    fn compression_spellings() {
        assert_eq!(
            parse_compression("gzip").unwrap(),
            Compression::Gzip { level: 6 }
        );
        assert_eq!(
            parse_compression("gzip:9").unwrap(),
            Compression::Gzip { level: 9 }
        );
        assert!(matches!(
            parse_compression("zstd:19").unwrap(),
            Compression::Zstd {
                level: 19,
                workers: 2
            }
        ));
        assert_eq!(parse_compression("none").unwrap(), Compression::None);
        assert!(parse_compression("gzip:12").is_err());
        assert!(parse_compression("brotli")
            .unwrap_err()
            .to_string()
            .contains("zstd"));
    }

    #[test]
    fn bases_parse() {
        assert_eq!(
            "scratch".parse::<BaseChoice>().unwrap(),
            BaseChoice::Scratch
        );
        assert_eq!("kiln".parse::<BaseChoice>().unwrap(), BaseChoice::Kiln);
        let b: BaseChoice = "127.0.0.1:5000/base:v1".parse().unwrap();
        assert!(matches!(b, BaseChoice::Registry(_)));
        assert!("Not A Ref!".parse::<BaseChoice>().is_err());
    }
}
