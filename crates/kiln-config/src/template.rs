//! `{{.Version}}`-style placeholders in ldflags, as GoReleaser users write them.
//!
//! Everything a template can read is resolved once per command ([`TemplateVars`]): git state,
//! the build date and the process environment. The rendered text is part of the `go build`
//! arguments, and those are keyed, so a value a template reads (`{{.Env.NAME}}` included) changes
//! the cache key exactly when it changes the binary.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::env::BuildDate;

/// Values available to ldflags templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TemplateVars {
    /// `git describe --tags --always --dirty`, or `dev` outside git: `{{.GitDescribe}}` as is,
    /// `{{.Version}}` without a leading `v` (see [`TemplateVars::version`]).
    #[serde(rename = "git_describe")]
    pub version: String,
    /// Full commit hash, or `none`.
    pub commit: String,
    /// RFC 3339 UTC date of the build ([`BuildDate`]: `SOURCE_DATE_EPOCH`, else the commit time,
    /// else 1970).
    pub date: String,
    /// The same date as seconds since 1970 (`{{.Timestamp}}`).
    pub timestamp: u64,
    /// The git tag at `HEAD`, else the nearest tag reachable from it, else empty (`{{.Tag}}`).
    pub tag: String,
    /// The checked-out branch, empty on a detached `HEAD` or outside git (`{{.Branch}}`).
    pub branch: String,
    /// The process environment, as resolved once by `kiln_config::Env` (`{{.Env.NAME}}`). Never
    /// serialised: it holds secrets, and what a template uses is already in the rendered text.
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
}

impl TemplateVars {
    /// Values for one build: `date` is the build's one [`BuildDate`], the same that dates its
    /// images and SBOMs. Tag, branch and environment start empty (see the `with_*` methods).
    pub fn new(version: impl Into<String>, commit: impl Into<String>, date: &BuildDate) -> Self {
        Self {
            version: version.into(),
            commit: commit.into(),
            date: date.rfc3339(),
            timestamp: date.epoch,
            ..Self::default()
        }
    }

    /// Sets `{{.Tag}}` and `{{.Branch}}`.
    pub fn with_git_refs(mut self, tag: Option<&str>, branch: Option<&str>) -> Self {
        self.tag = tag.unwrap_or_default().to_string();
        self.branch = branch.unwrap_or_default().to_string();
        self
    }

    /// Sets the variables `{{.Env.NAME}}` reads.
    pub fn with_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = env;
        self
    }

    /// `{{.Version}}`: the git version without its leading `v`, as GoReleaser gives it
    /// (`v1.2.3-3-gabc1234` -> `1.2.3-3-gabc1234`). Only a `v` followed by a digit is a version
    /// prefix, so a tag like `very-first` or the `dev` fallback stay whole.
    pub fn version(&self) -> &str {
        match self.version.strip_prefix('v') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
            _ => &self.version,
        }
    }

    /// The first seven characters of the commit (characters, not bytes: a byte cut could split a
    /// character of an odd value).
    fn short_commit(&self) -> &str {
        self.commit
            .char_indices()
            .nth(7)
            .map_or(self.commit.as_str(), |(end, _)| &self.commit[..end])
    }
}

/// Every placeholder kiln knows, for the error hint and the docs.
pub const KNOWN: &str = "{{.Version}}, {{.GitDescribe}}, {{.Tag}}, {{.Branch}}, {{.Commit}} ({{.FullCommit}}), {{.ShortCommit}}, {{.Date}}, {{.Timestamp}} and {{.Env.NAME}}";

/// Why a template cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateErrorKind {
    /// A placeholder kiln does not know (or an unclosed `{{`).
    #[error("unknown template `{{{{{found}}}}}` in `{text}`\nhint: kiln knows {KNOWN}")]
    Unknown {
        /// The text being rendered.
        text: String,
        /// The placeholder's inside.
        found: String,
    },
    /// `{{.Env.NAME}}` for a variable that is not set.
    #[error("`{{{{{found}}}}}` in `{text}`: environment variable {name} is not set\nhint: set {name} (an empty value is allowed), or remove the template")]
    UnsetEnv {
        /// The text being rendered.
        text: String,
        /// The placeholder's inside.
        found: String,
        /// The variable.
        name: String,
    },
}

/// A template that cannot be rendered. It has no `source()`: the message says it all, and a
/// caller printing the chain would otherwise print it twice.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct TemplateError {
    /// The placeholder's inside (`.Verison`), for callers that point at it.
    pub found: String,
    /// What is wrong with it.
    pub kind: TemplateErrorKind,
}

impl TemplateError {
    fn unknown(text: &str, found: &str) -> Self {
        Self {
            found: found.to_string(),
            kind: TemplateErrorKind::Unknown {
                text: text.to_string(),
                found: found.to_string(),
            },
        }
    }
}

