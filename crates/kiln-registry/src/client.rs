//! The shared HTTP client: configuration, scheme choice, auth handshake, retries and error mapping.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::auth::{self, Challenge, Credential, TokenResponse};
use crate::error::{RegistryError, Result};
use crate::reference::Repository;
use crate::report::{Reporter, Silent};

/// How often and how patiently to retry transient failures (5xx, 429, dropped connections).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time, with jitter.
    pub base_delay: Duration,
    /// Upper bound for one delay (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// Client settings. `Default` gives anonymous access (set `docker_config_dir` for docker config
/// credentials), TLS everywhere except loopback, 8 MiB upload chunks and 8 concurrent requests
/// per image.
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

#[derive(Default)]
struct RegistryAuth {
    basic: Option<String>,
    /// Bearer tokens by scope key; a token is only valid for the scopes it was issued for.
    tokens: HashMap<String, String>,
}

pub(crate) struct Inner {
    /// For plain-HTTP registries (loopback, configured insecure): built without TLS roots,
    /// because loading the system's certificates opens every file in /etc/ssl/certs (hundreds)
    /// and a push to a local registry never needs them.
    plain: reqwest::Client,
    /// For HTTPS: built with the platform's roots on the first https request.
    tls: std::sync::OnceLock<std::result::Result<reqwest::Client, String>>,
    pub(crate) config: ClientConfig,
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    auth: Mutex<HashMap<String, RegistryAuth>>,
    auth_lock: tokio::sync::Mutex<()>,
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

/// What a request needs from the token server: `repository:<name>:<actions>` scopes.
#[derive(Clone, Debug)]
pub(crate) struct Scopes(pub Vec<String>);

impl Scopes {
    pub(crate) fn pull(repo: &Repository) -> Self {
        Self(vec![format!("repository:{}:pull", repo.name)])
    }
    pub(crate) fn push(repo: &Repository) -> Self {
        Self(vec![format!("repository:{}:pull,push", repo.name)])
    }
    pub(crate) fn delete(repo: &Repository) -> Self {
        Self(vec![format!("repository:{}:delete", repo.name)])
    }
    fn key(&self) -> String {
        let mut v = self.0.clone();
        v.sort();
        v.join(" ")
    }
}

/// Outcome of one attempt, telling the caller whether trying again can help.
pub(crate) struct Failure {
    pub error: RegistryError,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl From<RegistryError> for Failure {
    fn from(error: RegistryError) -> Self {
        Self {
            error,
            retryable: false,
            retry_after: None,
        }
    }
}

/// Settings shared by the plain and the TLS client.
fn base_builder(config: &ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(config.user_agent.clone())
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(15))
        .tcp_nodelay(true)
}

impl Client {
    /// Creates a client. Installs the `ring` rustls provider as process default if none is installed.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_reporter(config, Arc::new(Silent))
    }

