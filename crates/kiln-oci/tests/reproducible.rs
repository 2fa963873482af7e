//! Two builds in different directories, with different file mtimes, permissions and paths, must
//! produce identical layer, config, manifest and index digests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use kiln_oci::*;
use kiln_types::{Digest, Platform};

struct Outcome {
    layers: Vec<Digest>,
    configs: Vec<Digest>,
    manifests: Vec<Digest>,
    index: Digest,
}

fn build(seed: u64, src_mode: u32) -> Outcome {
    let work = tempfile::tempdir().unwrap();
    // Different source paths and names, same content.
    let src_dir = work.path().join(format!("src-{seed}/nested"));
    fs::create_dir_all(&src_dir).unwrap();
    let content: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut layers_out = Vec::new();
    let layout = OciLayout::create(work.path().join("layout")).unwrap();
    let recipe = LayerRecipe::default().with_mtime(1_600_000_000);
    let base = build_kiln_base(layout.store(), &KilnBase::default(), &recipe).unwrap();
    let mut images = Vec::new();
    for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let src = src_dir.join(format!("bin-{seed}-{i}"));
        fs::write(&src, &content).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(src_mode)).unwrap();
        let f = fs::File::options().write(true).open(&src).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 * seed + i as u64))
            .unwrap();
        let layer = build_layer(
            layout.store(),
            &[LayerEntry::executable("/app", &src)],
            &recipe,
        )
        .unwrap();
        layers_out.push(layer.descriptor.digest);
        let platform: Platform = platform.parse().unwrap();
        let config = ImageConfig {
            entrypoint: vec!["/app".into()],
            env: vec!["GREETING=hi".into()],
            exposed_ports: vec!["8080".into()],
            labels: [(
                "org.opencontainers.image.source".to_string(),
                "https://example.com/app".to_string(),
            )]
            .into(),
            created: 1_600_000_000,
            ..ImageConfig::default()
        };
        images.push(
            assemble_image(
                layout.store(),
                &platform,
                &BaseImage::Kiln(base.clone()),
                &[layer],
                &config,
            )
            .unwrap(),
        );
    }
    let index = assemble_index(layout.store(), &images, &Default::default()).unwrap();
    Outcome {
        layers: layers_out,
        configs: images.iter().map(|i| i.config.digest).collect(),
        manifests: images.iter().map(|i| i.manifest.digest).collect(),
        index: index.digest,
    }
}

#[test]
fn two_builds_in_different_places_are_identical() {
    let a = build(1, 0o755);
    let b = build(2, 0o700);
    assert_eq!(a.layers, b.layers);
    assert_eq!(a.configs, b.configs);
    assert_eq!(a.manifests, b.manifests);
    assert_eq!(a.index, b.index);
    // Sanity: different platforms really give different configs.
    assert_ne!(a.configs[0], a.configs[1]);
}

#[test]
fn stored_json_bytes_are_what_was_hashed() {
    let work = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(work.path()).unwrap();
    let layer = build_layer(
        layout.store(),
        &[LayerEntry::bytes("app", b"x".to_vec()).mode(0o755)],
        &LayerRecipe::default(),
    )
    .unwrap();
    let img = assemble_image(
        layout.store(),
        &"linux/amd64".parse().unwrap(),
        &BaseImage::Scratch,
        std::slice::from_ref(&layer),
        &ImageConfig::default(),
    )
    .unwrap();
    for doc in [&img.config, &img.manifest] {
        assert_eq!(Digest::of_bytes(&doc.bytes), doc.digest);
        assert_eq!(
            fs::read(layout.store().path(&doc.digest)).unwrap(),
            doc.bytes
        );
    }
    let cfg = layout.store().read_config(&img.config.digest).unwrap();
    assert_eq!(cfg.created.as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(cfg.rootfs.diff_ids, vec![layer.diff_id]);
    assert_eq!(cfg.config.user.as_deref(), Some("65532:65532"));
    let text = String::from_utf8(img.config.bytes.clone()).unwrap();
    // Fixed key order from the structs.
    let pos = |k: &str| {
        text.find(k)
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
    };
    assert!(
        pos("\"created\"") < pos("\"architecture\"") && pos("\"architecture\"") < pos("\"rootfs\"")
    );
    // Corruption is detected by the read side.
    fs::write(layout.store().path(&img.manifest.digest), b"{}").unwrap();
    assert!(matches!(
        layout.store().read_manifest(&img.manifest.digest),
        Err(OciError::DigestMismatch { .. })
    ));
}
