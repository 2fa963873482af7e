//! Every rule against its failing and passing fixtures, plus the whole-file behaviours
//! (recommended pattern, inline ignores, options, errors).

use kiln_lint::{lint, lint_str, rules, LintError, LintOptions, Report, Severity};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn ids(r: &Report) -> BTreeSet<String> {
    r.findings.iter().map(|f| f.rule.clone()).collect()
}

fn lint_file(path: &Path) -> Report {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lint_str(&text, None, &LintOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_rule_has_failing_and_passing_fixtures() {
    for rule in rules() {
        let dir = fixtures().join(rule.id);
        if rule.id == "KL010" {
            continue; // needs a context directory: tested below
        }
        let mut fails = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let report = lint_file(&path);
            if name.starts_with("fail") {
                fails += 1;
                assert!(
                    ids(&report).contains(rule.id),
                    "{} should trigger {}: {:#?}",
                    path.display(),
                    rule.id,
                    report.findings
                );
            } else if name.starts_with("pass") {
                assert!(
                    !ids(&report).contains(rule.id),
                    "{} should not trigger {}: {:#?}",
                    path.display(),
                    rule.id,
                    report.findings
                );
            }
        }
        assert!(fails > 0, "{} has no failing fixture", rule.id);
        assert!(
            dir.join("pass.Dockerfile").is_file(),
            "{} has no passing fixture",
            rule.id
        );
    }
}

#[test]
fn dockerignore_rule_uses_the_context() {
    let opts = LintOptions::default();
    let missing = lint(&fixtures().join("KL010/fail-missing/Dockerfile"), &opts).unwrap();
    assert!(ids(&missing).contains("KL010"));
    let f = missing.findings.iter().find(|f| f.rule == "KL010").unwrap();
    assert!(f.message.contains("no .dockerignore"), "{}", f.message);
    assert!(f.message.contains("`COPY . /srv/`"), "{}", f.message);
    assert_eq!(
        f.line, 2,
        "the finding points at the copy that takes .git along"
    );
    let nogit = lint(&fixtures().join("KL010/fail-nogit/Dockerfile"), &opts).unwrap();
    assert!(nogit
        .findings
        .iter()
        .any(|f| f.rule == "KL010" && f.message.contains("does not exclude .git")));
    let pass = lint(&fixtures().join("KL010/pass/Dockerfile"), &opts).unwrap();
    assert!(!ids(&pass).contains("KL010"), "{:#?}", pass.findings);
    let named = lint(
        &fixtures().join("KL010/pass-named-copies/Dockerfile"),
        &opts,
    )
    .unwrap();
    assert!(
        !named.findings.iter().any(|f| f.rule == "KL010"),
        "{:#?}",
        named.findings
    );
    // lint_str with an explicit context reads the same file.
    let text = std::fs::read_to_string(fixtures().join("KL010/pass/Dockerfile")).unwrap();
    let r = lint_str(&text, Some(&fixtures().join("KL010/fail-missing")), &opts).unwrap();
    assert!(ids(&r).contains("KL010"));
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let df = dir.path().join("app.Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY . /\nUSER 1\n").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "dist\n").unwrap();
    let opts = LintOptions::default();
    assert!(ids(&lint(&df, &opts).unwrap()).contains("KL010"));
    std::fs::write(dir.path().join("app.Dockerfile.dockerignore"), ".git\n").unwrap();
    assert!(!ids(&lint(&df, &opts).unwrap()).contains("KL010"));
}

