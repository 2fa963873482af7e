//! Outputs besides the OCI layout: archives and registry pushes.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_oci::{write_docker_archive, write_oci_archive, DockerArchiveImage};
use kiln_registry::{
    BlobOutcome, BlobReport, BlobUpload, ImageUpload, ManifestUpload, PushReport, Reference,
    Repository,
};
use kiln_types::Digest;
use serde::Serialize;

use crate::error::{ImageError, Result};
use crate::locations::BlobLocations;
use crate::package::{Packager, PlatformImage, ServiceOutput};

/// Format of `--tarball`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TarballFormat {
    /// An OCI layout in a tar (`skopeo ... oci-archive:FILE`); holds multi-arch indexes.
    OciArchive,
    /// `docker save` format (`docker load`, `podman load`); one entry per platform.
    DockerArchive,
}

impl TarballFormat {
    /// The format a file name suggests: `*.docker.tar` is docker-archive, anything else OCI.
    pub fn from_file_name(path: &Path) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        match name {
            Some(n) if n.ends_with(".docker.tar") => Self::DockerArchive,
            _ => Self::OciArchive,
        }
    }
}

/// Where one service's image goes on `--push`.
#[derive(Clone, Debug, Serialize)]
pub struct PushTarget {
    /// Service name.
    pub service: String,
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
}

/// The outcome of pushing one service.
#[derive(Clone, Debug, Serialize)]
pub struct PushResult {
    /// Service name.
    pub service: String,
    /// `registry/repo:tag`.
    pub reference: String,
    /// Digest of the pushed root (`registry/repo@digest` pulls exactly this).
    pub digest: Digest,
    /// Blobs the registry already had.
    pub skipped: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub bytes_sent: u64,
    /// Of the uploaded and mounted blobs, those sent while the build still ran (the image
    /// pipeline uploads each image's blobs as soon as it is packed); counted in `uploaded` and
    /// `mounted` too.
    pub sent_early: usize,
    /// The client's full report.
    pub report: PushReport,
}

impl PushResult {
    /// Counts blobs this run sent ahead of the push ([`Packager::push_blobs`]) as what they
    /// were then (uploaded or mounted) instead of as found in place, so a push reports the same
    /// whether or not its blobs went up early.
    pub fn count_early_blobs(&mut self, early: &[BlobReport]) {
        for b in &mut self.report.blobs {
            if b.outcome != BlobOutcome::Skipped {
                continue;
            }
            if let Some(e) = early
                .iter()
                .find(|e| e.digest == b.digest && e.outcome != BlobOutcome::Skipped)
            {
                if let BlobOutcome::Uploaded { bytes_sent, .. } = &e.outcome {
                    self.report.bytes_sent += bytes_sent;
                }
                b.outcome = e.outcome.clone();
                if b.outcome != BlobOutcome::Skipped {
                    self.sent_early += 1;
                }
            }
        }
        self.skipped = self.report.skipped();
        self.mounted = self.report.mounted();
        self.uploaded = self.report.uploaded();
        self.bytes_sent = self.report.bytes_sent;
    }
}

/// Maps `--push DEST` to one target per service. With several services `DEST` is a prefix
/// (`127.0.0.1:5000/team` -> `127.0.0.1:5000/team/<service>:<tag>`); with one service a full
/// `repo:tag` is accepted as is, and a reference without a tag is taken as the repository.
pub fn push_targets(dest: &str, images: &[ServiceOutput]) -> Result<Vec<PushTarget>> {
    let named: Vec<(&str, &str)> = images
        .iter()
        .map(|i| (i.service.as_str(), i.tag.as_str()))
        .collect();
    push_targets_named(dest, &named)
}

/// [`push_targets`] from `(service, tag)` pairs, so a push destination can be checked (and its
/// early blob uploads aimed) before any image exists.
pub fn push_targets_named(dest: &str, images: &[(&str, &str)]) -> Result<Vec<PushTarget>> {
    let dest = dest.trim_end_matches('/');
    let last = dest.rsplit('/').next().unwrap_or(dest);
    if last.contains('@') {
        return Err(ImageError::Invalid(format!(
            "--push {dest}: a digest cannot be pushed to; give a repository or repo:tag"
        )));
    }
    let explicit_tag = dest.contains('/') && last.contains(':');
    let parse = |s: &str| -> Result<Reference> {
        s.parse::<Reference>()
            .map_err(|e| ImageError::Invalid(format!("--push {s}: {e}")))
    };
    if images.len() == 1 && (explicit_tag || last == images[0].0) {
        let r = parse(dest)?;
        let tag = if explicit_tag {
            r.tag.clone().unwrap_or_else(|| images[0].1.to_string())
        } else {
            images[0].1.to_string()
        };
        return Ok(vec![PushTarget {
            service: images[0].0.to_string(),
            repository: r.repository.to_string(),
            tag,
        }]);
    }
    if explicit_tag {
        return Err(ImageError::Invalid(format!(
            "--push {dest}: a tag is only accepted with a single service; with {} services give a prefix like 127.0.0.1:5000/team (each is pushed as <prefix>/<service>:<tag>)",
            images.len()
        )));
    }
    images
        .iter()
        .map(|(service, tag)| {
            let r = parse(&format!("{dest}/{service}:{tag}"))?;
            Ok(PushTarget {
                service: service.to_string(),
                repository: r.repository.to_string(),
                tag: tag.to_string(),
            })
        })
        .collect()
}

