//! Credentials from a docker `config.json` against an htpasswd-protected registry. The client reads
//! only the directory it is given: the CLI resolves `$DOCKER_CONFIG` / `~/.docker` once.

mod common;

use base64::Engine as _;
use common::*;
use kiln_registry::{Client, ClientConfig, RegistryError};

#[test]
fn credentials_from_docker_config_dir() {
    let reg = Registry::start_with(Some(("cfguser", "cfgpass")));
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"docker config");
    let rt = rt();
    let cfg = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("cfguser:cfgpass");
    std::fs::write(
        cfg.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let client = Client::new(ClientConfig {
        use_docker_config: true,
        docker_config_dir: Some(cfg.path().to_path_buf()),
        ..test_config()
    })
    .unwrap();
    let report = rt
        .block_on(client.push_image(&reg.repo("cfg/app"), &single_upload(&img, "v1")))
        .unwrap();
    assert_eq!(report.uploaded(), 2);

    // An empty config means anonymous, which this registry refuses with a helpful 401.
    let empty = tempfile::tempdir().unwrap();
    let client = Client::new(ClientConfig {
        use_docker_config: true,
        docker_config_dir: Some(empty.path().to_path_buf()),
        ..test_config()
    })
    .unwrap();
    let err = rt
        .block_on(client.blob_exists(&reg.repo("cfg/app"), &img.layers[0]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}
