//! Inspects binaries built by the real Go toolchain (and gcc for the cgo cases) and cross-checks
//! ELF facts against binutils' `readelf`.

mod support;

use std::path::Path;

use kiln_types::Digest;
use kiln_verify::{
    check, inspect_bytes, inspect_file, BinaryReport, Expectation, Format, Linkage, Severity,
    VerifyError,
};

const STATIC: &[&str] = &["-trimpath", "-ldflags=-s -w -buildid="];
const NO_CGO_AMD64: &[(&str, &str)] =
    &[("CGO_ENABLED", "0"), ("GOOS", "linux"), ("GOARCH", "amd64")];
const CGO_AMD64: &[(&str, &str)] = &[("CGO_ENABLED", "1"), ("GOOS", "linux"), ("GOARCH", "amd64")];

fixture!(static_amd64, "hello", NO_CGO_AMD64, STATIC);
// All linux/amd64 cgo fixtures share -trimpath (and the PIE ones -buildmode=pie) so that a cold
// Go build cache compiles each variant of the standard library only once.
fixture!(cgo_net, "netuser", CGO_AMD64, &["-trimpath"]);
fixture!(cgo_c, "cgo", CGO_AMD64, &["-trimpath"]);
fixture!(
    pie_cgo,
    "netuser",
    CGO_AMD64,
    &["-trimpath", "-buildmode=pie"]
);
fixture!(
    static_pie,
    "cgo",
    CGO_AMD64,
    &[
        "-trimpath",
        "-buildmode=pie",
        "-ldflags=-linkmode external -extldflags -static-pie"
    ]
);
fixture!(
    arm64,
    "hello",
    &[("CGO_ENABLED", "0"), ("GOOS", "linux"), ("GOARCH", "arm64")],
    STATIC
);
fixture!(
    windows,
    "hello",
    &[
        ("CGO_ENABLED", "0"),
        ("GOOS", "windows"),
        ("GOARCH", "amd64")
    ],
    STATIC
);
fixture!(
    darwin,
    "hello",
    &[
        ("CGO_ENABLED", "0"),
        ("GOOS", "darwin"),
        ("GOARCH", "arm64")
    ],
    STATIC
);
fixture!(
    openbsd,
    "hello",
    &[
        ("CGO_ENABLED", "0"),
        ("GOOS", "openbsd"),
        ("GOARCH", "amd64")
    ],
    STATIC
);
// Not stripped and not trimmed, with an -ldflags value Go must quote in the build info.
fixture!(
    i386,
    "hello",
    &[("CGO_ENABLED", "0"), ("GOOS", "linux"), ("GOARCH", "386")],
    &["-ldflags=-X 'main.version=v1 \"beta\"'"]
);

fn inspect(path: &Path) -> BinaryReport {
    inspect_file(path).unwrap_or_else(|e| panic!("inspect {}: {e}", path.display()))
}

fn codes(report: &BinaryReport, exp: &Expectation) -> Vec<(&'static str, Severity)> {
    check(report, exp)
        .into_iter()
        .map(|f| (f.code, f.severity))
        .collect()
}

/// `DT_NEEDED` names and the interpreter as binutils sees them.
fn readelf_needed_and_interp(path: &Path) -> (Vec<String>, Option<String>) {
    let dynamic = support::readelf(&["-d", "-W"], path);
    let needed = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect();
    let program = support::readelf(&["-l", "-W"], path);
    let interp = program
        .lines()
        .find_map(|l| l.split_once("[Requesting program interpreter: "))
        .map(|(_, rest)| rest.trim_end_matches(']').to_owned());
    (needed, interp)
}

fn assert_matches_readelf(report: &BinaryReport, path: &Path) {
    let (needed, interp) = readelf_needed_and_interp(path);
    assert_eq!(report.needed, needed, "DT_NEEDED differs from readelf");
    assert_eq!(
        report.interpreter, interp,
        "interpreter differs from readelf"
    );
}

