use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream;
use bazel_remote_apis::google::longrunning::operations_client::OperationsClient;
use bazel_remote_apis::google::longrunning::{CancelOperationRequest, Operation};
use kiln_types::{Digest, Sha256Writer};
use re::action_cache_client::ActionCacheClient;
use re::capabilities_client::CapabilitiesClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use re::execution_client::ExecutionClient;
use tokio::io::AsyncReadExt;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::Channel;

use crate::action::to_proto;
use crate::{RemoteCache, RemoteError};

/// gRPC's default message limit, which both reference servers keep: batch calls stay below it.
const GRPC_MESSAGE_LIMIT: u64 = 4 << 20;
/// Room for the framing of a batch request around its blobs.
const BATCH_OVERHEAD: u64 = 64 << 10;
/// ByteStream chunk size: large enough for few messages, small enough to stream a binary without
/// holding it in memory.
const CHUNK: usize = 1 << 20;
/// Slowest transfer rate a ByteStream call may have before it counts as timed out, per second.
const MIN_RATE: u64 = 256 << 10;

/// What the server said about itself (`GetCapabilities`), as far as kiln cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// SHA256 is among its digest functions (kiln's only one).
    pub sha256: bool,
    /// Largest batch request it accepts, in bytes (0: no limit announced).
    pub max_batch_total_size_bytes: u64,
    /// Whether clients may write action results.
    pub action_cache_update: bool,
    /// Supported REAPI versions, `low..high` (e.g. `2.0..2.3`).
    pub api_versions: String,
}

/// What downloading a blob gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Written to the destination and verified.
    Done,
    /// The server does not have it.
    Missing,
    /// The server sent bytes that are not the blob (why, for a warning); nothing was written.
    Corrupt(String),
}

/// An async REAPI v2 client for one remote and instance. Cheap to clone: clones share the channel.
///
/// Every call has a time limit, and calls that failed for a passing reason (unavailable, timed
/// out) are tried again, a bounded number of times with backoff. Nothing here decides whether a
/// remote is worth talking to any more: that is [`crate::RemoteStore`]'s circuit breaker.
#[derive(Clone)]
pub struct ReapiClient {
    channel: Channel,
    cfg: Arc<RemoteCache>,
    metadata: Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>,
    /// Largest blob sent or read in a batch call; learnt from the capabilities.
    batch_limit: Arc<AtomicU64>,
}

