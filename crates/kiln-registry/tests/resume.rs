//! Chunked uploads interrupted by a cut connection (issue 12): the push goes on from the offset
//! the real `docker-registry` reports, or starts a new session when the registry gave the old one
//! up. The cut comes from a TCP proxy between client and registry.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kiln_registry::{BlobOutcome, BlobUpload, Client, ClientConfig, RegistryError, Reporter};
use kiln_registry::{Repository, RetryPolicy};
use kiln_test_support::fault::{Fault, FaultProxy};
use kiln_types::Digest;

const CHUNK: u64 = 256 * 1024;
/// Twelve chunks: the blob goes up in twelve PATCHes.
const CHUNKS: u64 = 12;

/// Retries the reporter was told about.
#[derive(Default)]
struct Retries(Mutex<Vec<String>>);

impl Reporter for Retries {
    fn retrying(&self, what: &str, attempt: u32, _: Duration, error: &RegistryError) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{attempt} {what}: {error}"));
    }
}

/// A blob of `CHUNKS` chunks of incompressible bytes.
fn blob(dir: &std::path::Path) -> BlobUpload {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..CHUNKS * CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write_blob(dir, &bytes)
}

/// A client that uploads anything over 64 KiB in `CHUNK`-sized PATCHes.
fn chunking_client(reporter: Arc<Retries>) -> Client {
    Client::with_reporter(
        ClientConfig {
            monolithic_limit: 64 * 1024,
            chunk_size: CHUNK,
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
            },
            ..test_config()
        },
        reporter,
    )
    .unwrap()
}

/// Fetches the blob straight from the registry (not through the proxy) and hashes it.
async fn stored_digest(reg: &Registry, name: &str, blob: &BlobUpload) -> Digest {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("blob");
    let size = client()
        .get_blob_to_file(&reg.repo(name), &blob.digest, &out)
        .await
        .unwrap();
    assert_eq!(size, blob.size);
    Digest::of_reader(std::fs::File::open(&out).unwrap())
        .unwrap()
        .0
}

/// `(attempts, resumed, bytes_transferred)` of an upload.
fn uploaded(outcome: &BlobOutcome) -> (u32, u32, u64) {
    match outcome {
        BlobOutcome::Uploaded {
            bytes_sent,
            attempts,
            resumed,
            bytes_transferred,
        } => {
            assert_eq!(*bytes_sent, CHUNKS * CHUNK);
            (*attempts, *resumed, *bytes_transferred)
        }
        other => panic!("not uploaded: {other:?}"),
    }
}

#[test]
fn issue_12_chunked_upload_resumes_from_reported_offset() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.host());
    let work = tempfile::tempdir().unwrap();
    let blob = blob(work.path());
    // Ten and a half chunks of client bytes (request heads are a few hundred bytes each) end
    // inside the eleventh PATCH; the connection is cut as the twelfth, the last, starts. The
    // registry then holds eleven whole chunks, which it can resume from.
    proxy.set(Fault::CutBeforeRequestAfter(CHUNK * 21 / 2));
    let retries = Arc::new(Retries::default());
    let client = chunking_client(retries.clone());
    let repo = Repository::new(proxy.addr.clone(), "resume/app").unwrap();
    let rt = rt();
    let outcome = rt
        .block_on(client.push_blob(&repo, &blob.digest, blob.size, &blob.path))
        .unwrap();
    assert_eq!(proxy.cuts(), 1, "the proxy never cut: {outcome:?}");
    let (attempts, resumed, transferred) = uploaded(&outcome);
    let log = retries.0.lock().unwrap().clone();
    assert_eq!(log.len(), 1, "one retry expected: {log:?}");
    assert_eq!((attempts, resumed), (1, 1), "{outcome:?} {log:?}");
    // Starting again at byte 0 after the last chunk failed would send the blob twice.
    assert!(transferred < 2 * blob.size, "{transferred} bytes sent");
    // Resuming costs at most the chunk that was cut.
    assert!(transferred <= blob.size + CHUNK, "{transferred} bytes sent");
    assert_eq!(
        rt.block_on(stored_digest(&reg, "resume/app", &blob)),
        blob.digest
    );
}

#[test]
fn issue_12_chunked_upload_restarts_when_the_session_is_gone() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.host());
    let work = tempfile::tempdir().unwrap();
    let blob = blob(work.path());
    // Cut in the middle of the sixth PATCH's body. docker-registry keeps the torn part, then
    // refuses the session (404 BLOB_UPLOAD_INVALID to the status GET): the push must start a new
    // session from byte 0 rather than trust or patch the old one.
    proxy.set(Fault::CutRequestAfter(CHUNK * 11 / 2));
    let retries = Arc::new(Retries::default());
    let client = chunking_client(retries.clone());
    let repo = Repository::new(proxy.addr.clone(), "restart/app").unwrap();
    let rt = rt();
    let outcome = rt
        .block_on(client.push_blob(&repo, &blob.digest, blob.size, &blob.path))
        .unwrap();
    assert_eq!(proxy.cuts(), 1, "the proxy never cut: {outcome:?}");
    let (attempts, resumed, transferred) = uploaded(&outcome);
    assert_eq!((attempts, resumed), (2, 0), "{outcome:?}");
    // The six chunks of the abandoned session, then the whole blob again.
    assert_eq!(transferred, blob.size + 6 * CHUNK, "{outcome:?}");
    assert_eq!(retries.0.lock().unwrap().len(), 1);
    assert_eq!(
        rt.block_on(stored_digest(&reg, "restart/app", &blob)),
        blob.digest
    );
}
