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

/// Placeholder in place of an image digest kiln does not know. It is visibly not a digest: a build
/// stops at once with "invalid reference format" instead of failing later to pull an image that
/// does not exist (the old placeholder was 64 made-up hex digits that looked real). Every generated
/// file that carries it says how to get the real digest.
pub const PLACEHOLDER_DIGEST: &str = "sha256:REPLACE_ME_WITH_THE_REAL_DIGEST";

/// Placeholder digest for the `golang` build image: [`PLACEHOLDER_DIGEST`]. Get the real one with
/// `skopeo inspect --format '{{.Digest}}' docker://golang:<version>` and set
/// [`ServiceSpec::go_image_digest`].
pub const PLACEHOLDER_GO_DIGEST: &str = PLACEHOLDER_DIGEST;

/// Default final-stage base: distroless static (CA certificates, tzdata, `nonroot` user, no libc, no
/// shell), with [`PLACEHOLDER_DIGEST`]: pin your own with
/// `skopeo inspect --format '{{.Digest}}' docker://gcr.io/distroless/static-debian12:nonroot`.
pub const DEFAULT_BASE: &str =
    "gcr.io/distroless/static-debian12:nonroot@sha256:REPLACE_ME_WITH_THE_REAL_DIGEST";

/// Registry of the placeholder image reference [`ServiceSpec::new`] gives the Kubernetes manifests.
pub const PLACEHOLDER_REGISTRY: &str = "registry.example.com";

/// Whether a digest or an image reference still holds [`PLACEHOLDER_DIGEST`].
pub fn is_placeholder(reference: &str) -> bool {
    reference.contains(PLACEHOLDER_DIGEST)
}

/// Default uid and gid: distroless's `nonroot` user.
pub const DEFAULT_USER: u32 = 65532;

/// Transport protocol of a [`Port`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Lower-case name, as in `EXPOSE 53/udp` and kiln.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A port the service listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Port number, 1-65535.
    pub number: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl Port {
    /// A TCP port.
    pub fn tcp(number: u16) -> Port {
        Port {
            number,
            protocol: Protocol::Tcp,
        }
    }

    /// Parses kiln.toml's spelling: `8080`, `8080/tcp`, `53/udp`, `9/sctp`.
    pub fn parse(spec: &str) -> Result<Port, GenError> {
        let bad = || GenError::InvalidPortSpec {
            spec: spec.to_string(),
        };
        let (num, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err(bad()),
        };
        let number: u16 = num.trim().parse().map_err(|_| bad())?;
        if number == 0 {
            return Err(GenError::InvalidPort { port: 0 });
        }
        Ok(Port { number, protocol })
    }
}

impl std::fmt::Display for Port {
    /// `8080/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.number, self.protocol.as_str())
    }
}

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
    /// Ports the service listens on; the first TCP one gets the probes.
    pub ports: Vec<Port>,
    /// Environment variables for the running service.
    pub env: BTreeMap<String, String>,
    /// Numeric uid the service runs as; never 0.
    pub user: u32,
    /// Numeric gid the service runs as.
    pub group: u32,
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
            ports: vec![Port::tcp(8080)],
            env: BTreeMap::new(),
            user: DEFAULT_USER,
            group: DEFAULT_USER,
            base: DEFAULT_BASE.to_string(),
            image: format!("{PLACEHOLDER_REGISTRY}/{name}:0.1.0"),
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
        if self.ports.iter().any(|p| p.number == 0) {
            return Err(GenError::InvalidPort { port: 0 });
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
            if !is_sha256(d) && d != PLACEHOLDER_DIGEST {
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
    /// A port spelling that is not `N`, `N/tcp`, `N/udp` or `N/sctp`.
    #[error("port {spec:?} is invalid; hint: write 8080, \"8080/tcp\", \"53/udp\" or \"9/sctp\"")]
    InvalidPortSpec {
        /// The rejected spelling.
        spec: String,
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
        // issue 9: the placeholders must not look like real digests.
        assert!(!is_sha256(PLACEHOLDER_GO_DIGEST));
        assert!(is_placeholder(DEFAULT_BASE) && is_placeholder(PLACEHOLDER_GO_DIGEST));
        assert!(!is_placeholder(&format!(
            "golang:1.26@sha256:{}",
            "a".repeat(64)
        )));
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
                    ports: vec![Port::tcp(0)],
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
        for bad in ["0", "x", "80/http", "70000"] {
            let e = Port::parse(bad).unwrap_err().to_string();
            assert!(e.contains("port") && e.contains("hint:"), "{bad}: {e}");
        }
        for (spec, needle) in cases {
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(e.contains("hint:"), "{e}");
        }
    }
}

#[cfg(test)]
mod port_tests {
    use super::*;

    #[test]
    fn ports_parse_as_kiln_toml_spells_them() {
        assert_eq!(Port::parse("8080").unwrap(), Port::tcp(8080));
        assert_eq!(Port::parse("8080/tcp").unwrap(), Port::tcp(8080));
        let udp = Port::parse("53/UDP").unwrap();
        assert_eq!(udp.protocol, Protocol::Udp);
        assert_eq!(udp.to_string(), "53/udp");
    }
}
