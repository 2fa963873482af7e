//! Pushes through a fault-injecting proxy (503s, connections dropped mid-upload) and a Bearer
//! token flow, all in front of a real `docker-registry`.

mod common;
mod proxy;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kiln_registry::{
    BlobOutcome, Client, ClientConfig, Credential, Reference, RegistryError, Reporter, Repository,
};
use kiln_types::Digest;

/// Records reporter events as strings.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Reporter for Events {
    fn blob_done(&self, _: &Repository, blob: &kiln_registry::BlobReport) {
        self.0.lock().unwrap().push(format!("blob {}", blob.digest));
    }
    fn manifest_done(&self, _: &Repository, m: &kiln_registry::ManifestReport) {
        self.0
            .lock()
            .unwrap()
            .push(format!("manifest {}", m.reference));
    }
    fn retrying(&self, what: &str, attempt: u32, _: Duration, error: &RegistryError) {
        self.0
            .lock()
            .unwrap()
            .push(format!("retry {attempt} {what}: {error}"));
    }
}

fn big_content(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn attempts(report: &kiln_registry::PushReport) -> u32 {
    report
        .blobs
        .iter()
        .map(|b| match b.outcome {
            BlobOutcome::Uploaded { attempts, .. } => attempts,
            _ => 0,
        })
        .sum()
}

/// Pulls every blob straight from the registry (not through the proxy) and checks its digest.
async fn check_blobs_in_registry(reg: &Registry, name: &str, blobs: &[kiln_registry::BlobUpload]) {
    let direct = client();
    let dir = tempfile::tempdir().unwrap();
    for b in blobs {
        let out = dir.path().join(b.digest.hex());
        let size = direct
            .get_blob_to_file(&reg.repo(name), &b.digest, &out)
            .await
            .unwrap();
        assert_eq!(size, b.size);
        assert_eq!(
            Digest::of_reader(std::fs::File::open(&out).unwrap())
                .unwrap()
                .0,
            b.digest
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&b.path).unwrap()
        );
    }
}

#[test]
fn monolithic_push_survives_503_and_dropped_connection() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    // A 2 MiB layer so the dropped PUT really is cut in the middle of its body.
    let img = make_image(work.path(), "amd64", &big_content(2 << 20, 7));
    assert!(img.blobs[1].size > 2 << 20);
    rt().block_on(async {
        let proxy = proxy::start(
            format!("127.0.0.1:{}", reg.port).parse().unwrap(),
            proxy::Plan {
                fail_503: Mutex::new(vec![("POST", "/blobs/uploads/")]),
                drop: Mutex::new(vec![("PUT", "/blobs/uploads/")]),
                ..Default::default()
            },
        )
        .await;
        let events = Arc::new(Events::default());
        let client = Client::with_reporter(test_config(), events.clone()).unwrap();
        let repo = Repository::new(proxy.host(), "fault/app").unwrap();
        let report = client
            .push_image(&repo, &single_upload(&img, "v1"))
            .await
            .unwrap();
        let log = events.0.lock().unwrap().clone();
        assert_eq!(
            log.iter().filter(|e| e.starts_with("retry")).count(),
            2,
            "{log:?}"
        );
        assert_eq!(
            log.iter().filter(|e| e.starts_with("blob")).count(),
            2,
            "{log:?}"
        );
        assert_eq!(
            log.last().map(String::as_str),
            Some("manifest v1"),
            "{log:?}"
        );
        assert_eq!(proxy.plan.fired_503.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.plan.fired_drop.load(Ordering::SeqCst), 1);
        assert_eq!(report.uploaded(), 2, "{report:#?}");
        // Two blobs, two failed sessions that were restarted.
        assert_eq!(attempts(&report), 4, "{report:#?}");
        check_blobs_in_registry(&reg, "fault/app", &img.blobs).await;
        let r: Reference = format!("{}/fault/app:v1", reg.host()).parse().unwrap();
        assert_eq!(
            client.get_manifest(&r).await.unwrap().digest,
            img.manifest.digest()
        );
    });
}

