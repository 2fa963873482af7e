//! Peak memory of inspecting a large binary: `inspect_file` must read only the ranges it parses,
//! not the whole file. Alone in its own test binary (one process, one test) because it reads the
//! process-wide peak RSS (`VmHWM` in `/proc/self/status`, Linux only), which never goes down.

use std::path::PathBuf;
use std::process::Command;

use kiln_verify::{inspect_bytes, inspect_file};

const PADDED_SIZE: u64 = 150 << 20;

/// Peak resident set size of this process so far, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The toolchain's own `go` command: a real Go binary nobody has to build.
fn toolchain_go() -> PathBuf {
    let out = Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .expect("`go` not found: install Go 1.22+ and put it on PATH");
    assert!(out.status.success(), "go env GOROOT failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("bin/go")
}

#[test]
fn inspecting_a_150_mb_binary_does_not_load_it() {
    let Some(before) = peak_rss_kib() else {
        eprintln!("no /proc/self/status: skipping the peak memory measurement");
        return;
    };
    // A real Go binary followed by zeros up to 150 MB (ELF ignores trailing data); `set_len`
    // makes the padding a hole, so the file costs no disk space.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("go-padded");
    std::fs::copy(toolchain_go(), &big).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(PADDED_SIZE)
        .unwrap();

    let report = inspect_file(&big).unwrap();
    let after_file = peak_rss_kib().unwrap();
    assert_eq!(report.size, PADDED_SIZE);
    assert!(report.go.is_some(), "build info of the padded go binary");

    // The old way, for comparison: the whole file in memory, then parsed.
    let bytes = std::fs::read(&big).unwrap();
    assert_eq!(inspect_bytes(&bytes).unwrap(), report);
    drop(bytes);
    let after_bytes = peak_rss_kib().unwrap();

    let file_growth = after_file.saturating_sub(before);
    let bytes_growth = after_bytes.saturating_sub(before);
    println!(
        "peak RSS (VmHWM): start {before} KiB; after inspect_file {after_file} KiB \
         (+{} MiB); after read + inspect_bytes {after_bytes} KiB (+{} MiB)",
        file_growth / 1024,
        bytes_growth / 1024
    );
    assert!(
        file_growth < 32 << 10,
        "inspect_file of a {PADDED_SIZE}-byte file grew peak RSS by {file_growth} KiB"
    );
}