#[test]
fn static_linux_amd64_with_replaced_dependency() {
    let path = static_amd64();
    let r = inspect(path);
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        (r.format, r.arch.as_str(), r.os.as_str()),
        (Format::Elf, "amd64", "linux")
    );
    assert_eq!(r.linkage, Linkage::Static);
    assert_eq!(r.interpreter, None);
    assert!(r.needed.is_empty());
    assert!(r.stripped, "built with -s");
    assert!(!r.pie);
    assert_eq!(r.size, bytes.len() as u64);
    assert_eq!(r.sha256, Digest::of_bytes(&bytes));
    assert_matches_readelf(&r, path);

    let go = r.go.as_ref().expect("build info");
    assert_eq!(go.go_version, support::go_version());
    assert_eq!(go.path, "example.com/kilnapp/cmd/hello");
    assert_eq!(go.main.path, "example.com/kilnapp");
    assert_eq!(go.main.version, "(devel)");
    assert_eq!(go.deps.len(), 1);
    let dep = &go.deps[0];
    assert_eq!(
        (dep.path.as_str(), dep.version.as_str()),
        ("example.com/kilndep", "v0.0.0")
    );
    let replace = dep.replace.as_deref().expect("=> line");
    assert_eq!(replace.path, "../dep");
    assert_eq!(replace.sum, None);
    assert_eq!(go.cgo_enabled(), Some(false));
    assert_eq!((go.goos(), go.goarch()), (Some("linux"), Some("amd64")));
    assert!(go.trimpath());
    assert_eq!(go.setting("-buildmode"), Some("exe"));

    assert_eq!(
        check(&r, &Expectation::static_for("linux", "amd64")),
        vec![]
    );
    assert_eq!(
        r.summary(),
        format!(
            "ELF amd64 static, stripped, {}, CGO_ENABLED=0",
            support::go_version()
        )
    );
    let wrong = codes(&r, &Expectation::static_for("windows", "arm64"));
    assert_eq!(
        wrong,
        vec![
            ("wrong-os", Severity::Error),
            ("wrong-arch", Severity::Error)
        ]
    );

    // What the CLI prints with --json must come back unchanged.
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"linkage\":\"static\""), "{json}");
    assert_eq!(serde_json::from_str::<BinaryReport>(&json).unwrap(), r);
}

#[test]
fn cgo_net_binary_is_dynamic_and_the_finding_names_cause_and_fix() {
    let path = cgo_net();
    let r = inspect(path);
    assert_eq!(r.linkage, Linkage::Dynamic);
    assert_matches_readelf(&r, path);
    let interp = r.interpreter.clone().expect("PT_INTERP");
    assert!(interp.contains("ld-linux-x86-64.so.2"), "{interp}");
    assert!(r.needed.iter().any(|n| n == "libc.so.6"), "{:?}", r.needed);
    assert!(!r.stripped);
    let go = r.go.as_ref().unwrap();
    assert_eq!(go.cgo_enabled(), Some(true));

    let exp = Expectation::static_for("linux", "amd64");
    let findings = check(&r, &exp);
    let got: Vec<_> = findings.iter().map(|f| f.code).collect();
    assert_eq!(got, vec!["dynamic-elf"], "{findings:#?}");
    let dynamic = &findings[0];
    assert_eq!(dynamic.severity, Severity::Error);
    for part in [
        format!("interpreter {interp}"),
        "libc.so.6".into(),
        "CGO_ENABLED=1".into(),
    ] {
        assert!(
            dynamic.message.contains(&part),
            "{:?} lacks {part:?}",
            dynamic.message
        );
    }
    let hint = dynamic.hint.as_deref().unwrap();
    assert!(hint.contains("net and os/user use cgo"), "{hint}");
    assert!(
        hint.contains("CGO_ENABLED=0")
            && hint.contains("netgo/osusergo")
            && hint.contains("cgo = true")
    );

    let named = Expectation {
        cgo_packages: vec!["net".into(), "os/user".into()],
        ..exp
    };
    let hint = check(&r, &named)[0].hint.clone().unwrap();
    assert!(
        hint.starts_with("packages that need cgo here: net, os/user;"),
        "{hint}"
    );
    // Not asking for static makes the binary acceptable.
    let relaxed = Expectation {
        static_required: false,
        ..Expectation::default()
    };
    assert_eq!(codes(&r, &relaxed), vec![]);
}

#[test]
fn import_c_binary_is_dynamic() {
    let path = cgo_c();
    let r = inspect(path);
    assert_eq!(r.linkage, Linkage::Dynamic);
    assert!(r.needed.iter().any(|n| n == "libc.so.6"), "{:?}", r.needed);
    assert_matches_readelf(&r, path);
    assert_eq!(r.go.as_ref().unwrap().cgo_enabled(), Some(true));
    assert_eq!(
        codes(&r, &Expectation::default()),
        vec![("dynamic-elf", Severity::Error)]
    );
}

