//! Packing: binaries and data files into layers, images per platform, an index per service, and
//! tags in the OCI layout.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kiln_cache::{CacheBucket, LocalStore};
use kiln_oci::{
    assemble_image, assemble_index, build_layer_cached, rfc3339, size_report, BaseImage, BlobStore,
    CacheOutcome, Descriptor, ImageConfig, LayerEntry, LayerRecipe, LayerRecords, OciLayout,
    SizeReport, StoredJson, ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME,
};
use kiln_registry::{Client, ClientConfig};
use kiln_types::{Digest, Platform};
use serde::Serialize;

use crate::base::{kiln_base, pull_base, BaseInfo};
use crate::error::{ImageError, Result};
use crate::locations::BlobLocations;
use crate::records::StoreLayerRecords;
use crate::request::{BaseChoice, ImageRequest, PlatformBinary, ServiceImage};

/// Progress events of packaging. Every method has an empty default; called from worker threads.
pub trait Reporter: Sync {
    /// A base is being pulled from a registry.
    fn pulling_base(&self, _reference: &str, _platform: &Platform) {}
    /// One platform image of a service is done.
    fn packed(&self, _service: &str, _image: &PlatformImage) {}
    /// Something worth a warning that does not fail packaging (e.g. a cache store error).
    fn warn(&self, _message: &str) {}
}

/// A [`Reporter`] that ignores everything.
pub struct NoReporter;

impl Reporter for NoReporter {}

/// Where the packager writes and caches.
#[derive(Clone, Debug)]
pub struct PackagerOptions {
    /// The OCI image layout to write (`dist/oci`).
    pub layout_dir: PathBuf,
    /// kiln's cache: layer records go to its [`CacheBucket::ImageLayers`] bucket, pulled base
    /// blobs to [`CacheBucket::PulledBlobs`].
    pub cache: LocalStore,
    /// Registry client settings (for pulling bases and pushing).
    pub registry: ClientConfig,
    /// Worker threads for packing (1 or more).
    pub jobs: usize,
}

/// The binary layer of an image.
#[derive(Clone, Debug, Serialize)]
pub struct BinaryInfo {
    /// Path inside the image.
    pub path: String,
    /// Digest of the binary.
    pub digest: Digest,
    /// Size of the binary.
    pub size: u64,
}

/// One platform image of a service.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformImage {
    /// Platform.
    pub platform: Platform,
    /// Image manifest (exact bytes kept, not serialised).
    pub manifest: StoredJson,
    /// Image config.
    pub config: StoredJson,
    /// Base it was built on.
    pub base: BaseInfo,
    /// The packaged binary.
    pub binary: BinaryInfo,
    /// Layers reused from the layer cache (nothing packed).
    pub layers_reused: usize,
    /// Layers packed in this run.
    pub layers_packed: usize,
    /// Sizes.
    pub size: SizeReport,
    /// Every layer descriptor, bottom first (for pushing and archives).
    #[serde(skip)]
    pub layers: Vec<Descriptor>,
}

/// The image(s) of one service.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceOutput {
    /// Service name.
    pub service: String,
    /// Tag.
    pub tag: String,
    /// Name in the OCI layout's `index.json` (`<service>:<tag>`).
    pub layout_ref: String,
    /// Root: the index when several platforms, else the single manifest.
    pub root: StoredJson,
    /// Per-platform images, in request order.
    pub platforms: Vec<PlatformImage>,
}

impl ServiceOutput {
    /// Digest of the root (what `--push` tags and what users pin).
    pub fn digest(&self) -> Digest {
        self.root.digest
    }

    /// Whether the root is an image index.
    pub fn is_index(&self) -> bool {
        self.root.media_type == kiln_oci::MEDIA_INDEX
    }
}

/// Result of [`Packager::package`].
#[derive(Clone, Debug, Serialize)]
pub struct PackageReport {
    /// The OCI layout written.
    pub layout: PathBuf,
    /// One entry per service, in request order.
    pub images: Vec<ServiceOutput>,
    /// Layers packed in this run (over all images, base layers included).
    pub layers_packed: usize,
    /// Layers reused from the layer cache.
    pub layers_reused: usize,
    /// Wall time.
    pub duration_ms: u64,
}

/// Packs images into an OCI layout, writes archives and pushes. One per `kiln image` run.
pub struct Packager {
    pub(crate) layout: OciLayout,
    /// Layout blobs verified in earlier runs (saved after packing).
    vouched: Arc<kiln_types::VouchedFiles>,
    pub(crate) cache: LocalStore,
    pulled: BlobStore,
    pub(crate) client: Client,
    pub(crate) rt: tokio::runtime::Runtime,
    jobs: usize,
}

