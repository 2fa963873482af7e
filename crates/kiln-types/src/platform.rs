use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A target platform in OCI spelling: `os/arch[/variant]`, for example `linux/arm/v7`.
///
/// The same value drives `GOOS`/`GOARCH`/`GOARM`/`GOAMD64` for the compiler, names the
/// `dist/<service>/<os>_<arch>[_<variant>]` directory and later becomes the `platform` of an OCI
/// image index entry, so it is parsed and checked once, here.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Go's `GOOS` (`linux`, `darwin`, `windows`, ...).
    pub os: String,
    /// Go's `GOARCH` (`amd64`, `arm64`, `arm`, ...).
    pub arch: String,
    /// Optional architecture variant: `v6`/`v7` for arm, `v1`..`v4` for amd64, `v8.x` for arm64.
    pub variant: Option<String>,
}

/// Why a string is not a platform.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Not of the form `os/arch[/variant]`.
    #[error("invalid platform `{0}`: expected `os/arch` or `os/arch/variant`, for example `linux/amd64` or `linux/arm/v7`")]
    Syntax(String),
    /// A variant that makes no sense for the architecture.
    #[error("invalid platform `{platform}`: variant `{variant}` is not valid for {arch} (valid: {valid})")]
    Variant {
        /// The whole platform string.
        platform: String,
        /// The architecture.
        arch: String,
        /// The rejected variant.
        variant: String,
        /// What would have been accepted.
        valid: &'static str,
    },
}

impl Platform {
    /// A platform without variant.
    pub fn new(os: impl Into<String>, arch: impl Into<String>) -> Self {
        Self {
            os: os.into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// The directory name used under `dist/<service>/`: `os_arch[_variant]`.
    pub fn dir_name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}_{}_{}", self.os, self.arch, v),
            None => format!("{}_{}", self.os, self.arch),
        }
    }

    /// File name suffix of executables on this platform (`.exe` on Windows).
    pub fn exe_suffix(&self) -> &'static str {
        if self.os == "windows" {
            ".exe"
        } else {
            ""
        }
    }

    /// The Go environment variables that select this platform, sorted by name.
    pub fn go_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("GOARCH".to_string(), self.arch.clone()),
            ("GOOS".to_string(), self.os.clone()),
        ];
        if let Some(v) = &self.variant {
            let var = match self.arch.as_str() {
                "arm" => Some(("GOARM", v.trim_start_matches('v').to_string())),
                "amd64" => Some(("GOAMD64", v.clone())),
                "arm64" => Some(("GOARM64", v.clone())),
                _ => None,
            };
            if let Some((k, val)) = var {
                env.push((k.to_string(), val));
            }
        }
        env.sort();
        env
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(PlatformError::Syntax(s.to_string()));
        }
        let (os, arch) = (parts[0].to_ascii_lowercase(), parts[1].to_ascii_lowercase());
        let variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        if let Some(v) = &variant {
            let (valid, allowed): (&'static str, bool) = match arch.as_str() {
                "arm" => ("v5, v6, v7", matches!(v.as_str(), "v5" | "v6" | "v7")),
                "amd64" => (
                    "v1, v2, v3, v4",
                    matches!(v.as_str(), "v1" | "v2" | "v3" | "v4"),
                ),
                "arm64" => (
                    "v8, v8.0 .. v8.9, v9.0 .. v9.5",
                    v.starts_with("v8") || v.starts_with("v9"),
                ),
                _ => ("none", false),
            };
            if !allowed {
                return Err(PlatformError::Variant {
                    platform: s.to_string(),
                    arch,
                    variant: v.clone(),
                    valid,
                });
            }
        }
        Ok(Self { os, arch, variant })
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(p.dir_name(), "linux_arm_v7");
        assert_eq!(
            p.go_env(),
            vec![
                ("GOARCH".into(), "arm".into()),
                ("GOARM".into(), "7".into()),
                ("GOOS".into(), "linux".into())
            ]
        );
        let w: Platform = "windows/amd64".parse().unwrap();
        assert_eq!(w.exe_suffix(), ".exe");
        assert_eq!(w.dir_name(), "windows_amd64");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/amd64/v9",
            "linux/386/v2",
            "lin ux/amd64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad} should fail");
        }
    }
}
