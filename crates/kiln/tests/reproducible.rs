//! Same commit, two checkouts, two empty caches: byte-identical binaries.

mod common;

use common::{shop, targets};

#[test]
fn two_checkouts_give_identical_binaries() {
    let a = shop();
    a.write(
        "kiln.toml",
        "[build]\nldflags = [\"-X main.version={{.Version}}\"]\n",
    );
    a.git(&["init", "-q"]);
    a.git(&["add", "-A"]);
    a.git(&["commit", "-qm", "init"]);
    let b = a.copy();
    // The second checkout lives at a different path and has its own empty kiln cache.
    assert_ne!(a.path(), b.path());
    let platforms = ["--platform", "linux/amd64,linux/arm64,windows/amd64"];
    let ra = a.build_json(&platforms);
    let rb = b.build_json(&platforms);
    assert_eq!(ra["cache_hits"], 0);
    assert_eq!(rb["cache_hits"], 0);
    let digests = |r: &serde_json::Value| -> Vec<String> {
        targets(r)
            .iter()
            .map(|t| t["sha256"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(digests(&ra).len(), 6);
    assert_eq!(digests(&ra), digests(&rb));
    let keys = |r: &serde_json::Value| -> Vec<String> {
        targets(r)
            .iter()
            .map(|t| t["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        keys(&ra),
        keys(&rb),
        "keys do not depend on the checkout path"
    );
    for t in targets(&ra) {
        let p = t["path"].as_str().unwrap();
        assert_eq!(
            std::fs::read(a.path().join(p)).unwrap(),
            std::fs::read(b.path().join(p)).unwrap()
        );
    }
}
