//! The result of inspecting one binary, in a shape the CLI can print as a row or as JSON.

use std::fmt;

use kiln_types::Digest;
use serde::{Deserialize, Serialize};

use crate::GoBuildInfo;

/// Executable container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// ELF (Linux, BSDs).
    Elf,
    /// Mach-O (darwin, ios).
    Macho,
    /// PE/COFF (windows).
    Pe,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Elf => "ELF",
            Format::Macho => "Mach-O",
            Format::Pe => "PE",
        })
    }
}

/// How a binary gets its libraries at run time.
///
/// `static` has no interpreter and no shared libraries. On darwin, ios, windows, openbsd, solaris
/// and illumos every Go binary needs the OS's own loader and libraries (libSystem, kernel32.dll,
/// OpenBSD's libc.so), even with `CGO_ENABLED=0`: such a binary is `system-libs`, which is as static
/// as Go makes it there (see [`crate::SystemLinking`]). Whether cgo was used is a separate check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linkage {
    /// Self-contained: runs in an empty (`scratch`) image.
    Static,
    /// Position-independent and self-relocating, no interpreter: runs in `scratch` too.
    StaticPie,
    /// Needs only the loader and libraries the OS ships and Go itself links on that OS.
    SystemLibs,
    /// Needs a dynamic loader and/or shared libraries present at run time.
    Dynamic,
}

impl fmt::Display for Linkage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Linkage::Static => "static",
            Linkage::StaticPie => "static-pie",
            Linkage::SystemLibs => "system-libs only",
            Linkage::Dynamic => "dynamic",
        })
    }
}

/// What kiln learned about one binary without running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryReport {
    /// Container format.
    pub format: Format,
    /// CPU architecture in Go's spelling (`amd64`, `arm64`, `386`, `ppc64le`, ...).
    pub arch: String,
    /// Operating system: `GOOS` from build info when present, otherwise guessed from the format.
    pub os: String,
    /// Static, static-pie, system-libs or dynamic (see [`Linkage`]).
    pub linkage: Linkage,
    /// ELF `PT_INTERP` or Mach-O `LC_LOAD_DYLINKER` path.
    pub interpreter: Option<String>,
    /// Shared libraries: ELF `DT_NEEDED`, Mach-O dylibs, PE imported DLLs, in file order.
    pub needed: Vec<String>,
    /// No symbol table (`-ldflags=-s`).
    pub stripped: bool,
    /// Position-independent executable.
    pub pie: bool,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: Digest,
    /// Go build info, if the binary was built by Go >= 1.18 (or the old format could be read).
    pub go: Option<GoBuildInfo>,
    /// Things worth knowing that are not errors (e.g. why `go` is missing).
    pub notes: Vec<String>,
}

impl BinaryReport {
    /// One line for a table: `ELF amd64 static, stripped, go1.26.8, CGO_ENABLED=0`.
    pub fn summary(&self) -> String {
        let mut out = format!("{} {} {}", self.format, self.arch, self.linkage);
        if matches!(self.linkage, Linkage::Dynamic | Linkage::SystemLibs) && !self.needed.is_empty()
        {
            out.push_str(&format!(" ({})", self.needed.join(", ")));
        }
        if self.pie && self.linkage != Linkage::StaticPie {
            out.push_str(", pie");
        }
        out.push_str(if self.stripped {
            ", stripped"
        } else {
            ", not stripped"
        });
        match &self.go {
            Some(go) => {
                out.push_str(", ");
                out.push_str(&go.go_version);
                if let Some(cgo) = go.setting("CGO_ENABLED") {
                    out.push_str(", CGO_ENABLED=");
                    out.push_str(cgo);
                }
            }
            None => out.push_str(", no Go build info"),
        }
        out
    }
}
