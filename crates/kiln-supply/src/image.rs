//! Reading an image (from a registry or an OCI layout) far enough to know what is inside:
//! manifests, configs, and every executable in the final filesystem with its inspection report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_attest::{BaseImageInfo, SbomSubject, SubjectKind};
use kiln_oci::{
    BlobStore, Descriptor, ImageIndex, ImageManifest, OciConfig, OciLayout, ANNOTATION_BASE_DIGEST,
    ANNOTATION_BASE_NAME,
};
use kiln_registry::{media, Client, Reference};
use kiln_types::{Digest, Platform};
use kiln_verify::BinaryReport;
use serde::Serialize;

use crate::error::{io_err, Result, SupplyError};
use crate::subject::binary_info;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A registry reference (`host/repo:tag` or `@sha256:...`).
    Registry(Reference),
    /// A tag in a local OCI layout directory (`oci:DIR:TAG`).
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: String,
    },
}

impl ImageSource {
    /// Parses `oci:DIR[:TAG]` (tag defaults to `latest`) or a registry reference.
    pub fn parse(input: &str) -> Result<Self> {
        if let Some(rest) = input.strip_prefix("oci:") {
            let (dir, tag) = match rest.rsplit_once(':') {
                // A colon followed by a path separator is part of the directory (C:\ on Windows).
                Some((d, t)) if !t.is_empty() && !t.contains(['/', '\\']) => (d, t),
                _ => (rest, "latest"),
            };
            if dir.is_empty() {
                return Err(SupplyError::InvalidSource {
                    input: input.to_owned(),
                    reason: "the layout directory is empty".into(),
                });
            }
            return Ok(Self::Layout {
                dir: PathBuf::from(dir),
                tag: tag.to_owned(),
            });
        }
        let r: Reference = input.parse()?;
        Ok(Self::Registry(r))
    }
}

/// An executable found in an image's final filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct FoundBinary {
    /// Absolute path inside the image, e.g. `/app`.
    pub path: String,
    /// sha256 of the file.
    pub sha256: Digest,
    /// What kiln-verify read from its headers.
    pub report: BinaryReport,
}

/// One platform-specific image (a manifest with its config).
#[derive(Debug, Clone, Serialize)]
pub struct PlatformImage {
    /// Manifest digest.
    pub digest: Digest,
    /// Platform from the config.
    pub platform: Option<Platform>,
    /// The image config.
    pub config: OciConfig,
    /// Manifest annotations (base image name/digest live here).
    pub annotations: BTreeMap<String, String>,
    /// Executables in the final filesystem, sorted by path.
    pub binaries: Vec<FoundBinary>,
    /// Regular files of the base, with their sha256, sorted by path: filled when the base
    /// digest names one of the image's own layers (kiln's built-in base), empty otherwise
    /// (a pulled base is pinned by its manifest, whose files are not listed).
    pub base_files: Vec<(String, Digest)>,
}

impl PlatformImage {
    /// The base image named by the `org.opencontainers.image.base.*` manifest annotations,
    /// or by config labels of the same names (where `kiln image` also records them).
    pub fn base(&self) -> Option<(String, Digest)> {
        let labels = self.config.config.labels.as_ref();
        let get = |key: &str| {
            self.annotations
                .get(key)
                .or_else(|| labels.and_then(|l| l.get(key)))
        };
        let digest = get(ANNOTATION_BASE_DIGEST)?.parse().ok()?;
        let name = get(ANNOTATION_BASE_NAME).cloned().unwrap_or_default();
        Some((name, digest))
    }
}

/// An image (single-platform or index) read far enough to describe and verify it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageContents {
    /// Repository (registry images: `host/repo`) or layout directory.
    pub name: String,
    /// Tag, when the image was named by one.
    pub tag: Option<String>,
    /// Digest of the root manifest or index.
    pub digest: Digest,
    /// Media type of the root.
    pub media_type: String,
    /// The platform images (one for a plain manifest).
    pub images: Vec<PlatformImage>,
}

impl ImageContents {
    /// The SBOM subject: every Go executable of every platform, the base from the annotations.
    pub fn sbom_subject(&self) -> SbomSubject {
        let multi = self.images.len() > 1;
        let mut binaries = Vec::new();
        for img in &self.images {
            for b in &img.binaries {
                if let Some(go) = &b.report.go {
                    // Per-platform copies share a path; the platform keeps SBOM entries apart.
                    let path = match (&img.platform, multi) {
                        (Some(p), true) => format!("{p}:{}", b.path),
                        _ => b.path.clone(),
                    };
                    binaries.push(binary_info(go, &path, b.sha256));
                }
            }
        }
        let base = self.images.iter().find_map(|img| {
            img.base().map(|(name, digest)| BaseImageInfo {
                name,
                digest,
                files: img.base_files.clone(),
            })
        });
        SbomSubject {
            name: self.name.clone(),
            version: self.tag.clone(),
            kind: SubjectKind::Image,
            digest: self.digest,
            platform: if multi {
                None
            } else {
                self.images.first().and_then(|i| i.platform.clone())
            },
            binaries,
            base,
        }
    }
}

