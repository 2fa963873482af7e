//! Skipping the packing of unchanged layers: [`layer_key`] names a layer's recipe, a
//! [`LayerRecords`] store maps it to the layer it produced, and [`build_layer_cached`] reuses that
//! layer only after re-hashing its blob.
//!
//! Where records are kept is not this crate's business: kiln keeps them in its cache
//! (`kiln_cache::CacheBucket::ImageLayers`, wired by `kiln-image`), tests and embedders in a
//! [`MemoryLayerRecords`]. This crate defines the seam instead of depending on `kiln-cache`, so
//! the OCI library stays free of kiln's key and discovery crates.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::sync::Mutex;

use kiln_types::Digest;
use serde::Serialize;

use crate::error::{io_err, OciError, Result};
use crate::layer::{build_layer, plan_entries, BuiltLayer, EntrySource, LayerEntry, LayerRecipe};
use crate::store::BlobStore;

/// Bumped whenever layer bytes could change for the same inputs (tar writer changes, ...), so
/// old cache records are ignored instead of handing out stale layers.
pub const LAYER_CACHE_VERSION: u32 = 1;

#[derive(Serialize)]
struct KeyEntry<'a> {
    path: &'a str,
    kind: &'static str,
    mode: u32,
    uid: Option<u64>,
    gid: Option<u64>,
    content: Option<Digest>,
    link: Option<&'a str>,
}

#[derive(Serialize)]
struct KeyInput<'a> {
    version: u32,
    recipe: &'a LayerRecipe,
    entries: Vec<KeyEntry<'a>>,
}

/// The content-addressed key of a layer: every entry (path, kind, mode, owner, content digest or
/// link target) plus the recipe (compression, backend, mtime, owners) and [`LAYER_CACHE_VERSION`].
/// Path-sourced files without a known digest are hashed here (streaming).
pub fn layer_key(entries: &[LayerEntry], recipe: &LayerRecipe) -> Result<LayerKey> {
    let plan = plan_entries(entries)?;
    let mut key_entries = Vec::with_capacity(plan.len());
    for e in plan.values() {
        let (kind, content, link) = match &e.source {
            EntrySource::Dir => ("dir", None, None),
            EntrySource::Bytes(b) => ("file", Some(Digest::of_bytes(b)), None),
            EntrySource::Symlink(t) => ("symlink", None, Some(t.as_str())),
            EntrySource::Path { src, digest } => {
                let d = match digest {
                    Some(d) => *d,
                    None => {
                        let f = fs::File::open(src).map_err(io_err("opening", src))?;
                        Digest::of_reader(std::io::BufReader::new(f))
                            .map_err(io_err("reading", src))?
                            .0
                    }
                };
                ("file", Some(d), None)
            }
        };
        key_entries.push(KeyEntry {
            path: &e.path,
            kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            content,
            link,
        });
    }
    let input = KeyInput {
        version: LAYER_CACHE_VERSION,
        recipe,
        entries: key_entries,
    };
    let bytes = serde_json::to_vec(&input).map_err(|source| OciError::Json {
        what: "layer key".into(),
        source,
    })?;
    Ok(LayerKey(Digest::of_bytes(&bytes)))
}

/// The key of a layer recipe: what [`layer_key`] computes from a layer's entries and
/// [`LayerRecipe`].
///
/// Typed apart from [`Digest`]: a layer key addresses a *recipe* (which files, modes and
/// compression), a digest addresses *content* (the bytes of a blob), and mixing them up is a bug
/// the compiler should catch, as with `kiln_key::ActionKey`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerKey(Digest);

impl LayerKey {
    /// Lowercase hex (64 characters), used as the record's name.
    pub fn hex(&self) -> String {
        self.0.hex()
    }

    /// Parses the hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        Digest::from_hex(s).ok().map(Self)
    }
}

impl fmt::Display for LayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for LayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LayerKey({})", self.hex())
    }
}

