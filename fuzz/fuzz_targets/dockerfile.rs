//! Dockerfile text -> kiln-lint: the parser, every rule over the parsed file, SARIF output, and
//! `ARG` expansion over the same text. None of it may panic.
//!
//! The `.dockerignore` matcher is left out: every pattern compiles to a regex, which took a third
//! of each execution for two patterns and would have put 10 million executions out of reach.

#![no_main]

use std::collections::BTreeMap;

use kiln_lint::{exit_code, expand, lint_str, to_sarif_with_base, LintOptions, Severity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A build arg that real files use in `FROM`, so the expansion paths with a value run too.
    let opts = LintOptions {
        build_args: BTreeMap::from([("GO_VERSION".to_string(), "1.26".to_string())]),
        ..LintOptions::default()
    };
    if let Ok(report) = lint_str(text, None, &opts) {
        let _ = report.max_severity();
        let reports = [report];
        let _ = to_sarif_with_base(&reports, std::path::Path::new("."));
        let _ = exit_code(&reports, Severity::Warning);
    }
    let lookup = |name: &str| (name == "A").then(|| "value".to_string());
    let _ = expand(text, '\\', &lookup);
    let _ = expand(text, '`', &lookup);
});
