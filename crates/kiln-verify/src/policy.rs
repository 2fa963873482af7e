//! Turning a [`BinaryReport`] into findings against what the build was supposed to produce.

use serde::{Deserialize, Serialize};

use crate::platform::SystemLinking;
use crate::report::{BinaryReport, Format, Linkage};

/// What the build promised: kiln's default is a static binary for one GOOS/GOARCH.
///
/// Deserializes with defaults for missing fields, so `{}` means "static, any platform".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Expectation {
    /// The binary must be as static as Go makes it on its GOOS (see [`SystemLinking`]): no loader
    /// or libraries beyond the OS's own that Go links there, no cgo.
    pub static_required: bool,
    /// Expected `GOOS`, if known.
    pub goos: Option<String>,
    /// Expected `GOARCH`, if known.
    pub goarch: Option<String>,
    /// Packages of this build that use cgo (from the import graph), named in the hint.
    pub cgo_packages: Vec<String>,
}

impl Expectation {
    /// A static binary for `goos`/`goarch`, kiln's default.
    pub fn static_for(goos: &str, goarch: &str) -> Self {
        Expectation {
            static_required: true,
            goos: Some(goos.to_owned()),
            goarch: Some(goarch.to_owned()),
            cgo_packages: Vec::new(),
        }
    }
}

impl Default for Expectation {
    /// Static required, any platform.
    fn default() -> Self {
        Expectation {
            static_required: true,
            goos: None,
            goarch: None,
            cgo_packages: Vec::new(),
        }
    }
}

/// How bad a finding is: errors fail `kiln build`/`kiln verify-bin`, warnings are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The binary does not meet the expectation.
    Error,
    /// Worth fixing, but the binary works.
    Warning,
}

/// One problem found in a binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable identifier for scripts and docs: `dynamic-elf`, `dynamic-macho`, `dynamic-pe`,
    /// `cgo-enabled`, `wrong-os`, `wrong-arch`, `no-buildinfo`, `not-trimpath`.
    pub code: &'static str,
    /// What is wrong, naming the cause.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Checks `report` against `exp` and returns every finding, errors first.
pub fn check(report: &BinaryReport, exp: &Expectation) -> Vec<Finding> {
    let mut findings = Vec::new();
    let go = report.go.as_ref();
    let cgo = go.and_then(|g| g.cgo_enabled()) == Some(true);
    let cgo_suffix = if cgo {
        "; built with CGO_ENABLED=1"
    } else {
        ""
    };

    if exp.static_required {
        let rule = SystemLinking::for_goos(&report.os);
        let dynamic = report.linkage == Linkage::Dynamic;
        if dynamic {
            // Name only what goes beyond what Go itself links on this OS (everything on linux).
            let mut causes = Vec::new();
            if let Some(interp) = report
                .interpreter
                .as_deref()
                .filter(|i| !rule.allows_interpreter(i))
            {
                causes.push(format!("interpreter {interp}"));
            }
            let foreign: Vec<&str> = report
                .needed
                .iter()
                .map(String::as_str)
                .filter(|lib| !rule.allows_library(lib))
                .collect();
            if !foreign.is_empty() {
                let verb = if rule == SystemLinking::None {
                    "needs"
                } else {
                    "needs non-system libraries"
                };
                causes.push(format!("{verb} {}", foreign.join(", ")));
            }
            if causes.is_empty() {
                causes.push("shared object, not a self-contained program".into());
            }
            let (code, what) = match report.format {
                Format::Elf => ("dynamic-elf", "dynamically linked"),
                Format::Macho => ("dynamic-macho", "links more than the system libraries"),
                Format::Pe => ("dynamic-pe", "links more than the system DLLs"),
            };
            findings.push(error(
                code,
                format!("{what}: {}{cgo_suffix}", causes.join(", ")),
                dynamic_hint(report, exp),
            ));
        }
        if cgo && !dynamic {
            let finding = if rule == SystemLinking::None {
                // Statically linked C works in scratch, but glibc's resolver and user lookup still
                // try to dlopen NSS modules at run time, so it deserves a look rather than a fail.
                Finding {
                    severity: Severity::Warning,
                    code: "cgo-enabled",
                    message: format!(
                        "statically linked ({}) but built with CGO_ENABLED=1: glibc's getaddrinfo \
                         and getpwnam may still load shared NSS libraries at run time",
                        report.linkage
                    ),
                    hint: Some(cgo_hint(exp)),
                }
            } else {
                error(
                    "cgo-enabled",
                    format!(
                        "built with CGO_ENABLED=1: on {} a binary as static as Go makes it \
                         (system libraries only) must be built without cgo",
                        report.os
                    ),
                    cgo_hint(exp),
                )
            };
            findings.push(finding);
        }
    }

    if let Some(goos) = exp.goos.as_deref().filter(|&g| g != report.os) {
        findings.push(error(
            "wrong-os",
            format!("built for GOOS={}, expected GOOS={goos}", report.os),
            format!("build with GOOS={goos} (kiln sets it from the target platform; check GOOS in the environment or flags)"),
        ));
    }
    if let Some(goarch) = exp.goarch.as_deref().filter(|&a| a != report.arch) {
        findings.push(error(
            "wrong-arch",
            format!("{} binary is {}, expected GOARCH={goarch}", report.format, report.arch),
            format!("build with GOARCH={goarch} (kiln sets it from the target platform; check GOARCH in the environment or flags)"),
        ));
    }

    match go {
        None => {
            // Without build info this is most likely not a Go program at all: no Go advice.
            let why = if report.notes.is_empty() { String::new() } else { format!(": {}", report.notes.join("; ")) };
            findings.push(Finding {
                severity: Severity::Warning,
                code: "no-buildinfo",
                message: format!("no Go build info{why}; cgo, GOOS/GOARCH and Go modules cannot be checked"),
                hint: None,
            });
        }
        Some(info) if !info.trimpath() => findings.push(Finding {
            severity: Severity::Warning,
            code: "not-trimpath",
            message: "built without -trimpath: build-machine paths are embedded, so the binary differs between machines".into(),
            hint: Some("add -trimpath to the go build flags".into()),
        }),
        Some(_) => {}
    }

    findings.sort_by_key(|f| f.severity != Severity::Error);
    findings
}

