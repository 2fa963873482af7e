//! Layer 1 of the client, the bottom: HTTP transport.
//!
//! The client's layers, bottom to top: **transport** (this module: the reqwest clients, TLS,
//! which registries are plain HTTP, the user agent, URLs, reading answers) -> `retry` (which
//! failures are worth another try, backoff, telling the [`Reporter`](crate::Reporter)) -> `auth`
//! (credentials, challenges, tokens) -> `client` (one request through all three) -> the protocol
//! modules (`push`, `pull`, `referrers`, `discover`). A module imports only from the layers below
//! it; this one from none of them.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::{Response, Url};

use crate::error::{RegistryError, Result};
use crate::reference::Repository;

/// The HTTP clients of one registry [`Client`](crate::Client): a plain one and a TLS one, each
/// keeping its connections alive across every request of the client.
pub(crate) struct Transport {
    /// For plain-HTTP registries (loopback, configured insecure): built without TLS roots,
    /// because loading the system's certificates opens every file in /etc/ssl/certs (hundreds)
    /// and a push to a local registry never needs them.
    plain: reqwest::Client,
    /// For HTTPS: built with the platform's roots on the first https request.
    tls: OnceLock<std::result::Result<reqwest::Client, String>>,
    user_agent: String,
    insecure_registries: Vec<String>,
}

/// Settings shared by the plain and the TLS client.
fn base_builder(user_agent: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(user_agent.to_string())
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(15))
        .tcp_nodelay(true)
}

impl Transport {
    /// Builds the plain client now (the TLS one waits for the first https request). Installs the
    /// `ring` rustls provider as process default if none is installed.
    pub(crate) fn new(user_agent: &str, insecure_registries: &[String]) -> Result<Self> {
        // reqwest is built without its aws-lc-rs provider; it needs a process-wide one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another thread installing one is fine: some provider is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let plain = base_builder(user_agent)
            .tls_certs_only(std::iter::empty())
            .build()
            .map_err(|e| RegistryError::Client(error_chain(&e)))?;
        Ok(Self {
            plain,
            tls: OnceLock::new(),
            user_agent: user_agent.to_string(),
            insecure_registries: insecure_registries.to_vec(),
        })
    }

    /// The HTTP client for `url`: the plain one for `http://`, the TLS one (built now if this is
    /// the first https request) otherwise.
    pub(crate) fn http(&self, url: &Url) -> Result<&reqwest::Client> {
        if url.scheme() == "http" {
            return Ok(&self.plain);
        }
        self.tls
            .get_or_init(|| {
                base_builder(&self.user_agent)
                    .build()
                    .map_err(|e| error_chain(&e))
            })
            .as_ref()
            .map_err(|e| RegistryError::Client(e.clone()))
    }

    /// Whether `registry` is spoken to over plain HTTP: `127.0.0.1`, `localhost`, `[::1]` (any port)
    /// and the registries configured as insecure.
    pub(crate) fn is_plain_http(&self, registry: &str) -> bool {
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
            || self.insecure_registries.iter().any(|r| r == registry)
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

/// An error and its sources in one line, each source once.
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

/// The kinds of every `io::Error` in an error's source chain.
pub(crate) fn source_io_kinds(e: &(dyn std::error::Error + 'static)) -> Vec<std::io::ErrorKind> {
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

/// Whether an error of type `T` is in the source chain (also inside an `io::Error`).
pub(crate) fn has_source<T: std::error::Error + 'static>(
    e: &(dyn std::error::Error + 'static),
) -> bool {
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

/// Locks a map of the client's caches.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these maps cannot leave them inconsistent (single inserts), so recover.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_plain_http() {
        let t = Transport::new("kiln-test", &["reg.lan:5000".to_string()]).unwrap();
        for r in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "reg.lan:5000",
        ] {
            assert!(t.is_plain_http(r), "{r}");
        }
        for r in [
            "ghcr.io",
            "reg.lan",
            "docker.io",
            "127.example.com:1",
            "127.0.0.2:5000",
        ] {
            assert!(!t.is_plain_http(r), "{r}");
        }
    }
}
