//! Registry authentication: where credentials come from and how `WWW-Authenticate` challenges are answered.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;

use crate::error::RegistryError;
use crate::reference::DOCKER_HUB;

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
}
