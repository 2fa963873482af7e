//! What a build stage's image and earlier instructions give `go build`: the Go version, whether a
//! C compiler is there (which decides cgo's default), the user, and where GOCACHE ends up.
//!
//! Rules must only claim what is true for the file at hand, so each answer here is either known
//! from the Dockerfile and the official images' documented defaults, or `None` (unknown), and an
//! unknown answer never produces a finding on its own.

use crate::ast::ImageRef;
use std::collections::{BTreeMap, BTreeSet};

/// A Go release as `(major, minor)`, e.g. `(1, 22)`.
pub(crate) type GoVersion = (u32, u32);

/// The release from which `-ldflags=-s` also drops DWARF (`go doc cmd/link`: "-s ... Implies the
/// -w flag, which can be negated with -w=0").
pub(crate) const S_IMPLIES_W: GoVersion = (1, 22);

/// The release from which the go command turns cgo off by default when no C compiler is found on
/// PATH (`go doc cmd/cgo`).
pub(crate) const CGO_NEEDS_COMPILER: GoVersion = (1, 20);

/// The Go release of a `golang:<tag>` image, when the tag names one (`1.22`, `1.22.3-alpine3.20`,
/// `1.26-bookworm`). `latest`, `alpine`, `1` or a digest alone name a moving current release: `None`.
pub(crate) fn go_version(image: &ImageRef) -> Option<GoVersion> {
    if image.short_name() != "golang" {
        return None;
    }
    let tag = image.tag.as_deref()?;
    let mut parts = tag.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    // The second number must follow a `.` directly (`1.22`, not `1-alpine`).
    let rest = tag.split_once('.')?.1;
    let minor_digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let minor = minor_digits.parse().ok()?;
    Some((major, minor))
}

/// Whether the image is Alpine-based (musl libc, no C compiler unless installed): `alpine` itself
/// and the `golang:*-alpine*` variants.
pub(crate) fn is_alpine(image: &ImageRef) -> bool {
    let short = image.short_name();
    short == "alpine"
        || (short == "golang"
            && image
                .tag
                .as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains("alpine")))
}

/// Whether the image itself has a C compiler on PATH. The Debian-based `golang` images install
/// gcc; the Alpine ones do not. Other images are assumed to have one, as kiln-lint always did:
/// the rule that depends on it (KL003) then stays as strict as before for images it does not know.
pub(crate) fn image_has_c_compiler(image: &ImageRef) -> bool {
    !is_alpine(image)
}

/// Packages that put a C compiler on PATH, per package manager.
const APK_COMPILERS: &[&str] = &["gcc", "clang", "build-base", "alpine-sdk", "g++", "tcc"];
const APT_COMPILERS: &[&str] = &["gcc", "clang", "build-essential", "g++", "cc"];

/// Whether a command installs a C compiler (`apk add gcc`, `apt-get install build-essential`,
/// `dnf install gcc` ...). Versioned names (`gcc-12`, `clang-17`, `gcc=12.2.0-r1`) count.
pub(crate) fn installs_c_compiler(words: &[String]) -> bool {
    let pos = |a: &str, b: &str| words.windows(2).position(|w| w[0] == a && w[1] == b);
    let (start, list) = if let Some(p) = pos("apk", "add") {
        (p + 2, APK_COMPILERS)
    } else if let Some(p) = ["apt-get", "apt", "dnf", "yum", "microdnf"]
        .iter()
        .find_map(|m| pos(m, "install"))
    {
        (p + 2, APT_COMPILERS)
    } else {
        return false;
    };
    words[start.min(words.len())..]
        .iter()
        .filter(|w| !w.starts_with('-'))
        .any(|w| {
            let name = w.split(['=', '~', '>', '<']).next().unwrap_or(w);
            list.iter().any(|c| {
                name == *c
                    || name.strip_prefix(c).is_some_and(|v| {
                        v.starts_with('-') && v[1..].starts_with(|d: char| d.is_ascii_digit())
                    })
            })
        })
}

