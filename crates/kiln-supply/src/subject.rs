//! SBOM subjects: what kiln-verify read from binaries, in the shape kiln-attest writes SBOMs from.

use std::path::Path;
use std::str::FromStr;

use kiln_attest::{BinaryInfo, CreationInfo, GoModule, SbomSubject, SubjectKind};
use kiln_types::{Digest, Platform};
use kiln_verify::{GoBuildInfo, Module};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, SupplyError};

/// Tool name recorded in SBOMs (`kiln-<version>`).
pub const TOOL: &str = concat!("kiln-", env!("CARGO_PKG_VERSION"));

/// Maps one build-info module (with its replacement) to kiln-attest's model.
pub fn go_module(m: &Module) -> GoModule {
    GoModule {
        path: m.path.clone(),
        version: m.version.clone(),
        sum: m.sum.clone(),
        replace: m.replace.as_deref().map(|r| Box::new(go_module(r))),
    }
}

/// Maps a binary's Go build info to the SBOM model.
pub fn binary_info(go: &GoBuildInfo, path_in_image: &str, sha256: Digest) -> BinaryInfo {
    BinaryInfo {
        path_in_image: path_in_image.to_owned(),
        sha256,
        go_version: go.go_version.clone(),
        main_module: go_module(&go.main),
        deps: go.deps.iter().map(go_module).collect(),
        settings: go
            .settings
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect(),
    }
}

/// The SBOM subject of one Go executable on disk: its file name, sha256 and build info.
///
/// Errors with [`SupplyError::NoGoBuildInfo`] for executables without Go build info.
pub fn binary_subject(path: &Path) -> Result<SbomSubject> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let report = kiln_verify::inspect_bytes(&bytes).map_err(|source| SupplyError::Inspect {
        path: path.display().to_string(),
        source,
    })?;
    let go = report.go.ok_or_else(|| SupplyError::NoGoBuildInfo {
        path: path.to_owned(),
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let digest = Digest::of_bytes(&bytes);
    let platform = match (go.goos(), go.goarch()) {
        (Some(os), Some(arch)) => format!("{os}/{arch}").parse::<Platform>().ok(),
        _ => None,
    };
    let version = go.main.version.clone();
    Ok(SbomSubject {
        name: name.clone(),
        version: (!version.is_empty() && version != "(devel)").then_some(version),
        kind: SubjectKind::Binary,
        digest,
        platform,
        binaries: vec![binary_info(&go, &name, digest)],
        base: None,
    })
}

/// The two SBOM formats kiln writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
}

impl SbomFormat {
    /// The document's media type (`application/spdx+json`, `application/vnd.cyclonedx+json`).
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Spdx => kiln_attest::SPDX_MEDIA_TYPE,
            Self::Cyclonedx => kiln_attest::CYCLONEDX_MEDIA_TYPE,
        }
    }

    /// The in-toto predicate type cosign uses for this format (`--type spdxjson` / `cyclonedx`).
    pub fn predicate_type(self) -> &'static str {
        match self {
            Self::Spdx => SPDX_PREDICATE_TYPE,
            Self::Cyclonedx => CYCLONEDX_PREDICATE_TYPE,
        }
    }
}

/// Predicate type of an SPDX SBOM attestation (as cosign writes it).
pub const SPDX_PREDICATE_TYPE: &str = "https://spdx.dev/Document";
/// Predicate type of a CycloneDX SBOM attestation (as cosign writes it).
pub const CYCLONEDX_PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

impl FromStr for SbomFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "spdx" | "spdx-json" | "spdxjson" => Ok(Self::Spdx),
            "cyclonedx" | "cdx" | "cyclonedx-json" => Ok(Self::Cyclonedx),
            other => Err(format!(
                "unknown SBOM format {other:?}: use spdx or cyclonedx"
            )),
        }
    }
}

/// Renders `subject` as an SBOM document created at `date` (seconds since 1970): the build's one
/// date, which the caller resolves once (`SOURCE_DATE_EPOCH`, else the commit time), so the SBOM
/// agrees with the image and the binary and reproducible builds get reproducible SBOMs.
pub fn render_sbom(subject: &SbomSubject, format: SbomFormat, date: u64) -> Result<Vec<u8>> {
    let creation = CreationInfo::at_epoch(i64::try_from(date).unwrap_or(i64::MAX), TOOL);
    Ok(match format {
        SbomFormat::Spdx => kiln_attest::to_spdx_bytes(
            subject,
            &creation,
            &kiln_attest::default_namespace(subject),
        )?,
        SbomFormat::Cyclonedx => kiln_attest::to_cyclonedx_bytes(subject, &creation)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_chain_is_kept() {
        let m = Module {
            path: "example.org/a".into(),
            version: "v1.0.0".into(),
            sum: Some("h1:x".into()),
            replace: Some(Box::new(Module {
                path: "example.org/fork".into(),
                version: "v1.0.1".into(),
                sum: Some("h1:y".into()),
                replace: None,
            })),
        };
        let g = go_module(&m);
        assert_eq!(g.effective().path, "example.org/fork");
        assert_eq!(g.effective().sum.as_deref(), Some("h1:y"));
        assert_eq!(g.sum.as_deref(), Some("h1:x"));
    }

    #[test]
    fn formats_parse() {
        assert_eq!("SPDX".parse::<SbomFormat>(), Ok(SbomFormat::Spdx));
        assert_eq!("cyclonedx".parse::<SbomFormat>(), Ok(SbomFormat::Cyclonedx));
        assert!("xml".parse::<SbomFormat>().is_err());
    }

    #[test]
    fn non_go_executable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"not a binary").unwrap();
        assert!(matches!(
            binary_subject(&p),
            Err(SupplyError::Inspect { .. })
        ));
    }
}
