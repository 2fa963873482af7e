//! Push, pull, mount, auth, errors and referrers against a real `docker-registry`, checked with skopeo.

mod common;

use std::collections::BTreeMap;

use common::*;
use kiln_registry::{
    media, BlobOutcome, BlobUpload, Client, ClientConfig, Credential, ImageUpload, ManifestUpload,
    Reference, RegistryError,
};
use kiln_types::{Digest, Platform};

#[test]
fn push_index_then_pull_and_check_with_skopeo() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let (upload, images) = make_index(work.path(), &["amd64", "arm64"], "push-pull");
    let index_digest = upload.root.as_ref().unwrap().digest();
    let repo = reg.repo("kiln/app");
    let cache = tempfile::tempdir().unwrap();
    let client = Client::new(ClientConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..test_config()
    })
    .unwrap();
    let rt = rt();

    let report = rt.block_on(client.push_image(&repo, &upload)).unwrap();
    assert_eq!(report.uploaded(), 4, "{report:#?}");
    assert_eq!(report.skipped(), 0);
    let total: u64 = upload.blobs.iter().map(|b| b.size).sum();
    assert_eq!(report.bytes_sent, total);
    assert_eq!(report.manifests_pushed(), 3);
    assert_eq!(report.digest, Some(index_digest));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["blobs"][0]["outcome"], "uploaded");

    // skopeo sees exactly our bytes and digests.
    let url = format!("docker://{}/kiln/app:v1", reg.host());
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &url]);
    assert_eq!(raw.as_bytes(), &upload.root.as_ref().unwrap().bytes[..]);
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--override-os=linux",
        "--override-arch=arm64",
        &url,
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], index_digest.to_string());
    assert_eq!(inspect["Layers"][0], images[1].layers[0].to_string());
    let layout = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", layout.path().display());
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &url,
        &dest,
    ]);
    let oci_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        oci_index["manifests"][0]["digest"],
        index_digest.to_string()
    );
    for img in &images {
        for d in img
            .layers
            .iter()
            .chain([&img.config, &img.manifest.digest()])
        {
            let blob = layout.path().join("blobs/sha256").join(d.hex());
            let bytes =
                std::fs::read(&blob).unwrap_or_else(|e| panic!("{d} missing in OCI layout: {e}"));
            assert_eq!(Digest::of_bytes(&bytes), *d);
        }
    }

    // Pull back through our client.
    let r: Reference = format!("{}/kiln/app:v1", reg.host()).parse().unwrap();
    let top = rt.block_on(client.get_manifest(&r)).unwrap();
    assert_eq!(top.digest, index_digest);
    assert_eq!(top.media_type, media::OCI_INDEX);
    assert_eq!(top.bytes, upload.root.as_ref().unwrap().bytes);
    let arm: Platform = "linux/arm64".parse().unwrap();
    let m = rt
        .block_on(client.get_manifest_for_platform(&r, &arm))
        .unwrap();
    assert_eq!(m.digest, images[1].manifest.digest());
    assert_eq!(m.media_type, media::OCI_MANIFEST);
    let err = rt
        .block_on(client.get_manifest_for_platform(&r, &"linux/s390x".parse().unwrap()))
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );

    let out = work.path().join("pulled-layer");
    let layer = &images[0].blobs[1];
    let size = rt
        .block_on(client.get_blob_to_file(&repo, &layer.digest, &out))
        .unwrap();
    assert_eq!(size, layer.size);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&layer.path).unwrap()
    );

    // Corrupt the cached blob: the next pull must notice, re-download and still be right.
    let cached = cache
        .path()
        .join("registry-v1/sha256")
        .join(layer.digest.hex());
    assert!(cached.exists(), "blob was not cached");
    std::fs::write(&cached, b"garbage").unwrap();
    let out2 = work.path().join("pulled-again");
    rt.block_on(client.get_blob_to_file(&repo, &layer.digest, &out2))
        .unwrap();
    assert_eq!(
        Digest::of_reader(std::fs::File::open(&out2).unwrap())
            .unwrap()
            .0,
        layer.digest
    );
    assert_eq!(
        Digest::of_reader(std::fs::File::open(&cached).unwrap())
            .unwrap()
            .0,
        layer.digest
    );

    // A pull by digest is verified and served (the child manifest) correctly.
    let by_digest = Reference::by_digest(repo.clone(), images[0].manifest.digest());
    assert_eq!(
        rt.block_on(client.get_manifest(&by_digest)).unwrap().bytes,
        images[0].manifest.bytes
    );

    // Second push: nothing to send, only HEADs.
    let again = rt.block_on(client.push_image(&repo, &upload)).unwrap();
    assert_eq!(again.skipped(), 4, "{again:#?}");
    assert_eq!(again.bytes_sent, 0);
    assert_eq!(again.manifests_pushed(), 0);

    // Moving the tag to another image is a real push, not a skip.
    let other = make_image(work.path(), "amd64", b"other");
    let moved = rt
        .block_on(client.push_image(&repo, &single_upload(&other, "v1")))
        .unwrap();
    assert_eq!(moved.manifests_pushed(), 1);
    assert_eq!(
        rt.block_on(client.get_manifest(&r)).unwrap().digest,
        other.manifest.digest()
    );
}