#[test]
fn pie_with_cgo_is_dynamic_pie() {
    let path = pie_cgo();
    let r = inspect(path);
    assert_eq!(r.linkage, Linkage::Dynamic);
    assert!(r.pie);
    assert!(r.interpreter.is_some());
    assert_matches_readelf(&r, path);
    assert!(support::readelf(&["-h"], path).contains("DYN"));
    assert_eq!(r.go.as_ref().unwrap().setting("-buildmode"), Some("pie"));
    assert!(r.summary().contains(", pie,"), "{}", r.summary());
    assert_eq!(
        codes(&r, &Expectation::default()),
        vec![("dynamic-elf", Severity::Error)]
    );
}

#[test]
fn static_pie_runs_without_interpreter() {
    let path = static_pie();
    let r = inspect(path);
    assert_eq!(r.linkage, Linkage::StaticPie);
    assert!(r.pie);
    assert_eq!(r.interpreter, None);
    assert!(r.needed.is_empty());
    assert_matches_readelf(&r, path);
    assert!(
        support::readelf(&["-d"], path).contains("PIE"),
        "readelf sees no DF_1_PIE"
    );
    // Static, so no dynamic finding; but cgo is in there, which is worth a warning.
    assert_eq!(
        codes(&r, &Expectation::static_for("linux", "amd64")),
        vec![("cgo-enabled", Severity::Warning)]
    );
    // It really runs on its own.
    let out = std::process::Command::new(path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "dep 42");
}

#[test]
fn linux_arm64() {
    let r = inspect(arm64());
    assert_eq!(
        (r.format, r.arch.as_str(), r.linkage),
        (Format::Elf, "arm64", Linkage::Static)
    );
    assert_eq!(r.go.as_ref().unwrap().goarch(), Some("arm64"));
    assert_eq!(
        check(&r, &Expectation::static_for("linux", "arm64")),
        vec![]
    );
    let wrong = check(&r, &Expectation::static_for("linux", "amd64"));
    assert_eq!(wrong.len(), 1);
    assert_eq!(wrong[0].code, "wrong-arch");
    assert!(
        wrong[0].message.contains("arm64") && wrong[0].message.contains("GOARCH=amd64"),
        "{}",
        wrong[0].message
    );
}

#[test]
fn linux_386_keeps_symbols_and_quotes_ldflags() {
    let path = i386();
    let r = inspect(path);
    assert_eq!(
        (r.format, r.arch.as_str(), r.linkage),
        (Format::Elf, "386", Linkage::Static)
    );
    assert!(!r.stripped, "built without -s");
    assert!(support::readelf(&["-S", "-W"], path).contains(".symtab"));
    let go = r.go.as_ref().unwrap();
    assert_eq!(
        go.setting("-ldflags"),
        Some("-X 'main.version=v1 \"beta\"'")
    );
    assert_eq!(go.go_version, support::go_version());
    assert_eq!(
        codes(&r, &Expectation::static_for("linux", "386")),
        vec![("not-trimpath", Severity::Warning)]
    );
    assert!(r.summary().contains("not stripped"), "{}", r.summary());
}

#[test]
fn windows_pe_imports_only_system_dlls() {
    let r = inspect(windows());
    assert_eq!(
        (r.format, r.arch.as_str(), r.os.as_str()),
        (Format::Pe, "amd64", "windows")
    );
    assert!(
        r.needed
            .iter()
            .any(|d| d.eq_ignore_ascii_case("kernel32.dll")),
        "{:?}",
        r.needed
    );
    // binutils reads PE too: the import list must be the same.
    let dlls: Vec<String> = support::objdump_p(windows())
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DLL Name: ").map(str::to_owned))
        .collect();
    assert_eq!(r.needed, dlls);
    assert_eq!(r.linkage, Linkage::SystemLibs);
    assert!(r.stripped);
    let go = r.go.as_ref().expect("build info in .data");
    assert_eq!(
        (go.goos(), go.cgo_enabled()),
        (Some("windows"), Some(false))
    );
    assert_eq!(go.deps[0].replace.as_deref().unwrap().path, "../dep");
    assert_eq!(
        check(&r, &Expectation::static_for("windows", "amd64")),
        vec![]
    );
    assert!(
        r.summary().starts_with("PE amd64 system-libs only ("),
        "{}",
        r.summary()
    );
}

