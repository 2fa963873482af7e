use super::*;
use crate::ast::ImageRef;

fn p(text: &str) -> Dockerfile {
    match parse(text) {
        Ok(df) => df,
        Err(e) => panic!("parse failed: {e}\n{text}"),
    }
}

#[test]
fn keywords_are_case_insensitive_and_spans_are_1_based() {
    let df = p("from alpine:3.20\n\n  run echo hi\nCmd [\"/app\"]\n");
    let kws: Vec<_> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(kws, ["FROM", "RUN", "CMD"]);
    assert_eq!(df.instructions[1].span.start_line, 3);
    assert_eq!(df.instructions[1].span.start_col, 3);
    assert_eq!(df.instructions[2].args, Args::Exec(vec!["/app".into()]));
}

#[test]
fn directives_and_backtick_escape() {
    let df = p(
        "# syntax=docker/dockerfile:1\n# escape=`\nFROM alpine\nRUN echo a `\n  b\n# escape=\\\n",
    );
    assert_eq!(
        df.directives.get("syntax").map(String::as_str),
        Some("docker/dockerfile:1")
    );
    assert_eq!(df.escape, '`');
    assert_eq!(df.instructions[1].args.text(), "echo a   b");
    assert_eq!(df.instructions[1].span.end_line, 5);
}

#[test]
fn directive_after_comment_is_a_comment() {
    let df = p("# hello\n# escape=`\nFROM alpine\nRUN echo a \\\n b\n");
    assert_eq!(df.escape, '\\');
    assert!(df.directives.is_empty());
    assert_eq!(df.instructions[1].args.text(), "echo a  b");
}

#[test]
fn invalid_escape_directive_is_an_error() {
    let e = parse("# escape=x\nFROM alpine\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("escape"));
}

#[test]
fn continuations_skip_comments_and_blank_lines() {
    let df = p("FROM alpine\nRUN apk add \\\n# a comment\n\n    git \\\n    curl\nUSER 1000\n");
    let run = &df.instructions[1];
    assert_eq!(run.args.text(), "apk add     git     curl");
    assert_eq!((run.span.start_line, run.span.end_line), (2, 6));
    assert_eq!(df.instructions[2].span.start_line, 7);
}

#[test]
fn exec_form_vs_shell_form() {
    let df =
        p("FROM alpine\nENTRYPOINT [\"/app\", \"--port\", \"8080\"]\nCMD echo [x\nRUN [ -f x ]\n");
    assert_eq!(
        df.instructions[1].args,
        Args::Exec(vec!["/app".into(), "--port".into(), "8080".into()])
    );
    assert_eq!(df.instructions[2].args, Args::Shell("echo [x".into()));
    // Not valid JSON: shell form, as BuildKit does.
    assert_eq!(df.instructions[3].args, Args::Shell("[ -f x ]".into()));
}

#[test]
fn heredocs_run_copy_and_variants() {
    let text = "FROM alpine\nRUN <<EOF\nset -e\ngo build .\nEOF\nCOPY <<-\"CONF\" /etc/app.conf\n\tkey=$v\n\tCONF\nRUN <<A cat > /a && <<'B' cat > /b\na1\nA\nb1\nB\nUSER 1\n";
    let df = p(text);
    let run = &df.instructions[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].content, "set -e\ngo build .\n");
    assert_eq!((run.span.start_line, run.span.end_line), (2, 5));
    let copy = &df.instructions[2];
    assert!(copy.heredocs[0].strip_tabs && copy.heredocs[0].quoted);
    assert_eq!(copy.heredocs[0].content, "key=$v\n");
    assert_eq!(copy.args.text(), "<<-\"CONF\" /etc/app.conf");
    let two = &df.instructions[3];
    assert_eq!(two.heredocs.len(), 2);
    assert_eq!(two.heredocs[0].delimiter, "A");
    assert!(!two.heredocs[0].quoted);
    assert_eq!(two.heredocs[1].content, "b1\n");
    assert!(two.heredocs[1].quoted);
    assert_eq!(two.span.end_line, 13);
    assert_eq!(df.instructions[4].span.start_line, 14);
}

#[test]
fn heredoc_marker_inside_quotes_is_not_a_heredoc() {
    let df = p("FROM alpine\nRUN echo '<<EOF'\n");
    assert!(df.instructions[1].heredocs.is_empty());
}

