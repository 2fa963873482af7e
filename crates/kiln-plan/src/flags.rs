//! What `go build` flags mean for planning and for the key: which files they name (those files are
//! inputs), whether paths or VCS state end up in the binary, and whether kiln understands them at
//! all. A flag kiln does not know makes the action uncacheable instead of being guessed at.

use std::path::{Path, PathBuf};

/// `go build` flags that take a value, and whether kiln can key what they do.
const VALUE_FLAGS: &[&str] = &[
    "asmflags",
    "buildmode",
    "buildvcs",
    "compiler",
    "covermode",
    "coverpkg",
    "gccgoflags",
    "gcflags",
    "installsuffix",
    "ldflags",
    "mod",
    "modfile",
    "overlay",
    "pgo",
    "pkgdir",
    "tags",
    "toolexec",
    "C",
    "o",
    "p",
];

/// Boolean `go build` flags.
const BOOL_FLAGS: &[&str] = &[
    "a",
    "asan",
    "cover",
    "json",
    "linkshared",
    "modcacherw",
    "msan",
    "n",
    "race",
    "trimpath",
    "v",
    "work",
    "x",
];

/// The effective settings of the flags of one build (GOFLAGS first, then the arguments: later wins,
/// as in the go command).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `-trimpath` is on: no absolute paths in the binary.
    pub trimpath: bool,
    /// `-buildvcs` value (`auto` when unset, Go's default).
    pub buildvcs: String,
    /// `-overlay` file.
    pub overlay: Option<PathBuf>,
    /// `-modfile` file.
    pub modfile: Option<PathBuf>,
    /// `-pgo` value (`auto` when unset, Go's default since 1.21).
    pub pgo: String,
    /// Flags that add packages to the graph that `go list` must see too (`-race`, `-cover`, ...).
    pub graph_flags: Vec<String>,
    /// Why the action cannot be cached, when a flag's inputs are beyond what kiln can hash.
    pub uncacheable: Option<String>,
}

impl Flags {
    /// Whether VCS information is stamped into the binary.
    pub fn stamps_vcs(&self) -> bool {
        self.buildvcs != "false"
    }
}

/// Parses GOFLAGS (space separated `-flag[=value]`) and the build arguments. Relative paths are
/// resolved against `dir`, the go command's working directory.
pub fn parse(goflags: &str, args: &[String], dir: &Path) -> Flags {
    let mut f = Flags {
        buildvcs: "auto".into(),
        pgo: "auto".into(),
        ..Flags::default()
    };
    let mut tokens: Vec<String> = goflags.split_whitespace().map(str::to_string).collect();
    tokens.extend(args.iter().cloned());
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        i += 1;
        let Some(body) = tok.strip_prefix("--").or_else(|| tok.strip_prefix('-')) else {
            f.uncacheable = Some(format!("unexpected build argument `{tok}`"));
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let value = if BOOL_FLAGS.contains(&name) {
            inline.unwrap_or_else(|| "true".into())
        } else if VALUE_FLAGS.contains(&name) {
            match inline {
                Some(v) => v,
                None => match tokens.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        f.uncacheable = Some(format!("flag -{name} has no value"));
                        continue;
                    }
                },
            }
        } else {
            f.uncacheable = Some(format!(
                "kiln does not know the build flag `{tok}`, so it cannot tell which inputs it adds"
            ));
            continue;
        };
        apply(&mut f, name, &value, dir);
    }
    f
}