/// Whether a command installs Go from the distribution (`apk add go`, `apt-get install golang-go`).
pub(crate) fn installs_go(words: &[String]) -> bool {
    let installing = words.windows(2).any(|w| {
        matches!(
            (w[0].as_str(), w[1].as_str()),
            ("apk", "add") | ("apt-get" | "apt" | "dnf" | "yum", "install")
        )
    });
    installing
        && words
            .iter()
            .any(|w| w == "go" || w == "golang" || w.starts_with("golang-") || w.starts_with("go="))
}

/// Whether the image runs as root when no `USER` says otherwise. The official language and
/// distribution images do; for others kiln-lint cannot know.
pub(crate) fn runs_as_root_by_default(image: &ImageRef) -> Option<bool> {
    const ROOT_IMAGES: &[&str] = &[
        "golang",
        "alpine",
        "debian",
        "ubuntu",
        "busybox",
        "fedora",
        "centos",
        "rockylinux",
        "almalinux",
        "amazonlinux",
        "buildpack-deps",
    ];
    ROOT_IMAGES
        .contains(&image.short_name().as_str())
        .then_some(true)
}

/// Where the go command puts its build cache in one `go build`, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EffectiveCache {
    /// The directory, when it can be told from the Dockerfile; `None` when it depends on
    /// something kiln-lint cannot see (a user's home directory from /etc/passwd, a variable).
    pub path: Option<String>,
    /// How the directory follows, for messages.
    pub why: String,
}

/// GOCACHE as the go command resolves it: `GOCACHE` if set, else `$XDG_CACHE_HOME/go-build`, else
/// `$HOME/.cache/go-build`; HOME is `/root` for root and comes from /etc/passwd otherwise.
/// `user` is the last `USER` in effect, `root_default` whether the image runs as root without one.
pub(crate) fn effective_gocache(
    vars: &BTreeMap<String, String>,
    user: Option<&str>,
    root_default: Option<bool>,
) -> EffectiveCache {
    let known = |v: &str| !v.is_empty() && !v.contains('$');
    let trim = |v: &str| {
        let t = v.trim_end_matches('/');
        if t.is_empty() { "/" } else { t }.to_string()
    };
    if let Some(v) = vars.get("GOCACHE").filter(|v| !v.is_empty()) {
        return EffectiveCache {
            path: known(v).then(|| trim(v)),
            why: format!("GOCACHE is set to `{v}`"),
        };
    }
    if let Some(v) = vars.get("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return EffectiveCache {
            path: known(v).then(|| format!("{}/go-build", trim(v).trim_end_matches('/'))),
            why: format!("XDG_CACHE_HOME is `{v}`"),
        };
    }
    if let Some(v) = vars.get("HOME").filter(|v| !v.is_empty()) {
        return EffectiveCache {
            path: known(v).then(|| format!("{}/.cache/go-build", trim(v).trim_end_matches('/'))),
            why: format!("HOME is `{v}`"),
        };
    }
    let name = user.map(|u| u.split(':').next().unwrap_or("").trim());
    let root = match name {
        Some("root" | "0") => true,
        Some(_) => false,
        None => root_default == Some(true),
    };
    if root {
        EffectiveCache {
            path: Some("/root/.cache/go-build".to_string()),
            why: "the build runs as root, whose HOME is /root".to_string(),
        }
    } else {
        EffectiveCache {
            path: None,
            why: match name {
                Some(u) => format!("the build runs as `{u}`, whose HOME comes from /etc/passwd"),
                None => "the image's user and HOME are not known".to_string(),
            },
        }
    }
}