#[test]
fn recommended_pattern_has_zero_findings() {
    let report = lint(
        &fixtures().join("recommended/Dockerfile"),
        &LintOptions::default(),
    )
    .unwrap();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn findings_point_at_the_right_lines() {
    let r = lint_file(&fixtures().join("KL003/fail.Dockerfile"));
    let f = r.findings.iter().find(|f| f.rule == "KL003").unwrap();
    assert_eq!((f.line, f.end_line), (6, 6));
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("scratch") && f.hint.contains("CGO_ENABLED=0"));
    let r = lint_file(&fixtures().join("KL002/fail.Dockerfile"));
    assert_eq!(
        r.findings.iter().find(|f| f.rule == "KL002").unwrap().line,
        3
    );
    let r = lint_file(&fixtures().join("KL002/fail-late-download.Dockerfile"));
    assert_eq!(
        r.findings.iter().find(|f| f.rule == "KL002").unwrap().line,
        5
    );
    let r = lint_file(&fixtures().join("recommended/Dockerfile"));
    assert!(r.findings.is_empty());
    // Continuation lines: the finding spans the whole RUN.
    let text = std::fs::read_to_string(fixtures().join("recommended/Dockerfile"))
        .unwrap()
        .replace("-trimpath ", "");
    let r = lint_str(&text, None, &LintOptions::default()).unwrap();
    let f = r.findings.iter().find(|f| f.rule == "KL004").unwrap();
    assert_eq!((f.line, f.end_line), (13, 16));
}

#[test]
fn blog_post_pattern_gets_the_expected_findings() {
    let r = lint_file(&fixtures().join("article/Dockerfile"));
    let got = ids(&r);
    let want: BTreeSet<String> = ["KL004", "KL008", "KL009", "KL013"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want, "{:#?}", r.findings);
    let latest = r
        .findings
        .iter()
        .find(|f| f.rule == "KL008" && f.line == 9)
        .unwrap();
    assert!(latest.message.contains("latest"));
}

#[test]
fn inline_and_file_ignores() {
    let base = std::fs::read_to_string(fixtures().join("KL003/fail.Dockerfile")).unwrap();
    let with_inline = base.replace(
        "RUN go build",
        "# kiln-lint ignore=KL003,KL013\nRUN go build",
    );
    let r = lint_str(&with_inline, None, &LintOptions::default()).unwrap();
    assert!(!ids(&r).contains("KL003") && !ids(&r).contains("KL013"));
    assert!(ids(&r).contains("KL009"), "other rules still run");
    let with_file = format!("# kiln-lint ignore-file=KL009\n{base}");
    let r = lint_str(&with_file, None, &LintOptions::default()).unwrap();
    assert!(!ids(&r).contains("KL009") && ids(&r).contains("KL003"));
}

#[test]
fn options_disable_rules_and_filter_severity() {
    let text = std::fs::read_to_string(fixtures().join("article/Dockerfile")).unwrap();
    let mut opts = LintOptions {
        min_severity: Severity::Warning,
        ..LintOptions::default()
    };
    let r = lint_str(&text, None, &opts).unwrap();
    assert!(!ids(&r).contains("KL013"));
    opts.disabled.insert("kl008".into());
    let r = lint_str(&text, None, &opts).unwrap();
    assert!(!ids(&r).contains("KL008") && ids(&r).contains("KL009"));
}

#[test]
fn build_args_expand_from_lines() {
    let text = "ARG BASE=alpine:latest\nFROM ${BASE}\nUSER 1\n";
    let mut opts = LintOptions::default();
    assert!(ids(&lint_str(text, None, &opts).unwrap()).contains("KL008"));
    opts.build_args
        .insert("BASE".into(), format!("alpine@sha256:{}", "a".repeat(64)));
    assert!(!ids(&lint_str(text, None, &opts).unwrap()).contains("KL008"));
}

#[test]
fn errors_carry_path_and_line() {
    let missing = lint(
        Path::new("/nonexistent/Dockerfile"),
        &LintOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(missing, LintError::Read { .. }));
    assert!(missing.to_string().contains("/nonexistent/Dockerfile"));
    let dir = tempfile::tempdir().unwrap();
    let df = dir.path().join("Dockerfile");
    std::fs::write(&df, "FROM alpine\nRUN <<EOF\necho\n").unwrap();
    match lint(&df, &LintOptions::default()) {
        Err(LintError::Parse { source, .. }) => assert_eq!(source.line, 2),
        other => panic!("expected a parse error, got {other:?}"),
    }
    std::fs::write(&df, "FROM scratch\n").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "[bad\n").unwrap();
    assert!(matches!(
        lint(&df, &LintOptions::default()),
        Err(LintError::DockerIgnore { .. })
    ));
}