#[test]
fn cross_repo_mount_and_202_fallback() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"mount me");
    let client = client();
    let rt = rt();
    rt.block_on(client.push_image(&reg.repo("base/one"), &single_upload(&img, "v1")))
        .unwrap();

    let mut upload = single_upload(&img, "v1");
    for b in &mut upload.blobs {
        b.mount_from = Some("base/one".into());
    }
    let report = rt
        .block_on(client.push_image(&reg.repo("apps/two"), &upload))
        .unwrap();
    assert_eq!(report.mounted(), 2, "{report:#?}");
    assert_eq!(report.bytes_sent, 0);
    assert!(rt
        .block_on(client.blob_exists(&reg.repo("apps/two"), &img.layers[0]))
        .unwrap());

    // Mounting from a repository that lacks the blob gets 202 and falls back to an upload.
    let fresh = make_image(work.path(), "amd64", b"not anywhere yet");
    let mut upload = single_upload(&fresh, "v1");
    for b in &mut upload.blobs {
        b.mount_from = Some("base/one".into());
    }
    let report = rt
        .block_on(client.push_image(&reg.repo("apps/three"), &upload))
        .unwrap();
    assert_eq!(report.uploaded(), 2, "{report:#?}");
    let out = work.path().join("check");
    rt.block_on(client.get_blob_to_file(&reg.repo("apps/three"), &fresh.layers[0], &out))
        .unwrap();
}

#[test]
fn chunked_upload_of_large_blob() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    // Pseudo-random content so the size is not a round number of chunks.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..700_001)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let blob = write_blob(work.path(), &data);
    let client = Client::new(ClientConfig {
        monolithic_limit: 1024,
        chunk_size: 128 * 1024,
        ..test_config()
    })
    .unwrap();
    let rt = rt();
    let repo = reg.repo("big/blob");
    let outcome = rt
        .block_on(client.push_blob(&repo, &blob.digest, blob.size, &blob.path))
        .unwrap();
    assert_eq!(
        outcome,
        BlobOutcome::Uploaded {
            bytes_sent: 700_001,
            attempts: 1,
            resumed: 0,
            bytes_transferred: 700_001,
        }
    );
    assert_eq!(
        rt.block_on(client.push_blob(&repo, &blob.digest, blob.size, &blob.path))
            .unwrap(),
        BlobOutcome::Skipped
    );
    let out = work.path().join("back");
    assert_eq!(
        rt.block_on(client.get_blob_to_file(&repo, &blob.digest, &out))
            .unwrap(),
        700_001
    );
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn basic_auth_with_explicit_credentials_and_clear_401() {
    let reg = Registry::start_with(Some(("kiln", "s3cret")));
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"auth");
    let repo = reg.repo("secure/app");
    let rt = rt();

    let anon = client();
    let err = rt
        .block_on(anon.push_image(&repo, &single_upload(&img, "v1")))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("docker login"), "{err}");

    let wrong = Client::new(ClientConfig {
        credentials: BTreeMap::from([(reg.host(), Credential::basic("kiln", "nope"))]),
        ..test_config()
    })
    .unwrap();
    let err = rt
        .block_on(wrong.blob_exists(&repo, &img.layers[0]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");

    let good = Client::new(ClientConfig {
        credentials: BTreeMap::from([(reg.host(), Credential::basic("kiln", "s3cret"))]),
        ..test_config()
    })
    .unwrap();
    let report = rt
        .block_on(good.push_image(&repo, &single_upload(&img, "v1")))
        .unwrap();
    assert_eq!(report.uploaded(), 2);
    let r: Reference = format!("{}/secure/app:v1", reg.host()).parse().unwrap();
    assert_eq!(
        rt.block_on(good.get_manifest(&r)).unwrap().digest,
        img.manifest.digest()
    );
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "kiln:s3cret",
        &format!("docker://{}/secure/app:v1", reg.host()),
    ]);
}

