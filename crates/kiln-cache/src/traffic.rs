use serde::Serialize;

/// One run's traffic through a layered store: where action results came from and what talking to
/// a remote cache cost. Filled by stores that have a remote tier (`kiln-remote`); a plain local
/// store reports none ([`crate::Storage::traffic`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheTraffic {
    /// The remote, as configured (`grpc://host:port`, with the instance name if any).
    pub remote: String,
    /// Whether the remote is only read (`read_only`).
    pub read_only: bool,
    /// Action lookups answered by the local store.
    pub local_hits: u64,
    /// Action lookups the local store missed and the remote answered (its outputs now local too).
    pub remote_hits: u64,
    /// Action lookups neither answered.
    pub misses: u64,
    /// Action results written to the remote.
    pub remote_writes: u64,
    /// Bytes read from the remote (blobs and action results).
    pub bytes_down: u64,
    /// Bytes written to the remote.
    pub bytes_up: u64,
    /// Wall time spent waiting on the remote, summed over calls, in milliseconds.
    pub remote_wait_ms: u64,
    /// Why the remote was switched off for the rest of the run, if it was (the circuit breaker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<String>,
    /// Problems worth one line each: a corrupted blob, an unreachable remote, a refused write.
    /// Each distinct message appears once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