    /// Creates a client that tells `reporter` about finished blobs/manifests and retries.
    pub fn with_reporter(config: ClientConfig, reporter: Arc<dyn Reporter>) -> Result<Self> {
        // reqwest is built without its aws-lc-rs provider; it needs a process-wide one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another thread installing one is fine: some provider is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let plain = base_builder(&config)
            .tls_certs_only(std::iter::empty())
            .build()
            .map_err(|e| RegistryError::Client(error_chain(&e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                plain,
                tls: std::sync::OnceLock::new(),
                config,
                credentials: Mutex::new(HashMap::new()),
                auth: Mutex::new(HashMap::new()),
                auth_lock: tokio::sync::Mutex::new(()),
                upload_slots: Mutex::new(HashMap::new()),
                reporter,
            }),
        })
    }

    /// The HTTP client for `url`: the plain one for `http://`, the TLS one (built now if this is
    /// the first https request) otherwise.
    fn http(&self, url: &Url) -> Result<&reqwest::Client> {
        if url.scheme() == "http" {
            return Ok(&self.inner.plain);
        }
        self.inner
            .tls
            .get_or_init(|| {
                base_builder(&self.inner.config)
                    .build()
                    .map_err(|e| error_chain(&e))
            })
            .as_ref()
            .map_err(|e| RegistryError::Client(e.clone()))
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
        let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') {
                h
            } else {
                registry
            }
        });
        host == "localhost"
            || host == "[::1]"
            || host == "127.0.0.1"
            || self
                .inner
                .config
                .insecure_registries
                .iter()
                .any(|r| r == registry)
    }

    /// `scheme://host/v2/` for a registry.
    pub(crate) fn v2_root(&self, repo: &Repository) -> String {
        let scheme = if self.is_plain_http(&repo.registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/", repo.api_host())
    }

    /// `scheme://host/v2/<name>/<path>`.
    pub(crate) fn url(&self, repo: &Repository, path: &str) -> Result<Url> {
        let s = format!("{}{}/{path}", self.v2_root(repo), repo.name);
        Url::parse(&s).map_err(|e| RegistryError::Protocol {
            registry: repo.registry.clone(),
            detail: format!("bad URL {s}: {e}"),
        })
    }

    fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.inner.config.credentials.get(registry) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = lock(&self.inner.credentials).get(registry) {
            return Ok(c.clone());
        }
        let found = if self.inner.config.use_docker_config {
            match &self.inner.config.docker_config_dir {
                Some(dir) => auth::credential_from_docker_config(dir, registry)?,
                None => None,
            }
        } else {
            None
        };
        lock(&self.inner.credentials).insert(registry.to_string(), found.clone());
        Ok(found)
    }

    fn cached_auth(&self, registry: &str, scopes: &Scopes) -> Option<String> {
        let auth = lock(&self.inner.auth);
        let a = auth.get(registry)?;
        a.tokens
            .get(&scopes.key())
            .cloned()
            .or_else(|| a.basic.clone())
    }

    /// Answers a 401 once for all concurrent requests: whoever gets the lock first fetches the
    /// token; the others see that the cached value changed since they sent theirs and reuse it.
    async fn reauthenticate(
        &self,
        repo: &Repository,
        scopes: &Scopes,
        resp: &Response,
        sent: Option<String>,
    ) -> Result<()> {
        let _guard = self.inner.auth_lock.lock().await;
        let now = self.cached_auth(&repo.registry, scopes);
        if now.is_some() && now != sent {
            return Ok(());
        }
        self.forget_auth(&repo.registry, scopes);
        self.authenticate(repo, scopes, resp).await
    }

    /// Answers a 401 challenge: caches Basic credentials or fetches a Bearer token for `scopes`.
    async fn authenticate(
        &self,
        repo: &Repository,
        scopes: &Scopes,
        resp: &Response,
    ) -> Result<()> {
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            registry: repo.registry.clone(),
            repository: repo.name.clone(),
            detail,
        };
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| unauthorized("401 without a WWW-Authenticate challenge".into()))?;
        let challenge = auth::parse_challenge(header)
            .ok_or_else(|| unauthorized(format!("unsupported challenge `{header}`")))?;
        let cred = self.credential(&repo.registry)?;
        match challenge {
            Challenge::Basic => {
                let basic = cred
                    .as_ref()
                    .and_then(Credential::basic_header)
                    .ok_or_else(|| {
                        unauthorized(
                            "registry requires Basic auth and no credentials are configured".into(),
                        )
                    })?;
                lock(&self.inner.auth)
                    .entry(repo.registry.clone())
                    .or_default()
                    .basic = Some(basic);
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut all = scopes.0.clone();
                if let Some(s) = scope {
                    if !all.contains(&s) {
                        all.push(s);
                    }
                }
                let token = self
                    .fetch_token(repo, &realm, service.as_deref(), &all, cred.as_ref())
                    .await?;
                lock(&self.inner.auth)
                    .entry(repo.registry.clone())
                    .or_default()
                    .tokens
                    .insert(scopes.key(), format!("Bearer {token}"));
            }
        }
        Ok(())
    }

    async fn fetch_token(
        &self,
        repo: &Repository,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<String> {
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: repo.registry.clone(),
            detail: format!("bad token realm `{realm}`: {e}"),
        })?;
        let rb = match cred {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form =
                    Url::parse("kiln:form").map_err(|e| RegistryError::Client(e.to_string()))?;
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", refresh);
                    q.append_pair("client_id", "kiln");
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                self.http(&url)?
                    .post(url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or_default().to_string())
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let rb = self.http(&url)?.get(url.clone());
                match other.and_then(Credential::basic_header) {
                    Some(h) => rb.header(AUTHORIZATION, h),
                    None => rb,
                }
            }
        };
        let resp = rb
            .send()
            .await
            .map_err(|e| self.classify(&e, repo, "GET", url.as_str()).error)?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let who = if cred.is_some() {
                "rejected the credentials"
            } else {
                "refused anonymous access"
            };
            return Err(RegistryError::Unauthorized {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
                detail: format!("token server {realm} {who} ({status})"),
            });
        }
        if !status.is_success() {
            return Err(status_error(resp, "GET", url.as_str()).await);
        }
        let body: TokenResponse = json_body(resp, &repo.registry).await?;
        body.token
            .or(body.access_token)
            .ok_or_else(|| RegistryError::Protocol {
                registry: repo.registry.clone(),
                detail: format!("token server {realm} returned no token"),
            })
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
    /// the token is refreshed and the 401 comes back retryable so the caller restarts its session.
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
            let mut rb = build(self.http(url)?.request(method.clone(), url.clone()));
            let sent = self.cached_auth(&repo.registry, scopes);
            if let Some(h) = &sent {
                if let Ok(v) = HeaderValue::from_str(h) {
                    rb = rb.header(AUTHORIZATION, v);
                }
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| self.classify(&e, repo, method.as_str(), url.as_str()))?;
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
                self.reauthenticate(repo, scopes, &resp, sent).await?;
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
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return Err(Failure {
                    error: status_error(resp, method.as_str(), url.as_str()).await,
                    retryable: status != StatusCode::NOT_IMPLEMENTED,
                    retry_after,
                });
            }
            return Ok(resp);
        }
    }

    /// Drops a stale token so the next 401 fetches a fresh one instead of looping on an expired one.
    fn forget_auth(&self, registry: &str, scopes: &Scopes) {
        if let Some(a) = lock(&self.inner.auth).get_mut(registry) {
            a.tokens.remove(&scopes.key());
        }
    }

    /// Sleeps before retry number `attempt + 1`, telling the reporter why.
    pub(crate) async fn backoff(
        &self,
        what: &str,
        attempt: u32,
        retry_after: Option<Duration>,
        error: &RegistryError,
    ) {
        let policy = &self.inner.config.retry;
        let exp = policy
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(policy.max_delay);
        // Jitter in [exp/2, exp): clients that failed together do not retry together.
        let jitter = random_u64() % (exp.as_millis().max(2) as u64 / 2);
        let delay = retry_after
            .map(|d| d.min(policy.max_delay))
            .unwrap_or(exp / 2 + Duration::from_millis(jitter));
        self.inner
            .reporter
            .retrying(what, attempt + 1, delay, error);
        tokio::time::sleep(delay).await;
    }

    /// Maps a transport error to a user-facing error and decides whether a retry can help.
    pub(crate) fn classify(
        &self,
        e: &reqwest::Error,
        repo: &Repository,
        method: &str,
        url: &str,
    ) -> Failure {
        let detail = error_chain(e);
        let lower = detail.to_ascii_lowercase();
        let refused = source_io_kinds(e).contains(&std::io::ErrorKind::ConnectionRefused);
        let tls = has_source::<rustls::Error>(e)
            || lower.contains("invalidcontenttype")
            || lower.contains("corrupt message")
            || lower.contains("certificate");
        let (error, retryable) = if tls {
            (
                RegistryError::Tls {
                    registry: repo.registry.clone(),
                    url: url.to_string(),
                    detail,
                },
                false,
            )
        } else if refused || (e.is_connect() && !e.is_timeout()) {
            (
                RegistryError::Unreachable {
                    registry: repo.registry.clone(),
                    url: url.to_string(),
                    detail,
                },
                false,
            )
        } else {
            (
                RegistryError::Network {
                    method: method.to_string(),
                    url: url.to_string(),
                    detail,
                },
                !e.is_builder(),
            )
        };
        Failure {
            error,
            retryable,
            retry_after: None,
        }
    }
}

