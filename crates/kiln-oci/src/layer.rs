use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use flate2::write::GzEncoder;
use kiln_types::{Digest, Sha256Writer};
use serde::{Deserialize, Serialize};

use crate::descriptor::{Descriptor, MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, MEDIA_LAYER_ZSTD};
use crate::error::{io_err, OciError, Result};
use crate::store::BlobStore;
use crate::tarw::{Header, Kind, TarWriter};

/// How a layer's tar stream is compressed. Compressed bytes (and so the layer digest) depend on the
/// algorithm, its level and its thread mode, so all three are pinned here and belong in cache keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum Compression {
    /// No compression (`tar`).
    None,
    /// gzip through flate2's zlib-rs backend, single stream (identical output on any core count).
    Gzip {
        /// Level 0..=9.
        level: u32,
    },
    /// gzip in pigz-style block mode (gzp `ParCompress`, fixed 128 KiB blocks, each primed with
    /// the previous block's 32 KiB as dictionary). The block layout, not the thread count, decides
    /// the bytes, so output is identical whatever the machine's core count; threads are chosen at
    /// run time from the available cores. Standard gzip: any reader can decompress it.
    #[serde(rename = "gzip-parallel")]
    GzipParallel {
        /// Level 0..=9.
        level: u32,
    },
    /// zstd in multithreaded mode with a fixed worker count (output depends on it, so it is pinned;
    /// 0 workers would select a different, single-threaded format of the frame).
    Zstd {
        /// Level 1..=22.
        level: i32,
        /// Worker threads, at least 1.
        workers: u32,
    },
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(&self) -> &'static str {
        match self {
            Self::None => MEDIA_LAYER_TAR,
            Self::Gzip { .. } | Self::GzipParallel { .. } => MEDIA_LAYER_GZIP,
            Self::Zstd { .. } => MEDIA_LAYER_ZSTD,
        }
    }
}

impl Compression {
    /// Rejects settings that would be silently adjusted (and so make the recipe lie about the
    /// bytes it produced).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Gzip { level } | Self::GzipParallel { level } if level > 9 => Err(OciError::InvalidConfig(format!(
                "gzip level {level} is out of range; use 0..=9"
            ))),
            Self::Zstd { level, .. } if !(1..=22).contains(&level) => Err(OciError::InvalidConfig(
                format!("zstd level {level} is out of range; use 1..=22"),
            )),
            Self::Zstd { workers: 0, .. } => Err(OciError::InvalidConfig(
                "zstd needs at least 1 worker: 0 selects a different frame layout, so the layer digest would change".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The default: block-mode gzip at level 2, chosen by measurement against ko (issue 12,
/// docs/benchmarks.md): level 2 is the lowest whose layers are no larger than ko's (0.96x)
/// while packing 1.6-2x faster than ko; level 1 is 16% larger than ko's, level 6 no faster than
/// ko. Block mode uses the cores a lone large layer would leave idle, and its bytes do not depend
/// on how many there are.
impl Default for Compression {
    fn default() -> Self {
        Self::GzipParallel { level: 2 }
    }
}

/// Everything besides the entries that determines a layer's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecipe {
    /// Compression settings.
    pub compression: Compression,
    /// Which compressor implementation (changing it changes bytes).
    pub backend: String,
    /// Modification time of every entry, seconds since the epoch (`SOURCE_DATE_EPOCH` or 0).
    pub mtime: u64,
    /// Owner of entries that do not set one, and of implied parent directories.
    pub uid: u64,
    /// Group of entries that do not set one, and of implied parent directories.
    pub gid: u64,
}

impl LayerRecipe {
    /// A recipe with the given compression, mtime 0 and root ownership.
    pub fn new(compression: Compression) -> Self {
        let backend = match compression {
            Compression::None => "none",
            Compression::Gzip { .. } => "flate2-zlib-rs",
            Compression::GzipParallel { .. } => "gzp-block-flate2-zlib-rs",
            Compression::Zstd { .. } => "zstd-zstdmt",
        };
        Self {
            compression,
            backend: backend.to_string(),
            mtime: 0,
            uid: 0,
            gid: 0,
        }
    }

    /// Sets the mtime (use the caller's `SOURCE_DATE_EPOCH`).
    pub fn with_mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }
}

impl Default for LayerRecipe {
    fn default() -> Self {
        Self::new(Compression::default())
    }
}

/// Where an entry's content comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntrySource {
    /// A directory.
    Dir,
    /// A regular file streamed from disk; `digest` may be given when the caller already knows it
    /// (it only feeds cache keys, the file is read when packing).
    Path {
        /// The source file.
        src: PathBuf,
        /// Known content digest, if any.
        digest: Option<Digest>,
    },
    /// A regular file with in-memory content.
    Bytes(Vec<u8>),
    /// A symbolic link to the given target.
    Symlink(String),
}

