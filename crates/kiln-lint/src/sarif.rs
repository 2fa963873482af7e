//! SARIF 2.1.0 output and exit-code policy.

use crate::rules::{rules, Severity, DOCS_URL};
use crate::Report;
use serde_json::{json, Value};
use std::path::{Component, Path};

const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// Builds one SARIF 2.1.0 log (one run) for the reports. File paths are made relative to `base`
/// (the CLI passes the directory it runs in) when they lie below it, so code-scanning services can
/// map them to the repository.
pub fn to_sarif_with_base(reports: &[Report], base: &Path) -> Value {
    let all = rules();
    let driver_rules: Vec<Value> = all
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.name.replace('-', " ") },
                "fullDescription": { "text": r.summary },
                "help": { "text": format!("{} See {}{}", r.summary, DOCS_URL, r.doc_anchor) },
                "helpUri": format!("{DOCS_URL}{}", r.doc_anchor),
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": { "tags": ["dockerfile", "go"] },
            })
        })
        .collect();
    let mut results = vec![];
    for report in reports {
        for f in &report.findings {
            let index = all.iter().position(|r| r.id == f.rule);
            let mut result = json!({
                "ruleId": f.rule,
                "level": level(f.severity),
                "message": { "text": format!("{} Fix: {}", f.message, f.hint) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": relative_uri(Path::new(&f.file), base) },
                        "region": { "startLine": f.line.max(1), "endLine": f.end_line.max(f.line).max(1) },
                    }
                }],
            });
            if let (Some(i), Some(obj)) = (index, result.as_object_mut()) {
                obj.insert("ruleIndex".into(), json!(i));
            }
            results.push(result);
        }
    }
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "kiln-lint",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": DOCS_URL,
                "rules": driver_rules,
            }},
            "results": results,
        }],
    })
}

/// A relative, `/`-separated, percent-encoded URI reference for a file path.
fn relative_uri(path: &Path, base: &Path) -> String {
    let rel = if path.is_absolute() {
        path.strip_prefix(base).unwrap_or(path)
    } else {
        path
    };
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let joined = parts.join("/");
    let mut out = String::with_capacity(joined.len());
    for b in joined.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if path.is_absolute() && rel == path {
        format!("file:///{out}")
    } else {
        out
    }
}

/// The process exit code for a lint run: `0` when no finding is at or above `threshold`, `1`
/// otherwise. (Errors that prevent linting are the caller's to map, conventionally to `2`.)
pub fn exit_code(reports: &[Report], threshold: Severity) -> i32 {
    let failing = reports
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.severity >= threshold);
    i32::from(failing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Finding;

    fn report(sev: Severity) -> Report {
        Report {
            file: "svc/Dockerfile".into(),
            findings: vec![Finding {
                rule: "KL005".into(),
                name: "go-build-keeps-debug-info".into(),
                severity: sev,
                message: "m".into(),
                hint: "h".into(),
                file: "svc/Dockerfile".into(),
                line: 3,
                end_line: 4,
            }],
        }
    }

    #[test]
    fn exit_code_threshold() {
        assert_eq!(
            exit_code(&[report(Severity::Warning)], Severity::Warning),
            1
        );
        assert_eq!(exit_code(&[report(Severity::Warning)], Severity::Error), 0);
        assert_eq!(exit_code(&[report(Severity::Info)], Severity::Info), 1);
        assert_eq!(exit_code(&[], Severity::Info), 0);
    }

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(
            relative_uri(Path::new("/repo/a b/Dockerfile"), Path::new("/repo")),
            "a%20b/Dockerfile"
        );
        assert_eq!(
            relative_uri(Path::new("./x/Dockerfile"), Path::new("/r")),
            "x/Dockerfile"
        );
        assert_eq!(
            relative_uri(Path::new("/else/Dockerfile"), Path::new("/repo")),
            "file:///else/Dockerfile"
        );
    }

    #[test]
    fn result_points_at_rule_and_region() {
        let v = to_sarif_with_base(&[report(Severity::Warning)], Path::new("/"));
        let r = &v["runs"][0]["results"][0];
        assert_eq!(r["ruleId"], "KL005");
        assert_eq!(r["level"], "warning");
        assert_eq!(
            r["locations"][0]["physicalLocation"]["region"]["endLine"],
            4
        );
        let idx = r["ruleIndex"].as_u64().unwrap_or(999) as usize;
        assert_eq!(v["runs"][0]["tool"]["driver"]["rules"][idx]["id"], "KL005");
    }
}
