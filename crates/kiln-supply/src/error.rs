//! The crate's single error type.

use std::path::PathBuf;

use kiln_types::Digest;

/// Everything that can go wrong while producing, attaching or checking supply-chain data.
///
/// Registry, signing and image-layout errors keep their own (already hinted) messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupplyError {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] kiln_registry::RegistryError),
    /// Building, signing or checking a supply-chain document failed.
    #[error(transparent)]
    Attest(#[from] kiln_attest::AttestError),
    /// Reading an OCI layout or a layer failed.
    #[error(transparent)]
    Oci(#[from] kiln_oci::OciError),
    /// A binary could not be inspected.
    #[error("cannot inspect {path}: {source}")]
    Inspect {
        /// The binary (a file, or a path inside an image).
        path: String,
        /// What went wrong.
        #[source]
        source: kiln_verify::VerifyError,
    },
    /// A binary has no Go build info, so there is nothing to put in an SBOM.
    #[error("{path} has no Go build info; hint: kiln's SBOMs describe Go executables built with module support (go build, Go 1.18 or newer)")]
    NoGoBuildInfo {
        /// The binary.
        path: PathBuf,
    },
    /// A local file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The image argument is neither a registry reference nor `oci:DIR[:TAG]`.
    #[error("invalid image `{input}`: {reason}; hint: use `registry/repo:tag`, `registry/repo@sha256:...` or `oci:DIR:TAG`")]
    InvalidSource {
        /// The argument as given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A manifest or config is not what an image should contain.
    #[error("{what} ({digest}) is not a usable image: {reason}")]
    NotAnImage {
        /// What was read, e.g. `manifest 127.0.0.1:5000/app:v1`.
        what: String,
        /// Its digest.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = SupplyError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SupplyError {
    let path = path.into();
    move |source| SupplyError::Io { path, source }
}
