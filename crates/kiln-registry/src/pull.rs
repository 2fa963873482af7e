//! Pulling manifests and blobs with digest verification, platform selection in indexes, and a
//! local content-addressed cache.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use kiln_types::{Digest, Platform, Sha256Writer};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::client::{error_chain, random_u64, Client, Scopes};
use crate::error::{RegistryError, Result};
use crate::media::{self, IndexDoc, MediaTypeDoc, ACCEPTED_MANIFESTS};
use crate::push::response_error;
use crate::reference::{Reference, Repository};

/// Cache bucket name; bump the version when the layout changes so old entries are simply ignored.
const CACHE_BUCKET: &str = "registry-v1";

/// A manifest as served by the registry: exact bytes, media type, digest.
#[derive(Clone, Debug, Serialize)]
pub struct PulledManifest {
    /// Media type (OCI or Docker schema 2, image or index).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The exact bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl PulledManifest {
    /// Whether this is an index / manifest list.
    pub fn is_index(&self) -> bool {
        media::is_index(&self.media_type)
    }

    /// The entries of an index (empty for an image manifest).
    pub fn index_entries(&self) -> Result<Vec<media::Descriptor>> {
        if !self.is_index() {
            return Ok(Vec::new());
        }
        let doc: IndexDoc =
            serde_json::from_slice(&self.bytes).map_err(|e| RegistryError::Protocol {
                registry: String::new(),
                detail: format!("index {} is not valid JSON: {e}", self.digest),
            })?;
        Ok(doc.manifests)
    }
}

fn tmp_sibling(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".kiln-tmp-{:016x}", random_u64()));
    path.with_file_name(name)
}

impl Client {
    fn cache_path(&self, digest: &Digest) -> Option<PathBuf> {
        let dir = self.inner.config.cache_dir.as_ref()?;
        Some(dir.join(CACHE_BUCKET).join("sha256").join(digest.hex()))
    }

    /// Writes bytes to the cache through a temp file and rename, so readers never see half an entry.
    /// Cache failures are not errors: the cache only saves time.
    fn cache_put_bytes(&self, digest: &Digest, bytes: &[u8], media_type: Option<&str>) {
        let Some(path) = self.cache_path(digest) else {
            return;
        };
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if let Some(mt) = media_type {
                let side = path.with_extension("mediatype");
                let tmp = tmp_sibling(&side);
                std::fs::write(&tmp, mt)?;
                std::fs::rename(&tmp, &side)?;
            }
            let tmp = tmp_sibling(&path);
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        let _ = write();
    }

    /// A cached manifest, only if its bytes still hash to `digest` (a corrupt entry is a miss).
    fn cache_get_manifest(&self, digest: &Digest) -> Option<PulledManifest> {
        let path = self.cache_path(digest)?;
        let bytes = std::fs::read(&path).ok()?;
        let media_type = std::fs::read_to_string(path.with_extension("mediatype")).ok()?;
        (Digest::of_bytes(&bytes) == *digest).then_some(PulledManifest {
            media_type,
            digest: *digest,
            bytes,
        })
    }