#[test]
fn chunked_push_survives_dropped_patch_and_503_on_head() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "arm64", &big_content(1_500_000, 99));
    rt().block_on(async {
        let proxy = proxy::start(
            format!("127.0.0.1:{}", reg.port).parse().unwrap(),
            proxy::Plan {
                fail_503: Mutex::new(vec![("HEAD", "/blobs/sha256:")]),
                drop: Mutex::new(vec![("PATCH", "/blobs/uploads/")]),
                ..Default::default()
            },
        )
        .await;
        let client = Client::new(ClientConfig {
            monolithic_limit: 4096,
            chunk_size: 256 * 1024,
            ..test_config()
        })
        .unwrap();
        let repo = Repository::new(proxy.host(), "fault/chunked").unwrap();
        let report = client
            .push_image(&repo, &single_upload(&img, "v1"))
            .await
            .unwrap();
        assert_eq!(proxy.plan.fired_503.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.plan.fired_drop.load(Ordering::SeqCst), 1);
        assert_eq!(attempts(&report), 3, "{report:#?}");
        check_blobs_in_registry(&reg, "fault/chunked", &img.blobs).await;
    });
}

#[test]
fn persistent_503_gives_up_with_status_error() {
    let reg = Registry::start();
    rt().block_on(async {
        let proxy = proxy::start(
            format!("127.0.0.1:{}", reg.port).parse().unwrap(),
            proxy::Plan {
                fail_503: Mutex::new(vec![("GET", "/manifests/"); 10]),
                ..Default::default()
            },
        )
        .await;
        let client = client();
        let r: Reference = format!("{}/x/y:v1", proxy.host()).parse().unwrap();
        let err = client.get_manifest(&r).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Status { status: 503, .. }),
            "{err}"
        );
        // max_attempts = 5 in the test config.
        assert_eq!(proxy.plan.fired_503.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn bearer_token_flow_with_scope_cache() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"bearer");
    rt().block_on(async {
        let proxy = proxy::start(
            format!("127.0.0.1:{}", reg.port).parse().unwrap(),
            proxy::Plan {
                bearer: true,
                token_basic: Some("robot:t0ken".into()),
                ..Default::default()
            },
        )
        .await;
        let repo = Repository::new(proxy.host(), "tok/app").unwrap();

        let anon = client();
        let err = anon
            .push_image(&repo, &single_upload(&img, "v1"))
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
        assert!(err.to_string().contains("token server"), "{err}");

        let tokens_anonymous = proxy.plan.token_requests.load(Ordering::SeqCst);
        assert!(tokens_anonymous >= 1);
        let client = Client::new(ClientConfig {
            credentials: BTreeMap::from([(proxy.host(), Credential::basic("robot", "t0ken"))]),
            ..test_config()
        })
        .unwrap();
        let report = client
            .push_image(&repo, &single_upload(&img, "v1"))
            .await
            .unwrap();
        assert_eq!(report.uploaded(), 2);
        let tokens_after_first = proxy.plan.token_requests.load(Ordering::SeqCst);
        // One push token for the concurrent HEADs and the uploads alike.
        assert_eq!(
            tokens_after_first - tokens_anonymous,
            1,
            "{:?}",
            proxy.plan.scopes_seen.lock().unwrap()
        );
        let again = client
            .push_image(&repo, &single_upload(&img, "v1"))
            .await
            .unwrap();
        assert_eq!(again.skipped(), 2);
        assert_eq!(
            proxy.plan.token_requests.load(Ordering::SeqCst),
            tokens_after_first,
            "tokens must be cached per scope"
        );
        let scopes = proxy.plan.scopes_seen.lock().unwrap().clone();
        assert!(
            scopes.iter().any(|s| s == "repository:tok/app:pull,push"),
            "{scopes:?}"
        );
        let r: Reference = format!("{}/tok/app:v1", proxy.host()).parse().unwrap();
        assert_eq!(
            client.get_manifest(&r).await.unwrap().digest,
            img.manifest.digest()
        );
    });
}

#[test]
fn noop_repush_of_an_index_is_only_head_requests() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let (upload, _) = make_index(work.path(), &["amd64", "arm64"], "noop");
    rt().block_on(async {
        let proxy = proxy::start(
            format!("127.0.0.1:{}", reg.port).parse().unwrap(),
            proxy::Plan::default(),
        )
        .await;
        let client = client();
        let repo = Repository::new(proxy.host(), "noop/app").unwrap();
        client.push_image(&repo, &upload).await.unwrap();
        let first: Vec<String> = std::mem::take(&mut *proxy.plan.methods.lock().unwrap());
        assert!(first.iter().any(|m| m == "PUT"), "{first:?}");
        let again = client.push_image(&repo, &upload).await.unwrap();
        assert_eq!(again.skipped(), 4);
        let second = proxy.plan.methods.lock().unwrap().clone();
        // The index is already under its tag, so the registry holds everything it references:
        // one HEAD instead of one per blob and platform manifest (issue 8's no-op push).
        assert_eq!(second, ["HEAD"], "{second:?}");
        assert!(again.manifests.iter().all(|m| !m.pushed));
    });
}
