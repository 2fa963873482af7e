//! End-to-end check with the real tools a user has: a static Go binary built by `go`, packed into
//! an OCI layout that `skopeo` inspects and copies, `umoci` unpacks, and `bwrap` runs; the
//! oci-archive and docker-archive tarballs are read by `skopeo` too.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{go_build, require_tool, run};
use kiln_oci::*;
use kiln_test_support::sandbox::Bundle;
use serde_json::Value;

fn skopeo_json(skopeo: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&run(Command::new(skopeo).args(args))).unwrap()
}

fn count_blobs(layout: &Path) -> usize {
    fs::read_dir(layout.join("blobs/sha256")).unwrap().count()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn images_pass_skopeo_umoci_and_run_under_bwrap() {
    let skopeo = require_tool("skopeo", "apt-get install -y skopeo");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let host_arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let bins = [
        ("amd64", go_build(w, "amd64")),
        ("arm64", go_build(w, "arm64")),
    ];

    let dir = w.join("layout");
    let records = MemoryLayerRecords::new();
    let build_all = || {
        let layout = OciLayout::create(&dir).unwrap();
        let recipe = LayerRecipe::default();
        let base = build_kiln_base(layout.store(), &KilnBase::default(), &recipe).unwrap();
        let mut images = Vec::new();
        let mut outcomes = Vec::new();
        for (arch, bin) in &bins {
            let entries = [LayerEntry::executable("/app", bin)];
            let (layer, outcome) =
                build_layer_cached(layout.store(), &records, &entries, &recipe).unwrap();
            outcomes.push(outcome);
            let config = ImageConfig {
                entrypoint: vec!["/app".into()],
                env: vec!["GREETING=hello-kiln".into()],
                ..ImageConfig::default()
            };
            let platform = format!("linux/{arch}").parse().unwrap();
            let img = assemble_image(
                layout.store(),
                &platform,
                &BaseImage::Kiln(base.clone()),
                &[layer],
                &config,
            )
            .unwrap();
            layout.tag(arch, &img.manifest.descriptor()).unwrap();
            images.push(img);
        }
        let index = assemble_index(layout.store(), &images, &Default::default()).unwrap();
        layout.tag("latest", &index.descriptor()).unwrap();
        (layout, images, index, outcomes)
    };
    let (layout, images, index, outcomes) = build_all();
    assert_eq!(outcomes, [CacheOutcome::Miss, CacheOutcome::Miss]);

    // Rebuilding into the same layout reuses layers and duplicates neither blobs nor tags.
    let blobs_before = count_blobs(&dir);
    let (_, images2, index2, outcomes2) = build_all();
    assert_eq!(outcomes2, [CacheOutcome::Hit, CacheOutcome::Hit]);
    assert_eq!(index2.digest, index.digest);
    assert_eq!(images2[0].manifest.digest, images[0].manifest.digest);
    assert_eq!(count_blobs(&dir), blobs_before);
    let tags: Vec<String> = layout
        .entries()
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(tags, ["amd64", "arm64", "latest"]);

    // skopeo sees our digests and exact bytes.
    let oci = |tag: &str| format!("oci:{}:{tag}", dir.display());
    let inspect = skopeo_json(&skopeo, &["inspect", &oci("amd64")]);
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Digest"], images[0].manifest.digest.to_string());
    let want_layers: Vec<String> = images[0]
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    assert_eq!(inspect["Layers"], serde_json::json!(want_layers));
    let raw = run(Command::new(&skopeo).args(["inspect", "--raw", &oci("latest")]));
    assert_eq!(
        raw.as_bytes(),
        &index.bytes[..],
        "skopeo must see the exact index bytes"
    );

    // skopeo copies single- and multi-platform images; digests survive.
    let other = w.join("other");
    run(Command::new(&skopeo).args([
        "copy",
        &oci("amd64"),
        &format!("oci:{}:amd64", other.display()),
    ]));
    assert_eq!(
        OciLayout::open(&other)
            .unwrap()
            .resolve("amd64")
            .unwrap()
            .digest,
        images[0].manifest.digest
    );
    let other_all = w.join("other-all");
    run(Command::new(&skopeo).args([
        "copy",
        "--all",
        &oci("latest"),
        &format!("oci:{}:latest", other_all.display()),
    ]));
    let copied = OciLayout::open(&other_all).unwrap();
    assert_eq!(copied.resolve("latest").unwrap().digest, index.digest);
    for img in &images {
        copied.store().verify(&img.layers[1].digest).unwrap();
    }

    // umoci unpacks; modes survive; bwrap runs the entrypoint with the config's env.
    let bundle = Bundle::unpack(&format!("{}:{host_arch}", dir.display()), &w.join("bundle"));
    let rootfs = bundle.rootfs();
    assert_eq!(mode(&rootfs.join("app")), 0o755);
    assert_eq!(mode(&rootfs.join("tmp")), 0o1777);
    assert!(fs::read_to_string(rootfs.join("etc/passwd"))
        .unwrap()
        .contains("nonroot:x:65532:65532:"));
    assert_eq!(bundle.args(), ["/app"]);
    assert_eq!(bundle.user(), (65532, 65532));
    let mut cmd = bundle.bwrap(&[]);
    let out = run(&mut cmd);
    assert!(
        out.contains("passwd: nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"),
        "{out}"
    );
    assert!(out.contains("ca-bundle: present"), "{out}");
    assert!(out.contains("greeting: hello-kiln"), "{out}");

    // oci-archive: deterministic and readable by skopeo.
    let store = layout.store();
    let archive = w.join("image.oci.tar");
    let refs = [("latest".to_string(), index.descriptor())];
    write_oci_archive(store, &refs, &archive).unwrap();
    let again = w.join("image2.oci.tar");
    write_oci_archive(store, &refs, &again).unwrap();
    assert_eq!(fs::read(&archive).unwrap(), fs::read(&again).unwrap());
    let inspect = skopeo_json(
        &skopeo,
        &[
            "inspect",
            &format!("oci-archive:{}:latest", archive.display()),
        ],
    );
    assert_eq!(inspect["Architecture"], host_arch);

    // docker-archive: one entry per platform, each with its own tag; an index is refused.
    let docker = w.join("image.docker.tar");
    let entries: Vec<DockerArchiveImage> = images
        .iter()
        .map(|i| DockerArchiveImage {
            manifest: i.manifest.descriptor(),
            repo_tags: vec![format!("kiln/test:{}", i.platform.arch)],
        })
        .collect();
    write_docker_archive(store, &entries, &docker).unwrap();
    let inspect = skopeo_json(
        &skopeo,
        &[
            "inspect",
            &format!("docker-archive:{}:kiln/test:amd64", docker.display()),
        ],
    );
    assert_eq!(inspect["Architecture"], "amd64");
    assert!(inspect["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "GREETING=hello-kiln"));
    let from_docker = w.join("from-docker");
    run(Command::new(&skopeo).args([
        "copy",
        &format!("docker-archive:{}:kiln/test:arm64", docker.display()),
        &format!("oci:{}:x", from_docker.display()),
    ]));
    let err = write_docker_archive(
        store,
        &[DockerArchiveImage {
            manifest: index.descriptor(),
            repo_tags: vec![],
        }],
        &w.join("bad.tar"),
    )
    .unwrap_err();
    assert!(
        matches!(err, OciError::IndexInDockerArchive { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("oci-archive"));

    // A pulled base (here: our own image, handed over as config bytes + layer blobs) is reused by
    // digest, its env kept, diff_ids appended, and the base annotations set.
    let host_img = images
        .iter()
        .find(|i| i.platform.arch == host_arch)
        .unwrap();
    let pulled = PulledBase {
        name: "example.com/kiln/base:1".into(),
        manifest_digest: host_img.manifest.digest,
        config_json: host_img.config.bytes.clone(),
        layers: host_img
            .layers
            .iter()
            .map(|d| PulledLayer {
                descriptor: d.clone(),
                blob: store.path(&d.digest),
            })
            .collect(),
    };
    let fresh = OciLayout::create(w.join("derived")).unwrap();
    let extra = build_layer(
        fresh.store(),
        &[LayerEntry::bytes("/etc/extra.conf", b"x=1\n".to_vec())],
        &LayerRecipe::default(),
    )
    .unwrap();
    let config = ImageConfig {
        env: vec!["EXTRA=1".into()],
        ..ImageConfig::default()
    };
    let derived = assemble_image(
        fresh.store(),
        &host_img.platform,
        &BaseImage::Pulled(pulled),
        std::slice::from_ref(&extra),
        &config,
    )
    .unwrap();
    fresh
        .tag("derived", &derived.manifest.descriptor())
        .unwrap();
    let cfg = fresh.store().read_config(&derived.config.digest).unwrap();
    let base_cfg = store.read_config(&host_img.config.digest).unwrap();
    assert_eq!(cfg.rootfs.diff_ids[..2], base_cfg.rootfs.diff_ids[..]);
    assert_eq!(cfg.rootfs.diff_ids[2], extra.diff_id);
    assert_eq!(cfg.config.entrypoint, Some(vec!["/app".to_string()]));
    let env = cfg.config.env.unwrap();
    assert!(
        env.contains(&"GREETING=hello-kiln".to_string()) && env.contains(&"EXTRA=1".to_string()),
        "{env:?}"
    );
    let m = fresh
        .store()
        .read_manifest(&derived.manifest.digest)
        .unwrap();
    assert_eq!(
        m.annotations[ANNOTATION_BASE_NAME],
        "example.com/kiln/base:1"
    );
    assert_eq!(
        m.annotations[ANNOTATION_BASE_DIGEST],
        host_img.manifest.digest.to_string()
    );
    let bundle2 = Bundle::unpack(
        &format!("{}:derived", fresh.root().display()),
        &w.join("bundle2"),
    );
    assert_eq!(mode(&bundle2.rootfs().join("app")), 0o755);
    assert_eq!(
        fs::read_to_string(bundle2.rootfs().join("etc/extra.conf")).unwrap(),
        "x=1\n"
    );

    // Size report adds up.
    let bin_size = fs::metadata(&bins.iter().find(|(a, _)| *a == host_arch).unwrap().1)
        .unwrap()
        .len();
    let report = size_report(host_img, bin_size);
    assert_eq!(report.layers.len(), 2);
    assert!(report.layers[0].from_base && !report.layers[1].from_base);
    assert_eq!(report.base_compressed, host_img.layers[0].size);
    assert!(report.layers[1].uncompressed.unwrap() > bin_size);
    let sum: u64 = host_img.layers.iter().map(|l| l.size).sum();
    assert_eq!(
        report.total_compressed,
        sum + host_img.config.bytes.len() as u64 + host_img.manifest.bytes.len() as u64
    );
    assert!(serde_json::to_string(&report)
        .unwrap()
        .contains("\"binary_size\""));
}
