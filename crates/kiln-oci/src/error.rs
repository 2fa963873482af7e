use std::path::PathBuf;

use kiln_types::Digest;

/// Everything that can go wrong while packaging or reading images.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// An I/O operation on a file failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What kiln was doing (`reading`, `creating`, ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A layer entry path is not a clean relative path.
    #[error("invalid layer path `{0}`: use a path like `/app` or `etc/passwd` without `..`, `.` or empty components")]
    InvalidPath(String),
    /// Two layer entries claim the same path.
    #[error("duplicate layer entry `{0}`: every path may appear once per layer")]
    DuplicateEntry(String),
    /// A path is used both as a directory (parent of another entry) and as a non-directory.
    #[error("layer entry `{0}` is a file or symlink but other entries are placed below it")]
    NotADirectory(String),
    /// A file changed size while it was being packed.
    #[error("`{path}` changed while it was packed (expected {expected} bytes, read {actual}); hint: do not modify build outputs while `kiln image` runs")]
    FileChanged {
        /// The source file.
        path: PathBuf,
        /// Size at the time the header was written.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// A blob's content does not match its digest.
    #[error("blob {expected} is corrupt: its content hashes to {actual}; hint: delete `{path}` and rebuild or re-pull it")]
    DigestMismatch {
        /// The digest the blob is stored under.
        expected: Digest,
        /// The digest of its content.
        actual: Digest,
        /// Where the blob is.
        path: PathBuf,
    },
    /// A blob is referenced but not in the store.
    #[error(
        "blob {digest} is missing from `{store}`; hint: rebuild the image or re-pull the base"
    )]
    MissingBlob {
        /// The referenced digest.
        digest: Digest,
        /// The blob store root.
        store: PathBuf,
    },
    /// JSON could not be produced or parsed.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A document has a media type this operation does not handle.
    #[error("{digest} has media type `{media_type}`, expected {expected}")]
    MediaType {
        /// The document's digest.
        digest: Digest,
        /// The media type found.
        media_type: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An OCI layout directory is not valid.
    #[error("`{path}` is not an OCI image layout: {reason}; hint: pass an empty or new directory to create one")]
    InvalidLayout {
        /// The layout root.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tag was not found in a layout.
    #[error("tag `{tag}` not found in `{path}` (tags present: {present})")]
    TagNotFound {
        /// The requested tag.
        tag: String,
        /// The layout root.
        path: PathBuf,
        /// Tags that exist.
        present: String,
    },
    /// docker-archive cannot carry an image index.
    #[error("{digest} is a multi-platform image index, which docker-archive cannot hold; hint: use `oci-archive`, or write one docker-archive entry per platform with its own tag")]
    IndexInDockerArchive {
        /// The index digest.
        digest: Digest,
    },
    /// A pulled base image is inconsistent.
    #[error("base image `{name}`: {reason}")]
    InvalidBase {
        /// The base image reference.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Go's time zone archive cannot be read into the kiln base.
    #[error("time zone archive `{path}`: {reason}; hint: the file comes from the Go installation ($GOROOT/lib/time/zoneinfo.zip): reinstall Go, or use `base = \"scratch\"` or a registry base")]
    Zoneinfo {
        /// The archive.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Invalid image configuration supplied by the caller.
    #[error("invalid image configuration: {0}")]
    InvalidConfig(String),
}

/// Result alias for this crate.
pub type Result<T, E = OciError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.into();
    move |source| OciError::Io {
        action,
        path,
        source,
    }
}
