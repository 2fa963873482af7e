//! Layer 2 of the client: retries. Which failures are worth another try (5xx but 501, 429,
//! dropped connections; not refused connections, TLS errors or other statuses), how long to wait
//! (exponential backoff with jitter, `Retry-After`), and telling the
//! [`Reporter`](crate::Reporter) before each wait.
//!
//! Below it: `transport` only. Above it: `auth`, `client` and the protocol modules, which decide
//! *what* to try again (one request, an upload session) and count the attempts.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};

use crate::error::RegistryError;
use crate::report::Reporter;
use crate::transport::{error_chain, has_source, source_io_kinds, status_error};

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

/// A busy or failing server (5xx but 501, 429) becomes a retryable [`Failure`] that carries its
/// `Retry-After`; every other answer is the caller's to interpret.
pub(crate) async fn check_status(
    resp: Response,
    method: &str,
    url: &str,
) -> std::result::Result<Response, Failure> {
    let status = resp.status();
    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(Failure {
        error: status_error(resp, method, url).await,
        retryable: status != StatusCode::NOT_IMPLEMENTED,
        retry_after,
    })
}

/// Maps a transport error to a user-facing error and decides whether a retry can help: a
/// dropped connection or a timeout can; a refused connection or a TLS failure cannot.
pub(crate) fn classify(e: &reqwest::Error, registry: &str, method: &str, url: &str) -> Failure {
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
                registry: registry.to_string(),
                url: url.to_string(),
                detail,
            },
            false,
        )
    } else if refused || (e.is_connect() && !e.is_timeout()) {
        (
            RegistryError::Unreachable {
                registry: registry.to_string(),
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

/// The wait before retry number `attempt + 1`: `Retry-After` when the server sent one (capped),
/// else exponential in `attempt` with jitter in [exp/2, exp).
pub(crate) fn delay(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(1u32 << attempt.min(16))
        .min(policy.max_delay);
    // Jitter: clients that failed together do not retry together.
    let jitter = random_u64() % (exp.as_millis().max(2) as u64 / 2);
    retry_after
        .map(|d| d.min(policy.max_delay))
        .unwrap_or(exp / 2 + Duration::from_millis(jitter))
}

/// Sleeps before retry number `attempt + 1`, telling the reporter why.
pub(crate) async fn backoff(
    policy: &RetryPolicy,
    reporter: &dyn Reporter,
    what: &str,
    attempt: u32,
    retry_after: Option<Duration>,
    error: &RegistryError,
) {
    let delay = delay(policy, attempt, retry_after);
    reporter.retrying(what, attempt + 1, delay, error);
    tokio::time::sleep(delay).await;
}

/// A random number for jitter and temporary file names (no RNG dependency needed for either).
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
    fn delay_grows_stays_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for attempt in 0..3 {
            let exp = Duration::from_millis(100 << attempt);
            let d = delay(&p, attempt, None);
            assert!(d >= exp / 2 && d < exp, "attempt {attempt}: {d:?}");
        }
        assert!(delay(&p, 30, None) < Duration::from_secs(1));
        assert_eq!(
            delay(&p, 0, Some(Duration::from_secs(3))),
            Duration::from_secs(1)
        );
        assert_eq!(
            delay(&p, 0, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
    }
}