impl Packager {
    /// Writes `images` as one archive. oci-archive keeps indexes and tags them `<service>:<tag>`;
    /// docker-archive holds one entry per platform, tagged `<service>:<tag>` for single-platform
    /// images and `<service>:<tag>-<os>-<arch>[-<variant>]` otherwise.
    pub fn write_tarball(
        &self,
        images: &[ServiceOutput],
        out: &Path,
        format: TarballFormat,
    ) -> Result<()> {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| kiln_oci::OciError::Io {
                action: "creating",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let store = self.layout.store();
        match format {
            TarballFormat::OciArchive => {
                let refs: Vec<_> = images
                    .iter()
                    .map(|i| (i.layout_ref.clone(), i.root.descriptor()))
                    .collect();
                write_oci_archive(store, &refs, out)?;
            }
            TarballFormat::DockerArchive => {
                let mut entries = Vec::new();
                for i in images {
                    for p in &i.platforms {
                        let tag = if i.platforms.len() == 1 {
                            i.layout_ref.clone()
                        } else {
                            format!(
                                "{}-{}",
                                i.layout_ref,
                                p.platform.to_string().replace('/', "-")
                            )
                        };
                        entries.push(DockerArchiveImage {
                            manifest: p.manifest.descriptor(),
                            repo_tags: vec![tag],
                        });
                    }
                }
                write_docker_archive(store, &entries, out)?;
            }
        }
        Ok(())
    }

    /// Pushes every image to its target: blobs the registry has are only HEADed, blobs another
    /// repository of the same registry holds are mounted from it (see [`crate::locations`]),
    /// the rest are streamed from the layout; manifests are sent as the exact bytes that were
    /// hashed.
    ///
    /// Images go in two waves: first those that need nothing another image of this push
    /// uploads, then the others, which mount what the first wave put on their registry (a
    /// monorepo's services share their base layer). Pushed blobs are recorded as living in
    /// their repository for later pushes; a failure to read or write those records is a warning
    /// to `reporter` (it only costs mounts).
    pub fn push(
        &self,
        images: &[ServiceOutput],
        targets: &[PushTarget],
        reporter: &dyn crate::Reporter,
    ) -> Result<Vec<PushResult>> {
        let by_service: BTreeMap<&str, &ServiceOutput> =
            images.iter().map(|i| (i.service.as_str(), i)).collect();
        let locations = BlobLocations::new(&self.cache, reporter);
        let mut uploads = Vec::new();
        for t in targets {
            let img = by_service.get(t.service.as_str()).ok_or_else(|| {
                ImageError::Invalid(format!("no image was built for service `{}`", t.service))
            })?;
            let repo = repository_of(t)?;
            uploads.push((repo, self.upload_of(img, &t.tag)));
        }
        // Images already in place (every tag at the root digest) need nothing: one HEAD each, all
        // at once, before any per-blob work. Only the rest get mount sources, waves and pushes.
        let in_place = self.rt.block_on(self.client.already_pushed(&uploads));
        let mut results: BTreeMap<usize, _> = BTreeMap::new();
        let mut pending = Vec::new();
        for (i, (upload, done)) in uploads.iter().zip(in_place).enumerate() {
            match done {
                Some(report) => {
                    results.insert(i, Ok(report));
                }
                None => {
                    let (repo, mut upload) = upload.clone();
                    for b in &mut upload.blobs {
                        b.mount_from = locations.mount_source(&b.digest, &repo);
                    }
                    pending.push((i, (repo, upload)));
                }
            }
        }
        let (pending_idx, mut pending): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
        let second_wave = plan_waves(&mut pending);
        let (first, second): (Vec<_>, Vec<_>) = pending_idx
            .into_iter()
            .zip(pending)
            .enumerate()
            .partition(|(k, _)| !second_wave.contains(k));
        let strip = |w: Vec<(usize, (usize, Upload))>| -> (Vec<usize>, Vec<Upload>) {
            w.into_iter().map(|(_, iu)| iu).unzip()
        };
        let (first_idx, first) = strip(first);
        let (second_idx, second) = strip(second);
        for (idx, wave) in [(first_idx, first), (second_idx, second)] {
            if wave.is_empty() {
                continue;
            }
            let done = self.rt.block_on(self.client.push_images(&wave));
            for ((i, (repo, upload)), r) in idx.into_iter().zip(&wave).zip(done) {
                if r.is_ok() {
                    locations.add(repo, upload.blobs.iter().map(|b| &b.digest));
                }
                results.insert(i, r);
            }
        }
        let mut out = Vec::new();
        for ((t, (repo, _)), (_, r)) in targets.iter().zip(&uploads).zip(results) {
            let report = r.map_err(|source| ImageError::Registry {
                what: format!("pushing {repo}:{}", t.tag),
                error: source,
            })?;
            out.push(PushResult {
                service: t.service.clone(),
                reference: format!("{repo}:{}", t.tag),
                digest: report.digest.unwrap_or_else(|| Digest::of_bytes(&[])),
                skipped: report.skipped(),
                mounted: report.mounted(),
                uploaded: report.uploaded(),
                bytes_sent: report.bytes_sent,
                sent_early: 0,
                report,
            });
        }
        Ok(out)
    }

    /// Uploads the blobs of one platform image (config and layers) to `target`'s repository
    /// ahead of its manifest: the image pipeline sends them while other targets still compile,
    /// and the final [`Packager::push`] then finds them there (one HEAD each). Nothing is tagged
    /// or made visible: blobs without a manifest are what a failed build leaves behind, at worst.
    /// Blobs go up one after the other (an image has two or three; images go up concurrently
    /// from the pipeline's workers); a blob another repository of the registry is known to hold
    /// is mounted from it.
    pub fn push_blobs(
        &self,
        image: &PlatformImage,
        target: &PushTarget,
        reporter: &dyn crate::Reporter,
    ) -> Result<Vec<BlobReport>> {
        let repo = repository_of(target)?;
        let locations = BlobLocations::new(&self.cache, reporter);
        let store = self.layout.store();
        let blobs: Vec<BlobUpload> = std::iter::once(&image.config.descriptor())
            .chain(&image.layers)
            .map(|d| BlobUpload {
                digest: d.digest,
                size: d.size,
                path: store.path(&d.digest),
                mount_from: locations.mount_source(&d.digest, &repo),
            })
            .collect();
        let mut reports = Vec::with_capacity(blobs.len());
        for b in &blobs {
            let outcome = self
                .rt
                .block_on(self.client.push_blob_upload(&repo, b))
                .map_err(|source| ImageError::Registry {
                    what: format!("uploading the blobs of {repo}:{}", target.tag),
                    error: source,
                })?;
            reports.push(BlobReport {
                digest: b.digest,
                size: b.size,
                outcome,
            });
        }
        locations.add(&repo, blobs.iter().map(|b| &b.digest));
        Ok(reports)
    }

    fn upload_of(&self, img: &ServiceOutput, tag: &str) -> ImageUpload {
        let store = self.layout.store();
        let mut blobs = Vec::new();
        let mut manifests = Vec::new();
        for p in &img.platforms {
            for d in std::iter::once(&p.config.descriptor()).chain(&p.layers) {
                blobs.push(BlobUpload {
                    digest: d.digest,
                    size: d.size,
                    path: store.path(&d.digest),
                    mount_from: None,
                });
            }
            if img.is_index() {
                manifests.push(ManifestUpload {
                    media_type: p.manifest.media_type.clone(),
                    bytes: p.manifest.bytes.clone(),
                });
            }
        }
        ImageUpload {
            blobs,
            manifests,
            root: Some(ManifestUpload {
                media_type: img.root.media_type.clone(),
                bytes: img.root.bytes.clone(),
            }),
            tags: vec![tag.to_string()],
        }
    }
}

/// The repository a push target names.
fn repository_of(t: &PushTarget) -> Result<Repository> {
    let (registry, name) = t
        .repository
        .split_once('/')
        .ok_or_else(|| ImageError::Invalid(format!("bad repository `{}`", t.repository)))?;
    Repository::new(registry, name).map_err(|source| ImageError::Registry {
        what: format!("pushing {}", t.service),
        error: source,
    })
}

/// One image to push and where.
type Upload = (Repository, ImageUpload);

/// Splits a push into two waves: an upload that sends a blob an earlier upload also sends to
/// another repository of the same registry goes second and mounts it from there (unless a
/// recorded location already gives it a source). Returns the indexes of the second wave.
fn plan_waves(uploads: &mut [(Repository, ImageUpload)]) -> std::collections::BTreeSet<usize> {
    // Blob -> the first-wave repository sending it, per registry.
    let mut sent: BTreeMap<(String, Digest), String> = BTreeMap::new();
    let mut second = std::collections::BTreeSet::new();
    for (i, (repo, upload)) in uploads.iter_mut().enumerate() {
        let mut waits = false;
        for b in &mut upload.blobs {
            if b.mount_from.is_some() {
                continue;
            }
            if let Some(from) = sent.get(&(repo.registry.clone(), b.digest)) {
                if from != &repo.name {
                    b.mount_from = Some(from.clone());
                    waits = true;
                }
            }
        }
        if waits {
            second.insert(i);
        } else {
            for b in &upload.blobs {
                sent.entry((repo.registry.clone(), b.digest))
                    .or_insert_with(|| repo.name.clone());
            }
        }
    }
    second
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_oci::StoredJson;

    fn img(service: &str) -> ServiceOutput {
        ServiceOutput {
            service: service.into(),
            tag: "v1".into(),
            layout_ref: format!("{service}:v1"),
            root: StoredJson {
                media_type: kiln_oci::MEDIA_MANIFEST.into(),
                digest: Digest::of_bytes(b"{}"),
                bytes: b"{}".to_vec(),
            },
            platforms: Vec::new(),
        }
    }

    fn spelled(t: &[PushTarget]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}={}:{}", t.service, t.repository, t.tag))
            .collect()
    }