#[test]
fn not_found_refused_and_tls_errors_are_clear() {
    let reg = Registry::start();
    let client = client();
    let rt = rt();
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"exists");
    rt.block_on(client.push_image(&reg.repo("there/app"), &single_upload(&img, "v1")))
        .unwrap();

    for missing in ["there/app:nope", "nowhere/app:v1"] {
        let r: Reference = format!("{}/{missing}", reg.host()).parse().unwrap();
        let err = rt.block_on(client.get_manifest(&r)).unwrap_err();
        assert!(
            matches!(err, RegistryError::NotFound { .. }),
            "{missing}: {err}"
        );
        assert!(err.to_string().contains("not found"), "{err}");
    }
    let err = rt
        .block_on(client.get_blob_to_file(
            &reg.repo("there/app"),
            &Digest::of_bytes(b"no"),
            &work.path().join("x"),
        ))
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(!work.path().join("x").exists());

    let dead = format!("127.0.0.1:{}/app:v1", free_port())
        .parse::<Reference>()
        .unwrap();
    let err = rt.block_on(client.get_manifest(&dead)).unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("is the registry running"), "{err}");

    // 127.0.0.2 is not plain HTTP by default: TLS against a plain-HTTP registry.
    let plain = Registry::start_on("127.0.0.2", None);
    let r: Reference = format!("{}/app:v1", plain.host()).parse().unwrap();
    let err = rt.block_on(client.get_manifest(&r)).unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("--insecure-registry"), "{err}");
    let insecure = Client::new(ClientConfig {
        insecure_registries: vec![plain.host()],
        ..test_config()
    })
    .unwrap();
    let err = rt.block_on(insecure.get_manifest(&r)).unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
}

