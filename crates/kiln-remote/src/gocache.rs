//! Go's package cache on a REAPI server: the remote tier of `kiln gocacheprog`.

use std::path::Path;
use std::sync::Arc;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use kiln_config::RemoteCache;
use kiln_gocache::{ActionId, BoxFuture, GoCacheError, Put, RemoteEntry, RemoteTier};
use kiln_types::Digest;
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use crate::action::{from_proto, to_proto, RemoteAction, GO_PACKAGE_OUTPUT};
use crate::client::{Capabilities, Fetched, ReapiClient};
use crate::RemoteError;

/// `GetActionResult` calls of one batched look-up running at once: REAPI has no batch call for
/// the action cache, and a cold `go build` asks for hundreds of IDs in a few batches.
const LOOKUPS_AT_ONCE: usize = 32;

/// [`RemoteTier`] over a REAPI server: one synthetic Action per Go action ID
/// ([`RemoteAction::for_go_action`]) in the ActionCache, whose result has one output file
/// ([`GO_PACKAGE_OUTPUT`]) whose digest is go's OutputID, and the output in the CAS. Look-ups ask
/// the server to inline that file, so a small package costs one round trip, not two.
///
/// The server checks the capabilities once (SHA256 required); failures are returned, and the
/// GOCACHEPROG server counts them, turns them into misses and stops asking after a few in a row.
/// An entry that is not in kiln's shape (another file name, several outputs, a failed action) is a
/// miss. Blobs are verified by the caller against the OutputID before go sees them.
pub struct GoPackageTier {
    client: ReapiClient,
    name: String,
    caps: OnceCell<Result<Capabilities, String>>,
}

impl std::fmt::Debug for GoPackageTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoPackageTier")
            .field("name", &self.name)
            .finish()
    }
}

impl GoPackageTier {
    /// A tier on the remote `cfg` names. Must be called inside the tokio runtime that will run the
    /// GOCACHEPROG server (it drives the channel); connecting waits for the first call.
    pub fn new(cfg: RemoteCache) -> Result<Self, RemoteError> {
        let name = cfg.display_name();
        Ok(Self {
            client: ReapiClient::new(cfg)?,
            name,
            caps: OnceCell::new(),
        })
    }

    /// Whether puts are stored: not for a `read_only` remote, nor for a server that refuses
    /// action-cache updates (known after the first call).
    pub fn writes(&self) -> bool {
        !self.client.config().read_only
            && self
                .caps
                .get()
                .and_then(|c| c.as_ref().ok())
                .is_none_or(|c| c.action_cache_update)
    }

