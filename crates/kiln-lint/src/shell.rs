//! Variable expansion as the Dockerfile frontend does it, and a small shell lexer that is just
//! good enough to find `go build`, `apk add` and friends inside `RUN` scripts.

/// How deeply `${VAR:-${OTHER:-...}}` may nest. Real Dockerfiles nest two or three levels; the
/// bound keeps a hostile file from exhausting the stack through recursion.
pub const MAX_EXPANSION_DEPTH: usize = 64;

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}` and `${VAR+alt}`.
///
/// Unknown variables expand to the empty string, as in BuildKit. `escape` followed by `$` yields a
/// literal `$`. Single-quoted text is not expanded. Runs in time linear in `text` (plus the size of
/// the substituted values); references nested deeper than [`MAX_EXPANSION_DEPTH`] are an error.
pub fn expand(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    Expander::new(text, escape, lookup).run()
}

/// One expansion over one text. The matching `}` of every `{` is found once, up front, with a
/// stack: looking for it anew at every `${` is what made a long run of unclosed `${` quadratic.
/// Nested default words are expanded in place (index ranges into the same buffer), never copied
/// out and re-scanned, so each character is visited a bounded number of times.
struct Expander<'a> {
    chars: Vec<char>,
    /// For each index holding `{`, the index of its matching `}`, if any.
    close: Vec<Option<usize>>,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Characters visited, observable in tests to prove the work is linear.
    steps: usize,
}

impl<'a> Expander<'a> {
    fn new(text: &str, escape: char, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let mut close = vec![None; chars.len()];
        let mut open: Vec<usize> = Vec::new();
        for (i, &c) in chars.iter().enumerate() {
            match c {
                '{' => open.push(i),
                '}' => {
                    if let Some(o) = open.pop() {
                        close[o] = Some(i);
                    }
                }
                _ => {}
            }
        }
        Expander {
            chars,
            close,
            escape,
            lookup,
            steps: 0,
        }
    }

    fn run(&mut self) -> Result<String, String> {
        let mut out = String::with_capacity(self.chars.len());
        self.expand_range(0, self.chars.len(), 0, &mut out)?;
        Ok(out)
    }

    /// Expands `chars[start..end]` into `out`. Quoting state starts fresh in every range, as it
    /// does for a default word.
    fn expand_range(
        &mut self,
        start: usize,
        end: usize,
        depth: usize,
        out: &mut String,
    ) -> Result<(), String> {
        if depth > MAX_EXPANSION_DEPTH {
            return Err(format!(
                "variable references are nested more than {MAX_EXPANSION_DEPTH} levels deep"
            ));
        }
        let mut i = start;
        let mut in_single = false;
        while i < end {
            self.steps += 1;
            crate::work::tick(1);
            let c = self.chars[i];
            let next = (i + 1 < end).then(|| self.chars[i + 1]);
            if c == '\'' {
                in_single = !in_single;
                out.push(c);
                i += 1;
            } else if c == self.escape && !in_single && next == Some('$') {
                out.push('$');
                i += 2;
            } else if c == '$' && !in_single {
                match self.reference(i + 1, end, depth, out)? {
                    Some(used) => i += 1 + used,
                    None => {
                        out.push('$');
                        i += 1;
                    }
                }
            } else {
                out.push(c);
                i += 1;
            }
        }
        Ok(())
    }

    /// Expands the variable reference starting at `at` (right after a `$`, within `..end`) into
    /// `out`; returns how many chars it used, or `None` when this is not a reference.
    fn reference(
        &mut self,
        at: usize,
        end: usize,
        depth: usize,
        out: &mut String,
    ) -> Result<Option<usize>, String> {
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if at >= end {
            return Ok(None);
        }
        if self.chars[at] != '{' {
            let len = self.chars[at..end]
                .iter()
                .take_while(|&&c| is_name(c))
                .count();
            self.steps += len;
            if len == 0 {
                return Ok(None);
            }
            let name: String = self.chars[at..at + len].iter().collect();
            out.push_str(&(self.lookup)(&name).unwrap_or_default());
            return Ok(Some(len));
        }
        // A `}` beyond `end` cannot belong to this `{`: brace pairs nest, and `end` is the
        // closing brace of an enclosing reference (or the end of the text).
        let Some(close) = self.close[at].filter(|&c| c < end) else {
            return Ok(None);
        };
        let name_start = at + 1;
        let name_len = self.chars[name_start..close]
            .iter()
            .take_while(|&&c| is_name(c))
            .count();
        self.steps += name_len;
        let name: String = self.chars[name_start..name_start + name_len]
            .iter()
            .collect();
        let op_at = name_start + name_len;
        let op = |k: usize| (op_at + k < close).then(|| self.chars[op_at + k]);
        let value = (self.lookup)(&name);
        let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
        match (op(0), op(1)) {
            (Some(':'), Some('-')) if set_nonempty => out.push_str(&value.unwrap_or_default()),
            (Some(':'), Some('-')) => self.expand_range(op_at + 2, close, depth + 1, out)?,
            (Some('-'), _) => match value {
                Some(v) => out.push_str(&v),
                None => self.expand_range(op_at + 1, close, depth + 1, out)?,
            },
            (Some(':'), Some('+')) if set_nonempty => {
                self.expand_range(op_at + 2, close, depth + 1, out)?
            }
            (Some(':'), Some('+')) => {}
            (Some('+'), _) if value.is_some() => {
                self.expand_range(op_at + 1, close, depth + 1, out)?
            }
            (Some('+'), _) => {}
            _ => out.push_str(&value.unwrap_or_default()),
        }
        Ok(Some(close - at + 1))
    }
}

/// Splits a shell script into simple commands (lists of words with quotes removed).
///
/// Separators are `;`, `&&`, `||`, `|`, `&`, newlines and parentheses. Backslash-newline joins
/// lines; `#` at the start of a word starts a comment. This is not a shell: it only has to see
/// the words that rules look at.
pub fn commands(script: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![];
    let mut cmd: Vec<String> = vec![];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let flush_word = |word: &mut String, in_word: &mut bool, cmd: &mut Vec<String>| {
        if *in_word {
            cmd.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(n) => {
                    word.push(n);
                    in_word = true;
                }
                None => {}
            },
            '\'' => {
                in_word = true;
                for n in chars.by_ref() {
                    if n == '\'' {
                        break;
                    }
                    word.push(n);
                }
            }
            '"' => {
                in_word = true;
                while let Some(n) = chars.next() {
                    match n {
                        '"' => break,
                        '\\' => {
                            if let Some(&m) = chars.peek() {
                                if matches!(m, '"' | '\\' | '$' | '`') {
                                    word.push(m);
                                    chars.next();
                                } else if m == '\n' {
                                    chars.next();
                                } else {
                                    word.push('\\');
                                }
                            }
                        }
                        _ => word.push(n),
                    }
                }
            }
            '#' if !in_word => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                flush_word(&mut word, &mut in_word, &mut cmd);
                if !cmd.is_empty() {
                    out.push(std::mem::take(&mut cmd));
                }
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                flush_word(&mut word, &mut in_word, &mut cmd);
                if !cmd.is_empty() {
                    out.push(std::mem::take(&mut cmd));
                }
            }
            c if c.is_whitespace() => flush_word(&mut word, &mut in_word, &mut cmd),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    flush_word(&mut word, &mut in_word, &mut cmd);
    if !cmd.is_empty() {
        out.push(cmd);
    }
    out
}

/// Splits words on whitespace honouring single and double quotes (quotes removed): used for
/// `-ldflags` values and `ENV`/`ARG` arguments.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                let mut closed = false;
                while let Some(n) = chars.next() {
                    if n == c {
                        closed = true;
                        break;
                    }
                    if n == '\\' && c == '"' {
                        if let Some(m) = chars.next() {
                            word.push(m);
                        }
                        continue;
                    }
                    word.push(n);
                }
                if !closed {
                    return Err(format!("unterminated {c} quote"));
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "GO_VERSION" => Some("1.26".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn x(text: &str) -> String {
        match expand(text, '\\', &env) {
            Ok(s) => s,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn expands_all_forms() {
        assert_eq!(x("golang:$GO_VERSION"), "golang:1.26");
        assert_eq!(x("golang:${GO_VERSION}-alpine"), "golang:1.26-alpine");
        assert_eq!(x("${NOPE:-1.22}"), "1.22");
        assert_eq!(x("${EMPTY:-d}"), "d");
        assert_eq!(x("${EMPTY-d}"), "");
        assert_eq!(x("${GO_VERSION:+set}"), "set");
        assert_eq!(x("${NOPE:+set}"), "");
        assert_eq!(x("a$NOPE-b"), "a-b");
        assert_eq!(x("\\$GO_VERSION"), "$GO_VERSION");
        assert_eq!(x("'$GO_VERSION'"), "'$GO_VERSION'");
        assert_eq!(x("cost $ 5"), "cost $ 5");
    }

    #[test]
    fn nested_words_and_unclosed_braces_expand_as_before() {
        assert_eq!(x("${NOPE:-${ALSO:-${GO_VERSION}}}"), "1.26");
        assert_eq!(x("${GO_VERSION:-${NOPE:-x}}"), "1.26");
        assert_eq!(x("${NOPE+${GO_VERSION}}"), "");
        assert_eq!(x("${EMPTY+a${GO_VERSION}b}"), "a1.26b");
        // An unclosed `${` is literal text; a later complete reference still expands.
        assert_eq!(x("${a ${GO_VERSION}"), "${a 1.26");
        assert_eq!(x("x${"), "x${");
        assert_eq!(x("${NOPE:-'$GO_VERSION'}"), "'$GO_VERSION'");
        assert_eq!(x("${NOPE:-\\$GO_VERSION}"), "$GO_VERSION");
        assert_eq!(x("${NOPE:-a}}"), "a}");
    }

    /// Characters visited while expanding `text`.
    fn steps(text: &str) -> usize {
        let mut e = Expander::new(text, '\\', &env);
        let _ = e.run();
        e.steps
    }

    #[test]
    fn issue_8_expansion_work_is_linear_in_the_input() {
        // 640 KB of `${` took 34 s: every `$` searched the rest of the text for its `}`. Doubling
        // the input must (about) double the work, and the work stays a small multiple of the size.
        for unit in ["${", "${a:-", "$${", "${NOPE:-${", "${GO_VERSION}${"] {
            let small = unit.repeat(50_000);
            let large = unit.repeat(100_000);
            let (s, l) = (steps(&small), steps(&large));
            assert!(
                l <= 2 * s + unit.len() && l <= 3 * large.chars().count(),
                "{unit:?}: {s} steps for {} chars, {l} for {}",
                small.len(),
                large.len()
            );
        }
    }

    #[test]
    fn issue_8_deep_nesting_is_an_error_not_a_stack_overflow() {
        let ok = format!(
            "{}x{}",
            "${NOPE:-".repeat(MAX_EXPANSION_DEPTH),
            "}".repeat(MAX_EXPANSION_DEPTH)
        );
        assert_eq!(x(&ok), "x");
        let deep = format!("{}x{}", "${NOPE:-".repeat(200_000), "}".repeat(200_000));
        let e = expand(&deep, '\\', &env).unwrap_err();
        assert!(e.contains("nested more than"), "{e}");
    }

    #[test]
    fn splits_commands_and_quotes() {
        let c = commands(
            "apk add --no-cache git && CGO_ENABLED=0 go build -ldflags=\"-s -w\" -o /out ./cmd/x; echo 'a b' # c\n",
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c[0], ["apk", "add", "--no-cache", "git"]);
        assert_eq!(c[1][3], "-ldflags=-s -w");
        assert_eq!(c[2], ["echo", "a b"]);
        let c = commands("go build \\\n  -trimpath .");
        assert_eq!(c, [["go", "build", "-trimpath", "."]]);
    }

    #[test]
    fn splits_words() {
        assert_eq!(
            split_words("-w -s -X 'main.v=1 2'").unwrap_or_default(),
            ["-w", "-s", "-X", "main.v=1 2"]
        );
        assert!(split_words("A=\"unterminated").is_err());
    }
}
