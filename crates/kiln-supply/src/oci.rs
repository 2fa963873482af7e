//! Small registry helpers: push an in-memory artifact, fetch a small blob, read the layer
//! list of a cosign signature image.

use std::collections::BTreeMap;

use kiln_attest::{OciArtifact, SignedLayer};
use kiln_registry::{
    BlobUpload, Client, ImageUpload, ManifestUpload, Reference, RegistryError, Repository,
};
use kiln_types::Digest;
use serde::Deserialize;

use crate::error::{io_err, Result, SupplyError};

/// cosign's `docker-reference`: the repository without tag or digest, as go-containerregistry
/// names it (`index.docker.io/...` for Docker Hub).
pub fn docker_reference(repo: &Repository) -> String {
    if repo.registry == kiln_registry::DOCKER_HUB {
        format!("index.docker.io/{}", repo.name)
    } else {
        repo.to_string()
    }
}

/// Pushes the blobs and the exact manifest bytes of `artifact`, under `tag` or by digest.
pub(crate) async fn push_artifact(
    client: &Client,
    repo: &Repository,
    artifact: &OciArtifact,
    tag: Option<&str>,
) -> Result<()> {
    let tmp = tempfile::tempdir().map_err(io_err(std::env::temp_dir()))?;
    let mut blobs = Vec::new();
    for b in std::iter::once(&artifact.config).chain(artifact.layers.iter()) {
        let path = tmp.path().join(b.digest.hex());
        std::fs::write(&path, &b.bytes).map_err(io_err(&path))?;
        blobs.push(BlobUpload {
            digest: b.digest,
            size: b.bytes.len() as u64,
            path,
            mount_from: None,
        });
    }
    let upload = ImageUpload {
        blobs,
        manifests: Vec::new(),
        root: Some(ManifestUpload {
            media_type: artifact.manifest_media_type.clone(),
            bytes: artifact.manifest.clone(),
        }),
        tags: tag.map(|t| vec![t.to_owned()]).unwrap_or_default(),
    };
    client.push_image(repo, &upload).await?;
    Ok(())
}

/// Downloads a (small) blob into memory; its digest is verified by the client.
pub(crate) async fn fetch_blob(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
) -> Result<Vec<u8>> {
    let tmp = tempfile::tempdir().map_err(io_err(std::env::temp_dir()))?;
    let path = tmp.path().join("blob");
    client.get_blob_to_file(repo, digest, &path).await?;
    std::fs::read(&path).map_err(io_err(&path))
}

#[derive(Deserialize)]
struct LayerDesc {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: Digest,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ManifestDoc {
    #[serde(default)]
    layers: Vec<LayerDesc>,
}

/// A manifest fetched by tag, with its layers (payload bytes included).
pub(crate) struct TaggedImage {
    /// The layers with their content.
    pub layers: Vec<SignedLayer>,
}

/// Reads the image under `tag`, or `None` when the tag does not exist.
pub(crate) async fn read_tagged(
    client: &Client,
    repo: &Repository,
    tag: &str,
) -> Result<Option<TaggedImage>> {
    let reference = Reference::by_tag(repo.clone(), tag)?;
    let manifest = match client.get_manifest(&reference).await {
        Ok(m) => m,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let doc: ManifestDoc =
        serde_json::from_slice(&manifest.bytes).map_err(|e| SupplyError::NotAnImage {
            what: format!("manifest {repo}:{tag}"),
            digest: manifest.digest,
            reason: e.to_string(),
        })?;
    let mut layers = Vec::with_capacity(doc.layers.len());
    for l in doc.layers {
        layers.push(SignedLayer {
            bytes: fetch_blob(client, repo, &l.digest).await?,
            media_type: l.media_type,
            annotations: l.annotations,
        });
    }
    Ok(Some(TaggedImage { layers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_reference_drops_tag_and_maps_hub() {
        let r: Reference = "127.0.0.1:5000/team/app:v1".parse().unwrap();
        assert_eq!(docker_reference(&r.repository), "127.0.0.1:5000/team/app");
        let r: Reference = "alpine".parse().unwrap();
        assert_eq!(
            docker_reference(&r.repository),
            "index.docker.io/library/alpine"
        );
    }
}
