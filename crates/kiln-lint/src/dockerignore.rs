//! `.dockerignore` matching with BuildKit's semantics.
//!
//! This is not gitignore: every pattern is anchored at the context root (`foo` does not match
//! `a/foo`), `*` and `?` follow Go's `filepath.Match` (they never cross `/`), `**` matches any number
//! of directories, `!` re-includes, and the last matching pattern wins. A pattern that matches a
//! directory excludes everything below it.

use globset::{GlobBuilder, GlobMatcher};

/// One cleaned pattern line.
#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    matcher: GlobMatcher,
}

/// A parsed `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// A pattern that is not a valid glob.
#[derive(Debug, Clone, thiserror::Error)]
#[error(".dockerignore line {line}: invalid pattern {pattern:?}: {message}")]
pub struct PatternError {
    /// 1-based line of the pattern.
    pub line: usize,
    /// The pattern as written.
    pub pattern: String,
    /// Why the glob was rejected.
    pub message: String,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let mut patterns = vec![];
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(body);
            let cleaned = cleaned.trim_start_matches('/').to_string();
            if cleaned.is_empty() || cleaned == "." {
                continue;
            }
            let glob = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    line: n + 1,
                    pattern: raw.to_string(),
                    message: e.kind().to_string(),
                })?;
            patterns.push(Pattern {
                cleaned,
                exclusion,
                matcher: glob.compile_matcher(),
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out of the context.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        let prefixes: Vec<String> = (1..=parts.len()).map(|k| parts[..k].join("/")).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // A pattern that matches a parent directory matches everything inside it.
            if prefixes.iter().any(|pre| p.matcher.is_match(pre)) {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// The cleaned patterns in file order, `!` kept in front of exceptions.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.cleaned)
                } else {
                    p.cleaned.clone()
                }
            })
            .collect()
    }
}

/// Go's `filepath.Clean` for `/`-separated paths: drops `.` and empty elements, resolves `..`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = vec![];
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn di(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn anchored_at_root() {
        let d = di("foo\n");
        assert!(d.is_excluded("foo"));
        assert!(d.is_excluded("foo/bar.go"));
        assert!(!d.is_excluded("a/foo"));
    }

    #[test]
    fn star_does_not_cross_slash_but_double_star_does() {
        let d = di("*.md\n**/*.tmp\n");
        assert!(d.is_excluded("README.md"));
        assert!(!d.is_excluded("docs/x.md"));
        assert!(d.is_excluded("a/b/c.tmp"));
        assert!(d.is_excluded("c.tmp"));
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let d = di("*\n!go.mod\n!go.sum\n!cmd\n");
        assert!(d.is_excluded("Makefile"));
        assert!(!d.is_excluded("go.mod"));
        assert!(!d.is_excluded("cmd/app/main.go"));
        let d = di("!go.mod\n*\n");
        assert!(d.is_excluded("go.mod"));
    }

    #[test]
    fn cleaning_leading_slash_trailing_slash_dot_and_comments() {
        let d = di("# comment\n/.git/\n./dist\n  build  \n\n");
        assert!(d.is_excluded(".git"));
        assert!(d.is_excluded(".git/HEAD"));
        assert!(d.is_excluded("dist/app"));
        assert!(d.is_excluded("build"));
        assert_eq!(d.patterns(), [".git", "dist", "build"]);
    }

    #[test]
    fn question_mark_and_classes() {
        let d = di("file?.txt\n[a-c].log\n[^x].bin\n");
        assert!(d.is_excluded("file1.txt"));
        assert!(!d.is_excluded("file10.txt"));
        assert!(d.is_excluded("b.log"));
        assert!(!d.is_excluded("d.log"));
        assert!(d.is_excluded("y.bin"));
        assert!(!d.is_excluded("x.bin"));
    }

    #[test]
    fn invalid_pattern_is_an_error_with_line() {
        let e = DockerIgnore::parse("ok\n[unclosed\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn go_clean() {
        assert_eq!(clean("a/./b/../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
    }
}