#[test]
fn referrers_fall_back_to_tags_on_registry_without_api() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"signed");
    let client = client();
    let rt = rt();
    let repo = reg.repo("sig/app");
    rt.block_on(client.push_image(&repo, &single_upload(&img, "v1")))
        .unwrap();
    let subject = img.manifest.digest();
    assert!(!rt
        .block_on(client.referrers_supported(&repo, &subject))
        .unwrap());

    // A signature artifact referring to the image, plus the OCI fallback index and a cosign tag.
    let empty = write_blob(work.path(), b"{}");
    let payload = write_blob(work.path(), b"signature payload");
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{}","size":{}}}],"subject":{{"mediaType":"{}","digest":"{subject}","size":{}}}}}"#,
        media::OCI_MANIFEST,
        empty.digest,
        payload.digest,
        payload.size,
        media::OCI_MANIFEST,
        img.manifest.bytes.len()
    );
    let sig = ManifestUpload {
        media_type: media::OCI_MANIFEST.into(),
        bytes: sig.into_bytes(),
    };
    let fallback = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json"}}]}}"#,
        media::OCI_INDEX,
        media::OCI_MANIFEST,
        sig.digest(),
        sig.bytes.len()
    );
    let tag = kiln_registry::referrers_fallback_tag(&subject);
    let upload = ImageUpload {
        blobs: vec![empty, payload],
        manifests: vec![sig.clone()],
        root: Some(ManifestUpload {
            media_type: media::OCI_INDEX.into(),
            bytes: fallback.into_bytes(),
        }),
        tags: vec![tag.clone()],
    };
    rt.block_on(client.push_image(&repo, &upload)).unwrap();
    rt.block_on(client.push_manifest(&repo, &format!("{tag}.sig"), &sig.media_type, &sig.bytes))
        .unwrap();

    let found = rt
        .block_on(client.get_referrers(&repo, &subject, None))
        .unwrap();
    assert!(!found.api_supported);
    assert_eq!(found.descriptors.len(), 1);
    assert_eq!(found.descriptors[0].digest, sig.digest());
    assert_eq!(found.cosign_tags, vec![format!("{tag}.sig")]);
    let filtered = rt
        .block_on(client.get_referrers(&repo, &subject, Some("application/spdx+json")))
        .unwrap();
    assert!(filtered.descriptors.is_empty());
    let mut tags = rt.block_on(client.list_tags(&repo)).unwrap();
    tags.sort();
    assert_eq!(
        tags,
        vec![tag.clone(), format!("{tag}.sig"), "v1".to_string()]
    );
    assert!(rt
        .block_on(client.list_tags(&reg.repo("no/such")))
        .unwrap()
        .is_empty());
}

/// The writer's view of a registry without the referrers API (issue 10): the fallback index is
/// read without listing tags, written sorted (so equal sets give equal digests), a tag that
/// holds something else is reported, and a refused manifest delete is an answer, not an error.
#[test]
fn issue_10_referrers_index_fallback_and_refused_delete() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"subject");
    let client = client();
    let rt = rt();
    let repo = reg.repo("idx/app");
    rt.block_on(client.push_image(&repo, &single_upload(&img, "v1")))
        .unwrap();
    let subject = img.manifest.digest();
    let none = rt
        .block_on(client.referrers_index(&repo, &subject))
        .unwrap();
    assert!(!none.api_supported && !none.fallback_tag_exists && none.descriptors.is_empty());

    let other = make_image(work.path(), "arm64", b"referrer stand-in");
    rt.block_on(client.push_image(&repo, &single_upload(&other, "other")))
        .unwrap();
    let entry = |digest: Digest, size: u64, ty: &str| media::Descriptor {
        media_type: media::OCI_MANIFEST.into(),
        digest,
        size,
        artifact_type: Some(ty.into()),
        annotations: BTreeMap::from([("k".to_string(), ty.to_string())]),
        platform: None,
        data: None,
    };
    let a = entry(
        other.manifest.digest(),
        other.manifest.bytes.len() as u64,
        "application/a",
    );
    let b = entry(subject, img.manifest.bytes.len() as u64, "application/b");
    let one = kiln_registry::referrers_fallback_index(&[a.clone(), b.clone(), a.clone()]).unwrap();
    let two = kiln_registry::referrers_fallback_index(&[b.clone(), a.clone()]).unwrap();
    assert_eq!(one, two, "order and duplicates do not change the index");
    let tag = kiln_registry::referrers_fallback_tag(&subject);
    rt.block_on(client.push_manifest(&repo, &tag, media::OCI_INDEX, &one))
        .unwrap();
    let read = rt
        .block_on(client.referrers_index(&repo, &subject))
        .unwrap();
    assert!(!read.api_supported && read.fallback_tag_exists);
    let mut want = vec![a, b];
    want.sort_by_key(|d| d.digest.to_string());
    assert_eq!(read.descriptors, want);

    // An image (not an index) under another subject's fallback tag is reported, not merged into.
    let squatted = Digest::of_bytes(b"squatted");
    let stag = kiln_registry::referrers_fallback_tag(&squatted);
    rt.block_on(client.push_manifest(&repo, &stag, &img.manifest.media_type, &img.manifest.bytes))
        .unwrap();
    let err = rt
        .block_on(client.referrers_index(&repo, &squatted))
        .unwrap_err();
    assert!(
        err.to_string().contains("not the OCI 1.1 referrers index"),
        "{err}"
    );

    // A delete answers what the registry did: gone when it says deleted, still there when
    // it refused (registries may disable deletes), never an error.
    let by_digest = Reference::by_digest(repo.clone(), other.manifest.digest());
    let outcome = rt
        .block_on(client.delete_manifest(&repo, &other.manifest.digest()))
        .unwrap();
    let after = rt.block_on(client.get_manifest(&by_digest));
    match outcome {
        kiln_registry::DeleteOutcome::Deleted => {
            assert!(
                matches!(after, Err(RegistryError::NotFound { .. })),
                "{after:?}"
            )
        }
        kiln_registry::DeleteOutcome::Refused { .. } => assert!(after.is_ok(), "{after:?}"),
        kiln_registry::DeleteOutcome::NotFound => panic!("the manifest was there"),
    }
    let again = rt
        .block_on(client.delete_manifest(&repo, &other.manifest.digest()))
        .unwrap();
    if outcome == kiln_registry::DeleteOutcome::Deleted {
        assert_eq!(again, kiln_registry::DeleteOutcome::NotFound);
    }
}

