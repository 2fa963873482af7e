//! A hand-written Dockerfile parser following BuildKit's rules: parser directives, line
//! continuations (skipping comments and blank lines inside them), exec vs shell form, heredocs,
//! flags and stages.

use crate::ast::{Args, Dockerfile, Flag, Heredoc, Instruction, Span, Stage};
use crate::shell::{expand, split_words};
use std::collections::BTreeMap;

/// A Dockerfile that cannot be parsed, with the 1-based line (and column) where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("line {line}:{column}: {message}")]
pub struct ParseError {
    /// 1-based line of the offending construct.
    pub line: usize,
    /// 1-based column (1 when the whole line is at fault).
    pub column: usize,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

fn err(line: usize, column: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        column,
        message: message.into(),
    }
}

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Instructions whose arguments may be a JSON array.
const EXEC_FORM: &[&str] = &[
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "COPY",
    "ADD",
    "VOLUME",
    "HEALTHCHECK",
];

/// Parses Dockerfile text. Global `ARG` defaults are used to expand `FROM` lines.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    parse_with_args(text, &BTreeMap::new())
}

/// Like [`parse`], with `--build-arg` style overrides for global `ARG`s.
pub fn parse_with_args(
    text: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();

    let (directives, mut i) = parse_directives(&lines)?;
    let escape = match directives.get("escape").map(String::as_str) {
        None | Some("\\") => '\\',
        Some("`") => '`',
        Some(other) => {
            return Err(err(
                1,
                1,
                format!("invalid escape directive {other:?}: use `\\` or a backtick"),
            ))
        }
    };

    let mut df = Dockerfile {
        directives,
        escape,
        instructions: vec![],
        stages: vec![],
        global_args: BTreeMap::new(),
        ignored_rules_file: vec![],
    };
    let mut pending_ignores: Vec<String> = vec![];
    // Stage names seen so far (first one wins), so `FROM <stage>` is one lookup, not a scan of
    // every earlier stage.
    let mut stage_names: BTreeMap<String, usize> = BTreeMap::new();

    while i < lines.len() {
        crate::work::tick(1);
        let line = lines[i];
        let trimmed = line.trim();
        if trimmed.is_empty() {
            i += 1;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            match pragma(comment) {
                Some(Pragma::Next(ids)) => pending_ignores.extend(ids),
                Some(Pragma::File(ids)) => df.ignored_rules_file.extend(ids),
                None => {}
            }
            i += 1;
            continue;
        }

        let start_line = i + 1;
        let start_col = line.len() - line.trim_start().len() + 1;
        let (logical, next) = join_continuations(&lines, i, escape);
        i = next;
        let mut end_line = i;

        let logical = logical.trim();
        let (kw, rest) = match logical.find(char::is_whitespace) {
            Some(p) => (&logical[..p], logical[p..].trim_start()),
            None => (logical, ""),
        };
        let keyword = kw.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(err(
                start_line,
                start_col,
                format!("unknown instruction: {kw} (is a line continuation `{escape}` missing on the previous line?)"),
            ));
        }

        let mut heredocs = vec![];
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for marker in heredoc_markers(rest) {
                let (doc, after) = read_heredoc(&lines, i, marker, start_line)?;
                i = after;
                end_line = doc.span.end_line;
                heredocs.push(doc);
            }
        }

        let (flags, args_text) = split_flags(rest);
        let args = if EXEC_FORM.contains(&keyword.as_str()) && args_text.starts_with('[') {
            match serde_json::from_str::<Vec<String>>(args_text) {
                Ok(v) => Args::Exec(v),
                // BuildKit falls back to shell form when the JSON does not parse.
                Err(_) => Args::Shell(args_text.to_string()),
            }
        } else {
            Args::Shell(args_text.to_string())
        };

        let span = Span {
            start_line,
            end_line,
            start_col,
        };
        let mut ins = Instruction {
            keyword,
            flags,
            args,
            heredocs,
            span,
            stage: None,
            ignored_rules: std::mem::take(&mut pending_ignores),
        };
        validate(&ins)?;
        add_instruction(&mut df, &mut ins, build_args, &mut stage_names)?;
        df.instructions.push(ins);
    }

    if df.stages.is_empty() {
        let line = df.instructions.first().map_or(1, |i| i.span.start_line);
        return Err(err(
            line,
            1,
            "no FROM instruction: a Dockerfile needs at least one build stage",
        ));
    }
    Ok(df)
}

