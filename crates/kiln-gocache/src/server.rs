//! One GOCACHEPROG session: read requests, answer each in its own task, batch remote look-ups,
//! upload in the background, flush before answering `close`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kiln_types::Digest;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::local::{LocalEntry, LocalTier};
use crate::protocol::{rfc3339_nanos, Incoming, RequestReader, Response, KNOWN_COMMANDS};
use crate::remote::{Put, RemoteEntry, RemoteTier};
use crate::stats::{Counter, Counters, Stats};
use crate::{ActionId, GoCacheError};

/// Tuning of a session. The defaults suit a `go build` of a few thousand packages.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Uploads waiting for the remote tier; beyond it a put's task waits for room (after go has
    /// its answer, so go never waits on an upload).
    pub upload_queue: usize,
    /// Uploads running at once.
    pub uploads_in_flight: usize,
    /// Most action IDs in one remote look-up.
    pub lookup_batch: usize,
    /// Remote look-ups running at once; while all are busy, new misses gather into the next batch.
    pub lookups_in_flight: usize,
    /// Failed remote calls in a row after which the session stops asking the remote tier (so a
    /// remote that is down costs a few time-outs, not one per package).
    pub remote_failures_before_off: u32,
    /// Whether puts are uploaded to the remote tier (`false` for a read-only remote).
    pub upload: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            upload_queue: 1024,
            uploads_in_flight: 4,
            lookup_batch: 256,
            lookups_in_flight: 4,
            remote_failures_before_off: 3,
            upload: true,
        }
    }
}

/// A GOCACHEPROG server over a [`LocalTier`] and, optionally, a [`RemoteTier`].
pub struct Server {
    local: Arc<LocalTier>,
    remote: Option<Arc<dyn RemoteTier>>,
    options: ServerOptions,
    counters: Arc<Counters>,
}

/// Stops asking a failing remote.
struct Breaker {
    failures_in_row: AtomicU32,
    limit: u32,
    open: AtomicBool,
}

impl Breaker {
    fn allows(&self) -> bool {
        !self.open.load(Ordering::Relaxed)
    }

    fn success(&self) {
        self.failures_in_row.store(0, Ordering::Relaxed);
    }

    fn failure(&self) {
        if self.failures_in_row.fetch_add(1, Ordering::Relaxed) + 1 >= self.limit {
            self.open.store(true, Ordering::Relaxed);
        }
    }
}

/// What the remote tier's tasks share.
struct RemoteShared {
    tier: Arc<dyn RemoteTier>,
    breaker: Breaker,
    counters: Arc<Counters>,
}

impl RemoteShared {
    fn failed(&self, e: &GoCacheError) {
        self.counters.remote_error(e.to_string());
        self.breaker.failure();
    }
}

struct Lookup {
    action: ActionId,
    reply: oneshot::Sender<Option<RemoteEntry>>,
}

struct Upload {
    action: ActionId,
    output: Digest,
    size: u64,
    path: std::path::PathBuf,
}

struct RemoteSide {
    shared: Arc<RemoteShared>,
    lookups: mpsc::Sender<Lookup>,
    uploads: Mutex<Option<mpsc::Sender<Upload>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
}

/// State of one session, shared by the request tasks.
struct Session {
    local: Arc<LocalTier>,
    remote: Option<RemoteSide>,
    counters: Arc<Counters>,
    out: mpsc::UnboundedSender<Response>,
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GoCacheError> + Send + 'static,
) -> Result<T, GoCacheError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GoCacheError::Internal(format!("file task failed: {e}")))?
}

fn hit(id: i64, e: &LocalEntry) -> Response {
    Response {
        id,
        output_id: Some(e.output.as_raw().to_vec()),
        size: i64::try_from(e.size).unwrap_or(i64::MAX),
        time: Some(rfc3339_nanos(e.time_unix_nanos)),
        disk_path: Some(e.path.display().to_string()),
        ..Response::default()
    }
}

