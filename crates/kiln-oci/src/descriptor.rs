use kiln_types::Digest;
/// The one OCI descriptor and platform types (defined in kiln-types, shared with kiln-registry
/// and kiln-attest).
pub use kiln_types::{Descriptor, OciPlatform};
use serde::Serialize;

/// OCI image manifest media type.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed layer media type.
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Gzip layer media type.
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Zstd layer media type.
pub const MEDIA_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest (accepted in pulled bases and when reading).
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (accepted when reading).
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker gzip layer (accepted in pulled bases).
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The annotation naming a tag in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation: the base image reference.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation: the base image manifest digest.
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// A JSON document kept as the exact bytes that were hashed, so it is never re-serialised (which
/// could change its digest) after its digest has been handed out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredJson {
    /// Media type of the document.
    pub media_type: String,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// The exact serialised bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl StoredJson {
    /// Serialises `value` once and digests the result.
    pub(crate) fn new<T: Serialize>(
        media_type: &str,
        what: &str,
        value: &T,
    ) -> crate::Result<Self> {
        let bytes = serde_json::to_vec(value).map_err(|source| crate::OciError::Json {
            what: what.to_string(),
            source,
        })?;
        Ok(Self {
            media_type: media_type.to_string(),
            digest: Digest::of_bytes(&bytes),
            bytes,
        })
    }

    /// A descriptor pointing at this document.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest,
            self.bytes.len() as u64,
        )
    }
}
