//! Input model shared by the SBOM writers, plus the small encodings they share
//! (timestamps, package URLs, go.sum hashes).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kiln_types::{Digest, Platform};
use serde::{Deserialize, Serialize};

use crate::error::{AttestError, Result};

/// What an SBOM describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// A single executable; `digest` is the sha256 of the file.
    Binary,
    /// An OCI image; `digest` is the manifest digest.
    Image,
}

/// The thing an SBOM is about, with everything known about its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomSubject {
    /// Name, e.g. `registry.example/app` for an image or `app` for a binary.
    pub name: String,
    /// Version or tag, when known.
    pub version: Option<String>,
    /// Binary or image.
    pub kind: SubjectKind,
    /// sha256 of the binary, or the image manifest digest.
    pub digest: Digest,
    /// Target platform, when known.
    pub platform: Option<Platform>,
    /// Go executables in the subject (for a binary subject: the binary itself).
    pub binaries: Vec<BinaryInfo>,
    /// The base image the subject was built on, if any.
    pub base: Option<BaseImageInfo>,
}

/// Go build information of one executable, as read from its `.go.buildinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryInfo {
    /// Path of the file inside the image (or its file name for a binary subject).
    pub path_in_image: String,
    /// sha256 of the file.
    pub sha256: Digest,
    /// Go toolchain version, e.g. `go1.27.1`.
    pub go_version: String,
    /// The main module (`mod` line); its version is often `(devel)`.
    pub main_module: GoModule,
    /// Dependency modules (`dep` lines), with their replacements.
    pub deps: Vec<GoModule>,
    /// Build settings (`build` lines) in the order Go recorded them.
    pub settings: Vec<(String, String)>,
}

/// One Go module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoModule {
    /// Module path, e.g. `github.com/google/uuid`.
    pub path: String,
    /// Module version, e.g. `v1.6.0`; empty or `(devel)` when unknown.
    pub version: String,
    /// go.sum hash of the module zip (`h1:` + base64), when recorded.
    pub sum: Option<String>,
    /// The `=>` replacement; when present its code is what was compiled.
    pub replace: Option<Box<GoModule>>,
}

impl GoModule {
    /// A module without sum or replacement.
    pub fn new(path: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            version: version.into(),
            sum: None,
            replace: None,
        }
    }

    /// The module whose code was actually compiled: the replacement if there is one.
    pub fn effective(&self) -> &GoModule {
        self.replace.as_deref().unwrap_or(self)
    }

    /// Whether this module is a local directory (a `=> ../dir` replacement), which has
    /// neither a version nor a go.sum hash.
    pub fn is_local_dir(&self) -> bool {
        let p = self.path.as_str();
        p.starts_with("./")
            || p.starts_with("../")
            || p.starts_with('/')
            || p == "."
            || p == ".."
            || p.get(1..3) == Some(":\\")
    }

    /// Package URL of the compiled code: the replacement's path and version when it is
    /// another module, the original path without a version when it is a local directory.
    pub fn purl(&self) -> String {
        let eff = self.effective();
        if eff.is_local_dir() {
            go_purl(&self.path, None)
        } else {
            go_purl(&eff.path, eff.known_version())
        }
    }

    /// The version, unless it is empty or Go's `(devel)` placeholder.
    pub fn known_version(&self) -> Option<&str> {
        let v = self.version.as_str();
        (!v.is_empty() && v != "(devel)").then_some(v)
    }

    /// The replacement when it is another module (not a local directory): then the SBOM
    /// describes that module, as syft does, and names the original as what it replaces.
    pub fn module_replacement(&self) -> Option<&GoModule> {
        self.replace.as_deref().filter(|r| !r.is_local_dir())
    }

    /// The name an SBOM gives the compiled code: the replacement module's path, or the
    /// module's own path (also for a local-directory replacement, which has no module path).
    pub fn sbom_name(&self) -> &str {
        self.module_replacement().map_or(&self.path, |r| &r.path)
    }
}

/// Package URL of Go's standard library as syft writes it, which vulnerability scanners match
/// stdlib CVEs on: `pkg:golang/stdlib@1.26.8` for `go1.26.8` (the version without `go`).
pub fn stdlib_purl(go_version: &str) -> String {
    go_purl("stdlib", go_version_number(go_version))
}

/// `1.26.8` from `go1.26.8`, `go1.26.8 X:boringcrypto` or `devel go1.27-abcdef ...`; `None`
/// when no word starts with `go` and a digit.
pub fn go_version_number(go_version: &str) -> Option<&str> {
    go_version
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("go"))
        .find(|v| v.starts_with(|c: char| c.is_ascii_digit()))
}

