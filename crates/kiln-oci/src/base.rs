use std::fs;
use std::path::{Path, PathBuf};

use kiln_types::Digest;

use crate::descriptor::Descriptor;
use crate::error::{io_err, OciError, Result};
use crate::layer::{build_layer, BuiltLayer, LayerEntry, LayerRecipe};
use crate::store::BlobStore;

/// uid/gid of the `nonroot` user in the kiln base (same as distroless).
pub const NONROOT_ID: u64 = 65532;

/// Options of the built-in minimal base.
#[derive(Clone, Debug, Default)]
pub struct KilnBase {
    /// Copy this zoneinfo directory (usually `/usr/share/zoneinfo`) to `/usr/share/zoneinfo`.
    /// This makes the base depend on the host's tzdata package version: two machines with different
    /// tzdata releases produce different layer digests. Leave `None` for a host-independent base
    /// (Go programs can embed tzdata with `import _ "time/tzdata"` instead).
    pub tzdata: Option<PathBuf>,
    /// Go's `$GOROOT/lib/time/zoneinfo.zip`, unpacked to `/usr/share/zoneinfo`: pinned by the Go
    /// release rather than the host, and keyed by content like every entry. Ignored when `tzdata`
    /// is set.
    pub go_zoneinfo: Option<PathBuf>,
}

/// `/etc/os-release` of the kiln base. Fixed text, not kiln's version, so upgrading kiln does not
/// change the base digest; `VERSION_ID` changes only when the base's contents change.
pub const OS_RELEASE: &str = "PRETTY_NAME=\"kiln minimal base\"\nNAME=\"kiln\"\nID=kiln\nVERSION_ID=\"1\"\nHOME_URL=\"https://github.com/kiln-build/kiln\"\n";

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
const NSSWITCH: &str = "hosts: files dns\n";

/// The CA bundle as PEM, rendered from the roots compiled into `webpki-root-certs` (Mozilla's
/// list), never from the host, whose bundle differs between machines.
pub fn ca_bundle_pem() -> String {
    let mut out = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64(cert.as_ref());
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The entries of the kiln base layer.
pub fn kiln_base_entries(opts: &KilnBase) -> Result<Vec<LayerEntry>> {
    let mut entries = vec![
        LayerEntry::bytes("etc/ssl/certs/ca-certificates.crt", ca_bundle_pem()),
        LayerEntry::bytes("etc/passwd", PASSWD),
        LayerEntry::bytes("etc/group", GROUP),
        LayerEntry::bytes("etc/nsswitch.conf", NSSWITCH),
        LayerEntry::bytes("etc/os-release", OS_RELEASE),
        LayerEntry::dir("tmp").mode(0o1777),
        LayerEntry::dir("root").mode(0o700),
        LayerEntry::dir("home"),
        LayerEntry::dir("home/nonroot").owner(NONROOT_ID, NONROOT_ID),
    ];
    if let Some(dir) = &opts.tzdata {
        entries.push(LayerEntry::dir("usr/share/zoneinfo"));
        walk_tree(dir, "usr/share/zoneinfo", &mut entries)?;
    } else if let Some(zip) = &opts.go_zoneinfo {
        entries.extend(crate::zoneinfo::zoneinfo_entries(zip)?);
    }
    Ok(entries)
}

fn walk_tree(dir: &Path, prefix: &str, out: &mut Vec<LayerEntry>) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err("listing", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io_err("listing", dir))?;
    names.sort();
    for name in names {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        let src = dir.join(&name);
        let dest = format!("{prefix}/{name_str}");
        let meta = fs::symlink_metadata(&src).map_err(io_err("reading", &src))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(io_err("reading link", &src))?;
            out.push(LayerEntry::symlink(&dest, &target.to_string_lossy()));
        } else if meta.is_dir() {
            out.push(LayerEntry::dir(&dest));
            walk_tree(&src, &dest, out)?;
        } else if meta.is_file() {
            out.push(LayerEntry::file(&dest, src));
        }
    }
    Ok(())
}

/// Builds the kiln base layer into `store`.
pub fn build_kiln_base(
    store: &BlobStore,
    opts: &KilnBase,
    recipe: &LayerRecipe,
) -> Result<BuiltLayer> {
    build_layer(store, &kiln_base_entries(opts)?, recipe)
}

/// One layer of a pulled base: its descriptor from the base manifest and the downloaded blob.
#[derive(Clone, Debug)]
pub struct PulledLayer {
    /// The descriptor exactly as in the base manifest (media type, digest, size).
    pub descriptor: Descriptor,
    /// Where the blob was downloaded.
    pub blob: PathBuf,
}

/// A base image fetched by the registry client.
#[derive(Clone, Debug)]
pub struct PulledBase {
    /// Reference it was pulled by (`cgr.dev/chainguard/static:latest`); becomes the
    /// `org.opencontainers.image.base.name` annotation.
    pub name: String,
    /// Digest of the base's (platform-specific) manifest; becomes `...base.digest`.
    pub manifest_digest: Digest,
    /// The base config JSON, exact bytes.
    pub config_json: Vec<u8>,
    /// Layers in order, bottom first.
    pub layers: Vec<PulledLayer>,
}

