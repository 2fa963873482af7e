//! What one session did, counted while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Live counters of a session, shared with the caller (read them any time with
/// [`Counters::snapshot`]).
#[derive(Debug, Default)]
pub struct Counters {
    gets: AtomicU64,
    local_hits: AtomicU64,
    remote_hits: AtomicU64,
    misses: AtomicU64,
    puts: AtomicU64,
    put_bytes: AtomicU64,
    hit_bytes: AtomicU64,
    remote_bytes_down: AtomicU64,
    remote_lookups: AtomicU64,
    remote_lookup_ids: AtomicU64,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    remote_errors: AtomicU64,
    corrupt: AtomicU64,
    errors: AtomicU64,
    first_remote_error: Mutex<Option<String>>,
}

/// A snapshot of a session's counters (`kiln gocacheprog --stats` prints them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// `get` requests.
    pub gets: u64,
    /// Gets answered from the local tier.
    pub local_hits: u64,
    /// Gets answered from the remote tier (then kept locally).
    pub remote_hits: u64,
    /// Gets answered with a miss.
    pub misses: u64,
    /// `put` requests stored.
    pub puts: u64,
    /// Bytes of stored puts.
    pub put_bytes: u64,
    /// Bytes of the outputs of hits (local and remote).
    pub hit_bytes: u64,
    /// Bytes downloaded from the remote tier.
    pub remote_bytes_down: u64,
    /// Batched look-up calls to the remote tier.
    pub remote_lookups: u64,
    /// Action IDs asked in those calls.
    pub remote_lookup_ids: u64,
    /// Outputs uploaded to the remote tier.
    pub uploads: u64,
    /// Bytes uploaded to the remote tier.
    pub upload_bytes: u64,
    /// Failed remote calls (each a miss or a skipped upload, never a failed request).
    pub remote_errors: u64,
    /// The first remote failure, for the one warning a session prints.
    pub first_remote_error: Option<String>,
    /// Outputs that did not match their digest (local ones are removed; remote ones not kept).
    pub corrupt: u64,
    /// Requests answered with an error (a bad put, an unknown command, a local I/O failure).
    pub errors: u64,
}

impl Counters {
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let c = match counter {
            Counter::Gets => &self.gets,
            Counter::LocalHits => &self.local_hits,
            Counter::RemoteHits => &self.remote_hits,
            Counter::Misses => &self.misses,
            Counter::Puts => &self.puts,
            Counter::PutBytes => &self.put_bytes,
            Counter::HitBytes => &self.hit_bytes,
            Counter::RemoteBytesDown => &self.remote_bytes_down,
            Counter::RemoteLookups => &self.remote_lookups,
            Counter::RemoteLookupIds => &self.remote_lookup_ids,
            Counter::Uploads => &self.uploads,
            Counter::UploadBytes => &self.upload_bytes,
            Counter::Corrupt => &self.corrupt,
            Counter::Errors => &self.errors,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn remote_error(&self, message: String) {
        self.remote_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_remote_error.lock() {
            first.get_or_insert(message);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            gets: g(&self.gets),
            local_hits: g(&self.local_hits),
            remote_hits: g(&self.remote_hits),
            misses: g(&self.misses),
            puts: g(&self.puts),
            put_bytes: g(&self.put_bytes),
            hit_bytes: g(&self.hit_bytes),
            remote_bytes_down: g(&self.remote_bytes_down),
            remote_lookups: g(&self.remote_lookups),
            remote_lookup_ids: g(&self.remote_lookup_ids),
            uploads: g(&self.uploads),
            upload_bytes: g(&self.upload_bytes),
            remote_errors: g(&self.remote_errors),
            first_remote_error: self.first_remote_error.lock().ok().and_then(|f| f.clone()),
            corrupt: g(&self.corrupt),
            errors: g(&self.errors),
        }
    }
}

/// The plain counters of [`Counters`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Gets,
    LocalHits,
    RemoteHits,
    Misses,
    Puts,
    PutBytes,
    HitBytes,
    RemoteBytesDown,
    RemoteLookups,
    RemoteLookupIds,
    Uploads,
    UploadBytes,
    Corrupt,
    Errors,
}
