//! kiln-oci's layer records kept in kiln's cache, in the [`CacheBucket::ImageLayers`] bucket.
//!
//! `kiln-oci` defines the seam ([`LayerRecords`]) and `kiln-cache` the store; this crate is the
//! first that knows both, so the wiring lives here. A record is the JSON of the [`BuiltLayer`],
//! kept under the hex of its [`LayerKey`]; the store checksums it, and `kiln-oci` re-hashes the
//! blob it names before reusing it.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use kiln_cache::{CacheBucket, Storage};
use kiln_oci::{BlobStore, BuiltLayer, LayerKey, LayerRecords};
use kiln_types::Digest;

use crate::Reporter;

/// [`LayerRecords`] over a [`Storage`]; store failures become warnings and misses, never errors.
pub(crate) struct StoreLayerRecords<'a> {
    store: &'a dyn Storage,
    reporter: &'a dyn Reporter,
}

impl<'a> StoreLayerRecords<'a> {
    pub(crate) fn new(store: &'a dyn Storage, reporter: &'a dyn Reporter) -> Self {
        Self { store, reporter }
    }
}

impl LayerRecords for StoreLayerRecords<'_> {
    fn get(&self, key: &LayerKey) -> Option<BuiltLayer> {
        match self.store.get_record(CacheBucket::ImageLayers, &key.hex()) {
            // A record that parses no more (its format changed without a bucket version bump)
            // is as good as none: the layer is packed again and the record replaced.
            Ok(bytes) => bytes.and_then(|b| serde_json::from_slice(&b).ok()),
            Err(e) => {
                self.reporter
                    .warn(&format!("layer cache read failed, packing the layer: {e}"));
                None
            }
        }
    }

    fn put(&self, key: &LayerKey, layer: &BuiltLayer) {
        if let Err(e) = put_json(self.store, CacheBucket::ImageLayers, &key.hex(), layer) {
            self.reporter
                .warn(&format!("cannot record layer {key} in the cache: {e}"));
        }
    }
}

/// Whether a pulled blob already in the cache can be used: its content must hash to its digest.
/// A blob that does not is removed (so it is downloaded again); one that does is marked as used
/// now, since `kiln cache prune` removes pulled blobs by age of last use.
pub(crate) fn reuse_pulled_blob(blobs: &BlobStore, digest: &Digest) -> bool {
    let path = blobs.path(digest);
    if !path.is_file() {
        return false;
    }
    if blobs.verify(digest).is_err() {
        // Another process may have replaced or removed it already; either way it is fetched again.
        let _ = fs::remove_file(&path);
        return false;
    }
    touch(&path);
    true
}

/// Sets the modification time to now; failure only makes pruning less precise.
fn touch(path: &Path) {
    if let Ok(f) = fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Stores `value` as a JSON record; the error is text for a warning (a record that cannot be
/// written only costs work next time).
pub(crate) fn put_json<T: serde::Serialize + ?Sized>(
    store: &dyn Storage,
    bucket: CacheBucket,
    key: &str,
    value: &T,
) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    store
        .put_record(bucket, key, &bytes)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use kiln_cache::{LocalStore, MemoryStore};
    use kiln_oci::{build_layer_cached, layer_key, CacheOutcome, LayerEntry, LayerRecipe};

    use super::*;

    #[derive(Default)]
    struct Warnings(Mutex<Vec<String>>);

    impl Reporter for Warnings {
        fn warn(&self, message: &str) {
            self.0.lock().unwrap().push(message.to_string());
        }
    }

    #[test]
    fn layer_records_go_to_the_image_layers_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let layout = BlobStore::open(dir.path().join("oci")).unwrap();
        let cache = LocalStore::new(dir.path().join("cache"));
        let warnings = Warnings::default();
        let records = StoreLayerRecords::new(&cache, &warnings);
        let entries = [LayerEntry::bytes("app", b"bin".to_vec())];
        let recipe = LayerRecipe::default();
        let (layer, o1) = build_layer_cached(&layout, &records, &entries, &recipe).unwrap();
        let (_, o2) = build_layer_cached(&layout, &records, &entries, &recipe).unwrap();
        assert_eq!((o1, o2), (CacheOutcome::Miss, CacheOutcome::Hit));
        let key = layer_key(&entries, &recipe).unwrap();
        let file = cache
            .record_file(CacheBucket::ImageLayers, &key.hex())
            .unwrap();
        assert!(
            file.starts_with(dir.path().join("cache/layers-v1")),
            "{file:?}"
        );
        assert_eq!(records.get(&key), Some(layer));
        let stats = cache.stats().unwrap();
        assert_eq!(stats.bucket(CacheBucket::ImageLayers).unwrap().entries, 1);
        assert!(warnings.0.lock().unwrap().is_empty());
    }

    #[test]
    fn store_failures_are_warnings_and_misses() {
        let dir = tempfile::tempdir().unwrap();
        let layout = BlobStore::open(dir.path()).unwrap();
        let cache = MemoryStore::new();
        let warnings = Warnings::default();
        let records = StoreLayerRecords::new(&cache, &warnings);
        let entries = [LayerEntry::bytes("app", b"bin".to_vec())];
        let recipe = LayerRecipe::default();
        cache.fail_writes(true);
        let (_, o) = build_layer_cached(&layout, &records, &entries, &recipe).unwrap();
        assert_eq!(o, CacheOutcome::Miss);
        assert_eq!(cache.record_count(CacheBucket::ImageLayers), 0);
        cache.fail_writes(false);
        build_layer_cached(&layout, &records, &entries, &recipe).unwrap();
        cache.fail_reads(true);
        let (_, o) = build_layer_cached(&layout, &records, &entries, &recipe).unwrap();
        assert_eq!(o, CacheOutcome::Miss, "an unreadable store is a miss");
        let w = warnings.0.lock().unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("cannot record layer"), "{w:?}");
        assert!(w[1].contains("layer cache read failed"), "{w:?}");
    }

    #[test]
    fn unparseable_record_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let layout = BlobStore::open(dir.path()).unwrap();
        let cache = MemoryStore::new();
        let records = StoreLayerRecords::new(&cache, &crate::NoReporter);
        let entries = [LayerEntry::bytes("app", b"bin".to_vec())];
        let recipe = LayerRecipe::default();
        let key = layer_key(&entries, &recipe).unwrap();
        cache
            .put_record(
                CacheBucket::ImageLayers,
                &key.hex(),
                b"{\"old\": \"format\"}",
            )
            .unwrap();
        let (_, o) = build_layer_cached(&layout, &records, &entries, &recipe).unwrap();
        assert_eq!(o, CacheOutcome::Miss);
        assert!(records.get(&key).is_some(), "replaced by a good record");
    }

    #[test]
    fn issue_8_corrupted_pulled_blob_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let digest = blobs.put_bytes(b"base layer").unwrap();
        assert!(reuse_pulled_blob(&blobs, &digest));
        std::fs::write(blobs.path(&digest), b"evil layer").unwrap();
        assert!(!reuse_pulled_blob(&blobs, &digest));
        assert!(!blobs.contains(&digest), "removed, to be pulled again");
        assert!(!reuse_pulled_blob(&blobs, &Digest::of_bytes(b"absent")));
    }
}
