use std::collections::BTreeMap;

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
    fn standard_labels_skip_what_is_unknown() {
        let l = standard_labels(&VcsInfo {
            source: Some("https://x/y".into()),
            revision: Some("abc".into()),
            version: None,
        });
        assert_eq!(l.len(), 2);
        assert_eq!(l["org.opencontainers.image.revision"], "abc");
    }
}
