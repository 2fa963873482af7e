//! Policy checks for `kiln verify --policy FILE`.

use kiln_types::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{AttestError, Result};
use crate::provenance::SLSA_PROVENANCE_V1;

/// A policy file (TOML). Every key is optional; an empty file allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// If non-empty, the base image digest must be one of these.
    pub allowed_base_digests: Vec<Digest>,
    /// Modules that must not be compiled in: `path` (any version) or `path@version`.
    pub denied_modules: Vec<String>,
    /// The image must not run as root.
    pub require_non_root: bool,
    /// Every binary must be statically linked.
    pub require_static: bool,
    /// An SBOM must be attached.
    pub require_sbom: bool,
    /// Provenance must be attached.
    pub require_provenance: bool,
}

impl Policy {
    /// Parses a policy from TOML text; `name` is used in errors.
    pub fn from_toml(text: &str, name: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| AttestError::InvalidPolicy {
            name: name.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })
    }
}

/// A module found in the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFact {
    /// Module path.
    pub path: String,
    /// Module version.
    pub version: String,
}

/// A binary found in the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryFact {
    /// Path in the image.
    pub path: String,
    /// Whether it is statically linked.
    pub is_static: bool,
}

/// What is known about the artifact being verified; the CLI fills it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Base image digest, if the image has a known base.
    pub base_digest: Option<Digest>,
    /// Every compiled module.
    pub modules: Vec<ModuleFact>,
    /// Image config `User` (None or empty means root).
    pub user: Option<String>,
    /// Binaries in the artifact.
    pub binaries: Vec<BinaryFact>,
    /// Whether an SBOM is attached.
    pub has_sbom: bool,
    /// Whether provenance is attached.
    pub has_provenance: bool,
    /// Predicate type of a signed provenance kiln does not accept (e.g. SLSA v0.2), so a
    /// missing v1 provenance is reported as what it is instead of as "no provenance".
    #[serde(default)]
    pub other_provenance: Option<String>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The policy key, e.g. `denied_modules`.
    pub rule: String,
    /// What is wrong, naming the offending item.
    pub message: String,
}

fn violation(rule: &str, message: String) -> Violation {
    Violation {
        rule: rule.to_owned(),
        message,
    }
}

/// Whether `user` (an image config `User`: `name`, `uid`, `uid:gid`) means root.
pub fn is_root_user(user: Option<&str>) -> bool {
    let u = user.unwrap_or("").trim();
    let who = u.split(':').next().unwrap_or("");
    who.is_empty() || who == "root" || who.parse::<u64>().is_ok_and(|uid| uid == 0)
}

