//! Read side of OCI 1.1 referrers for verifiers: where the referrers of a manifest were found
//! (the referrers API, or the `sha256-<hex>` fallback tag index on registries without it) and
//! what they are, so a caller can say exactly what it searched.

use kiln_types::Digest;
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use serde::Serialize;

use crate::client::{json_body, next_page, Client, Scopes};
use crate::error::{RegistryError, Result};
use crate::media::{self, Descriptor, IndexDoc};
use crate::push::response_error;
use crate::reference::{Reference, Repository};
use crate::referrers::referrers_fallback_tag;

/// Where the referrers of a manifest were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersSource {
    /// `GET /v2/<name>/referrers/<digest>`.
    Api,
    /// The registry has no referrers API; the fallback tag index exists.
    FallbackTag,
    /// The registry has no referrers API and the fallback tag does not exist.
    Nowhere,
}

/// The referrers of one manifest, with where they came from.
#[derive(Clone, Debug, Serialize)]
pub struct Discovered {
    /// API, fallback tag, or neither.
    pub source: ReferrersSource,
    /// The fallback tag name for the subject (`sha256-<hex>`), looked up without the API.
    pub fallback_tag: String,
    /// Every referrer descriptor (unfiltered: callers look at artifact types themselves).
    pub descriptors: Vec<Descriptor>,
}

impl Discovered {
    /// Where the referrers were looked for, in words, e.g. `the referrers API` or
    /// `fallback tag sha256-<hex> (absent; the registry has no referrers API)`.
    pub fn searched(&self) -> String {
        match self.source {
            ReferrersSource::Api => "the referrers API".into(),
            ReferrersSource::FallbackTag => format!(
                "fallback tag {} (the registry has no referrers API)",
                self.fallback_tag
            ),
            ReferrersSource::Nowhere => format!(
                "fallback tag {} (absent; the registry has no referrers API)",
                self.fallback_tag
            ),
        }
    }
}

impl Client {
    /// All referrers of `subject`: from the referrers API when the registry implements it
    /// (the OCI 1.1 rule: the API is authoritative), else from the fallback tag index.
    ///
    /// Unlike [`Client::get_referrers`] this needs no tag listing, so it works on registries
    /// that refuse `tags/list`.
    pub async fn discover_referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Discovered> {
        let fallback_tag = referrers_fallback_tag(subject);
        if let Some(descriptors) = self.referrers_listing(repo, subject).await? {
            return Ok(Discovered {
                source: ReferrersSource::Api,
                fallback_tag,
                descriptors,
            });
        }
        let reference = Reference::by_tag(repo.clone(), &fallback_tag)?;
        match self.get_manifest(&reference).await {
            Ok(index) => Ok(Discovered {
                source: ReferrersSource::FallbackTag,
                fallback_tag,
                descriptors: index.index_entries()?,
            }),
            Err(RegistryError::NotFound { .. }) => Ok(Discovered {
                source: ReferrersSource::Nowhere,
                fallback_tag,
                descriptors: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The referrers API listing, following `Link` pages; `None` when the API is absent.
    async fn referrers_listing(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>> {
        let mut url = self.url(repo, &format!("referrers/{subject}"))?;
        let mut out = Vec::new();
        // A bound on pages guards against a registry whose Link header loops.
        for page in 0..100 {
            let resp = self
                .send(repo, &Scopes::pull(repo), Method::GET, &url, &|rb| {
                    rb.header(ACCEPT, media::OCI_INDEX)
                })
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                // Registries without the API answer 404 (distribution), 405 or 400.
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::BAD_REQUEST
                    if page == 0 =>
                {
                    return Ok(None)
                }
                _ => return Err(response_error(resp, repo, "referrers", "GET").await),
            }
            let next = next_page(&resp, &url, &repo.registry)?;
            let doc: IndexDoc = json_body(resp, &repo.registry).await?;
            out.extend(doc.manifests);
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searched_names_the_place_looked_at() {
        let subject = Digest::of_bytes(b"image");
        let tag = referrers_fallback_tag(&subject);
        let found = |source| Discovered {
            source,
            fallback_tag: tag.clone(),
            descriptors: Vec::new(),
        };
        assert_eq!(found(ReferrersSource::Api).searched(), "the referrers API");
        assert_eq!(
            found(ReferrersSource::FallbackTag).searched(),
            format!("fallback tag {tag} (the registry has no referrers API)")
        );
        assert_eq!(
            found(ReferrersSource::Nowhere).searched(),
            format!("fallback tag {tag} (absent; the registry has no referrers API)")
        );
        assert_eq!(tag, format!("sha256-{}", subject.hex()));
    }
}
