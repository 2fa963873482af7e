//! SBOMs checked by the official validators: `pyspdxtools` (PyPI spdx-tools) for SPDX 2.3 and
//! cyclonedx-python-lib's strict JSON schema validator for CycloneDX 1.6.

use std::path::Path;
use std::process::{Command, Output};

/// How to install both validators (the versions the tests were written against; the
/// `json-validation` extra brings jsonschema, without which the CycloneDX validator cannot run).
pub const SBOM_VALIDATORS_INSTALL: &str =
    "pip install spdx-tools==0.8.5 'cyclonedx-python-lib[json-validation]==11.12.0'";

/// Exit code of [`CDX_SNIPPET`] when the library is missing: a setup problem, not a verdict.
const MISSING: i32 = 3;

const CDX_SNIPPET: &str = r#"
import sys
try:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
except ImportError as e:
    print(f"missing cyclonedx-python-lib: {e}")
    sys.exit(3)
data = open(sys.argv[1], encoding="utf-8").read()
try:
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    errors = validator.validate_str(data, all_errors=True)
except Exception as e:  # MissingOptionalDependencyException without the json-validation extra
    print(f"cyclonedx validator unavailable: {type(e).__name__}: {e}")
    sys.exit(3)
if errors is None:
    print("valid")
    sys.exit(0)
if not isinstance(errors, (list, tuple)) and not hasattr(errors, "__iter__"):
    errors = [errors]
for e in errors:
    d = getattr(e, "data", None)
    print("error:", getattr(d, "message", str(e)[:300]), list(getattr(d, "absolute_path", [])))
sys.exit(1)
"#;

/// A validator's verdict on one document.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The validator accepted the document.
    pub valid: bool,
    /// What it printed (stdout then stderr), for the failure message.
    pub output: String,
}

fn verdict(out: &Output, valid: impl FnOnce(&str) -> bool) -> Verdict {
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Verdict {
        valid: out.status.success() && valid(&output),
        output,
    }
}

/// Runs `pyspdxtools -i file`. It exits 0 on some documents it reports as invalid, so a
/// document is valid only when it exits 0 and says nothing "invalid". Fails (never skips)
/// with the install command when the tool is missing.
pub fn spdx_verdict(file: &Path) -> Verdict {
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pyspdxtools ({e}); install it: {SBOM_VALIDATORS_INSTALL}")
        });
    verdict(&out, |text| !text.to_lowercase().contains("invalid"))
}

/// Runs cyclonedx-python-lib's strict CycloneDX 1.6 JSON validator on `file`, listing every
/// error. Fails (never skips) with the install command when python3, the library or its
/// `json-validation` extra is missing.
pub fn cyclonedx_verdict(file: &Path) -> Verdict {
    let out = Command::new("python3")
        .arg("-c")
        .arg(CDX_SNIPPET)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install python3 and: {SBOM_VALIDATORS_INSTALL}")
        });
    let v = verdict(&out, |text| text.trim() == "valid");
    assert_ne!(
        out.status.code(),
        Some(MISSING),
        "{}\ninstall it: {SBOM_VALIDATORS_INSTALL}",
        v.output
    );
    v
}

/// Asserts that `pyspdxtools` accepts the SPDX document in `file`.
pub fn assert_spdx_valid(file: &Path) {
    let v = spdx_verdict(file);
    assert!(
        v.valid,
        "pyspdxtools rejected {}:\n{}",
        file.display(),
        v.output
    );
}

/// Asserts that the strict CycloneDX 1.6 validator accepts the document in `file`.
pub fn assert_cyclonedx_valid(file: &Path) {
    let v = cyclonedx_verdict(file);
    assert!(
        v.valid,
        "CycloneDX 1.6 strict validation failed for {}:\n{}",
        file.display(),
        v.output
    );
}

/// [`assert_spdx_valid`] for a document in memory.
pub fn assert_spdx_bytes_valid(document: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sbom.spdx.json");
    std::fs::write(&file, document).unwrap();
    assert_spdx_valid(&file);
}

/// [`assert_cyclonedx_valid`] for a document in memory.
pub fn assert_cyclonedx_bytes_valid(document: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sbom.cdx.json");
    std::fs::write(&file, document).unwrap();
    assert_cyclonedx_valid(&file);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_is_not_an_sbom() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.json");
        std::fs::write(&file, "{}").unwrap();
        assert!(!spdx_verdict(&file).valid);
        assert!(!cyclonedx_verdict(&file).valid);
    }
}