impl Server {
    /// A server over `local` alone.
    pub fn new(local: LocalTier) -> Self {
        Self {
            local: Arc::new(local),
            remote: None,
            options: ServerOptions::default(),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Adds a remote tier behind the local one.
    pub fn with_remote(mut self, remote: Arc<dyn RemoteTier>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Replaces the tuning.
    pub fn with_options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// The session's live counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The counters now, with the damaged local entries found.
    pub fn stats(&self) -> Stats {
        let mut s = self.counters.snapshot();
        s.corrupt += self.local.damaged();
        s
    }

    /// Serves one session: announces the commands, answers requests until go sends `close` (or
    /// closes the pipe), waits for the answers in flight and the uploads, answers `close`, and
    /// returns the counters. An error means the pipe broke or go spoke something else than the
    /// protocol; a failing remote tier is never one.
    pub async fn serve<R, W>(&self, input: R, output: W) -> Result<Stats, GoCacheError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (out, responses) = mpsc::unbounded_channel();
        // The receiver is alive until the writer below ends, which needs this sender dropped.
        let _ = out.send(Response::hello());
        let session = Arc::new(Session {
            local: self.local.clone(),
            remote: self.remote.clone().map(|tier| self.start_remote(tier)),
            counters: self.counters.clone(),
            out,
        });
        let reading = read_loop(session, input);
        let writing = write_loop(output, responses);
        let (read, written) = tokio::join!(reading, writing);
        read?;
        written?;
        Ok(self.stats())
    }

    fn start_remote(&self, tier: Arc<dyn RemoteTier>) -> RemoteSide {
        let shared = Arc::new(RemoteShared {
            tier,
            breaker: Breaker {
                failures_in_row: AtomicU32::new(0),
                limit: self.options.remote_failures_before_off.max(1),
                open: AtomicBool::new(false),
            },
            counters: self.counters.clone(),
        });
        let (lookups, lookup_rx) = mpsc::channel(4096);
        tokio::spawn(batch_lookups(
            shared.clone(),
            lookup_rx,
            self.options.lookup_batch.max(1),
            self.options.lookups_in_flight.max(1),
        ));
        let (uploads, uploader) = if self.options.upload {
            let (tx, rx) = mpsc::channel(self.options.upload_queue.max(1));
            let handle = tokio::spawn(upload_loop(
                shared.clone(),
                rx,
                self.options.uploads_in_flight.max(1),
            ));
            (Some(tx), Some(handle))
        } else {
            (None, None)
        };
        RemoteSide {
            shared,
            lookups,
            uploads: Mutex::new(uploads),
            uploader: Mutex::new(uploader),
        }
    }
}

/// Reads requests, one task each; at `close` or the end of input waits for them and the uploads.
async fn read_loop<R: AsyncRead + Unpin>(
    session: Arc<Session>,
    input: R,
) -> Result<(), GoCacheError> {
    let mut requests = RequestReader::new(BufReader::with_capacity(1 << 20, input));
    let mut tasks = JoinSet::new();
    let mut close = None;
    let result = loop {
        // Finished tasks are reaped as the session goes, so a long build does not pile them up.
        while tasks.try_join_next().is_some() {}
        match requests.next().await {
            Err(e) => break Err(e),
            Ok(Incoming::Eof) => break Ok(()),
            Ok(Incoming::Request(req, _)) if req.command == "close" => {
                close = Some(req.id);
                break Ok(());
            }
            Ok(Incoming::Request(req, body)) => {
                let s = session.clone();
                tasks.spawn(async move {
                    let answer = s.handle(req, body).await;
                    if let Some(a) = answer {
                        let _ = s.out.send(a);
                    }
                });
            }
        }
    };
    while tasks.join_next().await.is_some() {}
    if let Some(remote) = &session.remote {
        remote.finish_uploads().await;
    }
    if let Some(id) = close {
        let _ = session.out.send(Response {
            id,
            ..Response::default()
        });
    }
    result
}

/// Writes answers as they come, flushing whenever none is waiting.
async fn write_loop<W: AsyncWrite + Unpin>(
    output: W,
    mut responses: mpsc::UnboundedReceiver<Response>,
) -> Result<(), GoCacheError> {
    let pipe = |source| GoCacheError::Pipe {
        doing: "writing an answer",
        source,
    };
    let mut w = BufWriter::with_capacity(64 * 1024, output);
    let mut line = Vec::with_capacity(512);
    while let Some(first) = responses.recv().await {
        let mut next = Some(first);
        while let Some(r) = next {
            line.clear();
            serde_json::to_writer(&mut line, &r)
                .map_err(|e| GoCacheError::Internal(format!("encoding an answer: {e}")))?;
            line.push(b'\n');
            w.write_all(&line).await.map_err(pipe)?;
            next = responses.try_recv().ok();
        }
        w.flush().await.map_err(pipe)?;
    }
    w.flush().await.map_err(pipe)
}

/// Gathers look-ups into batches: while every look-up slot is busy, misses queue up and the next
/// free slot takes them all (up to `max`) in one call.
async fn batch_lookups(
    shared: Arc<RemoteShared>,
    mut rx: mpsc::Receiver<Lookup>,
    max: usize,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(l) => batch.push(l),
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let ids: Vec<ActionId> = batch.iter().map(|l| l.action).collect();
            let answer = if shared.breaker.allows() {
                shared.counters.add(Counter::RemoteLookups, 1);
                shared
                    .counters
                    .add(Counter::RemoteLookupIds, ids.len() as u64);
                shared.tier.lookup(&ids).await.and_then(|found| {
                    if found.len() == ids.len() {
                        Ok(found)
                    } else {
                        Err(GoCacheError::Remote {
                            tier: shared.tier.name(),
                            message: format!(
                                "answered {} entries for {} action IDs",
                                found.len(),
                                ids.len()
                            ),
                        })
                    }
                })
            } else {
                Ok(vec![None; ids.len()])
            };
            let found = match answer {
                Ok(found) => {
                    shared.breaker.success();
                    found
                }
                Err(e) => {
                    shared.failed(&e);
                    vec![None; ids.len()]
                }
            };
            for (l, f) in batch.into_iter().zip(found) {
                let _ = l.reply.send(f);
            }
        });
    }
}

