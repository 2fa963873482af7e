use std::path::PathBuf;

/// Everything that can stop `kiln image`.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Packaging (layers, images, layout, archives) failed.
    #[error(transparent)]
    Oci(#[from] kiln_oci::OciError),
    /// A registry operation failed (pull of a base, push of an image).
    // The client's error is part of the message (not a `source`), so `{:#}` does not repeat it.
    #[error("{what}: {error}")]
    Registry {
        /// What kiln was doing (`pulling base alpine:3.20 for linux/arm64`).
        what: String,
        /// The client's error (it carries its own hint).
        error: kiln_registry::RegistryError,
    },
    /// A target of the build report has no binary to package.
    #[error(
        "service `{service}` has no binary for {platform}: {reason}; hint: fix the build errors above, or restrict `--platform`"
    )]
    MissingBinary {
        /// Service name.
        service: String,
        /// Platform.
        platform: String,
        /// Why (the build error, or `not built`).
        reason: String,
    },
    /// A setting that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A data file declared by a profile cannot be read.
    #[error(
        "data file `{path}` for `{dst}` cannot be read: {error}; hint: paths in [profiles.NAME] files are relative to the project root"
    )]
    DataFile {
        /// The source file.
        path: PathBuf,
        /// Its destination in the image.
        dst: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A pulled base is not an image kiln can build on.
    #[error("base `{name}`: {reason}")]
    Base {
        /// The base reference.
        name: String,
        /// What is wrong, with a hint.
        reason: String,
    },
    /// kiln's cache directory cannot be used.
    #[error(transparent)]
    Cache(#[from] kiln_cache::CacheError),
    /// The async runtime for registry I/O could not be started.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
}

/// `Result` with [`ImageError`].
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
