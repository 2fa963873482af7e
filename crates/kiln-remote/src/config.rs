use kiln_config::RemoteCache;

use crate::RemoteError;

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

/// Where a channel for `cfg` connects.
pub(crate) fn endpoint(cfg: &RemoteCache) -> Result<Endpoint, RemoteError> {
    let ep = cfg.endpoint().map_err(|reason| RemoteError::InvalidUrl {
        url: cfg.url.clone(),
        reason,
    })?;
    Ok(Endpoint {
        uri: format!(
            "{}://{}",
            if ep.tls { "https" } else { "http" },
            ep.authority
        ),
        tls: ep.tls,
        host: ep.host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_uris() {
        let e = endpoint(&RemoteCache::new("grpc://127.0.0.1:9092").unwrap()).unwrap();
        assert_eq!(e.uri, "http://127.0.0.1:9092");
        assert!(!e.tls);
        let e = endpoint(&RemoteCache::new("grpcs://cache.example.com:443/").unwrap()).unwrap();
        assert_eq!(e.uri, "https://cache.example.com:443");
        assert_eq!(e.host, "cache.example.com");
        let mut broken = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        broken.url = "grpc://nowhere".into();
        assert!(endpoint(&broken)
            .unwrap_err()
            .to_string()
            .contains("hint: write grpc://"));
    }
}