/// One entry of a layer: an absolute or relative image path, its source, mode and owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Normalised path without leading `/` (`app`, `etc/passwd`).
    pub path: String,
    /// Content.
    pub source: EntrySource,
    /// Permission bits (including sticky/setuid bits).
    pub mode: u32,
    /// Owner; `None` uses the recipe's.
    pub uid: Option<u64>,
    /// Group; `None` uses the recipe's.
    pub gid: Option<u64>,
}

impl LayerEntry {
    fn new(path: &str, source: EntrySource, mode: u32) -> Self {
        Self {
            path: path.to_string(),
            source,
            mode,
            uid: None,
            gid: None,
        }
    }

    /// A directory with mode 0755.
    pub fn dir(path: &str) -> Self {
        Self::new(path, EntrySource::Dir, 0o755)
    }

    /// A regular file streamed from `src`, mode 0644.
    pub fn file(path: &str, src: impl Into<PathBuf>) -> Self {
        Self::new(
            path,
            EntrySource::Path {
                src: src.into(),
                digest: None,
            },
            0o644,
        )
    }

    /// An executable streamed from `src`, mode 0755.
    pub fn executable(path: &str, src: impl Into<PathBuf>) -> Self {
        Self::new(
            path,
            EntrySource::Path {
                src: src.into(),
                digest: None,
            },
            0o755,
        )
    }

    /// A regular file with the given content, mode 0644.
    pub fn bytes(path: &str, content: impl Into<Vec<u8>>) -> Self {
        Self::new(path, EntrySource::Bytes(content.into()), 0o644)
    }

    /// A symlink `path -> target`, mode 0777.
    pub fn symlink(path: &str, target: &str) -> Self {
        Self::new(path, EntrySource::Symlink(target.to_string()), 0o777)
    }

    /// Overrides the mode.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = Some(uid);
        self.gid = Some(gid);
        self
    }

    /// Records the known digest of a path-sourced file (for cache keys).
    pub fn with_digest(mut self, digest: Digest) -> Self {
        if let EntrySource::Path { digest: d, .. } = &mut self.source {
            *d = Some(digest);
        }
        self
    }
}

/// A layer written to a blob store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltLayer {
    /// Descriptor of the compressed blob.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar (goes into the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// Normalises a path: strips leading `/`, rejects `.`, `..` and empty components.
pub(crate) fn normalize(path: &str) -> Result<String> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        || trimmed.contains('\0')
    {
        return Err(OciError::InvalidPath(path.to_string()));
    }
    Ok(trimmed.to_string())
}

/// Sorts entries, adds implied parent directories and rejects duplicates.
pub(crate) fn plan_entries(entries: &[LayerEntry]) -> Result<BTreeMap<String, LayerEntry>> {
    let mut map = BTreeMap::new();
    for e in entries {
        let path = normalize(&e.path)?;
        let mut e = e.clone();
        e.path.clone_from(&path);
        if map.insert(path.clone(), e).is_some() {
            return Err(OciError::DuplicateEntry(path));
        }
    }
    let paths: Vec<String> = map.keys().cloned().collect();
    for p in paths {
        let mut parent = p.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            match map.get(dir) {
                Some(d) if d.source != EntrySource::Dir => {
                    return Err(OciError::NotADirectory(dir.to_string()))
                }
                Some(_) => {}
                None => {
                    map.insert(dir.to_string(), LayerEntry::dir(dir));
                }
            }
            parent = dir;
        }
    }
    Ok(map)
}

