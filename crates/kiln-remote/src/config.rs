use std::time::Duration;

use crate::RemoteError;

/// Where the remote cache is and how to talk to it, resolved by the caller (kiln.toml `[cache]`,
/// `KILN_REMOTE_CACHE`, the token read from the variable `token_env` names): plain data.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// `grpc://host:port` (plain HTTP/2) or `grpcs://host:port` (TLS).
    pub url: String,
    /// REAPI instance name (empty: the server's default instance). Separate instance names keep
    /// entries of untrusted builds away from trusted ones.
    pub instance: String,
    /// Read the remote, never write it (builds of untrusted changes).
    pub read_only: bool,
    /// Extra gRPC metadata sent with every call (API keys), lowercase names.
    pub headers: Vec<(String, String)>,
    /// Sent as `authorization: Bearer <token>` with every call.
    pub token: Option<String>,
    /// Time limit of one unary call, and of the gap between two messages of a stream.
    pub timeout: Duration,
    /// Time limit of connecting.
    pub connect_timeout: Duration,
    /// Further attempts of a call that failed for a passing reason (unavailable, timed out).
    pub retries: u32,
    /// Consecutive failed calls after which the remote is off for the rest of the run.
    pub breaker_after: u32,
}

impl std::fmt::Debug for RemoteConfig {
    // The token and header values are secrets: never in logs or error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("instance", &self.instance)
            .field("read_only", &self.read_only)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("breaker_after", &self.breaker_after)
            .finish()
    }
}

/// The parts of a remote URL a channel needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `http://host:port` or `https://host:port`.
    pub uri: String,
    /// Whether TLS is on.
    pub tls: bool,
    /// The host name, for TLS server name checks.
    pub host: String,
}

impl RemoteConfig {
    /// Defaults for `url`: default instance, read-write, 10 s per call, 2 retries, off after 3
    /// consecutive failures. Fails when the URL is not `grpc://` or `grpcs://` with a host and port.
    pub fn new(url: &str) -> Result<Self, RemoteError> {
        let cfg = Self {
            url: url.trim_end_matches('/').to_string(),
            instance: String::new(),
            read_only: false,
            headers: Vec::new(),
            token: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            retries: 2,
            breaker_after: 3,
        };
        cfg.endpoint()?;
        Ok(cfg)
    }

    /// How the store names itself in messages: the URL, plus the instance name if any.
    pub fn display_name(&self) -> String {
        if self.instance.is_empty() {
            self.url.clone()
        } else {
            format!("{} (instance {})", self.url, self.instance)
        }
    }

    pub(crate) fn endpoint(&self) -> Result<Endpoint, RemoteError> {
        let bad = |reason: &str| RemoteError::InvalidUrl {
            url: self.url.clone(),
            reason: reason.to_string(),
        };
        let (tls, rest) = if let Some(r) = self.url.strip_prefix("grpc://") {
            (false, r)
        } else if let Some(r) = self.url.strip_prefix("grpcs://") {
            (true, r)
        } else if self.url.starts_with("http://") || self.url.starts_with("https://") {
            return Err(bad(
                "kiln speaks REAPI over gRPC only (bazel-remote's HTTP cache protocol is another API)",
            ));
        } else {
            return Err(bad("unknown scheme"));
        };
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad("expected HOST:PORT after the scheme, nothing else"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (h, p),
            _ => return Err(bad("missing :PORT")),
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
        Ok(Endpoint {
            uri: format!("{}://{rest}", if tls { "https" } else { "http" }),
            tls,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = RemoteConfig::new("grpc://127.0.0.1:9092").unwrap();
        assert_eq!(e.endpoint().unwrap().uri, "http://127.0.0.1:9092");
        let e = RemoteConfig::new("grpcs://cache.example.com:443/").unwrap();
        let ep = e.endpoint().unwrap();
        assert_eq!(ep.uri, "https://cache.example.com:443");
        assert!(ep.tls);
        assert_eq!(ep.host, "cache.example.com");
        let e = RemoteConfig::new("grpc://[::1]:9092").unwrap();
        assert_eq!(e.endpoint().unwrap().host, "::1");
        for bad in [
            "http://127.0.0.1:8080",
            "127.0.0.1:9092",
            "grpc://",
            "grpc://host",
            "grpc://host:0",
            "grpc://host:99999",
            "grpc://host:1/path",
            "grpc://user@host:1",
        ] {
            let err = RemoteConfig::new(bad).unwrap_err().to_string();
            assert!(err.contains("hint: write grpc://"), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = RemoteConfig::new("grpc://127.0.0.1:1").unwrap();
        c.token = Some("s3cret-token".into());
        c.headers = vec![("x-api-key".into(), "s3cret-key".into())];
        let text = format!("{c:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("x-api-key"), "{text}");
    }
}