#[test]
fn report_serializes_for_json_output() {
    let r = lint_file(&fixtures().join("KL012/fail.Dockerfile"));
    let v = serde_json::to_value(&r).unwrap();
    let first = &v["findings"][0];
    assert_eq!(first["rule"], "KL012");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["line"], 1);
    assert_eq!(r.findings.iter().filter(|f| f.rule == "KL012").count(), 2);
}

#[test]
fn every_rule_is_documented_with_its_anchor() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lint-rules.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    for rule in rules() {
        let heading = format!("## {} {}\n", rule.id, rule.name);
        assert!(
            doc.contains(&heading),
            "docs/lint-rules.md lacks `{}`",
            heading.trim()
        );
        // GitHub's anchor for that heading: lower-cased, spaces to dashes.
        let anchor = format!("#{}-{}", rule.id.to_ascii_lowercase(), rule.name);
        assert_eq!(rule.doc_anchor, anchor);
        assert!(
            doc.contains(&format!("({anchor})")),
            "table link for {}",
            rule.id
        );
        let section = doc.split(&heading).nth(1).unwrap_or("");
        assert!(
            section.starts_with(&format!("\n**Severity: {}.**", rule.severity)),
            "severity of {} in docs",
            rule.id
        );
    }
}

/// Truncated and mangled versions of every fixture must give a report or a parse error, never a
/// panic: the linter runs on whatever users have.
#[test]
fn mangled_inputs_never_panic() {
    let mut texts = vec![];
    let mut stack = vec![fixtures()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                texts.push(t);
            }
        }
    }
    let extra = [
        "FROM é\nENV \"é\" ü\nRUN ${\nARG =\nCOPY [\"a\",\n",
        "FROM a\nRUN <<\nRUN <<-'\nRUN <<\"X\" <<Y\nX\n",
        "# escape=`\nFROM a `\n\n`\n",
        "FROM a AS b\nFROM b AS a\nUSER\t\n",
        "FROM --platform= \nRUN --mount= go build -ldflags\n",
    ];
    texts.extend(extra.iter().map(|s| s.to_string()));
    let opts = LintOptions::default();
    let mut runs = 0;
    for text in &texts {
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(7).collect();
        for cut in cuts {
            let t = &text[..cut];
            let _ = lint_str(t, None, &opts);
            // Same text with quotes and backslashes injected mid-way.
            let _ = lint_str(&format!("{t}\"\\'{}", &text[cut..]), None, &opts);
            runs += 2;
        }
    }
    assert!(runs > 500, "only {runs} variants tried");
}

#[test]
fn issue_9_kl010_is_silent_when_nothing_copies_the_context() {
    // No .dockerignore at all, but the file never copies the whole context: .git cannot reach a
    // layer, so the old "`COPY . .` changes on every commit" message would be false.
    let dir = tempfile::tempdir().unwrap();
    let df = dir.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY app /app\nUSER 1\n").unwrap();
    let r = lint(&df, &LintOptions::default()).unwrap();
    assert!(!ids(&r).contains("KL010"), "{:#?}", r.findings);
    for copy in [
        "COPY . .",
        "COPY ./ /src/",
        "ADD * /src/",
        "COPY [\".\", \"/src\"]",
    ] {
        std::fs::write(&df, format!("FROM scratch\n{copy}\nUSER 1\n")).unwrap();
        let r = lint(&df, &LintOptions::default()).unwrap();
        assert!(ids(&r).contains("KL010"), "{copy}: {:#?}", r.findings);
    }
    // COPY --from copies from a stage, not the context.
    std::fs::write(&df, "FROM scratch\nCOPY --from=build . /\nUSER 1\n").unwrap();
    let r = lint(&df, &LintOptions::default()).unwrap();
    assert!(!ids(&r).contains("KL010"), "{:#?}", r.findings);
}