    /// GETs a manifest by tag or digest: bytes, media type, digest of the bytes.
    pub(crate) async fn get_manifest_bytes(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let accept = ACCEPTED_MANIFESTS.join(", ");
        let resp = self
            .send(repo, &Scopes::pull(repo), Method::GET, &url, &|rb| {
                rb.header(ACCEPT, accept.as_str())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(response_error(
                resp,
                repo,
                &format!("manifest {}:{reference}", repo.name),
                "GET",
            )
            .await);
        }
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let claimed: Option<Digest> = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse().ok());
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Network {
            method: "GET".into(),
            url: url.to_string(),
            detail: error_chain(&e),
        })?;
        let digest = Digest::of_bytes(&bytes);
        if let Some(claimed) = claimed {
            if claimed != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest {repo}:{reference}"),
                    expected: claimed,
                    actual: digest,
                });
            }
        }
        // The document's own mediaType is authoritative; the header may be generic JSON.
        let doc_type = serde_json::from_slice::<MediaTypeDoc>(&bytes)
            .ok()
            .and_then(|d| d.media_type);
        let media_type = doc_type
            .or(header_type)
            .filter(|m| ACCEPTED_MANIFESTS.contains(&m.as_str()))
            .ok_or_else(|| RegistryError::UnsupportedMediaType {
                media_type: String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned(),
                what: format!("manifest {repo}:{reference}"),
            })?;
        Ok((bytes.to_vec(), media_type, digest))
    }

    /// Fetches a manifest (image or index) exactly as stored. Pulls by digest are verified and
    /// served from the cache when present; pulls by tag always ask the registry (tags move).
    pub async fn get_manifest(&self, reference: &Reference) -> Result<PulledManifest> {
        if let Some(d) = &reference.digest {
            if let Some(hit) = self.cache_get_manifest(d) {
                return Ok(hit);
            }
        }
        let (bytes, media_type, digest) = self
            .get_manifest_bytes(&reference.repository, &reference.manifest_reference())
            .await?;
        if let Some(want) = reference.digest {
            if want != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest {reference}"),
                    expected: want,
                    actual: digest,
                });
            }
        }
        self.cache_put_bytes(&digest, &bytes, Some(&media_type));
        Ok(PulledManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Fetches the image manifest for `platform`: through the index if the reference names one,
    /// or the manifest itself if it is a single-platform image.
    pub async fn get_manifest_for_platform(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PulledManifest> {
        let top = self.get_manifest(reference).await?;
        if !top.is_index() {
            return Ok(top);
        }
        let entries = top.index_entries()?;
        let entry = media::select_platform(&entries, platform).ok_or_else(|| {
            RegistryError::NoMatchingPlatform {
                reference: reference.to_string(),
                platform: platform.to_string(),
                available: entries
                    .iter()
                    .filter_map(|e| e.platform.as_ref().map(media::OciPlatform::spelled))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        let child = Reference::by_digest(reference.repository.clone(), entry.digest);
        self.get_manifest(&child).await
    }

    /// Downloads a blob to `path` (temp file + rename), verifying its digest while streaming.
    /// Returns the size. Uses and fills the cache when one is configured.
    pub async fn get_blob_to_file(
        &self,
        repo: &Repository,
        digest: &Digest,
        path: &Path,
    ) -> Result<u64> {
        if let Some(cached) = self.cache_path(digest) {
            if let Ok(size) = verified_copy(&cached, digest, path).await {
                return Ok(size);
            }
        }
        let mut attempt = 0;
        let size = loop {
            match self.download_once(repo, digest, path).await {
                Ok(size) => break size,
                Err(e) => {
                    let transient = matches!(
                        e,
                        RegistryError::Network { .. } | RegistryError::DigestMismatch { .. }
                    );
                    if !transient || attempt + 1 >= self.inner.config.retry.max_attempts {
                        return Err(e);
                    }
                    self.backoff(&format!("download of {digest}"), attempt, None, &e)
                        .await;
                    attempt += 1;
                }
            }
        };
        if let Some(cached) = self.cache_path(digest) {
            // Best effort: a failed cache fill only costs a download next time.
            let fill = async {
                if let Some(parent) = cached.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let tmp = tmp_sibling(&cached);
                tokio::fs::copy(path, &tmp).await?;
                tokio::fs::rename(&tmp, &cached).await
            };
            let _ = fill.await;
        }
        Ok(size)
    }

    async fn download_once(&self, repo: &Repository, digest: &Digest, path: &Path) -> Result<u64> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let mut resp = self
            .send(repo, &Scopes::pull(repo), Method::GET, &url, &|rb| rb)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(response_error(
                resp,
                repo,
                &format!("blob {digest} in {}", repo.name),
                "GET",
            )
            .await);
        }
        let tmp = tmp_sibling(path);
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| RegistryError::io(&tmp, e))?;
            let mut hasher = Sha256Writer::new(std::io::sink());
            while let Some(chunk) = resp.chunk().await.map_err(|e| RegistryError::Network {
                method: "GET".into(),
                url: url.to_string(),
                detail: error_chain(&e),
            })? {
                hasher
                    .write_all(&chunk)
                    .map_err(|e| RegistryError::io(&tmp, e))?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| RegistryError::io(&tmp, e))?;
            }
            file.flush().await.map_err(|e| RegistryError::io(&tmp, e))?;
            let (actual, size) = hasher.finish();
            if actual != *digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("blob downloaded from {repo}"),
                    expected: *digest,
                    actual,
                });
            }
            tokio::fs::rename(&tmp, path)
                .await
                .map_err(|e| RegistryError::io(path, e))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// Copies a cached blob to `dest` only if it still hashes to `digest`.
async fn verified_copy(cached: &Path, digest: &Digest, dest: &Path) -> std::io::Result<u64> {
    let (cached, digest, dest) = (cached.to_path_buf(), *digest, dest.to_path_buf());
    let task = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut src = std::fs::File::open(&cached)?;
        let tmp = tmp_sibling(&dest);
        let mut out = Sha256Writer::new(std::fs::File::create(&tmp)?);
        let copied = std::io::copy(&mut src, &mut out);
        let (file, actual, size) = out.into_parts();
        drop(file);
        if copied.is_err() || actual != digest {
            let _ = std::fs::remove_file(&tmp);
            // A corrupt entry is removed so the next fill replaces it.
            if copied.is_ok() {
                let _ = std::fs::remove_file(&cached);
            }
            return Err(std::io::Error::other("cache entry missing or corrupt"));
        }
        std::fs::rename(&tmp, &dest)?;
        Ok(size)
    });
    task.await.map_err(std::io::Error::other)?
}
