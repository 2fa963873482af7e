//! Debian's `docker-registry` (distribution 2.8) on a loopback address with its own storage.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How to start a [`DockerRegistry`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The loopback address to listen on (127.0.0.2 is not plain-HTTP by default for clients that
    /// treat only 127.0.0.1/localhost as insecure: TLS error tests use it).
    pub ip: String,
    /// `Some((user, password))`: require Basic auth (htpasswd, bcrypt).
    pub htpasswd: Option<(String, String)>,
    /// Allow `DELETE` of manifests and blobs.
    pub delete: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            ip: "127.0.0.1".into(),
            htpasswd: None,
            delete: true,
        }
    }
}

/// A running registry with its own storage; killed on drop.
pub struct DockerRegistry {
    child: Child,
    /// The address it listens on.
    pub ip: String,
    /// The port it listens on.
    pub port: u16,
    /// Its configuration and storage (`storage/` below it).
    pub dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// A registry on 127.0.0.1, no auth, deletes allowed.
    pub fn start() -> Self {
        Self::start_with(&RegistryOptions::default())
    }

    /// A registry as `options` say; fails with an install hint when docker-registry is missing.
    pub fn start_with(options: &RegistryOptions) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install -y docker-registry"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("mkdir storage");
        let mut auth = String::new();
        if let Some((user, pass)) = &options.htpasswd {
            let hash = bcrypt::hash(pass, 5).expect("bcrypt");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n")).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                file.display()
            );
        }
        let delete = if options.delete {
            "  delete:\n    enabled: true\n"
        } else {
            ""
        };
        let ip = options.ip.as_str();
        // Another test may take the port between the probe and the registry's bind: retry a few.
        for _ in 0..5 {
            let port = TcpListener::bind((ip, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("bind a loopback port");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n{delete}http:\n  addr: {ip}:{port}\n{auth}",
                    storage.display()
                ),
            )
            .expect("write config");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start docker-registry: apt-get install -y docker-registry");
            if wait_ready(&mut child, ip, port) {
                return Self {
                    child,
                    ip: ip.to_string(),
                    port,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not come up on {ip}");
    }

    /// `IP:PORT`.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the registry answers `/v2/` (200, or 401 when it wants credentials) before it exits or
/// 15 s pass.
fn wait_ready(child: &mut Child, ip: &str, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if http_get_at(ip, port, "/v2/", &[])
            .is_some_and(|(status, _)| status == 200 || status == 401)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A minimal HTTP/1.0 GET to 127.0.0.1: `(status, body)`.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_at("127.0.0.1", port, path, &[])
}

/// Media types a registry may answer a manifest GET with; distribution refuses an OCI index to a
/// client that does not accept it.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `GET /v2/<name>/manifests/<reference>` with an `Accept` for every manifest kind:
/// `(status, body)`.
pub fn get_manifest(port: u16, name: &str, reference: &str) -> Option<(u16, String)> {
    http_get_at(
        "127.0.0.1",
        port,
        &format!("/v2/{name}/manifests/{reference}"),
        &[("Accept", MANIFEST_ACCEPT)],
    )
}

fn http_get_at(ip: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect((ip, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n{extra}\r\n").as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_answers_and_stops_on_drop() {
        let r = DockerRegistry::start();
        assert_eq!(http_get(r.port, "/v2/").map(|(s, _)| s), Some(200));
        let port = r.port;
        drop(r);
        assert_eq!(http_get(port, "/v2/"), None, "still answering after drop");
    }

    #[test]
    fn with_credentials_it_asks_for_them() {
        let r = DockerRegistry::start_with(&RegistryOptions {
            htpasswd: Some(("u".into(), "p".into())),
            ..RegistryOptions::default()
        });
        assert_eq!(http_get(r.port, "/v2/").map(|(s, _)| s), Some(401));
    }
}
