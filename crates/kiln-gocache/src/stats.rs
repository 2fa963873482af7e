//! What one session did, counted while it runs.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::GoCacheError;

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
    remote_wait_us: AtomicU64,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Time go's `get`s spent waiting on the remote tier, summed over requests (they overlap, so
    /// this can exceed the wall time), in milliseconds.
    pub remote_wait_ms: u64,
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
    /// Peak resident memory of the serving process in KiB, when the caller measured it (go starts
    /// the process, so nobody else can); the largest of the sessions in a sum.
    #[serde(skip_serializing_if = "is_zero")]
    pub peak_rss_kib: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Stats {
    /// Adds `other`'s counts to these (the first remote error stays the first one seen).
    pub fn merge(&mut self, other: &Stats) {
        self.gets += other.gets;
        self.local_hits += other.local_hits;
        self.remote_hits += other.remote_hits;
        self.misses += other.misses;
        self.puts += other.puts;
        self.put_bytes += other.put_bytes;
        self.hit_bytes += other.hit_bytes;
        self.remote_bytes_down += other.remote_bytes_down;
        self.remote_wait_ms += other.remote_wait_ms;
        self.remote_lookups += other.remote_lookups;
        self.remote_lookup_ids += other.remote_lookup_ids;
        self.uploads += other.uploads;
        self.upload_bytes += other.upload_bytes;
        self.remote_errors += other.remote_errors;
        if self.first_remote_error.is_none() {
            self.first_remote_error
                .clone_from(&other.first_remote_error);
        }
        self.corrupt += other.corrupt;
        self.errors += other.errors;
        self.peak_rss_kib = self.peak_rss_kib.max(other.peak_rss_kib);
    }

    /// The sum of every `*.json` session file in `dir` (what `kiln gocacheprog --stats-dir`
    /// writes, one file per session): `None` when there is none. A file that cannot be read as
    /// stats is an error, since the sum would undercount.
    pub fn sum_dir(dir: &Path) -> Result<Option<Stats>, GoCacheError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(GoCacheError::io(dir)(e)),
        };
        let mut total: Option<Stats> = None;
        for entry in entries {
            let path = entry.map_err(GoCacheError::io(dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(GoCacheError::io(&path))?;
            let one: Stats = serde_json::from_slice(&bytes).map_err(|e| {
                GoCacheError::Internal(format!(
                    "session counters {} are not readable: {e}",
                    path.display()
                ))
            })?;
            total.get_or_insert_with(Stats::default).merge(&one);
        }
        Ok(total)
    }
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
            Counter::RemoteWaitMicros => &self.remote_wait_us,
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
            remote_wait_ms: g(&self.remote_wait_us) / 1000,
            remote_lookups: g(&self.remote_lookups),
            remote_lookup_ids: g(&self.remote_lookup_ids),
            uploads: g(&self.uploads),
            upload_bytes: g(&self.upload_bytes),
            remote_errors: g(&self.remote_errors),
            first_remote_error: self.first_remote_error.lock().ok().and_then(|f| f.clone()),
            corrupt: g(&self.corrupt),
            errors: g(&self.errors),
            peak_rss_kib: 0,
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
    RemoteWaitMicros,
    RemoteLookups,
    RemoteLookupIds,
    Uploads,
    UploadBytes,
    Corrupt,
    Errors,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_files_sum_up_and_the_first_error_stays() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Stats::sum_dir(&dir.path().join("none")).unwrap(), None);
        assert_eq!(Stats::sum_dir(dir.path()).unwrap(), None);
        let a = Stats {
            gets: 3,
            misses: 1,
            puts: 1,
            first_remote_error: Some("first".into()),
            remote_errors: 1,
            ..Stats::default()
        };
        let b = Stats {
            gets: 2,
            remote_hits: 2,
            first_remote_error: Some("second".into()),
            remote_errors: 1,
            ..Stats::default()
        };
        std::fs::write(dir.path().join("1.json"), serde_json::to_vec(&a).unwrap()).unwrap();
        std::fs::write(dir.path().join("2.json"), serde_json::to_vec(&b).unwrap()).unwrap();
        // The peak RSS the command adds, and other files, do not disturb the sum.
        std::fs::write(
            dir.path().join("3.json"),
            br#"{"gets":1,"peak_rss_kib":900}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join(".tmp"), b"partial").unwrap();
        let sum = Stats::sum_dir(dir.path()).unwrap().unwrap();
        assert_eq!(
            (sum.gets, sum.misses, sum.remote_hits, sum.puts),
            (6, 1, 2, 1)
        );
        assert_eq!(sum.remote_errors, 2);
        assert_eq!(sum.peak_rss_kib, 900, "the largest session's peak");
        assert!(sum.first_remote_error.is_some());
        std::fs::write(dir.path().join("4.json"), b"not json").unwrap();
        assert!(Stats::sum_dir(dir.path()).is_err());
    }
}
