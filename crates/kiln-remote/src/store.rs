use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::protobuf::Timestamp;
use kiln_cache::{ActionRecord, CacheError, CacheTraffic, OutputRecord, Storage};
use kiln_key::ActionKey;
use kiln_types::Digest;
use prost::Message;

use crate::action::{from_proto, proto_digest_of, to_proto, RemoteAction};
use crate::client::{Capabilities, Fetched, ReapiClient};
use crate::{RemoteCache, RemoteError};

/// At most this many distinct warnings are kept; a broken remote tends to repeat itself.
const MAX_WARNINGS: usize = 8;

/// [`Storage`] over a REAPI v2 server: action records in its ActionCache (keyed by
/// [`RemoteAction`] digests), blobs in its CAS.
///
/// The sync [`Storage`] calls run on a small runtime this store owns: each call is spawned there
/// and waited for on a plain channel, so a caller may sit on any thread, even a thread of another
/// tokio runtime, without nesting `block_on`.
///
/// Never wrong, never in the way: every blob read is verified against its digest (a bad blob is a
/// miss and a warning); calls have time limits and bounded retries; the capabilities are checked
/// on first use, and a remote that cannot be used then, or fails
/// [`RemoteCache::breaker_after`] calls in a row later, is switched off for the rest of the run
/// (the circuit breaker): every later call fails at once with [`CacheError::Unavailable`], and
/// [`Storage::traffic`] says why. A `read_only` store never writes.
///
/// The store keeps no records ([`Storage::get_record`] always misses), and it can fetch a blob only
/// when it has seen its size in an action result or an upload of this run, since REAPI digests
/// carry the size.
pub struct RemoteStore {
    rt: Option<tokio::runtime::Runtime>,
    client: ReapiClient,
    name: String,
    caps: OnceLock<Result<Capabilities, String>>,
    failures: AtomicU32,
    disabled: Mutex<Option<String>>,
    sizes: Mutex<HashMap<Digest, u64>>,
    warnings: Mutex<Vec<String>>,
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
    wait_ns: AtomicU64,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("name", &self.name)
            .finish()
    }
}