/// Where layer records are kept: [`LayerKey`] -> the [`BuiltLayer`] that recipe produced, whose
/// blob is in the [`BlobStore`] it was packed into.
///
/// A record store only saves time, so its methods cannot fail the packing: an implementation
/// reports its own failures (kiln's warns) and answers a failed `get` with `None`. Records are not
/// trusted: [`build_layer_cached`] re-hashes the blob a record points to before using it.
pub trait LayerRecords: Send + Sync {
    /// The layer recorded under `key`, if any.
    fn get(&self, key: &LayerKey) -> Option<BuiltLayer>;
    /// Records `layer` under `key`, replacing what was there.
    fn put(&self, key: &LayerKey, layer: &BuiltLayer);
}

/// [`LayerRecords`] in memory, for tests and for embedders that pack once per process.
#[derive(Debug, Default)]
pub struct MemoryLayerRecords {
    records: Mutex<HashMap<LayerKey, BuiltLayer>>,
}

impl MemoryLayerRecords {
    /// An empty record store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.lock().map_or(0, |r| r.len())
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LayerRecords for MemoryLayerRecords {
    fn get(&self, key: &LayerKey) -> Option<BuiltLayer> {
        self.records.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: &LayerKey, layer: &BuiltLayer) {
        if let Ok(mut r) = self.records.lock() {
            r.insert(*key, layer.clone());
        }
    }
}

/// Whether `layer`'s blob is in `store` with exactly the recorded content: its sha256 (streamed)
/// and size must match the record. A blob whose content does not hash to its name is removed, so
/// the rebuild can put the right bytes in its place (the store never replaces an existing blob).
fn blob_intact(store: &BlobStore, layer: &BuiltLayer) -> bool {
    let digest = &layer.descriptor.digest;
    match store.verify_known(digest) {
        Ok(size) => size == layer.descriptor.size,
        Err(OciError::DigestMismatch { path, .. }) => {
            // Another process may have removed or replaced it already; either way it is gone.
            let _ = fs::remove_file(path);
            false
        }
        Err(_) => false,
    }
}

/// Whether [`build_layer_cached`] reused a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CacheOutcome {
    /// Found in the cache; nothing was packed.
    Hit,
    /// Built and recorded.
    Miss,
}

