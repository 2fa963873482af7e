//! The crate's single error type.

use std::path::PathBuf;

use kiln_types::Digest;

/// Everything that can go wrong while producing or checking supply-chain documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The password did not open the encrypted private key.
    #[error("wrong password for {name} (set KILN_PASSWORD)")]
    WrongPassword {
        /// File name of the key, e.g. `kiln.key`.
        name: String,
    },
    /// The private key file is not a PEM key kiln or cosign can read.
    #[error("{name} is not a readable private key: {reason}; hint: expected `ENCRYPTED SIGSTORE PRIVATE KEY` PEM from `kiln keygen` or `cosign generate-key-pair`")]
    MalformedPrivateKey {
        /// File name of the key.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// The public key is not an ECDSA P-256 `PUBLIC KEY` PEM.
    #[error("malformed public key: {reason}; hint: expected a `PUBLIC KEY` PEM (ECDSA P-256) as written by `kiln keygen` or `cosign generate-key-pair`")]
    MalformedPublicKey {
        /// What was wrong.
        reason: String,
    },
    /// A key file exists already; keys are never overwritten.
    #[error("{path} already exists; refusing to overwrite a key (move it away or choose another prefix)")]
    KeyExists {
        /// The file that exists.
        path: PathBuf,
    },
    /// Writing or reading a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The signature is well formed but does not verify: another key signed, or the payload changed.
    #[error(
        "signature does not verify: it was made by another key or the signed payload was changed"
    )]
    BadSignature,
    /// The signature is not base64 of a DER ECDSA signature.
    #[error("malformed signature: {reason}")]
    MalformedSignature {
        /// What was wrong.
        reason: String,
    },
    /// The signed payload is valid but names another image.
    #[error("signature payload is for {found}, not for {expected}; hint: the signature belongs to another image")]
    PayloadForAnotherImage {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest the payload names.
        found: String,
    },
    /// The signed payload is not a cosign simple-signing document.
    #[error("malformed signature payload: {reason}")]
    MalformedPayload {
        /// What was wrong.
        reason: String,
    },
    /// The DSSE envelope cannot be read.
    #[error("malformed DSSE envelope: {reason}")]
    MalformedEnvelope {
        /// What was wrong.
        reason: String,
    },
    /// A Sigstore bundle cannot be read or is not one kiln verifies.
    #[error("malformed Sigstore bundle: {reason}")]
    MalformedBundle {
        /// What was wrong.
        reason: String,
    },
    /// A Go module checksum in the SBOM input is not a `h1:` hash.
    #[error("invalid go.sum hash {sum:?} for module {module}: {reason}")]
    InvalidModuleSum {
        /// Module path.
        module: String,
        /// The offending value.
        sum: String,
        /// What was wrong.
        reason: String,
    },
    /// The policy file cannot be parsed.
    #[error("invalid policy {name}: {reason}; hint: see `kiln verify --help` for the policy keys")]
    InvalidPolicy {
        /// Policy file name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {reason}")]
    Random {
        /// What was wrong.
        reason: String,
    },
    /// JSON encoding failed (an internal error: our types always serialise).
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias of this crate.
pub type Result<T, E = AttestError> = std::result::Result<T, E>;