/// Whether one of the cache mounts (targets without a trailing `/`) holds `dir`: the directory
/// itself or one of its parents. Looks up each parent of `dir`, so a RUN with many mounts and
/// many builds stays linear.
pub(crate) fn mount_covers(targets: &BTreeSet<String>, dir: &str) -> bool {
    let mut cur = dir.trim_end_matches('/');
    loop {
        if targets.contains(cur) {
            return true;
        }
        match cur.rfind('/') {
            Some(i) => cur = &cur[..i],
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s)
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn go_versions_from_tags() {
        assert_eq!(go_version(&img("golang:1.22")), Some((1, 22)));
        assert_eq!(go_version(&img("golang:1.21.5-alpine3.19")), Some((1, 21)));
        assert_eq!(
            go_version(&img("docker.io/library/golang:1.26-bookworm@sha256:ab")),
            Some((1, 26))
        );
        for moving in [
            "golang",
            "golang:alpine",
            "golang:1-alpine",
            "golang:latest",
            "alpine:3.20",
        ] {
            assert_eq!(go_version(&img(moving)), None, "{moving}");
        }
    }

    #[test]
    fn alpine_images_have_no_compiler() {
        assert!(is_alpine(&img("golang:1.26-alpine")));
        assert!(is_alpine(&img("golang:alpine3.20")));
        assert!(is_alpine(&img("alpine:3.20")));
        assert!(!image_has_c_compiler(&img("golang:1.26-alpine")));
        assert!(image_has_c_compiler(&img("golang:1.26")));
        assert!(image_has_c_compiler(&img("golang:1.26-bookworm")));
    }

    #[test]
    fn compiler_installs() {
        for yes in [
            "apk add --no-cache gcc musl-dev",
            "apk add build-base",
            "apk add --virtual .deps clang",
            "apt-get install -y --no-install-recommends build-essential",
            "apt-get install -y gcc-12",
            "apk add gcc=13.2.1-r0",
        ] {
            assert!(installs_c_compiler(&words(yes)), "{yes}");
        }
        for no in [
            "apk add --no-cache git ca-certificates",
            "apk add musl-dev",
            "apt-get install -y curl gccgo-doc",
            "apk add go",
            "echo gcc",
        ] {
            assert!(!installs_c_compiler(&words(no)), "{no}");
        }
    }

    #[test]
    fn gocache_resolution() {
        let vars = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let root = effective_gocache(&vars(&[]), None, Some(true));
        assert_eq!(root.path.as_deref(), Some("/root/.cache/go-build"));
        let explicit = effective_gocache(&vars(&[("GOCACHE", "/c/")]), Some("app"), None);
        assert_eq!(explicit.path.as_deref(), Some("/c"));
        let home = effective_gocache(&vars(&[("HOME", "/home/app")]), Some("app"), None);
        assert_eq!(home.path.as_deref(), Some("/home/app/.cache/go-build"));
        let xdg = effective_gocache(
            &vars(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            None,
            None,
        );
        assert_eq!(xdg.path.as_deref(), Some("/x/go-build"));
        assert_eq!(
            effective_gocache(&vars(&[]), Some("1000"), Some(true)).path,
            None
        );
        assert_eq!(
            effective_gocache(&vars(&[]), Some("0:0"), None)
                .path
                .as_deref(),
            Some("/root/.cache/go-build")
        );
        assert_eq!(effective_gocache(&vars(&[]), None, None).path, None);
        assert_eq!(
            effective_gocache(&vars(&[("GOCACHE", "$HOME/c")]), None, None).path,
            None
        );
    }

    #[test]
    fn mounts_cover_the_directory_or_a_parent() {
        let set = |t: &str| BTreeSet::from([t.to_string()]);
        let dir = "/root/.cache/go-build";
        assert!(mount_covers(&set("/root/.cache/go-build"), dir));
        assert!(mount_covers(&set("/root/.cache"), "/root/.cache/go-build/"));
        assert!(mount_covers(&set(""), dir), "a mount at /");
        assert!(!mount_covers(&set("/root/.cache/go"), dir));
        assert!(!mount_covers(&set("/go/pkg/mod"), dir));
    }
}
