//! Layer 3 of the client: registry authentication. Where credentials come from (explicit,
//! docker's `config.json`, credential helpers), how `WWW-Authenticate` challenges are answered
//! (Basic, or a Bearer token from the token server), and the caches that let concurrent requests
//! share one token per scope.
//!
//! Below it: `transport` (the HTTP client that asks the token server) and `retry` (how a failed
//! token request is classified). Above it: `client`, which sends every request with what
//! [`Authenticator::cached`] says and calls [`Authenticator::reauthenticate`] on a 401.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode, Url};

use crate::error::{RegistryError, Result};
use crate::reference::{Repository, DOCKER_HUB};
use crate::retry::classify;
use crate::transport::{json_body, lock, status_error, Transport};

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// User name and password (or personal access token), sent as Basic auth or to the token server.
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json), exchanged at the token server.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    // Never print secrets, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Self::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Self::IdentityToken(_) => None,
        }
    }
}

/// The keys under which docker stores credentials for `registry`, most specific first.
fn config_keys(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ];
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ]
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigKeys {
    #[serde(default)]
    auths: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

/// Looks up credentials for `registry` in `<dir>/config.json` (`auths`, `credHelpers`, `credsStore`).
///
/// A missing file or a registry without an entry is `Ok(None)` (anonymous access).
pub fn credential_from_docker_config(
    dir: &Path,
    registry: &str,
) -> Result<Option<Credential>, RegistryError> {
    let path = dir.join("config.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RegistryError::io(path, e)),
    };
    let cred_err = |detail: String| RegistryError::Credentials {
        registry: registry.to_string(),
        source_desc: path.display().to_string(),
        detail,
    };
    let keys: ConfigKeys =
        serde_json::from_slice(&bytes).map_err(|e| cred_err(format!("invalid JSON: {e}")))?;
    // docker_credential looks up one exact key; find which spelling this config uses first, so a
    // credsStore helper is asked once with the canonical name instead of once per spelling.
    let candidates = config_keys(registry);
    let key = candidates
        .iter()
        .find(|k| keys.cred_helpers.contains_key(k.as_str()) || keys.auths.contains_key(k.as_str()))
        .or_else(|| keys.creds_store.as_ref().map(|_| &candidates[0]));
    let Some(key) = key else { return Ok(None) };
    match docker_credential::get_credential_from_reader(&bytes[..], key) {
        Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credential::Basic { username, password }))
        }
        Ok(docker_credential::DockerCredential::IdentityToken(t)) => {
            Ok(Some(Credential::IdentityToken(t)))
        }
        Err(docker_credential::CredentialRetrievalError::NoCredentialConfigured) => Ok(None),
        // Helpers answer "credentials not found" with a non-zero exit: that is anonymous, not an error.
        Err(docker_credential::CredentialRetrievalError::HelperFailure { stdout, .. })
            if stdout.to_ascii_lowercase().contains("not found") =>
        {
            Ok(None)
        }
        Err(e) => Err(cred_err(e.to_string())),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// Splits `k="v, with comma",k2=v2` respecting quotes.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// The token server's answer (`token` per Docker, `access_token` per OAuth2).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
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

#[derive(Default)]
struct RegistryAuth {
    basic: Option<String>,
    /// Bearer tokens by scope key; a token is only valid for the scopes it was issued for.
    tokens: HashMap<String, String>,
}

/// Credentials and the `Authorization` values earned with them, per registry; shared by every
/// request of a client.
pub(crate) struct Authenticator {
    /// Explicit credentials per registry host; they override the docker config.
    explicit: BTreeMap<String, Credential>,
    /// Docker config directory to read, `None` to read none.
    docker_config_dir: Option<PathBuf>,
    /// Credentials looked up in the docker config, absence included.
    found: Mutex<HashMap<String, Option<Credential>>>,
    cache: Mutex<HashMap<String, RegistryAuth>>,
    /// Held while answering a 401, so concurrent requests fetch one token, not one each.
    lock: tokio::sync::Mutex<()>,
}