fn apply(f: &mut Flags, name: &str, value: &str, dir: &Path) {
    let on = value != "false";
    let path = || {
        let p = PathBuf::from(value);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };
    match name {
        "trimpath" => f.trimpath = on,
        "buildvcs" => f.buildvcs = value.to_string(),
        "overlay" => f.overlay = (!value.is_empty()).then(path),
        "modfile" => f.modfile = (!value.is_empty()).then(path),
        "pgo" => f.pgo = value.to_string(),
        "race" | "msan" | "asan" | "cover" if on => {
            f.graph_flags.push(format!("-{name}"));
        }
        "coverpkg" | "covermode" => f.graph_flags.push(format!("-{name}={value}")),
        "buildmode" if !matches!(value, "default" | "exe" | "pie") => {
            f.uncacheable = Some(format!(
                "-buildmode={value} writes other outputs than a program kiln can cache"
            ));
        }
        "compiler" if value != "gc" => {
            f.uncacheable = Some(format!(
                "-compiler={value}: kiln keys only the gc toolchain"
            ));
        }
        "gccgoflags" if !value.is_empty() => {
            f.uncacheable = Some("-gccgoflags: kiln keys only the gc toolchain".into());
        }
        "pkgdir" => {
            f.uncacheable = Some(format!(
                "-pkgdir={value} reads compiled packages kiln cannot hash"
            ));
        }
        "linkshared" if on => {
            f.uncacheable =
                Some("-linkshared links against shared libraries kiln cannot hash".into());
        }
        "n" if on => f.uncacheable = Some("-n prints commands without building".into()),
        "C" => f.uncacheable = Some("-C changes the directory go builds in".into()),
        "installsuffix" if !value.is_empty() => {
            f.uncacheable =
                Some("-installsuffix selects installed packages kiln cannot hash".into());
        }
        _ => {}
    }
}

/// Files an `-overlay` JSON maps in: its `Replace` values (the replacement files). Unparsable JSON
/// yields `Err` with go's view of the problem left to go.
pub fn overlay_targets(json: &[u8], dir: &Path) -> Result<Vec<(String, Option<PathBuf>)>, String> {
    #[derive(serde::Deserialize)]
    struct Overlay {
        #[serde(rename = "Replace", default)]
        replace: std::collections::BTreeMap<String, String>,
    }
    let o: Overlay = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(o.replace
        .into_iter()
        .map(|(from, to)| {
            let target = (!to.is_empty()).then(|| {
                let p = PathBuf::from(&to);
                if p.is_absolute() {
                    p
                } else {
                    dir.join(p)
                }
            });
            (from, target)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(goflags: &str, args: &[&str]) -> Flags {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(goflags, &args, Path::new("/r"))
    }

    #[test]
    fn defaults_follow_go() {
        let f = p("", &[]);
        assert!(!f.trimpath);
        assert!(f.stamps_vcs(), "go stamps by default");
        assert_eq!(f.pgo, "auto");
        assert!(f.uncacheable.is_none());
    }

    #[test]
    fn args_win_over_goflags() {
        let f = p("-buildvcs=true -trimpath", &["-buildvcs=false"]);
        assert!(!f.stamps_vcs());
        assert!(f.trimpath);
        let f = p("-trimpath", &["-trimpath=false"]);
        assert!(!f.trimpath);
    }

    #[test]
    fn files_named_by_flags_resolve_against_the_dir() {
        let f = p(
            "-overlay=o.json -modfile=/abs/alt.mod",
            &["-pgo", "prof.pgo"],
        );
        assert_eq!(f.overlay, Some(PathBuf::from("/r/o.json")));
        assert_eq!(f.modfile, Some(PathBuf::from("/abs/alt.mod")));
        assert_eq!(f.pgo, "prof.pgo");
    }

    #[test]
    fn unknown_and_unhashable_flags_are_uncacheable() {
        for (goflags, args) in [
            ("-frobnicate", vec![]),
            ("", vec!["-pkgdir=/p"]),
            ("", vec!["-linkshared"]),
            ("", vec!["-buildmode=plugin"]),
            ("-compiler=gccgo", vec![]),
            ("", vec!["-n"]),
            ("", vec!["stray"]),
        ] {
            let f = p(goflags, &args);
            assert!(f.uncacheable.is_some(), "{goflags} {args:?}");
        }
        assert!(p("", &["-buildmode=pie", "-race", "-x"])
            .uncacheable
            .is_none());
    }

    #[test]
    fn graph_flags_are_collected() {
        let f = p("-race", &["-cover", "-coverpkg=./..."]);
        assert_eq!(f.graph_flags, ["-race", "-cover", "-coverpkg=./..."]);
    }

    #[test]
    fn overlay_targets_parse() {
        let t =
            overlay_targets(br#"{"Replace":{"a.go":"b.go","c.go":""}}"#, Path::new("/d")).unwrap();
        assert_eq!(
            t,
            vec![
                ("a.go".to_string(), Some(PathBuf::from("/d/b.go"))),
                ("c.go".to_string(), None)
            ]
        );
        assert!(overlay_targets(b"{", Path::new("/d")).is_err());
    }
}
