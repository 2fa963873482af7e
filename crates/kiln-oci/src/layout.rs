use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::descriptor::{Descriptor, ANNOTATION_REF_NAME, MEDIA_INDEX};
use crate::error::{io_err, OciError, Result};
use crate::image::ImageIndex;
use crate::store::BlobStore;

/// Content of the `oci-layout` marker file.
pub const OCI_LAYOUT_FILE: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// An OCI image layout directory: `oci-layout`, `index.json` and `blobs/sha256/`.
#[derive(Clone, Debug)]
pub struct OciLayout {
    root: PathBuf,
    store: BlobStore,
}

/// The lock file beside `index.json`. Every read-modify-write of `index.json` holds an exclusive
/// lock on it, so two kiln processes (or threads) tagging the same layout cannot lose a tag.
/// It is never removed: removing a lock file lets a third party lock a different file.
pub const INDEX_LOCK_FILE: &str = ".index.json.lock";

/// Names kiln itself puts in a layout directory (the temporaries start with `.<name>.tmp-`).
const OWN_NAMES: &[&str] = &["oci-layout", "index.json", "blobs", INDEX_LOCK_FILE];

/// Writes `bytes` to `path` through a temporary sibling and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // Unique per process and call: two threads writing the same file must not share a temporary.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    f.write_all(bytes).map_err(io_err("writing", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err("renaming into", path))
}

