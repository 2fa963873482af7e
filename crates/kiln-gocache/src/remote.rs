//! The remote tier: what a shared cache must offer the GOCACHEPROG server, and a fake of it.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use kiln_types::Digest;
use tokio::sync::watch;

use crate::{ActionId, GoCacheError};

/// A boxed, sendable future: what [`RemoteTier`] methods return, so the trait can be used as
/// `Arc<dyn RemoteTier>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a remote tier holds for one Go action ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The output's sha256 (go's `OutputID`; a CAS digest as it is).
    pub output: Digest,
    /// The output's size in bytes (REAPI digests carry it).
    pub size: u64,
    /// The output itself, when the look-up brought it along (a REAPI server inlines small outputs
    /// in the action result: one round trip instead of two). Unverified: the caller checks it
    /// against [`Self::output`] as it checks a blob from [`RemoteTier::get_blob`].
    pub body: Option<Vec<u8>>,
}

/// A shared cache behind the local tier, e.g. an REAPI server (kiln-remote implements this: one
/// synthetic Action per Go action ID whose result names the output blob).
///
/// Errors are reported, not hidden: the server turns them into misses, counts them and stops
/// asking after a few in a row. Implementations bound their own time per call (a timeout), since
/// go waits on every `get` that reaches here.
pub trait RemoteTier: Send + Sync {
    /// A short name for messages (`grpc://host:port`).
    fn name(&self) -> String;

    /// Looks up many action IDs in one call; the answer has one element per ID, in order.
    fn lookup<'a>(
        &'a self,
        actions: &'a [ActionId],
    ) -> BoxFuture<'a, Result<Vec<Option<RemoteEntry>>, GoCacheError>>;

    /// The blob with this digest and size, `None` if the remote does not have it. The caller
    /// verifies the bytes.
    fn get_blob<'a>(
        &'a self,
        output: &'a Digest,
        size: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, GoCacheError>>;

    /// Stores the blob in the file `blob` (already verified: its sha256 is `output`, its length
    /// `size`) and records it as the output of `action`, or says why it stored nothing.
    fn put<'a>(
        &'a self,
        action: &'a ActionId,
        output: &'a Digest,
        size: u64,
        blob: &'a Path,
    ) -> BoxFuture<'a, Result<Put, GoCacheError>>;
}

/// What [`RemoteTier::put`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The blob and the action's record are stored.
    Stored,
    /// Nothing was sent: the tier takes no writes (configured read-only, or a server that refuses
    /// action-cache updates). Not an error, and not an upload.
    ReadOnly,
}

/// An in-memory [`RemoteTier`] for tests: it can fail every call, serve corrupted blobs, or hold
/// look-ups until released, and it counts what it was asked.
#[derive(Debug)]
pub struct FakeRemote {
    actions: Mutex<HashMap<ActionId, RemoteEntry>>,
    blobs: Mutex<HashMap<Digest, Vec<u8>>>,
    fail: AtomicBool,
    corrupt: AtomicBool,
    read_only: AtomicBool,
    hold: watch::Sender<bool>,
    lookup_calls: AtomicU64,
    looked_up: AtomicU64,
    puts: AtomicU64,
}

impl Default for FakeRemote {
    fn default() -> Self {
        Self {
            actions: Mutex::default(),
            blobs: Mutex::default(),
            fail: AtomicBool::new(false),
            corrupt: AtomicBool::new(false),
            read_only: AtomicBool::new(false),
            hold: watch::Sender::new(false),
            lookup_calls: AtomicU64::new(0),
            looked_up: AtomicU64::new(0),
            puts: AtomicU64::new(0),
        }
    }
}

impl FakeRemote {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `body` as the output of `action`, as if another machine had put it.
    pub fn insert(&self, action: ActionId, body: &[u8]) {
        let output = Digest::of_bytes(body);
        if let Ok(mut a) = self.actions.lock() {
            a.insert(
                action,
                RemoteEntry {
                    output,
                    size: body.len() as u64,
                    body: None,
                },
            );
        }
        if let Ok(mut b) = self.blobs.lock() {
            b.insert(output, body.to_vec());
        }
    }

    /// The entry stored for `action`, if any.
    pub fn entry(&self, action: &ActionId) -> Option<RemoteEntry> {
        self.actions.lock().ok()?.get(action).cloned()
    }

    /// Makes every call fail (`true`) or work again.
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// Makes [`RemoteTier::get_blob`] return bytes that do not match their digest.
    pub fn set_corrupt(&self, corrupt: bool) {
        self.corrupt.store(corrupt, Ordering::SeqCst);
    }

    /// Makes puts store nothing and answer [`Put::ReadOnly`], as a read-only remote does.
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::SeqCst);
    }

    /// Holds every look-up until [`FakeRemote::release`] (to test answers out of order).
    pub fn hold_lookups(&self) {
        self.hold.send_replace(true);
    }

    /// Lets held look-ups go on.
    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// How many `lookup` calls were made.
    pub fn lookup_calls(&self) -> u64 {
        self.lookup_calls.load(Ordering::SeqCst)
    }

    /// How many action IDs were looked up in all.
    pub fn looked_up(&self) -> u64 {
        self.looked_up.load(Ordering::SeqCst)
    }

    /// How many puts arrived.
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), GoCacheError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(GoCacheError::Remote {
                tier: self.name(),
                message: "unavailable (told to fail)".into(),
            });
        }
        Ok(())
    }
}

impl RemoteTier for FakeRemote {
    fn name(&self) -> String {
        "fake".into()
    }

    fn lookup<'a>(
        &'a self,
        actions: &'a [ActionId],
    ) -> BoxFuture<'a, Result<Vec<Option<RemoteEntry>>, GoCacheError>> {
        Box::pin(async move {
            self.lookup_calls.fetch_add(1, Ordering::SeqCst);
            self.looked_up
                .fetch_add(actions.len() as u64, Ordering::SeqCst);
            let mut hold = self.hold.subscribe();
            // The sender lives in `self`, so waiting cannot fail for lack of one.
            let _ = hold.wait_for(|held| !*held).await;
            self.check()?;
            let known = self.actions.lock().map_err(|_| GoCacheError::Remote {
                tier: self.name(),
                message: "poisoned".into(),
            })?;
            Ok(actions.iter().map(|a| known.get(a).cloned()).collect())
        })
    }

    fn get_blob<'a>(
        &'a self,
        output: &'a Digest,
        _size: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, GoCacheError>> {
        Box::pin(async move {
            self.check()?;
            let mut blob = self.blobs.lock().ok().and_then(|b| b.get(output).cloned());
            if self.corrupt.load(Ordering::SeqCst) {
                if let Some(first) = blob.as_mut().and_then(|b| b.first_mut()) {
                    *first ^= 0xff;
                }
            }
            Ok(blob)
        })
    }

    fn put<'a>(
        &'a self,
        action: &'a ActionId,
        _output: &'a Digest,
        _size: u64,
        blob: &'a Path,
    ) -> BoxFuture<'a, Result<Put, GoCacheError>> {
        Box::pin(async move {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            if self.read_only.load(Ordering::SeqCst) {
                return Ok(Put::ReadOnly);
            }
            let body = std::fs::read(blob).map_err(GoCacheError::io(blob))?;
            self.insert(*action, &body);
            Ok(Put::Stored)
        })
    }
}
