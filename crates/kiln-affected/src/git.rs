//! The git questions `kiln affected` asks: where the repository is, what the base is, and which
//! files differ between base and head (or the working tree).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::AffectedError;

/// A git work tree, with every command run at its top level so paths are relative to it.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    pub(crate) top: PathBuf,
}

impl Git {
    /// Finds the work tree containing `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, AffectedError> {
        let out = Command::new("git")
            .args(["rev-parse", "--show-toplevel"])
            .current_dir(dir)
            .output()
            .map_err(|source| AffectedError::GitMissing { source })?;
        if !out.status.success() {
            return Err(AffectedError::NotAGitRepository {
                dir: dir.to_path_buf(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // go reports directories through symlinks resolved; compare like with like.
        let top = top.canonicalize().unwrap_or(top);
        Ok(Self { top })
    }

    fn raw(&self, args: &[&str]) -> Result<std::process::Output, AffectedError> {
        Command::new("git")
            .args(args)
            .current_dir(&self.top)
            .output()
            .map_err(|source| AffectedError::GitMissing { source })
    }

    /// Runs git and returns stdout, or an error carrying git's stderr.
    pub(crate) fn run(&self, args: &[&str]) -> Result<Vec<u8>, AffectedError> {
        let out = self.raw(args)?;
        if !out.status.success() {
            return Err(AffectedError::Git {
                args: args.join(" "),
                dir: self.top.clone(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// Runs git and returns trimmed stdout when it succeeded with output, `None` otherwise: for
    /// questions whose "no" is a failing exit status.
    pub(crate) fn ask(&self, args: &[&str]) -> Result<Option<String>, AffectedError> {
        let out = self.raw(args)?;
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((out.status.success() && !s.is_empty()).then_some(s))
    }

    /// The commit a revision names, if it exists in this clone.
    pub(crate) fn commit(&self, rev: &str) -> Result<Option<String>, AffectedError> {
        self.ask(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ])
    }

    /// Whether this clone has truncated history (`git clone --depth`).
    pub(crate) fn is_shallow(&self) -> Result<bool, AffectedError> {
        Ok(self
            .ask(&["rev-parse", "--is-shallow-repository"])?
            .as_deref()
            == Some("true"))
    }

    /// The default branch the way other monorepo tools find it: `origin/HEAD`, else a local or
    /// remote `main`, else `master`.
    pub(crate) fn default_branch(&self) -> Result<Option<String>, AffectedError> {
        if let Some(r) = self.ask(&[
            "symbolic-ref",
            "--quiet",
            "--short",
            "refs/remotes/origin/HEAD",
        ])? {
            if self.commit(&r)?.is_some() {
                return Ok(Some(r));
            }
        }
        for candidate in ["main", "master", "origin/main", "origin/master"] {
            if self.commit(candidate)?.is_some() {
                return Ok(Some(candidate.to_string()));
            }
        }
        Ok(None)
    }

    /// The best common ancestor of two commits, `None` when there is none in this clone.
    pub(crate) fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>, AffectedError> {
        self.ask(&["merge-base", a, b])
    }

    /// Files that differ between two commits, both sides of renames.
    pub(crate) fn diff(&self, from: &str, to: &str) -> Result<BTreeSet<String>, AffectedError> {
        let out = self.run(&["diff", "--name-only", "-z", "--no-renames", from, to, "--"])?;
        Ok(split_z(&out).map(str::to_string).collect())
    }

    /// Uncommitted (staged or not) and untracked files, both sides of renames.
    pub(crate) fn status(&self) -> Result<BTreeSet<String>, AffectedError> {
        let out = self.run(&["status", "--porcelain=v1", "-z", "--untracked-files=all"])?;
        Ok(parse_status(&out))
    }

    /// A file's content at a revision; `None` when it does not exist there.
    pub(crate) fn show(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, AffectedError> {
        let out = self.raw(&["show", &format!("{rev}:{path}")])?;
        Ok(out.status.success().then_some(out.stdout))
    }
}

fn split_z(out: &[u8]) -> impl Iterator<Item = &str> {
    out.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| std::str::from_utf8(s).ok())
}

/// Parses `git status --porcelain=v1 -z`: `XY path\0`, and for renames and copies
/// `XY new\0old\0`, where the old path carries no status prefix.
fn parse_status(out: &[u8]) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut entries = split_z(out);
    while let Some(entry) = entries.next() {
        let (Some(xy), Some(path)) = (entry.get(..2), entry.get(3..)) else {
            continue;
        };
        files.insert(path.to_string());
        if xy.contains('R') || xy.contains('C') {
            if let Some(old) = entries.next() {
                files.insert(old.to_string());
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_both_sides_of_renames() {
        let out = b"R  new/name.go\0old/name.go\0 M a.go\0?? dir/untracked.txt\0D  gone.go\0";
        let files: Vec<_> = parse_status(out).into_iter().collect();
        assert_eq!(
            files,
            vec![
                "a.go",
                "dir/untracked.txt",
                "gone.go",
                "new/name.go",
                "old/name.go"
            ]
        );
    }
}
