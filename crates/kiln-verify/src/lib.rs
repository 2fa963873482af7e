//! Binary verification: what a built executable really is, read in-process from its headers.
//!
//! kiln's flow is discover -> plan -> key -> cache -> execute -> **verify** -> package -> attest ->
//! publish -> record. After `go build` produced a binary, this crate answers the questions that
//! decide whether it may go into a minimal image: which format and architecture, is it static
//! (ELF `PT_INTERP`/`DT_NEEDED`, Mach-O dylibs, PE imports), was it built with cgo, for which
//! GOOS/GOARCH, with `-trimpath`? It also parses the Go build info (toolchain version, main module,
//! dependency modules with replacements, build settings) that the SBOM code later turns into
//! packages. No `ldd`, `file` or `go version -m` is run.
//!
//! ```no_run
//! use kiln_verify::{check, inspect_file, Expectation};
//! # fn main() -> Result<(), kiln_verify::VerifyError> {
//! let report = inspect_file(std::path::Path::new("dist/linux_amd64/app"))?;
//! println!("{}", report.summary()); // ELF amd64 static, stripped, go1.26.8, CGO_ENABLED=0
//! for finding in check(&report, &Expectation::static_for("linux", "amd64")) {
//!     println!("{}: {}", finding.code, finding.message);
//! }
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod buildinfo;
mod error;
mod inspect;
mod platform;
mod policy;
mod quote;
mod report;

pub use buildinfo::{BuildSetting, GoBuildInfo, Module};
pub use error::VerifyError;
pub use inspect::{inspect_bytes, inspect_file, inspect_file_known};
pub use platform::{is_system_library, SystemLinking};
pub use policy::{check, Expectation, Finding, Severity};
pub use report::{BinaryReport, Format, Linkage};
