//! Reads layers back with the `tar` crate and checks every header field kiln controls.

use std::io::Read;

use kiln_oci::*;
use kiln_types::Digest;

fn read_layer(store: &BlobStore, layer: &BuiltLayer) -> Vec<u8> {
    let mut tar = Vec::new();
    store
        .open_layer(&layer.descriptor)
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    tar
}

#[test]
fn layer_headers_order_modes_owners_mtimes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("binary");
    std::fs::write(&src, vec![7u8; 100_000]).unwrap();
    let store = BlobStore::open(dir.path().join("store")).unwrap();
    let long = format!("opt/{}/deep.txt", "x".repeat(120));
    let entries = vec![
        LayerEntry::executable("/usr/local/bin/app", &src),
        LayerEntry::bytes("etc/config.toml", b"a = 1\n".to_vec()),
        LayerEntry::dir("tmp").mode(0o1777),
        LayerEntry::dir("home/nonroot").owner(65532, 65532),
        LayerEntry::symlink("bin/app", "/usr/local/bin/app"),
        LayerEntry::bytes(&long, b"long".to_vec()),
    ];
    let recipe = LayerRecipe::default().with_mtime(1_700_000_000);
    let layer = build_layer(&store, &entries, &recipe).unwrap();

    // Digests: diff_id is the tar's sha256, the descriptor digest the blob's.
    let tar_bytes = read_layer(&store, &layer);
    assert_eq!(Digest::of_bytes(&tar_bytes), layer.diff_id);
    assert_eq!(tar_bytes.len() as u64, layer.uncompressed_size);
    let blob = std::fs::read(store.path(&layer.descriptor.digest)).unwrap();
    assert_eq!(Digest::of_bytes(&blob), layer.descriptor.digest);
    assert_eq!(blob.len() as u64, layer.descriptor.size);
    assert_eq!(layer.descriptor.media_type, MEDIA_LAYER_GZIP);
    assert_eq!(&blob[..2], &[0x1f, 0x8b], "gzip magic");

    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        assert_eq!(h.mtime().unwrap(), 1_700_000_000, "{path}");
        assert_eq!(h.username().unwrap(), Some(""), "{path}");
        assert_eq!(h.groupname().unwrap(), Some(""), "{path}");
        let mode = h.mode().unwrap();
        let (uid, gid) = (h.uid().unwrap(), h.gid().unwrap());
        match path.as_str() {
            "usr/local/bin/app" => {
                assert_eq!(mode, 0o755);
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                assert_eq!(data, vec![7u8; 100_000]);
            }
            "etc/config.toml" => assert_eq!(mode, 0o644),
            "tmp" => assert_eq!(mode, 0o1777),
            "home/nonroot" => assert_eq!((uid, gid, mode), (65532, 65532, 0o755)),
            "bin/app" => {
                assert!(h.entry_type().is_symlink());
                assert_eq!(
                    e.link_name().unwrap().unwrap().to_str().unwrap(),
                    "/usr/local/bin/app"
                );
            }
            p if p == long => assert_eq!(mode, 0o644),
            // Implied parents: directories, 0755, root-owned.
            _ => {
                assert!(h.entry_type().is_dir(), "unexpected entry {path}");
                assert_eq!((uid, gid, mode), (0, 0, 0o755), "{path}");
            }
        }
        if path != "home/nonroot" {
            assert_eq!((uid, gid), (0, 0), "{path}");
        }
        seen.push(path);
    }
    let expected = [
        "bin",
        "bin/app",
        "etc",
        "etc/config.toml",
        "home",
        "home/nonroot",
        "opt",
        &format!("opt/{}", "x".repeat(120)),
        &long,
        "tmp",
        "usr",
        "usr/local",
        "usr/local/bin",
        "usr/local/bin/app",
    ];
    assert_eq!(seen, expected, "entries must be sorted with parents first");

    // The read side agrees with the tar crate.
    let infos = store.layer_entries(&layer.descriptor).unwrap();
    assert_eq!(infos.len(), expected.len());
    assert!(infos
        .iter()
        .any(|i| i.path == "tmp/" && i.mode == 0o1777 && i.kind == "dir"));
}

#[test]
fn zstd_and_uncompressed_layers_have_the_same_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let entries = vec![LayerEntry::bytes("a/b", b"hello".repeat(1000))];
    let gz = build_layer(&store, &entries, &LayerRecipe::default()).unwrap();
    let zs = build_layer(
        &store,
        &entries,
        &LayerRecipe::new(Compression::Zstd {
            level: 3,
            workers: 1,
        }),
    )
    .unwrap();
    let raw = build_layer(&store, &entries, &LayerRecipe::new(Compression::None)).unwrap();
    assert_eq!(gz.diff_id, zs.diff_id);
    assert_eq!(gz.diff_id, raw.diff_id);
    assert_eq!(raw.descriptor.digest, raw.diff_id);
    assert_eq!(zs.descriptor.media_type, MEDIA_LAYER_ZSTD);
    assert_ne!(gz.descriptor.digest, zs.descriptor.digest);
    let blob = std::fs::read(store.path(&zs.descriptor.digest)).unwrap();
    assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    assert_eq!(read_layer(&store, &zs), read_layer(&store, &raw));
}

#[test]
fn bad_entries_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let r = LayerRecipe::default();
    let dup = [
        LayerEntry::bytes("/a", b"1".to_vec()),
        LayerEntry::bytes("a", b"2".to_vec()),
    ];
    assert!(matches!(build_layer(&store, &dup, &r), Err(OciError::DuplicateEntry(p)) if p == "a"));
    let dotdot = [LayerEntry::bytes("a/../b", b"1".to_vec())];
    assert!(matches!(
        build_layer(&store, &dotdot, &r),
        Err(OciError::InvalidPath(_))
    ));
    let under_file = [
        LayerEntry::bytes("a", b"1".to_vec()),
        LayerEntry::bytes("a/b", b"2".to_vec()),
    ];
    assert!(matches!(
        build_layer(&store, &under_file, &r),
        Err(OciError::NotADirectory(_))
    ));
    let missing = [LayerEntry::file("x", dir.path().join("does-not-exist"))];
    let err = build_layer(&store, &missing, &r).unwrap_err();
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    for bad in [
        Compression::Gzip { level: 10 },
        Compression::Zstd {
            level: 0,
            workers: 1,
        },
        Compression::Zstd {
            level: 3,
            workers: 0,
        },
    ] {
        let err = build_layer(&store, &[LayerEntry::dir("d")], &LayerRecipe::new(bad)).unwrap_err();
        assert!(matches!(err, OciError::InvalidConfig(_)), "{err}");
    }
    // A file whose size differs from its metadata while it is read (here a /proc file: stat says 0
    // bytes, reading yields more) is an error, never a truncated or overlong tar entry.
    let changing = [LayerEntry::file("status", "/proc/self/status")];
    let err = build_layer(&store, &changing, &r).unwrap_err();
    assert!(
        matches!(err, OciError::FileChanged { expected: 0, .. }),
        "{err}"
    );
    // Failed builds leave no temp files behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}