    fn error(&self, e: impl std::fmt::Display) -> GoCacheError {
        GoCacheError::Remote {
            tier: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// The capabilities, asked once per session.
    async fn ready(&self) -> Result<&Capabilities, GoCacheError> {
        let caps = self
            .caps
            .get_or_init(|| async {
                match self.client.capabilities().await {
                    Ok(c) if !c.sha256 => {
                        Err("the server does not offer the SHA256 digest function".to_string())
                    }
                    Ok(c) => Ok(c),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
        caps.as_ref().map_err(|e| self.error(e))
    }
}

/// The entry an action result describes, if it is one kiln wrote: exit code 0 and exactly one
/// output file, [`GO_PACKAGE_OUTPUT`], with its contents when the server inlined them.
fn entry_of(result: re::ActionResult) -> Option<RemoteEntry> {
    if result.exit_code != 0 || !result.output_directories.is_empty() {
        return None;
    }
    let [file] = <[re::OutputFile; 1]>::try_from(result.output_files).ok()?;
    let (output, size) = file.digest.as_ref().and_then(from_proto)?;
    if file.path != GO_PACKAGE_OUTPUT {
        return None;
    }
    // Empty contents mean "not inlined", except for an empty output.
    let body = (!file.contents.is_empty() || size == 0).then_some(file.contents);
    Some(RemoteEntry { output, size, body })
}

impl RemoteTier for GoPackageTier {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn lookup<'a>(
        &'a self,
        actions: &'a [ActionId],
    ) -> BoxFuture<'a, Result<Vec<Option<RemoteEntry>>, GoCacheError>> {
        Box::pin(async move {
            self.ready().await?;
            let slots = Arc::new(Semaphore::new(LOOKUPS_AT_ONCE));
            let mut calls = JoinSet::new();
            for (i, id) in actions.iter().enumerate() {
                let (client, slots) = (self.client.clone(), slots.clone());
                let digest = RemoteAction::for_go_action(id.as_raw()).digest;
                calls.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    (
                        i,
                        client
                            .get_action_result(&digest, &[GO_PACKAGE_OUTPUT])
                            .await,
                    )
                });
            }
            let mut found = vec![None; actions.len()];
            while let Some(done) = calls.join_next().await {
                let (i, result) = done.map_err(|e| GoCacheError::Internal(e.to_string()))?;
                // One failed call fails the batch: the server counts it once and answers misses.
                if let Some(r) = result.map_err(|e| self.error(e))? {
                    found[i] = entry_of(r);
                }
            }
            Ok(found)
        })
    }

    fn get_blob<'a>(
        &'a self,
        output: &'a Digest,
        size: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, GoCacheError>> {
        Box::pin(async move {
            self.ready().await?;
            if size <= self.client.batch_limit() {
                // Returned as sent: the caller checks the bytes against the OutputID and counts a
                // mismatch as a damaged entry.
                return self
                    .client
                    .batch_read_one(&to_proto(output, size))
                    .await
                    .map_err(|e| self.error(e));
            }
            let dir = tempfile::tempdir().map_err(|e| self.error(e))?;
            let file = dir.path().join("blob");
            match self
                .client
                .download(output, size, &file)
                .await
                .map_err(|e| self.error(e))?
            {
                Fetched::Done => tokio::fs::read(&file)
                    .await
                    .map(Some)
                    .map_err(|e| self.error(e)),
                Fetched::Missing => Ok(None),
                Fetched::Corrupt(why) => Err(self.error(format!("corrupted blob ignored: {why}"))),
            }
        })
    }

    fn put<'a>(
        &'a self,
        action: &'a ActionId,
        output: &'a Digest,
        size: u64,
        blob: &'a Path,
    ) -> BoxFuture<'a, Result<Put, GoCacheError>> {
        Box::pin(async move {
            self.ready().await?;
            if !self.writes() {
                return Ok(Put::ReadOnly);
            }
            // The blob first: an action result must never name an output the CAS lacks.
            self.client
                .upload(blob, output, size)
                .await
                .map_err(|e| self.error(e))?;
            let result = re::ActionResult {
                output_files: vec![re::OutputFile {
                    path: GO_PACKAGE_OUTPUT.into(),
                    digest: Some(to_proto(output, size)),
                    ..Default::default()
                }],
                exit_code: 0,
                ..Default::default()
            };
            let digest = RemoteAction::for_go_action(action.as_raw()).digest;
            self.client
                .update_action_result(&digest, result)
                .await
                .map_err(|e| self.error(e))?;
            Ok(Put::Stored)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(files: Vec<(&str, Digest, u64)>, exit: i32) -> re::ActionResult {
        re::ActionResult {
            output_files: files
                .into_iter()
                .map(|(p, d, s)| re::OutputFile {
                    path: p.into(),
                    digest: Some(to_proto(&d, s)),
                    contents: if p == "inlined" {
                        b"archive".to_vec()
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                })
                .map(|mut f| {
                    if f.path == "inlined" {
                        f.path = GO_PACKAGE_OUTPUT.into();
                    }
                    f
                })
                .collect(),
            exit_code: exit,
            ..Default::default()
        }
    }

    #[test]
    fn only_results_in_kiln_shape_are_entries() {
        let d = Digest::of_bytes(b"archive");
        let out = GO_PACKAGE_OUTPUT;
        assert_eq!(
            entry_of(result(vec![(out, d, 7)], 0)),
            Some(RemoteEntry {
                output: d,
                size: 7,
                body: None
            })
        );
        assert_eq!(
            entry_of(result(vec![("inlined", d, 7)], 0)).and_then(|e| e.body),
            Some(b"archive".to_vec())
        );
        // An empty output needs no inlining to be complete.
        let empty = Digest::of_bytes(b"");
        assert_eq!(
            entry_of(result(vec![(out, empty, 0)], 0)).and_then(|e| e.body),
            Some(Vec::new())
        );
        // A failed action, another name, two outputs: misses.
        assert_eq!(entry_of(result(vec![(out, d, 7)], 1)), None);
        assert_eq!(entry_of(result(vec![(&d.hex(), d, 7)], 0)), None);
        assert_eq!(entry_of(result(vec![(out, d, 7), (out, d, 7)], 0)), None);
        assert_eq!(entry_of(result(vec![], 0)), None);
    }

    #[tokio::test]
    async fn an_unreachable_remote_is_an_error_the_server_can_count() {
        let mut cfg = RemoteCache::new("grpc://127.0.0.1:1").unwrap();
        cfg.retries = 0;
        let tier = GoPackageTier::new(cfg).unwrap();
        let err = tier
            .lookup(&[ActionId::from_raw([0; 32])])
            .await
            .unwrap_err();
        assert!(matches!(err, GoCacheError::Remote { .. }), "{err}");
        assert!(err.to_string().contains("grpc://127.0.0.1:1"), "{err}");
    }
}
