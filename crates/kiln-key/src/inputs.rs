use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hasher::FileHash;

/// Version of the key layout. Bump it whenever the meaning of an input or the way it is hashed
/// changes, so old cache entries can never be mistaken for new ones.
pub const KEY_VERSION: u32 = 2;

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

/// Identity of the Go toolchain that compiles, by content: the `go` command kiln runs, every tool
/// binary, and GOROOT's files outside `src` that builds read (assembly headers, `go.env`).
/// Standard-library sources are hashed per package, like any other package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    /// `go env GOVERSION`.
    pub version: String,
    /// The `go` command kiln invokes (which may be a wrapper, `KILN_GO`) and GOROOT's `bin/go`.
    pub driver: BTreeMap<String, Option<FileHash>>,
    /// Every file in GOTOOLDIR (compile, link, asm, cgo, ...), by name.
    pub tools: BTreeMap<String, FileHash>,
    /// GOROOT files that are not package sources but reach builds (`pkg/include/*`, `go.env`,
    /// `src/go.mod`, `src/vendor/modules.txt`, `VERSION`), by GOROOT-relative path.
    pub goroot_files: BTreeMap<String, Option<FileHash>>,
}

/// One package of the import graph, by content. Standard-library and module-cache packages are
/// hashed exactly like the project's own: a patched GOROOT or an edited module cache changes the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInput {
    /// Where it comes from: `std`, `mod <path>@<version> <sum>`, or `main <module path>`.
    pub origin: String,
    /// The package directory relative to its origin's root (GOROOT/src, the module's directory).
    pub dir: String,
    /// Every file go reads for it in this build context (sources, cgo, C, assembly, syso,
    /// embedded files; for cgo packages every file under the directory), relative to `dir`.
    pub files: BTreeMap<String, FileHash>,
}

impl PackageInput {
    /// BLAKE3 of the package's canonical encoding (versioned JSON), the value kept in
    /// [`KeyInputs::packages`].
    pub fn digest(&self) -> FileHash {
        #[derive(Serialize)]
        struct Versioned<'a> {
            kiln_package_key: u32,
            package: &'a PackageInput,
        }
        let bytes = serde_json::to_vec(&Versioned {
            kiln_package_key: KEY_VERSION,
            package: self,
        })
        .unwrap_or_default();
        FileHash(*blake3::hash(&bytes).as_bytes())
    }
}

/// The C toolchain of a cgo build: the resolved programs by content and the `--version` they
/// print. Include and library path variables are keyed with the rest of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CToolchain {
    /// `CC`, `CXX`, `FC`, `PKG_CONFIG` (what go would run) -> the resolved program.
    pub programs: BTreeMap<String, CProgram>,
}

/// One resolved C toolchain program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CProgram {
    /// The command as configured (`gcc`, `clang -m32`).
    pub command: String,
    /// Content of the executable PATH resolves it to; `None` when it cannot be found.
    pub content: Option<FileHash>,
    /// First line of `--version`.
    pub version: String,
}

/// Every input of one build action.
///
/// The key is the BLAKE3 of this struct's canonical encoding (see [`KeyInputs::key`]): every field,
/// nested ones included, is hashed through `Serialize`, so a new field is covered the moment it is
/// added, and leaving one out takes a visible `#[serde(skip)]`. Maps are `BTreeMap`s so the encoding
/// is independent of insertion order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// The compiler.
    pub toolchain: Toolchain,
    /// Target platform (`os/arch[/variant]`).
    pub platform: String,
    /// Import path of the main package.
    pub main_package: String,
    /// The exact `go build` arguments the executor runs (without `-o`, `-p` and the package list,
    /// which do not change a binary).
    pub args: Vec<String>,
    /// Every variable of the key families as the build sees it (see [`crate::env`]).
    pub env: BTreeMap<String, String>,
    /// Every package in the import graph of the main package: import path -> the digest of its
    /// [`PackageInput`] (a Merkle step: a package shared by forty targets is encoded once).
    pub packages: BTreeMap<String, FileHash>,
    /// Files that are not package sources but steer the build: go.mod/go.sum of every module in
    /// the graph, go.work/go.work.sum, vendor/modules.txt, files named by `-overlay`, `-modfile`,
    /// `-pgo`, and `default.pgo`. `None` records that the file is absent (it appearing changes the
    /// key).
    pub files: BTreeMap<String, Option<FileHash>>,
    /// VCS state (`git` revision, commit time and the status of the work tree) when the build
    /// stamps it (`-buildvcs` not false).
    pub vcs: Option<String>,
    /// Absolute directories that end up in the binary when `-trimpath` is off.
    pub paths: Option<BTreeMap<String, String>>,
    /// The C toolchain when cgo is on.
    pub c_toolchain: Option<CToolchain>,
    /// When cgo is on: every file the C side reads beyond the package files, by content (`None`:
    /// absent): the headers the preprocessor resolves for each cgo package, the objects and
    /// libraries the external linker opens, and the compiler's passes (see `cinputs`). Left out
    /// of the encoding when cgo is off, so those keys do not move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_inputs: Option<BTreeMap<String, Option<FileHash>>>,
}

