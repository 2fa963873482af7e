//! Variable expansion as the Dockerfile frontend does it, and a small shell lexer that is just
//! good enough to find `go build`, `apk add` and friends inside `RUN` scripts.

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}` and `${VAR+alt}`.
///
/// Unknown variables expand to the empty string, as in BuildKit. `escape` followed by `$` yields a
/// literal `$`. Single-quoted text is not expanded.
pub fn expand(text: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_single = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            in_single = !in_single;
            out.push(c);
            i += 1;
        } else if c == escape && !in_single && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if c == '$' && !in_single {
            let (value, used) = expand_one(&chars[i + 1..], escape, lookup);
            match value {
                Some(v) => out.push_str(&v),
                None => out.push('$'),
            }
            i += 1 + used;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Expands the variable reference right after a `$`; returns the value (None: not a reference)
/// and how many chars were consumed.
fn expand_one(
    rest: &[char],
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (Option<String>, usize) {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if rest.first() == Some(&'{') {
        let Some(close) = find_close_brace(rest) else {
            return (None, 0);
        };
        let inner: String = rest[1..close].iter().collect();
        let name_len = inner.chars().take_while(|&c| is_name(c)).count();
        let name = &inner[..name_len];
        let op = &inner[name_len..];
        let value = lookup(name);
        let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
        let result = if let Some(word) = op.strip_prefix(":-") {
            if set_nonempty {
                value.unwrap_or_default()
            } else {
                expand(word, escape, lookup)
            }
        } else if let Some(word) = op.strip_prefix('-') {
            value.unwrap_or_else(|| expand(word, escape, lookup))
        } else if let Some(word) = op.strip_prefix(":+") {
            if set_nonempty {
                expand(word, escape, lookup)
            } else {
                String::new()
            }
        } else if let Some(word) = op.strip_prefix('+') {
            if value.is_some() {
                expand(word, escape, lookup)
            } else {
                String::new()
            }
        } else {
            value.unwrap_or_default()
        };
        (Some(result), close + 1)
    } else {
        let len = rest.iter().take_while(|&&c| is_name(c)).count();
        if len == 0 {
            return (None, 0);
        }
        let name: String = rest[..len].iter().collect();
        (Some(lookup(&name).unwrap_or_default()), len)
    }
}

fn find_close_brace(rest: &[char]) -> Option<usize> {
    let mut depth = 0;
    for (i, &c) in rest.iter().enumerate() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
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

    #[test]
    fn expands_all_forms() {
        assert_eq!(expand("golang:$GO_VERSION", '\\', &env), "golang:1.26");
        assert_eq!(
            expand("golang:${GO_VERSION}-alpine", '\\', &env),
            "golang:1.26-alpine"
        );
        assert_eq!(expand("${NOPE:-1.22}", '\\', &env), "1.22");
        assert_eq!(expand("${EMPTY:-d}", '\\', &env), "d");
        assert_eq!(expand("${EMPTY-d}", '\\', &env), "");
        assert_eq!(expand("${GO_VERSION:+set}", '\\', &env), "set");
        assert_eq!(expand("${NOPE:+set}", '\\', &env), "");
        assert_eq!(expand("a$NOPE-b", '\\', &env), "a-b");
        assert_eq!(expand("\\$GO_VERSION", '\\', &env), "$GO_VERSION");
        assert_eq!(expand("'$GO_VERSION'", '\\', &env), "'$GO_VERSION'");
        assert_eq!(expand("cost $ 5", '\\', &env), "cost $ 5");
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
