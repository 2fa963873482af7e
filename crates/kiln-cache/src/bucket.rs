//! The buckets of kiln's cache directory, named and versioned in one place.

use std::fmt;

use serde::{Serialize, Serializer};

/// One kind of thing kiln keeps in its cache directory, each in its own versioned directory.
///
/// Every cache kiln keeps on disk is one of these: `kiln cache stats` counts each, `prune` and
/// `clear` walk them all, and a directory below the cache root that is none of them is either an
/// older layout (removed by `prune` and `clear`) or not kiln's (left alone).
///
/// A bucket's version is part of its directory name ([`CacheBucket::dir_name`]). Bump it when the
/// bucket's on-disk format or the meaning of its entries changes, so old and new kiln never read
/// each other's entries; the old directory then becomes stale and the next `prune` removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheBucket {
    /// The action cache: `ActionKey` -> `ActionRecord` (which outputs a `go build` produced).
    Actions,
    /// The content-addressed store: sha256 -> blob (built binaries), referenced by action records.
    Blobs,
    /// Image layer records: a layer recipe's key -> the layer it produced (the blob itself lives
    /// in the OCI layout it was packed into).
    ImageLayers,
    /// Base image blobs pulled from registries, by digest (an OCI layout's `blobs/sha256/<hex>`).
    PulledBlobs,
    /// Key bookkeeping: the stat cache of hashed files and the last key inputs per target.
    Keys,
    /// Go build caches (GOCACHE) for cgo builds, one per digest of the C inputs go's own cache
    /// does not see (compiler binaries, include path variables, headers below cgo packages).
    CgoGoCaches,
    /// Where blobs live in registries: a blob digest -> repositories known to hold it (pulled
    /// from or pushed to), so a push to another repository of the same registry can mount it
    /// instead of uploading it.
    BlobLocations,
    /// Go's package cache served over GOCACHEPROG (`kiln gocacheprog`): Go action ID -> output
    /// records and the outputs (compiled packages, test results) by their sha256, kept by the
    /// `kiln-gocache` crate below [`crate::LocalStore::bucket_dir`] and pruned by age of last use.
    GoPackages,
}

/// How a bucket's entries are stored, which decides how `prune` treats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BucketKind {
    /// Checksummed action records, the roots of the blob store's mark and sweep.
    Actions,
    /// Content-addressed blobs referenced by action records.
    Blobs,
    /// Small checksummed records ([`crate::Storage::get_record`]), pruned by age of last use.
    Records,
    /// Files managed by their user below [`crate::LocalStore::bucket_dir`], pruned by age of last
    /// use and counted in the size budget.
    Files,
    /// Files managed by their user below [`crate::LocalStore::bucket_dir`], each pruned on its
    /// own by age of last use, as records are.
    AgedFiles,
}

impl CacheBucket {
    /// Every bucket, in the order `kiln cache stats` shows them.
    pub const ALL: [CacheBucket; 8] = [
        CacheBucket::Actions,
        CacheBucket::Blobs,
        CacheBucket::ImageLayers,
        CacheBucket::PulledBlobs,
        CacheBucket::Keys,
        CacheBucket::CgoGoCaches,
        CacheBucket::BlobLocations,
        CacheBucket::GoPackages,
    ];

    /// The bucket's directory below the cache root: its name and its format version.
    pub const fn dir_name(self) -> &'static str {
        match self {
            CacheBucket::Actions => "actions-v1",
            CacheBucket::Blobs => "blobs-v1",
            CacheBucket::ImageLayers => "layers-v1",
            CacheBucket::PulledBlobs => "pulled-v1",
            CacheBucket::Keys => "keys-v1",
            CacheBucket::CgoGoCaches => "go-cgo-v1",
            CacheBucket::BlobLocations => "locations-v1",
            CacheBucket::GoPackages => "go-packages-v1",
        }
    }

    /// The short name shown by `kiln cache stats` (the directory name without its version).
    pub const fn name(self) -> &'static str {
        match self {
            CacheBucket::Actions => "actions",
            CacheBucket::Blobs => "blobs",
            CacheBucket::ImageLayers => "layers",
            CacheBucket::PulledBlobs => "pulled",
            CacheBucket::Keys => "keys",
            CacheBucket::CgoGoCaches => "go-cgo",
            CacheBucket::BlobLocations => "locations",
            CacheBucket::GoPackages => "go-packages",
        }
    }

    /// One line saying what the bucket holds, for help texts and docs.
    pub const fn description(self) -> &'static str {
        match self {
            CacheBucket::Actions => "build action records (key -> outputs)",
            CacheBucket::Blobs => "built binaries by sha256",
            CacheBucket::ImageLayers => "image layer records (layer recipe -> packed layer)",
            CacheBucket::PulledBlobs => "base image blobs pulled from registries, by sha256",
            CacheBucket::Keys => "stat cache of hashed files, last key inputs per target",
            CacheBucket::CgoGoCaches => "go build caches of cgo builds, one per C toolchain state",
            CacheBucket::BlobLocations => {
                "registry repositories known to hold a blob, for cross-repository mounts"
            }
            CacheBucket::GoPackages => "go's package cache served to GOCACHEPROG, by go action ID",
        }
    }

    pub(crate) const fn kind(self) -> BucketKind {
        match self {
            CacheBucket::Actions => BucketKind::Actions,
            CacheBucket::Blobs => BucketKind::Blobs,
            CacheBucket::ImageLayers | CacheBucket::Keys | CacheBucket::BlobLocations => {
                BucketKind::Records
            }
            CacheBucket::PulledBlobs | CacheBucket::CgoGoCaches => BucketKind::Files,
            // Files its owner manages, but each one an entry pruned by age of last use like a
            // record: a pruned output record or blob only makes go compile that package again.
            CacheBucket::GoPackages => BucketKind::AgedFiles,
        }
    }

    /// The bucket whose current directory is `dir`, if any.
    pub fn from_dir_name(dir: &str) -> Option<CacheBucket> {
        Self::ALL.into_iter().find(|b| b.dir_name() == dir)
    }
}

