use serde::{Deserialize, Serialize};

use kiln_types::Digest;

/// What one action produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Output files, by name.
    pub outputs: Vec<OutputRecord>,
    /// Seconds since the Unix epoch when the action ran.
    pub created: u64,
    /// How long the action took when it ran, in milliseconds (what a hit saves).
    pub duration_ms: u64,
}

/// One output file of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// File name relative to the action's output directory.
    pub name: String,
    /// Content digest in the blob store.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Whether it is executable.
    pub executable: bool,
}
