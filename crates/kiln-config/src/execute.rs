//! `[execute]`: the remote execution engine that runs kiln's compiles.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache::CacheSettings;
use crate::{ConfigError, Env, RemoteCache};

/// The `[execute]` section of kiln.toml: run every `go build` on a Remote Execution API engine
/// (BuildGrid, Buildbarn, BuildBuddy, NativeLink) instead of this machine.
///
/// ```toml
/// [execute]
/// remote = "grpc://127.0.0.1:50051"  # the engine; grpcs:// for TLS
/// instance = "main"                  # instance name
/// headers = { "x-api-key" = "..." }  # extra gRPC metadata
/// token_env = "KILN_REMOTE_TOKEN"    # sent as `authorization: Bearer <value>`
/// timeout_secs = 10                  # per call (not per action)
/// action_timeout_secs = 1200         # how long one compile may run on a worker
/// fallback = "local"                 # or "fail": what to do when the engine is down
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExecuteSettings {
    /// `grpc://host:port` or `grpcs://host:port`; `KILN_REMOTE_EXECUTOR` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// REAPI instance name (default: empty, the server's default instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extra gRPC metadata sent with every call (API keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Name of the environment variable that holds a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Time limit of one call in seconds (default 10); an action's run is limited by
    /// `action_timeout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// How long one compile may run on a worker, in seconds (default 1200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_timeout_secs: Option<u64>,
    /// What to do when the engine cannot be reached or refuses: build here with one warning
    /// (`local`, the default) or fail the targets (`fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// What a build does when the remote engine is down or refuses work.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Build on this machine, with one warning.
    #[default]
    Local,
    /// Fail the targets the engine could not build.
    Fail,
}

/// A remote execution engine resolved for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteExecution {
    /// How to reach the engine (the same form as a remote cache).
    pub remote: RemoteCache,
    /// Time limit of one action on a worker.
    pub action_timeout: Duration,
    /// What to do when the engine is down.
    pub fallback: Fallback,
}

impl ExecuteSettings {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The fields `[execute]` shares with `[cache]`, which checks and resolves them.
    fn connection(&self) -> CacheSettings {
        CacheSettings {
            remote: self.remote.clone(),
            instance: self.instance.clone(),
            read_only: None,
            headers: self.headers.clone(),
            token_env: self.token_env.clone(),
            timeout_secs: self.timeout_secs,
        }
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.connection().validate_in(path, "execute")?;
        if self.action_timeout_secs == Some(0) {
            return Err(ConfigError::Setting {
                path: path.to_path_buf(),
                section: "execute".into(),
                message: "action_timeout_secs = 0 would stop every compile at once\nhint: leave it out for the default of 1200 seconds".into(),
            });
        }
        Ok(())
    }

    /// The engine this run uses: `KILN_REMOTE_EXECUTOR` (`off` turns a configured one off), else
    /// `remote`; `None` when neither names one.
    pub fn resolve(&self, env: &Env) -> Result<Option<RemoteExecution>, ConfigError> {
        let Some(remote) = self.connection().resolve_with(
            env,
            env.remote_executor.as_deref(),
            crate::env::KILN_REMOTE_EXECUTOR,
            "set it to grpc://HOST:PORT or grpcs://HOST:PORT, or to `off` to build on this machine",
            "execute",
        )?
        else {
            return Ok(None);
        };
        Ok(Some(RemoteExecution {
            remote,
            action_timeout: Duration::from_secs(self.action_timeout_secs.unwrap_or(1200)),
            fallback: self.fallback.unwrap_or_default(),
        }))
    }
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
        let owned: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Env::resolve(std::path::PathBuf::from("."), |n| {
            owned.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn execute_section_resolves_with_defaults_and_the_override() {
        let c =
            parse("[execute]\nremote = \"grpc://127.0.0.1:50051\"\ninstance = \"ci\"\n").unwrap();
        let r = c.execute.resolve(&env(&[])).unwrap().unwrap();
        assert_eq!(r.remote.url, "grpc://127.0.0.1:50051");
        assert_eq!(r.remote.instance, "ci");
        assert_eq!(r.fallback, Fallback::Local);
        assert_eq!(r.action_timeout, Duration::from_secs(1200));
        let over = c
            .execute
            .resolve(&env(&[("KILN_REMOTE_EXECUTOR", "grpc://10.0.0.1:1")]))
            .unwrap()
            .unwrap();
        assert_eq!(over.remote.url, "grpc://10.0.0.1:1");
        assert!(c
            .execute
            .resolve(&env(&[("KILN_REMOTE_EXECUTOR", "off")]))
            .unwrap()
            .is_none());
        assert!(parse("")
            .unwrap()
            .execute
            .resolve(&env(&[]))
            .unwrap()
            .is_none());
    }

    #[test]
    fn execute_section_rejects_bad_values_with_hints() {
        for (text, needle) in [
            ("[execute]\nremote = \"http://x:1\"\n", "gRPC"),
            ("[execute]\nfallback = \"maybe\"\n", "fallback"),
            ("[execute]\naction_timeout_secs = 0\n", "hint:"),
            ("[execute]\nread_only = true\n", "read_only"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let c = parse("[execute]\nremote = \"grpc://h:1\"\nfallback = \"fail\"\n").unwrap();
        assert_eq!(
            c.execute.resolve(&env(&[])).unwrap().unwrap().fallback,
            Fallback::Fail
        );
        let e = c
            .execute
            .resolve(&env(&[("KILN_REMOTE_EXECUTOR", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("KILN_REMOTE_EXECUTOR"), "{e}");
    }
}
