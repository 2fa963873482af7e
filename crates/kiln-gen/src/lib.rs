//! Generators for the files a Go service needs around its binary.
//!
//! kiln's own flow (discover -> plan -> key -> cache -> execute -> verify -> package -> attest ->
//! publish -> record) builds images without a Dockerfile. Teams that still want one, or need a
//! systemd unit or Kubernetes manifests for what kiln publishes, get them from here: pure functions
//! from a [`ServiceSpec`] to file contents. Every generated Dockerfile passes all `kiln-lint` rules
//! (multi-stage, go.mod first, cgo off, `-trimpath -ldflags "-s -w"`, cache mounts with an explicit
//! GOCACHE, bases pinned by digest, non-root user); the tests check that with the real linter.
//!
//! ```
//! let spec = kiln_gen::ServiceSpec::new("hello", "./cmd/hello");
//! let dockerfile = kiln_gen::dockerfile(&spec).unwrap();
//! assert!(dockerfile.contains("CGO_ENABLED=0 go build -trimpath"));
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod docker;
mod k8s;
mod systemd;

pub use docker::{dockerfile, dockerignore};
pub use k8s::{k8s_build_job, k8s_manifests, BuildJobOptions};
pub use systemd::{systemd_unit, systemd_unit_at};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Placeholder digest for the `golang` build image. **Pin your own**: it is a well-formed digest so
/// generated files are complete, but it names no real image. Get the real one with
/// `skopeo inspect --format '{{.Digest}}' docker://golang:<version>` and set
/// [`ServiceSpec::go_image_digest`].
pub const PLACEHOLDER_GO_DIGEST: &str =
    "sha256:4f1a8d6b3c2e9a7f5d0b8c6e4a2f1d9b7c5e3a1f8d6b4c2e0a9f7d5b3c1e8a6f";

/// Default final-stage base: distroless static (CA certificates, tzdata, `nonroot` user, no libc, no
/// shell). The digest is a **placeholder: pin your own** with
/// `skopeo inspect --format '{{.Digest}}' docker://gcr.io/distroless/static-debian12:nonroot`.
pub const DEFAULT_BASE: &str = "gcr.io/distroless/static-debian12:nonroot@sha256:8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d";

/// Default uid and gid: distroless's `nonroot` user.
pub const DEFAULT_USER: u32 = 65532;

/// What to generate files for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Service name: a DNS label (`[a-z0-9-]`, at most 63 chars), used for units and k8s objects.
    pub name: String,
    /// Package to build, relative to the module root (`./cmd/api`) or an import path.
    pub package: String,
    /// Name of the binary (no `/`).
    pub binary: String,
    /// Directory of go.mod relative to the build context (`.` for the context root).
    pub module_dir: String,
    /// Go version for the build image, e.g. `1.26`.
    pub go_version: String,
    /// Digest of `golang:<go_version>`; `None` uses [`PLACEHOLDER_GO_DIGEST`].
    pub go_image_digest: Option<String>,
    /// Ports the service listens on; the first one gets the probes.
    pub ports: Vec<u16>,
    /// Environment variables for the running service.
    pub env: BTreeMap<String, String>,
    /// Numeric uid (also used as gid) the service runs as; never 0.
    pub user: u32,
    /// Final-stage base image: `scratch` or a reference pinned by digest.
    pub base: String,
    /// Image reference the Kubernetes manifests deploy.
    pub image: String,
}

impl ServiceSpec {
    /// A spec with kiln's defaults: binary named after the last path element of `package`,
    /// module at the context root, Go 1.26, port 8080, uid 65532, distroless static base.
    pub fn new(name: &str, package: &str) -> ServiceSpec {
        let binary = package
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty() && *s != ".")
            .unwrap_or(name)
            .to_string();
        ServiceSpec {
            name: name.to_string(),
            package: package.to_string(),
            binary,
            module_dir: ".".to_string(),
            go_version: "1.26".to_string(),
            go_image_digest: None,
            ports: vec![8080],
            env: BTreeMap::new(),
            user: DEFAULT_USER,
            base: DEFAULT_BASE.to_string(),
            image: format!("registry.example.com/{name}:0.1.0"),
        }
    }

    /// Checks the fields the generators rely on.
    pub fn validate(&self) -> Result<(), GenError> {
        let n = &self.name;
        let dns_label = !n.is_empty()
            && n.len() <= 63
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !n.starts_with('-')
            && !n.ends_with('-');
        if !dns_label {
            return Err(GenError::InvalidName { name: n.clone() });
        }
        if self.binary.is_empty()
            || self.binary.contains('/')
            || self.binary.chars().any(char::is_whitespace)
        {
            return Err(GenError::InvalidBinary {
                binary: self.binary.clone(),
            });
        }
        if self.package.is_empty() || self.package.chars().any(char::is_whitespace) {
            return Err(GenError::InvalidPackage {
                package: self.package.clone(),
            });
        }
        if self.user == 0 {
            return Err(GenError::RootUser);
        }
        if let Some(port) = self.ports.iter().find(|&&p| p == 0) {
            return Err(GenError::InvalidPort { port: *port });
        }
        for k in self.env.keys() {
            let ok = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(GenError::InvalidEnvName { name: k.clone() });
            }
        }
        let pinned = self.base == "scratch" || self.base.contains("@sha256:");
        if !pinned {
            return Err(GenError::UnpinnedBase {
                base: self.base.clone(),
            });
        }
        if let Some(d) = &self.go_image_digest {
            if !is_sha256(d) {
                return Err(GenError::InvalidDigest { digest: d.clone() });
            }
        }
        Ok(())
    }
}