    #[test]
    fn several_services_push_under_a_prefix() {
        let images = [img("api"), img("worker")];
        let t = push_targets("127.0.0.1:5000/team", &images).unwrap();
        assert_eq!(
            spelled(&t),
            [
                "api=127.0.0.1:5000/team/api:v1",
                "worker=127.0.0.1:5000/team/worker:v1"
            ]
        );
        let e = push_targets("127.0.0.1:5000/team/api:v2", &images).unwrap_err();
        assert!(e.to_string().contains("single service"), "{e}");
        assert!(push_targets("127.0.0.1:5000/team@sha256:00", &images).is_err());
    }

    #[test]
    fn one_service_accepts_a_full_reference() {
        let images = [img("api")];
        let full = push_targets("127.0.0.1:5000/team/api:v1.2.0", &images).unwrap();
        assert_eq!(spelled(&full), ["api=127.0.0.1:5000/team/api:v1.2.0"]);
        let repo = push_targets("ghcr.io/acme/api", &images).unwrap();
        assert_eq!(spelled(&repo), ["api=ghcr.io/acme/api:v1"]);
        let prefix = push_targets("ghcr.io/acme/", &images).unwrap();
        assert_eq!(spelled(&prefix), ["api=ghcr.io/acme/api:v1"]);
    }

