//! `{{.Version}}`-style placeholders in ldflags, as GoReleaser users write them.

use serde::Serialize;

use crate::env::BuildDate;

/// Values available to ldflags templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TemplateVars {
    /// `git describe --tags --always --dirty`, or `dev` outside git.
    pub version: String,
    /// Full commit hash, or `none`.
    pub commit: String,
    /// RFC 3339 UTC date of the build ([`BuildDate`]: `SOURCE_DATE_EPOCH`, else the commit time,
    /// else 1970).
    pub date: String,
}

impl TemplateVars {
    /// Values for one build: `date` is the build's one [`BuildDate`], the same that dates its
    /// images and SBOMs.
    pub fn new(version: impl Into<String>, commit: impl Into<String>, date: &BuildDate) -> Self {
        Self {
            version: version.into(),
            commit: commit.into(),
            date: date.rfc3339(),
        }
    }
}

/// A placeholder kiln does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown template `{{{{{found}}}}}` in `{text}`\nhint: kiln knows {{{{.Version}}}}, {{{{.Commit}}}}, {{{{.ShortCommit}}}} and {{{{.Date}}}}")]
pub struct TemplateError {
    /// The text being rendered.
    pub text: String,
    /// The placeholder's inside.
    pub found: String,
}

/// Replaces `{{.Version}}`, `{{.Commit}}`, `{{.ShortCommit}}` and `{{.Date}}` (spaces inside the
/// braces allowed); any other `{{...}}` is an error rather than silently kept, because a typo would
/// otherwise ship a binary reporting version `{{.Verison}}`.
pub fn render(text: &str, vars: &TemplateVars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError {
                text: text.to_string(),
                found: after.to_string(),
            });
        };
        let name = after[..end].trim();
        // Seven characters, not bytes: a byte cut could split a character of an odd value.
        let short = vars
            .commit
            .char_indices()
            .nth(7)
            .map_or(vars.commit.as_str(), |(end, _)| &vars.commit[..end]);
        let value = match name {
            ".Version" => vars.version.as_str(),
            ".Commit" | ".FullCommit" => vars.commit.as_str(),
            ".ShortCommit" => short,
            ".Date" => vars.date.as_str(),
            _ => {
                return Err(TemplateError {
                    text: text.to_string(),
                    found: name.to_string(),
                })
            }
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_and_rejects_unknown() {
        let v = TemplateVars {
            version: "v1.2.3".into(),
            commit: "0123456789abcdef".into(),
            date: "2024-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            render(
                "-X main.v={{.Version}} -X main.c={{ .ShortCommit }} -X main.d={{.Date}}",
                &v
            )
            .unwrap(),
            "-X main.v=v1.2.3 -X main.c=0123456 -X main.d=2024-01-01T00:00:00Z"
        );
        let e = render("-X main.v={{.Verison}}", &v).unwrap_err();
        assert!(e.to_string().contains("{{.Verison}}"), "{e}");
        assert!(render("{{.Version", &v).is_err());
    }

    #[test]
    fn date_comes_from_the_build_date() {
        let date = BuildDate::from_commit(Some(1_700_000_000));
        let v = TemplateVars::new("v1", "abc", &date);
        assert_eq!(render("{{.Date}}", &v).unwrap(), "2023-11-14T22:13:20Z");
        assert_eq!(v.date, date.rfc3339());
    }
}
