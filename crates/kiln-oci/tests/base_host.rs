//! The built-in kiln base is made from data compiled into kiln, never from the host it runs on.
//!
//! The test builds the base in two child processes (this test binary, re-executed) whose working
//! directory, blob store path, `HOME`, `TZ`, locale, umask and usable CPU count all differ, and
//! compares the layers' digests. Each child reports what it actually saw, so the test also fails
//! if the inputs it claims to vary did not reach the child.

mod common;

use std::path::Path;
use std::process::Command;

use kiln_oci::{build_kiln_base, BlobStore, BuiltLayer, Compression, KilnBase, LayerRecipe};
use serde::{Deserialize, Serialize};

/// Set in a child's environment: where it writes its [`ChildReport`].
const REPORT_VAR: &str = "KILN_OCI_TEST_BASE_REPORT";

/// The name of the child entry point below, as libtest filters it.
const CHILD_TEST: &str = "build_the_base_in_this_process";

#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    /// The layers, one per compression.
    layers: Vec<BuiltLayer>,
    /// What the child saw of its host.
    cwd: String,
    home: Option<String>,
    tz: Option<String>,
    lc_all: Option<String>,
    umask: u32,
    cpus: usize,
}

fn compressions() -> Vec<Compression> {
    vec![
        Compression::None,
        Compression::default(),
        Compression::GzipParallel { level: 6 },
        Compression::Zstd {
            level: 3,
            workers: 1,
        },
    ]
}

/// The effective umask, read back from the mode of a directory created with 0777.
fn current_umask(dir: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("umask-probe");
    std::fs::create_dir(&probe).unwrap();
    let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    std::fs::remove_dir(&probe).unwrap();
    0o777 & !mode
}

/// Child entry point: builds the base into a store under the current directory and writes the
/// report. Ignored in a plain `cargo test`; [`kiln_base_is_host_independent`] runs it.
#[test]
#[ignore = "run in a child process by kiln_base_is_host_independent"]
fn build_the_base_in_this_process() {
    let Some(report_path) = std::env::var_os(REPORT_VAR) else {
        panic!("{REPORT_VAR} is unset: this runs as a child of kiln_base_is_host_independent");
    };
    let cwd = std::env::current_dir().unwrap();
    let store = BlobStore::open(cwd.join("store")).unwrap();
    let layers = compressions()
        .into_iter()
        .map(|c| {
            let recipe = LayerRecipe::new(c).with_mtime(1_700_000_000);
            build_kiln_base(&store, &KilnBase::default(), &recipe).unwrap()
        })
        .collect();
    let var = |k: &str| std::env::var(k).ok();
    let report = ChildReport {
        layers,
        cwd: cwd.display().to_string(),
        home: var("HOME"),
        tz: var("TZ"),
        lc_all: var("LC_ALL"),
        umask: current_umask(&cwd),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    std::fs::write(report_path, serde_json::to_vec(&report).unwrap()).unwrap();
}

struct Host<'a> {
    cwd: &'a Path,
    home: Option<&'a Path>,
    tz: &'a str,
    lc_all: &'a str,
    umask: &'a str,
    /// `taskset` CPU list limiting the child, or all CPUs.
    cpu_list: Option<&'a str>,
}

fn build_in_child(host: &Host<'_>) -> ChildReport {
    let exe = std::env::current_exe().unwrap();
    let report = host.cwd.join("report.json");
    let mut args: Vec<String> = Vec::new();
    if let Some(list) = host.cpu_list {
        let taskset = common::require_tool("taskset", "apt-get install -y util-linux");
        args.extend([taskset.display().to_string(), "-c".into(), list.into()]);
    }
    args.push(exe.display().to_string());
    args.extend(
        [CHILD_TEST, "--exact", "--ignored", "--test-threads=1"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut cmd = Command::new("sh");
    // `umask` is a property of the process: set it in a shell that then becomes the child.
    cmd.arg("-c")
        .arg(format!("umask {} && exec \"$@\"", host.umask))
        .arg("sh")
        .args(&args)
        .current_dir(host.cwd)
        .env(REPORT_VAR, &report)
        .env("TZ", host.tz)
        .env("LC_ALL", host.lc_all);
    match host.home {
        Some(h) => cmd.env("HOME", h),
        None => cmd.env_remove("HOME"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&report).unwrap_or_else(|e| {
        panic!(
            "the child wrote no report ({e}); did the test filter match?\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn kiln_base_is_host_independent() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_root = tempfile::tempdir().unwrap();
    let b_dir = b_root.path().join("a longer/path with spaces");
    std::fs::create_dir_all(&b_dir).unwrap();
    let home = tempfile::tempdir().unwrap();
    let a = build_in_child(&Host {
        cwd: a_dir.path(),
        home: Some(home.path()),
        tz: "UTC",
        lc_all: "C",
        umask: "022",
        cpu_list: None,
    });
    let b = build_in_child(&Host {
        cwd: &b_dir,
        home: None,
        tz: "Pacific/Kiritimati",
        lc_all: "C.UTF-8",
        umask: "077",
        cpu_list: Some("0"),
    });

    // The inputs really differed between the two children.
    assert_ne!(a.cwd, b.cwd);
    assert_eq!(a.home.as_deref(), Some(home.path().to_str().unwrap()));
    assert_eq!(b.home, None);
    assert_eq!(
        (a.tz.as_deref(), b.tz.as_deref()),
        (Some("UTC"), Some("Pacific/Kiritimati"))
    );
    assert_eq!(
        (a.lc_all.as_deref(), b.lc_all.as_deref()),
        (Some("C"), Some("C.UTF-8"))
    );
    assert_eq!((a.umask, b.umask), (0o022, 0o077));
    assert_eq!(b.cpus, 1, "taskset -c 0 leaves one CPU");

    // And the base did not notice.
    assert_eq!(a.layers.len(), compressions().len());
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        assert_eq!(
            la, lb,
            "the kiln base differs between hosts ({})",
            la.descriptor.media_type
        );
    }
}