#[test]
fn darwin_macho_links_libsystem_only() {
    let r = inspect(darwin());
    assert_eq!(
        (r.format, r.arch.as_str(), r.os.as_str()),
        (Format::Macho, "arm64", "darwin")
    );
    assert!(
        r.needed.iter().any(|d| d.starts_with("/usr/lib/libSystem")),
        "{:?}",
        r.needed
    );
    assert_eq!(r.interpreter.as_deref(), Some("/usr/lib/dyld"));
    assert_eq!(r.linkage, Linkage::SystemLibs);
    assert!(r.pie, "darwin/arm64 is always PIE");
    let go = r.go.as_ref().expect("build info in __go_buildinfo");
    assert_eq!((go.goos(), go.goarch()), (Some("darwin"), Some("arm64")));
    assert_eq!(
        check(&r, &Expectation::static_for("darwin", "arm64")),
        vec![]
    );
}

#[test]
fn issue_9_openbsd_binary_links_only_what_go_links() {
    let r = inspect(openbsd());
    // Go links OpenBSD's libc even with CGO_ENABLED=0: readelf sees the same loader and libraries.
    assert_matches_readelf(&r, openbsd());
    assert_eq!(r.interpreter.as_deref(), Some("/usr/libexec/ld.so"));
    assert_eq!(r.needed, ["libc.so", "libpthread.so"]);
    assert_eq!((r.os.as_str(), r.linkage), ("openbsd", Linkage::SystemLibs));
    assert_eq!(
        check(&r, &Expectation::static_for("openbsd", "amd64")),
        vec![]
    );
    assert!(
        r.summary()
            .starts_with("ELF amd64 system-libs only (libc.so, libpthread.so)"),
        "{}",
        r.summary()
    );
}