/// A resolved base, shared by every image built on it.
type ResolvedBase = Arc<(BaseImage, BaseInfo)>;

/// One packing run (see [`Packager::session`]): bases resolved once and shared, the layer
/// records, and the counters of the run. `pack` may be called from several threads at once.
pub struct PackSession<'a> {
    packager: &'a Packager,
    req: &'a ImageRequest,
    reporter: &'a dyn Reporter,
    records: StoreLayerRecords<'a>,
    /// By (base and recipe, platform when the base differs per platform).
    bases: Mutex<HashMap<(String, String), ResolvedBase>>,
    packed: AtomicUsize,
    reused: AtomicUsize,
    started: Instant,
}

impl Packager {
    /// Opens (or creates) the layout and the caches. `reporter` receives the registry client's
    /// events (retries, blob progress).
    pub fn new(
        opts: &PackagerOptions,
        reporter: Option<Arc<dyn kiln_registry::Reporter>>,
    ) -> Result<Self> {
        let layout = if opts.layout_dir.join("oci-layout").is_file() {
            OciLayout::open(&opts.layout_dir)?
        } else {
            OciLayout::create(&opts.layout_dir)?
        };
        // Reused layers are verified by content unless their blob file is unchanged since it
        // last was (one record for every layout this cache serves, by absolute blob path).
        let vouched = Arc::new(kiln_types::VouchedFiles::load(
            opts.cache
                .bucket_dir(CacheBucket::Keys)
                .ok()
                .map(|d| d.join("layout-blobs.json")),
        ));
        let layout = layout.with_vouched(vouched.clone());
        let client = match reporter {
            Some(r) => Client::with_reporter(opts.registry.clone(), r),
            None => Client::new(opts.registry.clone()),
        }
        .map_err(|source| ImageError::Registry {
            what: "creating the registry client".into(),
            error: source,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ImageError::Runtime)?;
        Ok(Self {
            pulled: BlobStore::open(opts.cache.bucket_dir(CacheBucket::PulledBlobs)?)?,
            cache: opts.cache.clone(),
            layout,
            vouched,
            client,
            rt,
            jobs: opts.jobs.max(1),
        })
    }

    /// The OCI layout images are written to.
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }

    /// Packs every service of `req` for every platform, tags `<service>:<tag>` in the layout.
    /// Layers whose inputs (binary digest, files, modes, recipe) are unchanged are taken from the
    /// layer cache without repacking; configs and manifests are cheap and always re-assembled.
    pub fn package(&self, req: &ImageRequest, reporter: &dyn Reporter) -> Result<PackageReport> {
        let session = self.session(req, reporter)?;
        let jobs: Vec<(&ServiceImage, &PlatformBinary)> = req
            .services
            .iter()
            .flat_map(|s| s.binaries.iter().map(move |b| (s, b)))
            .collect();
        let results: Mutex<BTreeMap<usize, Result<PlatformImage>>> = Mutex::new(BTreeMap::new());
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.min(jobs.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((svc, bin)) = jobs.get(i) else { break };
                    let r = session.pack(svc, bin);
                    if let Ok(mut m) = results.lock() {
                        m.insert(i, r);
                    }
                });
            }
        });
        let mut results = results
            .into_inner()
            .map_err(|_| ImageError::Invalid("a packing thread panicked".into()))?
            .into_values();
        let mut images = Vec::new();
        for s in &req.services {
            let mut platforms = Vec::with_capacity(s.binaries.len());
            for _ in &s.binaries {
                let r = results.next().ok_or_else(|| {
                    ImageError::Invalid("a packing job produced no result".into())
                })?;
                platforms.push(r?);
            }
            images.push((s, platforms));
        }
        session.finish(images)
    }

    /// Starts a packing run for `req`, whose services may still lack their binaries: the
    /// pipeline packs each platform image with [`PackSession::pack`] as soon as its build is done,
    /// then tags everything with [`PackSession::finish`]. Checks what can be checked before any
    /// binary exists (platforms, data files) and warns about low ports.
    pub fn session<'a>(
        &'a self,
        req: &'a ImageRequest,
        reporter: &'a dyn Reporter,
    ) -> Result<PackSession<'a>> {
        for s in &req.services {
            s.check_platforms()?;
            if let Some(w) = crate::ports::low_port_warning(s) {
                reporter.warn(&w);
            }
            for f in &s.files {
                std::fs::metadata(&f.src).map_err(|source| ImageError::DataFile {
                    path: f.src.clone(),
                    dst: f.dst.clone(),
                    error: source,
                })?;
            }
        }
        Ok(PackSession {
            packager: self,
            req,
            reporter,
            records: StoreLayerRecords::new(&self.cache, reporter),
            bases: Mutex::new(HashMap::new()),
            packed: AtomicUsize::new(0),
            reused: AtomicUsize::new(0),
            started: Instant::now(),
        })
    }
}

