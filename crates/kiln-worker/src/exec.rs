//! One lease: fetch the Action, Command and input root (verified), run the Command in the
//! sandbox, upload the outputs and build the ActionResult.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use kiln_gocache::{RemoteTier, Stats};
use kiln_remote::{Fetched, GoPackageTier, ReapiClient};
use kiln_sandbox::{Access, CancelToken, Exit, Sandbox, SandboxCommand};
use kiln_types::Digest;
use prost::Message;

use crate::gocache::{socket_dir, GoCacheSession};
use crate::inputs::{BatchReader, InputCache, BATCH_BLOBS};
use crate::{
    WorkerConfig, WorkerError, GOCACHEPROG_MARKER, GOCACHE_SOCKET, GO_ROOT_MOUNT, KILN_BIN_MOUNT,
};

/// Where the input root appears inside the sandbox; the Command's working directory is relative
/// to it. Fixed, so an action's paths do not depend on the worker's disk layout.
pub const INPUT_ROOT_MOUNT: &str = "/kiln/input";

/// Captured stdout or stderr beyond this is dropped (the ActionResult says so in stderr).
const OUTPUT_CAP: usize = 16 << 20;

const ACTION_URL_SUFFIX: &str = "build.bazel.remote.execution.v2.Action";
const DIGEST_URL_SUFFIX: &str = "build.bazel.remote.execution.v2.Digest";

/// What running one lease's action gave.
pub(crate) struct Executed {
    /// The result to report (also for a timed-out command).
    pub result: re::ActionResult,
    /// The wall-clock timeout passed: the lease reports DEADLINE_EXCEEDED.
    pub timed_out: bool,
    /// What go's package cache did, when the action used it.
    pub go_packages: Option<Stats>,
    /// Input files downloaded and input files copied from the worker's input cache.
    pub inputs: Fetches,
}

/// How an action's input files came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fetches {
    /// Downloaded from the CAS.
    pub downloaded: u64,
    /// Copied from the worker's input cache.
    pub cached: u64,
    /// `BatchReadBlobs` calls made for them.
    pub batch_calls: u64,
}

/// Runs actions for one worker.
#[derive(Clone)]
pub(crate) struct Executor {
    client: ReapiClient,
    cfg: Arc<WorkerConfig>,
    sandbox: Sandbox,
    /// The remote tier of go's package cache (the engine's AC and CAS), when it is on.
    go_tier: Option<Arc<dyn RemoteTier>>,
    inputs: InputCache,
    batches: BatchReader,
}

fn to_proto(digest: &Digest, size: u64) -> re::Digest {
    re::Digest {
        hash: digest.hex(),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
    }
}

fn show(d: &re::Digest) -> String {
    format!("{}/{}", d.hash, d.size_bytes)
}

fn parse(d: Option<&re::Digest>, what: &str) -> Result<(Digest, u64, re::Digest), WorkerError> {
    let d = d.ok_or_else(|| WorkerError::Refused(format!("{what} has no digest")))?;
    let bad = |reason: &str| WorkerError::BadBlob {
        digest: show(d),
        what: what.to_string(),
        reason: reason.to_string(),
    };
    let digest = Digest::from_hex(&d.hash).map_err(|_| bad("not a sha256 digest"))?;
    let size = u64::try_from(d.size_bytes).map_err(|_| bad("negative size"))?;
    Ok((digest, size, d.clone()))
}

/// A relative path without `..`, absolute parts or NUL: it stays inside the input root.
fn safe_relative(path: &str, what: &str) -> Result<PathBuf, WorkerError> {
    let p = Path::new(path);
    if path.contains('\0')
        || !p
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(WorkerError::Refused(format!(
            "{what} {path:?} leaves the input root"
        )));
    }
    Ok(p.to_path_buf())
}

/// The working directory inside the sandbox: the input root, or `wd` below it (without the
/// trailing `/` that joining an empty path leaves, which the command would see in `PWD`).
fn sandbox_cwd(wd: &Path) -> PathBuf {
    let root = Path::new(INPUT_ROOT_MOUNT);
    if wd.components().all(|c| c == Component::CurDir) {
        root.to_path_buf()
    } else {
        root.join(wd)
    }
}