fn is_sha256(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A spec the generators cannot turn into valid files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    /// The name is not a DNS label.
    #[error("service name {name:?} is not a DNS label; hint: use lower-case letters, digits and '-', at most 63 characters")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The binary name is empty or contains `/` or spaces.
    #[error("binary name {binary:?} is invalid; hint: use a plain file name such as \"api\"")]
    InvalidBinary {
        /// The rejected binary name.
        binary: String,
    },
    /// The package is empty or contains spaces.
    #[error("package {package:?} is invalid; hint: use \"./cmd/name\" or an import path")]
    InvalidPackage {
        /// The rejected package.
        package: String,
    },
    /// uid 0 was requested.
    #[error("the service would run as root (uid 0); hint: use an unprivileged uid such as 65532")]
    RootUser,
    /// A port of 0.
    #[error("port {port} is invalid; hint: ports are 1-65535")]
    InvalidPort {
        /// The rejected port.
        port: u16,
    },
    /// An environment variable name that a shell or systemd would not accept.
    #[error("environment variable name {name:?} is invalid; hint: use [A-Za-z_][A-Za-z0-9_]*")]
    InvalidEnvName {
        /// The rejected name.
        name: String,
    },
    /// The base image is not pinned by digest.
    #[error("base image {base:?} is not pinned by digest; hint: use image:tag@sha256:<digest> or scratch")]
    UnpinnedBase {
        /// The rejected base.
        base: String,
    },
    /// The Go image digest is not `sha256:<64 hex>`.
    #[error("go image digest {digest:?} is not sha256:<64 hex digits>; hint: copy it from `skopeo inspect`")]
    InvalidDigest {
        /// The rejected digest.
        digest: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_binary_name() {
        let s = ServiceSpec::new("api", "./cmd/api-server/");
        assert_eq!(s.binary, "api-server");
        assert_eq!(ServiceSpec::new("x", ".").binary, "x");
        assert_eq!(s.user, 65532);
        assert!(s.validate().is_ok());
        assert!(is_sha256(PLACEHOLDER_GO_DIGEST));
        assert!(DEFAULT_BASE
            .split_once('@')
            .is_some_and(|(_, d)| is_sha256(d)));
    }

    #[test]
    fn validation_rejects_bad_specs() {
        let ok = ServiceSpec::new("api", "./cmd/api");
        let cases: Vec<(ServiceSpec, &str)> = vec![
            (
                ServiceSpec {
                    name: "Api".into(),
                    ..ok.clone()
                },
                "DNS label",
            ),
            (
                ServiceSpec {
                    binary: "a/b".into(),
                    ..ok.clone()
                },
                "binary",
            ),
            (
                ServiceSpec {
                    user: 0,
                    ..ok.clone()
                },
                "root",
            ),
            (
                ServiceSpec {
                    ports: vec![0],
                    ..ok.clone()
                },
                "port 0",
            ),
            (
                ServiceSpec {
                    base: "alpine:latest".into(),
                    ..ok.clone()
                },
                "pinned",
            ),
            (
                ServiceSpec {
                    go_image_digest: Some("sha256:12".into()),
                    ..ok.clone()
                },
                "digest",
            ),
            (
                ServiceSpec {
                    env: [("1X".to_string(), "v".to_string())].into(),
                    ..ok.clone()
                },
                "environment",
            ),
        ];
        for (spec, needle) in cases {
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(e.contains("hint:"), "{e}");
        }
    }
}