/// Checks `facts` against `policy`; an empty list means the artifact passes.
pub fn evaluate(policy: &Policy, facts: &Facts) -> Vec<Violation> {
    let mut out = Vec::new();
    if !policy.allowed_base_digests.is_empty() {
        match &facts.base_digest {
            Some(d) if policy.allowed_base_digests.contains(d) => {}
            Some(d) => out.push(violation(
                "allowed_base_digests",
                format!("base image {d} is not in the allowed list"),
            )),
            None => out.push(violation(
                "allowed_base_digests",
                "the base image is unknown, so it cannot be checked against the allowed list"
                    .into(),
            )),
        }
    }
    for rule in &policy.denied_modules {
        let (path, version) = match rule.split_once('@') {
            Some((p, v)) => (p, Some(v)),
            None => (rule.as_str(), None),
        };
        for m in &facts.modules {
            if m.path == path && version.is_none_or(|v| v == m.version) {
                out.push(violation(
                    "denied_modules",
                    format!("module {}@{} is denied by {rule:?}", m.path, m.version),
                ));
            }
        }
    }
    if policy.require_non_root && is_root_user(facts.user.as_deref()) {
        out.push(violation(
            "require_non_root",
            format!(
                "image runs as root (User = {:?}); set a non-root user",
                facts.user.as_deref().unwrap_or("")
            ),
        ));
    }
    if policy.require_static {
        for b in facts.binaries.iter().filter(|b| !b.is_static) {
            out.push(violation(
                "require_static",
                format!("{} is dynamically linked; build with CGO_ENABLED=0", b.path),
            ));
        }
    }
    if policy.require_sbom && !facts.has_sbom {
        out.push(violation("require_sbom", "no SBOM is attached".into()));
    }
    if policy.require_provenance && !facts.has_provenance {
        let message = match &facts.other_provenance {
            Some(t) => {
                format!("provenance found but it is {t}; kiln requires {SLSA_PROVENANCE_V1}")
            }
            None => "no provenance is attached".into(),
        };
        out.push(violation("require_provenance", message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            base_digest: Some(Digest::of_bytes(b"base")),
            modules: vec![
                ModuleFact {
                    path: "github.com/x/y".into(),
                    version: "v1.0.0".into(),
                },
                ModuleFact {
                    path: "github.com/x/z".into(),
                    version: "v1.2.3".into(),
                },
                ModuleFact {
                    path: "github.com/x/yy".into(),
                    version: "v0.1.0".into(),
                },
            ],
            user: Some("65532:65532".into()),
            binaries: vec![BinaryFact {
                path: "/app".into(),
                is_static: true,
            }],
            has_sbom: true,
            has_provenance: true,
            other_provenance: None,
        }
    }

    #[test]
    fn parse_and_pass() {
        let text = format!(
            "allowed_base_digests = [\"{}\"]\ndenied_modules = [\"github.com/x/z@v9.9.9\"]\nrequire_non_root = true\nrequire_static = true\nrequire_sbom = true\nrequire_provenance = true\n",
            Digest::of_bytes(b"base")
        );
        let p = Policy::from_toml(&text, "policy.toml").unwrap();
        assert!(p.require_static);
        assert_eq!(evaluate(&p, &facts()), vec![]);
    }

    #[test]
    fn every_rule_can_fail() {
        let p = Policy {
            allowed_base_digests: vec![Digest::of_bytes(b"other")],
            denied_modules: vec!["github.com/x/y".into(), "github.com/x/z@v1.2.3".into()],
            require_non_root: true,
            require_static: true,
            require_sbom: true,
            require_provenance: true,
        };
        let mut f = facts();
        f.user = Some("0:0".into());
        f.binaries[0].is_static = false;
        f.has_sbom = false;
        f.has_provenance = false;
        let rules: Vec<String> = evaluate(&p, &f).into_iter().map(|v| v.rule).collect();
        assert_eq!(
            rules,
            [
                "allowed_base_digests",
                "denied_modules",
                "denied_modules",
                "require_non_root",
                "require_static",
                "require_sbom",
                "require_provenance"
            ]
        );
        // Denying a path must not match a longer path sharing the prefix (github.com/x/yy).
        let msgs: Vec<String> = evaluate(&p, &f).into_iter().map(|v| v.message).collect();
        assert!(!msgs.iter().any(|m| m.contains("github.com/x/yy")));
        assert_eq!(msgs.last().unwrap(), "no provenance is attached");
    }

    #[test]
    fn issue_10_older_provenance_is_named() {
        let p = Policy {
            require_provenance: true,
            ..Policy::default()
        };
        let mut f = facts();
        f.has_provenance = false;
        f.other_provenance = Some("https://slsa.dev/provenance/v0.2".into());
        let v = evaluate(&p, &f);
        assert_eq!(
            v[0].message,
            "provenance found but it is https://slsa.dev/provenance/v0.2; kiln requires https://slsa.dev/provenance/v1"
        );
    }

    #[test]
    fn root_detection() {
        for u in [
            None,
            Some(""),
            Some("root"),
            Some("0"),
            Some("0:1000"),
            Some("root:root"),
        ] {
            assert!(is_root_user(u), "{u:?}");
        }
        for u in [Some("nonroot"), Some("65532"), Some("1000:0")] {
            assert!(!is_root_user(u), "{u:?}");
        }
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = Policy::from_toml("require_statik = true", "p.toml").unwrap_err();
        assert!(err.to_string().contains("require_statik"), "{err}");
    }
}