/// Reads an image from a registry or a layout, including every executable in it.
///
/// Registry layers are downloaded to a temporary directory that is removed afterwards.
pub async fn load_image(client: &Client, source: &ImageSource) -> Result<ImageContents> {
    match source {
        ImageSource::Layout { dir, tag } => load_layout(dir, tag),
        ImageSource::Registry(r) => load_registry(client, r).await,
    }
}

fn load_layout(dir: &Path, tag: &str) -> Result<ImageContents> {
    let layout = OciLayout::open(dir)?;
    let root = layout.resolve(tag)?;
    let store = layout.store();
    let manifests: Vec<Digest> = if media::is_index(&root.media_type) {
        image_entries(&store.read_index(&root.digest)?)
    } else {
        vec![root.digest]
    };
    let mut images = Vec::new();
    for d in manifests {
        let manifest = store.read_manifest(&d)?;
        let config = store.read_config(&manifest.config.digest)?;
        images.push(platform_image(store, d, manifest, config)?);
    }
    Ok(ImageContents {
        name: dir.display().to_string(),
        tag: Some(tag.to_owned()),
        digest: root.digest,
        media_type: root.media_type,
        images,
    })
}

// Attestation manifests some tools put into indexes carry platform unknown/unknown: not images.
fn image_entries(index: &ImageIndex) -> Vec<Digest> {
    index
        .manifests
        .iter()
        .filter(|m| media::is_image_manifest(&m.media_type))
        .filter(|m| m.platform.as_ref().is_none_or(|p| p.os != "unknown"))
        .map(|m| m.digest)
        .collect()
}

async fn load_registry(client: &Client, reference: &Reference) -> Result<ImageContents> {
    let root = client.get_manifest(reference).await?;
    let repo = &reference.repository;
    let tmp = tempfile::tempdir().map_err(io_err(std::env::temp_dir()))?;
    let store = BlobStore::open(tmp.path())?;
    let manifests: Vec<Digest> = if root.is_index() {
        let index: ImageIndex = parse_json(&root.bytes, "index", reference, &root.digest)?;
        image_entries(&index)
    } else {
        vec![root.digest]
    };
    let mut images = Vec::new();
    for d in manifests {
        let bytes = if d == root.digest {
            root.bytes.clone()
        } else {
            client
                .get_manifest(&Reference::by_digest(repo.clone(), d))
                .await?
                .bytes
        };
        let manifest: ImageManifest = parse_json(&bytes, "manifest", reference, &d)?;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            if !store.contains(&blob.digest) {
                client
                    .get_blob_to_file(repo, &blob.digest, &store.path(&blob.digest))
                    .await?;
            }
        }
        let config = store.read_config(&manifest.config.digest)?;
        images.push(platform_image(&store, d, manifest, config)?);
    }
    Ok(ImageContents {
        name: repo.to_string(),
        tag: reference.tag.clone().filter(|_| reference.digest.is_none()),
        digest: root.digest,
        media_type: root.media_type,
        images,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    reference: &Reference,
    digest: &Digest,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| SupplyError::NotAnImage {
        what: format!("{what} of {reference}"),
        digest: *digest,
        reason: e.to_string(),
    })
}

fn platform_image(
    store: &BlobStore,
    digest: Digest,
    manifest: ImageManifest,
    config: OciConfig,
) -> Result<PlatformImage> {
    let platform = if config.os.is_empty() || config.architecture.is_empty() {
        None
    } else {
        let mut s = format!("{}/{}", config.os, config.architecture);
        if let Some(v) = &config.variant {
            s.push('/');
            s.push_str(v);
        }
        s.parse().ok()
    };
    let binaries = scan_layers(store, &manifest)?;
    let mut image = PlatformImage {
        digest,
        platform,
        config,
        annotations: manifest.annotations,
        binaries,
        base_files: Vec::new(),
    };
    if let Some((_, base)) = image.base() {
        if let Some(layer) = manifest.layers.iter().find(|l| l.digest == base) {
            image.base_files = layer_files(store, layer)?;
        }
    }
    Ok(image)
}

