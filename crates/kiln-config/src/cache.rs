//! `[cache]`: the remote cache kiln shares between machines.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Env};

/// The `[cache]` section of kiln.toml.
///
/// ```toml
/// [cache]
/// remote = "grpc://127.0.0.1:9092"   # a REAPI v2 server; grpcs:// for TLS
/// instance = "main"                  # instance name (separate names keep untrusted builds apart)
/// read_only = true                   # read, never write (e.g. builds of pull requests)
/// headers = { "x-api-key" = "..." }  # extra gRPC metadata
/// token_env = "KILN_REMOTE_TOKEN"    # sent as `authorization: Bearer <value>`
/// timeout_secs = 10                  # per call
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// `grpc://host:port` or `grpcs://host:port`; `KILN_REMOTE_CACHE` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// REAPI instance name (default: empty, the server's default instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Never write to the remote (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Extra gRPC metadata sent with every call (API keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Name of the environment variable that holds a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Time limit of one remote call in seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl CacheSettings {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.validate_in(path, "cache")
    }

    /// Checks the settings of `section` (`[cache]`, or `[execute]`, which shares the fields).
    pub(crate) fn validate_in(&self, path: &Path, section: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Setting {
            path: path.to_path_buf(),
            section: section.into(),
            message,
        };
        if let Some(url) = &self.remote {
            parse_url(url).map_err(|why| {
                bad(format!(
                    "remote = {url:?}: {why}\nhint: write remote = \"grpc://HOST:PORT\" (or grpcs:// for TLS)"
                ))
            })?;
        }
        if let Some(i) = &self.instance {
            if i.starts_with('/')
                || i.ends_with('/')
                || i.contains("//")
                || i.contains(char::is_whitespace)
            {
                return Err(bad(format!(
                    "instance = {i:?} is not an instance name\nhint: write path segments without leading or trailing `/`, e.g. instance = \"ci/trusted\""
                )));
            }
            if i.split('/').any(|s| {
                matches!(
                    s,
                    "blobs"
                        | "uploads"
                        | "actions"
                        | "actionResults"
                        | "operations"
                        | "capabilities"
                        | "compressed-blobs"
                )
            }) {
                return Err(bad(format!(
                    "instance = {i:?} uses a word REAPI reserves in resource names\nhint: pick another name, e.g. instance = \"ci\""
                )));
            }
        }
        for (name, value) in &self.headers {
            let ok_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
                && !name.ends_with("-bin");
            if !ok_name {
                return Err(bad(format!(
                    "header {name:?} is not a gRPC metadata name\nhint: use lowercase letters, digits, `-`, `_` and `.`, e.g. \"x-api-key\""
                )));
            }
            if name == "authorization" && self.token_env.is_some() {
                return Err(bad(
                    "both headers.authorization and token_env set the authorization header\nhint: keep one of them".into(),
                ));
            }
            if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(bad(format!(
                    "the value of header {name:?} is not printable ASCII\nhint: gRPC metadata values are printable ASCII"
                )));
            }
        }
        if let Some(v) = &self.token_env {
            let ok = !v.is_empty()
                && !v.starts_with(|c: char| c.is_ascii_digit())
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(bad(format!(
                    "token_env = {v:?} is not an environment variable name\nhint: name the variable that holds the token, e.g. token_env = \"KILN_REMOTE_TOKEN\" (never the token itself)"
                )));
            }
        }
        if self.timeout_secs == Some(0) {
            return Err(bad(
                "timeout_secs = 0 would fail every call\nhint: leave it out for the default of 10 seconds".into(),
            ));
        }
        if self.remote.is_none()
            && (self.instance.is_some()
                || self.read_only.is_some()
                || !self.headers.is_empty()
                || self.token_env.is_some())
        {
            // Settings without a remote still apply when KILN_REMOTE_CACHE names one: not an error.
        }
        Ok(())
    }

    /// The remote cache this run uses, resolved with the environment: `KILN_REMOTE_CACHE` (`off`
    /// turns a configured remote off), the token from the variable `token_env` names. `None`
    /// when no remote is configured.
    pub fn resolve(&self, env: &Env) -> Result<Option<RemoteCache>, ConfigError> {
        self.resolve_with(
            env,
            env.remote_cache.as_deref(),
            crate::env::KILN_REMOTE_CACHE,
            "set it to grpc://HOST:PORT or grpcs://HOST:PORT, or to `off` to use no remote cache",
            "cache",
        )
    }

    /// [`Self::resolve`] with the variable that overrides `remote` (`over`, named `var`).
    pub(crate) fn resolve_with(
        &self,
        env: &Env,
        over: Option<&str>,
        var: &'static str,
        hint: &'static str,
        section: &str,
    ) -> Result<Option<RemoteCache>, ConfigError> {
        let url = match over {
            Some("off") => return Ok(None),
            Some(u) => {
                parse_url(u).map_err(|why| ConfigError::Env {
                    name: var,
                    value: u.to_string(),
                    why,
                    hint,
                })?;
                u.to_string()
            }
            None => match &self.remote {
                Some(u) => u.clone(),
                None => return Ok(None),
            },
        };
        let mut notes = Vec::new();
        let token = match &self.token_env {
            Some(var) => match env.process.get(var).filter(|v| !v.is_empty()) {
                Some(t) => Some(t.clone()),
                None => {
                    notes.push(format!(
                        "[{section}] token_env names {var}, which is not set: talking to the remote without a token"
                    ));
                    None
                }
            },
            None => None,
        };
        Ok(Some(RemoteCache {
            instance: self.instance.clone().unwrap_or_default(),
            read_only: self.read_only.unwrap_or(false),
            headers: self.headers.clone().into_iter().collect(),
            token,
            timeout: Duration::from_secs(self.timeout_secs.unwrap_or(10)),
            notes,
            ..RemoteCache::new(&url)?
        }))
    }
}

