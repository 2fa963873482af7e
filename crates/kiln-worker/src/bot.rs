//! The bot session: create it, long-poll it, start and report leases, survive the engine going
//! away.

use std::sync::Arc;
use std::time::Duration;

use kiln_remote::{ReapiClient, RemoteCache};
use kiln_sandbox::CancelToken;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, ClientTlsConfig};

use crate::exec::Executor;
use crate::proto::bots_client::BotsClient;
use crate::proto::{
    device, BotSession, BotStatus, CreateBotSessionRequest, Device, Lease, LeaseState,
    UpdateBotSessionRequest,
};
use crate::{WorkerConfig, WorkerError, WorkerReporter};

const ACTION_RESULT_URL: &str = "type.googleapis.com/build.bazel.remote.execution.v2.ActionResult";

/// Interval of keep-alive updates while a lease runs (well below any engine's session timeout).
const KEEPALIVE: Duration = Duration::from_secs(2);

/// Longest wait between two attempts to reach the engine.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A Remote Workers API bot for one engine. Create it inside a tokio runtime (connections are
/// lazy and driven by the runtime).
pub struct Worker {
    cfg: Arc<WorkerConfig>,
    bots: BotsClient<Channel>,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    exec: Executor,
}

/// The gRPC metadata every call to the engine carries: the configured headers and, with a
/// token, `authorization: Bearer TOKEN` (the same as the CAS calls of [`ReapiClient`]).
pub fn bots_metadata(
    server: &RemoteCache,
) -> Result<Vec<(AsciiMetadataKey, AsciiMetadataValue)>, WorkerError> {
    let one = |name: &str, value: &str| {
        let bad = |reason: String| WorkerError::BadHeader {
            name: name.to_string(),
            reason,
        };
        let key = AsciiMetadataKey::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let value = AsciiMetadataValue::try_from(value).map_err(|e| bad(e.to_string()))?;
        Ok::<_, WorkerError>((key, value))
    };
    let mut out = Vec::new();
    for (name, value) in &server.headers {
        out.push(one(name, value)?);
    }
    if let Some(token) = &server.token {
        out.push(one("authorization", &format!("Bearer {token}"))?);
    }
    Ok(out)
}

struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        now
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(200);
    }
}

/// Failures that say "the engine is away or busy", after which the same session is tried again;
/// anything else (an unknown session after a restart, a refused request) opens a new session.
fn transient(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::Unknown
    )
}

struct Running {
    id: String,
    handle: JoinHandle<Lease>,
    /// Kills the lease's sandbox.
    cancel: CancelToken,
}

impl Running {
    /// The lease to report once the task ended; `None` for a cancelled lease, which the engine
    /// already dropped (it refuses a session that reports a lease as CANCELLED).
    fn settle(&self, joined: Result<Lease, tokio::task::JoinError>) -> Option<Lease> {
        if self.cancel.is_cancelled() {
            return None;
        }
        Some(match joined {
            Ok(lease) => lease,
            Err(e) => failed(
                self.id.clone(),
                tonic::Code::Internal,
                format!("the action task ended: {e}"),
            ),
        })
    }
}

