use std::path::PathBuf;

/// Everything that can go wrong while inspecting a binary.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File that failed.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an ELF, Mach-O or PE executable.
    #[error("not an executable: {what}; kiln verifies ELF, Mach-O and PE executables")]
    NotExecutable {
        /// What the bytes look like instead.
        what: String,
    },
    /// The container format is recognised but its headers are broken or truncated.
    #[error("malformed {format} binary: {message}; is the file complete (not truncated by a failed copy or build)?")]
    Malformed {
        /// `ELF`, `Mach-O` or `PE`.
        format: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The Go build info is present but cannot be decoded.
    #[error("invalid Go build info: {message}")]
    BuildInfo {
        /// What was wrong.
        message: String,
    },
    /// An error about a specific file.
    #[error("{path}: {source}")]
    File {
        /// File being inspected.
        path: PathBuf,
        /// What went wrong with it.
        #[source]
        source: Box<VerifyError>,
    },
}