/// A remote cache resolved for one run: plain data, the one type `kiln-remote` takes. It
/// serializes (token included) so `kiln build` can hand it to the `kiln gocacheprog` it starts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCache {
    /// `grpc://host:port` or `grpcs://host:port`, without a trailing `/`.
    pub url: String,
    /// REAPI instance name (may be empty: the server's default). Separate instance names keep
    /// entries of untrusted builds away from trusted ones.
    pub instance: String,
    /// Read the remote, never write it (builds of untrusted changes).
    pub read_only: bool,
    /// Extra gRPC metadata sent with every call (API keys), lowercase names.
    pub headers: Vec<(String, String)>,
    /// Bearer token, read from the variable `token_env` names.
    pub token: Option<String>,
    /// Time limit of one unary call, and of the gap between two messages of a stream.
    pub timeout: Duration,
    /// Time limit of connecting.
    pub connect_timeout: Duration,
    /// Further attempts of a call that failed for a passing reason (unavailable, timed out).
    pub retries: u32,
    /// Consecutive failed calls after which the remote is off for the rest of the run.
    pub breaker_after: u32,
    /// Things the user should hear about (a token variable that is not set).
    #[serde(default, skip_serializing)]
    pub notes: Vec<String>,
}

impl RemoteCache {
    /// Defaults for `url`: default instance, read-write, 10 s per call, 3 s to connect, 2
    /// retries, off after 3 consecutive failures. Fails when the URL is not `grpc://` or
    /// `grpcs://` with a host and port.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        parse_url(url).map_err(|why| ConfigError::RemoteUrl {
            url: url.to_string(),
            why,
        })?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            instance: String::new(),
            read_only: false,
            headers: Vec::new(),
            token: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            retries: 2,
            breaker_after: 3,
            notes: Vec::new(),
        })
    }

    /// How the remote is named in messages: the URL, plus the instance name if any.
    pub fn display_name(&self) -> String {
        if self.instance.is_empty() {
            self.url.clone()
        } else {
            format!("{} (instance {})", self.url, self.instance)
        }
    }

    /// Where to connect: the URL taken apart.
    pub fn endpoint(&self) -> Result<RemoteEndpoint, String> {
        parse_url(&self.url)
    }
}

impl std::fmt::Debug for RemoteCache {
    // Header values and the token are secrets: never in logs or error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCache")
            .field("url", &self.url)
            .field("instance", &self.instance)
            .field("read_only", &self.read_only)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("breaker_after", &self.breaker_after)
            .finish()
    }
}

/// A remote URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEndpoint {
    /// Whether the URL asks for TLS (`grpcs://`).
    pub tls: bool,
    /// The host, without the brackets of an IPv6 literal (for TLS name checks).
    pub host: String,
    /// `host:port` as written (brackets kept).
    pub authority: String,
}