/// Every regular file of one layer with its sha256, sorted by path. The base's own layer is
/// read as stored in the image (not rebuilt), so the SBOM lists exactly what was shipped.
fn layer_files(store: &BlobStore, layer: &Descriptor) -> Result<Vec<(String, Digest)>> {
    let mut files = BTreeMap::new();
    store.visit_layer(layer, |info, reader| {
        let path = normalise(&info.path);
        if info.kind == "file" {
            let (sha, _) = Digest::of_reader(reader).map_err(|e| kiln_oci::OciError::Io {
                action: "reading layer entry",
                path: PathBuf::from(&path),
                source: e,
            })?;
            files.insert(path, sha);
        } else {
            // A later entry of the same path (anything but a file) replaces the earlier one.
            files.remove(&path);
        }
        Ok(())
    })?;
    Ok(files.into_iter().collect())
}

/// Whether the first bytes of a file are an ELF, Mach-O or PE header.
pub fn is_executable_magic(head: &[u8]) -> bool {
    const MACHO: [[u8; 4]; 5] = [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xcf, 0xfa, 0xed, 0xfe],
        [0xca, 0xfe, 0xba, 0xbe],
    ];
    head.starts_with(b"\x7fELF")
        || head.starts_with(b"MZ")
        || MACHO.iter().any(|m| head.starts_with(m))
}

/// Walks the layers bottom-up, applying whiteouts, and inspects every executable that is
/// present in the final filesystem.
fn scan_layers(store: &BlobStore, manifest: &ImageManifest) -> Result<Vec<FoundBinary>> {
    let mut found: BTreeMap<String, FoundBinary> = BTreeMap::new();
    for layer in &manifest.layers {
        let mut inspect_err = None;
        store.visit_layer(layer, |info, reader| {
            let path = normalise(&info.path);
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            if name == ".wh..wh..opq" {
                let prefix = format!("{dir}/");
                found.retain(|k, _| !k.starts_with(&prefix));
                return Ok(());
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let gone = format!("{dir}/{hidden}");
                let prefix = format!("{gone}/");
                found.retain(|k, _| k != &gone && !k.starts_with(&prefix));
                return Ok(());
            }
            // A later layer replacing the path with anything else hides the earlier binary.
            found.remove(&path);
            if info.kind != "file" || info.size < 4 {
                return Ok(());
            }
            let mut head = [0u8; 4];
            reader
                .read_exact(&mut head)
                .map_err(|e| kiln_oci::OciError::Io {
                    action: "reading layer entry",
                    path: PathBuf::from(&path),
                    source: e,
                })?;
            if !is_executable_magic(&head) {
                return Ok(());
            }
            let mut bytes = head.to_vec();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| kiln_oci::OciError::Io {
                    action: "reading layer entry",
                    path: PathBuf::from(&path),
                    source: e,
                })?;
            match kiln_verify::inspect_bytes(&bytes) {
                Ok(report) => {
                    found.insert(
                        path.clone(),
                        FoundBinary {
                            path,
                            sha256: Digest::of_bytes(&bytes),
                            report,
                        },
                    );
                }
                // "MZ" and friends also start non-executables; only broken real binaries matter.
                Err(kiln_verify::VerifyError::NotExecutable { .. }) => {}
                Err(source) => {
                    inspect_err.get_or_insert(SupplyError::Inspect { path, source });
                }
            }
            Ok(())
        })?;
        if let Some(e) = inspect_err {
            return Err(e);
        }
    }
    Ok(found.into_values().collect())
}

fn normalise(tar_path: &str) -> String {
    let trimmed = tar_path.trim_start_matches("./").trim_end_matches('/');
    format!("/{}", trimmed.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            ImageSource::parse("oci:out/img:v1").unwrap(),
            ImageSource::Layout {
                dir: "out/img".into(),
                tag: "v1".into()
            }
        );
        assert_eq!(
            ImageSource::parse("oci:out/img").unwrap(),
            ImageSource::Layout {
                dir: "out/img".into(),
                tag: "latest".into()
            }
        );
        assert!(matches!(
            ImageSource::parse("127.0.0.1:5000/app:v1").unwrap(),
            ImageSource::Registry(_)
        ));
        assert!(ImageSource::parse("oci::v1").is_err());
        assert!(ImageSource::parse("UPPER/Case").is_err());
    }

    #[test]
    fn magic_and_paths() {
        assert!(is_executable_magic(b"\x7fELF\x02"));
        assert!(is_executable_magic(&[0xcf, 0xfa, 0xed, 0xfe]));
        assert!(!is_executable_magic(b"#!/b"));
        assert_eq!(normalise("./usr/bin/app"), "/usr/bin/app");
        assert_eq!(normalise("app"), "/app");
        assert_eq!(normalise("etc/"), "/etc");
    }
}