#[test]
fn manifest_digest_reference_must_match_bytes() {
    let reg = Registry::start();
    let client = client();
    let rt = rt();
    let err = rt
        .block_on(client.push_manifest(
            &reg.repo("x/y"),
            &Digest::of_bytes(b"other").to_string(),
            media::OCI_MANIFEST,
            b"{}",
        ))
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    // Blob files that do not match their digest are refused by the registry, never stored.
    let work = tempfile::tempdir().unwrap();
    let mut blob: BlobUpload = write_blob(work.path(), b"real content");
    blob.digest = Digest::of_bytes(b"claimed content");
    let err = rt
        .block_on(client.push_blob_upload(&reg.repo("x/y"), &blob))
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 400, .. }),
        "{err}"
    );
    assert!(!rt
        .block_on(client.blob_exists(&reg.repo("x/y"), &blob.digest))
        .unwrap());
    // A descriptor whose size disagrees with the file is refused before anything is sent.
    let mut short = write_blob(work.path(), b"twelve bytes");
    short.size = 99;
    let err = rt
        .block_on(client.push_blob_upload(&reg.repo("x/y"), &short))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Io { .. }), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
}

#[test]
fn issue_8_repush_of_a_tagged_image_is_answered_by_its_tags() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let img = make_image(work.path(), "amd64", b"repush");
    let client = client();
    let rt = rt();
    let repo = reg.repo("noop/app");
    let first = rt
        .block_on(client.push_image(&repo, &single_upload(&img, "v1")))
        .unwrap();
    assert_eq!(first.uploaded(), 2, "{first:#?}");

    // Unchanged and already tagged: nothing sent, nothing pushed.
    let again = rt
        .block_on(client.push_image(&repo, &single_upload(&img, "v1")))
        .unwrap();
    assert_eq!(again.uploaded(), 0);
    assert!(again.manifests.iter().all(|m| !m.pushed), "{again:#?}");

    // One reference not yet there: the full push runs and creates it.
    let mut both = single_upload(&img, "v1");
    both.tags.push("v2".into());
    let r = rt.block_on(client.push_image(&repo, &both)).unwrap();
    assert!(
        r.manifests.iter().any(|m| m.reference == "v2" && m.pushed),
        "{r:#?}"
    );

    // A tag that points at another image is moved, with the blobs checked one by one.
    let other = make_image(work.path(), "amd64", b"other content");
    let r = rt
        .block_on(client.push_image(&repo, &single_upload(&other, "v1")))
        .unwrap();
    assert_eq!(r.uploaded(), 2, "{r:#?}");
    assert!(r.manifests.iter().any(|m| m.reference == "v1" && m.pushed));
}
