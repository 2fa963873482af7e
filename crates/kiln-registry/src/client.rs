//! Layer 4 of the client: one request through the layers below. [`Client`] holds the
//! `transport`, the `auth` caches, the retry policy and the per-registry upload bound;
//! [`Client::send`] sends a request with the cached `Authorization`, answers a 401 through `auth`
//! and retries what `retry` calls transient. The protocol modules (`push`, `pull`, `referrers`,
//! `discover`) build on it with further `impl Client` blocks; nothing here knows about them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::auth::{Authenticator, Credential};
use crate::error::{RegistryError, Result};
use crate::reference::Repository;
use crate::report::{Reporter, Silent};
use crate::retry::{self, check_status, classify, RetryPolicy};
use crate::transport::{lock, Transport};

// What the protocol modules use from the layers below, in one place.
pub(crate) use crate::auth::Scopes;
pub(crate) use crate::retry::{random_u64, Failure};
pub(crate) use crate::transport::{body_snippet, error_chain, json_body, next_page, status_error};

/// Client settings. `Default` gives anonymous access (set `docker_config_dir` for docker config
/// credentials), TLS everywhere except loopback, 8 MiB upload chunks and 8 blob uploads at once
/// per registry.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Registries (`host[:port]`) spoken to over plain HTTP; loopback hosts always are.
    pub insecure_registries: Vec<String>,
    /// Explicit credentials per registry host; they override the docker config.
    pub credentials: BTreeMap<String, Credential>,
    /// Directory of docker's `config.json` (the CLI passes `$DOCKER_CONFIG`, else `~/.docker`);
    /// `None` reads no docker config. The library never looks at the environment itself.
    pub docker_config_dir: Option<PathBuf>,
    /// Whether to consult the docker config at all.
    pub use_docker_config: bool,
    /// Size of one `PATCH` when uploading in chunks.
    pub chunk_size: u64,
    /// Blobs up to this size go up in one `PUT`; larger ones in chunks.
    pub monolithic_limit: u64,
    /// Blob uploads in flight at once per registry, across every push of this client (clones
    /// included); also how many images [`Client::push_images`] and how many blobs or manifests
    /// of one image [`Client::push_image`] work on at once.
    pub concurrency: usize,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Local cache directory for pulled blobs and manifests (by digest); `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            credentials: BTreeMap::new(),
            docker_config_dir: None,
            use_docker_config: true,
            chunk_size: 8 << 20,
            monolithic_limit: 8 << 20,
            concurrency: 8,
            retry: RetryPolicy::default(),
            cache_dir: None,
            user_agent: concat!("kiln/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

pub(crate) struct Inner {
    transport: Transport,
    auth: Authenticator,
    pub(crate) config: ClientConfig,
    /// Per registry host: `concurrency` permits for blob uploads, shared by every push of this
    /// client, so pushing many images at once does not multiply the uploads in flight.
    upload_slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    pub(crate) reporter: Arc<dyn Reporter>,
}

/// A registry client. Cheap to clone; clones share connections, credentials and token cache, so one
/// client per process keeps HTTP keep-alive working across all pushes and pulls.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Creates a client. Installs the `ring` rustls provider as process default if none is installed.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_reporter(config, Arc::new(Silent))
    }

    /// Creates a client that tells `reporter` about finished blobs/manifests and retries.
    pub fn with_reporter(config: ClientConfig, reporter: Arc<dyn Reporter>) -> Result<Self> {
        let transport = Transport::new(&config.user_agent, &config.insecure_registries)?;
        let docker_config_dir = if config.use_docker_config {
            config.docker_config_dir.clone()
        } else {
            None
        };
        let auth = Authenticator::new(config.credentials.clone(), docker_config_dir);
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                auth,
                config,
                upload_slots: Mutex::new(HashMap::new()),
                reporter,
            }),
        })
    }

    /// Waits for one of the `concurrency` upload slots of `registry`; the slot is free again when
    /// the returned permit drops. `None` only if the semaphore was closed, which never happens.
    pub(crate) async fn upload_slot(
        &self,
        registry: &str,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let slots = lock(&self.inner.upload_slots)
            .entry(registry.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    self.inner.config.concurrency.max(1),
                ))
            })
            .clone();
        slots.acquire_owned().await.ok()
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Whether `registry` is spoken to over plain HTTP: `127.0.0.1`, `localhost`, `[::1]` (any port)
    /// and the registries configured as insecure.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        self.inner.transport.is_plain_http(registry)
    }

    /// `scheme://host/v2/<name>/<path>`.
    pub(crate) fn url(&self, repo: &Repository, path: &str) -> Result<Url> {
        self.inner.transport.url(repo, path)
    }

    /// Sends a body-less request (or one whose body `build` can recreate) with auth and retries.
    ///
    /// 401 is answered once by authenticating; a second 401 becomes [`RegistryError::Unauthorized`].
    /// 5xx, 429 and dropped connections are retried per the [`RetryPolicy`]; other statuses are
    /// returned for the caller to interpret.
    pub(crate) async fn send(
        &self,
        repo: &Repository,
        scopes: &Scopes,
        method: Method,
        url: &Url,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            match self
                .send_once(repo, scopes, method.clone(), url, true, build)
                .await
            {
                Ok(resp) => return Ok(resp),
                Err(f) if f.retryable && attempt + 1 < self.inner.config.retry.max_attempts => {
                    self.backoff(&format!("{method} {url}"), attempt, f.retry_after, &f.error)
                        .await;
                    attempt += 1;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// One attempt (plus the auth round trip on 401). Retryable statuses come back as `Failure`.
    ///
    /// A request whose body cannot be rebuilt (`replayable == false`) is not resent after a 401:
    /// the token is refreshed and the 401 comes back retryable, so the caller sends the body again
    /// (an upload resumes from the registry's offset or restarts its session).
    pub(crate) async fn send_once(
        &self,
        repo: &Repository,
        scopes: &Scopes,
        method: Method,
        url: &Url,
        replayable: bool,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
    ) -> Result<Response, Failure> {
        let mut authenticated = false;
        loop {
            let mut rb = build(
                self.inner
                    .transport
                    .http(url)?
                    .request(method.clone(), url.clone()),
            );
            let sent = self.inner.auth.cached(&repo.registry, scopes);
            if let Some(h) = &sent {
                if let Ok(v) = HeaderValue::from_str(h) {
                    rb = rb.header(AUTHORIZATION, v);
                }
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| classify(&e, &repo.registry, method.as_str(), url.as_str()))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                if authenticated {
                    let body = body_snippet(resp).await;
                    return Err(RegistryError::Unauthorized {
                        registry: repo.registry.clone(),
                        repository: repo.name.clone(),
                        detail: format!("credentials rejected: {body}"),
                    }
                    .into());
                }
                self.inner
                    .auth
                    .reauthenticate(&self.inner.transport, repo, scopes, &resp, sent)
                    .await?;
                if !replayable {
                    return Err(Failure {
                        error: RegistryError::Unauthorized {
                            registry: repo.registry.clone(),
                            repository: repo.name.clone(),
                            detail: format!("{method} {url} needed fresh credentials mid-upload"),
                        },
                        retryable: true,
                        retry_after: None,
                    });
                }
                authenticated = true;
                continue;
            }
            return check_status(resp, method.as_str(), url.as_str()).await;
        }
    }

    /// Sleeps before retry number `attempt + 1` per the client's [`RetryPolicy`], telling the
    /// reporter why.
    pub(crate) async fn backoff(
        &self,
        what: &str,
        attempt: u32,
        retry_after: Option<Duration>,
        error: &RegistryError,
    ) {
        retry::backoff(
            &self.inner.config.retry,
            self.inner.reporter.as_ref(),
            what,
            attempt,
            retry_after,
            error,
        )
        .await;
    }
}
