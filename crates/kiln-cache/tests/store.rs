//! The local store against the real file system, including two writers at once.

use std::path::Path;
use std::sync::Arc;

use kiln_cache::{ActionRecord, CacheBucket, LocalStore, OutputRecord, PruneOptions, Storage};
use kiln_key::ActionKey;

fn key(n: u8) -> ActionKey {
    ActionKey::from_hex(&format!("{:064x}", n)).unwrap()
}

fn record_for(store: &LocalStore, file: &Path) -> ActionRecord {
    let (digest, size) = store.put_blob(file).unwrap();
    ActionRecord {
        outputs: vec![OutputRecord {
            name: "api".into(),
            digest,
            size,
            executable: true,
        }],
        created: 1,
        duration_ms: 5,
    }
}

#[test]
fn round_trip_hit_and_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("cache"));
    let src = dir.path().join("bin");
    std::fs::write(&src, b"\x7fELF binary").unwrap();
    assert!(store.get_action(&key(1)).unwrap().is_none());
    let rec = record_for(&store, &src);
    store.put_action(&key(1), &rec).unwrap();
    let got = store.get_action(&key(1)).unwrap().unwrap();
    assert_eq!(got, rec);
    let dest = dir.path().join("out/api");
    assert!(store.get_blob(&rec.outputs[0].digest, &dest).unwrap());
    assert_eq!(std::fs::read(&dest).unwrap(), b"\x7fELF binary");
    let stats = store.stats().unwrap();
    assert_eq!((stats.actions, stats.blobs), (1, 1));
}

#[test]
fn corrupted_blob_is_a_miss_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let src = dir.path().join("bin");
    std::fs::write(&src, b"good content").unwrap();
    let rec = record_for(&store, &src);
    let blob = store.blob_path(&rec.outputs[0].digest);
    std::fs::write(&blob, b"evil content").unwrap();
    let dest = dir.path().join("restored");
    assert!(!store.get_blob(&rec.outputs[0].digest, &dest).unwrap());
    assert!(!dest.exists(), "a corrupt blob must not be materialised");
    assert!(!blob.exists(), "a corrupt blob must be removed");
}

#[test]
fn corrupted_record_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let src = dir.path().join("bin");
    std::fs::write(&src, b"x").unwrap();
    let rec = record_for(&store, &src);
    store.put_action(&key(2), &rec).unwrap();
    let path = store.action_path(&key(2));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"size\": 1", "\"size\": 2");
    std::fs::write(&path, text).unwrap();
    assert!(store.get_action(&key(2)).unwrap().is_none());
    std::fs::write(&path, b"{ truncated").unwrap();
    assert!(store.get_action(&key(2)).unwrap().is_none());
}

#[test]
fn concurrent_writers_do_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path().join("c")));
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let src = dir.path().join("big");
    std::fs::write(&src, &payload).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            let src = src.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let rec = record_for(&store, &src);
                    store.put_action(&key(3), &rec).unwrap();
                    assert!(store.get_action(&key(3)).unwrap().is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rec = store.get_action(&key(3)).unwrap().unwrap();
    assert_eq!(
        store.read_blob(&rec.outputs[0].digest).unwrap().unwrap(),
        payload
    );
    let leftovers: Vec<_> = walkdir(dir.path())
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

fn walkdir(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[test]
fn prune_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let src = dir.path().join("bin");
    std::fs::write(&src, b"abc").unwrap();
    let rec = record_for(&store, &src);
    store.put_action(&key(4), &rec).unwrap();
    // Everything is recent: nothing to prune by age.
    let r = store
        .prune(PruneOptions {
            max_age: Some(std::time::Duration::from_secs(3600)),
            max_size: None,
        })
        .unwrap();
    assert_eq!(r.removed(CacheBucket::Actions), 0);
    // A zero size budget removes the record (blobs are kept during the grace period).
    let r = store
        .prune(PruneOptions {
            max_age: None,
            max_size: Some(0),
        })
        .unwrap();
    assert_eq!(r.removed(CacheBucket::Actions), 1);
    assert!(store.get_action(&key(4)).unwrap().is_none());
    store.clear().unwrap();
    assert_eq!(store.stats().unwrap().blobs, 0);
}
