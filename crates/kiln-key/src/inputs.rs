use std::collections::BTreeMap;
use std::fmt;

use kiln_types::Platform;
use serde::{Deserialize, Serialize};

/// Version of the key layout. Bump it whenever the meaning of an input or the way it is hashed
/// changes, so old cache entries can never be mistaken for new ones.
pub const KEY_VERSION: u32 = 1;

/// Environment variables that can change what `go build` produces. Values come from the target's
/// own overrides first, then from `go env` (which includes the user's environment and `go env -w`
/// settings); see [`key_env`].
pub const ENV_VARS: &[&str] = &[
    "AR",
    "CC",
    "CGO_CFLAGS",
    "CGO_CPPFLAGS",
    "CGO_CXXFLAGS",
    "CGO_ENABLED",
    "CGO_FFLAGS",
    "CGO_LDFLAGS",
    "CXX",
    "FC",
    "GO386",
    "GOAMD64",
    "GOARCH",
    "GOARM",
    "GOARM64",
    "GOEXPERIMENT",
    "GOFIPS140",
    "GOFLAGS",
    "GOMIPS",
    "GOMIPS64",
    "GOOS",
    "GOPPC64",
    "GORISCV64",
    "GOWASM",
    "GOWORK",
    "PKG_CONFIG",
];

/// The key environment of a target: every variable of [`ENV_VARS`] plus every override, with
/// overrides winning over `go env` values. `GOWORK` is reduced to on/off: its path is not an
/// input (the workspace files are hashed by content), whether a workspace is used is.
pub fn key_env(
    go_env: &BTreeMap<String, String>,
    overrides: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = ENV_VARS
        .iter()
        .filter_map(|k| go_env.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    env.extend(overrides.iter().cloned());
    if let Some(w) = env.get_mut("GOWORK") {
        *w = if w.is_empty() || w == "off" {
            "off".into()
        } else {
            "on".into()
        };
    }
    env
}

/// The key of one build action. Typed apart from [`kiln_types::Digest`]: an action key addresses a
/// *recipe*, a digest addresses *content*, and mixing them up is a bug the compiler should catch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActionKey(#[serde(with = "hex_bytes")] [u8; 32]);

impl ActionKey {
    /// Lowercase hex, used as the cache file name.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses the hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s).ok().map(|h| Self(*h.as_bytes()))
    }
}

impl fmt::Display for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActionKey({})", self.hex())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&blake3::Hash::from_bytes(*b).to_hex())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        blake3::Hash::from_hex(&s)
            .map(|h| *h.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Identity of the Go toolchain that compiles: its version and a hash of its tool binaries, so a
/// locally patched GOROOT with the same version string is still told apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    /// `go env GOVERSION`.
    pub version: String,
    /// Hash over `go`, `compile`, `link`, `asm` and `cgo` of the selected GOROOT.
    pub binaries: [u8; 32],
}

/// A source file of a non-standard package, by content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileInput {
    /// Module path of the file's module (empty outside modules).
    pub module: String,
    /// Path relative to the module root, with `/` separators.
    pub path: String,
    /// BLAKE3 of the content.
    pub hash: [u8; 32],
}

/// A dependency module from the module cache, by its verified identity instead of its files:
/// GOMODCACHE content is immutable and checked against go.sum.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModuleInput {
    /// Module path.
    pub path: String,
    /// Version.
    pub version: String,
    /// go.sum hash.
    pub sum: String,
}

/// Every input of one build action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// The compiler.
    pub toolchain: Toolchain,
    /// Target platform.
    pub platform: Platform,
    /// Import path of the main package.
    pub main_package: String,
    /// Every environment variable that can change the output (GOOS, GOARCH, GOAMD64, CGO_*,
    /// GOFLAGS, GOEXPERIMENT, CC, ...), after all layering: name -> value, absent = unset.
    pub env: BTreeMap<String, String>,
    /// The `go build` arguments that shape the output (flags, `-tags`, rendered `-ldflags`), in
    /// order, without the output path.
    pub args: Vec<String>,
    /// Content of every non-standard source file in the import graph, plus go.mod/go.sum/go.work.
    pub files: Vec<FileInput>,
    /// Dependency modules served from the module cache.
    pub modules: Vec<ModuleInput>,
    /// `CC --version` output when cgo is on, empty otherwise.
    pub c_compiler: String,
}

impl KeyInputs {
    /// Hashes every input together with [`KEY_VERSION`].
    pub fn key(&self) -> ActionKey {
        self.key_with_version(KEY_VERSION)
    }

    fn key_with_version(&self, version: u32) -> ActionKey {
        // Destructured without `..` on purpose: a new field must be hashed here or this stops
        // compiling.
        let KeyInputs {
            toolchain,
            platform,
            main_package,
            env,
            args,
            files,
            modules,
            c_compiler,
        } = self;
        let mut h = Hasher(blake3::Hasher::new());
        h.str("kiln-action");
        h.u64(u64::from(version));
        h.str(&toolchain.version);
        h.bytes(&toolchain.binaries);
        h.str(&platform.to_string());
        h.str(main_package);
        h.u64(env.len() as u64);
        for (k, v) in env {
            h.str(k);
            h.str(v);
        }
        h.u64(args.len() as u64);
        for a in args {
            h.str(a);
        }
        let mut files: Vec<&FileInput> = files.iter().collect();
        files.sort();
        files.dedup();
        h.u64(files.len() as u64);
        for f in files {
            h.str(&f.module);
            h.str(&f.path);
            h.bytes(&f.hash);
        }
        let mut modules: Vec<&ModuleInput> = modules.iter().collect();
        modules.sort();
        modules.dedup();
        h.u64(modules.len() as u64);
        for m in modules {
            h.str(&m.path);
            h.str(&m.version);
            h.str(&m.sum);
        }
        h.str(c_compiler);
        ActionKey(*h.0.finalize().as_bytes())
    }
}