#[test]
fn unterminated_heredoc_is_an_error() {
    let e = parse("FROM alpine\nRUN <<EOF\necho hi\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("EOF"), "{e}");
}

#[test]
fn stages_names_platform_and_parents() {
    let df = p("FROM --platform=$BUILDPLATFORM golang:1.26 AS Build\nRUN true\nFROM build AS test\nFROM scratch\nCOPY --from=build /out /\n");
    assert_eq!(df.stages.len(), 3);
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
    assert_eq!(df.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(df.stages[1].parent_stage, Some(0));
    assert_eq!(df.stages[0].instructions, vec![0, 1]);
    assert_eq!(df.instructions[4].flag("from"), Some("build"));
    assert_eq!(df.instructions[4].stage, Some(2));
    assert_eq!(df.root_image(&df.stages[1]).name, "golang");
}

#[test]
fn flags_with_mount_kv_pairs() {
    let df = p("FROM golang\nRUN --mount=type=cache,target=/root/.cache/go-build --network=none go build .\nCOPY --chown=65532:65532 --link a b\n");
    let run = &df.instructions[1];
    assert_eq!(run.flags.len(), 2);
    let kv = run.flags[0].kv_pairs();
    assert_eq!(kv.get("type").map(String::as_str), Some("cache"));
    assert_eq!(
        kv.get("target").map(String::as_str),
        Some("/root/.cache/go-build")
    );
    assert_eq!(run.args.text(), "go build .");
    let copy = &df.instructions[2];
    assert_eq!(copy.flag("chown"), Some("65532:65532"));
    assert_eq!(copy.flags[1].value, None);
}

#[test]
fn global_arg_expansion_in_from() {
    let df = p("ARG GO_VERSION=1.26\nARG BASE\nFROM golang:${GO_VERSION} AS b\nFROM ${BASE:-alpine}:$GO_VERSION\n");
    assert_eq!(df.stages[0].base, "golang:1.26");
    assert_eq!(df.stages[0].base_raw, "golang:${GO_VERSION}");
    assert_eq!(df.stages[1].base, "alpine:1.26");
    let mut args = BTreeMap::new();
    args.insert("GO_VERSION".to_string(), "1.27".to_string());
    let df = parse_with_args("ARG GO_VERSION=1.26\nFROM golang:$GO_VERSION\n", &args).unwrap();
    assert_eq!(df.stages[0].base, "golang:1.27");
}

#[test]
fn image_refs() {
    let r = ImageRef::parse("localhost:5000/team/app:1.0@sha256:abc");
    assert_eq!(r.name, "localhost:5000/team/app");
    assert_eq!(r.tag.as_deref(), Some("1.0"));
    assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
    let r = ImageRef::parse("localhost:5000/app");
    assert_eq!((r.name.as_str(), r.tag), ("localhost:5000/app", None));
    assert_eq!(
        ImageRef::parse("gcr.io/distroless/static").short_name(),
        "static"
    );
}

#[test]
fn pragmas_attach_to_next_instruction_and_file() {
    let df = p("# kiln-lint ignore-file=kl010\nFROM alpine\n# kiln-lint ignore=KL003, KL007\n# other comment\nRUN true\nUSER 1\n");
    assert_eq!(df.ignored_rules_file, ["KL010"]);
    assert_eq!(df.instructions[1].ignored_rules, ["KL003", "KL007"]);
    assert!(df.instructions[2].ignored_rules.is_empty());
}

#[test]
fn env_and_arg_pairs() {
    assert_eq!(
        env_pairs("A=1 B=\"two words\"").unwrap(),
        [("A".into(), "1".into()), ("B".into(), "two words".into())]
    );
    assert_eq!(
        env_pairs("GOPATH /go path").unwrap(),
        [("GOPATH".into(), "/go path".into())]
    );
    assert_eq!(
        arg_pairs("X=1 Y").unwrap(),
        [("X".into(), Some("1".into())), ("Y".into(), None)]
    );
}

#[test]
fn malformed_inputs_are_errors_with_lines() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "no FROM"),
        ("# just a comment\n", 1, "no FROM"),
        ("FROM alpine\nFROBNICATE x\n", 2, "unknown instruction"),
        ("RUN echo\nFROM alpine\n", 1, "before the first FROM"),
        ("FROM\n", 1, "FROM requires"),
        ("FROM a AS\n", 1, "FROM requires"),
        ("FROM alpine\nCOPY onlyone\n", 2, "two arguments"),
        ("FROM alpine\n\nENV A=\"open\n", 3, "unterminated"),
        ("FROM alpine\nUSER\n", 2, "requires at least one"),
        ("ARG B\nFROM $B\n", 2, "empty image"),
        ("# syntax=a\n# syntax=b\nFROM x\n", 2, "twice"),
    ];
    for (text, line, needle) in cases {
        match parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => {
                assert_eq!(e.line, *line, "{text:?}: {e}");
                assert!(e.message.contains(needle), "{text:?}: {e}");
            }
        }
    }
}

#[test]
fn crlf_and_bom_are_accepted() {
    let df = p("\u{feff}FROM alpine\r\nRUN echo a \\\r\n  b\r\n");
    assert_eq!(df.instructions[1].args.text(), "echo a   b");
}
