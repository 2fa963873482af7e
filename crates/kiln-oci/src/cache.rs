use std::fs;
use std::path::PathBuf;

use kiln_types::Digest;
use serde::Serialize;

use crate::error::{io_err, OciError, Result};
use crate::layer::{build_layer, plan_entries, BuiltLayer, EntrySource, LayerEntry, LayerRecipe};
use crate::layout::write_atomic;
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
pub fn layer_key(entries: &[LayerEntry], recipe: &LayerRecipe) -> Result<Digest> {
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
    Ok(Digest::of_bytes(&bytes))
}

/// Small index files `<dir>/<key hex>.json` mapping a layer key to a layer already in a blob store,
/// so unchanged layers are not repacked. A typical `dir` is `<layout>/kiln-layers` or a cache dir.
#[derive(Clone, Debug)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// A cache recording into `dir` (created on first record).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The layer recorded under `key`, if its blob is still in `store` with the recorded size.
    /// Unreadable or stale records are a miss, not an error: the layer is rebuilt.
    pub fn lookup(&self, key: &Digest, store: &BlobStore) -> Option<BuiltLayer> {
        let bytes = fs::read(self.dir.join(format!("{}.json", key.hex()))).ok()?;
        let layer: BuiltLayer = serde_json::from_slice(&bytes).ok()?;
        let meta = fs::metadata(store.path(&layer.descriptor.digest)).ok()?;
        (meta.len() == layer.descriptor.size).then_some(layer)
    }

    /// Records `layer` under `key`.
    pub fn record(&self, key: &Digest, layer: &BuiltLayer) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(io_err("creating", &self.dir))?;
        let bytes = serde_json::to_vec(layer).map_err(|source| OciError::Json {
            what: "layer record".into(),
            source,
        })?;
        write_atomic(&self.dir.join(format!("{}.json", key.hex())), &bytes)
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

/// Looks the layer up by its key and builds (then records) it only on a miss.
pub fn build_layer_cached(
    store: &BlobStore,
    cache: &LayerCache,
    entries: &[LayerEntry],
    recipe: &LayerRecipe,
) -> Result<(BuiltLayer, CacheOutcome)> {
    let key = layer_key(entries, recipe)?;
    if let Some(layer) = cache.lookup(&key, store) {
        return Ok((layer, CacheOutcome::Hit));
    }
    let layer = build_layer(store, entries, recipe)?;
    cache.record(&key, &layer)?;
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
        let cache = LayerCache::new(dir.path().join("kiln-layers"));
        let entries = vec![LayerEntry::bytes("a", b"hello".to_vec())];
        let r = LayerRecipe::default();
        let (l1, o1) = build_layer_cached(&store, &cache, &entries, &r).unwrap();
        let (l2, o2) = build_layer_cached(&store, &cache, &entries, &r).unwrap();
        assert_eq!((o1, o2), (CacheOutcome::Miss, CacheOutcome::Hit));
        assert_eq!(l1, l2);
        fs::remove_file(store.path(&l1.descriptor.digest)).unwrap();
        let (l3, o3) = build_layer_cached(&store, &cache, &entries, &r).unwrap();
        assert_eq!(o3, CacheOutcome::Miss);
        assert_eq!(l3, l1);
        assert!(store.contains(&l1.descriptor.digest));
    }
}