/// Length-prefixed writes, so `("ab","c")` and `("a","bc")` hash differently.
struct Hasher(blake3::Hasher);

impl Hasher {
    fn u64(&mut self, v: u64) {
        self.0.update(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.update(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KeyInputs {
        KeyInputs {
            toolchain: Toolchain {
                version: "go1.26.8".into(),
                binaries: [1; 32],
            },
            platform: "linux/amd64".parse().unwrap(),
            main_package: "example.com/m/cmd/api".into(),
            env: BTreeMap::from([("CGO_ENABLED".into(), "0".into())]),
            args: vec!["-trimpath".into(), "-ldflags=-s -w -buildid=".into()],
            files: vec![FileInput {
                module: "example.com/m".into(),
                path: "cmd/api/main.go".into(),
                hash: [2; 32],
            }],
            modules: vec![ModuleInput {
                path: "github.com/google/uuid".into(),
                version: "v1.6.0".into(),
                sum: "h1:abc".into(),
            }],
            c_compiler: String::new(),
        }
    }

    fn changes(f: impl FnOnce(&mut KeyInputs)) {
        let a = base();
        let mut b = base();
        f(&mut b);
        assert_ne!(a.key(), b.key(), "input change did not change the key");
    }

    #[test]
    fn stable_for_equal_inputs() {
        assert_eq!(base().key(), base().key());
        let k = base().key();
        assert_eq!(ActionKey::from_hex(&k.hex()), Some(k));
    }

    #[test]
    fn go_version_changes_key() {
        changes(|k| k.toolchain.version = "go1.26.9".into());
    }
    #[test]
    fn toolchain_binaries_change_key() {
        changes(|k| k.toolchain.binaries = [9; 32]);
    }
    #[test]
    fn platform_changes_key() {
        changes(|k| k.platform = "linux/arm64".parse().unwrap());
    }
    #[test]
    fn platform_variant_changes_key() {
        changes(|k| k.platform = "linux/amd64/v3".parse().unwrap());
    }
    #[test]
    fn main_package_changes_key() {
        changes(|k| k.main_package = "example.com/m/cmd/worker".into());
    }
    #[test]
    fn env_value_changes_key() {
        changes(|k| {
            k.env.insert("CGO_ENABLED".into(), "1".into());
        });
    }
    #[test]
    fn env_new_variable_changes_key() {
        changes(|k| {
            k.env.insert("GOEXPERIMENT".into(), "loopvar".into());
        });
    }
    #[test]
    fn args_change_key() {
        changes(|k| k.args.push("-tags=netgo".into()));
    }
    #[test]
    fn arg_order_changes_key() {
        changes(|k| k.args.reverse());
    }
    #[test]
    fn file_content_changes_key() {
        changes(|k| k.files[0].hash = [3; 32]);
    }
    #[test]
    fn file_path_changes_key() {
        changes(|k| k.files[0].path = "cmd/api/other.go".into());
    }
    #[test]
    fn file_module_changes_key() {
        changes(|k| k.files[0].module = "example.com/other".into());
    }
    #[test]
    fn added_file_changes_key() {
        changes(|k| {
            k.files.push(FileInput {
                module: "example.com/m".into(),
                path: "go.sum".into(),
                hash: [4; 32],
            })
        });
    }
    #[test]
    fn module_version_changes_key() {
        changes(|k| k.modules[0].version = "v1.6.1".into());
    }
    #[test]
    fn module_sum_changes_key() {
        changes(|k| k.modules[0].sum = "h1:def".into());
    }
    #[test]
    fn c_compiler_changes_key() {
        changes(|k| k.c_compiler = "gcc (Debian 12.2.0) 12.2.0".into());
    }
    #[test]
    fn key_version_is_hashed() {
        let k = base();
        assert_eq!(k.key(), k.key_with_version(KEY_VERSION));
        assert_ne!(k.key(), k.key_with_version(KEY_VERSION + 1));
    }
    #[test]
    fn length_prefix_prevents_ambiguity() {
        let mut a = base();
        a.args = vec!["ab".into(), "c".into()];
        let mut b = base();
        b.args = vec!["a".into(), "bc".into()];
        assert_ne!(a.key(), b.key());
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn overrides_win_and_gowork_is_on_off() {
        let go_env = BTreeMap::from([
            ("GOAMD64".to_string(), "v1".to_string()),
            ("GOWORK".to_string(), "/some/checkout/go.work".to_string()),
            ("GOPATH".to_string(), "/home/x/go".to_string()),
        ]);
        let env = key_env(
            &go_env,
            &[
                ("GOAMD64".into(), "v3".into()),
                ("MY_VAR".into(), "1".into()),
            ],
        );
        assert_eq!(env["GOAMD64"], "v3");
        assert_eq!(env["GOWORK"], "on");
        assert_eq!(env["MY_VAR"], "1");
        assert!(
            !env.contains_key("GOPATH"),
            "GOPATH does not change the output"
        );
    }
}
