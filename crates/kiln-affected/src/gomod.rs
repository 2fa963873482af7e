//! Just enough of `go.mod`, `go.work` and `go.sum` to tell which module versions a change moved.
//!
//! A version bump in go.mod only changes binaries that compile a package of that module, so the
//! answer "which modules changed" lets `kiln affected` stay precise. Anything this reader does not
//! understand (a `go`/`toolchain` line, `use` directives, a pre-1.17 go.mod that does not list the
//! whole module graph) is reported as undecidable and widens the answer instead of narrowing it.

use std::collections::{BTreeMap, BTreeSet};

/// What a go.mod / go.work says, reduced to what decides the build.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ModFile {
    /// `require` path -> version.
    requires: BTreeMap<String, String>,
    /// `replace` "path[ version]" -> "target[ version]".
    replaces: BTreeMap<String, String>,
    /// `exclude` "path version" entries.
    excludes: BTreeSet<String>,
    /// The `go` line's version.
    go: Option<String>,
    /// Every other directive (module, toolchain, godebug, use, ...), normalised: a change to these
    /// cannot be attributed to one module.
    other: BTreeSet<String>,
}

/// How two versions of a go.mod / go.work differ.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ModDiff {
    /// Module path -> (old version, new version) for requirements, replacements and exclusions
    /// that changed. A version is `None` where the module was not listed.
    pub(crate) modules: BTreeMap<String, (Option<String>, Option<String>)>,
    /// Why the change cannot be narrowed to modules, when it cannot.
    pub(crate) undecidable: Option<String>,
}

fn strip_comment(line: &str) -> &str {
    line.split_once("//").map_or(line, |(a, _)| a).trim()
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '`').to_string()
}

impl ModFile {
    /// Parses go.mod or go.work text. Never fails: unknown lines land in `other`.
    pub(crate) fn parse(text: &str) -> Self {
        let mut m = ModFile::default();
        let mut block: Option<String> = None;
        for raw in text.lines() {
            let line = strip_comment(raw);
            if line.is_empty() {
                continue;
            }
            if block.is_some() && line == ")" {
                block = None;
                continue;
            }
            let (verb, rest) = match &block {
                Some(v) => (v.clone(), line.to_string()),
                None => {
                    let (v, r) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                    let r = r.trim();
                    if r == "(" {
                        block = Some(v.to_string());
                        continue;
                    }
                    (v.to_string(), r.to_string())
                }
            };
            let words: Vec<String> = rest.split_whitespace().map(unquote).collect();
            match (verb.as_str(), words.as_slice()) {
                ("require", [path, version, ..]) => {
                    m.requires.insert(path.clone(), version.clone());
                }
                ("replace", _) => {
                    if let Some((from, to)) = rest.split_once("=>") {
                        let norm = |s: &str| {
                            s.split_whitespace()
                                .map(unquote)
                                .collect::<Vec<_>>()
                                .join(" ")
                        };
                        m.replaces.insert(norm(from), norm(to));
                    }
                }
                ("exclude", [path, version, ..]) => {
                    m.excludes.insert(format!("{path} {version}"));
                }
                ("go", [version, ..]) => m.go = Some(version.clone()),
                // Retractions only matter to this module's consumers' `go get`, not to builds.
                ("retract", _) => {}
                _ => {
                    m.other.insert(format!("{verb} {}", words.join(" ")));
                }
            }
        }
        m
    }

    /// Whether go.mod lists the complete module graph (module graph pruning, Go 1.17+). Older
    /// files leave indirect versions to MVS, so a bump can move modules go.mod does not name.
    fn lists_full_graph(&self) -> bool {
        let Some(go) = &self.go else { return false };
        let mut parts = go.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts
            .next()
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        (major, minor) >= (1, 17)
    }
}

/// Compares two go.mod (or go.work, with `workspace = true`) texts; `None` is a missing file.
pub(crate) fn diff_mod(old: Option<&str>, new: Option<&str>, workspace: bool) -> ModDiff {
    let mut d = ModDiff::default();
    let (Some(old), Some(new)) = (old, new) else {
        d.undecidable = Some(match (old, new) {
            (None, Some(_)) => "the file was added".into(),
            (Some(_), None) => "the file was removed".into(),
            _ => "the file is missing on both sides".into(),
        });
        return d;
    };
    let (old, new) = (ModFile::parse(old), ModFile::parse(new));
    if old.go != new.go {
        d.undecidable = Some(format!(
            "the go line changed ({} -> {})",
            old.go.as_deref().unwrap_or("none"),
            new.go.as_deref().unwrap_or("none")
        ));
    } else if old.other != new.other {
        let changed: Vec<&String> = old.other.symmetric_difference(&new.other).collect();
        let first = changed.first().map_or(String::new(), |s| s.to_string());
        d.undecidable = Some(format!(
            "a directive other than require/replace/exclude changed ({first})"
        ));
    } else if !workspace && !new.lists_full_graph() {
        d.undecidable = Some(
            "go.mod declares a Go version before 1.17, so it does not list the whole module graph"
                .into(),
        );
    }
    let keys: BTreeSet<&String> = old.requires.keys().chain(new.requires.keys()).collect();
    for k in keys {
        let (a, b) = (old.requires.get(k), new.requires.get(k));
        if a != b {
            d.modules.insert(k.clone(), (a.cloned(), b.cloned()));
        }
    }
    let keys: BTreeSet<&String> = old.replaces.keys().chain(new.replaces.keys()).collect();
    for k in keys {
        let (a, b) = (old.replaces.get(k), new.replaces.get(k));
        if a != b {
            let path = k.split_whitespace().next().unwrap_or(k).to_string();
            d.modules
                .entry(path)
                .or_insert_with(|| (a.map(|t| format!("=> {t}")), b.map(|t| format!("=> {t}"))));
        }
    }
    for e in old.excludes.symmetric_difference(&new.excludes) {
        if let Some((path, version)) = e.split_once(' ') {
            let excluded_now = new.excludes.contains(e);
            d.modules.entry(path.to_string()).or_insert_with(|| {
                let v = format!("exclude {version}");
                if excluded_now {
                    (None, Some(v))
                } else {
                    (Some(v), None)
                }
            });
        }
    }
    d
}