#[test]
fn truncated_and_corrupted_binaries_fail_cleanly() {
    let bytes = std::fs::read(static_amd64()).unwrap();
    // Cutting anywhere must give an error or a (partial) report, never a panic.
    for len in [
        0,
        1,
        4,
        16,
        52,
        63,
        64,
        100,
        1000,
        4096,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let _ = inspect_bytes(&bytes[..len]);
    }
    assert!(inspect_bytes(&bytes[..20]).is_err());
    // Program headers pointing past the end.
    let mut broken = bytes.clone();
    broken[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
    assert!(matches!(
        inspect_bytes(&broken),
        Err(VerifyError::Malformed { .. })
    ));

    let err = inspect_bytes(b"#!/bin/sh\necho hi\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("not an executable: a script"), "{err}");
    let err = inspect_bytes(&[0x13u8; 300]).unwrap_err().to_string();
    assert!(err.starts_with("not an executable"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = inspect_file(&missing).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");

    // Build info magic overwritten: the report survives, with a note and a warning.
    let magic = b"\xff Go buildinf:";
    let at = bytes.windows(magic.len()).position(|w| w == magic).unwrap();
    let mut no_info = bytes.clone();
    no_info[at] = 0;
    let r = inspect_bytes(&no_info).unwrap();
    assert!(r.go.is_none());
    assert!(!r.notes.is_empty());
    assert_eq!(
        codes(&r, &Expectation::static_for("linux", "amd64")),
        vec![("no-buildinfo", Severity::Warning)]
    );
}

/// Our parse, rendered back to Go's text form, must equal what `go version -m` prints.
#[test]
fn build_info_matches_go_version_m() {
    let all = [
        static_amd64(),
        cgo_net(),
        cgo_c(),
        pie_cgo(),
        static_pie(),
        arm64(),
        windows(),
        darwin(),
        i386(),
    ];
    // Plus a binary nobody built for this test: the toolchain's own `go` command.
    let goroot = std::process::Command::new(support::go())
        .args(["env", "GOROOT"])
        .output()
        .unwrap();
    let toolchain_go = Path::new(String::from_utf8(goroot.stdout).unwrap().trim()).join("bin/go");
    let toolchain = inspect(&toolchain_go);
    assert_eq!(
        toolchain.go.as_ref().map(|g| g.path.as_str()),
        Some("cmd/go")
    );
    for path in all.into_iter().chain([toolchain_go.as_path()]) {
        let out = std::process::Command::new(support::go())
            .args(["version", "-m"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "go version -m {}", path.display());
        let expected = String::from_utf8(out.stdout).unwrap();

        let mut go = inspect(path).go.expect("build info");
        let header = format!("{}: {}\n", path.display(), go.go_version);
        go.go_version.clear(); // `go version -m` prints it in the header line instead
        let text = go.to_string();
        let ours = format!(
            "{header}\t{}\n",
            text.trim_end_matches('\n').replace('\n', "\n\t")
        );
        assert_eq!(ours, expected, "build info of {}", path.display());
    }
}

/// Flipping bytes in the headers of real ELF, PE and Mach-O files must never panic.
#[test]
fn mutated_headers_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for path in [static_amd64(), windows(), darwin(), cgo_net()] {
        let original = std::fs::read(path).unwrap();
        let mut outcomes = (0, 0);
        for _ in 0..200 {
            let mut bytes = original.clone();
            for _ in 0..(next() % 8 + 1) {
                // Mostly the first 4 KiB (headers, load commands), sometimes anywhere.
                let span = if next() % 4 == 0 { bytes.len() } else { 4096 };
                let at = (next() as usize) % span;
                bytes[at] = next() as u8;
            }
            match inspect_bytes(&bytes) {
                Ok(_) => outcomes.0 += 1,
                Err(_) => outcomes.1 += 1,
            }
        }
        // The seed is fixed, so this is deterministic: some mutations hit fields that matter.
        assert!(
            outcomes.1 > 0,
            "no mutation of {} was detected: {outcomes:?}",
            path.display()
        );
        assert!(inspect_bytes(&original).is_ok());
    }
}

/// With section headers removed (as `sstrip` does), linkage comes from program headers and build
/// info from the first writable segment, like Go's own reader.
#[test]
fn elf_without_section_headers() {
    for path in [static_amd64(), cgo_net()] {
        let original = inspect(path);
        let mut bytes = std::fs::read(path).unwrap();
        bytes[0x28..0x30].fill(0); // e_shoff
        bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let r = inspect_bytes(&bytes).unwrap();
        assert_eq!(r.linkage, original.linkage, "{}", path.display());
        assert_eq!(
            (&r.interpreter, &r.needed),
            (&original.interpreter, &original.needed)
        );
        assert_eq!(r.go, original.go, "{}", path.display());
        assert!(r.stripped);
    }
}

/// Reading through the file (only the ranges parsing needs) and from a whole buffer must agree on
/// every fact, including size and digest, for every format; also with the file padded far past
/// its last section, as an appended payload would.
#[test]
fn file_and_bytes_give_identical_reports() {
    let dir = tempfile::tempdir().unwrap();
    for path in [
        static_amd64(),
        cgo_net(),
        cgo_c(),
        pie_cgo(),
        static_pie(),
        arm64(),
        windows(),
        darwin(),
        i386(),
    ] {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            inspect_file(path).unwrap(),
            inspect_bytes(&bytes).unwrap(),
            "{}",
            path.display()
        );
        assert_eq!(inspect(path).sha256, Digest::of_bytes(&bytes));

        let padded = dir.path().join("padded");
        std::fs::write(&padded, [&bytes[..], &[0u8; 1 << 20][..]].concat()).unwrap();
        let from_file = inspect_file(&padded).unwrap();
        assert_eq!(
            from_file,
            inspect_bytes(&std::fs::read(&padded).unwrap()).unwrap()
        );
        assert_eq!(from_file.size, bytes.len() as u64 + (1 << 20));

        // Errors agree too: a truncated copy fails (or not) the same way both ways.
        let cut = dir.path().join("cut");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let via_file = inspect_file(&cut).map_err(|e| match e {
            VerifyError::File { source, .. } => source.to_string(),
            other => panic!("unexpected {other}"),
        });
        let via_bytes = inspect_bytes(&bytes[..bytes.len() / 2]).map_err(|e| e.to_string());
        assert_eq!(via_file, via_bytes, "{}", path.display());
    }
    let err = inspect_file(dir.path()).unwrap_err();
    assert!(matches!(err, VerifyError::Read { .. }), "{err}");
}