impl PackSession<'_> {
    /// The base `svc` is built on for `platform`: resolved (pulled, or the kiln base packed) on
    /// first use and shared after. Resolution holds the lock, so a base is pulled once even when
    /// several images ask for it at the same moment.
    fn base(&self, svc: &ServiceImage, platform: &Platform) -> Result<ResolvedBase> {
        let recipe = recipe(svc, self.req.source_date_epoch);
        // Only a pulled base differs per platform; kiln's base is one layer for all.
        let platform_key = match svc.base {
            BaseChoice::Registry(_) => platform.to_string(),
            BaseChoice::Scratch | BaseChoice::Kiln => String::new(),
        };
        let key = (
            format!(
                "{}|{}",
                svc.base,
                serde_json::to_string(&recipe).unwrap_or_default()
            ),
            platform_key,
        );
        let mut bases = self
            .bases
            .lock()
            .map_err(|_| ImageError::Invalid("a packing thread panicked".into()))?;
        if let Some(b) = bases.get(&key) {
            return Ok(b.clone());
        }
        let p = self.packager;
        let resolved = match &svc.base {
            BaseChoice::Scratch => (
                BaseImage::Scratch,
                BaseInfo {
                    name: "scratch".into(),
                    digest: None,
                },
            ),
            BaseChoice::Kiln => {
                let (b, info, o) = kiln_base(
                    p.layout.store(),
                    &self.records,
                    &recipe,
                    self.req.zoneinfo.as_deref(),
                )?;
                self.count(o);
                (b, info)
            }
            BaseChoice::Registry(r) => {
                self.reporter.pulling_base(&r.to_string(), platform);
                let pulled =
                    p.rt.block_on(pull_base(&p.client, r, platform, &p.pulled))?;
                // The base's layers are in its repository: a push to another repository of
                // that registry can mount them.
                if let BaseImage::Pulled(b) = &pulled.0 {
                    BlobLocations::new(&p.cache, self.reporter)
                        .add(&r.repository, b.layers.iter().map(|l| &l.descriptor.digest));
                }
                pulled
            }
        };
        let resolved = Arc::new(resolved);
        bases.insert(key, resolved.clone());
        Ok(resolved)
    }

    fn count(&self, o: CacheOutcome) {
        match o {
            CacheOutcome::Hit => self.reused.fetch_add(1, Ordering::Relaxed),
            CacheOutcome::Miss => self.packed.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Packs the image of `svc` for `bin`'s platform (its layers from the layer cache when their
    /// inputs are unchanged) and reports it as packed.
    pub fn pack(&self, svc: &ServiceImage, bin: &PlatformBinary) -> Result<PlatformImage> {
        svc.check_platform(&bin.platform)?;
        let base = self.base(svc, &bin.platform)?;
        let img = self.pack_one(svc, bin, &base)?;
        self.reporter.packed(&svc.service, &img);
        Ok(img)
    }

    /// Assembles each service's root (its single manifest, or an index over its platform
    /// images in the order given), tags `<service>:<tag>` in the layout and returns the report.
    pub fn finish(self, images: Vec<(&ServiceImage, Vec<PlatformImage>)>) -> Result<PackageReport> {
        let p = self.packager;
        let mut out = Vec::new();
        let mut tags = Vec::new();
        for (s, platforms) in images {
            let root = match platforms.as_slice() {
                [] => {
                    return Err(ImageError::MissingBinary {
                        service: s.service.clone(),
                        platform: "any platform".into(),
                        reason: "no build target".into(),
                    })
                }
                [one] => one.manifest.clone(),
                _ => {
                    let built: Vec<kiln_oci::BuiltImage> = platforms.iter().map(as_built).collect();
                    assemble_index(p.layout.store(), &built, &s.config.annotations)?
                }
            };
            let layout_ref = format!("{}:{}", s.service, s.tag);
            tags.push((layout_ref.clone(), root.descriptor()));
            out.push(ServiceOutput {
                service: s.service.clone(),
                tag: s.tag.clone(),
                layout_ref,
                root,
                platforms,
            });
        }
        p.layout.tag_all(&tags)?;
        if let Err(e) = p.vouched.save() {
            self.reporter.warn(&format!(
                "cannot save the record of verified layout blobs (they are re-hashed next run): {e}"
            ));
        }
        Ok(PackageReport {
            layout: p.layout.root().to_path_buf(),
            images: out,
            layers_packed: self.packed.into_inner(),
            layers_reused: self.reused.into_inner(),
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    fn pack_one(
        &self,
        svc: &ServiceImage,
        bin: &PlatformBinary,
        base: &(BaseImage, BaseInfo),
    ) -> Result<PlatformImage> {
        let (base, base_info) = base;
        let store = self.packager.layout.store();
        let records: &dyn LayerRecords = &self.records;
        let recipe = recipe(svc, self.req.source_date_epoch);
        let bin_path = svc.binary_path();
        let mut layers = Vec::new();
        let (mut reused, mut packed) = (0, 0);
        let mut tally = |o: CacheOutcome| {
            self.count(o);
            match o {
                CacheOutcome::Hit => reused += 1,
                CacheOutcome::Miss => packed += 1,
            }
        };
        // The digest from the build report is trusted for the key (it was verified by the build)
        // and the packer re-hashes while streaming, so a binary changed behind kiln's back fails.
        let entries = [LayerEntry::executable(&bin_path, &bin.path).with_digest(bin.digest)];
        let (layer, o) = build_layer_cached(store, records, &entries, &recipe)?;
        tally(o);
        layers.push(layer);
        if !svc.files.is_empty() {
            let entries: Vec<LayerEntry> = svc
                .files
                .iter()
                .map(|f| LayerEntry::file(&f.dst, &f.src).mode(f.mode))
                .collect();
            let (layer, o) = build_layer_cached(store, records, &entries, &recipe)?;
            tally(o);
            layers.push(layer);
        }
        let config = image_config(svc, base_info, &bin_path);
        let image = assemble_image(store, &bin.platform, base, &layers, &config)?;
        let size = size_report(&image, bin.size);
        Ok(PlatformImage {
            platform: bin.platform.clone(),
            manifest: image.manifest.clone(),
            config: image.config.clone(),
            base: base_info.clone(),
            binary: BinaryInfo {
                path: bin_path,
                digest: bin.digest,
                size: bin.size,
            },
            layers_reused: reused,
            layers_packed: packed,
            size,
            layers: image.layers,
        })
    }
}

fn recipe(svc: &ServiceImage, epoch: u64) -> LayerRecipe {
    LayerRecipe::new(svc.compression).with_mtime(epoch)
}

fn image_config(svc: &ServiceImage, base: &BaseInfo, bin_path: &str) -> ImageConfig {
    let mut c = svc.config.clone();
    if c.entrypoint.is_empty() {
        c.entrypoint = vec![bin_path.to_string()];
    }
    c.labels
        .entry(ANNOTATION_BASE_NAME.into())
        .or_insert_with(|| base.name.clone());
    // A pinned base is recorded twice: as config labels (what `docker inspect` shows) and as
    // manifest annotations (the OCI place, which kiln-supply reads for the SBOM). A pulled base
    // gets the same annotations from `assemble_image`; the kiln base is pinned by its layer.
    if let Some(d) = base.digest {
        c.labels
            .entry(ANNOTATION_BASE_DIGEST.into())
            .or_insert_with(|| d.to_string());
        c.annotations
            .entry(ANNOTATION_BASE_NAME.into())
            .or_insert_with(|| base.name.clone());
        c.annotations
            .entry(ANNOTATION_BASE_DIGEST.into())
            .or_insert_with(|| d.to_string());
    }
    c.labels
        .entry("org.opencontainers.image.created".into())
        .or_insert_with(|| rfc3339(c.created));
    c
}

/// `assemble_index` only reads platform and manifest descriptor from each image.
fn as_built(p: &PlatformImage) -> kiln_oci::BuiltImage {
    kiln_oci::BuiltImage {
        platform: p.platform.clone(),
        config: p.config.clone(),
        manifest: p.manifest.clone(),
        layers: p.layers.clone(),
        base_layers: p.size.layers.iter().filter(|l| l.from_base).count(),
        uncompressed_sizes: p.size.layers.iter().map(|l| l.uncompressed).collect(),
    }
}
