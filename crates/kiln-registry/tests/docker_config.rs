//! Credentials from `$DOCKER_CONFIG/config.json` against an htpasswd-protected registry. Alone in
//! its test binary because it sets a process environment variable.

mod common;

use base64::Engine as _;
use common::*;
use kiln_registry::{Client, ClientConfig, RegistryError};

#[test]
fn credentials_from_docker_config_env() {
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
    // SAFETY of intent: this binary has a single test, so no other thread reads the environment.
    std::env::set_var("DOCKER_CONFIG", cfg.path());
    let client = Client::new(ClientConfig {
        use_docker_config: true,
        docker_config_dir: None,
        ..test_config()
    })
    .unwrap();
    let report = rt
        .block_on(client.push_image(&reg.repo("cfg/app"), &single_upload(&img, "v1")))
        .unwrap();
    assert_eq!(report.uploaded(), 2);

    // An empty config means anonymous, which this registry refuses with a helpful 401.
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("DOCKER_CONFIG", empty.path());
    let client = Client::new(ClientConfig {
        use_docker_config: true,
        ..test_config()
    })
    .unwrap();
    let err = rt
        .block_on(client.blob_exists(&reg.repo("cfg/app"), &img.layers[0]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}