/// Where compressed bytes go: hashed, buffered, into the temp blob (owned, so the parallel gzip
/// writer thread can take it).
type Sink = Sha256Writer<BufWriter<File>>;

enum Encoder {
    None(Sink),
    Gzip(GzEncoder<Sink>),
    GzipParallel(ParGzip<Sink>),
    Zstd(zstd::stream::write::Encoder<'static, Sink>),
}

impl Encoder {
    fn new(w: Sink, c: Compression) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Self::None(w),
            // GzBuilder's defaults (mtime 0, no name, OS 255) keep the header reproducible.
            Compression::Gzip { level } => {
                Self::Gzip(flate2::GzBuilder::new().write(w, flate2::Compression::new(level)))
            }
            Compression::GzipParallel { level } => {
                let threads = std::thread::available_parallelism().map_or(1, usize::from);
                Self::GzipParallel(par_gzip(w, level, threads)?)
            }
            Compression::Zstd { level, workers } => {
                let mut e = zstd::stream::write::Encoder::new(w, level)?;
                e.multithread(workers)?;
                e.include_checksum(false)?;
                Self::Zstd(e)
            }
        })
    }

    fn finish(self) -> io::Result<Sink> {
        match self {
            Self::None(w) => Ok(w),
            Self::Gzip(e) => e.finish(),
            Self::GzipParallel(mut e) => {
                use gzp::ZWriter as _;
                e.finish().map_err(io::Error::other)
            }
            Self::Zstd(e) => e.finish(),
        }
    }
}

type ParGzip<W> = gzp::par::compress::ParCompress<'static, gzp::deflate::Gzip, W>;

fn par_gzip<W: Write + Send + 'static>(w: W, level: u32, threads: usize) -> io::Result<ParGzip<W>> {
    Ok(
        gzp::par::compress::ParCompressBuilder::<gzp::deflate::Gzip>::new()
            // Pinned explicitly: the block size is what the output depends on.
            .buffer_size(gzp::BUFSIZE)
            .map_err(io::Error::other)?
            .num_threads(threads.max(1))
            .map_err(io::Error::other)?
            .compression_level(flate2::Compression::new(level))
            .from_writer(w),
    )
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::None(w) => w.write(buf),
            Self::Gzip(e) => e.write(buf),
            Self::GzipParallel(e) => e.write(buf),
            Self::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::None(w) => w.flush(),
            Self::Gzip(e) => e.flush(),
            Self::GzipParallel(e) => e.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}