    fn upload(blobs: &[&[u8]]) -> ImageUpload {
        ImageUpload {
            blobs: blobs
                .iter()
                .map(|b| BlobUpload {
                    digest: Digest::of_bytes(b),
                    size: b.len() as u64,
                    path: "unused".into(),
                    mount_from: None,
                })
                .collect(),
            ..ImageUpload::default()
        }
    }

    #[test]
    fn issue_9_shared_blobs_go_second_and_mount_from_the_first() {
        let repo = |r: &str, n: &str| Repository::new(r, n).unwrap();
        let mut uploads = vec![
            (repo("reg:5000", "team/api"), upload(&[b"base", b"api"])),
            (
                repo("reg:5000", "team/worker"),
                upload(&[b"base", b"worker"]),
            ),
            (repo("other:5000", "team/cron"), upload(&[b"base", b"cron"])),
            (repo("reg:5000", "team/api"), upload(&[b"base", b"api2"])),
        ];
        let second = plan_waves(&mut uploads);
        assert_eq!(second.into_iter().collect::<Vec<_>>(), [1]);
        let mounts = |i: usize| -> Vec<Option<String>> {
            uploads[i]
                .1
                .blobs
                .iter()
                .map(|b| b.mount_from.clone())
                .collect()
        };
        assert_eq!(mounts(1), [Some("team/api".to_string()), None]);
        assert_eq!(mounts(2), [None, None], "another registry uploads");
        assert_eq!(
            mounts(3),
            [None, None],
            "the same repository needs no mount"
        );
    }

    #[test]
    fn docker_archive_is_chosen_by_name() {
        assert_eq!(
            TarballFormat::from_file_name(Path::new("dist/a.docker.tar")),
            TarballFormat::DockerArchive
        );
        assert_eq!(
            TarballFormat::from_file_name(Path::new("dist/a.tar")),
            TarballFormat::OciArchive
        );
    }
}