/// Uploads queued puts, a few at a time, until the queue is closed and drained.
async fn upload_loop(shared: Arc<RemoteShared>, mut rx: mpsc::Receiver<Upload>, in_flight: usize) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut running = JoinSet::new();
    while let Some(up) = rx.recv().await {
        if !shared.breaker.allows() {
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let shared = shared.clone();
        running.spawn(async move {
            let _slot = slot;
            match shared
                .tier
                .put(&up.action, &up.output, up.size, &up.path)
                .await
            {
                Ok(Put::Stored) => {
                    shared.breaker.success();
                    shared.counters.add(Counter::Uploads, 1);
                    shared.counters.add(Counter::UploadBytes, up.size);
                }
                // A remote that takes no writes answered: healthy, but nothing went up.
                Ok(Put::ReadOnly) => shared.breaker.success(),
                Err(e) => shared.failed(&e),
            }
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

impl RemoteSide {
    /// Closes the upload queue and waits until everything queued was uploaded (or failed).
    async fn finish_uploads(&self) {
        drop(self.uploads.lock().ok().and_then(|mut u| u.take()));
        let handle = self.uploader.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Queues an upload; waits for room, never for the upload itself.
    async fn enqueue(&self, up: Upload) {
        let tx = self.uploads.lock().ok().and_then(|u| u.clone());
        if let Some(tx) = tx {
            let _ = tx.send(up).await;
        }
    }

    /// The entry for `action` from the remote tier, verified and stored locally; `None` on a miss
    /// or any failure (counted).
    async fn fetch(&self, local: &Arc<LocalTier>, action: ActionId) -> Option<LocalEntry> {
        let shared = &self.shared;
        if !shared.breaker.allows() {
            return None;
        }
        let (reply, answer) = oneshot::channel();
        self.lookups.send(Lookup { action, reply }).await.ok()?;
        let entry = answer.await.ok()??;
        let mut entry = entry;
        let blob = match entry.body.take() {
            // Inlined in the look-up's answer: no second call.
            Some(b) => b,
            None => match shared.tier.get_blob(&entry.output, entry.size).await {
                Ok(Some(b)) => {
                    shared.breaker.success();
                    b
                }
                // The entry outlived its blob (evicted): a plain miss.
                Ok(None) => return None,
                Err(e) => {
                    shared.failed(&e);
                    return None;
                }
            },
        };
        shared
            .counters
            .add(Counter::RemoteBytesDown, blob.len() as u64);
        let bad = |what: String| {
            shared.counters.add(Counter::Corrupt, 1);
            // A wrong blob is a warning, not an outage: it does not count towards turning the
            // remote off.
            shared.counters.remote_error(
                GoCacheError::Remote {
                    tier: shared.tier.name(),
                    message: what,
                }
                .to_string(),
            );
        };
        if blob.len() as u64 != entry.size {
            bad(format!(
                "blob {} has {} bytes, expected {}; not used",
                entry.output,
                blob.len(),
                entry.size
            ));
            return None;
        }
        let tier = local.clone();
        let output = entry.output;
        match blocking(move || tier.put(&action, &output, &blob)).await {
            Ok(e) => Some(e),
            Err(GoCacheError::BadPut { .. }) => {
                bad(format!(
                    "blob {} does not match its digest; not used",
                    entry.output
                ));
                None
            }
            Err(_) => {
                shared.counters.add(Counter::Errors, 1);
                None
            }
        }
    }
}

impl Session {
    /// Answers one request (`None` when the handler answered itself).
    async fn handle(&self, req: crate::Request, body: Result<Vec<u8>, String>) -> Option<Response> {
        let id = req.id;
        let fail = |message: String| {
            self.counters.add(Counter::Errors, 1);
            Some(Response::error(id, message))
        };
        let action = match req.command.as_str() {
            "get" | "put" => match req.action_id.as_deref().and_then(ActionId::from_slice) {
                Some(a) => a,
                None => return fail(format!("{}: ActionID must be 32 bytes", req.command)),
            },
            other => {
                return fail(format!(
                    "unknown command `{other}`: this GOCACHEPROG answers {}",
                    KNOWN_COMMANDS.join(", ")
                ))
            }
        };
        if req.command == "get" {
            return Some(self.get(id, action).await);
        }
        let Some(output) = req
            .output_id
            .as_deref()
            .and_then(|o| <[u8; 32]>::try_from(o).ok())
            .map(Digest::from_raw)
        else {
            return fail("put: OutputID must be 32 bytes (a sha256)".into());
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return fail(format!("put of action {action}: {e}")),
        };
        if i64::try_from(body.len()).ok() != Some(req.body_size) {
            return fail(format!(
                "put of action {action}: body has {} bytes, BodySize says {}",
                body.len(),
                req.body_size
            ));
        }
        let local = self.local.clone();
        let entry = match blocking(move || local.put(&action, &output, &body)).await {
            Ok(e) => e,
            Err(e) => return fail(e.to_string()),
        };
        self.counters.add(Counter::Puts, 1);
        self.counters.add(Counter::PutBytes, entry.size);
        // go has its answer before the upload is even queued.
        let _ = self.out.send(Response {
            id,
            disk_path: Some(entry.path.display().to_string()),
            ..Response::default()
        });
        if let Some(remote) = &self.remote {
            remote
                .enqueue(Upload {
                    action,
                    output,
                    size: entry.size,
                    path: entry.path,
                })
                .await;
        }
        None
    }

    async fn get(&self, id: i64, action: ActionId) -> Response {
        self.counters.add(Counter::Gets, 1);
        let local = self.local.clone();
        match blocking(move || local.get(&action)).await {
            Ok(Some(e)) => {
                self.counters.add(Counter::LocalHits, 1);
                self.counters.add(Counter::HitBytes, e.size);
                return hit(id, &e);
            }
            Ok(None) => {}
            Err(e) => {
                self.counters.add(Counter::Errors, 1);
                return Response::error(id, e.to_string());
            }
        }
        if let Some(remote) = &self.remote {
            let t0 = std::time::Instant::now();
            let fetched = remote.fetch(&self.local, action).await;
            self.counters.add(
                Counter::RemoteWaitMicros,
                u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX),
            );
            if let Some(e) = fetched {
                self.counters.add(Counter::RemoteHits, 1);
                self.counters.add(Counter::HitBytes, e.size);
                return hit(id, &e);
            }
        }
        self.counters.add(Counter::Misses, 1);
        Response::miss(id)
    }
}

#[cfg(test)]
mod tests;