/// Replaces every placeholder of [`KNOWN`] (spaces inside the braces allowed); any other `{{...}}`
/// is an error rather than silently kept, because a typo would otherwise ship a binary reporting
/// version `{{.Verison}}`. A missing `{{.Env.NAME}}` variable is an error too, as in GoReleaser:
/// an empty value in a release binary is rarely what was meant.
pub fn render(text: &str, vars: &TemplateVars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let timestamp = vars.timestamp.to_string();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError::unknown(text, after));
        };
        let name = after[..end].trim();
        let value = match name {
            ".Version" => vars.version(),
            ".GitDescribe" => vars.version.as_str(),
            ".Tag" => vars.tag.as_str(),
            ".Branch" => vars.branch.as_str(),
            ".Commit" | ".FullCommit" => vars.commit.as_str(),
            ".ShortCommit" => vars.short_commit(),
            ".Date" => vars.date.as_str(),
            ".Timestamp" => timestamp.as_str(),
            _ => match name.strip_prefix(".Env.").filter(|n| is_env_name(n)) {
                Some(var) => {
                    vars.env
                        .get(var)
                        .map(String::as_str)
                        .ok_or_else(|| TemplateError {
                            found: name.to_string(),
                            kind: TemplateErrorKind::UnsetEnv {
                                text: text.to_string(),
                                found: name.to_string(),
                                name: var.to_string(),
                            },
                        })?
                }
                None => return Err(TemplateError::unknown(text, name)),
            },
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A shell-style variable name: letters, digits and `_`, not starting with a digit.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        TemplateVars {
            version: "v1.2.3-3-g0123456".into(),
            commit: "0123456789abcdef".into(),
            date: "2024-01-01T00:00:00Z".into(),
            timestamp: 1_704_067_200,
            tag: "v1.2.3".into(),
            branch: "main".into(),
            env: BTreeMap::from([("WHO".to_string(), "ci".to_string())]),
        }
    }

    #[test]
    fn renders_known_and_rejects_unknown() {
        let v = vars();
        assert_eq!(
            render(
                "-X main.v={{.Version}} -X main.c={{ .ShortCommit }} -X main.d={{.Date}}",
                &v
            )
            .unwrap(),
            "-X main.v=1.2.3-3-g0123456 -X main.c=0123456 -X main.d=2024-01-01T00:00:00Z"
        );
        let e = render("-X main.v={{.Verison}}", &v).unwrap_err();
        assert!(e.to_string().contains("{{.Verison}}"), "{e}");
        assert_eq!(e.found, ".Verison");
        assert!(
            e.to_string().contains("{{.Env.NAME}}"),
            "hint lists all: {e}"
        );
        assert!(render("{{.Version", &v).is_err());
    }

    #[test]
    fn issue_9_version_drops_the_leading_v_and_git_describe_keeps_it() {
        let mut v = vars();
        assert_eq!(render("{{.Version}}", &v).unwrap(), "1.2.3-3-g0123456");
        assert_eq!(render("{{.GitDescribe}}", &v).unwrap(), "v1.2.3-3-g0123456");
        for kept in ["dev", "very-first", "0123abc", "v", "V1.0.0"] {
            v.version = kept.into();
            assert_eq!(render("{{.Version}}", &v).unwrap(), kept);
        }
    }

    #[test]
    fn issue_9_tag_branch_timestamp_and_env() {
        let v = vars();
        assert_eq!(
            render(
                "{{.Tag}} {{.Branch}} {{.Timestamp}} {{ .Env.WHO }} {{.FullCommit}}",
                &v
            )
            .unwrap(),
            "v1.2.3 main 1704067200 ci 0123456789abcdef"
        );
        let e = render("-X main.t={{.Env.TOKEN}}", &v).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("environment variable TOKEN is not set"),
            "{text}"
        );
        assert!(text.contains("hint:"), "{text}");
        // Not a variable name: unknown, not "unset".
        let e = render("{{.Env.A-B}}", &v).unwrap_err();
        assert!(e.to_string().starts_with("unknown template"), "{e}");
        assert!(render("{{.Env.}}", &v).is_err());
    }

    #[test]
    fn issue_9_template_error_text_appears_once_in_its_chain() {
        // A caller printing the whole source chain (anyhow's `{:#}`) must not repeat the message.
        let e = render("{{.Nope}}", &vars()).unwrap_err();
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn env_is_never_serialised() {
        let json = serde_json::to_string(&vars()).unwrap();
        assert!(!json.contains("WHO"), "{json}");
        assert!(
            json.contains("\"git_describe\":\"v1.2.3-3-g0123456\""),
            "{json}"
        );
    }

    #[test]
    fn date_comes_from_the_build_date() {
        let date = BuildDate::from_commit(Some(1_700_000_000));
        let v = TemplateVars::new("v1", "abc", &date);
        assert_eq!(render("{{.Date}}", &v).unwrap(), "2023-11-14T22:13:20Z");
        assert_eq!(render("{{.Timestamp}}", &v).unwrap(), "1700000000");
        assert_eq!(v.date, date.rfc3339());
    }
}