impl RemoteStore {
    /// A store for `cfg`. Nothing is sent yet: the first call connects and checks capabilities.
    pub fn open(cfg: RemoteCache) -> Result<Self, RemoteError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-remote")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        let name = cfg.display_name();
        let client = {
            let _guard = rt.enter();
            ReapiClient::new(cfg)?
        };
        Ok(Self {
            rt: Some(rt),
            client,
            name,
            caps: OnceLock::new(),
            failures: AtomicU32::new(0),
            disabled: Mutex::new(None),
            sizes: Mutex::new(HashMap::new()),
            warnings: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteCache {
        self.client.config()
    }

    /// Whether this store writes (it is not `read_only`, and the server takes action results).
    pub fn writes(&self) -> bool {
        !self.config().read_only
            && self
                .caps
                .get()
                .and_then(|c| c.as_ref().ok())
                .is_none_or(|c| c.action_cache_update)
    }

    /// Asks the server for its capabilities now (for `kiln cache stats`): an error when it cannot
    /// be reached or cannot hold kiln's entries.
    pub fn capabilities(&self) -> Result<Capabilities, CacheError> {
        self.ensure_ready()?;
        match self.caps.get() {
            Some(Ok(c)) => Ok(c.clone()),
            Some(Err(e)) => Err(self.unavailable(e.clone())),
            None => Err(self.unavailable("capabilities unknown".into())),
        }
    }

    /// Runs `fut` on the store's runtime and waits for it from this (sync) thread, counting the
    /// time waited.
    fn wait<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, RemoteError>> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| RemoteError::Runtime("already shut down".into()))?;
        let t0 = Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let r = rx
            .recv()
            .unwrap_or_else(|_| Err(RemoteError::Runtime("the call was dropped".into())));
        self.wait_ns.fetch_add(
            u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        r
    }

    fn unavailable(&self, reason: String) -> CacheError {
        CacheError::Unavailable {
            store: self.name.clone(),
            reason,
        }
    }

    /// Notes a problem for [`Storage::traffic`], once per distinct message.
    pub(crate) fn warn(&self, message: String) {
        if let Ok(mut w) = self.warnings.lock() {
            if w.len() < MAX_WARNINGS && !w.contains(&message) {
                w.push(message);
            }
        }
    }

    fn disable(&self, reason: String) {
        if let Ok(mut d) = self.disabled.lock() {
            if d.is_none() {
                *d = Some(reason);
            }
        }
    }

    /// Checks the capabilities once; fails at once while the breaker is open.
    fn ensure_ready(&self) -> Result<(), CacheError> {
        if let Some(reason) = self.disabled.lock().ok().and_then(|d| d.clone()) {
            return Err(self.unavailable(format!("off for this run: {reason}")));
        }
        let caps = self.caps.get_or_init(|| {
            let client = self.client.clone();
            let r = self.wait(async move { client.capabilities().await });
            match r {
                Ok(c) if !c.sha256 => Err(format!(
                    "{}: the server does not offer the SHA256 digest function",
                    self.name
                )),
                Ok(c) => Ok(c),
                Err(e) => Err(e.to_string()),
            }
        });
        if let Err(reason) = caps {
            // A remote that cannot be reached or used at the start is off for the run: one
            // warning, not one per target.
            self.disable(reason.clone());
            self.warn(format!("remote cache off for this run: {reason}"));
            return Err(self.unavailable(reason.clone()));
        }
        Ok(())
    }

    /// Runs one remote operation under the breaker: counts consecutive failures, and switches the
    /// remote off after [`RemoteCache::breaker_after`] of them.
    fn guarded<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, RemoteError>> + Send + 'static,
    ) -> Result<T, CacheError> {
        self.ensure_ready()?;
        match self.wait(fut) {
            Ok(v) => {
                self.failures.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                let msg = e.to_string();
                if n >= self.config().breaker_after {
                    self.disable(format!("{n} calls failed in a row, the last: {msg}"));
                    self.warn(format!(
                        "remote cache off for this run after {n} failed calls: {msg}"
                    ));
                } else {
                    self.warn(msg.clone());
                }
                Err(self.unavailable(msg))
            }
        }
    }

    fn remember_size(&self, digest: Digest, size: u64) {
        if let Ok(mut s) = self.sizes.lock() {
            s.insert(digest, size);
        }
    }

    pub(crate) fn known_size(&self, digest: &Digest) -> Option<u64> {
        self.sizes.lock().ok().and_then(|s| s.get(digest).copied())
    }

    /// Downloads a blob whose size is known, verified; `Ok(false)` on a miss or a bad blob (with a
    /// warning).
    pub(crate) fn fetch(
        &self,
        digest: &Digest,
        size: u64,
        dest: &Path,
    ) -> Result<bool, CacheError> {
        let client = self.client.clone();
        let (d, dest_owned) = (*digest, dest.to_path_buf());
        match self.guarded(async move { client.download(&d, size, &dest_owned).await })? {
            Fetched::Done => {
                self.bytes_down.fetch_add(size, Ordering::Relaxed);
                Ok(true)
            }
            Fetched::Missing => Ok(false),
            Fetched::Corrupt(why) => {
                self.bytes_down.fetch_add(size, Ordering::Relaxed);
                self.warn(format!("{}: corrupted blob ignored: {why}", self.name));
                Ok(false)
            }
        }
    }

    /// Uploads a blob whose digest and size are known (unless it is there already).
    pub(crate) fn upload(&self, src: &Path, digest: &Digest, size: u64) -> Result<(), CacheError> {
        self.remember_size(*digest, size);
        if self.config().read_only {
            return Ok(());
        }
        let client = self.client.clone();
        let (d, src_owned) = (*digest, src.to_path_buf());
        let sent = self.guarded(async move { client.upload(&src_owned, &d, size).await })?;
        self.bytes_up.fetch_add(sent, Ordering::Relaxed);
        Ok(())
    }