impl OciLayout {
    /// Opens the layout at `root`, creating it when the directory is missing or empty. Existing
    /// blobs and index entries are kept; a non-empty directory without `oci-layout` is refused.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let marker = root.join("oci-layout");
        // Refuse to scatter `blobs/` and `index.json` into an unrelated directory (a typo'd path
        // pointing at a source tree, say). Files kiln itself creates do not count: another kiln
        // process may be creating the same layout right now.
        if !marker.exists() {
            if let Ok(entries) = fs::read_dir(&root) {
                let own = |name: &str| {
                    OWN_NAMES.contains(&name)
                        || name.starts_with(".oci-layout.tmp-")
                        || name.starts_with(".index.json.tmp-")
                };
                let foreign = entries
                    .flatten()
                    .find(|e| !own(&e.file_name().to_string_lossy()));
                if let Some(e) = foreign {
                    return Err(OciError::InvalidLayout {
                        path: root,
                        reason: format!(
                            "the directory is not empty ({} is there) and has no `oci-layout` file",
                            e.file_name().to_string_lossy()
                        ),
                    });
                }
            }
        }
        let store = BlobStore::open(&root)?;
        let layout = Self { root, store };
        layout.with_index_lock(|| {
            if !marker.exists() {
                write_atomic(&marker, OCI_LAYOUT_FILE.as_bytes())?;
            }
            // Checked under the lock: written unlocked, an empty index could replace one that
            // another process has just tagged.
            if !layout.root.join("index.json").exists() {
                layout.write_index(&ImageIndex {
                    schema_version: 2,
                    media_type: Some(MEDIA_INDEX.into()),
                    manifests: Vec::new(),
                    annotations: BTreeMap::new(),
                })?;
            }
            Ok(())
        })?;
        layout.index()?;
        Ok(layout)
    }

    /// Runs `f` holding the exclusive lock on [`INDEX_LOCK_FILE`]; the lock is released when the
    /// file is closed, also when `f` fails or kiln dies.
    fn with_index_lock<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let path = self.root.join(INDEX_LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("opening the lock file", &path))?;
        file.lock().map_err(io_err("locking", &path))?;
        let out = f();
        drop(file);
        out
    }

    /// Opens an existing layout, checking its marker file.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let marker = root.join("oci-layout");
        let text = fs::read_to_string(&marker).map_err(|e| OciError::InvalidLayout {
            path: root.clone(),
            reason: format!("cannot read oci-layout: {e}"),
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| OciError::InvalidLayout {
                path: root.clone(),
                reason: format!("oci-layout is not JSON: {e}"),
            })?;
        if v.get("imageLayoutVersion")
            .and_then(|x| x.as_str())
            .is_none()
        {
            return Err(OciError::InvalidLayout {
                path: root,
                reason: "oci-layout has no imageLayoutVersion".into(),
            });
        }
        let layout = Self {
            store: BlobStore::open(&root)?,
            root,
        };
        layout.index()?;
        Ok(layout)
    }

    /// The layout root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The same layout, its blob store answering [`BlobStore::verify_known`] from `vouched`.
    pub fn with_vouched(mut self, vouched: std::sync::Arc<kiln_types::VouchedFiles>) -> Self {
        self.store = self.store.with_vouched(vouched);
        self
    }

    /// The layout's blob store (`blobs/sha256`).
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Parses `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| OciError::Json {
            what: path.display().to_string(),
            source,
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec(index).map_err(|source| OciError::Json {
            what: "index.json".into(),
            source,
        })?;
        write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Points `tag` at `target` (a manifest or index already in the store), replacing an entry with
    /// the same tag. Blobs are never duplicated: they are addressed by digest.
    pub fn tag(&self, tag: &str, target: &Descriptor) -> Result<()> {
        self.tag_all(&[(tag.to_string(), target.clone())])
    }

    /// Points every `(tag, target)` at its target in one read-modify-write of `index.json` under
    /// the lock, and writes nothing when every tag already points there: a no-op `kiln image` of
    /// 20 services is one read instead of 20 locked rewrites.
    pub fn tag_all(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        for (_, target) in tags {
            if !self.store.contains(&target.digest) {
                return Err(OciError::MissingBlob {
                    digest: target.digest,
                    store: self.root.clone(),
                });
            }
        }
        self.with_index_lock(|| {
            let before = self.index()?;
            let mut index = before.clone();
            for (tag, target) in tags {
                index.manifests.retain(|d| {
                    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag)
                });
                let mut d = target.clone();
                d.annotations
                    .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
                index.manifests.push(d);
            }
            if same_entries(&before, &index) {
                return Ok(());
            }
            self.write_index(&index)
        })
    }

    /// `(tag, descriptor)` pairs of `index.json`, untagged entries with an empty tag.
    pub fn entries(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .map(|d| {
                (
                    d.annotations
                        .get(ANNOTATION_REF_NAME)
                        .cloned()
                        .unwrap_or_default(),
                    d,
                )
            })
            .collect())
    }

    /// The descriptor tagged `tag`.
    pub fn resolve(&self, tag: &str) -> Result<Descriptor> {
        let entries = self.entries()?;
        let present = entries
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        entries
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| OciError::TagNotFound {
                tag: tag.to_string(),
                path: self.root.clone(),
                present,
            })
    }
}

/// Whether two `index.json` documents hold the same entries, in any order (retagging moves an
/// entry to the end, which changes nothing a reader sees).
fn same_entries(a: &ImageIndex, b: &ImageIndex) -> bool {
    if a.manifests.len() != b.manifests.len() {
        return false;
    }
    let key = |d: &Descriptor| serde_json::to_vec(d).unwrap_or_default();
    let mut x: Vec<Vec<u8>> = a.manifests.iter().map(key).collect();
    let mut y: Vec<Vec<u8>> = b.manifests.iter().map(key).collect();
    x.sort();
    y.sort();
    x == y && a.schema_version == b.schema_version && a.media_type == b.media_type
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_types::Digest;

    /// Many writers at once, each opening the layout itself as a separate kiln process would:
    /// before the lock, concurrent read-modify-writes of index.json lost tags.
    #[test]
    fn issue_8_concurrent_tags_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("oci");
        let writers = 16;
        let per_writer = 8;
        std::thread::scope(|s| {
            for w in 0..writers {
                let root = &root;
                s.spawn(move || {
                    let layout = OciLayout::create(root).unwrap();
                    for i in 0..per_writer {
                        let body = format!("{{\"w\":{w},\"i\":{i}}}");
                        let d = layout.store().put_bytes(body.as_bytes()).unwrap();
                        let desc = Descriptor::new(crate::MEDIA_MANIFEST, d, body.len() as u64);
                        layout.tag(&format!("w{w}-{i}"), &desc).unwrap();
                    }
                });
            }
        });
        let mut tags: Vec<String> = OciLayout::open(&root)
            .unwrap()
            .entries()
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        tags.sort();
        let mut want: Vec<String> = (0..writers)
            .flat_map(|w| (0..per_writer).map(move |i| format!("w{w}-{i}")))
            .collect();
        want.sort();
        assert_eq!(tags, want);
        // Nothing but the layout's own files is left behind.
        let mut names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [INDEX_LOCK_FILE, "blobs", "index.json", "oci-layout"]
        );
    }

    #[test]
    fn issue_8_retagging_unchanged_targets_does_not_rewrite_the_index() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path().join("oci")).unwrap();
        let a = layout.store().put_bytes(b"{\"a\":1}").unwrap();
        let b = layout.store().put_bytes(b"{\"b\":1}").unwrap();
        let da = Descriptor::new(crate::MEDIA_MANIFEST, a, 7);
        let db = Descriptor::new(crate::MEDIA_MANIFEST, b, 7);
        let tags = vec![("x:v1".to_string(), da.clone()), ("y:v1".to_string(), db)];
        layout.tag_all(&tags).unwrap();
        let index = dir.path().join("oci/index.json");
        let ino = fs::metadata(&index).unwrap().ino();
        // Same targets, other order: nothing to write (a rewrite renames a new file in).
        layout.tag_all(&[tags[1].clone(), tags[0].clone()]).unwrap();
        assert_eq!(fs::metadata(&index).unwrap().ino(), ino);
        // One tag moved: written, and both tags resolve as asked.
        layout.tag_all(&[("y:v1".to_string(), da)]).unwrap();
        assert_ne!(fs::metadata(&index).unwrap().ino(), ino);
        assert_eq!(layout.resolve("y:v1").unwrap().digest, a);
        assert_eq!(layout.resolve("x:v1").unwrap().digest, a);
        assert_eq!(layout.entries().unwrap().len(), 2);
    }

    #[test]
    fn create_refuses_foreign_directories_and_keeps_existing_layouts() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("main.go"), "package main").unwrap();
        let err = OciLayout::create(dir.path()).unwrap_err();
        assert!(matches!(err, OciError::InvalidLayout { .. }), "{err}");
        assert!(!dir.path().join("blobs").exists());

        let root = dir.path().join("layout");
        let layout = OciLayout::create(&root).unwrap();
        let d = layout.store().put_bytes(b"{}").unwrap();
        let desc = Descriptor::new(crate::MEDIA_MANIFEST, d, 2);
        layout.tag("v1", &desc).unwrap();
        layout.tag("v1", &desc).unwrap();
        let reopened = OciLayout::create(&root).unwrap();
        assert_eq!(reopened.entries().unwrap().len(), 1);
        assert_eq!(
            OciLayout::open(&root)
                .unwrap()
                .resolve("v1")
                .unwrap()
                .digest,
            d
        );
        let missing = reopened.resolve("v2").unwrap_err();
        assert!(missing.to_string().contains("v1"), "{missing}");
        let absent = Descriptor::new(crate::MEDIA_MANIFEST, Digest::of_bytes(b"nope"), 4);
        assert!(matches!(
            reopened.tag("v3", &absent),
            Err(OciError::MissingBlob { .. })
        ));
        assert!(matches!(
            OciLayout::open(dir.path()),
            Err(OciError::InvalidLayout { .. })
        ));
    }
}
