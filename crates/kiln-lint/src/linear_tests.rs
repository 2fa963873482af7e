//! Linting must be linear in the size of the Dockerfile (issue 8: 640 KB of `${` took 34 s), and
//! inputs above the size limit are refused with a clear error.
//!
//! Work is counted with [`crate::work`], not timed: each shape is linted at n and 2n repetitions
//! and the work may at most (about) double.

use crate::{lint, lint_str, LintError, LintOptions, MAX_INPUT_BYTES};

const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// Makes the text of a shape for n repetitions.
type Shape = fn(usize) -> String;

/// Pathological shapes, by name. Each was slower than linear before.
fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("run of ${ in FROM", |n| {
            format!("FROM alpine\nFROM {}\n", "${".repeat(n))
        }),
        ("nested defaults in FROM", |n| {
            format!("FROM alpine\nFROM {}\n", "${a:-".repeat(n))
        }),
        ("many named stages", |n| {
            (0..n).map(|i| format!("FROM a AS s{i}\n")).collect()
        }),
        ("a chain of stages", |n| {
            let mut t = "FROM golang AS s0\n".to_string();
            for i in 0..n {
                t.push_str(&format!("FROM s{i} AS s{}\nENV A{i}=1\n", i + 1));
            }
            t + "RUN go build -o /x .\n"
        }),
        ("many RUN go build and ENV", |n| {
            format!(
                "FROM golang:1.26@{D} AS b\n{}FROM scratch\nCOPY --from=b /x /x\n",
                "ENV CGO_ENABLED=0\nRUN go build -o /x .\n".repeat(n)
            )
        }),
        ("many builds in one RUN", |n| {
            format!(
                "FROM golang:1.26@{D} AS b\nRUN {}true\nFROM scratch\nCOPY --from=b /x /x\n",
                "--mount=type=cache,target=/c ".repeat(n) + &"go build -o /x .; ".repeat(n)
            )
        }),
        ("many stages with builds and copies", |n| {
            let mut t = String::new();
            for i in 0..n {
                t.push_str(&format!(
                    "FROM golang AS b{i}\nCOPY . .\nRUN go build -o /x{i} .\n"
                ));
            }
            for i in 0..n {
                t.push_str(&format!("COPY --from=b{i} /x{i} /x{i}\n"));
            }
            t
        }),
        ("long ignore-file list", |n| {
            format!(
                "# kiln-lint ignore-file={}\nFROM golang\n{}",
                "KL001,".repeat(n),
                "RUN go build .\n".repeat(n)
            )
        }),
        ("apk add in many commands", |n| {
            format!("FROM alpine\nRUN {}true\n", "apk add git; ".repeat(n))
        }),
    ]
}

fn work_for(text: &str) -> usize {
    crate::work::take();
    // Some shapes are (correctly) parse errors; the work to find that out counts too.
    let _ = lint_str(text, None, &LintOptions::default());
    crate::work::take()
}

#[test]
fn issue_8_lint_work_is_linear_in_the_input() {
    for (name, make) in shapes() {
        let n = 1_500;
        let w: Vec<usize> = [n, 2 * n, 4 * n]
            .iter()
            .map(|&k| work_for(&make(k)))
            .collect();
        assert!(
            w[0] >= n,
            "{name}: only {} units of work for {n} repetitions",
            w[0]
        );
        // Linear work: going from 2n to 4n adds twice what going from n to 2n added. Quadratic
        // work adds four times as much; allow 2.5 times.
        let (first, second) = (w[1].saturating_sub(w[0]), w[2].saturating_sub(w[1]));
        assert!(
            4 * second <= 5 * (2 * first) + 256,
            "{name}: work {w:?} for {n}, {} and {} repetitions grows faster than linearly",
            2 * n,
            4 * n
        );
    }
}

#[test]
fn issue_8_inputs_over_the_limit_are_refused_with_the_limit_named() {
    let limit = MAX_INPUT_BYTES as usize;
    let body = |len: usize| {
        let head = "FROM alpine\n";
        format!("{head}{}\n", "#".repeat(len - head.len() - 1))
    };
    assert!(lint_str(&body(limit), None, &LintOptions::default()).is_ok());
    let e = lint_str(&body(limit + 1), None, &LintOptions::default()).unwrap_err();
    assert!(matches!(e, LintError::TooLarge { .. }), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    std::fs::write(&path, body(limit + 1)).unwrap();
    let e = lint(&path, &LintOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("larger than 1048576 bytes (1 MiB)")
            && text.contains(&format!("({} bytes)", limit + 1))
            && text.contains("hint:"),
        "{text}"
    );

    // A .dockerignore is bounded the same way.
    std::fs::write(&path, "FROM alpine\n").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "x\n".repeat(limit)).unwrap();
    let e = lint(&path, &LintOptions::default()).unwrap_err();
    assert!(
        matches!(&e, LintError::TooLarge { path, .. } if path.ends_with(".dockerignore")),
        "{e}"
    );
}

/// A file whose size the metadata does not tell is cut off at the limit instead of read forever.
#[cfg(unix)]
#[test]
fn issue_8_endless_input_is_refused_not_read_forever() {
    let e = lint(std::path::Path::new("/dev/zero"), &LintOptions::default()).unwrap_err();
    assert!(matches!(e, LintError::TooLarge { size: None, .. }), "{e}");
}

#[test]
fn issue_8_deeply_nested_from_is_a_parse_error() {
    let deep = format!(
        "FROM alpine\nFROM {}x{}\n",
        "${a:-".repeat(5_000),
        "}".repeat(5_000)
    );
    let e = lint_str(&deep, None, &LintOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, LintError::Parse { .. }) && text.contains("nested more than 64 levels"),
        "{text}"
    );
    // The message names the line, not the whole (possibly huge) instruction.
    assert!(text.len() < 300, "{text}");
}
