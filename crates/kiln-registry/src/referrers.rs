//! Referrers (signatures, SBOMs attached to an image): the OCI 1.1 referrers API, with tag listing
//! for registries without it (OCI's `sha256-<hex>` tag schema and cosign's `.sig`/`.att`/`.sbom` tags).

use kiln_types::Digest;
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use serde::Serialize;

use crate::client::{json_body, next_page, Client, Scopes};
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

/// The referrers of one subject as a writer needs them: from the API when the registry has it,
/// else from the OCI 1.1 fallback tag index (what the writer must merge into and push back).
#[derive(Clone, Debug, Serialize)]
pub struct ReferrersIndex {
    /// Whether the registry implements the referrers API (then it keeps the list itself).
    pub api_supported: bool,
    /// The referrer descriptors, unfiltered (other tools' entries included).
    pub descriptors: Vec<Descriptor>,
    /// Without the API: whether the fallback tag exists yet.
    pub fallback_tag_exists: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FallbackIndex<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<&'a Descriptor>,
}

/// The bytes of an OCI 1.1 referrers fallback index listing `entries`: an OCI image index,
/// one descriptor per referrer manifest (with its `artifactType` and `annotations`), sorted by
/// digest and without duplicates, so that the same set of referrers always gives the same digest
/// (go-containerregistry, and with it cosign, sorts the same way).
pub fn referrers_fallback_index(entries: &[Descriptor]) -> Result<Vec<u8>> {
    let mut sorted: Vec<&Descriptor> = entries.iter().collect();
    sorted.sort_by_key(|d| d.digest.to_string());
    sorted.dedup_by(|a, b| a.digest == b.digest);
    serde_json::to_vec(&FallbackIndex {
        schema_version: 2,
        media_type: media::OCI_INDEX,
        manifests: sorted,
    })
    .map_err(|e| RegistryError::Protocol {
        registry: String::new(),
        detail: format!("cannot encode the referrers index: {e}"),
    })
}

impl Client {
    /// Whether the registry serves the referrers API for this repository.
    pub async fn referrers_supported(&self, repo: &Repository, subject: &Digest) -> Result<bool> {
        Ok(self.referrers_api(repo, subject, None).await?.is_some())
    }

    /// The referrers of `subject` for a writer: the API's list when the registry has the API,
    /// else the entries of the `sha256-<hex>` fallback tag index (empty when the tag does not
    /// exist). Unlike [`Client::get_referrers`] this does not list the repository's tags.
    pub async fn referrers_index(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<ReferrersIndex> {
        if let Some(descriptors) = self.referrers_api(repo, subject, None).await? {
            return Ok(ReferrersIndex {
                api_supported: true,
                descriptors,
                fallback_tag_exists: false,
            });
        }
        let tag = referrers_fallback_tag(subject);
        match self
            .get_manifest(&Reference::by_tag(repo.clone(), &tag)?)
            .await
        {
            Ok(index) if index.is_index() => Ok(ReferrersIndex {
                api_supported: false,
                descriptors: index.index_entries()?,
                fallback_tag_exists: true,
            }),
            Ok(other) => Err(RegistryError::Protocol {
                registry: repo.registry.clone(),
                detail: format!(
                    "{repo}:{tag} is a {} ({}), not the OCI 1.1 referrers index that tag is \
                     reserved for; hint: move that image to another tag so referrers can be listed",
                    other.media_type, other.digest
                ),
            }),
            Err(RegistryError::NotFound { .. }) => Ok(ReferrersIndex {
                api_supported: false,
                descriptors: Vec::new(),
                fallback_tag_exists: false,
            }),
            Err(e) => Err(e),
        }
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
            let next = next_page(&resp, &url, &repo.registry)?;
            let page: TagList = json_body(resp, &repo.registry).await?;
            out.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}
