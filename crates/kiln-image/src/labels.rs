use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Version-control facts for the standard `org.opencontainers.image.*` labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VcsInfo {
    /// Repository URL (`git remote get-url origin`, credentials stripped).
    pub source: Option<String>,
    /// Commit hash.
    pub revision: Option<String>,
    /// The source version (`git describe` as `{{.Version}}` renders it). Never the tag the image
    /// is pushed under: the label is inside the config, so a tag in it would make the image's
    /// digest depend on how the tag was spelled.
    pub version: Option<String>,
}

impl VcsInfo {
    /// Reads `origin`'s URL from git in `root` (absent outside git or without a remote); the
    /// caller supplies revision and version, which kiln already computed for ldflags.
    pub fn origin_url(root: &Path) -> Option<String> {
        let out = Command::new("git")
            .args(["remote", "get-url", "origin"])
            .current_dir(root)
            .output()
            .ok()?;
        let url = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !url.is_empty()).then(|| strip_userinfo(&url))
    }
}

/// `https://user:token@host/x` -> `https://host/x`: a label must never leak a credential.
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains('/') => format!("{scheme}://{host}"),
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `org.opencontainers.image.{source,revision,version}` from `vcs` (`created`, `base.name` and
/// `base.digest` are filled in by the packager, which knows the timestamp and the base).
pub fn standard_labels(vcs: &VcsInfo) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(format!("org.opencontainers.image.{k}"), v.clone());
        }
    };
    put("source", &vcs.source);
    put("revision", &vcs.revision);
    put("version", &vcs.version);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped() {
        assert_eq!(
            strip_userinfo("https://u:t@github.com/a/b"),
            "https://github.com/a/b"
        );
        assert_eq!(
            strip_userinfo("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
        let l = standard_labels(&VcsInfo {
            source: Some("https://x/y".into()),
            revision: Some("abc".into()),
            version: None,
        });
        assert_eq!(l.len(), 2);
        assert_eq!(l["org.opencontainers.image.revision"], "abc");
    }
}
