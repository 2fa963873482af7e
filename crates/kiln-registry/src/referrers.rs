//! Referrers (signatures, SBOMs attached to an image): the OCI 1.1 referrers API, with tag listing
//! for registries without it (OCI's `sha256-<hex>` tag schema and cosign's `.sig`/`.att`/`.sbom` tags).

use kiln_types::Digest;
use reqwest::header::{ACCEPT, LINK};
use reqwest::{Method, StatusCode};
use serde::Serialize;

use crate::client::{json_body, Client, Scopes};
use crate::error::{RegistryError, Result};
use crate::media::{self, Descriptor, IndexDoc};
use crate::push::response_error;
use crate::reference::{Reference, Repository};

/// The artifacts referring to a manifest.
#[derive(Clone, Debug, Serialize)]
pub struct Referrers {
    /// Whether the registry implements `GET /v2/<name>/referrers/<digest>`.
    pub api_supported: bool,
    /// Referrer descriptors, filtered by artifact type when one was given.
    pub descriptors: Vec<Descriptor>,
    /// Cosign-style tags (`sha256-<hex>.sig`, `.att`, `.sbom`) pointing at the subject.
    pub cosign_tags: Vec<String>,
}

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The tag under which registries without the referrers API keep the referrers index (OCI 1.1).
pub fn referrers_fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

impl Client {
    /// Whether the registry serves the referrers API for this repository.
    pub async fn referrers_supported(&self, repo: &Repository, subject: &Digest) -> Result<bool> {
        Ok(self.referrers_api(repo, subject, None).await?.is_some())
    }

    /// `None` when the API is not implemented (404 without an OCI index body).
    async fn referrers_api(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>> {
        let mut url = self.url(repo, &format!("referrers/{subject}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let resp = self
            .send(repo, &Scopes::pull(repo), Method::GET, &url, &|rb| {
                rb.header(ACCEPT, media::OCI_INDEX)
            })
            .await?;
        match resp.status() {
            StatusCode::OK => {
                let doc: IndexDoc = json_body(resp, &repo.registry).await?;
                Ok(Some(doc.manifests))
            }
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => {
                Ok(None)
            }
            _ => Err(response_error(resp, repo, "referrers", "GET").await),
        }
    }

    /// Lists the referrers of `subject`, optionally only those of `artifact_type`.
    ///
    /// Uses the referrers API when the registry has it, else the `sha256-<hex>` fallback tag; in
    /// both cases also reports cosign tags for the subject.
    pub async fn get_referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let api = self.referrers_api(repo, subject, artifact_type).await?;
        let api_supported = api.is_some();
        let tags = self.list_tags(repo).await?;
        let prefix = referrers_fallback_tag(subject);
        let descriptors = match api {
            Some(d) => d,
            None if tags.contains(&prefix) => {
                let index = self
                    .get_manifest(&Reference::by_tag(repo.clone(), &prefix)?)
                    .await?;
                index.index_entries()?
            }
            None => Vec::new(),
        };
        // Filter again: a registry may ignore `artifactType` (it says so only in OCI-Filters-Applied).
        let descriptors = descriptors
            .into_iter()
            .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
            .collect();
        let cosign_tags = tags
            .into_iter()
            .filter(|t| {
                t.len() > prefix.len()
                    && t.starts_with(&prefix)
                    && t.as_bytes()[prefix.len()] == b'.'
            })
            .collect();
        Ok(Referrers {
            api_supported,
            descriptors,
            cosign_tags,
        })
    }

    /// All tags of a repository (`/v2/<name>/tags/list`, following `Link` pagination).
    pub async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>> {
        let mut url = self.url(repo, "tags/list")?;
        let mut out = Vec::new();
        // A bound on pages guards against a registry whose Link header loops.
        for _ in 0..1000 {
            let resp = self
                .send(repo, &Scopes::pull(repo), Method::GET, &url, &|rb| rb)
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                // A repository that does not exist yet has no tags; that is not an error here.
                return Ok(out);
            }
            if !resp.status().is_success() {
                return Err(
                    response_error(resp, repo, &format!("tags of {}", repo.name), "GET").await,
                );
            }
            let next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| {
                    l.split_once('<')?
                        .1
                        .split_once('>')
                        .map(|(u, _)| u.to_string())
                });
            let page: TagList = json_body(resp, &repo.registry).await?;
            out.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => {
                    url = url.join(&n).map_err(|e| RegistryError::Protocol {
                        registry: repo.registry.clone(),
                        detail: format!("bad Link header `{n}`: {e}"),
                    })?
                }
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}