impl ReapiClient {
    /// A client for `cfg`. Connecting is lazy (on the first call), but this must run inside a
    /// tokio runtime, which drives the channel.
    pub fn new(cfg: RemoteCache) -> Result<Self, RemoteError> {
        let ep = crate::config::endpoint(&cfg)?;
        let mut endpoint = Channel::from_shared(ep.uri.clone())
            .map_err(|e| RemoteError::InvalidUrl {
                url: cfg.url.clone(),
                reason: e.to_string(),
            })?
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true);
        if ep.tls {
            let tls = tonic::transport::ClientTlsConfig::new()
                .with_native_roots()
                .domain_name(ep.host.clone());
            endpoint = endpoint.tls_config(tls).map_err(|e| RemoteError::Tls {
                url: cfg.url.clone(),
                message: e.to_string(),
            })?;
        }
        let mut metadata = Vec::new();
        for (name, value) in &cfg.headers {
            metadata.push(header(name, value)?);
        }
        if let Some(token) = &cfg.token {
            metadata.push(header("authorization", &format!("Bearer {token}"))?);
        }
        Ok(Self {
            channel: endpoint.connect_lazy(),
            cfg: Arc::new(cfg),
            metadata: Arc::new(metadata),
            batch_limit: Arc::new(AtomicU64::new(GRPC_MESSAGE_LIMIT - BATCH_OVERHEAD)),
        })
    }

    /// The configuration this client talks with.
    pub fn config(&self) -> &RemoteCache {
        &self.cfg
    }

    /// Blobs up to this size go through the batch calls, larger ones through ByteStream.
    pub fn batch_limit(&self) -> u64 {
        self.batch_limit.load(Ordering::Relaxed)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        for (k, v) in self.metadata.iter() {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        req
    }

    fn status_error(&self, call: &'static str, s: &tonic::Status) -> RemoteError {
        RemoteError::Status {
            url: self.cfg.url.clone(),
            call,
            code: s.code(),
            message: s.message().to_string(),
        }
    }

    fn timeout_error(&self, call: &'static str, after: Duration) -> RemoteError {
        RemoteError::Timeout {
            url: self.cfg.url.clone(),
            call,
            after,
        }
    }

    /// Runs `attempt` under the time limit, again on a passing failure, at most `retries` more
    /// times, waiting 100 ms, 400 ms, ... in between.
    async fn retry<T, F, Fut>(
        &self,
        call: &'static str,
        limit: Duration,
        attempt: F,
    ) -> Result<T, RemoteError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RemoteError>>,
    {
        let mut tries = 0;
        loop {
            let result = match tokio::time::timeout(limit, attempt()).await {
                Ok(r) => r,
                Err(_) => Err(self.timeout_error(call, limit)),
            };
            match result {
                Err(e) if e.is_transient() && tries < self.cfg.retries => {
                    tokio::time::sleep(Duration::from_millis(100 << (2 * tries.min(4)))).await;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// `GetCapabilities`; also learns the batch size limit.
    pub async fn capabilities(&self) -> Result<Capabilities, RemoteError> {
        let call = "GetCapabilities";
        let caps = self
            .retry(call, self.cfg.timeout, || async {
                CapabilitiesClient::new(self.channel.clone())
                    .get_capabilities(self.request(re::GetCapabilitiesRequest {
                        instance_name: self.cfg.instance.clone(),
                    }))
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| self.status_error(call, &s))
            })
            .await?;
        let cache = caps.cache_capabilities.unwrap_or_default();
        let sha = re::digest_function::Value::Sha256 as i32;
        let max = u64::try_from(cache.max_batch_total_size_bytes).unwrap_or(0);
        let limit = if max == 0 {
            GRPC_MESSAGE_LIMIT
        } else {
            max.min(GRPC_MESSAGE_LIMIT)
        };
        self.batch_limit.store(
            limit.saturating_sub(BATCH_OVERHEAD).max(1024),
            Ordering::Relaxed,
        );
        let v = |s: Option<bazel_remote_apis::build::bazel::semver::SemVer>| {
            s.map_or_else(|| "?".into(), |s| format!("{}.{}", s.major, s.minor))
        };
        Ok(Capabilities {
            // An empty list is what servers older than REAPI 2.1 send: they mean SHA256.
            sha256: cache.digest_functions.is_empty() || cache.digest_functions.contains(&sha),
            max_batch_total_size_bytes: max,
            action_cache_update: cache
                .action_cache_update_capabilities
                .is_none_or(|c| c.update_enabled),
            api_versions: format!("{}..{}", v(caps.low_api_version), v(caps.high_api_version)),
        })
    }

    /// `GetActionResult`: `None` when the server has no entry for `action`. The output files named
    /// in `inline` come with their contents when the server inlines them (a hint it may ignore,
    /// e.g. for large files).
    pub async fn get_action_result(
        &self,
        action: &re::Digest,
        inline: &[&str],
    ) -> Result<Option<re::ActionResult>, RemoteError> {
        let call = "GetActionResult";
        self.retry(call, self.cfg.timeout, || async {
            let r = ActionCacheClient::new(self.channel.clone())
                .max_decoding_message_size(16 << 20)
                .get_action_result(self.request(re::GetActionResultRequest {
                    instance_name: self.cfg.instance.clone(),
                    action_digest: Some(action.clone()),
                    digest_function: re::digest_function::Value::Sha256 as i32,
                    inline_output_files: inline.iter().map(|p| p.to_string()).collect(),
                    ..Default::default()
                }))
                .await;
            match r {
                Ok(r) => Ok(Some(r.into_inner())),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(self.status_error(call, &s)),
            }
        })
        .await
    }

    /// `UpdateActionResult`.
    pub async fn update_action_result(
        &self,
        action: &re::Digest,
        result: re::ActionResult,
    ) -> Result<(), RemoteError> {
        let call = "UpdateActionResult";
        self.retry(call, self.cfg.timeout, || async {
            ActionCacheClient::new(self.channel.clone())
                .update_action_result(self.request(re::UpdateActionResultRequest {
                    instance_name: self.cfg.instance.clone(),
                    action_digest: Some(action.clone()),
                    action_result: Some(result.clone()),
                    digest_function: re::digest_function::Value::Sha256 as i32,
                    ..Default::default()
                }))
                .await
                .map(|_| ())
                .map_err(|s| self.status_error(call, &s))
        })
        .await
    }

    /// `Execute`: asks the engine to run (or answer from its action cache) the Action `digest`,
    /// returning the stream of Operation updates. Not retried here: the caller follows a broken
    /// stream with [`Self::wait_execution`] on the operation's name.
    pub(crate) async fn execute(
        &self,
        digest: re::Digest,
    ) -> Result<tonic::Streaming<Operation>, RemoteError> {
        let call = "Execute";
        let req = re::ExecuteRequest {
            instance_name: self.cfg.instance.clone(),
            skip_cache_lookup: false,
            action_digest: Some(digest),
            digest_function: re::digest_function::Value::Sha256 as i32,
            ..Default::default()
        };
        match tokio::time::timeout(
            self.cfg.timeout,
            ExecutionClient::new(self.channel.clone()).execute(self.request(req)),
        )
        .await
        {
            Ok(r) => r
                .map(tonic::Response::into_inner)
                .map_err(|s| self.status_error(call, &s)),
            Err(_) => Err(self.timeout_error(call, self.cfg.timeout)),
        }
    }

    /// `WaitExecution`: the update stream of an operation this client started.
    pub(crate) async fn wait_execution(
        &self,
        name: &str,
    ) -> Result<tonic::Streaming<Operation>, RemoteError> {
        let call = "WaitExecution";
        let req = re::WaitExecutionRequest { name: name.into() };
        match tokio::time::timeout(
            self.cfg.timeout,
            ExecutionClient::new(self.channel.clone()).wait_execution(self.request(req)),
        )
        .await
        {
            Ok(r) => r
                .map(tonic::Response::into_inner)
                .map_err(|s| self.status_error(call, &s)),
            Err(_) => Err(self.timeout_error(call, self.cfg.timeout)),
        }
    }

    /// `Operations.CancelOperation`: asks the engine to stop an operation (kiln was interrupted).
    pub(crate) async fn cancel_operation(&self, name: &str) -> Result<(), RemoteError> {
        let call = "CancelOperation";
        // Retried like every other call: BuildGrid answers UNAVAILABLE ("failed to lock the
        // bot") while the bot running the operation holds its session row.
        self.retry(call, self.cfg.timeout, || async {
            OperationsClient::new(self.channel.clone())
                .cancel_operation(self.request(CancelOperationRequest { name: name.into() }))
                .await
                .map(|_| ())
                .map_err(|s| self.status_error(call, &s))
        })
        .await
    }

    /// Reads a small blob into memory, verified; `None` when the server does not have it.
    pub(crate) async fn read_blob(
        &self,
        digest: &Digest,
        size: u64,
        scratch: &Path,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let dest = scratch.join(format!("blob-{}", digest.hex()));
        match self.download(digest, size, &dest).await? {
            Fetched::Done => {
                let data = std::fs::read(&dest).map_err(|source| RemoteError::Io {
                    path: dest.clone(),
                    source,
                })?;
                let _ = std::fs::remove_file(&dest);
                Ok(Some(data))
            }
            Fetched::Missing => Ok(None),
            Fetched::Corrupt(why) => Err(RemoteError::Protocol {
                url: self.cfg.url.clone(),
                call: "BatchReadBlobs",
                reason: why,
            }),
        }
    }

    /// `FindMissingBlobs`: which of `digests` the server lacks.
    pub async fn find_missing(
        &self,
        digests: &[re::Digest],
    ) -> Result<Vec<re::Digest>, RemoteError> {
        let call = "FindMissingBlobs";
        self.retry(call, self.cfg.timeout, || async {
            ContentAddressableStorageClient::new(self.channel.clone())
                .find_missing_blobs(self.request(re::FindMissingBlobsRequest {
                    instance_name: self.cfg.instance.clone(),
                    blob_digests: digests.to_vec(),
                    digest_function: re::digest_function::Value::Sha256 as i32,
                }))
                .await
                .map(|r| r.into_inner().missing_blob_digests)
                .map_err(|s| self.status_error(call, &s))
        })
        .await
    }

    /// `BatchUpdateBlobs` for small blobs (together below [`Self::batch_limit`]); every blob must
    /// be accepted.
    pub async fn batch_update(&self, blobs: &[(re::Digest, Vec<u8>)]) -> Result<(), RemoteError> {
        let call = "BatchUpdateBlobs";
        let responses = self
            .retry(call, self.cfg.timeout, || async {
                ContentAddressableStorageClient::new(self.channel.clone())
                    .batch_update_blobs(
                        self.request(re::BatchUpdateBlobsRequest {
                            instance_name: self.cfg.instance.clone(),
                            requests: blobs
                                .iter()
                                .map(|(d, data)| re::batch_update_blobs_request::Request {
                                    digest: Some(d.clone()),
                                    data: data.clone(),
                                    compressor: 0,
                                })
                                .collect(),
                            digest_function: re::digest_function::Value::Sha256 as i32,
                        }),
                    )
                    .await
                    .map(|r| r.into_inner().responses)
                    .map_err(|s| self.status_error(call, &s))
            })
            .await?;
        for r in responses {
            if let Some(st) = r.status.filter(|s| s.code != 0) {
                return Err(RemoteError::Status {
                    url: self.cfg.url.clone(),
                    call,
                    code: tonic::Code::from(st.code),
                    message: format!(
                        "blob {}: {}",
                        r.digest.map(|d| d.hash).unwrap_or_default(),
                        st.message
                    ),
                });
            }
        }
        Ok(())
    }

    /// `BatchReadBlobs` of one small blob: its bytes, `None` when the server lacks it.
    pub(crate) async fn batch_read_one(
        &self,
        digest: &re::Digest,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let call = "BatchReadBlobs";
        let responses = self
            .retry(call, self.cfg.timeout, || async {
                ContentAddressableStorageClient::new(self.channel.clone())
                    .max_decoding_message_size(2 * GRPC_MESSAGE_LIMIT as usize)
                    .batch_read_blobs(self.request(re::BatchReadBlobsRequest {
                        instance_name: self.cfg.instance.clone(),
                        digests: vec![digest.clone()],
                        acceptable_compressors: Vec::new(),
                        digest_function: re::digest_function::Value::Sha256 as i32,
                    }))
                    .await
                    .map(|r| r.into_inner().responses)
                    .map_err(|s| self.status_error(call, &s))
            })
            .await?;
        let Some(r) = responses
            .into_iter()
            .find(|r| r.digest.as_ref() == Some(digest))
        else {
            return Err(RemoteError::Protocol {
                url: self.cfg.url.clone(),
                call,
                reason: format!("no response for blob {}", digest.hash),
            });
        };
        match r.status.map_or(0, |s| s.code) {
            0 => Ok(Some(r.data)),
            c if tonic::Code::from(c) == tonic::Code::NotFound => Ok(None),
            c => Err(RemoteError::Status {
                url: self.cfg.url.clone(),
                call,
                code: tonic::Code::from(c),
                message: format!("blob {}", digest.hash),
            }),
        }
    }

    /// ByteStream resource name of a blob to read.
    fn read_resource(&self, digest: &Digest, size: u64) -> String {
        let name = format!("blobs/{}/{size}", digest.hex());
        if self.cfg.instance.is_empty() {
            name
        } else {
            format!("{}/{name}", self.cfg.instance)
        }
    }

    /// Time limit of moving `size` bytes in one call.
    fn transfer_limit(&self, size: u64) -> Duration {
        self.cfg.timeout + Duration::from_secs(size / MIN_RATE)
    }

    /// Downloads the blob `digest` of `size` bytes to `dest` (atomically), verifying its content.
    /// Small blobs come in a batch call, large ones through ByteStream `Read` in chunks.
    pub async fn download(
        &self,
        digest: &Digest,
        size: u64,
        dest: &Path,
    ) -> Result<Fetched, RemoteError> {
        let dir = dest.parent().unwrap_or_else(|| Path::new("."));
        let io = |source| RemoteError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let proto = to_proto(digest, size);
        // Like the local store, the caller may name a file in a directory that does not exist yet.
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".kiln-remote-")
            .tempfile_in(dir)
            .map_err(io)?;
        let fetched = if size == 0 {
            // The empty blob is present on every server; no call needed.
            Fetched::Done
        } else if size <= self.batch_limit() {
            match self.batch_read_one(&proto).await? {
                None => Fetched::Missing,
                Some(data) => {
                    let got = (Digest::of_bytes(&data), data.len() as u64);
                    if got == (*digest, size) {
                        tmp.write_all(&data).map_err(io)?;
                        Fetched::Done
                    } else {
                        Fetched::Corrupt(mismatch(digest, size, &got))
                    }
                }
            }
        } else {
            let limit = self.transfer_limit(size);
            self.retry("ByteStream.Read", limit, || async {
                let f = tmp.as_file().try_clone().map_err(io)?;
                f.set_len(0).map_err(io)?;
                self.read_stream(digest, size, f).await
            })
            .await?
        };
        if fetched == Fetched::Done {
            tmp.as_file().sync_data().ok();
            tmp.persist(dest).map_err(|e| RemoteError::Io {
                path: dest.to_path_buf(),
                source: e.error,
            })?;
        }
        Ok(fetched)
    }

    async fn read_stream(
        &self,
        digest: &Digest,
        size: u64,
        file: std::fs::File,
    ) -> Result<Fetched, RemoteError> {
        let call = "ByteStream.Read";
        let mut stream =
            match bytestream::byte_stream_client::ByteStreamClient::new(self.channel.clone())
                .read(self.request(bytestream::ReadRequest {
                    resource_name: self.read_resource(digest, size),
                    read_offset: 0,
                    read_limit: 0,
                }))
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => return Ok(Fetched::Missing),
                Err(s) => return Err(self.status_error(call, &s)),
            };
        use std::io::Seek;
        let mut file = file;
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(|source| RemoteError::Io {
                path: std::path::PathBuf::from("(download temp file)"),
                source,
            })?;
        let mut w = Sha256Writer::new(std::io::BufWriter::new(file));
        let mut received = 0u64;
        loop {
            let msg = match tokio::time::timeout(self.cfg.timeout, stream.message()).await {
                Err(_) => return Err(self.timeout_error(call, self.cfg.timeout)),
                Ok(Err(s)) if s.code() == tonic::Code::NotFound => return Ok(Fetched::Missing),
                Ok(Err(s)) => return Err(self.status_error(call, &s)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(m))) => m,
            };
            w.write_all(&msg.data).map_err(|source| RemoteError::Io {
                path: std::path::PathBuf::from("(download temp file)"),
                source,
            })?;
            received += msg.data.len() as u64;
            if received > size {
                // More than the blob: wrong, and not worth reading to the end.
                break;
            }
        }
        let (mut inner, got, n) = w.into_parts();
        inner.flush().map_err(|source| RemoteError::Io {
            path: std::path::PathBuf::from("(download temp file)"),
            source,
        })?;
        if (got, n) == (*digest, size) {
            Ok(Fetched::Done)
        } else {
            Ok(Fetched::Corrupt(mismatch(digest, size, &(got, n))))
        }
    }

    /// Uploads the file `src`, whose content is `digest` of `size` bytes, unless the server has
    /// it already. Returns the bytes sent (0 when it was there).
    pub async fn upload(&self, src: &Path, digest: &Digest, size: u64) -> Result<u64, RemoteError> {
        let proto = to_proto(digest, size);
        if size == 0
            || self
                .find_missing(std::slice::from_ref(&proto))
                .await?
                .is_empty()
        {
            return Ok(0);
        }
        let io = |source| RemoteError::Io {
            path: src.to_path_buf(),
            source,
        };
        if size <= self.batch_limit() {
            let data = tokio::fs::read(src).await.map_err(io)?;
            if Digest::of_bytes(&data) != *digest {
                return Err(io(std::io::Error::other(
                    "the file changed while it was uploaded",
                )));
            }
            self.batch_update(&[(proto, data)]).await?;
        } else {
            self.retry("ByteStream.Write", self.transfer_limit(size), || {
                self.write_stream(src, digest, size)
            })
            .await?;
        }
        Ok(size)
    }

    async fn write_stream(
        &self,
        src: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RemoteError> {
        let call = "ByteStream.Write";
        let io = |source| RemoteError::Io {
            path: src.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::open(src).await.map_err(io)?;
        let name = format!("uploads/{}/blobs/{}/{size}", upload_id(), digest.hex());
        let resource = if self.cfg.instance.is_empty() {
            name
        } else {
            format!("{}/{name}", self.cfg.instance)
        };
        // Two chunks in flight at most: the binary is never in memory whole.
        let (tx, rx) = tokio::sync::mpsc::channel::<bytestream::WriteRequest>(2);
        let reader = tokio::spawn(async move {
            let mut offset = 0u64;
            let mut first = true;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let n = file.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                let last = offset + filled as u64 >= size || filled == 0;
                let req = bytestream::WriteRequest {
                    resource_name: if first {
                        resource.clone()
                    } else {
                        String::new()
                    },
                    write_offset: i64::try_from(offset).unwrap_or(i64::MAX),
                    finish_write: last,
                    data: buf,
                };
                first = false;
                offset += filled as u64;
                if tx.send(req).await.is_err() || last {
                    return Ok::<u64, std::io::Error>(offset);
                }
            }
        });
        let result = bytestream::byte_stream_client::ByteStreamClient::new(self.channel.clone())
            .write(self.request(tokio_stream::wrappers::ReceiverStream::new(rx)))
            .await;
        let sent = reader
            .await
            .map_err(|e| RemoteError::Runtime(e.to_string()))?
            .map_err(io)?;
        match result {
            Ok(r) => {
                let committed = r.into_inner().committed_size;
                // A server that has the blob already may stop the stream early and say so.
                if u64::try_from(committed).ok() == Some(size) {
                    Ok(())
                } else {
                    Err(RemoteError::Protocol {
                        url: self.cfg.url.clone(),
                        call,
                        reason: format!("committed {committed} of {size} bytes (sent {sent})"),
                    })
                }
            }
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
            Err(s) => Err(self.status_error(call, &s)),
        }
    }
}

fn mismatch(digest: &Digest, size: u64, got: &(Digest, u64)) -> String {
    format!(
        "blob sha256:{} ({size} bytes) arrived as sha256:{} ({} bytes)",
        digest.hex(),
        got.0.hex(),
        got.1
    )
}

fn header(name: &str, value: &str) -> Result<(AsciiMetadataKey, AsciiMetadataValue), RemoteError> {
    let bad = |reason: String| RemoteError::InvalidHeader {
        name: name.to_string(),
        reason,
    };
    let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let mut value = AsciiMetadataValue::try_from(value).map_err(|e| bad(e.to_string()))?;
    value.set_sensitive(true);
    Ok((key, value))
}

/// A fresh upload id in UUID form (the ByteStream resource name wants one per upload).
fn upload_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(&now.to_le_bytes());
    let x = h.finalize().to_hex();
    format!(
        "{}-{}-4{}-a{}-{}",
        &x[..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_uuid_shaped_and_distinct() {
        let a = upload_id();
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, upload_id());
    }

    #[test]
    fn headers_are_checked() {
        assert!(header("x-api-key", "abc").is_ok());
        assert!(header("bad header", "abc").is_err());
        assert!(header("x-api-key", "line\nbreak").is_err());
    }
}