/// Reads `# key=value` directives at the very top; they end at the first other line.
fn parse_directives(lines: &[&str]) -> Result<(BTreeMap<String, String>, usize), ParseError> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(body) = lines[i].trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = body.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        if out.insert(key.clone(), value.trim().to_string()).is_some() {
            return Err(err(
                i + 1,
                1,
                format!("parser directive {key:?} given twice"),
            ));
        }
        i += 1;
    }
    Ok((out, i))
}

enum Pragma {
    Next(Vec<String>),
    File(Vec<String>),
}

/// Recognises `kiln-lint ignore=KL001,KL002` and `kiln-lint ignore-file=...` comments.
fn pragma(comment: &str) -> Option<Pragma> {
    let rest = comment.trim().strip_prefix("kiln-lint")?.trim_start();
    let ids = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(list) = rest.strip_prefix("ignore-file=") {
        Some(Pragma::File(ids(list)))
    } else {
        rest.strip_prefix("ignore=")
            .map(|list| Pragma::Next(ids(list)))
    }
}

/// Joins a line ending in the escape character with the following ones. Comment lines and blank
/// lines inside a continuation are dropped, as BuildKit does. Returns the text and the index of the
/// first line after it.
fn join_continuations(lines: &[&str], start: usize, escape: char) -> (String, usize) {
    let mut out = String::new();
    let mut i = start;
    let mut cur = lines[i];
    loop {
        i += 1;
        let t = cur.trim_end();
        let Some(stripped) = t.strip_suffix(escape) else {
            out.push_str(cur);
            return (out, i);
        };
        out.push_str(stripped);
        // Skip comments and blank lines that sit inside the continuation.
        while i < lines.len() {
            let n = lines[i].trim_start();
            if n.is_empty() || n.starts_with('#') {
                i += 1;
            } else {
                break;
            }
        }
        if i >= lines.len() {
            return (out, i);
        }
        cur = lines[i];
    }
}

struct Marker {
    delimiter: String,
    strip_tabs: bool,
    quoted: bool,
}

/// Finds `<<EOF`, `<<-EOF`, `<<"EOF"` and `<<'EOF'` markers outside quotes, in order.
fn heredoc_markers(text: &str) -> Vec<Marker> {
    let b: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c == '<' && b.get(i + 1) == Some(&'<') && b.get(i + 2) != Some(&'<') {
            let mut j = i + 2;
            let strip_tabs = b.get(j) == Some(&'-');
            if strip_tabs {
                j += 1;
            }
            let q = b.get(j).copied().filter(|&c| c == '"' || c == '\'');
            if q.is_some() {
                j += 1;
            }
            let start = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], '_' | '.' | '-')) {
                j += 1;
            }
            let word: String = b[start..j].iter().collect();
            let closed = match q {
                Some(q) => b.get(j) == Some(&q),
                None => true,
            };
            if !word.is_empty() && closed {
                out.push(Marker {
                    delimiter: word,
                    strip_tabs,
                    quoted: q.is_some(),
                });
                i = j + usize::from(q.is_some());
                continue;
            }
        }
        i += 1;
    }
    out
}

fn read_heredoc(
    lines: &[&str],
    start: usize,
    m: Marker,
    instruction_line: usize,
) -> Result<(Heredoc, usize), ParseError> {
    let mut content = String::new();
    let mut i = start;
    while i < lines.len() {
        let line = if m.strip_tabs {
            lines[i].trim_start_matches('\t')
        } else {
            lines[i]
        };
        if line == m.delimiter {
            let doc = Heredoc {
                delimiter: m.delimiter,
                strip_tabs: m.strip_tabs,
                quoted: m.quoted,
                content,
                span: Span {
                    start_line: start + 1,
                    end_line: i + 1,
                    start_col: 1,
                },
            };
            return Ok((doc, i + 1));
        }
        content.push_str(line);
        content.push('\n');
        i += 1;
    }
    Err(err(
        instruction_line,
        1,
        format!(
            "unterminated heredoc: no line `{}` closes the here-document opened here",
            m.delimiter
        ),
    ))
}

/// Takes leading `--name[=value]` words off the argument text.
fn split_flags(rest: &str) -> (Vec<Flag>, &str) {
    let mut flags = vec![];
    let mut rest = rest.trim_start();
    while let Some(body) = rest.strip_prefix("--") {
        let end = body.find(char::is_whitespace).unwrap_or(body.len());
        let word = &body[..end];
        if word.is_empty() {
            // A bare `--` ends flag parsing.
            rest = body[end..].trim_start();
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(unquote(v).to_string())),
            None => (word, None),
        };
        flags.push(Flag {
            name: name.to_ascii_lowercase(),
            value,
        });
        rest = body[end..].trim_start();
    }
    (flags, rest)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Per-instruction argument checks that BuildKit also rejects.