/// One name inside a Directory message.
fn safe_name(name: &str) -> Result<&str, WorkerError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(WorkerError::Refused(format!(
            "bad file name {name:?} in the input root"
        )));
    }
    Ok(name)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkerError + '_ {
    move |source| WorkerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Executor {
    pub(crate) fn new(
        client: ReapiClient,
        batches: BatchReader,
        cfg: Arc<WorkerConfig>,
    ) -> Result<Self, WorkerError> {
        let go_tier = match &cfg.go_cache {
            Some(_) => {
                let tier: Arc<dyn RemoteTier> = Arc::new(GoPackageTier::new(cfg.server.clone())?);
                Some(tier)
            }
            None => None,
        };
        Ok(Executor {
            client,
            inputs: InputCache::new(&cfg.work_dir),
            batches,
            cfg,
            sandbox: Sandbox::locate()?,
            go_tier,
        })
    }

    /// Downloads a blob (verified by the client) into `scratch` and returns its bytes.
    async fn fetch(
        &self,
        d: Option<&re::Digest>,
        what: &str,
        scratch: &Path,
    ) -> Result<Vec<u8>, WorkerError> {
        let (digest, size, proto) = parse(d, what)?;
        if size == 0 {
            return if digest == Digest::of_bytes(b"") {
                Ok(Vec::new())
            } else {
                Err(WorkerError::BadBlob {
                    digest: show(&proto),
                    what: what.to_string(),
                    reason: "size 0 but not the empty blob's digest".into(),
                })
            };
        }
        let dest = scratch.join(format!("blob-{}", digest.hex()));
        self.download(&digest, size, &proto, what, &dest).await?;
        let bytes = std::fs::read(&dest).map_err(io(&dest))?;
        let _ = std::fs::remove_file(&dest);
        Ok(bytes)
    }

    async fn download(
        &self,
        digest: &Digest,
        size: u64,
        proto: &re::Digest,
        what: &str,
        dest: &Path,
    ) -> Result<(), WorkerError> {
        match self.client.download(digest, size, dest).await? {
            Fetched::Done => Ok(()),
            Fetched::Missing => Err(WorkerError::MissingBlob {
                digest: show(proto),
                what: what.to_string(),
            }),
            Fetched::Corrupt(reason) => Err(WorkerError::BadBlob {
                digest: show(proto),
                what: what.to_string(),
                reason,
            }),
        }
    }

    async fn fetch_message<M: Message + Default>(
        &self,
        d: Option<&re::Digest>,
        what: &str,
        scratch: &Path,
    ) -> Result<M, WorkerError> {
        let bytes = self.fetch(d, what, scratch).await?;
        M::decode(bytes.as_slice()).map_err(|e| WorkerError::BadBlob {
            digest: d.map(show).unwrap_or_default(),
            what: what.to_string(),
            reason: format!("does not decode: {e}"),
        })
    }

    /// The Action of a lease payload: the Action itself or its digest (BuildGrid sends either).
    pub(crate) async fn action_of(
        &self,
        payload: &prost_types::Any,
        scratch: &Path,
    ) -> Result<(re::Action, re::Digest), WorkerError> {
        let bad = |reason: String| {
            WorkerError::Refused(format!("lease payload {}: {reason}", payload.type_url))
        };
        if payload.type_url.ends_with(ACTION_URL_SUFFIX) {
            let action =
                re::Action::decode(payload.value.as_slice()).map_err(|e| bad(e.to_string()))?;
            let digest = to_proto(
                &Digest::of_bytes(&payload.value),
                payload.value.len() as u64,
            );
            Ok((action, digest))
        } else if payload.type_url.ends_with(DIGEST_URL_SUFFIX) {
            let digest =
                re::Digest::decode(payload.value.as_slice()).map_err(|e| bad(e.to_string()))?;
            let action = self.fetch_message(Some(&digest), "Action", scratch).await?;
            Ok((action, digest))
        } else {
            Err(bad("unknown payload type".into()))
        }
    }

    /// Runs the action and uploads its outputs.
    pub(crate) async fn execute(
        &self,
        action: re::Action,
        cancel: CancelToken,
    ) -> Result<Executed, WorkerError> {
        let work = tempfile::Builder::new()
            .prefix("kiln-action-")
            .tempdir_in(&self.cfg.work_dir)
            .map_err(io(&self.cfg.work_dir))?;
        let scratch = work.path().join("scratch");
        let input = work.path().join("input");
        for dir in [&scratch, &input] {
            std::fs::create_dir(dir).map_err(io(dir))?;
        }
        let command: re::Command = self
            .fetch_message(action.command_digest.as_ref(), "Command", &scratch)
            .await?;
        self.check_platform(&action, &command)?;
        let fetches = self
            .materialise(action.input_root_digest.as_ref(), &input, &scratch)
            .await?;

        let wd = safe_relative(&command.working_directory, "working directory")?;
        let host_wd = input.join(&wd);
        std::fs::create_dir_all(&host_wd).map_err(io(&host_wd))?;
        // REAPI 2.0 clients still name outputs in the deprecated fields.
        #[allow(deprecated)]
        let outputs: Vec<String> = if command.output_paths.is_empty() {
            command
                .output_files
                .iter()
                .chain(&command.output_directories)
                .cloned()
                .collect()
        } else {
            command.output_paths.clone()
        };
        let mut output_rel = Vec::new();
        for out in &outputs {
            let rel = safe_relative(out, "output path")?;
            // REAPI: the worker creates the parent directories of every output.
            if let Some(parent) = host_wd.join(&rel).parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            output_rel.push((out.clone(), rel));
        }

        let timeout = action
            .timeout
            .as_ref()
            .filter(|t| t.seconds > 0 || t.nanos > 0)
            .map(|t| {
                Duration::new(
                    u64::try_from(t.seconds).unwrap_or(0),
                    u32::try_from(t.nanos).unwrap_or(0),
                )
            })
            .unwrap_or(self.cfg.default_timeout);
        let mut env: Vec<(String, String)> = command
            .environment_variables
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        let mut cmd = SandboxCommand::new(command.arguments.clone())
            .input(&input, INPUT_ROOT_MOUNT, Access::Writable)
            .cwd(sandbox_cwd(&wd))
            .limits(self.cfg.limits)
            .timeout(timeout)
            .output_cap(OUTPUT_CAP)
            .cancel_token(cancel);
        if let Some(root) = &self.cfg.go_root {
            cmd = cmd.ro_bind(root, GO_ROOT_MOUNT);
        }
        for (host, inside) in &self.cfg.ro_binds {
            cmd = cmd.ro_bind(host, inside);
        }
        let wants_go_cache = env
            .iter()
            .any(|(k, v)| k == GOCACHEPROG_MARKER.0 && v == GOCACHEPROG_MARKER.1);
        let go_cache = match (&self.cfg.go_cache, wants_go_cache) {
            (Some(settings), true) => {
                let sockets = socket_dir(work.path());
                std::fs::create_dir(&sockets).map_err(io(&sockets))?;
                let local = self.cfg.go_packages_dir();
                std::fs::create_dir_all(&local).map_err(io(&local))?;
                let session = GoCacheSession::start(
                    &sockets.join("sock"),
                    &local,
                    self.go_tier.clone(),
                    !self.cfg.server.read_only,
                )?;
                let socket_mount = Path::new(GOCACHE_SOCKET)
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .to_path_buf();
                // go opens the files the answers name (DiskPath): the local tier is visible at
                // its own path, read-only; only the server outside writes it.
                cmd = cmd
                    .ro_bind(&settings.kiln, KILN_BIN_MOUNT)
                    .ro_bind(&sockets, socket_mount)
                    .ro_bind(&local, &local);
                env.retain(|(k, _)| k != "GOCACHEPROG");
                env.push((
                    "GOCACHEPROG".to_string(),
                    format!("{KILN_BIN_MOUNT} gocacheprog --connect {GOCACHE_SOCKET}"),
                ));
                Some(session)
            }
            _ => None,
        };
        let cmd = cmd.envs(env);
        let sandbox = self.sandbox.clone();
        let ran = tokio::task::spawn_blocking(move || sandbox.run(&cmd)).await;
        let go_packages = match go_cache {
            Some(session) => Some(session.finish().await),
            None => None,
        };
        let outcome = ran.map_err(|e| {
            WorkerError::Refused(format!("internal error: the sandbox task: {e}"))
        })??;
        if outcome.exit == Exit::Cancelled {
            return Err(WorkerError::Cancelled);
        }

        let mut result = re::ActionResult {
            exit_code: match outcome.exit {
                Exit::Code(code) => code,
                Exit::Signal(sig) => 128 + sig,
                Exit::TimedOut | Exit::Cancelled => -1,
            },
            ..Default::default()
        };
        for (name, rel) in output_rel {
            let host = host_wd.join(&rel);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue; // REAPI: a declared output the command did not create is not an error.
            };
            if meta.is_file() {
                let (digest, size) = self.upload_file(&host).await?;
                use std::os::unix::fs::PermissionsExt;
                result.output_files.push(re::OutputFile {
                    path: name,
                    digest: Some(to_proto(&digest, size)),
                    is_executable: meta.permissions().mode() & 0o111 != 0,
                    ..Default::default()
                });
            } else if meta.is_dir() {
                let (tree_digest, root_digest) = self.upload_tree(&host).await?;
                result.output_directories.push(re::OutputDirectory {
                    path: name,
                    tree_digest: Some(tree_digest),
                    is_topologically_sorted: false,
                    root_directory_digest: Some(root_digest),
                });
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&host).map_err(io(&host))?;
                result.output_symlinks.push(re::OutputSymlink {
                    path: name,
                    target: target.to_string_lossy().into_owned(),
                    ..Default::default()
                });
            }
        }
        let mut stderr = outcome.stderr;
        if outcome.stdout_truncated || outcome.stderr_truncated {
            stderr.extend_from_slice(
                format!("\n[kiln worker: output cut at {OUTPUT_CAP} bytes]\n").as_bytes(),
            );
        }
        if outcome.exit == Exit::TimedOut {
            stderr.extend_from_slice(
                format!("\n[kiln worker: killed after the {timeout:?} timeout]\n").as_bytes(),
            );
        }
        if !outcome.stdout.is_empty() {
            result.stdout_digest = Some(self.put_bytes(&outcome.stdout, &scratch).await?);
        }
        if !stderr.is_empty() {
            result.stderr_digest = Some(self.put_bytes(&stderr, &scratch).await?);
        }
        result.execution_metadata = Some(re::ExecutedActionMetadata {
            worker: self.cfg.bot_id.clone(),
            ..Default::default()
        });
        Ok(Executed {
            result,
            timed_out: outcome.exit == Exit::TimedOut,
            go_packages,
            inputs: fetches,
        })
    }

    /// An action whose platform names one of our keys with another value is not ours to run,
    /// even if a scheduler sent it (a worker with another Go would build other bytes).
    // Command.platform is deprecated, but older clients put the platform there.
    #[allow(deprecated)]
    fn check_platform(
        &self,
        action: &re::Action,
        command: &re::Command,
    ) -> Result<(), WorkerError> {
        let wanted = action
            .platform
            .iter()
            .chain(command.platform.iter())
            .flat_map(|p| p.properties.iter());
        for prop in wanted {
            if let Some((_, ours)) = self.cfg.platform.iter().find(|(k, _)| *k == prop.name) {
                if *ours != prop.value {
                    return Err(WorkerError::Refused(format!(
                        "the action needs {}={} but this worker has {}",
                        prop.name, prop.value, ours
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes the input root tree under `dest`, every file verified against its digest: from the
    /// input cache when it has the file, else small files in `BatchReadBlobs` calls of many
    /// files each and large ones one by one.
    async fn materialise(
        &self,
        root: Option<&re::Digest>,
        dest: &Path,
        scratch: &Path,
    ) -> Result<Fetches, WorkerError> {
        use std::os::unix::fs::PermissionsExt;
        let mut fetches = Fetches::default();
        let root =
            root.ok_or_else(|| WorkerError::Refused("the action has no input root".into()))?;
        // Files the cache lacks, by digest: one fetch however many paths share the content.
        let mut wanted: std::collections::BTreeMap<Digest, (u64, re::Digest, Vec<PathBuf>)> =
            std::collections::BTreeMap::new();
        let mut modes = Vec::new();
        let mut stack = vec![(root.clone(), dest.to_path_buf())];
        while let Some((digest, dir)) = stack.pop() {
            let what = format!(
                "directory {}",
                dir.strip_prefix(dest).unwrap_or(&dir).display()
            );
            let listing: re::Directory = self.fetch_message(Some(&digest), &what, scratch).await?;
            for file in &listing.files {
                let path = dir.join(safe_name(&file.name)?);
                let what = format!(
                    "input file {}",
                    path.strip_prefix(dest).unwrap_or(&path).display()
                );
                let (d, size, proto) = parse(file.digest.as_ref(), &what)?;
                if size == 0 {
                    std::fs::write(&path, b"").map_err(io(&path))?;
                } else if self.inputs.copy_out(&d, size, &path)? {
                    fetches.cached += 1;
                } else {
                    wanted
                        .entry(d)
                        .or_insert((size, proto, Vec::new()))
                        .2
                        .push(path.clone());
                }
                modes.push((path, if file.is_executable { 0o755 } else { 0o644 }));
            }
            for sub in &listing.directories {
                let path = dir.join(safe_name(&sub.name)?);
                std::fs::create_dir(&path).map_err(io(&path))?;
                let d = sub.digest.clone().ok_or_else(|| {
                    WorkerError::Refused(format!("directory {} has no digest", sub.name))
                })?;
                stack.push((d, path));
            }
            for link in &listing.symlinks {
                let path = dir.join(safe_name(&link.name)?);
                std::os::unix::fs::symlink(&link.target, &path).map_err(io(&path))?;
            }
        }

        // Small files in batches up to the server's message limit.
        let limit = self.client.batch_limit();
        let mut batch: Vec<(Digest, re::Digest)> = Vec::new();
        let mut bytes = 0u64;
        let small: Vec<(Digest, u64, re::Digest)> = wanted
            .iter()
            .filter(|(_, (size, _, _))| *size <= limit)
            .map(|(d, (size, proto, _))| (*d, *size, proto.clone()))
            .collect();
        for (i, (d, size, proto)) in small.iter().enumerate() {
            batch.push((*d, proto.clone()));
            bytes += size;
            let next = small.get(i + 1).map_or(u64::MAX, |n| n.1);
            if batch.len() < BATCH_BLOBS && bytes.saturating_add(next) <= limit {
                continue;
            }
            fetches.batch_calls += 1;
            // A failed call costs nothing but speed: those files are downloaded one by one.
            if let Ok(found) = self.batches.read(&batch).await {
                for ((digest, _), data) in batch.iter().zip(found) {
                    let Some(data) = data else { continue };
                    if let Some((_, _, paths)) = wanted.remove(digest) {
                        self.write_input(digest, &data, &paths)?;
                        fetches.downloaded += paths.len() as u64;
                    }
                }
            }
            batch.clear();
            bytes = 0;
        }
        // Large files, and whatever a batch did not bring (missing or damaged: named here).
        for (d, (size, proto, paths)) in wanted {
            let Some((first, rest)) = paths.split_first() else {
                continue;
            };
            let what = format!(
                "input file {}",
                first.strip_prefix(dest).unwrap_or(first).display()
            );
            self.download(&d, size, &proto, &what, first).await?;
            self.inputs.store(&d, first)?;
            for path in rest {
                std::fs::copy(first, path).map_err(io(path))?;
            }
            fetches.downloaded += paths.len() as u64;
        }
        for (path, mode) in modes {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io(&path))?;
        }
        Ok(fetches)
    }

    /// Writes verified input bytes to every path that holds them, and keeps them in the cache.
    fn write_input(
        &self,
        digest: &Digest,
        data: &[u8],
        paths: &[PathBuf],
    ) -> Result<(), WorkerError> {
        for path in paths {
            std::fs::write(path, data).map_err(io(path))?;
        }
        if let Some(first) = paths.first() {
            self.inputs.store(digest, first)?;
        }
        Ok(())
    }

    async fn upload_file(&self, path: &Path) -> Result<(Digest, u64), WorkerError> {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let (digest, size) = Digest::of_reader(file).map_err(io(path))?;
        self.client.upload(path, &digest, size).await?;
        Ok((digest, size))
    }

    /// Stores `bytes` in the CAS: small blobs in a batch call, large ones through a file.
    async fn put_bytes(&self, bytes: &[u8], scratch: &Path) -> Result<re::Digest, WorkerError> {
        let digest = Digest::of_bytes(bytes);
        let size = bytes.len() as u64;
        let proto = to_proto(&digest, size);
        if size <= self.client.batch_limit() {
            self.client
                .batch_update(&[(proto.clone(), bytes.to_vec())])
                .await?;
        } else {
            let path = scratch.join(format!("put-{}", digest.hex()));
            std::fs::write(&path, bytes).map_err(io(&path))?;
            self.client.upload(&path, &digest, size).await?;
            let _ = std::fs::remove_file(&path);
        }
        Ok(proto)
    }

    /// Uploads an output directory as a REAPI Tree; returns the Tree's and the root's digests.
    async fn upload_tree(&self, dir: &Path) -> Result<(re::Digest, re::Digest), WorkerError> {
        let mut files = Vec::new();
        let mut children = Vec::new();
        let root = describe_dir(dir, &mut files, &mut children)?;
        for (path, digest, size) in &files {
            self.client.upload(path, digest, *size).await?;
        }
        let root_bytes = root.encode_to_vec();
        let root_digest = to_proto(&Digest::of_bytes(&root_bytes), root_bytes.len() as u64);
        let tree = re::Tree {
            root: Some(root),
            children,
        };
        let scratch = dir.parent().unwrap_or(dir);
        let tree_digest = self.put_bytes(&tree.encode_to_vec(), scratch).await?;
        Ok((tree_digest, root_digest))
    }
}

/// The Directory message of `dir` (entries sorted by name, as REAPI requires), collecting the
/// files to upload and every sub-directory's message.
fn describe_dir(
    dir: &Path,
    files: &mut Vec<(PathBuf, Digest, u64)>,
    children: &mut Vec<re::Directory>,
) -> Result<re::Directory, WorkerError> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    let mut out = re::Directory::default();
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            out.symlinks.push(re::SymlinkNode {
                name,
                target: target.to_string_lossy().into_owned(),
                ..Default::default()
            });
        } else if meta.is_dir() {
            let sub = describe_dir(&path, files, children)?;
            let bytes = sub.encode_to_vec();
            out.directories.push(re::DirectoryNode {
                name,
                digest: Some(to_proto(&Digest::of_bytes(&bytes), bytes.len() as u64)),
            });
            children.push(sub);
        } else if meta.is_file() {
            let file = std::fs::File::open(&path).map_err(io(&path))?;
            let (digest, size) = Digest::of_reader(file).map_err(io(&path))?;
            out.files.push(re::FileNode {
                name,
                digest: Some(to_proto(&digest, size)),
                is_executable: meta.permissions().mode() & 0o111 != 0,
                ..Default::default()
            });
            files.push((path, digest, size));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_input_root_are_refused() {
        assert!(safe_relative("out/a.txt", "output").is_ok());
        assert!(safe_relative("", "working directory").is_ok());
        assert!(safe_relative("../etc/passwd", "output").is_err());
        assert!(safe_relative("/etc/passwd", "output").is_err());
        assert!(safe_relative("a/../../b", "output").is_err());
        assert!(safe_name("..").is_err());
        assert!(safe_name("a/b").is_err());
        assert!(safe_name("").is_err());
        assert_eq!(safe_name("main.go").unwrap(), "main.go");
        assert_eq!(sandbox_cwd(Path::new("")), Path::new("/kiln/input"));
        assert_eq!(sandbox_cwd(Path::new(".")), Path::new("/kiln/input"));
        assert_eq!(
            sandbox_cwd(Path::new("cmd/app")).to_str(),
            Some("/kiln/input/cmd/app")
        );
    }

    #[test]
    fn a_directory_is_described_sorted_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x"), "x").unwrap();
        std::fs::write(dir.path().join("b"), "b").unwrap();
        std::fs::write(dir.path().join("a"), "a").unwrap();
        let (mut files, mut children) = (Vec::new(), Vec::new());
        let root = describe_dir(dir.path(), &mut files, &mut children).unwrap();
        let names: Vec<&str> = root.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(root.directories[0].name, "sub");
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].files[0].name, "x");
        assert_eq!(files.len(), 3);
    }
}