/// The next page of a paginated listing (tags, referrers): the `Link: <URL>; rel="next"` header
/// of `resp` resolved against `current`; `None` on the last page.
pub(crate) fn next_page(
    resp: &Response,
    current: &reqwest::Url,
    registry: &str,
) -> Result<Option<reqwest::Url>> {
    let Some(target) = resp
        .headers()
        .get(reqwest::header::LINK)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.split_once('<')?.1.split_once('>').map(|(u, _)| u))
    else {
        return Ok(None);
    };
    current
        .join(target)
        .map(Some)
        .map_err(|e| RegistryError::Protocol {
            registry: registry.to_string(),
            detail: format!("bad Link header `{target}`: {e}"),
        })
}

/// Reads a JSON body, naming the registry on failure.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    resp: Response,
    registry: &str,
) -> Result<T> {
    let url = resp.url().to_string();
    let bytes = resp.bytes().await.map_err(|e| RegistryError::Network {
        method: "GET".into(),
        url: url.clone(),
        detail: error_chain(&e),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        detail: format!("invalid JSON from {url}: {e}"),
    })
}

/// Turns an unexpected response into an error carrying the start of the registry's error JSON.
pub(crate) async fn status_error(resp: Response, method: &str, url: &str) -> RegistryError {
    let status = resp.status().as_u16();
    RegistryError::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        body: body_snippet(resp).await,
    }
}