impl KeyInputs {
    /// The canonical encoding the key is computed from: versioned JSON of the whole struct.
    pub fn canonical(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Versioned<'a> {
            kiln_action_key: u32,
            inputs: &'a KeyInputs,
        }
        // Serialising plain data (strings, maps with string keys, hashes as hex) cannot fail.
        serde_json::to_vec(&Versioned {
            kiln_action_key: KEY_VERSION,
            inputs: self,
        })
        .unwrap_or_default()
    }

    /// Hashes every input together with [`KEY_VERSION`].
    pub fn key(&self) -> ActionKey {
        ActionKey(*blake3::hash(&self.canonical()).as_bytes())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn base() -> KeyInputs {
        KeyInputs {
            toolchain: Toolchain {
                version: "go1.26.8".into(),
                driver: BTreeMap::from([("go".into(), Some(FileHash([1; 32])))]),
                tools: BTreeMap::from([("compile".into(), FileHash([2; 32]))]),
                goroot_files: BTreeMap::from([("pkg/include/textflag.h".into(), None)]),
            },
            platform: "linux/amd64".into(),
            main_package: "example.com/m/cmd/api".into(),
            args: vec!["-trimpath".into(), "-ldflags=-s -w -buildid=".into()],
            env: BTreeMap::from([("CGO_ENABLED".into(), "0".into())]),
            packages: BTreeMap::from([("example.com/m/cmd/api".into(), package().digest())]),
            files: BTreeMap::from([("main example.com/m go.mod".into(), Some(FileHash([4; 32])))]),
            vcs: None,
            paths: None,
            c_toolchain: None,
            c_inputs: None,
        }
    }

    fn package() -> PackageInput {
        PackageInput {
            origin: "main example.com/m".into(),
            dir: "cmd/api".into(),
            files: BTreeMap::from([("main.go".into(), FileHash([3; 32]))]),
        }
    }

    /// Changing one field of [`package`] changes its digest.
    fn package_changes(f: impl FnOnce(&mut PackageInput)) {
        let mut p = package();
        f(&mut p);
        assert_ne!(p, package());
        assert_ne!(p.digest(), package().digest());
        let mut k = base();
        k.packages
            .insert("example.com/m/cmd/api".into(), p.digest());
        assert_ne!(k.key(), base().key());
    }

    /// A fixed, distinct key per mutation: each test changes exactly one input of [`base`] and
    /// asserts the key differs from the base key computed independently.
    fn changes(f: impl FnOnce(&mut KeyInputs)) {
        let before = base().key();
        let mut b = base();
        f(&mut b);
        assert_ne!(b, base(), "the mutation must change an input");
        assert_ne!(before, b.key(), "input change did not change the key");
    }

    #[test]
    fn equal_inputs_equal_keys_and_hex_round_trips() {
        let (a, b) = (base(), base());
        assert_eq!(a.key(), b.key());
        let k = a.key();
        assert_eq!(ActionKey::from_hex(&k.hex()), Some(k));
    }

    #[test]
    fn go_version_changes_key() {
        changes(|k| k.toolchain.version = "go1.26.9".into());
    }
    #[test]
    fn driver_changes_key() {
        changes(|k| {
            k.toolchain
                .driver
                .insert("KILN_GO".into(), Some(FileHash([8; 32])));
        });
    }
    #[test]
    fn tool_binary_changes_key() {
        changes(|k| {
            k.toolchain
                .tools
                .insert("compile".into(), FileHash([9; 32]));
        });
    }
    #[test]
    fn goroot_file_changes_key() {
        changes(|k| {
            k.toolchain
                .goroot_files
                .insert("pkg/include/textflag.h".into(), Some(FileHash([5; 32])));
        });
    }
    #[test]
    fn platform_changes_key() {
        changes(|k| k.platform = "linux/arm64".into());
    }
    #[test]
    fn main_package_changes_key() {
        changes(|k| k.main_package = "example.com/m/cmd/worker".into());
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
    fn arg_split_changes_key() {
        let mut a = base();
        a.args = vec!["ab".into(), "c".into()];
        let mut b = base();
        b.args = vec!["a".into(), "bc".into()];
        assert_ne!(a.key(), b.key());
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
            k.env.insert("GO_EXTLINK_ENABLED".into(), "1".into());
        });
    }
    #[test]
    fn package_file_content_changes_key() {
        package_changes(|p| {
            p.files.insert("main.go".into(), FileHash([7; 32]));
        });
    }
    #[test]
    fn package_file_added_changes_key() {
        package_changes(|p| {
            p.files.insert("extra.go".into(), FileHash([3; 32]));
        });
    }
    #[test]
    fn package_file_renamed_changes_key() {
        package_changes(|p| {
            let h = p.files.remove("main.go").unwrap();
            p.files.insert("other.go".into(), h);
        });
    }
    #[test]
    fn package_origin_changes_key() {
        package_changes(|p| p.origin = "mod example.com/m@v1.0.0 h1:x".into());
    }
    #[test]
    fn package_dir_changes_key() {
        package_changes(|p| p.dir = "cmd/api2".into());
    }
    #[test]
    fn package_added_changes_key() {
        changes(|k| {
            k.packages.insert("fmt".into(), FileHash([0; 32]));
        });
    }
    #[test]
    fn named_file_content_changes_key() {
        changes(|k| {
            k.files
                .insert("main example.com/m go.mod".into(), Some(FileHash([6; 32])));
        });
    }
    #[test]
    fn named_file_appearing_changes_key() {
        changes(|k| {
            k.files.insert("default.pgo".into(), None);
        });
        let mut a = base();
        a.files.insert("default.pgo".into(), None);
        let mut b = base();
        b.files
            .insert("default.pgo".into(), Some(FileHash([0; 32])));
        assert_ne!(a.key(), b.key(), "absent and present-but-empty differ");
    }
    #[test]
    fn vcs_state_changes_key() {
        changes(|k| k.vcs = Some("rev abc".into()));
        let mut a = base();
        a.vcs = Some("rev abc".into());
        let mut b = base();
        b.vcs = Some("rev abc modified".into());
        assert_ne!(a.key(), b.key());
    }
    #[test]
    fn absolute_paths_change_key() {
        changes(|k| k.paths = Some(BTreeMap::from([("root".into(), "/a".into())])));
    }
    #[test]
    fn c_toolchain_changes_key() {
        let prog = |content| CProgram {
            command: "gcc".into(),
            content: Some(FileHash(content)),
            version: "gcc 12".into(),
        };
        changes(|k| {
            k.c_toolchain = Some(CToolchain {
                programs: BTreeMap::from([("CC".into(), prog([1; 32]))]),
            })
        });
        let mut a = base();
        a.c_toolchain = Some(CToolchain {
            programs: BTreeMap::from([("CC".into(), prog([1; 32]))]),
        });
        let mut b = a.clone();
        b.c_toolchain = Some(CToolchain {
            programs: BTreeMap::from([("CC".into(), prog([2; 32]))]),
        });
        assert_ne!(a.key(), b.key(), "same --version, other compiler binary");
    }

    #[test]
    fn c_inputs_change_key() {
        let header = |h: Option<[u8; 32]>| {
            Some(BTreeMap::from([(
                "/usr/include/zlib.h".to_string(),
                h.map(FileHash),
            )]))
        };
        changes(|k| k.c_inputs = header(Some([1; 32])));
        let mut a = base();
        a.c_inputs = header(Some([1; 32]));
        let mut b = a.clone();
        b.c_inputs = header(Some([2; 32]));
        assert_ne!(a.key(), b.key(), "a system header's content");
        b.c_inputs = header(None);
        assert_ne!(a.key(), b.key(), "a header that disappeared");
        // Without cgo the field is left out, so keys of builds without cgo did not move.
        assert!(!String::from_utf8(base().canonical())
            .unwrap()
            .contains("c_inputs"));
    }
    #[test]
    fn key_version_is_in_the_encoding() {
        let text = String::from_utf8(base().canonical()).unwrap();
        assert!(
            text.starts_with(&format!("{{\"kiln_action_key\":{KEY_VERSION},")),
            "{text}"
        );
    }
    #[test]
    fn encoding_is_pinned() {
        // The canonical bytes of a known input. If this changes, old cache entries would be read
        // with a new meaning: bump KEY_VERSION together with the expected text.
        let mut k = base();
        k.toolchain.driver.clear();
        k.toolchain.tools.clear();
        k.toolchain.goroot_files.clear();
        k.packages.clear();
        k.files.clear();
        let text = String::from_utf8(k.canonical()).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"kiln_action_key\":{KEY_VERSION},\"inputs\":{{\"toolchain\":{{\"version\":\"go1.26.8\",\"driver\":{{}},\"tools\":{{}},\"goroot_files\":{{}}}},\"platform\":\"linux/amd64\",\"main_package\":\"example.com/m/cmd/api\",\"args\":[\"-trimpath\",\"-ldflags=-s -w -buildid=\"],\"env\":{{\"CGO_ENABLED\":\"0\"}},\"packages\":{{}},\"files\":{{}},\"vcs\":null,\"paths\":null,\"c_toolchain\":null}}}}"
            )
        );
    }

    #[test]
    fn every_field_reaches_the_encoding() {
        // Guards the "complete by construction" claim: each top-level field name appears in the
        // canonical bytes, so none is skipped by serde attributes.
        let text = String::from_utf8(base().canonical()).unwrap();
        for field in [
            "toolchain",
            "platform",
            "main_package",
            "args",
            "env",
            "packages",
            "files",
            "vcs",
            "paths",
            "c_toolchain",
        ] {
            assert!(text.contains(&format!("\"{field}\":")), "{field} missing");
        }
        let mut cgo = base();
        cgo.c_inputs = Some(BTreeMap::new());
        let text = String::from_utf8(cgo.canonical()).unwrap();
        assert!(text.contains("\"c_inputs\":"), "c_inputs missing");
    }
}
