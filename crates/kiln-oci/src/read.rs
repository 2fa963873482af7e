use std::io::{self, BufReader, Read};

use kiln_types::Digest;
use serde::Serialize;

use crate::descriptor::{
    Descriptor, MEDIA_DOCKER_LAYER_GZIP, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_INDEX,
    MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, MEDIA_LAYER_ZSTD, MEDIA_MANIFEST,
};
use crate::error::{io_err, OciError, Result};
use crate::image::{ImageIndex, ImageManifest, OciConfig};
use crate::store::BlobStore;

/// Metadata of one entry of a layer's tar stream, as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TarEntryInfo {
    /// Path as stored (directories end in `/`).
    pub path: String,
    /// `dir`, `file`, `symlink`, `hardlink` or `other`.
    pub kind: &'static str,
    /// Permission bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Owner name (kiln writes none).
    pub uname: String,
    /// Group name (kiln writes none).
    pub gname: String,
    /// Modification time.
    pub mtime: u64,
    /// Content size.
    pub size: u64,
    /// Link target for links.
    pub link: Option<String>,
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str, digest: &Digest) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| OciError::Json {
        what: format!("{what} {digest}"),
        source,
    })
}

impl BlobStore {
    /// Reads and parses a manifest, verifying its digest.
    pub fn read_manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        json(&self.read_verified(digest)?, "manifest", digest)
    }

    /// Reads and parses an image index, verifying its digest.
    pub fn read_index(&self, digest: &Digest) -> Result<ImageIndex> {
        json(&self.read_verified(digest)?, "image index", digest)
    }

    /// Reads and parses an image config, verifying its digest.
    pub fn read_config(&self, digest: &Digest) -> Result<OciConfig> {
        json(&self.read_verified(digest)?, "image config", digest)
    }

    /// Every blob reachable from `root` (an index or a manifest), including `root`, without
    /// duplicates, in a stable order (depth first, as listed).
    pub fn reachable(&self, root: &Descriptor) -> Result<Vec<Descriptor>> {
        let mut out: Vec<Descriptor> = Vec::new();
        self.collect(root, &mut out)?;
        Ok(out)
    }

    fn collect(&self, d: &Descriptor, out: &mut Vec<Descriptor>) -> Result<()> {
        if out.iter().any(|x| x.digest == d.digest) {
            return Ok(());
        }
        let plain = Descriptor::new(d.media_type.clone(), d.digest, d.size);
        out.push(plain);
        match d.media_type.as_str() {
            MEDIA_INDEX | MEDIA_DOCKER_LIST => {
                for m in self.read_index(&d.digest)?.manifests {
                    self.collect(&m, out)?;
                }
            }
            MEDIA_MANIFEST | MEDIA_DOCKER_MANIFEST => {
                let m = self.read_manifest(&d.digest)?;
                self.collect(&m.config, out)?;
                for l in &m.layers {
                    self.collect(l, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Opens a layer blob, decompressing according to its media type.
    pub fn open_layer(&self, layer: &Descriptor) -> Result<Box<dyn Read>> {
        let f = BufReader::new(self.open_blob(&layer.digest)?);
        Ok(match layer.media_type.as_str() {
            MEDIA_LAYER_TAR => Box::new(f),
            MEDIA_LAYER_GZIP | MEDIA_DOCKER_LAYER_GZIP => {
                Box::new(flate2::bufread::MultiGzDecoder::new(f))
            }
            MEDIA_LAYER_ZSTD => Box::new(
                zstd::stream::read::Decoder::with_buffer(f)
                    .map_err(io_err("decompressing", self.path(&layer.digest)))?,
            ),
            other => {
                return Err(OciError::MediaType {
                    digest: layer.digest,
                    media_type: other.to_string(),
                    expected: "a tar, tar+gzip or tar+zstd layer",
                })
            }
        })
    }

    /// Calls `visit` for every entry of a layer with its metadata and a reader over its content.
    pub fn visit_layer(
        &self,
        layer: &Descriptor,
        mut visit: impl FnMut(&TarEntryInfo, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let path = self.path(&layer.digest);
        let terr = |e: io::Error| OciError::Io {
            action: "reading layer tar",
            path: path.clone(),
            source: e,
        };
        let mut archive = tar::Archive::new(self.open_layer(layer)?);
        for entry in archive.entries().map_err(terr)? {
            let mut entry = entry.map_err(terr)?;
            let h = entry.header();
            let et = h.entry_type();
            let kind = if et.is_dir() {
                "dir"
            } else if et.is_file() {
                "file"
            } else if et.is_symlink() {
                "symlink"
            } else if et.is_hard_link() {
                "hardlink"
            } else {
                "other"
            };
            let info = TarEntryInfo {
                path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                kind,
                mode: h.mode().map_err(terr)?,
                uid: h.uid().map_err(terr)?,
                gid: h.gid().map_err(terr)?,
                uname: String::from_utf8_lossy(h.username_bytes().unwrap_or_default()).into_owned(),
                gname: String::from_utf8_lossy(h.groupname_bytes().unwrap_or_default())
                    .into_owned(),
                mtime: h.mtime().map_err(terr)?,
                size: entry.size(),
                link: entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            };
            visit(&info, &mut entry)?;
        }
        Ok(())
    }

    /// Lists a layer's entries.
    pub fn layer_entries(&self, layer: &Descriptor) -> Result<Vec<TarEntryInfo>> {
        let mut out = Vec::new();
        self.visit_layer(layer, |info, _| {
            out.push(info.clone());
            Ok(())
        })?;
        Ok(out)
    }
}