impl fmt::Display for CacheBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for CacheBucket {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Directories earlier kiln versions kept below the cache root before buckets were versioned one
/// by one: `v1` held the action cache and blob store, `image-v1` the layer records and pulled
/// blobs. Nothing reads them any more; `prune` and `clear` remove them.
pub(crate) const LEGACY_DIRS: [&str; 2] = ["v1", "image-v1"];

/// Whether a directory below the cache root looks like one kiln made (`v<N>` or `<name>-v<N>`,
/// lowercase), so `clear` may remove it although this kiln does not know it (an older or newer
/// layout). Anything else below the root is not kiln's and is left alone.
pub(crate) fn looks_like_bucket(dir: &str) -> bool {
    let version = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(v) = dir.strip_prefix('v') {
        if version(v) {
            return true;
        }
    }
    match dir.rsplit_once("-v") {
        Some((name, v)) => {
            version(v)
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }
        None => false,
    }
}

/// Whether `dir` is an older version of a bucket this kiln knows (`layers-v1` once `layers-v2` is
/// current) or a legacy directory: nothing this kiln does reads it, so `prune` removes it. A newer
/// version is left alone, for a newer kiln sharing the cache.
pub(crate) fn is_outdated(dir: &str) -> bool {
    if LEGACY_DIRS.contains(&dir) {
        return true;
    }
    let Some((name, v)) = dir.rsplit_once("-v") else {
        return false;
    };
    let Ok(v) = v.parse::<u32>() else {
        return false;
    };
    CacheBucket::ALL.into_iter().any(|b| {
        b.name() == name
            && b.dir_name()
                .rsplit_once("-v")
                .and_then(|(_, cur)| cur.parse::<u32>().ok())
                .is_some_and(|cur| v < cur)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bucket's directory carries its version and is distinct, so bumping one bucket's format
    /// never makes another's entries unreadable, and no two buckets share files.
    #[test]
    fn issue_8_every_bucket_dir_is_named_and_versioned() {
        let mut seen = std::collections::HashSet::new();
        for b in CacheBucket::ALL {
            let dir = b.dir_name();
            let (name, version) = dir.rsplit_once("-v").expect("`<name>-v<N>`");
            assert_eq!(name, b.name(), "{dir}");
            assert!(version.parse::<u32>().is_ok_and(|v| v >= 1), "{dir}");
            assert!(looks_like_bucket(dir), "{dir}");
            assert!(!is_outdated(dir), "{dir} is current");
            assert!(!LEGACY_DIRS.contains(&dir), "{dir}");
            assert!(seen.insert(dir), "{dir} used twice");
            assert_eq!(CacheBucket::from_dir_name(dir), Some(b));
            assert!(!b.description().is_empty());
        }
        assert_eq!(seen.len(), CacheBucket::ALL.len());
    }

    #[test]
    fn issue_8_old_layouts_are_recognised_and_foreign_dirs_are_not() {
        for old in ["v1", "image-v1", "actions-v0", "layers-v0"] {
            assert!(looks_like_bucket(old), "{old}");
            assert!(is_outdated(old), "{old}");
        }
        // A newer kiln's bucket is kiln's (clear removes it) but not outdated (prune keeps it).
        for newer in ["actions-v9", "layers-v2", "registry-v1", "something-v3"] {
            assert!(looks_like_bucket(newer), "{newer}");
            assert!(!is_outdated(newer), "{newer}");
        }
        for foreign in [
            "bin", "src", "v", "vx", "-v1", "Go-v1", "data", "layers-v", "a b-v1",
        ] {
            assert!(!looks_like_bucket(foreign), "{foreign}");
            assert!(!is_outdated(foreign), "{foreign}");
        }
    }
}
