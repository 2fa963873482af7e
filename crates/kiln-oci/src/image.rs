use std::collections::BTreeMap;

use kiln_types::{Digest, Platform};
use serde::{Deserialize, Serialize};

use crate::base::BaseImage;
use crate::descriptor::{
    Descriptor, OciPlatform, StoredJson, ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME,
    MEDIA_CONFIG, MEDIA_INDEX, MEDIA_MANIFEST,
};
use crate::error::{OciError, Result};
use crate::layer::BuiltLayer;
use crate::store::BlobStore;

/// The default `PATH` when neither the base nor the caller sets one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the caller wants in the image's runtime configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Entrypoint (`["/app"]`).
    pub entrypoint: Vec<String>,
    /// Default arguments.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries; they override the base's entries with the same key.
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// `uid[:gid]` or name; defaults to the non-root `65532:65532`.
    pub user: String,
    /// Exposed ports (`8080/tcp`, `53/udp`; a bare number means tcp).
    pub exposed_ports: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Signal that stops the container (`SIGTERM`).
    pub stop_signal: Option<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// `created` timestamp, seconds since the epoch (`SOURCE_DATE_EPOCH`); 0 by default.
    pub created: u64,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            workdir: None,
            user: "65532:65532".to_string(),
            exposed_ports: Vec::new(),
            labels: BTreeMap::new(),
            stop_signal: None,
            annotations: BTreeMap::new(),
            created: 0,
        }
    }
}

/// An empty JSON object (`{}`), the value type of `ExposedPorts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The `config` section of an OCI image config (field order fixed by this struct).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    /// User.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    /// Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Fields kiln does not interpret (`Healthcheck`, `Volumes`, ...), kept from a pulled base in
    /// sorted order so they survive the merge.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, bottom first.
    pub diff_ids: Vec<Digest>,
}

/// One `history` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What created the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step produced no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// An OCI image config document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciConfig {
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// Architecture variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runtime configuration.
    #[serde(default)]
    pub config: ExecConfig,
    /// Layer diff ids.
    pub rootfs: RootFs,
    /// Layer history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields kiln does not interpret (`author`, `os.version`, ...), kept from a pulled base.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An OCI image manifest document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type (absent in some old manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index document (also the shape of a layout's `index.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Entries.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An assembled single-platform image whose config and manifest are in the blob store.
#[derive(Clone, Debug, Serialize)]
pub struct BuiltImage {
    /// Platform.
    pub platform: Platform,
    /// Config document (exact bytes).
    pub config: StoredJson,
    /// Manifest document (exact bytes).
    pub manifest: StoredJson,
    /// All layers, bottom first (base layers first).
    pub layers: Vec<Descriptor>,
    /// How many of `layers` come from the base.
    pub base_layers: usize,
    /// Uncompressed sizes where known (kiln-built layers), aligned with `layers`.
    pub uncompressed_sizes: Vec<Option<u64>>,
}

impl BuiltImage {
    /// A descriptor for an index entry (manifest media type, digest, size and platform).
    pub fn descriptor(&self) -> Descriptor {
        let mut d = self.manifest.descriptor();
        d.platform = Some(OciPlatform::from(&self.platform));
        d
    }
}

/// Formats seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    kiln_types::format_rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