    /// Counts a hit or a miss of [`Storage::get_action`], for [`Storage::traffic`].
    fn count(&self, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The action result read for `key`, as kiln's record; `None` when the server has none or it
    /// is not one kiln wrote (with a warning).
    fn record_of(&self, key: &ActionKey, result: &re::ActionResult) -> Option<ActionRecord> {
        let mut outputs = Vec::new();
        for f in &result.output_files {
            let parsed = f.digest.as_ref().and_then(from_proto);
            let safe = !f.path.is_empty()
                && !f.path.contains('/')
                && !f.path.contains('\\')
                && f.path != "."
                && f.path != "..";
            let Some((digest, size)) = parsed.filter(|_| safe) else {
                self.warn(format!(
                    "{}: ignoring the entry for key {}: output {:?} is not a plain file name with a sha256 digest",
                    self.name,
                    key.hex(),
                    f.path
                ));
                return None;
            };
            self.remember_size(digest, size);
            outputs.push(OutputRecord {
                name: f.path.clone(),
                digest,
                size,
                executable: f.is_executable,
            });
        }
        let meta = result.execution_metadata.clone().unwrap_or_default();
        let secs = |t: &Option<Timestamp>| {
            t.as_ref()
                .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
        };
        let duration_ms = match (
            secs(&meta.execution_start_timestamp),
            secs(&meta.execution_completed_timestamp),
        ) {
            (Some(a), Some(b)) if b >= a => ((b - a) * 1000.0).round() as u64,
            _ => 0,
        };
        let created = meta
            .execution_completed_timestamp
            .as_ref()
            .and_then(|t| u64::try_from(t.seconds).ok())
            .unwrap_or(0);
        Some(ActionRecord {
            outputs,
            created,
            duration_ms,
        })
    }
}

/// The ActionResult kiln writes for `record`: its outputs as output files, how long it ran as
/// execution timestamps.
fn result_of(record: &ActionRecord) -> re::ActionResult {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let end = if record.created > 0 {
        Duration::from_secs(record.created)
    } else {
        now
    };
    let start = end.saturating_sub(Duration::from_millis(record.duration_ms));
    let ts = |d: Duration| Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    };
    re::ActionResult {
        output_files: record
            .outputs
            .iter()
            .map(|o| re::OutputFile {
                path: o.name.clone(),
                digest: Some(to_proto(&o.digest, o.size)),
                is_executable: o.executable,
                ..Default::default()
            })
            .collect(),
        exit_code: 0,
        execution_metadata: Some(re::ExecutedActionMetadata {
            worker: "kiln".into(),
            execution_start_timestamp: Some(ts(start)),
            execution_completed_timestamp: Some(ts(end)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Storage for RemoteStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionRecord>, CacheError> {
        let action = RemoteAction::for_key(key).digest;
        let client = self.client.clone();
        let result = self.guarded(async move { client.get_action_result(&action, &[]).await })?;
        let record = result.and_then(|r| {
            self.bytes_down
                .fetch_add(r.encoded_len() as u64, Ordering::Relaxed);
            self.record_of(key, &r)
        });
        self.count(record.is_some());
        Ok(record)
    }

    fn put_action(&self, key: &ActionKey, record: &ActionRecord) -> Result<(), CacheError> {
        if !self.writes() {
            return Ok(());
        }
        let action = RemoteAction::for_key(key);
        let result = result_of(record);
        let up = (action.action.len() + action.command.len() + result.encoded_len()) as u64;
        let client = self.client.clone();
        self.guarded(async move {
            // The Action and Command go to the CAS too, so the entry is a complete REAPI action
            // that a remote executor could run.
            let blobs = vec![
                (proto_digest_of(&action.command), action.command),
                (action.digest.clone(), action.action),
            ];
            client.batch_update(&blobs).await?;
            client.update_action_result(&action.digest, result).await
        })?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(up, Ordering::Relaxed);
        Ok(())
    }

    fn has_blob(&self, digest: &Digest) -> Result<bool, CacheError> {
        let Some(size) = self.known_size(digest) else {
            return Ok(false);
        };
        let client = self.client.clone();
        let proto = to_proto(digest, size);
        let missing =
            self.guarded(async move { client.find_missing(std::slice::from_ref(&proto)).await })?;
        Ok(missing.is_empty())
    }

    fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, CacheError> {
        match self.known_size(digest) {
            Some(size) => self.fetch(digest, size, dest),
            None => Ok(false),
        }
    }

    fn put_blob(&self, src: &Path) -> Result<(Digest, u64), CacheError> {
        let io = |source| CacheError::Io {
            path: src.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(src).map_err(io)?;
        let (digest, size) = Digest::of_reader(std::io::BufReader::new(file)).map_err(io)?;
        self.upload(src, &digest, size)?;
        Ok((digest, size))
    }

    fn traffic(&self) -> Option<CacheTraffic> {
        Some(CacheTraffic {
            remote: self.name.clone(),
            read_only: self.config().read_only,
            local_hits: 0,
            remote_hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            remote_writes: self.writes.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            remote_wait_ms: self.wait_ns.load(Ordering::Relaxed) / 1_000_000,
            disabled: self.disabled.lock().ok().and_then(|d| d.clone()),
            warnings: self.warnings.lock().map(|w| w.clone()).unwrap_or_default(),
        })
    }
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        // `shutdown_background` does not block, so dropping the store is safe on any thread,
        // a thread of another runtime included.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_action_results() {
        let store = RemoteStore::open(RemoteCache::new("grpc://127.0.0.1:1").unwrap()).unwrap();
        let rec = ActionRecord {
            outputs: vec![OutputRecord {
                name: "api".into(),
                digest: Digest::of_bytes(b"bin"),
                size: 3,
                executable: true,
            }],
            created: 1_700_000_000,
            duration_ms: 1500,
        };
        let key = ActionKey::from_hex(&blake3::hash(b"k").to_hex()).unwrap();
        assert_eq!(store.record_of(&key, &result_of(&rec)), Some(rec.clone()));
        assert_eq!(store.known_size(&rec.outputs[0].digest), Some(3));
    }

    #[test]
    fn results_with_unsafe_paths_are_misses_with_a_warning() {
        let store = RemoteStore::open(RemoteCache::new("grpc://127.0.0.1:1").unwrap()).unwrap();
        let key = ActionKey::from_hex(&blake3::hash(b"k").to_hex()).unwrap();
        let mut r = result_of(&ActionRecord {
            outputs: vec![OutputRecord {
                name: "api".into(),
                digest: Digest::of_bytes(b"bin"),
                size: 3,
                executable: true,
            }],
            created: 0,
            duration_ms: 0,
        });
        r.output_files[0].path = "../../etc/passwd".into();
        assert_eq!(store.record_of(&key, &r), None);
        assert!(store.traffic().unwrap().warnings[0].contains("not a plain file name"));
    }

    #[test]
    fn an_unreachable_remote_is_switched_off_after_one_warning() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let mut cfg = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        cfg.retries = 0;
        let store = RemoteStore::open(cfg).unwrap();
        let key = ActionKey::from_hex(&blake3::hash(b"k").to_hex()).unwrap();
        assert!(store.get_action(&key).is_err());
        assert!(store.get_action(&key).is_err());
        let t = store.traffic().unwrap();
        assert!(t.disabled.is_some(), "{t:?}");
        assert_eq!(t.warnings.len(), 1, "{t:?}");
    }
}
