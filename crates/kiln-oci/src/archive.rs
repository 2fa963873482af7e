use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::descriptor::{Descriptor, ANNOTATION_REF_NAME, MEDIA_DOCKER_LIST, MEDIA_INDEX};
use crate::error::{io_err, OciError, Result};
use crate::image::ImageIndex;
use crate::layout::OCI_LAYOUT_FILE;
use crate::store::BlobStore;
use crate::tarw::{Header, Kind, TarWriter};

/// One image of a docker-archive: a single-platform manifest and the tags `docker load` gives it.
#[derive(Clone, Debug)]
pub struct DockerArchiveImage {
    /// Descriptor of a single-platform image manifest in the store.
    pub manifest: Descriptor,
    /// `name:tag` references (may be empty).
    pub repo_tags: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn blob_name(d: &Descriptor) -> String {
    format!("blobs/sha256/{}", d.digest.hex())
}

/// Streams a deterministic tar (sorted paths, mtime 0, root owner, 0644/0755) to a temp file next
/// to `out` and renames it into place. Files come from memory or from the blob store.
fn write_tar(out: &Path, store: &BlobStore, files: &BTreeMap<String, Source<'_>>) -> Result<()> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let werr = |e| OciError::Io {
        action: "writing archive",
        path: tmp.clone(),
        source: e,
    };
    let f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let result = (|| {
        let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, f));
        let mut dirs = std::collections::BTreeSet::new();
        for path in files.keys() {
            let mut p = path.as_str();
            while let Some((d, _)) = p.rsplit_once('/') {
                dirs.insert(d.to_string());
                p = d;
            }
        }
        let mut all: BTreeMap<&str, Option<&Source<'_>>> =
            dirs.iter().map(|d| (d.as_str(), None)).collect();
        all.extend(files.iter().map(|(k, v)| (k.as_str(), Some(v))));
        for (path, src) in all {
            let mut h = Header {
                path,
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: 0,
                link: "",
            };
            match src {
                None => tar.header(&h).map_err(werr)?,
                Some(Source::Bytes(b)) => {
                    h.kind = Kind::File;
                    h.mode = 0o644;
                    h.size = b.len() as u64;
                    tar.header(&h).map_err(werr)?;
                    tar.write_data(&mut &b[..], h.size).map_err(werr)?;
                }
                Some(Source::Blob(d)) => {
                    h.kind = Kind::File;
                    h.mode = 0o644;
                    h.size = d.size;
                    tar.header(&h).map_err(werr)?;
                    let mut f = store.open_blob(&d.digest)?;
                    let n = tar
                        .write_data(&mut f, d.size)
                        .map_err(io_err("reading", store.path(&d.digest)))?;
                    if n != d.size {
                        return Err(OciError::FileChanged {
                            path: store.path(&d.digest),
                            expected: d.size,
                            actual: n,
                        });
                    }
                }
            }
        }
        tar.finish().map_err(werr)?.flush().map_err(werr)?;
        fs::rename(&tmp, out).map_err(io_err("renaming into", out))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

enum Source<'a> {
    Bytes(Vec<u8>),
    Blob(&'a Descriptor),
}

/// Writes an `oci-archive`: an OCI layout holding `refs` (tag, manifest-or-index descriptor) and
/// every blob they reach, as a deterministic tar.
pub fn write_oci_archive(
    store: &BlobStore,
    refs: &[(String, Descriptor)],
    out: &Path,
) -> Result<()> {
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    for (tag, d) in refs {
        for b in store.reachable(d)? {
            if !blobs.iter().any(|x: &Descriptor| x.digest == b.digest) {
                blobs.push(b);
            }
        }
        let mut d = d.clone();
        d.annotations
            .insert(ANNOTATION_REF_NAME.to_string(), tag.clone());
        manifests.push(d);
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_INDEX.into()),
        manifests,
        annotations: BTreeMap::new(),
    };
    let index_bytes = serde_json::to_vec(&index).map_err(|source| OciError::Json {
        what: "index.json".into(),
        source,
    })?;
    let mut files = BTreeMap::new();
    files.insert(
        "oci-layout".to_string(),
        Source::Bytes(OCI_LAYOUT_FILE.as_bytes().to_vec()),
    );
    files.insert("index.json".to_string(), Source::Bytes(index_bytes));
    for b in &blobs {
        files.insert(blob_name(b), Source::Blob(b));
    }
    write_tar(out, store, &files)
}

/// Writes a `docker-archive` (`docker save` format): `manifest.json` with `Config`, `RepoTags` and
/// `Layers`, plus the config and layer blobs under `blobs/sha256/` (layers stay compressed, which
/// `docker load` and skopeo accept). docker-archive is single-platform per entry: an index is
/// refused with [`OciError::IndexInDockerArchive`]; for several platforms pass one entry per
/// platform manifest, each with its own tags.
pub fn write_docker_archive(
    store: &BlobStore,
    images: &[DockerArchiveImage],
    out: &Path,
) -> Result<()> {
    let mut files = BTreeMap::new();
    let mut entries = Vec::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    for img in images {
        if matches!(
            img.manifest.media_type.as_str(),
            MEDIA_INDEX | MEDIA_DOCKER_LIST
        ) {
            return Err(OciError::IndexInDockerArchive {
                digest: img.manifest.digest,
            });
        }
        let m = store.read_manifest(&img.manifest.digest)?;
        entries.push(DockerManifestEntry {
            config: blob_name(&m.config),
            repo_tags: img.repo_tags.clone(),
            layers: m.layers.iter().map(blob_name).collect(),
        });
        blobs.push(m.config.clone());
        blobs.extend(m.layers.iter().cloned());
    }
    let manifest = serde_json::to_vec(&entries).map_err(|source| OciError::Json {
        what: "manifest.json".into(),
        source,
    })?;
    files.insert("manifest.json".to_string(), Source::Bytes(manifest));
    for b in &blobs {
        files.entry(blob_name(b)).or_insert(Source::Blob(b));
    }
    write_tar(out, store, &files)
}