/// go.sum (or go.work.sum) lines grouped by module path.
fn sum_lines(text: &str) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut m: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((path, rest)) = line.split_once(' ') {
            m.entry(path).or_default().insert(rest);
        }
    }
    m
}

/// Module paths whose go.sum entries differ, with the versions seen on each side.
pub(crate) fn diff_sum(old: &str, new: &str) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let (old, new) = (sum_lines(old), sum_lines(new));
    let versions = |lines: Option<&BTreeSet<&str>>| -> Option<String> {
        let v: BTreeSet<&str> = lines?
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .map(|v| v.trim_end_matches("/go.mod"))
            .collect();
        (!v.is_empty()).then(|| v.into_iter().collect::<Vec<_>>().join(","))
    };
    let keys: BTreeSet<&&str> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(**k) != new.get(**k))
        .map(|k| {
            (
                k.to_string(),
                (versions(old.get(*k)), versions(new.get(*k))),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "module example.com/shop // the shop\n\ngo 1.22\n\nrequire (\n\texample.com/lib v1.0.0\n\texample.com/other v0.3.0 // indirect\n)\n\nrequire example.com/single v1.2.3\n\nreplace example.com/fork => ../fork\n";

    #[test]
    fn version_bumps_name_their_modules() {
        let new = OLD.replace("lib v1.0.0", "lib v1.1.0");
        let d = diff_mod(Some(OLD), Some(&new), false);
        assert_eq!(d.undecidable, None);
        assert_eq!(
            d.modules.into_iter().collect::<Vec<_>>(),
            vec![(
                "example.com/lib".to_string(),
                (Some("v1.0.0".into()), Some("v1.1.0".into()))
            )]
        );
        // Comments and formatting do not count as changes.
        let reformatted = OLD.replace("// indirect", "").replace("// the shop", "");
        assert_eq!(
            diff_mod(Some(OLD), Some(&reformatted), false),
            ModDiff::default()
        );
    }

    #[test]
    fn replace_and_exclude_changes_name_modules() {
        let new = OLD.replace("=> ../fork", "=> ../fork2") + "exclude example.com/bad v0.1.0\n";
        let d = diff_mod(Some(OLD), Some(&new), false);
        assert_eq!(d.undecidable, None);
        let names: Vec<&str> = d.modules.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["example.com/bad", "example.com/fork"]);
    }

    #[test]
    fn what_cannot_be_narrowed_says_why() {
        let go = diff_mod(Some(OLD), Some(&OLD.replace("go 1.22", "go 1.23")), false);
        assert!(go.undecidable.unwrap().contains("go line"));
        let tc = diff_mod(
            Some(OLD),
            Some(&format!("{OLD}toolchain go1.26.1\n")),
            false,
        );
        assert!(tc.undecidable.unwrap().contains("toolchain"));
        let old = OLD.replace("go 1.22", "go 1.16");
        let new = old.replace("lib v1.0.0", "lib v1.1.0");
        assert!(diff_mod(Some(&old), Some(&new), false)
            .undecidable
            .unwrap()
            .contains("1.17"));
        assert!(diff_mod(None, Some(OLD), false).undecidable.is_some());
        let w1 = "go 1.22\n\nuse (\n\t./a\n)\n";
        let w2 = "go 1.22\n\nuse (\n\t./a\n\t./b\n)\n";
        assert!(diff_mod(Some(w1), Some(w2), true)
            .undecidable
            .unwrap()
            .contains("use ./b"));
    }

    #[test]
    fn go_sum_changes_by_module() {
        let old = "example.com/lib v1.0.0 h1:aaa=\nexample.com/lib v1.0.0/go.mod h1:bbb=\nexample.com/x v0.1.0 h1:ccc=\n";
        let new = "example.com/lib v1.1.0 h1:ddd=\nexample.com/lib v1.1.0/go.mod h1:eee=\nexample.com/x v0.1.0 h1:ccc=\n";
        let d = diff_sum(old, new);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d["example.com/lib"],
            (Some("v1.0.0".into()), Some("v1.1.0".into()))
        );
    }
}
