//! Unit tests of the `go build` rules: environment spellings, flags, stages and cache mounts.

use crate::{lint_str, LintOptions};

const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// Rule ids reported for a build stage `body` shipped in a scratch image.
fn ids(body: &str) -> Vec<String> {
    let text = format!(
        "FROM golang:1.26@{D} AS build\n{body}\nFROM scratch\nCOPY --from=build /app /app\nUSER 1\n"
    );
    let r = lint_str(&text, None, &LintOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    r.findings.into_iter().map(|f| f.rule).collect()
}

const GOOD_FLAGS: &str = "-trimpath -ldflags=\"-s -w\"";

#[test]
fn heredoc_scripts_are_analysed() {
    let found = ids(
        "ENV GOCACHE=/c\nRUN --mount=type=cache,target=/c <<EOF\nset -e\ngo build -o /app .\nEOF",
    );
    assert!(found.contains(&"KL003".to_string()), "{found:?}");
    assert!(found.contains(&"KL004".to_string()));
}

#[test]
fn cgo_disabled_in_every_spelling() {
    for body in [
        format!("RUN CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app ."),
        format!("ENV CGO_ENABLED=0\nRUN go build {GOOD_FLAGS} -o /app ."),
        format!("ARG CGO_ENABLED=0\nRUN go build {GOOD_FLAGS} -o /app ."),
        format!("RUN export CGO_ENABLED=0 && go build {GOOD_FLAGS} -o /app ."),
        format!("RUN go env -w CGO_ENABLED=0 && go build {GOOD_FLAGS} -o /app ."),
        format!("RUN env CGO_ENABLED=0 /usr/local/go/bin/go build {GOOD_FLAGS} -o /app ."),
        format!("RUN [\"sh\", \"-c\", \"CGO_ENABLED=0 go build {} -o /app .\"]", GOOD_FLAGS.replace('"', "\\\"")),
        "RUN go build -trimpath -ldflags '-s -w -linkmode external -extldflags \"-static\"' -o /app .".to_string(),
    ] {
        let found = ids(&body);
        assert!(!found.contains(&"KL003".to_string()), "{body}: {found:?}");
        assert!(!found.contains(&"KL004".to_string()), "{body}: {found:?}");
        assert!(!found.contains(&"KL005".to_string()), "{body}: {found:?}");
    }
}

#[test]
fn cgo_state_from_parent_stage_env() {
    let text = format!(
        "FROM golang:1.26@{D} AS base\nENV CGO_ENABLED=0\nFROM base AS build\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nUSER 1\n"
    );
    let r = lint_str(&text, None, &LintOptions::default()).unwrap();
    assert!(
        !r.findings.iter().any(|f| f.rule == "KL003"),
        "{:#?}",
        r.findings
    );
}

#[test]
fn ldflags_spellings() {
    for (flags, want_kl005) in [
        ("-ldflags=\"-s -w\"", false),
        ("-ldflags '-w -s -X main.v=1'", false),
        ("-ldflags=all=\"-s -w\"", false),
        ("--ldflags \"-s -w\"", false),
        // issue 9: -s implies -w since Go 1.22 (the builder here is golang:1.26).
        ("-ldflags \"-s\"", false),
        ("-ldflags=-s", false),
        ("-ldflags \"-s -w=0\"", true),
        ("-ldflags \"-w\"", true),
        ("-ldflags \"-X main.v=1\"", true),
        ("", true),
    ] {
        let found = ids(&format!(
            "RUN CGO_ENABLED=0 go build -trimpath {flags} -o /app ."
        ));
        assert_eq!(
            found.contains(&"KL005".to_string()),
            want_kl005,
            "{flags}: {found:?}"
        );
    }
}

#[test]
fn flags_after_the_package_do_not_count_and_a_is_found() {
    let found = ids("RUN CGO_ENABLED=0 go build -o /app . -trimpath");
    assert!(found.contains(&"KL004".to_string()));
    let found = ids(&format!(
        "RUN CGO_ENABLED=0 go build -a {GOOD_FLAGS} -o /app ."
    ));
    assert!(found.contains(&"KL006".to_string()));
    let found = ids(&format!(
        "RUN CGO_ENABLED=0 go build -o /app -a=false {GOOD_FLAGS} ."
    ));
    assert!(!found.contains(&"KL006".to_string()), "{found:?}");
}

#[test]
fn builds_not_shipped_are_not_held_to_release_flags() {
    let text = format!(
        "FROM golang:1.26@{D} AS tools\nRUN go build -o /gen ./tools/gen\nFROM golang:1.26@{D} AS build\nRUN CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app .\nFROM scratch\nCOPY --from=build /app /app\nUSER 1\n"
    );
    let r = lint_str(&text, None, &LintOptions::default()).unwrap();
    let on_line_2: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.line == 2)
        .map(|f| f.rule.as_str())
        .collect();
    assert_eq!(on_line_2, ["KL013"], "{:#?}", r.findings);
}

#[test]
fn cache_mount_must_match_gocache() {
    let base = format!("CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app .");
    let cases = [
        (format!("ENV GOCACHE=/root/.cache/go-build\nRUN --mount=type=cache,target=/root/.cache/go-build {base}"), false),
        // issue 9: root's default GOCACHE in the golang image is /root/.cache/go-build.
        (format!("RUN --mount=type=cache,target=/root/.cache/go-build {base}"), false),
        (format!("RUN --mount=type=cache,target=/root/.cache {base}"), false),
        (format!("USER 1000\nRUN --mount=type=cache,target=/root/.cache/go-build {base}"), false),
        (format!("USER 1000\nENV HOME=/home/u\nRUN --mount=type=cache,target=/root/.cache/go-build {base}"), true),
        (format!("USER 1000\nENV HOME=/home/u\nRUN --mount=type=cache,target=/home/u/.cache/go-build {base}"), false),
        (format!("ENV XDG_CACHE_HOME=/x\nRUN --mount=type=cache,target=/root/.cache/go-build {base}"), true),
        (format!("RUN {base}"), true),
        (format!("ENV GOCACHE=/gocache\nRUN --mount=type=cache,target=/root/.cache/go-build {base}"), true),
        (format!("RUN --mount=type=cache,target=/gc GOCACHE=/gc {base}"), false),
        (format!("ENV GOCACHE=/gc\nRUN {base}"), true),
    ];
    for (body, want) in cases {
        let found = ids(&body);
        assert_eq!(
            found.contains(&"KL013".to_string()),
            want,
            "{body}: {found:?}"
        );
    }
}

#[test]
fn vendored_builds_skip_module_order_rule() {
    let found = ids(&format!(
        "COPY . .\nRUN CGO_ENABLED=0 go build -mod=vendor {GOOD_FLAGS} -o /app ."
    ));
    assert!(!found.contains(&"KL002".to_string()), "{found:?}");
    let found = ids(&format!(
        "COPY . .\nRUN CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app ."
    ));
    assert!(found.contains(&"KL002".to_string()), "{found:?}");
}
