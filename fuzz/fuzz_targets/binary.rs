//! Arbitrary bytes -> kiln-verify: the ELF/Mach-O/PE inspector with the Go build info reader, the
//! static-binary policy over its report, and the module info text parser. None of it may panic.
//!
//! The bytes are inspected twice: in memory (`inspect_bytes`) and from a file (`inspect_file`,
//! what `kiln build` uses, which reads only the ranges it needs). Both must give the same answer.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use kiln_verify::{check, inspect_bytes, inspect_file, Expectation, GoBuildInfo, VerifyError};
use libfuzzer_sys::fuzz_target;

/// One scratch file per fuzzing process.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("kiln-fuzz-binary-{}", std::process::id()))
    })
}

fn unwrap_file_error(e: VerifyError) -> String {
    match e {
        VerifyError::File { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let in_memory = inspect_bytes(data);
    std::fs::write(scratch(), data).expect("write scratch file");
    let from_file = inspect_file(scratch());
    match (&in_memory, from_file) {
        (Ok(a), Ok(b)) => assert_eq!(a, &b, "inspect_bytes and inspect_file disagree"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), unwrap_file_error(b)),
        (a, b) => panic!("inspect_bytes gave {a:?}, inspect_file gave {b:?}"),
    }
    if let Ok(report) = in_memory {
        let _ = report.summary();
        let _ = check(&report, &Expectation::default());
        let _ = check(&report, &Expectation::static_for("linux", "amd64"));
        let own = Expectation {
            static_required: false,
            goos: Some(report.os.clone()),
            goarch: Some(report.arch.clone()),
            cgo_packages: vec!["example.com/app/cgo".into()],
        };
        let _ = check(&report, &own);
        if let Some(go) = &report.go {
            let _ = go.to_string();
        }
    }
    if let Ok(info) = GoBuildInfo::from_modinfo("go1.26.8", data) {
        let _ = info.to_string();
        let _ = (
            info.cgo_enabled(),
            info.goos(),
            info.goarch(),
            info.trimpath(),
        );
    }
});