fn error(code: &'static str, message: String, hint: String) -> Finding {
    Finding {
        severity: Severity::Error,
        code,
        message,
        hint: Some(hint),
    }
}

/// The fix for a dynamic binary: Go advice for a Go binary, general advice for anything else.
fn dynamic_hint(report: &BinaryReport, exp: &Expectation) -> String {
    if report.go.is_some() {
        return cgo_hint(exp);
    }
    "not a Go binary (no Go build info): link it statically, or run it on a base image that \
     provides these libraries; --allow-dynamic reports it without failing"
        .into()
}

fn cgo_hint(exp: &Expectation) -> String {
    let who = if exp.cgo_packages.is_empty() {
        "net and os/user use cgo when CGO_ENABLED=1; a package importing \"C\" always does"
            .to_owned()
    } else {
        format!(
            "packages that need cgo here: {}",
            exp.cgo_packages.join(", ")
        )
    };
    format!(
        "{who}; build with CGO_ENABLED=0, or use the netgo/osusergo build tags, or opt the \
         service into cgo in kiln.toml (cgo = true)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GoBuildInfo, Linkage};
    use kiln_types::Digest;

    fn report(format: Format, os: &str, needed: &[&str], cgo: &str) -> BinaryReport {
        let modinfo = format!("mod\tx\t(devel)\t\nbuild\tCGO_ENABLED={cgo}\nbuild\tGOOS={os}\nbuild\t-trimpath=true\n");
        BinaryReport {
            format,
            arch: "arm64".into(),
            os: os.into(),
            linkage: if needed.is_empty() {
                Linkage::Static
            } else if needed.iter().all(|l| crate::is_system_library(os, l)) {
                Linkage::SystemLibs
            } else {
                Linkage::Dynamic
            },
            interpreter: None,
            needed: needed.iter().map(|s| (*s).to_owned()).collect(),
            stripped: true,
            pie: true,
            size: 1,
            sha256: Digest::of_bytes(b""),
            go: Some(GoBuildInfo::from_modinfo("go1.26.8", modinfo.as_bytes()).unwrap()),
            notes: Vec::new(),
        }
    }

    fn codes(r: &BinaryReport) -> Vec<(&'static str, Severity)> {
        check(r, &Expectation::default())
            .into_iter()
            .map(|f| (f.code, f.severity))
            .collect()
    }

    #[test]
    fn darwin_system_dylibs_are_fine_but_others_are_not() {
        let ok = report(
            Format::Macho,
            "darwin",
            &[
                "/usr/lib/libSystem.B.dylib",
                "/System/Library/Frameworks/Security.framework/Versions/A/Security",
            ],
            "0",
        );
        assert_eq!(codes(&ok), vec![]);
        let brew = report(
            Format::Macho,
            "darwin",
            &[
                "/usr/lib/libSystem.B.dylib",
                "/opt/homebrew/lib/libsqlite3.dylib",
            ],
            "1",
        );
        let findings = check(&brew, &Expectation::default());
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].code, "dynamic-macho");
        assert!(findings[0]
            .message
            .contains("/opt/homebrew/lib/libsqlite3.dylib; built with CGO_ENABLED=1"));
        assert!(!findings[0].message.contains("libSystem"));
    }

    #[test]
    fn windows_cgo_is_an_error_even_with_system_dlls_only() {
        let r = report(Format::Pe, "windows", &["KERNEL32.dll", "msvcrt.dll"], "1");
        assert_eq!(codes(&r), vec![("cgo-enabled", Severity::Error)]);
        let r = report(
            Format::Pe,
            "windows",
            &["kernel32.dll", "libwinpthread-1.dll"],
            "1",
        );
        assert_eq!(codes(&r), vec![("dynamic-pe", Severity::Error)]);
        let r = report(
            Format::Pe,
            "windows",
            &["kernel32.dll", "api-ms-win-core-synch-l1-2-0.dll"],
            "0",
        );
        assert_eq!(codes(&r), vec![]);
    }

    #[test]
    fn issue_9_openbsd_system_libs_pass_and_extra_libraries_are_named() {
        let mut r = report(Format::Elf, "openbsd", &["libc.so", "libpthread.so"], "0");
        r.interpreter = Some("/usr/libexec/ld.so".into());
        assert_eq!(r.linkage, Linkage::SystemLibs);
        assert_eq!(codes(&r), vec![]);
        assert!(
            r.summary()
                .contains("system-libs only (libc.so, libpthread.so)"),
            "{}",
            r.summary()
        );

        let mut extra = report(
            Format::Elf,
            "openbsd",
            &["libc.so", "libsqlite3.so.37.0"],
            "1",
        );
        extra.interpreter = Some("/usr/libexec/ld.so".into());
        let f = check(&extra, &Expectation::default());
        assert_eq!(f[0].code, "dynamic-elf");
        assert_eq!(
            f[0].message,
            "dynamically linked: needs non-system libraries libsqlite3.so.37.0; built with CGO_ENABLED=1"
        );

        // The same loader and libraries on linux are what makes a binary dynamic.
        let mut linux = report(Format::Elf, "linux", &["libc.so"], "0");
        linux.interpreter = Some("/usr/libexec/ld.so".into());
        assert_eq!(
            check(&linux, &Expectation::default())[0].message,
            "dynamically linked: interpreter /usr/libexec/ld.so, needs libc.so"
        );
    }

    #[test]
    fn issue_9_non_go_binaries_get_no_go_advice() {
        let mut r = report(Format::Elf, "linux", &["libc.so.6"], "0");
        r.interpreter = Some("/lib64/ld-linux-x86-64.so.2".into());
        r.go = None;
        r.notes = vec!["no Go build info found (not built by the Go toolchain?)".into()];
        let findings = check(&r, &Expectation::default());
        assert_eq!(findings.len(), 2, "{findings:#?}");
        for f in &findings {
            let text = format!("{} {}", f.message, f.hint.as_deref().unwrap_or(""));
            for go_advice in ["CGO_ENABLED", "netgo", "cgo = true", "Go 1.18", "-trimpath"] {
                assert!(!text.contains(go_advice), "{go_advice} in {text}");
            }
        }
        assert!(findings[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("not a Go binary"));
    }

    #[test]
    fn warnings_sort_after_errors_and_static_can_be_waived() {
        let mut r = report(Format::Elf, "linux", &["libc.so.6"], "1");
        r.linkage = Linkage::Dynamic;
        r.go = None;
        let exp = Expectation::static_for("linux", "amd64");
        let got: Vec<_> = check(&r, &exp)
            .into_iter()
            .map(|f| (f.code, f.severity))
            .collect();
        assert_eq!(
            got,
            vec![
                ("dynamic-elf", Severity::Error),
                ("wrong-arch", Severity::Error),
                ("no-buildinfo", Severity::Warning)
            ]
        );
        let waived = Expectation {
            static_required: false,
            goarch: None,
            ..exp
        };
        let got: Vec<_> = check(&r, &waived).into_iter().map(|f| f.code).collect();
        assert_eq!(got, vec!["no-buildinfo"]);
    }
}
