//! Which environment variables reach `go build`, and which of them are in the key.
//!
//! The rule is by family, not by list: every variable whose name belongs to a family that Go or a C
//! toolchain reads (`GO*`, `CGO_*`, `CC`, `PKG_CONFIG*`, the C include and library paths, ...) is a
//! key input, unless it is named in [`NOT_OUTPUT_CHANGING`]. A variable a new Go release invents
//! therefore widens the key instead of slipping past it. Everything else is dropped from the child's
//! environment, except the few variables of [`PASSTHROUGH`] that the go command needs to run at all
//! and that cannot change the bytes it writes.

use std::collections::BTreeMap;

/// Exact names that are always key inputs (C and Fortran toolchains, archiver, SDK selection).
const EXACT: &[&str] = &[
    "AR",
    "CC",
    "CXX",
    "FC",
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "LIBRARY_PATH",
    "COMPILER_PATH",
    "GCC_EXEC_PREFIX",
    "SDKROOT",
    "DEVELOPER_DIR",
    "MACOSX_DEPLOYMENT_TARGET",
    "SOURCE_DATE_EPOCH",
];

/// Name prefixes whose every member is a key input.
const PREFIXES: &[&str] = &["GO", "CGO_", "PKG_CONFIG"];

/// Family members that cannot change what `go build` writes, each with the reason. They are
/// excluded from the key and passed to the child unchanged.
pub const NOT_OUTPUT_CHANGING: &[(&str, &str)] = &[
    (
        "GOCACHE",
        "where go keeps its build cache; content-addressed by go itself",
    ),
    (
        "GOCACHEPROG",
        "where go's build cache lives, as a program (`kiln gocacheprog`); content-addressed by go itself",
    ),
    (
        "GOMODCACHE",
        "where modules are unpacked; every file read from it is hashed by content",
    ),
    (
        "GOPATH",
        "module mode: only locates the module cache and GOBIN",
    ),
    ("GOBIN", "install destination; kiln chooses output paths"),
    (
        "GOPROXY",
        "where modules are downloaded from; go.sum verifies what arrives",
    ),
    (
        "GONOPROXY",
        "download routing; go.sum verifies what arrives",
    ),
    (
        "GOPRIVATE",
        "download routing; go.sum verifies what arrives",
    ),
    (
        "GONOSUMDB",
        "checksum database routing; go.sum verifies what arrives",
    ),
    (
        "GONOSUMCHECK",
        "checksum database routing; go.sum verifies what arrives",
    ),
    ("GOSUMDB", "checksum database; go.sum verifies what arrives"),
    ("GOINSECURE", "download transport"),
    ("GOVCS", "which VCS may download modules"),
    ("GOAUTH", "download credentials"),
    (
        "GOENV",
        "location of the go env file; its values are read through `go env` and keyed",
    ),
    (
        "GOTMPDIR",
        "scratch space; -trimpath and -buildid= keep it out of binaries",
    ),
    ("GOTELEMETRY", "usage statistics of the go command"),
    ("GOTELEMETRYDIR", "usage statistics of the go command"),
    (
        "GOROOT",
        "keyed by content: the toolchain's binaries and every standard-library file",
    ),
    ("GOTOOLDIR", "keyed by content: every tool binary"),
    ("GOMOD", "keyed by content: go.mod"),
    (
        "GOGCCFLAGS",
        "derived from CC and a random scratch directory; CC and CGO_* are keyed",
    ),
    ("GOEXE", "derived from GOOS"),
    ("GOMAXPROCS", "parallelism of the go command itself"),
    ("GOGC", "garbage collection of the go command itself"),
    ("GOMEMLIMIT", "memory limit of the go command itself"),
    ("GOTRACEBACK", "crash output of the go command itself"),
    (
        "GORACE",
        "read by race-enabled programs at run time, not by the build",
    ),
    (
        "GOCOVERDIR",
        "read by coverage-enabled programs at run time, not by the build",
    ),
    (
        "GOPACKAGESDRIVER",
        "read by golang.org/x/tools, not by go build",
    ),
];

/// Variables outside the key that the go command needs to run (find tools and its caches, download
/// modules, write temp files). They cannot change the output: PATH only selects programs, and the
/// ones that matter (the Go toolchain, C compilers, pkg-config) are keyed by content.
pub const PASSTHROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "TMP",
    "TEMP",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "SSH_AUTH_SOCK",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_CONFIG_GLOBAL",
    "NETRC",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SYSTEMROOT",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
];

/// Whether `name` belongs to a family of variables that can change a Go build.
pub fn in_key_family(name: &str) -> bool {
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `name` is a key input: in a family and not named as harmless.
pub fn is_key_var(name: &str) -> bool {
    in_key_family(name) && !NOT_OUTPUT_CHANGING.iter().any(|(n, _)| *n == name)
}

/// Whether the child keeps `name` from kiln's environment without keying it.
pub fn is_passthrough(name: &str) -> bool {
    PASSTHROUGH.contains(&name) || NOT_OUTPUT_CHANGING.iter().any(|(n, _)| *n == name)
}

/// The environment of one `go build`: what is keyed, and exactly what the child process gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildEnv {
    /// Key inputs: every family variable as the build will see it.
    pub keyed: BTreeMap<String, String>,
    /// The child's whole environment (it starts empty): the explicitly set keyed variables plus
    /// the passthrough ones (see [`PASSTHROUGH`], [`NOT_OUTPUT_CHANGING`]).
    pub child: BTreeMap<String, String>,
}

