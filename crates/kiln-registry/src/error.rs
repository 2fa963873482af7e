use std::path::PathBuf;

use kiln_types::Digest;

/// Everything that can go wrong talking to a registry.
///
/// Variants carry the registry, repository or digest involved; messages end with a `hint:` when the
/// user can fix the cause (log in, start the registry, allow plain HTTP, ...).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference could not be parsed.
    #[error("invalid image reference `{reference}`: {reason}; expected `host[:port]/repo[:tag][@sha256:<hex>]`")]
    InvalidReference {
        /// The input as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry wants credentials we do not have, or rejected the ones we sent.
    #[error("authentication required by {registry} for `{repository}` ({detail}); hint: run `docker login {registry}`, add credentials to config.json ($DOCKER_CONFIG or ~/.docker), or pass them explicitly")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository the request was for.
        repository: String,
        /// What the registry or token server said.
        detail: String,
    },
    /// The credentials were accepted but do not allow this operation.
    #[error("permission denied by {registry} for `{repository}` ({detail}); hint: the account needs pull/push rights on this repository")]
    Forbidden {
        /// Registry host.
        registry: String,
        /// Repository the request was for.
        repository: String,
        /// Error text from the registry.
        detail: String,
    },
    /// The repository, tag, manifest or blob does not exist.
    #[error("{what} not found on {registry} ({detail}); hint: check the repository name and tag")]
    NotFound {
        /// Registry host.
        registry: String,
        /// What was looked for, e.g. `manifest app:v1`.
        what: String,
        /// Error text from the registry.
        detail: String,
    },
    /// Nothing answers at the registry address.
    #[error("cannot connect to registry {registry} at {url}: {detail}; hint: is the registry running and is the address right?")]
    Unreachable {
        /// Registry host.
        registry: String,
        /// The URL we tried.
        url: String,
        /// The transport error.
        detail: String,
    },
    /// A TLS handshake failed, most often because the registry speaks plain HTTP.
    #[error("TLS error talking to {registry} at {url}: {detail}; hint: if this registry serves plain HTTP, mark it insecure (--insecure-registry {registry})")]
    Tls {
        /// Registry host.
        registry: String,
        /// The URL we tried.
        url: String,
        /// The TLS error.
        detail: String,
    },
    /// A transport error that persisted after all retries.
    #[error("network error on {method} {url}: {detail}")]
    Network {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// The transport error.
        detail: String,
    },
    /// The registry answered with a status we did not expect.
    #[error("registry answered {status} to {method} {url}: {body}")]
    Status {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body (registry error JSON).
        body: String,
    },
    /// The registry broke the protocol (missing header, bad JSON, ...).
    #[error("unexpected answer from registry {registry}: {detail}")]
    Protocol {
        /// Registry host.
        registry: String,
        /// What was wrong.
        detail: String,
    },
    /// Content did not hash to the digest it was requested or announced by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}; hint: the registry or a proxy altered the content, or the local file changed since it was hashed")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest we asked for.
        expected: Digest,
        /// The digest of what we received.
        actual: Digest,
    },
    /// An index has no manifest for the requested platform.
    #[error("`{reference}` has no manifest for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// The image reference.
        reference: String,
        /// The requested platform.
        platform: String,
        /// The platforms the index offers.
        available: String,
    },
    /// A manifest media type kiln does not handle.
    #[error("unsupported manifest media type `{media_type}` for {what}")]
    UnsupportedMediaType {
        /// The media type.
        media_type: String,
        /// The manifest.
        what: String,
    },
    /// Credentials could not be read from the docker config or a credential helper.
    #[error("cannot read credentials for {registry} from {source_desc}: {detail}; hint: check config.json ($DOCKER_CONFIG or ~/.docker) and the credential helper")]
    Credentials {
        /// Registry host.
        registry: String,
        /// Where we looked.
        source_desc: String,
        /// The underlying error.
        detail: String,
    },
    /// A local file could not be read or written.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be constructed.
    #[error("cannot create HTTP client: {0}")]
    Client(String),
}

impl RegistryError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