/// Looks the layer up by its key and reuses it only if its blob is in `store` and re-hashes to
/// the recorded digest and size; otherwise (no record, blob missing, blob corrupted) builds it
/// into `store` and records it. A corrupted blob is removed and repacked: a miss, not an error.
pub fn build_layer_cached(
    store: &BlobStore,
    records: &dyn LayerRecords,
    entries: &[LayerEntry],
    recipe: &LayerRecipe,
) -> Result<(BuiltLayer, CacheOutcome)> {
    let key = layer_key(entries, recipe)?;
    if let Some(layer) = records.get(&key) {
        if blob_intact(store, &layer) {
            return Ok((layer, CacheOutcome::Hit));
        }
    }
    let layer = build_layer(store, entries, recipe)?;
    records.put(&key, &layer);
    Ok((layer, CacheOutcome::Miss))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Compression;

    /// Each input of the key must change it: a key that ignores an input hands out wrong layers.
    #[test]
    fn every_input_changes_the_key() {
        let base = vec![LayerEntry::bytes("app", b"x".to_vec()).mode(0o755)];
        let r = LayerRecipe::default();
        let k = layer_key(&base, &r).unwrap();
        let variants: Vec<(Vec<LayerEntry>, LayerRecipe)> = vec![
            (
                vec![LayerEntry::bytes("app", b"y".to_vec()).mode(0o755)],
                r.clone(),
            ),
            (
                vec![LayerEntry::bytes("app2", b"x".to_vec()).mode(0o755)],
                r.clone(),
            ),
            (
                vec![LayerEntry::bytes("app", b"x".to_vec()).mode(0o700)],
                r.clone(),
            ),
            (
                vec![LayerEntry::bytes("app", b"x".to_vec())
                    .mode(0o755)
                    .owner(1, 1)],
                r.clone(),
            ),
            (vec![LayerEntry::symlink("app", "x")], r.clone()),
            (base.clone(), r.clone().with_mtime(5)),
            (
                base.clone(),
                LayerRecipe::new(Compression::Gzip { level: 9 }),
            ),
            (
                base.clone(),
                LayerRecipe::new(Compression::GzipParallel { level: 6 }),
            ),
            (
                base.clone(),
                LayerRecipe::new(Compression::Zstd {
                    level: 3,
                    workers: 1,
                }),
            ),
            (
                base.clone(),
                LayerRecipe {
                    uid: 7,
                    ..r.clone()
                },
            ),
            (
                base.clone(),
                LayerRecipe {
                    backend: "other".into(),
                    ..r.clone()
                },
            ),
        ];
        for (i, (e, rr)) in variants.iter().enumerate() {
            assert_ne!(
                layer_key(e, rr).unwrap(),
                k,
                "variant {i} did not change the key"
            );
        }
        assert_eq!(layer_key(&base, &r).unwrap(), k);
    }

    #[test]
    fn cached_build_hits_second_time_and_misses_when_blob_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let records = MemoryLayerRecords::new();
        let entries = vec![LayerEntry::bytes("a", b"hello".to_vec())];
        let r = LayerRecipe::default();
        let (l1, o1) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        let (l2, o2) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        assert_eq!((o1, o2), (CacheOutcome::Miss, CacheOutcome::Hit));
        assert_eq!(l1, l2);
        assert_eq!(records.len(), 1);
        fs::remove_file(store.path(&l1.descriptor.digest)).unwrap();
        let (l3, o3) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        assert_eq!(o3, CacheOutcome::Miss);
        assert_eq!(l3, l1);
        assert!(store.contains(&l1.descriptor.digest));
    }

    /// A blob with the recorded size but other bytes passes a size check: only its digest tells.
    /// It must be a miss that repacks the right bytes into its place, not an error and not a hit.
    #[test]
    fn issue_8_corrupted_layer_blob_of_same_size_is_a_miss_and_repacked() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let records = MemoryLayerRecords::new();
        let entries = vec![LayerEntry::bytes("app", vec![7u8; 4096]).mode(0o755)];
        let r = LayerRecipe::default();
        let (good, _) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        let path = store.path(&good.descriptor.digest);
        let original = fs::read(&path).unwrap();
        let mut evil = original.clone();
        let mid = evil.len() / 2;
        evil[mid] ^= 0xff;
        fs::write(&path, &evil).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), good.descriptor.size);
        let (again, outcome) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        assert_eq!(outcome, CacheOutcome::Miss, "a corrupted blob is not a hit");
        assert_eq!(again, good, "the same layer is packed again");
        assert_eq!(
            fs::read(&path).unwrap(),
            original,
            "the right bytes are back"
        );
        store.verify(&good.descriptor.digest).unwrap();
        let (_, outcome) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
    }

    /// A record naming a blob of another size (an edited or stale record) is not used either.
    #[test]
    fn record_with_wrong_size_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let records = MemoryLayerRecords::new();
        let entries = vec![LayerEntry::bytes("a", b"x".to_vec())];
        let r = LayerRecipe::default();
        let (mut layer, _) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        let key = layer_key(&entries, &r).unwrap();
        layer.descriptor.size += 1;
        records.put(&key, &layer);
        let (_, outcome) = build_layer_cached(&store, &records, &entries, &r).unwrap();
        assert_eq!(outcome, CacheOutcome::Miss);
    }

    #[test]
    fn layer_key_hex_round_trips_and_is_not_a_digest_string() {
        let k = layer_key(
            &[LayerEntry::bytes("a", b"x".to_vec())],
            &LayerRecipe::default(),
        )
        .unwrap();
        assert_eq!(LayerKey::from_hex(&k.hex()), Some(k));
        assert_eq!(k.hex().len(), 64);
        assert_eq!(k.to_string(), k.hex());
    }
}