fn merge_exec(base: ExecConfig, ours: &ImageConfig) -> Result<ExecConfig> {
    let mut env = base.env.unwrap_or_default();
    for e in &ours.env {
        if !e.contains('=') {
            return Err(OciError::InvalidConfig(format!(
                "env entry `{e}` is not KEY=VALUE"
            )));
        }
        match env.iter_mut().find(|x| env_key(x) == env_key(e)) {
            Some(slot) => slot.clone_from(e),
            None => env.push(e.clone()),
        }
    }
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let mut ports = base.exposed_ports.unwrap_or_default();
    for p in &ours.exposed_ports {
        let p = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        ports.insert(p, Empty {});
    }
    let mut labels = base.labels.unwrap_or_default();
    labels.extend(ours.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    // As in Dockerfiles, a new entrypoint drops the base's cmd.
    let (entrypoint, cmd) = if ours.entrypoint.is_empty() {
        (
            base.entrypoint,
            if ours.cmd.is_empty() {
                base.cmd
            } else {
                Some(ours.cmd.clone())
            },
        )
    } else {
        (
            Some(ours.entrypoint.clone()),
            (!ours.cmd.is_empty()).then(|| ours.cmd.clone()),
        )
    };
    Ok(ExecConfig {
        user: Some(ours.user.clone()),
        exposed_ports: (!ports.is_empty()).then_some(ports),
        env: Some(env),
        entrypoint,
        cmd,
        working_dir: ours.workdir.clone().or(base.working_dir),
        labels: (!labels.is_empty()).then_some(labels),
        stop_signal: ours.stop_signal.clone().or(base.stop_signal),
        extra: base.extra,
    })
}

/// Assembles a single-platform image: merges the base's config with `config`, appends `layers`
/// after the base's, and writes config and manifest blobs into `store`.
pub fn assemble_image(
    store: &BlobStore,
    platform: &Platform,
    base: &BaseImage,
    layers: &[BuiltLayer],
    config: &ImageConfig,
) -> Result<BuiltImage> {
    let created = rfc3339(config.created);
    let base_descs = base.import(store)?;
    let mut annotations = BTreeMap::new();
    let mut extra = BTreeMap::new();
    let (exec, mut diff_ids, mut history, mut sizes) = match base {
        BaseImage::Scratch => (ExecConfig::default(), Vec::new(), Vec::new(), Vec::new()),
        BaseImage::Kiln(l) => {
            let h = History {
                created: Some(created.clone()),
                created_by: Some("kiln base".into()),
                ..History::default()
            };
            (
                ExecConfig::default(),
                vec![l.diff_id],
                vec![h],
                vec![Some(l.uncompressed_size)],
            )
        }
        BaseImage::Pulled(p) => {
            let cfg: OciConfig =
                serde_json::from_slice(&p.config_json).map_err(|source| OciError::Json {
                    what: format!("config of base `{}`", p.name),
                    source,
                })?;
            if cfg.rootfs.diff_ids.len() != p.layers.len() {
                return Err(OciError::InvalidBase {
                    name: p.name.clone(),
                    reason: format!(
                        "config lists {} diff_ids but {} layers were given",
                        cfg.rootfs.diff_ids.len(),
                        p.layers.len()
                    ),
                });
            }
            if cfg.os != platform.os || cfg.architecture != platform.arch {
                return Err(OciError::InvalidBase {
                    name: p.name.clone(),
                    reason: format!("it is {}/{}, but the image is for {platform}; hint: pull the base for that platform", cfg.os, cfg.architecture),
                });
            }
            annotations.insert(ANNOTATION_BASE_NAME.to_string(), p.name.clone());
            annotations.insert(
                ANNOTATION_BASE_DIGEST.to_string(),
                p.manifest_digest.to_string(),
            );
            extra = cfg.extra;
            (
                cfg.config,
                cfg.rootfs.diff_ids,
                cfg.history,
                vec![None; p.layers.len()],
            )
        }
    };
    let exec = merge_exec(exec, config)?;
    for l in layers {
        diff_ids.push(l.diff_id);
        sizes.push(Some(l.uncompressed_size));
        history.push(History {
            created: Some(created.clone()),
            created_by: Some("kiln image".into()),
            ..History::default()
        });
    }
    let oci = OciConfig {
        created: Some(created),
        architecture: platform.arch.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: exec,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history,
        extra,
    };
    let config_doc = StoredJson::new(MEDIA_CONFIG, "image config", &oci)?;
    store.put_bytes(&config_doc.bytes)?;
    let mut all_layers = base_descs;
    let base_layers = all_layers.len();
    all_layers.extend(layers.iter().map(|l| l.descriptor.clone()));
    annotations.extend(
        config
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: config_doc.descriptor(),
        layers: all_layers.clone(),
        annotations,
    };
    let manifest_doc = StoredJson::new(MEDIA_MANIFEST, "image manifest", &manifest)?;
    store.put_bytes(&manifest_doc.bytes)?;
    Ok(BuiltImage {
        platform: platform.clone(),
        config: config_doc,
        manifest: manifest_doc,
        layers: all_layers,
        base_layers,
        uncompressed_sizes: sizes,
    })
}

/// Assembles a multi-platform image index over `images` (in the given order) and stores it.
pub fn assemble_index(
    store: &BlobStore,
    images: &[BuiltImage],
    annotations: &BTreeMap<String, String>,
) -> Result<StoredJson> {
    let mut seen = std::collections::BTreeSet::new();
    for i in images {
        if !seen.insert(i.platform.to_string()) {
            return Err(OciError::InvalidConfig(format!(
                "platform {} appears twice in the index",
                i.platform
            )));
        }
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_INDEX.into()),
        manifests: images.iter().map(BuiltImage::descriptor).collect(),
        annotations: annotations.clone(),
    };
    let doc = StoredJson::new(MEDIA_INDEX, "image index", &index)?;
    store.put_bytes(&doc.bytes)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints the bytes for a golden constant when a pin below needs updating on purpose.
    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// issue 12: the exact image manifest, index and layout `index.json` bytes kiln wrote before
    /// the OCI descriptor moved to kiln-types. kiln images are reproducible and their digests are
    /// compared across runs and versions, so a change here changes the digest of every image.
    #[test]
    fn issue_12_manifest_index_and_layout_bytes_are_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::OciLayout::create(dir.path().join("oci")).unwrap();
        let store = layout.store();
        let blob = dir.path().join("base-layer");
        std::fs::write(&blob, b"base layer").unwrap();
        // As a base's manifest may list it: fields kiln never wrote (`data`, `artifactType`,
        // `urls`) stay out of kiln's manifest.
        let base_layer: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"{}","digest":"{}","size":10,"annotations":{{"org.example.layer":"base"}},"data":"YmFzZSBsYXllcg==","artifactType":"application/x","urls":["https://example.test/l"]}}"#,
            crate::MEDIA_DOCKER_LAYER_GZIP,
            Digest::of_bytes(b"base layer")
        ))
        .unwrap();
        let base_config = format!(
            r#"{{"architecture":"arm","os":"linux","variant":"v7","config":{{"Env":["PATH=/bin"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            Digest::of_bytes(b"base tar")
        );
        let base = BaseImage::Pulled(crate::PulledBase {
            name: "registry.example/base:1".into(),
            manifest_digest: Digest::of_bytes(b"base manifest"),
            config_json: base_config.into_bytes(),
            layers: vec![crate::PulledLayer {
                descriptor: base_layer,
                blob,
            }],
        });
        let app = BuiltLayer {
            descriptor: Descriptor::new(crate::MEDIA_LAYER_GZIP, Digest::of_bytes(b"app"), 3),
            diff_id: Digest::of_bytes(b"app tar"),
            uncompressed_size: 7,
        };
        let config = ImageConfig {
            entrypoint: vec!["/app".into()],
            annotations: BTreeMap::from([(
                "org.opencontainers.image.source".into(),
                "https://example.test/app".into(),
            )]),
            ..ImageConfig::default()
        };
        let arm = assemble_image(
            store,
            &"linux/arm/v7".parse().unwrap(),
            &base,
            std::slice::from_ref(&app),
            &config,
        )
        .unwrap();
        let amd = assemble_image(
            store,
            &"linux/amd64".parse().unwrap(),
            &BaseImage::Scratch,
            &[app],
            &ImageConfig::default(),
        )
        .unwrap();
        let index = assemble_index(
            store,
            &[arm.clone(), amd.clone()],
            &BTreeMap::from([("org.example.index".into(), "yes".into())]),
        )
        .unwrap();
        layout.tag("v1", &index.descriptor()).unwrap();
        // A platform and an annotation on one entry: their order is pinned too.
        layout.tag("arm", &arm.descriptor()).unwrap();
        let index_json = std::fs::read(dir.path().join("oci/index.json")).unwrap();
        assert_eq!(text(&arm.manifest.bytes), ARM_MANIFEST);
        assert_eq!(text(&amd.manifest.bytes), AMD_MANIFEST);
        assert_eq!(text(&index.bytes), INDEX);
        assert_eq!(text(&index_json), LAYOUT_INDEX);
    }

    const ARM_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:4477ccf4e0a27f1c43692aef110a8c324445c415027fd3a37b8dd870218ec730","size":418},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:31b1bea262a65f3b89522e134cef5e65962a5c1727666859ef2448fd439ccccf","size":10,"annotations":{"org.example.layer":"base"}},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:a172cedcae47474b615c54d510a5d84a8dea3032e958587430b413538be3f333","size":3}],"annotations":{"org.opencontainers.image.base.digest":"sha256:29de6ae7260ab17cda315946a9325c32bc6ded91129eef7f2d10a2781f5b9bcc","org.opencontainers.image.base.name":"registry.example/base:1","org.opencontainers.image.source":"https://example.test/app"}}"#;
    const AMD_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:3ec3f783d372d4fc45f0abe106103c05950e3afe3a3b9ba77d96439f8a4a3503","size":365},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:a172cedcae47474b615c54d510a5d84a8dea3032e958587430b413538be3f333","size":3}]}"#;
    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4de3699666162f38641b499958cb43e0b67482a4606417d3b53db2d87fbb1966","size":854,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b7cda81ec6cc6508f86084f9274c04aced416df5dcf81b111c4471dbfbf22dba","size":399,"platform":{"architecture":"amd64","os":"linux"}}],"annotations":{"org.example.index":"yes"}}"#;
    const LAYOUT_INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:b33f7b1a544e43a01ab975f7f59c022f7ae97692172de1b041ec1248add78b89","size":546,"annotations":{"org.opencontainers.image.ref.name":"v1"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4de3699666162f38641b499958cb43e0b67482a4606417d3b53db2d87fbb1966","size":854,"platform":{"architecture":"arm","os":"linux","variant":"v7"},"annotations":{"org.opencontainers.image.ref.name":"arm"}}]}"#;

    #[test]
    fn unknown_base_fields_survive_a_round_trip() {
        let raw = br#"{"architecture":"amd64","os":"linux","author":"me","config":{"Healthcheck":{"Test":["NONE"]},"User":"0"},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cfg: OciConfig = serde_json::from_slice(raw).unwrap();
        assert_eq!(cfg.extra["author"], "me");
        let merged = merge_exec(cfg.config.clone(), &ImageConfig::default()).unwrap();
        let text = serde_json::to_string(&merged).unwrap();
        assert!(
            text.contains(r#""Healthcheck":{"Test":["NONE"]}"#),
            "{text}"
        );
        assert!(text.contains(r#""User":"65532:65532""#), "{text}");
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn merge_overrides_env_and_resets_cmd() {
        let base = ExecConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            cmd: Some(vec!["sh".into()]),
            user: Some("0".into()),
            working_dir: Some("/w".into()),
            ..ExecConfig::default()
        };
        let ours = ImageConfig {
            env: vec!["A=2".into(), "B=3".into()],
            entrypoint: vec!["/app".into()],
            exposed_ports: vec!["8080".into()],
            ..ImageConfig::default()
        };
        let m = merge_exec(base, &ours).unwrap();
        assert_eq!(m.env.unwrap(), vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(m.cmd, None);
        assert_eq!(m.user.as_deref(), Some("65532:65532"));
        assert_eq!(m.working_dir.as_deref(), Some("/w"));
        assert!(m.exposed_ports.unwrap().contains_key("8080/tcp"));
        assert!(merge_exec(
            ExecConfig::default(),
            &ImageConfig {
                env: vec!["NOEQ".into()],
                ..ImageConfig::default()
            }
        )
        .is_err());
    }
}