/// Builds a layer in one streaming pass: tar -> sha256 (diff_id) -> compressor -> sha256 (digest)
/// -> temp file in `store`, renamed to `blobs/sha256/<hex>`. Memory stays bounded by buffer sizes
/// whatever the size of the files.
pub fn build_layer(
    store: &BlobStore,
    entries: &[LayerEntry],
    recipe: &LayerRecipe,
) -> Result<BuiltLayer> {
    recipe.compression.validate()?;
    let plan = plan_entries(entries)?;
    let mut tmp = store.temp()?;
    let tmp_path = tmp.path().to_path_buf();
    let werr = |e| OciError::Io {
        action: "writing layer",
        path: tmp_path.clone(),
        source: e,
    };
    let file = tmp.file().try_clone().map_err(werr)?;
    let sink = Sha256Writer::new(BufWriter::with_capacity(1 << 20, file));
    let enc = Encoder::new(sink, recipe.compression).map_err(werr)?;
    let mut tar = TarWriter::new(Sha256Writer::new(enc));
    for e in plan.values() {
        let (kind, size, link) = match &e.source {
            EntrySource::Dir => (Kind::Dir, 0, ""),
            EntrySource::Bytes(b) => (Kind::File, b.len() as u64, ""),
            EntrySource::Symlink(t) => (Kind::Symlink, 0, t.as_str()),
            EntrySource::Path { src, .. } => {
                let len = std::fs::metadata(src)
                    .map_err(io_err("reading", src))?
                    .len();
                (Kind::File, len, "")
            }
        };
        let h = Header {
            path: &e.path,
            kind,
            mode: e.mode & 0o7777,
            uid: e.uid.unwrap_or(recipe.uid),
            gid: e.gid.unwrap_or(recipe.gid),
            size,
            mtime: recipe.mtime,
            link,
        };
        tar.header(&h).map_err(werr)?;
        match &e.source {
            EntrySource::Bytes(b) => {
                tar.write_data(&mut &b[..], size).map_err(werr)?;
            }
            EntrySource::Path { src, .. } => {
                let mut f = File::open(src).map_err(io_err("opening", src))?;
                let n = tar
                    .write_data(&mut f, size)
                    .map_err(io_err("reading", src))?;
                if n != size {
                    return Err(OciError::FileChanged {
                        path: src.clone(),
                        expected: size,
                        actual: n,
                    });
                }
            }
            _ => {}
        }
    }
    let (enc, diff_id, uncompressed_size) = tar.finish().map_err(werr)?.into_parts();
    let (mut buf, digest, size) = enc.finish().map_err(werr)?.into_parts();
    buf.flush().map_err(werr)?;
    drop(buf);
    tmp.commit(store, &digest)?;
    Ok(BuiltLayer {
        descriptor: Descriptor::new(recipe.compression.media_type(), digest, size),
        diff_id,
        uncompressed_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data() -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| ((i / 7) ^ (i >> 11)) as u8)
            .collect()
    }

    /// The parallel gzip layer must not depend on the core count of the machine that built it.
    #[test]
    fn parallel_gzip_is_independent_of_thread_count() {
        let input = data();
        let mut outputs = Vec::new();
        for threads in [1, 2, 3, 4] {
            let mut enc = par_gzip(Vec::new(), 6, threads).unwrap();
            for chunk in input.chunks(10_007) {
                enc.write_all(chunk).unwrap();
            }
            use gzp::ZWriter as _;
            outputs.push(enc.finish().unwrap());
        }
        assert!(
            outputs.windows(2).all(|w| w[0] == w[1]),
            "output differs between thread counts"
        );
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&outputs[0][..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, input);
    }

    /// Golden digests of the compressed bytes for a fixed input. They change only when the
    /// compressor implementation changes, e.g. when another crate in the build enables one of
    /// flate2's C zlib features (cargo feature unification silently overrides zlib-rs) or a zstd
    /// upgrade alters its output. Every image digest would then change: if this fails on purpose,
    /// bump `LAYER_CACHE_VERSION`, update the recipe's `backend` string and these values.
    #[test]
    fn compressor_backends_are_pinned() {
        let input = data();
        let digest = |c: Compression| {
            let mut enc = Encoder::new(
                Sha256Writer::new(BufWriter::new(tempfile::tempfile().unwrap())),
                c,
            )
            .unwrap();
            enc.write_all(&input).unwrap();
            enc.finish().unwrap().finish().0.to_string()
        };
        let got = [
            digest(Compression::Gzip { level: 6 }),
            digest(Compression::GzipParallel { level: 6 }),
            digest(Compression::Zstd {
                level: 3,
                workers: 1,
            }),
        ];
        assert_eq!(
            got, GOLDEN,
            "compressor output changed; see the comment on this test"
        );
    }

    const GOLDEN: [&str; 3] = [
        "sha256:21a25a7a5ff132e228f79f48515fbdc369ed41b89d131327dc31e8feeec48869",
        "sha256:a967aeb96c84c95d27c5f4270398e00eaf4f5cf934aa42eb073c1ac422218617",
        "sha256:46e5abd1aa331512ce6d20c480db0453b87774df61d6d89a8a08191e825971f1",
    ];

    #[test]
    fn parallel_gzip_layer_has_same_diff_id_as_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let entries = [LayerEntry::bytes("big", data())];
        let a = build_layer(&store, &entries, &LayerRecipe::default()).unwrap();
        let b = build_layer(
            &store,
            &entries,
            &LayerRecipe::new(Compression::GzipParallel { level: 6 }),
        )
        .unwrap();
        assert_eq!(a.diff_id, b.diff_id);
        assert_eq!(b.descriptor.media_type, MEDIA_LAYER_GZIP);
        assert_eq!(
            store.verify(&b.descriptor.digest).unwrap(),
            b.descriptor.size
        );
    }
}
