use std::fmt;
use std::str::FromStr;

use kiln_types::Digest;
use serde::Serialize;

use crate::error::RegistryError;

/// Docker Hub's name in references; its API lives at [`DOCKER_HUB_API_HOST`].
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's distribution API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A repository on a registry: `registry/name`, the unit that blobs and manifests belong to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Repository {
    /// Registry host with optional port, `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, for example `library/alpine` or `team/app`.
    pub name: String,
}

impl Repository {
    /// A repository from its parts, validating the name.
    pub fn new(
        registry: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Self, RegistryError> {
        let (registry, name) = (registry.into(), name.into());
        let whole = format!("{registry}/{name}");
        validate_host(&registry).map_err(|r| invalid(&whole, r))?;
        validate_repo(&name).map_err(|r| invalid(&whole, r))?;
        Ok(Self { registry, name })
    }

    /// The host the API calls go to (Docker Hub's API is not on `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A parsed image reference: `host[:port]/repo[:tag][@sha256:<hex>]`.
///
/// Docker's defaults apply: a first path component without `.` or `:` (and not `localhost`) is not a
/// host, so `alpine` means `docker.io/library/alpine:latest`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Reference {
    /// The repository.
    pub repository: Repository,
    /// Tag, `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Digest pin; when present it wins over the tag for every request.
    pub digest: Option<Digest>,
}

impl Reference {
    /// A reference to `repository` by digest.
    pub fn by_digest(repository: Repository, digest: Digest) -> Self {
        Self {
            repository,
            tag: None,
            digest: Some(digest),
        }
    }

    /// A reference to `repository` by tag (validated).
    pub fn by_tag(repository: Repository, tag: &str) -> Result<Self, RegistryError> {
        validate_tag(tag).map_err(|r| invalid(&format!("{repository}:{tag}"), r))?;
        Ok(Self {
            repository,
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// What goes after `/manifests/` in the URL: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| invalid(input, e.to_string()))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag colon comes after the last slash; a colon before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                validate_tag(tag).map_err(|r| invalid(input, r))?;
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        validate_host(&registry).map_err(|r| invalid(input, r))?;
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        validate_repo(&path).map_err(|r| invalid(input, r))?;
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        Ok(Self {
            repository: Repository {
                registry,
                name: path,
            },
            tag,
            digest,
        })
    }
}

fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or("unclosed `[` in IPv6 registry address")?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(format!("invalid IPv6 address `{addr}`"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("garbage after IPv6 address")?),
        };
        (None, port)
    } else {
        match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(h) = name {
        let ok = !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !h.starts_with(['.', '-'])
            && !h.ends_with(['.', '-']);
        if !ok {
            return Err(format!("invalid registry host `{h}`"));
        }
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("invalid registry port `{p}`"));
        }
    }
    Ok(())
}

fn validate_repo(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty repository name".into());
    }
    if path.len() > 255 {
        return Err("repository name longer than 255 characters".into());
    }
    for comp in path.split('/') {
        let ok = !comp.is_empty()
            && comp.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && comp.as_bytes()[0].is_ascii_alphanumeric()
            && comp.as_bytes()[comp.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return Err(format!(
                "invalid repository component `{comp}` (lowercase letters, digits and inner `.`, `_`, `-` only)"
            ));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag `{tag}` (letters, digits, `_`, `.`, `-`, at most 128, not starting with `.` or `-`)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_hub_defaults() {
        let r = p("alpine");
        assert_eq!(r.repository.registry, "docker.io");
        assert_eq!(r.repository.name, "library/alpine");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.repository.api_host(), "registry-1.docker.io");
        let r = p("user/app:1.2");
        assert_eq!(r.repository.name, "user/app");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert_eq!(
            p("index.docker.io/library/busybox").repository.registry,
            "docker.io"
        );
    }

    #[test]
    fn hosts_ports_and_digests() {
        let d = Digest::of_bytes(b"x");
        let r = p(&format!("127.0.0.1:5000/team/app:v1@{d}"));
        assert_eq!(r.repository.registry, "127.0.0.1:5000");
        assert_eq!(r.repository.name, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest, Some(d));
        assert_eq!(r.manifest_reference(), d.to_string());
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/team/app:v1@{d}"));
        let r = p(&format!("localhost/app@{d}"));
        assert_eq!(r.repository.registry, "localhost");
        assert_eq!(r.tag, None);
        let r = p("[::1]:5000/app");
        assert_eq!(r.repository.registry, "[::1]:5000");
        assert_eq!(p("ghcr.io/o/r/deep:t").repository.name, "o/r/deep");
    }

    #[test]
    fn malformed_references_are_rejected_with_reason() {
        for bad in [
            "",
            "UPPER/case",
            "host:5000/app:",
            "app:bad tag",
            "app@sha256:abc",
            "app@md5:00",
            "host:99999/app",
            "host:/app",
            "a//b",
            "-app",
            "app:.hidden",
        ] {
            let err = bad.parse::<Reference>().expect_err(bad);
            assert!(
                err.to_string().contains("invalid image reference"),
                "{bad}: {err}"
            );
        }
    }
}