impl Worker {
    /// A worker for `cfg` (checks the URL and that bubblewrap is installed).
    pub fn new(cfg: WorkerConfig) -> Result<Self, WorkerError> {
        let invalid = |reason: String| WorkerError::InvalidUrl {
            url: cfg.server.url.clone(),
            reason,
        };
        let ep = cfg.server.endpoint().map_err(invalid)?;
        let uri = format!(
            "{}://{}",
            if ep.tls { "https" } else { "http" },
            ep.authority
        );
        let mut endpoint = Channel::from_shared(uri)
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(cfg.server.connect_timeout)
            .tcp_nodelay(true);
        if ep.tls {
            let tls = ClientTlsConfig::new()
                .with_native_roots()
                .domain_name(ep.host.clone());
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| invalid(e.to_string()))?;
        }
        let channel = endpoint.connect_lazy();
        let bots = BotsClient::new(channel.clone());
        let metadata = bots_metadata(&cfg.server)?;
        let client = ReapiClient::new(cfg.server.clone())?;
        let batches = crate::inputs::BatchReader::new(
            channel,
            metadata.clone(),
            cfg.server.instance.clone(),
            cfg.server.timeout,
        );
        let cfg = Arc::new(cfg);
        let exec = Executor::new(client, batches, cfg.clone())?;
        Ok(Worker {
            cfg,
            bots,
            metadata,
            exec,
        })
    }

    /// A Bots request with the engine's headers and token.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        with_metadata(tonic::Request::new(message), &self.metadata)
    }

    fn bots_error(&self, call: &'static str, s: &tonic::Status) -> WorkerError {
        WorkerError::Bots {
            url: self.cfg.server.url.clone(),
            call,
            code: s.code(),
            message: s.message().to_string(),
        }
    }

    /// Serves the engine until the process ends: opens a session, takes and runs leases one at a
    /// time, and reconnects with backoff whenever the engine goes away.
    pub async fn run(&self, reporter: Arc<dyn WorkerReporter>) -> Result<(), WorkerError> {
        let mut backoff = Backoff(Duration::ZERO);
        backoff.reset();
        loop {
            let session = match self.create_session().await {
                Ok(s) => s,
                Err(e) => {
                    let wait = backoff.next();
                    reporter.connection_problem(&e, wait);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            backoff.reset();
            reporter.session_opened(&session.name);
            let e = self.serve(session, &reporter, &mut backoff).await;
            let wait = backoff.next();
            reporter.connection_problem(&e, wait);
            tokio::time::sleep(wait).await;
        }
    }

    async fn create_session(&self) -> Result<BotSession, WorkerError> {
        let properties = self
            .cfg
            .platform
            .iter()
            .map(|(key, value)| device::Property {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        let session = BotSession {
            bot_id: self.cfg.bot_id.clone(),
            status: BotStatus::Ok as i32,
            worker: Some(crate::proto::Worker {
                // BuildGrid matches actions against the primary (first) device's properties.
                devices: vec![Device {
                    handle: self.cfg.bot_id.clone(),
                    properties,
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut req = self.request(CreateBotSessionRequest {
            parent: self.cfg.server.instance.clone(),
            bot_session: Some(session),
        });
        req.set_timeout(self.cfg.poll);
        let mut bots = self.bots.clone();
        match tokio::time::timeout(
            self.cfg.poll + Duration::from_secs(5),
            bots.create_bot_session(req),
        )
        .await
        {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(s)) => Err(self.bots_error("CreateBotSession", &s)),
            Err(_) => Err(self.bots_error(
                "CreateBotSession",
                &tonic::Status::deadline_exceeded("no answer"),
            )),
        }
    }

    async fn update(&self, session: BotSession) -> Result<BotSession, tonic::Status> {
        let mut req = self.request(UpdateBotSessionRequest {
            name: session.name.clone(),
            bot_session: Some(session),
            update_mask: None,
        });
        // The engine holds the call open until it has work or 80 % of this deadline passed.
        req.set_timeout(self.cfg.poll);
        let mut bots = self.bots.clone();
        match tokio::time::timeout(
            self.cfg.poll + Duration::from_secs(5),
            bots.update_bot_session(req),
        )
        .await
        {
            Ok(reply) => reply.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(
                "UpdateBotSession got no answer",
            )),
        }
    }

    /// Runs one session until the engine no longer accepts it; returns why.
    async fn serve(
        &self,
        mut session: BotSession,
        reporter: &Arc<dyn WorkerReporter>,
        backoff: &mut Backoff,
    ) -> WorkerError {
        let mut running: Option<Running> = None;
        // Finished leases the engine has not acknowledged yet: sent with every update until it has.
        let mut done: Vec<Lease> = Vec::new();
        // The caches are trimmed when a session starts and after every action, before the next
        // one starts (go opens package files the cache named, so never while one runs).
        let mut trim_due = true;
        loop {
            let mut outgoing = session.clone();
            for lease in &done {
                match outgoing.leases.iter_mut().find(|l| l.id == lease.id) {
                    Some(slot) => *slot = lease.clone(),
                    None => outgoing.leases.push(lease.clone()),
                }
            }
            let asked = std::time::Instant::now();
            let call = self.update(outgoing);
            let reply = match running.as_mut() {
                Some(task) => {
                    tokio::select! {
                        reply = call => reply,
                        finished = &mut task.handle => {
                            done.extend(task.settle(finished));
                            running = None;
                            trim_due = true;
                            continue;
                        }
                    }
                }
                None => call.await,
            };
            let new = match reply {
                Ok(new) => new,
                Err(s) if transient(s.code()) => {
                    // A long poll that ran out is normal; anything else means the engine is away.
                    if s.code() != tonic::Code::DeadlineExceeded {
                        let wait = backoff.next();
                        reporter.connection_problem(&self.bots_error("UpdateBotSession", &s), wait);
                        tokio::time::sleep(wait).await;
                    }
                    continue;
                }
                Err(s) => {
                    if let Some(task) = running.take() {
                        task.cancel.cancel();
                        task.handle.abort();
                    }
                    return self.bots_error("UpdateBotSession", &s);
                }
            };
            backoff.reset();
            // A finished lease is acknowledged once the engine no longer holds it as pending or active.
            done.retain(|d| {
                new.leases.iter().any(|l| {
                    l.id == d.id
                        && matches!(
                            LeaseState::try_from(l.state),
                            Ok(LeaseState::Active | LeaseState::Pending)
                        )
                })
            });
            session = new;
            // The engine cancels a lease by dropping it from the session (BuildGrid) or by
            // marking it CANCELLED: either way its sandbox is killed and the lease forgotten.
            if let Some(task) = running.as_ref().filter(|t| !t.cancel.is_cancelled()) {
                let still_ours = session.leases.iter().any(|l| {
                    l.id == task.id && LeaseState::try_from(l.state) == Ok(LeaseState::Active)
                });
                if !still_ours {
                    task.cancel.cancel();
                }
            }
            session
                .leases
                .retain(|l| LeaseState::try_from(l.state) != Ok(LeaseState::Cancelled));
            if let (true, None, Some(max)) = (trim_due, &running, self.cfg.cache_max_bytes) {
                trim_due = false;
                let dirs = self.cfg.cache_dirs();
                if let Ok(report) =
                    tokio::task::spawn_blocking(move || crate::trim::trim(&dirs, max)).await
                {
                    if report.removed > 0 {
                        reporter.caches_trimmed(&report, max);
                    }
                }
            }
            let mut started = false;
            for lease in &session.leases {
                let state = LeaseState::try_from(lease.state).unwrap_or(LeaseState::Unspecified);
                let is_running = running.as_ref().is_some_and(|r| r.id == lease.id);
                if state == LeaseState::Active
                    && !is_running
                    && running.is_none()
                    && !done.iter().any(|d| d.id == lease.id)
                {
                    let exec = self.exec.clone();
                    let lease = lease.clone();
                    let reporter = reporter.clone();
                    let work_dir = self.cfg.work_dir.clone();
                    let cancel = CancelToken::new();
                    let token = cancel.clone();
                    running = Some(Running {
                        id: lease.id.clone(),
                        handle: tokio::spawn(async move {
                            run_lease(exec, lease, reporter, work_dir, token).await
                        }),
                        cancel,
                    });
                    started = true;
                }
            }
            // The engine answers at once while a lease runs (it long-polls only idle bots): the
            // next update is a keep-alive, sent after KEEPALIVE or as soon as the lease finishes.
            if let Some(task) = running.as_mut().filter(|_| !started) {
                tokio::select! {
                    finished = &mut task.handle => {
                        done.extend(task.settle(finished));
                        running = None;
                        trim_due = true;
                    }
                    () = tokio::time::sleep(KEEPALIVE) => {}
                }
            } else if running.is_none()
                && done.is_empty()
                && asked.elapsed() < Duration::from_millis(100)
            {
                // An engine that does not long-poll must not make this a busy loop.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

fn with_metadata<T>(
    mut req: tonic::Request<T>,
    metadata: &[(AsciiMetadataKey, AsciiMetadataValue)],
) -> tonic::Request<T> {
    for (k, v) in metadata {
        req.metadata_mut().insert(k.clone(), v.clone());
    }
    req
}

/// A lease completed with an error status and no result.
fn failed(id: String, code: tonic::Code, message: String) -> Lease {
    Lease {
        id,
        state: LeaseState::Completed as i32,
        status: Some(bazel_remote_apis::google::rpc::Status {
            code: code as i32,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

async fn run_lease(
    exec: Executor,
    lease: Lease,
    reporter: Arc<dyn WorkerReporter>,
    work_dir: std::path::PathBuf,
    cancel: CancelToken,
) -> Lease {
    let outcome = async {
        let scratch = tempfile::Builder::new()
            .prefix("kiln-lease-")
            .tempdir_in(&work_dir)
            .map_err(|source| WorkerError::Io {
                path: work_dir.clone(),
                source,
            })?;
        let payload = lease
            .payload
            .as_ref()
            .ok_or_else(|| WorkerError::Refused("the lease has no payload".into()))?;
        let (action, digest) = exec.action_of(payload, scratch.path()).await?;
        reporter.lease_started(&lease.id, &format!("{}/{}", digest.hash, digest.size_bytes));
        exec.execute(action, cancel).await
    }
    .await;
    match outcome {
        Ok(executed) => {
            reporter.inputs_fetched(
                &lease.id,
                executed.inputs.downloaded,
                executed.inputs.cached,
                executed.inputs.batch_calls,
            );
            if let Some(stats) = &executed.go_packages {
                reporter.go_packages(&lease.id, stats);
            }
            reporter.lease_finished(&lease.id, Ok(executed.result.exit_code));
            let code = if executed.timed_out {
                tonic::Code::DeadlineExceeded
            } else {
                tonic::Code::Ok
            };
            Lease {
                state: LeaseState::Completed as i32,
                status: Some(bazel_remote_apis::google::rpc::Status {
                    code: code as i32,
                    message: String::new(),
                    details: Vec::new(),
                }),
                result: Some(prost_types::Any {
                    type_url: ACTION_RESULT_URL.to_string(),
                    value: executed.result.encode_to_vec(),
                }),
                ..lease
            }
        }
        Err(WorkerError::Cancelled) => {
            reporter.lease_cancelled(&lease.id);
            failed(
                lease.id,
                tonic::Code::Cancelled,
                "the lease was cancelled".into(),
            )
        }
        Err(e) => {
            reporter.lease_finished(&lease.id, Err(&e));
            Lease {
                payload: lease.payload,
                ..failed(lease.id, e.lease_code(), e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_calls_carry_the_headers_and_the_token() {
        let mut server = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        server.headers = vec![("x-api-key".into(), "k1".into())];
        server.token = Some("t0ken".into());
        let md = bots_metadata(&server).unwrap();
        let req = with_metadata(tonic::Request::new(()), &md);
        assert_eq!(req.metadata().get("x-api-key").unwrap(), "k1");
        assert_eq!(req.metadata().get("authorization").unwrap(), "Bearer t0ken");
        // Without either, nothing is added.
        let plain = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        assert!(bots_metadata(&plain).unwrap().is_empty());
    }

    #[test]
    fn a_header_that_cannot_be_sent_is_an_error_naming_it() {
        let mut server = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        server.headers = vec![("Bad Name".into(), "v".into())];
        let err = bots_metadata(&server).unwrap_err();
        assert!(err.to_string().contains("Bad Name"), "{err}");
        server.headers = vec![("x-ok".into(), "line\nbreak".into())];
        assert!(bots_metadata(&server).is_err());
    }
}