impl Authenticator {
    /// `docker_config_dir` is the directory of docker's `config.json`, `None` to read none.
    pub(crate) fn new(
        explicit: BTreeMap<String, Credential>,
        docker_config_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            explicit,
            docker_config_dir,
            found: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The credential for `registry`: explicit first, then the docker config (read once per
    /// registry, the answer kept, absence included).
    fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.explicit.get(registry) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = lock(&self.found).get(registry) {
            return Ok(c.clone());
        }
        let found = match &self.docker_config_dir {
            Some(dir) => credential_from_docker_config(dir, registry)?,
            None => None,
        };
        lock(&self.found).insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// What to send in `Authorization` for `scopes` now: a token for exactly these scopes, else
    /// Basic credentials once a registry asked for them.
    pub(crate) fn cached(&self, registry: &str, scopes: &Scopes) -> Option<String> {
        let auth = lock(&self.cache);
        let a = auth.get(registry)?;
        a.tokens
            .get(&scopes.key())
            .cloned()
            .or_else(|| a.basic.clone())
    }

    /// Answers a 401 once for all concurrent requests: whoever gets the lock first fetches the
    /// token; the others see that the cached value changed since they sent theirs and reuse it.
    pub(crate) async fn reauthenticate(
        &self,
        transport: &Transport,
        repo: &Repository,
        scopes: &Scopes,
        resp: &Response,
        sent: Option<String>,
    ) -> Result<()> {
        let _guard = self.lock.lock().await;
        let now = self.cached(&repo.registry, scopes);
        if now.is_some() && now != sent {
            return Ok(());
        }
        self.forget(&repo.registry, scopes);
        self.authenticate(transport, repo, scopes, resp).await
    }

    /// Answers a 401 challenge: caches Basic credentials or fetches a Bearer token for `scopes`.
    async fn authenticate(
        &self,
        transport: &Transport,
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
        let challenge = parse_challenge(header)
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
                lock(&self.cache)
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
                    .fetch_token(
                        transport,
                        repo,
                        &realm,
                        service.as_deref(),
                        &all,
                        cred.as_ref(),
                    )
                    .await?;
                lock(&self.cache)
                    .entry(repo.registry.clone())
                    .or_default()
                    .tokens
                    .insert(scopes.key(), format!("Bearer {token}"));
            }
        }
        Ok(())
    }

    /// Asks the token server `realm` for a token for `scopes`, with the refresh token or Basic
    /// credentials when there are some.
    async fn fetch_token(
        &self,
        transport: &Transport,
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
                transport
                    .http(&url)?
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
                let rb = transport.http(&url)?.get(url.clone());
                match other.and_then(Credential::basic_header) {
                    Some(h) => rb.header(AUTHORIZATION, h),
                    None => rb,
                }
            }
        };
        let resp = rb
            .send()
            .await
            .map_err(|e| classify(&e, &repo.registry, "GET", url.as_str()).error)?;
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

    /// Drops a stale token so the next 401 fetches a fresh one instead of looping on an expired one.
    fn forget(&self, registry: &str, scopes: &Scopes) {
        if let Some(a) = lock(&self.cache).get_mut(registry) {
            a.tokens.remove(&scopes.key());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge_with_commas_in_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn reads_auths_and_ignores_missing_entries() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            credential_from_docker_config(dir.path(), "r:1").unwrap(),
            None
        );
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            dir.path().join("config.json"),
            format!(r#"{{"auths":{{"https://127.0.0.1:5000":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        assert_eq!(
            credential_from_docker_config(dir.path(), "127.0.0.1:5000").unwrap(),
            Some(Credential::basic("alice", "s3cret"))
        );
        assert!(credential_from_docker_config(dir.path(), "docker.io")
            .unwrap()
            .is_some());
        assert_eq!(
            credential_from_docker_config(dir.path(), "other:1").unwrap(),
            None
        );
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = credential_from_docker_config(dir.path(), "x").unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credHelpers":{"reg.example:5000":"kiln-no-such-helper"}}"#,
        )
        .unwrap();
        let err = credential_from_docker_config(dir.path(), "reg.example:5000").unwrap_err();
        assert!(matches!(err, RegistryError::Credentials { .. }), "{err}");
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