/// `grpc://HOST:PORT` or `grpcs://HOST:PORT` (one trailing `/` allowed), nothing else.
fn parse_url(url: &str) -> Result<RemoteEndpoint, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("grpc://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("grpcs://") {
        (true, r)
    } else if url.starts_with("http://") || url.starts_with("https://") {
        return Err(
            "kiln talks to remote caches over gRPC (REAPI), not HTTP (bazel-remote's HTTP cache protocol is another API)"
                .into(),
        );
    } else {
        return Err("unknown scheme".into());
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err("expected HOST:PORT after the scheme, nothing else".into());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (h, p),
        _ => return Err("missing :PORT".into()),
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err("the port is not a number from 1 to 65535".into()),
    }
    Ok(RemoteEndpoint {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        authority: rest.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::ffi::OsString;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("kiln.toml"))
    }

    fn env(vars: &[(&str, &str)]) -> Env {
        let owned: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = owned.clone();
        Env::resolve(PathBuf::from("/"), move |n| {
            lookup
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| OsString::from(v))
        })
        .with_process(owned)
    }
    use std::path::PathBuf;

    #[test]
    fn a_full_section_resolves() {
        let c = parse(
            r#"
[cache]
remote = "grpcs://cache.example.com:443"
instance = "ci/trusted"
read_only = true
headers = { "x-api-key" = "k1" }
token_env = "MY_TOKEN"
timeout_secs = 3
"#,
        )
        .unwrap();
        let r = c
            .cache
            .resolve(&env(&[("MY_TOKEN", "t0k")]))
            .unwrap()
            .unwrap();
        assert_eq!(r.url, "grpcs://cache.example.com:443");
        assert_eq!(r.instance, "ci/trusted");
        assert!(r.read_only);
        assert_eq!(r.headers, vec![("x-api-key".to_string(), "k1".to_string())]);
        assert_eq!(r.token.as_deref(), Some("t0k"));
        assert_eq!(r.timeout, Duration::from_secs(3));
        assert!(r.notes.is_empty());
        assert!(!format!("{r:?}").contains("t0k"));
        assert!(!format!("{r:?}").contains("k1"));
    }

    #[test]
    fn the_environment_overrides_or_turns_off_the_remote() {
        let c = parse("[cache]\nremote = \"grpc://127.0.0.1:1\"\n").unwrap();
        let r = c
            .cache
            .resolve(&env(&[("KILN_REMOTE_CACHE", "grpc://127.0.0.1:2")]))
            .unwrap()
            .unwrap();
        assert_eq!(r.url, "grpc://127.0.0.1:2");
        assert_eq!(
            c.cache
                .resolve(&env(&[("KILN_REMOTE_CACHE", "off")]))
                .unwrap(),
            None
        );
        assert_eq!(Config::default().cache.resolve(&env(&[])).unwrap(), None);
        let err = c
            .cache
            .resolve(&env(&[("KILN_REMOTE_CACHE", "http://x:1")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KILN_REMOTE_CACHE") && err.contains("hint:"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_token_variable_is_a_note_not_an_error() {
        let c = parse("[cache]\nremote = \"grpc://127.0.0.1:1\"\ntoken_env = \"NOPE\"\n").unwrap();
        let r = c.cache.resolve(&env(&[])).unwrap().unwrap();
        assert_eq!(r.token, None);
        assert!(r.notes[0].contains("NOPE"), "{:?}", r.notes);
    }

    #[test]
    fn bad_settings_are_errors_with_hints() {
        for (text, needle) in [
            ("remote = \"http://127.0.0.1:8080\"", "not HTTP"),
            ("remote = \"grpc://host\"", "missing :PORT"),
            ("remote = \"grpc://127.0.0.1:1\"\ninstance = \"/x\"", "instance"),
            ("remote = \"grpc://127.0.0.1:1\"\ninstance = \"a/blobs\"", "reserves"),
            ("remote = \"grpc://127.0.0.1:1\"\nheaders = { \"X Key\" = \"v\" }", "metadata name"),
            ("remote = \"grpc://127.0.0.1:1\"\nheaders = { \"x\" = \"a\\nb\" }", "printable"),
            ("remote = \"grpc://127.0.0.1:1\"\ntoken_env = \"$TOKEN\"", "environment variable name"),
            ("remote = \"grpc://127.0.0.1:1\"\ntoken_env = \"T\"\nheaders = { \"authorization\" = \"x\" }", "keep one"),
            ("remote = \"grpc://127.0.0.1:1\"\ntimeout_secs = 0", "timeout_secs"),
        ] {
            let err = parse(&format!("[cache]\n{text}\n")).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("hint:"), "{text}: {err}");
            assert!(err.contains("[cache]"), "{text}: {err}");
        }
        let err = parse("[cache]\nremote_url = \"grpc://x:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("remote_url"), "{err}");
    }

    #[test]
    fn urls_are_taken_apart_or_refused_with_a_hint() {
        let e = RemoteCache::new("grpc://127.0.0.1:9092").unwrap();
        assert_eq!(
            e.endpoint().unwrap(),
            RemoteEndpoint {
                tls: false,
                host: "127.0.0.1".into(),
                authority: "127.0.0.1:9092".into()
            }
        );
        let e = RemoteCache::new("grpcs://cache.example.com:443/").unwrap();
        assert_eq!(e.url, "grpcs://cache.example.com:443");
        let ep = e.endpoint().unwrap();
        assert!(ep.tls);
        assert_eq!(ep.host, "cache.example.com");
        let e = RemoteCache::new("grpc://[::1]:9092").unwrap();
        assert_eq!(e.endpoint().unwrap().host, "::1");
        assert_eq!(e.endpoint().unwrap().authority, "[::1]:9092");
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
            let err = RemoteCache::new(bad).unwrap_err().to_string();
            assert!(err.contains("hint: write grpc://"), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        c.token = Some("s3cret-token".into());
        c.headers = vec![("x-api-key".into(), "s3cret-key".into())];
        let text = format!("{c:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("x-api-key"), "{text}");
    }
}
