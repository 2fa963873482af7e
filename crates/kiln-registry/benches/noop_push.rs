//! No-op push benchmark: 20 services x 2 platforms (40 images, 20 indexes) pushed to a local
//! `docker-registry`, then pushed again. The second push must be HEAD requests only; the first push
//! is printed as the baseline of the same run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{make_index, rt, test_config, Registry};
use kiln_registry::Client;

fn main() {
    let reg = Registry::start();
    let work = tempfile::tempdir().expect("tempdir");
    let images: Vec<_> = (0..20)
        .map(|i| {
            let (upload, _) = make_index(work.path(), &["amd64", "arm64"], &format!("service {i}"));
            (reg.repo(&format!("bench/service-{i}")), upload)
        })
        .collect();
    let client = Client::new(test_config()).expect("client");
    let rt = rt();

    let t = Instant::now();
    let first = rt.block_on(client.push_images(&images));
    let first_time = t.elapsed();
    let uploaded: usize = first
        .iter()
        .map(|r| r.as_ref().expect("first push").uploaded())
        .sum();

    let t = Instant::now();
    let second = rt.block_on(client.push_images(&images));
    let noop_time = t.elapsed();
    let mut skipped = 0;
    for r in &second {
        let r = r.as_ref().expect("no-op push");
        assert_eq!(r.uploaded() + r.mounted(), 0, "no-op push sent blobs");
        assert_eq!(r.manifests_pushed(), 0, "no-op push sent manifests");
        skipped += r.skipped();
    }
    println!(
        "first push : {:>8.1} ms ({uploaded} blobs uploaded, 60 manifests)",
        first_time.as_secs_f64() * 1e3
    );
    println!(
        "no-op push : {:>8.1} ms ({skipped} blobs skipped, 0 manifests pushed)",
        noop_time.as_secs_f64() * 1e3
    );
    println!(
        "ratio      : {:>8.2} (no-op / first)",
        noop_time.as_secs_f64() / first_time.as_secs_f64()
    );
}
