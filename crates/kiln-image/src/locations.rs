//! Which registry repositories hold a blob, kept in the [`CacheBucket::BlobLocations`] bucket, so
//! a push can mount a blob from another repository of the same registry instead of uploading it.
//!
//! kiln learns a location when it pulls a base (its layers are in the base's repository) and when
//! it pushes (every blob of the image is then in the target repository). A location is a hint,
//! never trusted: the registry answers a mount of a blob it does not have (any more) with an
//! upload session, and the push uploads as it would have anyway.

use kiln_cache::{CacheBucket, Storage};
use kiln_registry::Repository;
use kiln_types::Digest;

use crate::Reporter;

/// Locations kept per blob, most recent first: enough for a monorepo's services on a few
/// registries, small enough to read per blob on every push.
const MAX_LOCATIONS: usize = 16;

/// Blob locations over a [`Storage`]; store failures are warnings, never errors.
pub(crate) struct BlobLocations<'a> {
    store: &'a dyn Storage,
    reporter: &'a dyn Reporter,
}

impl<'a> BlobLocations<'a> {
    pub(crate) fn new(store: &'a dyn Storage, reporter: &'a dyn Reporter) -> Self {
        Self { store, reporter }
    }

    /// Repositories (`registry/name`) known to hold `digest`, most recent first.
    pub(crate) fn get(&self, digest: &Digest) -> Vec<String> {
        match self
            .store
            .get_record(CacheBucket::BlobLocations, &digest.hex())
        {
            Ok(bytes) => bytes
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            Err(e) => {
                self.reporter
                    .warn(&format!("blob location cache read failed: {e}"));
                Vec::new()
            }
        }
    }

    /// Records that `repo` holds every blob of `digests`.
    pub(crate) fn add<'d>(&self, repo: &Repository, digests: impl IntoIterator<Item = &'d Digest>) {
        let here = repo.to_string();
        for d in digests {
            let mut known = self.get(d);
            // Already known: no rewrite. A shared base layer is in every service's repository,
            // and moving each to the front on every push would rewrite its record per service.
            if known.contains(&here) {
                continue;
            }
            known.insert(0, here.clone());
            known.truncate(MAX_LOCATIONS);
            let stored =
                crate::records::put_json(self.store, CacheBucket::BlobLocations, &d.hex(), &known);
            if let Err(e) = stored {
                self.reporter
                    .warn(&format!("cannot record where blob {d} lives: {e}"));
                return;
            }
        }
    }

    /// Another repository of `target`'s registry known to hold `digest`: the `from` of a mount.
    pub(crate) fn mount_source(&self, digest: &Digest, target: &Repository) -> Option<String> {
        self.get(digest)
            .into_iter()
            .find_map(|r| other_repo_on_registry(&r, target))
    }
}

/// `registry/name` -> `name` when it is on `target`'s registry and is not `target` itself.
pub(crate) fn other_repo_on_registry(location: &str, target: &Repository) -> Option<String> {
    let (registry, name) = location.split_once('/')?;
    (registry == target.registry && name != target.name && !name.is_empty())
        .then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use kiln_cache::MemoryStore;

    use super::*;

    fn repo(s: &str) -> Repository {
        let (r, n) = s.split_once('/').unwrap();
        Repository::new(r, n).unwrap()
    }

    #[test]
    fn issue_9_mount_source_is_another_repo_of_the_same_registry() {
        let store = MemoryStore::new();
        let locations = BlobLocations::new(&store, &crate::NoReporter);
        let d = Digest::of_bytes(b"base layer");
        assert_eq!(locations.mount_source(&d, &repo("reg:5000/team/api")), None);
        locations.add(&repo("other:5000/base/static"), [&d]);
        assert_eq!(
            locations.mount_source(&d, &repo("reg:5000/team/api")),
            None,
            "another registry cannot be mounted from"
        );
        locations.add(&repo("reg:5000/base/static"), [&d]);
        locations.add(&repo("reg:5000/team/api"), [&d]);
        assert_eq!(
            locations
                .mount_source(&d, &repo("reg:5000/team/api"))
                .as_deref(),
            Some("base/static"),
            "not from itself"
        );
        assert_eq!(
            locations
                .mount_source(&d, &repo("reg:5000/team/worker"))
                .as_deref(),
            Some("team/api"),
            "most recent first"
        );
        assert_eq!(
            locations.get(&d),
            [
                "reg:5000/team/api",
                "reg:5000/base/static",
                "other:5000/base/static"
            ]
        );
    }

    #[test]
    fn locations_are_bounded_and_store_failures_are_quiet_misses() {
        let store = MemoryStore::new();
        let locations = BlobLocations::new(&store, &crate::NoReporter);
        let d = Digest::of_bytes(b"x");
        for i in 0..40 {
            locations.add(&repo(&format!("reg/team/s{i}")), [&d]);
        }
        assert_eq!(locations.get(&d).len(), MAX_LOCATIONS);
        assert_eq!(locations.get(&d)[0], "reg/team/s39");
        store.fail_reads(true);
        assert!(locations.get(&d).is_empty());
    }
}