/// First 300 characters of a response body, for error messages.
pub(crate) async fn body_snippet(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None if text.is_empty() => "(empty body)".to_string(),
        None => text.to_string(),
    }
}

pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}

fn source_io_kinds(e: &(dyn std::error::Error + 'static)) -> Vec<std::io::ErrorKind> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(src) = cur {
        if let Some(io) = src.downcast_ref::<std::io::Error>() {
            out.push(io.kind());
        }
        cur = src.source();
    }
    out
}

fn has_source<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(src) = cur {
        if src.downcast_ref::<T>().is_some() {
            return true;
        }
        if let Some(inner) = src
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if inner.downcast_ref::<T>().is_some() {
                return true;
            }
        }
        cur = src.source();
    }
    false
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these maps cannot leave them inconsistent (single inserts), so recover.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_plain_http() {
        let c = Client::new(ClientConfig {
            insecure_registries: vec!["reg.lan:5000".into()],
            ..ClientConfig::default()
        })
        .unwrap();
        for r in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "reg.lan:5000",
        ] {
            assert!(c.is_plain_http(r), "{r}");
        }
        for r in [
            "ghcr.io",
            "reg.lan",
            "docker.io",
            "127.example.com:1",
            "127.0.0.2:5000",
        ] {
            assert!(!c.is_plain_http(r), "{r}");
        }
    }

    #[test]
    fn scope_key_is_order_independent() {
        let a = Scopes(vec![
            "repository:a:pull".into(),
            "repository:b:pull,push".into(),
        ]);
        let b = Scopes(vec![
            "repository:b:pull,push".into(),
            "repository:a:pull".into(),
        ]);
        assert_eq!(a.key(), b.key());
    }
}
