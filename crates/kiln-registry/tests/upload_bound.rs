//! Blob uploads are bounded per registry across all the images of one `push_images` (issue 12):
//! pushing many images at once must not multiply the uploads in flight.

mod common;
mod proxy;

use std::sync::atomic::Ordering;

use common::*;
use kiln_registry::{Client, ClientConfig, Repository};

#[test]
fn issue_12_uploads_are_bounded_per_registry_across_images() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    // Four images of two blobs each (config, 256 KiB layer): eight uploads. Each image pushes
    // its blobs `concurrency` at a time and `push_images` runs `concurrency` images at once, so
    // without a bound per registry up to four would be in flight.
    let images: Vec<TestImage> = (0..4u8)
        .map(|i| {
            let content: Vec<u8> = (0..256 * 1024u32)
                .map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i)
                .collect();
            make_image(work.path(), "amd64", &content)
        })
        .collect();
    rt().block_on(async {
        let proxy = proxy::start(
            format!("127.0.0.1:{}", reg.port).parse().unwrap(),
            proxy::Plan::default(),
        )
        .await;
        let client = Client::new(ClientConfig {
            concurrency: 2,
            ..test_config()
        })
        .unwrap();
        let uploads: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let repo = Repository::new(proxy.host(), format!("bound/app{i}")).unwrap();
                (repo, single_upload(img, "v1"))
            })
            .collect();
        let reports = client.push_images(&uploads).await;
        for r in &reports {
            assert_eq!(r.as_ref().unwrap().uploaded(), 2, "{reports:#?}");
        }
        let max = proxy.plan.max_uploads_in_flight.load(Ordering::SeqCst);
        assert!(max <= 2, "{max} uploads in flight with concurrency 2");
        assert_eq!(max, 2, "uploads did not run concurrently");
        assert_eq!(proxy.plan.uploads_in_flight.load(Ordering::SeqCst), 0);
    });
}