/// What an image is built on.
#[derive(Clone, Debug)]
pub enum BaseImage {
    /// Nothing: the image holds only kiln's layers.
    Scratch,
    /// The built-in kiln base layer (see [`build_kiln_base`]).
    Kiln(BuiltLayer),
    /// A pulled base; its layers are reused as-is by digest.
    Pulled(PulledBase),
}

impl BaseImage {
    /// Layers of the base as descriptors, copying pulled blobs into `store` (verified by digest).
    pub(crate) fn import(&self, store: &BlobStore) -> Result<Vec<Descriptor>> {
        match self {
            Self::Scratch => Ok(Vec::new()),
            Self::Kiln(l) => Ok(vec![l.descriptor.clone()]),
            Self::Pulled(p) => {
                let mut out = Vec::new();
                for l in &p.layers {
                    let size = store.import_file(&l.blob, &l.descriptor.digest)?;
                    if size != l.descriptor.size {
                        return Err(OciError::InvalidBase {
                            name: p.name.clone(),
                            reason: format!(
                                "layer {} is {size} bytes but its descriptor says {}",
                                l.descriptor.digest, l.descriptor.size
                            ),
                        });
                    }
                    // kiln has always written a base layer with the fields its descriptor used
                    // to have (no `artifactType`, no `data`): keeping that keeps the digests of
                    // images on the same base unchanged across kiln versions.
                    out.push(Descriptor {
                        platform: l.descriptor.platform.clone(),
                        annotations: l.descriptor.annotations.clone(),
                        ..Descriptor::new(
                            l.descriptor.media_type.clone(),
                            l.descriptor.digest,
                            l.descriptor.size,
                        )
                    });
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn ca_bundle_has_every_root() {
        let pem = ca_bundle_pem();
        assert_eq!(
            pem.matches("BEGIN CERTIFICATE").count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }

    /// The base must not depend on the machine: build it twice from different working directories
    /// and with a different HOME/TZ in between (nothing of the host may leak in), compare digests,
    /// and check that no entry's content came from a host path.
    #[test]
    // Host independence across processes (cwd, HOME, TZ, umask, CPUs) is tested in
    // tests/base_host.rs; this checks the parts visible in one process.
    fn kiln_base_is_built_in_data_independent_of_the_store_and_dated_by_the_recipe() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let recipe = LayerRecipe::default();
        let la = build_kiln_base(
            &BlobStore::open(a.path()).unwrap(),
            &KilnBase::default(),
            &recipe,
        )
        .unwrap();
        let lb = build_kiln_base(
            &BlobStore::open(b.path()).unwrap(),
            &KilnBase::default(),
            &recipe,
        )
        .unwrap();
        assert_eq!(la, lb);
        let entries = kiln_base_entries(&KilnBase::default()).unwrap();
        assert!(entries
            .iter()
            .all(|e| !matches!(e.source, crate::layer::EntrySource::Path { .. })));
        let again = build_kiln_base(
            &BlobStore::open(a.path()).unwrap(),
            &KilnBase::default(),
            &LayerRecipe::default().with_mtime(1),
        )
        .unwrap();
        assert_ne!(
            again.diff_id, la.diff_id,
            "mtime must reach the tar headers"
        );
    }

    #[test]
    fn tzdata_is_copied_sorted_with_symlinks() {
        let zi = tempfile::tempdir().unwrap();
        fs::create_dir_all(zi.path().join("Europe")).unwrap();
        fs::write(zi.path().join("Europe/Paris"), b"TZif-paris").unwrap();
        fs::write(zi.path().join("UTC"), b"TZif-utc").unwrap();
        std::os::unix::fs::symlink("UTC", zi.path().join("Etc-UTC")).unwrap();
        let opts = KilnBase {
            tzdata: Some(zi.path().to_path_buf()),
            ..KilnBase::default()
        };
        let entries = kiln_base_entries(&opts).unwrap();
        let tz: Vec<&str> = entries
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| p.starts_with("usr/share/zoneinfo/"))
            .collect();
        assert_eq!(
            tz,
            [
                "usr/share/zoneinfo/Etc-UTC",
                "usr/share/zoneinfo/Europe",
                "usr/share/zoneinfo/Europe/Paris",
                "usr/share/zoneinfo/UTC"
            ]
        );
        assert!(entries
            .iter()
            .any(|e| e.source == crate::layer::EntrySource::Symlink("UTC".into())));
        let store_dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let with = build_kiln_base(&store, &opts, &LayerRecipe::default()).unwrap();
        let without =
            build_kiln_base(&store, &KilnBase::default(), &LayerRecipe::default()).unwrap();
        assert_ne!(with.diff_id, without.diff_id);
    }
}