/// The toolchain version as an SBOM records it (`go1.26.8`): the first word of Go's version
/// string, or the word naming the version for a `devel` toolchain.
pub(crate) fn go_version_label(go_version: &str) -> &str {
    go_version
        .split_whitespace()
        .find(|w| {
            w.strip_prefix("go")
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .unwrap_or(go_version.trim())
}

/// Go toolchain versions of the subject's executables, each once, sorted.
pub(crate) fn unique_go_versions(subject: &SbomSubject) -> Vec<&str> {
    let mut v: Vec<&str> = subject
        .binaries
        .iter()
        .map(|b| go_version_label(&b.go_version))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The base image of an image subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImageInfo {
    /// Reference or name, e.g. `kiln/static` for the built-in base.
    pub name: String,
    /// Manifest digest of the base image.
    pub digest: Digest,
    /// Files of the base (path, sha256), listed for kiln's built-in base.
    pub files: Vec<(String, Digest)>,
}

/// Document creation metadata; fixed values make SBOMs reproducible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationInfo {
    /// `YYYY-MM-DDThh:mm:ssZ`.
    pub created: String,
    /// Tool name and version, e.g. `kiln-0.1.0`.
    pub tool: String,
}

impl CreationInfo {
    /// Creation info at a fixed Unix time: the build's date (the caller resolves it once, from
    /// `SOURCE_DATE_EPOCH` or the commit), never the clock, so SBOMs are reproducible.
    pub fn at_epoch(epoch_secs: i64, tool: impl Into<String>) -> Self {
        Self {
            created: format_rfc3339(epoch_secs),
            tool: tool.into(),
        }
    }

    /// `Tool: kiln-0.1.0` split into name and version for CycloneDX.
    pub(crate) fn tool_name_version(&self) -> (&str, Option<&str>) {
        match self.tool.rsplit_once('-') {
            Some((name, ver)) if ver.starts_with(|c: char| c.is_ascii_digit()) => (name, Some(ver)),
            _ => (self.tool.as_str(), None),
        }
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub use kiln_types::format_rfc3339;

/// Package URL of a Go module: `pkg:golang/<namespace>/<name>@<version>`.
///
/// Per the purl spec the namespace is every path segment but the last and the name is
/// the last one; each segment is percent-encoded on its own so `/` stays a separator.
/// Case is preserved because Go module paths are case-sensitive. The version is left
/// out when unknown (`(devel)` or empty).
pub fn go_purl(path: &str, version: Option<&str>) -> String {
    let mut out = String::from("pkg:golang/");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        percent_encode_into(&mut out, seg);
    }
    if let Some(v) = version.filter(|v| !v.is_empty() && *v != "(devel)") {
        out.push('@');
        percent_encode_keep_colon(&mut out, v);
    }
    out
}

/// Package URL of an OCI image: `pkg:oci/<name>@sha256:<hex>?arch=..&repository_url=..`.
///
/// The purl name is the last repository segment in lower case; the full repository goes
/// into `repository_url` so the reference stays resolvable. Tags and digests in `reference`
/// are dropped: the digest argument is authoritative.
pub fn oci_purl(reference: &str, digest: &Digest, platform: Option<&Platform>) -> String {
    let repo = reference.split('@').next().unwrap_or(reference);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    let name = repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase();
    let mut out = String::from("pkg:oci/");
    percent_encode_into(&mut out, &name);
    out.push('@');
    percent_encode_keep_colon(&mut out, &digest.to_string());
    let mut qualifiers = Vec::new();
    if let Some(p) = platform {
        qualifiers.push(("arch", p.arch.clone()));
    }
    if repo.contains('/') {
        qualifiers.push(("repository_url", repo.to_owned()));
    }
    for (i, (k, v)) in qualifiers.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        for part in v.split('/').enumerate() {
            if part.0 > 0 {
                out.push('/');
            }
            percent_encode_keep_colon(&mut out, part.1);
        }
    }
    out
}

// purl's canonical form (as the reference implementation prints it) leaves `:` unencoded
// in versions and qualifier values.
fn percent_encode_keep_colon(out: &mut String, s: &str) {
    for part in s.split(':').enumerate() {
        if part.0 > 0 {
            out.push(':');
        }
        percent_encode_into(out, part.1);
    }
}

fn percent_encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Maps a go.sum `h1:` hash to hex SHA-256.
///
/// `h1:` is base64 of a SHA-256, but not of the module zip: Go's dirhash hashes a summary
/// listing `sha256(file)  path` for every file of the module, then hashes that summary.
/// The value is still a SHA-256 that identifies the module content exactly, so SBOMs carry
/// it as a SHA256 checksum (and the original `h1:` string alongside where the format allows).
pub fn h1_to_sha256_hex(module: &str, sum: &str) -> Result<String> {
    let invalid = |reason: &str| AttestError::InvalidModuleSum {
        module: module.to_owned(),
        sum: sum.to_owned(),
        reason: reason.to_owned(),
    };
    let b64 = sum
        .strip_prefix("h1:")
        .ok_or_else(|| invalid("expected the `h1:` prefix"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| invalid(&format!("not base64: {e}")))?;
    if raw.len() != 32 {
        return Err(invalid("not a 32-byte SHA-256"));
    }
    Ok(hex::encode(raw))
}

/// All modules compiled into the subject, deduplicated by effective path and version,
/// in a stable order. Main modules are included: they are compiled in too.
pub(crate) fn unique_modules(subject: &SbomSubject) -> Vec<&GoModule> {
    let mut all: Vec<&GoModule> = subject
        .binaries
        .iter()
        .flat_map(|b| std::iter::once(&b.main_module).chain(b.deps.iter()))
        .collect();
    all.sort_by_key(|m| module_key(m));
    all.dedup_by(|a, b| module_key(a) == module_key(b));
    all
}

/// Identity of a module as compiled: the original path plus the effective source.
pub(crate) fn module_key(m: &GoModule) -> (String, String, String, String) {
    let e = m.effective();
    (
        m.path.clone(),
        m.version.clone(),
        e.path.clone(),
        e.version.clone(),
    )
}

/// A short stable hash used to keep generated identifiers unique.
pub(crate) fn short_hash(parts: &[&str]) -> String {
    let joined = parts.join("\u{0}");
    Digest::of_bytes(joined.as_bytes()).hex()[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_answers() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn purl_splits_namespace_and_encodes() {
        assert_eq!(
            go_purl("github.com/google/uuid", Some("v1.6.0")),
            "pkg:golang/github.com/google/uuid@v1.6.0"
        );
        assert_eq!(
            go_purl("github.com/BurntSushi/toml", Some("v0.0.0+incompatible")),
            "pkg:golang/github.com/BurntSushi/toml@v0.0.0%2Bincompatible"
        );
        assert_eq!(
            go_purl("example.com/app", Some("(devel)")),
            "pkg:golang/example.com/app"
        );
        assert_eq!(
            go_purl("stdlib", Some("go1.27")),
            "pkg:golang/stdlib@go1.27"
        );
        assert_eq!(
            go_purl("example.com/a b", None),
            "pkg:golang/example.com/a%20b"
        );
    }

    #[test]
    fn oci_purl_shape() {
        let d = Digest::of_bytes(b"x");
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(
            oci_purl("registry.example:5000/team/App:1.0", &d, Some(&p)),
            format!(
                "pkg:oci/app@sha256:{}?arch=amd64&repository_url=registry.example:5000/team/App",
                d.hex()
            )
        );
        assert_eq!(
            oci_purl("app", &d, None),
            format!("pkg:oci/app@sha256:{}", d.hex())
        );
    }

    #[test]
    fn replaced_module_purls() {
        let mut m = GoModule::new("example.com/internal/lib", "v0.0.0");
        m.replace = Some(Box::new(GoModule::new("../lib", "")));
        assert_eq!(m.purl(), "pkg:golang/example.com/internal/lib");
        m.replace = Some(Box::new(GoModule::new("example.com/fork/lib", "v1.2.0")));
        assert_eq!(m.purl(), "pkg:golang/example.com/fork/lib@v1.2.0");
        assert!(GoModule::new("C:\\src\\lib", "").is_local_dir());
        assert!(!GoModule::new("golang.org/x/sys", "v0.1.0").is_local_dir());
    }

    #[test]
    fn stdlib_purl_drops_the_go_prefix() {
        assert_eq!(stdlib_purl("go1.26.8"), "pkg:golang/stdlib@1.26.8");
        assert_eq!(
            stdlib_purl("go1.22.1 X:boringcrypto"),
            "pkg:golang/stdlib@1.22.1"
        );
        assert_eq!(stdlib_purl("go1.27rc1"), "pkg:golang/stdlib@1.27rc1");
        assert_eq!(
            go_version_label("devel go1.27-abcdef Tue Dec 1"),
            "go1.27-abcdef"
        );
        assert_eq!(stdlib_purl("weird"), "pkg:golang/stdlib");
    }

    #[test]
    fn replaced_module_is_named_by_its_replacement() {
        let mut m = GoModule::new("example.com/orig", "v1.0.0");
        assert_eq!(m.sbom_name(), "example.com/orig");
        m.replace = Some(Box::new(GoModule::new("example.com/fork", "v1.0.1")));
        assert_eq!(m.sbom_name(), "example.com/fork");
        m.replace = Some(Box::new(GoModule::new("../orig", "")));
        assert_eq!(m.sbom_name(), "example.com/orig");
        assert!(m.module_replacement().is_none());
    }

    #[test]
    fn h1_maps_to_hex() {
        // 32 zero bytes in base64.
        let sum = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(h1_to_sha256_hex("m", sum).unwrap(), "0".repeat(64));
        assert!(matches!(
            h1_to_sha256_hex("m", "h2:AAAA"),
            Err(AttestError::InvalidModuleSum { .. })
        ));
        assert!(h1_to_sha256_hex("m", "h1:AAAA").is_err());
    }

    #[test]
    fn tool_name_version_split() {
        let c = CreationInfo::at_epoch(0, "kiln-0.1.0");
        assert_eq!(c.tool_name_version(), ("kiln", Some("0.1.0")));
        let c = CreationInfo::at_epoch(0, "kiln");
        assert_eq!(c.tool_name_version(), ("kiln", None));
    }
}
