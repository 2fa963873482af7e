use std::path::Path;
use std::process::Command;

use kiln_config::{BuildDate, TemplateVars};

/// What git says about the checkout: read once per command, feeding ldflags templates, image
/// labels and the build date's fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHead {
    /// Full hash of `HEAD`; `None` outside git or before the first commit.
    pub commit: Option<String>,
    /// Committer time of `HEAD`, seconds since 1970 (the build date when `SOURCE_DATE_EPOCH` is
    /// unset).
    pub commit_time: Option<u64>,
    /// `git describe --tags --always --dirty`, or `dev` outside git.
    pub version: String,
}

impl GitHead {
    /// Reads `HEAD` of the repository containing `root` (two git calls).
    pub fn read(root: &Path) -> Self {
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git")
                .args(args)
                .current_dir(root)
                .output()
                .ok()?;
            let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && !s.is_empty()).then_some(s)
        };
        let (commit, commit_time) = git(&["log", "-1", "--format=%H %ct"])
            .map_or((None, None), |line| parse_head_line(&line));
        let version =
            git(&["describe", "--tags", "--always", "--dirty"]).unwrap_or_else(|| "dev".into());
        Self {
            commit,
            commit_time,
            version,
        }
    }

    /// Values for ldflags templates; `date` is the build's one date (see [`BuildDate`]).
    pub fn template_vars(&self, date: &BuildDate) -> TemplateVars {
        TemplateVars::new(
            self.version.clone(),
            self.commit.clone().unwrap_or_else(|| "none".into()),
            date,
        )
    }
}

/// `<hash> <committer time>` from `git log -1 --format='%H %ct'`.
fn parse_head_line(line: &str) -> (Option<String>, Option<u64>) {
    let mut parts = line.split_whitespace();
    let commit = parts
        .next()
        .filter(|h| h.len() >= 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let time = parts
        .next()
        .and_then(|t| kiln_config::env::parse_epoch(t).ok());
    (commit, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_line_parses_hash_and_time() {
        let hash = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            parse_head_line(&format!("{hash} 1700000000")),
            (Some(hash.to_string()), Some(1_700_000_000))
        );
        // A commit dated before 1970 has no usable time; the build date falls back to 0.
        assert_eq!(
            parse_head_line(&format!("{hash} -5")),
            (Some(hash.to_string()), None)
        );
        assert_eq!(parse_head_line("garbage"), (None, None));
    }

    #[test]
    fn outside_git_gives_dev_and_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        let head = GitHead::read(dir.path());
        assert_eq!(head.commit, None);
        assert_eq!(head.commit_time, None);
        assert_eq!(head.version, "dev");
        let vars = head.template_vars(&BuildDate::from_commit(head.commit_time));
        assert_eq!(vars.commit, "none");
        assert_eq!(vars.date, "1970-01-01T00:00:00Z");
    }
}
