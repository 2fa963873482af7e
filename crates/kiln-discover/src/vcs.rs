use std::path::Path;
use std::process::{Command, Stdio};

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
    /// The tag at `HEAD` (the highest by version order when several), else the nearest tag
    /// reachable from `HEAD` (`git describe --tags --abbrev=0`), as GoReleaser picks its tag;
    /// `None` without tags or outside git.
    pub tag: Option<String>,
    /// The checked-out branch; `None` on a detached `HEAD` (a CI checkout of a pull request) or
    /// outside git.
    pub branch: Option<String>,
    /// `git remote get-url origin` with any `user:token@` removed (an image label must never leak
    /// a credential); `None` outside git or without an `origin` remote.
    pub origin: Option<String>,
}

impl GitHead {
    /// Reads `HEAD` of the repository containing `root`: six git calls, started together and
    /// waited for together, because they are independent and every `kiln` command pays for them
    /// before planning (sequentially they were most of a no-op's planning time).
    pub fn read(root: &Path) -> Self {
        let spawn = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(root)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        };
        let children = [
            spawn(&["log", "-1", "--format=%H %ct"]),
            spawn(&["describe", "--tags", "--always", "--dirty"]),
            spawn(&["tag", "--points-at", "HEAD", "--sort=-version:refname"]),
            spawn(&["describe", "--tags", "--abbrev=0"]),
            spawn(&["symbolic-ref", "--short", "-q", "HEAD"]),
            spawn(&["remote", "get-url", "origin"]),
        ];
        let [head, describe, at_head, nearest, branch, origin] = children.map(|c| {
            let out = c?.wait_with_output().ok()?;
            let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && !s.is_empty()).then_some(s)
        });
        let (commit, commit_time) = head.map_or((None, None), |line| parse_head_line(&line));
        let version = describe.unwrap_or_else(|| "dev".into());
        let (tag, branch) = if commit.is_some() {
            let at_head = at_head.and_then(|tags| tags.lines().next().map(str::to_string));
            (at_head.or(nearest), branch)
        } else {
            (None, None)
        };
        Self {
            commit,
            commit_time,
            version,
            tag,
            branch,
            origin: origin.map(|u| strip_userinfo(&u)),
        }
    }

    /// Values for ldflags templates; `date` is the build's one date (see [`BuildDate`]).
    pub fn template_vars(&self, date: &BuildDate) -> TemplateVars {
        TemplateVars::new(
            self.version.clone(),
            self.commit.clone().unwrap_or_else(|| "none".into()),
            date,
        )
        .with_git_refs(self.tag.as_deref(), self.branch.as_deref())
    }
}

/// `https://user:token@host/x` -> `https://host/x`; scp-like `git@host:x` stays as it is.
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains('/') => format!("{scheme}://{host}"),
            _ => url.to_string(),
        },
        None => url.to_string(),
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
    fn origin_credentials_are_stripped() {
        assert_eq!(
            strip_userinfo("https://u:t@github.com/a/b"),
            "https://github.com/a/b"
        );
        assert_eq!(
            strip_userinfo("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
    }

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
        assert_eq!((&head.tag, &head.branch), (&None, &None));
        let vars = head.template_vars(&BuildDate::from_commit(head.commit_time));
        assert_eq!(vars.commit, "none");
        assert_eq!(vars.date, "1970-01-01T00:00:00Z");
    }
}

#[cfg(test)]
mod git_tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git is installed");
        assert!(out.status.success(), "git {args:?}");
    }

    #[test]
    fn issue_9_tag_and_branch_follow_head() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "trunk"]);
        std::fs::write(d.join("a"), "1").unwrap();
        git(d, &["add", "a"]);
        git(d, &["commit", "-q", "-m", "one"]);
        let head = GitHead::read(d);
        assert_eq!(
            (head.tag.as_deref(), head.branch.as_deref()),
            (None, Some("trunk"))
        );
        // Two tags at HEAD: the highest version wins, whatever the creation order.
        git(d, &["tag", "v1.10.0"]);
        git(d, &["tag", "v1.9.0"]);
        assert_eq!(GitHead::read(d).tag.as_deref(), Some("v1.10.0"));
        // Past the tag: the nearest tag, as GoReleaser; detached: no branch.
        std::fs::write(d.join("a"), "2").unwrap();
        git(d, &["commit", "-q", "-am", "two"]);
        git(d, &["checkout", "-q", "--detach"]);
        let head = GitHead::read(d);
        assert_eq!(head.tag.as_deref(), Some("v1.10.0"));
        assert_eq!(head.branch, None);
        assert!(head.version.starts_with("v1.10.0-1-g"), "{}", head.version);
        let vars = head.template_vars(&BuildDate::from_commit(head.commit_time));
        assert_eq!(vars.tag, "v1.10.0");
        assert_eq!(vars.branch, "");
    }
}
