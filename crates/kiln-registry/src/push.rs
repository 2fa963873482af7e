//! Pushing blobs and manifests: existence checks, cross-repo mounts, monolithic and chunked uploads
//! that resume from the registry's offset or restart cleanly after a failure, and exact-bytes
//! manifest pushes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures_util::stream::{self, StreamExt};
use kiln_types::Digest;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Body, Method, Response, StatusCode, Url};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::{body_snippet, status_error, Client, Failure, Scopes};
use crate::error::{RegistryError, Result};
use crate::media::ACCEPTED_MANIFESTS;
use crate::reference::Repository;
use crate::report::{BlobOutcome, BlobReport, ManifestReport, PushReport};

const DOCKER_CONTENT_DIGEST: &str = "Docker-Content-Digest";

/// A blob file to push, addressed by its digest (as produced by kiln-oci).
#[derive(Clone, Debug)]
pub struct BlobUpload {
    /// Digest of the file's content.
    pub digest: Digest,
    /// Size of the file in bytes.
    pub size: u64,
    /// The file.
    pub path: PathBuf,
    /// Another repository on the same registry that may already hold the blob (cross-repo mount).
    pub mount_from: Option<String>,
}

/// Manifest bytes to push exactly as given.
#[derive(Clone, Debug)]
pub struct ManifestUpload {
    /// Media type, sent as `Content-Type`.
    pub media_type: String,
    /// The exact bytes (their sha256 is the manifest digest).
    pub bytes: Vec<u8>,
}

impl ManifestUpload {
    /// Digest of the bytes.
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.bytes)
    }
}

/// Everything of one image (or index) to push to one repository.
#[derive(Clone, Debug, Default)]
pub struct ImageUpload {
    /// Config and layer blobs of every manifest involved; duplicates are pushed once.
    pub blobs: Vec<BlobUpload>,
    /// Manifests the root refers to (per-platform manifests of an index), pushed by digest first.
    pub manifests: Vec<ManifestUpload>,
    /// The root manifest or index.
    pub root: Option<ManifestUpload>,
    /// Tags for the root; empty pushes it by digest only.
    pub tags: Vec<String>,
}

/// What a manifest DELETE did. Registries may refuse deletes (distribution answers 405
/// `UNSUPPORTED` unless deletion is enabled in its config); that is an answer, not an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeleteOutcome {
    /// The registry deleted it.
    Deleted,
    /// The registry did not have it (any more).
    NotFound,
    /// The registry refused (status and the start of its answer).
    Refused {
        /// HTTP status.
        status: u16,
        /// The registry's answer, shortened.
        detail: String,
    },
}

/// Maps a final non-success status to the matching error.
pub(crate) async fn response_error(
    resp: Response,
    repo: &Repository,
    what: &str,
    method: &str,
) -> RegistryError {
    let url = resp.url().to_string();
    match resp.status() {
        StatusCode::FORBIDDEN => RegistryError::Forbidden {
            registry: repo.registry.clone(),
            repository: repo.name.clone(),
            detail: body_snippet(resp).await,
        },
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            registry: repo.registry.clone(),
            what: what.to_string(),
            detail: body_snippet(resp).await,
        },
        _ => status_error(resp, method, &url).await,
    }
}

fn header_digest(resp: &Response) -> Option<Digest> {
    resp.headers()
        .get(DOCKER_CONTENT_DIGEST)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn resolve_location(repo: &Repository, base: &Url, resp: &Response) -> Result<Url> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            registry: repo.registry.clone(),
            detail: format!("upload answer from {base} has no Location header"),
        })?;
    base.join(loc).map_err(|e| RegistryError::Protocol {
        registry: repo.registry.clone(),
        detail: format!("bad upload Location `{loc}`: {e}"),
    })
}