/// Splits the environment of one build.
///
/// `go_env` is `go env -json` for the project (it includes `go env -w` settings and Go's
/// defaults); `process` is kiln's own environment, captured once at start; `overrides` are the
/// target's settings (GOOS, GOARCH, CGO_ENABLED, kiln.toml `env`), which win.
///
/// The keyed set is every family variable from all three, plus every override whatever its name
/// (kiln.toml `env` reaches the child, so it is keyed). The child gets the passthrough variables
/// and the explicitly set keyed ones; go derives the rest (defaults, the `go env -w` file) exactly
/// as the keyed `go env` did. `GOWORK` is reduced to `on`/`off` in the key: the workspace files are
/// hashed by content, so their path is not an input.
pub fn build_env(
    go_env: &BTreeMap<String, String>,
    process: &BTreeMap<String, String>,
    overrides: &[(String, String)],
) -> BuildEnv {
    let mut keyed: BTreeMap<String, String> = go_env
        .iter()
        .filter(|(k, _)| is_key_var(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut child = BTreeMap::new();
    for (k, v) in process {
        if is_key_var(k) {
            keyed.insert(k.clone(), v.clone());
            child.insert(k.clone(), v.clone());
        } else if is_passthrough(k) {
            child.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in overrides {
        keyed.insert(k.clone(), v.clone());
        child.insert(k.clone(), v.clone());
    }
    if let Some(w) = keyed.get_mut("GOWORK") {
        *w = if w.is_empty() || w == "off" {
            "off".into()
        } else {
            "on".into()
        };
    }
    BuildEnv { keyed, child }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn families_widen_the_key() {
        // Variables kiln never listed are keyed because of their family.
        for v in [
            "GO_EXTLINK_ENABLED",
            "GOEXPERIMENT",
            "GONEWTHING",
            "CGO_CFLAGS",
            "PKG_CONFIG_PATH",
            "CPATH",
        ] {
            assert!(is_key_var(v), "{v}");
        }
        for v in ["GOCACHE", "GOPROXY", "GOMODCACHE", "PATH", "HOME", "EDITOR"] {
            assert!(!is_key_var(v), "{v}");
        }
    }

    #[test]
    fn unrelated_variables_never_reach_the_child() {
        let e = build_env(
            &BTreeMap::new(),
            &m(&[
                ("LD_PRELOAD", "/evil.so"),
                ("PATH", "/bin"),
                ("EDITOR", "vi"),
            ]),
            &[],
        );
        assert!(!e.child.contains_key("LD_PRELOAD"));
        assert!(!e.child.contains_key("EDITOR"));
        assert_eq!(e.child["PATH"], "/bin");
        assert!(e.keyed.is_empty());
    }

    #[test]
    fn process_and_overrides_are_keyed_and_passed() {
        let e = build_env(
            &m(&[
                ("GOAMD64", "v1"),
                ("GOWORK", "/x/go.work"),
                ("GOGCCFLAGS", "-fx"),
            ]),
            &m(&[("GO_EXTLINK_ENABLED", "1"), ("GOCACHE", "/c")]),
            &[
                ("GOAMD64".into(), "v3".into()),
                ("MY_VAR".into(), "1".into()),
            ],
        );
        assert_eq!(e.keyed["GOAMD64"], "v3");
        assert_eq!(e.keyed["GOWORK"], "on");
        assert_eq!(e.keyed["GO_EXTLINK_ENABLED"], "1");
        assert_eq!(e.keyed["MY_VAR"], "1", "kiln.toml env is always keyed");
        assert!(!e.keyed.contains_key("GOGCCFLAGS"));
        assert!(!e.keyed.contains_key("GOCACHE"));
        assert_eq!(e.child["GOCACHE"], "/c");
        assert_eq!(e.child["GOAMD64"], "v3");
        assert_eq!(e.child["MY_VAR"], "1");
        // Values go derives itself (go env -w file, defaults) are keyed but not forced.
        assert!(!e.child.contains_key("GOWORK"));
    }

    /// GOCACHEPROG is a GO* variable, so the family rule would key it; it only says where go's
    /// cache lives (`kiln gocacheprog`), so it is named as harmless: passed, never keyed.
    #[test]
    fn issue_11_gocacheprog_reaches_go_but_is_not_keyed() {
        assert!(in_key_family("GOCACHEPROG"));
        assert!(!is_key_var("GOCACHEPROG"));
        let e = build_env(
            &m(&[("GOCACHEPROG", "kiln gocacheprog")]),
            &m(&[("GOCACHEPROG", "kiln gocacheprog --cache-dir /c")]),
            &[],
        );
        assert!(!e.keyed.contains_key("GOCACHEPROG"));
        assert_eq!(e.child["GOCACHEPROG"], "kiln gocacheprog --cache-dir /c");
        let without = build_env(&BTreeMap::new(), &BTreeMap::new(), &[]);
        assert_eq!(e.keyed, without.keyed, "same key with and without it");
    }

    #[test]
    fn every_passed_family_variable_is_keyed() {
        let e = build_env(
            &BTreeMap::new(),
            &m(&[
                ("CGO_LDFLAGS", "-lfoo"),
                ("CC", "clang"),
                ("GOPRIVATE", "x"),
            ]),
            &[],
        );
        for (k, v) in &e.child {
            if !is_passthrough(k) {
                assert_eq!(
                    e.keyed.get(k),
                    Some(v),
                    "{k} reaches go build but is not keyed"
                );
            }
        }
    }
}