#[test]
fn issue_9_false_positives_are_passing_fixtures() {
    for (file, rule) in [
        ("KL003/pass-alpine-no-compiler.Dockerfile", "KL003"),
        ("KL003/pass-alpine-to-alpine.Dockerfile", "KL003"),
        ("KL005/pass-s-implies-w.Dockerfile", "KL005"),
        ("KL013/pass-root-default.Dockerfile", "KL013"),
    ] {
        let r = lint_file(&fixtures().join(file));
        assert!(!ids(&r).contains(rule), "{file}: {:#?}", r.findings);
    }
    // ... and the cases that stay true still fire, saying why.
    let why = |file: &str, rule: &str| -> String {
        let r = lint_file(&fixtures().join(file));
        r.findings
            .iter()
            .find(|f| f.rule == rule)
            .unwrap_or_else(|| panic!("{file} lacks {rule}: {:#?}", r.findings))
            .message
            .clone()
    };
    assert!(why("KL003/fail.Dockerfile", "KL003").contains("`golang` has a C compiler"));
    assert!(
        why("KL003/fail-alpine-installs-gcc.Dockerfile", "KL003").contains("installs a C compiler")
    );
    assert!(
        why("KL003/fail-alpine-cgo-enabled.Dockerfile", "KL003").contains("CGO_ENABLED=1 is set")
    );
    assert!(why("KL003/fail-alpine-before-go120.Dockerfile", "KL003").contains("Go 1.19"));
    assert!(why("KL005/fail-s-only-before-go122.Dockerfile", "KL005").contains("Go 1.21"));
    assert!(why("KL005/fail-w0.Dockerfile", "KL005").contains("-w=0"));
    assert!(
        why("KL013/fail-non-root-home.Dockerfile", "KL013").contains("/home/app/.cache/go-build")
    );
    assert!(why("KL013/fail-mount-elsewhere.Dockerfile", "KL013").contains("`/cache/go`"));
}

#[test]
fn issue_9_opaque_build_steps_say_what_was_not_checked() {
    let r = lint_file(&fixtures().join("KL014/fail.Dockerfile"));
    let f = r.findings.iter().find(|f| f.rule == "KL014").unwrap();
    assert_eq!(f.line, 4);
    assert_eq!(f.severity, Severity::Info);
    for rule in ["KL003", "KL004", "KL005", "KL006", "KL013"] {
        assert!(f.message.contains(rule), "{rule} in {}", f.message);
    }
    assert!(f.message.contains("`make build`"), "{}", f.message);
    // What the visible environment settles is not listed: no compiler on alpine (cgo off), and a
    // cache mount over root's default GOCACHE.
    let r = lint_file(&fixtures().join("KL014/fail-script.Dockerfile"));
    let f = r.findings.iter().find(|f| f.rule == "KL014").unwrap();
    assert!(f.message.contains("`./scripts/build.sh`"), "{}", f.message);
    assert!(
        !f.message.contains("KL003") && !f.message.contains("KL013"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("KL004") && f.message.contains("KL005"),
        "{}",
        f.message
    );
    // Only KL014 is reported for the opaque step: no guessed flag findings.
    let text = std::fs::read_to_string(fixtures().join("KL014/fail.Dockerfile")).unwrap();
    let r = lint_str(&text, None, &LintOptions::default()).unwrap();
    let on_make: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.line == 4)
        .map(|f| f.rule.as_str())
        .collect();
    assert_eq!(on_make, ["KL014"], "{:#?}", r.findings);
}