fn validate(ins: &Instruction) -> Result<(), ParseError> {
    let line = ins.span.start_line;
    let col = ins.span.start_col;
    let text = ins.args.text();
    // Quotes matter only where the frontend itself splits words; RUN text goes to the shell.
    let splits_words = matches!(
        ins.keyword.as_str(),
        "COPY" | "ADD" | "ENV" | "ARG" | "LABEL" | "FROM"
    );
    let words = match &ins.args {
        Args::Exec(v) => v.clone(),
        Args::Shell(s) if splits_words => {
            split_words(s).map_err(|e| err(line, col, format!("{}: {e}", ins.keyword)))?
        }
        Args::Shell(s) => s.split_whitespace().map(str::to_string).collect(),
    };
    match ins.keyword.as_str() {
        "COPY" | "ADD" if words.len() < 2 && ins.heredocs.is_empty() => Err(err(
            line,
            col,
            format!(
                "{} requires at least two arguments: a source and a destination",
                ins.keyword
            ),
        )),
        "RUN" | "USER" | "WORKDIR" | "ARG" | "ENV" | "EXPOSE" | "SHELL" | "LABEL"
            if text.trim().is_empty() && ins.heredocs.is_empty() =>
        {
            Err(err(
                line,
                col,
                format!("{} requires at least one argument", ins.keyword),
            ))
        }
        _ => Ok(()),
    }
}

/// Attaches an instruction to its stage, records stages and global ARGs.
fn add_instruction(
    df: &mut Dockerfile,
    ins: &mut Instruction,
    build_args: &BTreeMap<String, String>,
    stage_names: &mut BTreeMap<String, usize>,
) -> Result<(), ParseError> {
    let idx = df.instructions.len();
    let line = ins.span.start_line;
    let col = ins.span.start_col;
    if ins.keyword == "FROM" {
        let words = split_words(&ins.args.text()).map_err(|e| err(line, col, e))?;
        let (raw, name) = match words.as_slice() {
            [image] => (image.clone(), None),
            [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                (image.clone(), Some(name.to_ascii_lowercase()))
            }
            _ => {
                return Err(err(
                    line,
                    col,
                    "FROM requires either one or three arguments: `FROM image [AS name]`",
                ))
            }
        };
        let lookup = |k: &str| -> Option<String> {
            build_args
                .get(k)
                .cloned()
                .or_else(|| df.global_args.get(k).cloned().flatten())
        };
        let base = expand(&raw, df.escape, &lookup)
            .map_err(|e| err(line, col, format!("FROM: {e} (kiln lint's limit)")))?;
        if base.is_empty() {
            return Err(err(
                line,
                col,
                format!("FROM {raw} expands to an empty image name: give the ARG a default"),
            ));
        }
        let parent_stage = stage_names.get(&base.to_ascii_lowercase()).copied();
        let index = df.stages.len();
        if let Some(n) = &name {
            stage_names.entry(n.clone()).or_insert(index);
        }
        df.stages.push(Stage {
            index,
            name,
            base_raw: raw,
            base,
            parent_stage,
            platform: ins.flag("platform").map(str::to_string),
            from_instruction: idx,
            instructions: vec![idx],
        });
        ins.stage = Some(index);
        return Ok(());
    }
    match df.stages.last_mut() {
        Some(stage) => {
            stage.instructions.push(idx);
            ins.stage = Some(stage.index);
        }
        None if ins.keyword == "ARG" => {
            for (k, v) in arg_pairs(&ins.args.text()).map_err(|e| err(line, col, e))? {
                df.global_args.insert(k, v);
            }
        }
        None => {
            return Err(err(
                line,
                col,
                format!(
                    "{} before the first FROM: only ARG may come before FROM",
                    ins.keyword
                ),
            ))
        }
    }
    Ok(())
}

/// `ARG A=1 B` -> [(A, Some(1)), (B, None)].
pub(crate) fn arg_pairs(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    Ok(split_words(text)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect())
}

/// `ENV A=1 B="2 3"` or legacy `ENV A 1 2` -> pairs.
pub(crate) fn env_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_words(text)?;
    match words.first() {
        Some(first) if !first.contains('=') => {
            // Legacy form: the rest of the line (after the raw first word) is the value.
            let raw = text.trim_start();
            let value = raw
                .find(char::is_whitespace)
                .map_or("", |p| raw[p..].trim());
            Ok(vec![(first.clone(), unquote(value).to_string())])
        }
        _ => Ok(words
            .into_iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (w, String::new()),
            })
            .collect()),
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
