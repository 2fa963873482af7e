//! Test harness: a real `docker-registry` (distribution 2.8) on 127.0.0.1, hand-made images, skopeo.
#![allow(dead_code, missing_docs)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[allow(unused_imports)]
pub use kiln_test_support::free_port;
use kiln_test_support::{DockerRegistry, RegistryOptions};

use kiln_registry::{
    media, BlobUpload, Client, ClientConfig, ImageUpload, ManifestUpload, Repository, RetryPolicy,
};
use kiln_types::Digest;

/// The shared docker-registry harness, with deletes allowed and kiln-registry's handles on it.
pub struct Registry(DockerRegistry);

impl std::ops::Deref for Registry {
    type Target = DockerRegistry;
    fn deref(&self) -> &DockerRegistry {
        &self.0
    }
}

impl Registry {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// With `Some((user, password))` the registry requires Basic auth (htpasswd, bcrypt).
    pub fn start_with(htpasswd: Option<(&str, &str)>) -> Self {
        Self::start_on("127.0.0.1", htpasswd)
    }

    /// On a given loopback address (127.0.0.2 is not plain-HTTP by default: TLS error tests).
    pub fn start_on(ip: &str, htpasswd: Option<(&str, &str)>) -> Self {
        Self(DockerRegistry::start_with(&RegistryOptions {
            ip: ip.into(),
            htpasswd: htpasswd.map(|(u, p)| (u.into(), p.into())),
            delete: true,
        }))
    }

    pub fn repo(&self, name: &str) -> Repository {
        Repository::new(self.host(), name).unwrap()
    }
}

/// A client that ignores the developer's own docker config and retries fast.
pub fn test_config() -> ClientConfig {
    ClientConfig {
        use_docker_config: false,
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        },
        ..ClientConfig::default()
    }
}

pub fn client() -> Client {
    Client::new(test_config()).unwrap()
}

/// A gzip'd tar with one file, deterministic.
pub fn layer_tar_gz(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, content).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// One hand-made single-platform image: blob files on disk, manifest bytes.
pub struct TestImage {
    pub blobs: Vec<BlobUpload>,
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub manifest: ManifestUpload,
}

pub fn write_blob(dir: &Path, bytes: &[u8]) -> BlobUpload {
    let digest = Digest::of_bytes(bytes);
    let path: PathBuf = dir.join(digest.hex());
    std::fs::write(&path, bytes).unwrap();
    BlobUpload {
        digest,
        size: bytes.len() as u64,
        path,
        mount_from: None,
    }
}

/// An OCI image for `linux/<arch>` whose layer holds `content`.
pub fn make_image(dir: &Path, arch: &str, content: &[u8]) -> TestImage {
    let layer_bytes = layer_tar_gz("hello.txt", content);
    let diff_id = {
        let mut d = flate2::read::GzDecoder::new(&layer_bytes[..]);
        let mut raw = Vec::new();
        d.read_to_end(&mut raw).unwrap();
        Digest::of_bytes(&raw)
    };
    let layer = write_blob(dir, &layer_bytes);
    let config_json = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Entrypoint":["/hello"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let config = write_blob(dir, config_json.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
        media::OCI_MANIFEST,
        config.digest,
        config.size,
        layer.digest,
        layer.size
    );
    TestImage {
        config: config.digest,
        layers: vec![layer.digest],
        blobs: vec![config, layer],
        manifest: ManifestUpload {
            media_type: media::OCI_MANIFEST.into(),
            bytes: manifest.into_bytes(),
        },
    }
}

/// An index over images for several architectures, as one upload.
pub fn make_index(dir: &Path, archs: &[&str], seed: &str) -> (ImageUpload, Vec<TestImage>) {
    let images: Vec<TestImage> = archs
        .iter()
        .map(|a| make_image(dir, a, format!("{seed} for {a}").as_bytes()))
        .collect();
    let entries: Vec<String> = images
        .iter()
        .zip(archs)
        .map(|(img, arch)| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                media::OCI_MANIFEST,
                img.manifest.digest(),
                img.manifest.bytes.len()
            )
        })
        .collect();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        media::OCI_INDEX,
        entries.join(",")
    );
    let upload = ImageUpload {
        blobs: images.iter().flat_map(|i| i.blobs.clone()).collect(),
        manifests: images.iter().map(|i| i.manifest.clone()).collect(),
        root: Some(ManifestUpload {
            media_type: media::OCI_INDEX.into(),
            bytes: index.into_bytes(),
        }),
        tags: vec!["v1".into()],
    };
    (upload, images)
}

pub fn single_upload(img: &TestImage, tag: &str) -> ImageUpload {
    ImageUpload {
        blobs: img.blobs.clone(),
        manifests: Vec::new(),
        root: Some(img.manifest.clone()),
        tags: vec![tag.into()],
    }
}

/// Runs skopeo, failing with an install hint when it is missing.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo ({e}): apt-get install -y skopeo"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