/// The offset to go on from, given a registry's `Range: 0-<last>` for an upload session and the
/// `sent` bytes the client got through. `None` when it is unusable: not starting at 0, past what
/// was sent (never trusted: the registry would have to invent bytes), or `0-0`, which
/// distribution answers both for an empty session and for one holding a single byte.
fn resume_offset(range: &str, sent: u64) -> Option<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (start, last) = range.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    let last: u64 = last.trim().parse().ok()?;
    let at = last.checked_add(1)?;
    (last > 0 && at <= sent).then_some(at)
}

/// How one blob's upload went over its sessions, for its [`BlobOutcome`].
#[derive(Default)]
struct Progress {
    /// Sessions started.
    sessions: u32,
    /// Failures retried so far (resumes and new sessions), against `RetryPolicy::max_attempts`.
    failures: u32,
    /// Resumes from the registry's offset.
    resumed: u32,
    /// Content bytes sent, failed requests included.
    transferred: u64,
    /// The last failure was already waited for (a resume was tried and refused).
    waited: bool,
}

impl Client {
    /// Whether the repository already has the blob (one HEAD request).
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        self.blob_exists_scoped(repo, digest, &Scopes::pull(repo))
            .await
    }

    /// HEAD with the caller's scopes: a push asks with its push scope so one token serves the
    /// HEADs and the uploads instead of fetching a pull token first.
    async fn blob_exists_scoped(
        &self,
        repo: &Repository,
        digest: &Digest,
        scopes: &Scopes,
    ) -> Result<bool> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let resp = self
            .send(repo, scopes, Method::HEAD, &url, &|rb| rb)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(response_error(resp, repo, &format!("blob {digest}"), "HEAD").await),
        }
    }

    /// Pushes one blob file unless the registry has it already.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<BlobOutcome> {
        let blob = BlobUpload {
            digest: *digest,
            size,
            path: path.to_path_buf(),
            mount_from: None,
        };
        self.push_blob_upload(repo, &blob).await
    }

    /// Pushes one blob: HEAD, then a cross-repo mount if `mount_from` is set, then an upload.
    pub async fn push_blob_upload(
        &self,
        repo: &Repository,
        blob: &BlobUpload,
    ) -> Result<BlobOutcome> {
        if self
            .blob_exists_scoped(repo, &blob.digest, &Scopes::push(repo))
            .await?
        {
            return Ok(BlobOutcome::Skipped);
        }
        let mut scopes = Scopes::push(repo);
        if let Some(from) = &blob.mount_from {
            scopes.0.push(format!("repository:{from}:pull"));
        }
        // The bound is per registry, not per image: `push_images` runs several images at once.
        let _slot = self.upload_slot(&repo.registry).await;
        let mut progress = Progress::default();
        loop {
            let mut session = None;
            progress.sessions += 1;
            match self
                .upload_attempt(repo, &scopes, blob, &mut session, &mut progress)
                .await
            {
                Ok(Some(from)) => return Ok(BlobOutcome::Mounted { from }),
                Ok(None) => {
                    return Ok(BlobOutcome::Uploaded {
                        bytes_sent: blob.size,
                        attempts: progress.sessions,
                        resumed: progress.resumed,
                        bytes_transferred: progress.transferred,
                    })
                }
                Err(f) => {
                    if let Some(loc) = session {
                        // Abandon the half-done session; the registry would expire it anyway.
                        let _ = self
                            .send_once(repo, &scopes, Method::DELETE, &loc, true, &|rb| rb)
                            .await;
                    }
                    // A refused resume has counted and waited for this failure already: start
                    // the new session at once.
                    let waited = std::mem::take(&mut progress.waited);
                    let budget = self.inner.config.retry.max_attempts;
                    if !f.retryable || (!waited && progress.failures + 1 >= budget) {
                        return Err(f.error);
                    }
                    if !waited {
                        let what = format!("upload of {}", blob.digest);
                        self.backoff(&what, progress.failures, f.retry_after, &f.error)
                            .await;
                        progress.failures += 1;
                    }
                }
            }
        }
    }

    /// One upload session from POST to the final PUT; `Ok(Some(from))` when the blob was mounted.
    ///
    /// A failed `PATCH` of a chunked upload goes on in the same session from the offset the
    /// registry reports, when it reports a usable one; any other failure abandons the session and
    /// the caller starts a new one from byte 0. Bytes always go in order, and the final PUT with
    /// `?digest=` makes the registry check the whole blob, so a bad resume cannot be committed.
    async fn upload_attempt(
        &self,
        repo: &Repository,
        scopes: &Scopes,
        blob: &BlobUpload,
        session: &mut Option<Url>,
        progress: &mut Progress,
    ) -> Result<Option<String>, Failure> {
        let mut start = self.url(repo, "blobs/uploads/")?;
        if let Some(from) = &blob.mount_from {
            start
                .query_pairs_mut()
                .append_pair("mount", &blob.digest.to_string())
                .append_pair("from", from);
        }
        let resp = self
            .send_once(repo, scopes, Method::POST, &start, true, &|rb| {
                rb.header(CONTENT_LENGTH, 0)
            })
            .await?;
        match (resp.status(), &blob.mount_from) {
            (StatusCode::CREATED, Some(from)) => return Ok(Some(from.clone())),
            (StatusCode::ACCEPTED, _) => {}
            _ => {
                return Err(response_error(
                    resp,
                    repo,
                    &format!("repository {}", repo.name),
                    "POST",
                )
                .await
                .into())
            }
        }
        let mut loc = resolve_location(repo, &start, &resp)?;
        *session = Some(loc.clone());
        let io_err = |e| Failure::from(RegistryError::io(&blob.path, e));
        let mut file = tokio::fs::File::open(&blob.path).await.map_err(io_err)?;
        let on_disk = file.metadata().await.map_err(io_err)?.len();
        if on_disk != blob.size {
            // Not retryable: the caller's descriptor and the file disagree.
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "file has {on_disk} bytes but the blob descriptor says {}",
                    blob.size
                ),
            )));
        }
        let final_body = if blob.size <= self.inner.config.monolithic_limit {
            progress.transferred += blob.size;
            Some(Body::wrap_stream(tokio_util::io::ReaderStream::new(
                file.take(blob.size),
            )))
        } else {
            let chunk = self.inner.config.chunk_size.max(1);
            // Bytes the registry has confirmed (a 202 to a PATCH, or the Range of a resume).
            let mut offset = 0u64;
            while offset < blob.size {
                let n = chunk.min(blob.size - offset);
                file.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(io_err)?;
                let mut buf = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX)];
                file.read_exact(&mut buf).await.map_err(io_err)?;
                let range = format!("{}-{}", offset, offset + n - 1);
                progress.transferred += n;
                let sent = self
                    .send_body(
                        repo,
                        scopes,
                        Method::PATCH,
                        &loc,
                        Body::from(buf),
                        n,
                        Some(range),
                    )
                    .await;
                let resp = match sent {
                    Ok(resp) => resp,
                    Err(f)
                        if f.retryable
                            && progress.failures + 1 < self.inner.config.retry.max_attempts =>
                    {
                        let what = format!("upload of {}", blob.digest);
                        self.backoff(&what, progress.failures, f.retry_after, &f.error)
                            .await;
                        progress.failures += 1;
                        match self.upload_offset(repo, scopes, &loc, offset + n).await {
                            Some((at, next)) => {
                                offset = at;
                                loc = next;
                                *session = Some(loc.clone());
                                progress.resumed += 1;
                                continue;
                            }
                            None => {
                                progress.waited = true;
                                return Err(f);
                            }
                        }
                    }
                    Err(f) => return Err(f),
                };
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(status_error(resp, "PATCH", loc.as_str()).await.into());
                }
                loc = resolve_location(repo, &loc, &resp)?;
                *session = Some(loc.clone());
                offset += n;
            }
            None
        };
        let mut put = loc.clone();
        put.query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let (body, len) = match final_body {
            Some(b) => (b, blob.size),
            None => (Body::from(Vec::new()), 0),
        };
        let resp = self
            .send_body(repo, scopes, Method::PUT, &put, body, len, None)
            .await?;
        if resp.status() != StatusCode::CREATED {
            let retry_busy = resp.status().is_server_error();
            let err = status_error(resp, "PUT", put.as_str()).await;
            return Err(Failure {
                error: err,
                retryable: retry_busy,
                retry_after: None,
            });
        }
        if let Some(got) = header_digest(&resp) {
            if got != blob.digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("blob {}", blob.path.display()),
                    expected: blob.digest,
                    actual: got,
                }
                .into());
            }
        }
        *session = None;
        Ok(None)
    }

    /// Where an interrupted chunked upload can go on: `GET` on the session answers 204 with
    /// `Range: 0-<last byte held>` and a `Location` (OCI distribution spec). `sent` is how far the
    /// client got; `None` (start a new session) when the session is gone or the answer is not a
    /// usable offset.
    async fn upload_offset(
        &self,
        repo: &Repository,
        scopes: &Scopes,
        loc: &Url,
        sent: u64,
    ) -> Option<(u64, Url)> {
        let resp = self
            .send_once(repo, scopes, Method::GET, loc, true, &|rb| rb)
            .await
            .ok()?;
        if resp.status() != StatusCode::NO_CONTENT {
            // Distribution answers 404 BLOB_UPLOAD_INVALID (and cancels the session) when it
            // kept part of a torn PATCH: what it holds no longer matches the state in `loc`.
            return None;
        }
        let range = resp.headers().get(RANGE)?.to_str().ok()?;
        let at = resume_offset(range, sent)?;
        let next = resolve_location(repo, loc, &resp).unwrap_or_else(|_| loc.clone());
        Some((at, next))
    }

    /// One request with a streamed body (not replayable): no in-place retry; failures go back to
    /// the upload loop, which restarts the session.
    #[allow(clippy::too_many_arguments)]
    async fn send_body(
        &self,
        repo: &Repository,
        scopes: &Scopes,
        method: Method,
        url: &Url,
        body: Body,
        len: u64,
        content_range: Option<String>,
    ) -> Result<Response, Failure> {
        let body = std::sync::Mutex::new(Some(body));
        let build = |rb: reqwest::RequestBuilder| {
            let rb = rb
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len);
            let rb = match &content_range {
                Some(r) => rb.header("Content-Range", r.as_str()),
                None => rb,
            };
            match crate::transport::lock(&body).take() {
                Some(b) => rb.body(b),
                None => rb,
            }
        };
        self.send_once(repo, scopes, method, url, false, &build)
            .await
    }

    /// Pushes manifest bytes exactly as given under `reference` (a tag or the bytes' digest).
    ///
    /// Skips the PUT when the registry already serves this digest under that reference.
    pub async fn push_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<ManifestReport> {
        let report = self
            .put_manifest_if_changed(repo, reference, media_type, bytes)
            .await?;
        self.inner.reporter.manifest_done(repo, &report);
        Ok(report)
    }

    async fn put_manifest_if_changed(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<ManifestReport> {
        let digest = Digest::of_bytes(bytes);
        if let Ok(named) = reference.parse::<Digest>() {
            if named != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest pushed as {reference}"),
                    expected: named,
                    actual: digest,
                });
            }
        }
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let accept = ACCEPTED_MANIFESTS.join(", ");
        let scopes = Scopes::push(repo);
        let head = self
            .send(repo, &scopes, Method::HEAD, &url, &|rb| {
                rb.header(ACCEPT, accept.as_str())
            })
            .await?;
        let present = match head.status() {
            s if s.is_success() => match header_digest(&head) {
                Some(d) => d == digest,
                // Without the header only the bytes tell: fetch and hash them.
                None => self.get_manifest_bytes(repo, reference).await?.2 == digest,
            },
            StatusCode::NOT_FOUND => false,
            _ => {
                return Err(
                    response_error(head, repo, &format!("manifest {reference}"), "HEAD").await,
                )
            }
        };
        if present {
            return Ok(ManifestReport {
                digest,
                reference: reference.to_string(),
                pushed: false,
            });
        }
        let body = bytes.to_vec();
        let resp = self
            .send(repo, &scopes, Method::PUT, &url, &|rb| {
                rb.header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(
                response_error(resp, repo, &format!("repository {}", repo.name), "PUT").await,
            );
        }
        if let Some(got) = header_digest(&resp) {
            if got != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest {reference} as stored by the registry"),
                    expected: digest,
                    actual: got,
                });
            }
        }
        Ok(ManifestReport {
            digest,
            reference: reference.to_string(),
            pushed: true,
        })
    }

    /// Deletes the manifest `digest` (never a tag: deleting by tag would remove whatever the tag
    /// points at). A refusal is returned as [`DeleteOutcome::Refused`]; only transport
    /// failures are errors.
    pub async fn delete_manifest(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<DeleteOutcome> {
        let url = self.url(repo, &format!("manifests/{digest}"))?;
        let resp = self
            .send(repo, &Scopes::delete(repo), Method::DELETE, &url, &|rb| rb)
            .await?;
        Ok(match resp.status() {
            s if s.is_success() => DeleteOutcome::Deleted,
            StatusCode::NOT_FOUND => DeleteOutcome::NotFound,
            s => DeleteOutcome::Refused {
                status: s.as_u16(),
                detail: body_snippet(resp).await,
            },
        })
    }

    /// Pushes an image: blobs concurrently (bounded by `concurrency`), then child manifests by
    /// digest, then the root under each tag (or by digest).
    pub async fn push_image(&self, repo: &Repository, image: &ImageUpload) -> Result<PushReport> {
        let limit = self.inner.config.concurrency.max(1);
        let mut seen = HashSet::new();
        let blobs: Vec<&BlobUpload> = image
            .blobs
            .iter()
            .filter(|b| seen.insert(b.digest))
            .collect();
        if let Some(report) = self.already_in_place(repo, image, &blobs).await {
            return Ok(report);
        }
        let outcomes: Vec<Result<BlobOutcome>> = stream::iter(blobs.iter().map(|b| async move {
            let outcome = self.push_blob_upload(repo, b).await;
            if let Ok(o) = &outcome {
                let line = BlobReport {
                    digest: b.digest,
                    size: b.size,
                    outcome: o.clone(),
                };
                self.inner.reporter.blob_done(repo, &line);
            }
            outcome
        }))
        .buffered(limit)
        .collect()
        .await;
        let mut report = PushReport {
            repository: repo.to_string(),
            digest: image.root.as_ref().map(ManifestUpload::digest),
            blobs: Vec::with_capacity(blobs.len()),
            manifests: Vec::new(),
            bytes_sent: 0,
        };
        for (b, outcome) in blobs.iter().zip(outcomes) {
            let outcome = outcome?;
            if let BlobOutcome::Uploaded { bytes_sent, .. } = &outcome {
                report.bytes_sent += bytes_sent;
            }
            report.blobs.push(BlobReport {
                digest: b.digest,
                size: b.size,
                outcome,
            });
        }
        let children: Vec<Result<ManifestReport>> =
            stream::iter(image.manifests.iter().map(|m| async move {
                self.push_manifest(repo, &m.digest().to_string(), &m.media_type, &m.bytes)
                    .await
            }))
            .buffered(limit)
            .collect()
            .await;
        for c in children {
            report.manifests.push(c?);
        }
        if let Some(root) = &image.root {
            let refs: Vec<String> = if image.tags.is_empty() {
                vec![root.digest().to_string()]
            } else {
                image.tags.clone()
            };
            for r in refs {
                report.manifests.push(
                    self.push_manifest(repo, &r, &root.media_type, &root.bytes)
                        .await?,
                );
            }
        }
        Ok(report)
    }

    /// The no-op re-push: when every reference the root would be pushed under already resolves to
    /// the root's digest, the registry holds the whole image (it accepted that manifest only with
    /// everything it references present), so no blob or child needs a request. One HEAD per
    /// reference; any doubt (another digest, no digest header, an error) means `None` and the full
    /// push runs.
    async fn already_in_place(
        &self,
        repo: &Repository,
        image: &ImageUpload,
        blobs: &[&BlobUpload],
    ) -> Option<PushReport> {
        let root = image.root.as_ref()?;
        let digest = root.digest();
        let refs: Vec<String> = if image.tags.is_empty() {
            vec![digest.to_string()]
        } else {
            image.tags.clone()
        };
        let accept = ACCEPTED_MANIFESTS.join(", ");
        let scopes = Scopes::push(repo);
        for r in &refs {
            let url = self.url(repo, &format!("manifests/{r}")).ok()?;
            let head = self
                .send(repo, &scopes, Method::HEAD, &url, &|rb| {
                    rb.header(ACCEPT, accept.as_str())
                })
                .await
                .ok()?;
            if !head.status().is_success() || header_digest(&head) != Some(digest) {
                return None;
            }
        }
        let mut report = PushReport {
            repository: repo.to_string(),
            digest: Some(digest),
            blobs: Vec::with_capacity(blobs.len()),
            manifests: Vec::new(),
            bytes_sent: 0,
        };
        for b in blobs {
            let line = BlobReport {
                digest: b.digest,
                size: b.size,
                outcome: BlobOutcome::Skipped,
            };
            self.inner.reporter.blob_done(repo, &line);
            report.blobs.push(line);
        }
        for m in image
            .manifests
            .iter()
            .map(|m| (m.digest().to_string(), m.digest()))
            .chain(refs.iter().map(|r| (r.clone(), digest)))
        {
            let line = ManifestReport {
                digest: m.1,
                reference: m.0,
                pushed: false,
            };
            self.inner.reporter.manifest_done(repo, &line);
            report.manifests.push(line);
        }
        Some(report)
    }

    /// The no-op check of [`Client::push_image`] alone, for many images at once (bounded by
    /// `concurrency`): `Some(report)` for every image whose references already resolve to its
    /// root digest (nothing to send), `None` for the rest. Lets a caller skip the per-blob
    /// preparation of a push (mount sources, waves) for images that need none.
    pub async fn already_pushed(
        &self,
        images: &[(Repository, ImageUpload)],
    ) -> Vec<Option<PushReport>> {
        // One small HEAD per image: more of them in flight than uploads, so a no-op push of a
        // monorepo costs about one round trip rather than one per `concurrency` images.
        let limit = (self.inner.config.concurrency.max(1) * 4).min(64);
        stream::iter(images.iter().map(|(repo, image)| async move {
            let mut seen = HashSet::new();
            let blobs: Vec<&BlobUpload> = image
                .blobs
                .iter()
                .filter(|b| seen.insert(b.digest))
                .collect();
            self.already_in_place(repo, image, &blobs).await
        }))
        .buffered(limit)
        .collect()
        .await
    }

    /// Pushes several images at once (bounded by `concurrency`), sharing connections and tokens.
    pub async fn push_images(
        &self,
        images: &[(Repository, ImageUpload)],
    ) -> Vec<Result<PushReport>> {
        let limit = self.inner.config.concurrency.max(1);
        stream::iter(images.iter().map(|(repo, img)| self.push_image(repo, img)))
            .buffered(limit)
            .collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::resume_offset;

    #[test]
    fn resume_offset_trusts_only_ranges_from_zero_within_what_was_sent() {
        assert_eq!(resume_offset("0-99", 200), Some(100));
        assert_eq!(resume_offset("bytes=0-99", 200), Some(100));
        assert_eq!(resume_offset(" 0-199 ", 200), Some(200));
        // Past what was sent: the registry cannot hold bytes it never got.
        assert_eq!(resume_offset("0-200", 200), None);
        // Ambiguous in distribution (0 or 1 byte held).
        assert_eq!(resume_offset("0-0", 200), None);
        assert_eq!(resume_offset("5-99", 200), None);
        assert_eq!(resume_offset("0-", 200), None);
        assert_eq!(resume_offset("garbage", 200), None);
        assert_eq!(resume_offset(&format!("0-{}", u64::MAX), u64::MAX), None);
    }
}
