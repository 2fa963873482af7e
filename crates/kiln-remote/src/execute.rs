//! [`RemoteExecutor`]: kiln's `go build` actions run on a Remote Execution API engine.
//!
//! Each action becomes a REAPI Action whose input root holds exactly the files kiln's key hashed
//! (the module's sources, go.mod/go.sum/go.work, vendor, and the module-cache packages with the
//! metadata go checks), whose Command is the exact `go build` with the full keyed environment, and
//! whose platform names this machine's Go toolchain, so only a worker with the same Go runs it.
//! Nothing in the Action names a path of this machine: two checkouts of the same commit, on two
//! machines with different homes and caches, make the same Action digest, and the engine's action
//! cache answers the second.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::longrunning::{operation, Operation};
use kiln_config::{Fallback, RemoteExecution};
use kiln_exec::{Action, Completed, ExecError, ExecutionStats, Executor, LocalExecutor, Portable};
use kiln_types::Digest;
use prost::Message;

use crate::action::{from_proto, proto_digest_of, to_proto};
use crate::{platform, ReapiClient, RemoteError};

/// Version of how kiln lays out a remote `go build` (the input root's fixed directories, the
/// script, the environment it adds). In every Command's environment (`KILN_EXEC_LAYOUT`): bump it
/// when the layout changes, and old cache entries are simply not found again.
pub const EXEC_LAYOUT_VERSION: u32 = 1;

/// Directory of the input root that holds what kiln adds: the module cache, go's caches and the
/// output directory. A name no Go project uses at its top.
const KILN_DIR: &str = ".kiln-rexec";

/// The script every remote action runs with `/bin/sh -c`. Go wants absolute paths for its caches,
/// and only the worker knows where the input root is, so the script makes them from `$PWD` (the
/// input root); then it enters the module's directory (`$1`) and runs go with the rest of the
/// arguments. `-o` ends with `/`, so go names each binary after its package, as it does locally.
const SCRIPT: &str = "r=$PWD && cd \"$1\" && shift && \
export HOME=\"$r/.kiln-rexec/home\" GOPATH=\"$r/.kiln-rexec/gopath\" \
GOMODCACHE=\"$r/.kiln-rexec/gomodcache\" GOCACHE=\"$r/.kiln-rexec/gocache\" && \
exec go build -o \"$r/.kiln-rexec/out/\" \"$@\"";

/// Where a worker's `go` is looked for: `kiln worker` binds its toolchain at `/kiln/go`; other
/// workers usually have Go in one of the others.
const WORKER_PATH: &str = "/kiln/go/bin:/usr/local/go/bin:/usr/lib/go/bin:/usr/bin:/bin";

/// Quick retries of a call before the engine accepted the action.
const STREAM_RETRIES: u32 = 3;

/// How long kiln keeps reconnecting to an engine that holds one of its operations (an engine
/// restart takes a while) before it counts as failed.
const RECONNECT_WINDOW: Duration = Duration::from_secs(180);

/// Time an action may wait in the engine's queue beyond its own timeout.
const QUEUE_ALLOWANCE: Duration = Duration::from_secs(600);

/// The wait before the `n`th retry: 0.5 s, 1 s, 2 s, then 4 s each.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(250 << n.clamp(1, 4))
}

/// How following an update stream ended.
enum Followed {
    Done(Operation),
    TimedOut,
    /// Why, and whether any update came before the break.
    Broken(String, bool),
}

/// One file of the input root.
#[derive(Debug, Clone)]
struct InputFile {
    digest: Digest,
    size: u64,
    executable: bool,
    source: PathBuf,
}

/// A directory of the input root being assembled.
#[derive(Debug, Default)]
struct Dir {
    dirs: BTreeMap<String, Dir>,
    files: BTreeMap<String, InputFile>,
}

impl Dir {
    fn insert(&mut self, rel: &Path, file: InputFile) -> Result<(), String> {
        let parts: Vec<String> = rel
            .components()
            .map(|c| match c {
                Component::Normal(n) => Ok(n.to_string_lossy().into_owned()),
                other => Err(format!("{other:?} in {}", rel.display())),
            })
            .collect::<Result<_, _>>()?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(format!("empty path for {}", file.source.display()));
        };
        let mut dir = self;
        for p in parents {
            dir = dir.dirs.entry(p.clone()).or_default();
        }
        dir.files.insert(name.clone(), file);
        Ok(())
    }

    /// Encodes the tree bottom-up: every Directory message by digest, and the root's digest.
    fn encode(&self, blobs: &mut HashMap<String, Vec<u8>>) -> re::Digest {
        let msg = re::Directory {
            files: self
                .files
                .iter()
                .map(|(name, f)| re::FileNode {
                    name: name.clone(),
                    digest: Some(to_proto(&f.digest, f.size)),
                    is_executable: f.executable,
                    ..Default::default()
                })
                .collect(),
            directories: self
                .dirs
                .iter()
                .map(|(name, d)| re::DirectoryNode {
                    name: name.clone(),
                    digest: Some(d.encode(blobs)),
                })
                .collect(),
            ..Default::default()
        }
        .encode_to_vec();
        let digest = proto_digest_of(&msg);
        blobs.insert(digest.hash.clone(), msg);
        digest
    }

    fn for_each_file<'a>(&'a self, out: &mut Vec<&'a InputFile>) {
        out.extend(self.files.values());
        for d in self.dirs.values() {
            d.for_each_file(out);
        }
    }
}

/// A remote Action ready to send: its messages, the blobs behind them and what to bring back.
struct Prepared {
    digest: re::Digest,
    messages: HashMap<String, Vec<u8>>,
    files: Vec<InputFile>,
    /// Output path (relative to the input root) -> the file name in the output directory.
    outputs: Vec<(String, String)>,
}

/// Why a remote run did not give a result: the engine failed (fall back), or the inputs were gone
/// from its CAS (upload again once).
enum Failure {
    Engine(String),
    MissingInputs(String),
}

impl From<RemoteError> for Failure {
    fn from(e: RemoteError) -> Self {
        Failure::Engine(e.to_string())
    }
}

/// Operations this process has running on engines, so an interrupted kiln can cancel them.
static RUNNING: Mutex<Vec<(tokio::runtime::Handle, ReapiClient, String)>> = Mutex::new(Vec::new());

/// Cancels every remote operation this process started and that has not finished (for the
/// SIGINT/SIGTERM handler, beside [`kiln_exec::kill_running`]). Waits at most a few seconds.
pub fn cancel_running() {
    let ops: Vec<_> = RUNNING.lock().map(|r| r.clone()).unwrap_or_default();
    for (handle, client, name) in ops {
        let _ = handle.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), client.cancel_operation(&name)).await
        });
    }
}

/// The platform properties of one `go`, or why they could not be read.
type PlatformOf = Result<Vec<(String, String)>, String>;

/// An input file's size and modification time when it was hashed, and its digest.
type Seen = (u64, Option<SystemTime>, Digest);

/// Runs kiln's actions on a REAPI engine (`[execute] remote`), and on this machine what cannot run
/// there ([`Portable::local_only`]) or when the engine fails (`fallback = "local"`, the default).
pub struct RemoteExecutor {
    rt: Option<tokio::runtime::Runtime>,
    client: ReapiClient,
    settings: RemoteExecution,
    local: LocalExecutor,
    name: String,
    platforms: Mutex<HashMap<PathBuf, PlatformOf>>,
    digests: Mutex<HashMap<PathBuf, Seen>>,
    disabled: Mutex<Option<String>>,
    told: Mutex<BTreeSet<String>>,
    warnings: Mutex<Vec<String>>,
    remote: AtomicU64,
    cached: AtomicU64,
    local_runs: AtomicU64,
    up_blobs: AtomicU64,
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
}

impl std::fmt::Debug for RemoteExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteExecutor")
            .field("remote", &self.name)
            .finish()
    }
}

impl RemoteExecutor {
    /// An executor for `settings`; what runs here uses `local`. Nothing is sent yet.
    pub fn open(settings: RemoteExecution, local: LocalExecutor) -> Result<Self, RemoteError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-rexec")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        let client = {
            let _guard = rt.enter();
            ReapiClient::new(settings.remote.clone())?
        };
        Ok(Self {
            rt: Some(rt),
            name: settings.remote.display_name(),
            client,
            settings,
            local,
            platforms: Mutex::default(),
            digests: Mutex::default(),
            disabled: Mutex::default(),
            told: Mutex::default(),
            warnings: Mutex::default(),
            remote: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            local_runs: AtomicU64::new(0),
            up_blobs: AtomicU64::new(0),
            up_bytes: AtomicU64::new(0),
            down_bytes: AtomicU64::new(0),
        })
    }

    fn warn(&self, w: String) {
        if let Ok(mut ws) = self.warnings.lock() {
            ws.push(w);
        }
    }

    /// Tells once per reason why actions build here.
    fn tell_once(&self, reason: &str, message: String) {
        if let Ok(mut told) = self.told.lock() {
            if told.insert(reason.to_string()) {
                drop(told);
                self.warn(message);
            }
        }
    }

    fn run_here(
        &self,
        action: &Action,
        out_dir: &Path,
        parallelism: usize,
    ) -> Result<Completed, ExecError> {
        self.local_runs.fetch_add(1, Ordering::Relaxed);
        self.local.run(action, out_dir, parallelism)
    }

    fn platform(&self, go: &Path) -> Result<Vec<(String, String)>, String> {
        let mut p = self
            .platforms
            .lock()
            .map_err(|_| "internal error: platform cache poisoned".to_string())?;
        p.entry(go.to_path_buf())
            .or_insert_with(|| platform::go_platform(go))
            .clone()
    }

    /// The sha256 of an input file, remembered by size and modification time for the run.
    fn file_digest(&self, path: &Path) -> Result<(Digest, u64, bool), String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mtime = meta.modified().ok();
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o111 != 0
        };
        if let Ok(d) = self.digests.lock() {
            if let Some((size, m, digest)) = d.get(path) {
                if *size == meta.len() && *m == mtime && mtime.is_some() {
                    return Ok((*digest, *size, executable));
                }
            }
        }
        let (digest, size) = std::fs::File::open(path)
            .and_then(Digest::of_reader)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(mut d) = self.digests.lock() {
            d.insert(path.to_path_buf(), (size, mtime, digest));
        }
        Ok((digest, size, executable))
    }

    /// Builds the Action for `action`.
    fn prepare(&self, action: &Action, p: &Portable) -> Result<Prepared, String> {
        let dir = action.command.dir();
        let mut shipped: Vec<PathBuf> = Vec::new();
        let mut modcache: BTreeSet<PathBuf> = BTreeSet::new();
        let mut sums: Vec<PathBuf> = Vec::new();
        for f in &p.files {
            if f.starts_with(&p.goroot) {
                continue; // the worker's toolchain, the same by the platform properties
            }
            if !f.exists() {
                // The key records it as absent (default.pgo, vendor/modules.txt): absent from
                // the input root too.
                continue;
            }
            if let Ok(rel) = f.strip_prefix(&p.gomodcache) {
                modcache.insert(rel.to_path_buf());
                continue;
            }
            if matches!(
                f.file_name().and_then(|n| n.to_str()),
                Some("go.sum" | "go.work.sum")
            ) {
                sums.push(f.clone());
            }
            shipped.push(f.clone());
        }
        // What go checks in the module cache besides the package files: each module's go.mod
        // and ziphash (it refuses an extracted module without one), and the go.mod of every
        // module go.sum names, which module graph loading may read.
        let mut meta: BTreeSet<PathBuf> = BTreeSet::new();
        for rel in &modcache {
            if let Some((module, version)) = module_of(rel) {
                let base = PathBuf::from("cache/download").join(&module).join("@v");
                meta.insert(base.join(format!("{version}.mod")));
                meta.insert(base.join(format!("{version}.ziphash")));
            }
        }
        for sum in &sums {
            let text =
                std::fs::read_to_string(sum).map_err(|e| format!("{}: {e}", sum.display()))?;
            for line in text.lines() {
                let mut it = line.split_whitespace();
                if let (Some(m), Some(v)) = (it.next(), it.next()) {
                    if let Some(v) = v.strip_suffix("/go.mod") {
                        meta.insert(
                            PathBuf::from("cache/download")
                                .join(escape(m))
                                .join("@v")
                                .join(format!("{}.mod", escape(v))),
                        );
                    }
                }
            }
        }
        for m in meta {
            if p.gomodcache.join(&m).is_file() {
                modcache.insert(m);
            }
        }

        // The input root is the deepest directory holding the module and every shipped file
        // (a `replace` may point outside the module); paths below it are what the Action names.
        let mut base = dir.to_path_buf();
        for f in &shipped {
            while !f.starts_with(&base) {
                base = match base.parent() {
                    Some(b) => b.to_path_buf(),
                    None => {
                        return Err(format!(
                            "{} shares no directory with the module",
                            f.display()
                        ))
                    }
                };
            }
        }
        let wd = dir
            .strip_prefix(&base)
            .map_err(|_| "the module is outside the input root".to_string())?;
        if wd.starts_with(KILN_DIR) {
            return Err(format!("the module lives in a directory named {KILN_DIR}"));
        }
        let mut root = Dir::default();
        let mut add = |rel: PathBuf, path: PathBuf| -> Result<(), String> {
            let (digest, size, executable) = self.file_digest(&path)?;
            root.insert(
                &rel,
                InputFile {
                    digest,
                    size,
                    executable,
                    source: path,
                },
            )
        };
        for f in shipped {
            let rel = f
                .strip_prefix(&base)
                .map_err(|_| format!("{} is outside the input root", f.display()))?
                .to_path_buf();
            if rel.starts_with(KILN_DIR) {
                return Err(format!(
                    "{} is in a directory named {KILN_DIR}",
                    f.display()
                ));
            }
            add(rel, f)?;
        }
        for rel in modcache {
            add(
                Path::new(KILN_DIR).join("gomodcache").join(&rel),
                p.gomodcache.join(&rel),
            )?;
        }

        let mut messages = HashMap::new();
        let root_digest = root.encode(&mut messages);
        let mut files = Vec::new();
        root.for_each_file(&mut files);
        let files: Vec<InputFile> = files.into_iter().cloned().collect();

        let outputs: Vec<(String, String)> = p
            .binaries
            .iter()
            .map(|b| (format!("{KILN_DIR}/out/{b}"), b.clone()))
            .collect();
        let mut env: BTreeMap<String, String> = p.keyed_env.clone();
        // GOWORK is keyed as on/off; a path in it keeps the action local (Portable::local_only).
        if env.get("GOWORK").map(String::as_str) != Some("off") {
            env.remove("GOWORK");
        }
        for (k, v) in [
            ("GOTOOLCHAIN", "local"),
            ("GOPROXY", "off"),
            ("GOENV", "off"),
            ("PATH", WORKER_PATH),
            // An opt-in for `kiln worker`: serve go's package cache from the engine (no Go tool
            // reads it; other workers ignore it).
            ("KILN_GOCACHEPROG", "worker"),
        ] {
            env.insert(k.into(), v.into());
        }
        // In the environment, not the platform: engines match every platform property against
        // their workers', and a worker has no layout.
        env.insert("KILN_EXEC_LAYOUT".into(), EXEC_LAYOUT_VERSION.to_string());
        let wd_arg = if wd.as_os_str().is_empty() {
            ".".to_string()
        } else {
            wd.to_string_lossy().into_owned()
        };
        let mut arguments = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            SCRIPT.into(),
            "kiln-go-build".into(),
            wd_arg,
        ];
        arguments.extend(action.command.args().iter().cloned());
        arguments.push("--".into());
        arguments.extend(action.packages.iter().cloned());
        let paths: Vec<String> = outputs.iter().map(|(p, _)| p.clone()).collect();
        #[allow(deprecated)] // output_files with output_paths, for engines of REAPI 2.0 and 2.1+
        let command = re::Command {
            arguments,
            environment_variables: env
                .into_iter()
                .map(|(name, value)| re::command::EnvironmentVariable { name, value })
                .collect(),
            output_files: paths.clone(),
            output_paths: paths,
            working_directory: String::new(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut properties: Vec<re::platform::Property> = self
            .platform(action.command.go())?
            .into_iter()
            .map(|(name, value)| re::platform::Property { name, value })
            .collect();
        properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
        let command_digest = proto_digest_of(&command);
        messages.insert(command_digest.hash.clone(), command);
        let action_msg = re::Action {
            command_digest: Some(command_digest),
            input_root_digest: Some(root_digest),
            timeout: Some(prost_types_duration(self.settings.action_timeout)),
            do_not_cache: false,
            platform: Some(re::Platform { properties }),
            ..Default::default()
        }
        .encode_to_vec();
        let digest = proto_digest_of(&action_msg);
        messages.insert(digest.hash.clone(), action_msg);
        Ok(Prepared {
            digest,
            messages,
            files,
            outputs,
        })
    }

    /// Uploads what the engine's CAS lacks.
    async fn upload(&self, prep: &Prepared) -> Result<(), RemoteError> {
        let mut by_hash: HashMap<String, (re::Digest, Option<&InputFile>)> = HashMap::new();
        for (hash, msg) in &prep.messages {
            by_hash.insert(hash.clone(), (proto_digest_of(msg), None));
        }
        for f in &prep.files {
            by_hash
                .entry(f.digest.hex())
                .or_insert((to_proto(&f.digest, f.size), Some(f)));
        }
        let all: Vec<re::Digest> = by_hash.values().map(|(d, _)| d.clone()).collect();
        let mut missing = Vec::new();
        for chunk in all.chunks(4096) {
            missing.extend(self.client.find_missing(chunk).await?);
        }
        let limit = self.client.batch_limit();
        let mut batch: Vec<(re::Digest, Vec<u8>)> = Vec::new();
        let mut batch_size = 0u64;
        for d in missing {
            let size = u64::try_from(d.size_bytes).unwrap_or(0);
            let Some((_, file)) = by_hash.get(&d.hash) else {
                continue;
            };
            self.up_blobs.fetch_add(1, Ordering::Relaxed);
            self.up_bytes.fetch_add(size, Ordering::Relaxed);
            if size > limit {
                if let Some(f) = file {
                    self.client.upload(&f.source, &f.digest, f.size).await?;
                }
                continue;
            }
            let data = match file {
                Some(f) => {
                    let data = std::fs::read(&f.source).map_err(|source| RemoteError::Io {
                        path: f.source.clone(),
                        source,
                    })?;
                    // The file changed since it was hashed: sending it would put bytes under
                    // another digest.
                    if Digest::of_bytes(&data) != f.digest {
                        return Err(RemoteError::Io {
                            path: f.source.clone(),
                            source: std::io::Error::other("the file changed while kiln read it"),
                        });
                    }
                    data
                }
                None => prep.messages.get(&d.hash).cloned().unwrap_or_default(),
            };
            if batch_size + size > limit && !batch.is_empty() {
                self.client.batch_update(&batch).await?;
                batch.clear();
                batch_size = 0;
            }
            batch_size += size;
            batch.push((d, data));
        }
        if !batch.is_empty() {
            self.client.batch_update(&batch).await?;
        }
        Ok(())
    }

    /// Runs the Action on the engine until it answers, following broken streams.
    ///
    /// Retries are bounded two ways. Before the engine accepted the action, a few quick ones
    /// (an engine that is down at the start should cost seconds, then the fallback). Once it
    /// holds an operation, kiln waits for it through [`RECONNECT_WINDOW`] of failures in a row
    /// (an engine restarting keeps its operations in its database), then gives up.
    async fn execute(&self, digest: &re::Digest) -> Result<re::ExecuteResponse, Failure> {
        let limit = self.settings.action_timeout + QUEUE_ALLOWANCE;
        let deadline = Instant::now() + limit;
        let mut name: Option<String> = None;
        let mut failures = 0u32;
        let mut failing_since: Option<Instant> = None;
        let result = loop {
            // Wait before trying again, or give up: `Some(why)` ends the loop.
            let give_up = |failures: u32, since: Option<Instant>, accepted: bool, why: String| {
                let over = if accepted {
                    since.is_some_and(|t| t.elapsed() > RECONNECT_WINDOW)
                } else {
                    failures > STREAM_RETRIES
                };
                over.then_some(why)
            };
            let stream = match &name {
                None => self.client.execute(digest.clone()).await,
                Some(n) => self.client.wait_execution(n).await,
            };
            let mut stream = match stream {
                Ok(s) => s,
                Err(RemoteError::Status {
                    code: tonic::Code::NotFound,
                    ..
                }) if name.is_some() => {
                    // The engine no longer knows the operation: submit the action again (the
                    // engine deduplicates by digest and may answer from its cache).
                    if let Some(old) = name.take() {
                        forget(&old);
                    }
                    failures += 1;
                    if failures > 2 * STREAM_RETRIES {
                        break Err(Failure::Engine(
                            "the engine keeps losing the operation".into(),
                        ));
                    }
                    continue;
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if let Some(why) = give_up(failures, Some(since), name.is_some(), e.to_string())
                    {
                        break Err(Failure::Engine(why));
                    }
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
                Err(e) => break Err(Failure::from(e)),
            };
            match self.follow(&mut stream, deadline, &mut name).await {
                Followed::Done(op) => {
                    forget(&op.name);
                    break decode(op);
                }
                Followed::TimedOut => {
                    break Err(Failure::Engine(format!(
                        "no answer within {limit:?} (is a worker with this Go toolchain connected?)"
                    )))
                }
                Followed::Broken(why, got) => {
                    if got {
                        // The stream worked for a while: this is a new run of failures.
                        failures = 0;
                        failing_since = None;
                    }
                    failures += 1;
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if let Some(why) = give_up(failures, Some(since), name.is_some(), why) {
                        break Err(Failure::Engine(why));
                    }
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        };
        if let Some(n) = &name {
            forget(n);
        }
        result
    }

    /// Reads updates until the operation is done, the stream breaks (with the operation's name
    /// if one was seen) or the deadline passes.
    async fn follow(
        &self,
        stream: &mut tonic::Streaming<Operation>,
        deadline: Instant,
        name: &mut Option<String>,
    ) -> Followed {
        let mut got = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, stream.message()).await {
                Err(_) => return Followed::TimedOut,
                Ok(Ok(Some(op))) if op.done => return Followed::Done(op),
                Ok(Ok(Some(op))) => {
                    got = true;
                    if !op.name.is_empty() && name.as_deref() != Some(op.name.as_str()) {
                        if let Some(old) = name.replace(op.name.clone()) {
                            forget(&old);
                        }
                        // Registered at once, so an interrupt can cancel it while it runs.
                        if let Ok(mut r) = RUNNING.lock() {
                            r.push((
                                tokio::runtime::Handle::current(),
                                self.client.clone(),
                                op.name,
                            ));
                        }
                    }
                }
                Ok(Ok(None)) => {
                    return Followed::Broken("the update stream ended early".into(), got)
                }
                Ok(Err(s)) => {
                    return Followed::Broken(format!("{:?}: {}", s.code(), s.message()), got)
                }
            }
        }
    }

    /// Uploads, executes and downloads one action.
    async fn run_remote(&self, prep: &Prepared, out_dir: &Path) -> Result<Completed, Failure> {
        let start = Instant::now();
        self.upload(prep).await?;
        let mut resp = self.execute(&prep.digest).await;
        if let Err(Failure::MissingInputs(_)) = &resp {
            // The CAS dropped inputs between the check and the run: send them again, once.
            self.upload(prep).await?;
            resp = self.execute(&prep.digest).await;
        }
        let resp = match resp {
            Ok(r) => r,
            Err(Failure::MissingInputs(m)) => return Err(Failure::Engine(m)),
            Err(e) => return Err(e),
        };
        let result = resp
            .result
            .ok_or_else(|| Failure::Engine("the engine answered without a result".into()))?;
        let scratch = tempfile::Builder::new()
            .prefix(".kiln-rexec-")
            .tempdir_in(out_dir)
            .map_err(|e| Failure::Engine(format!("{}: {e}", out_dir.display())))?;
        let mut log = String::new();
        for (raw, digest) in [
            (&result.stderr_raw, &result.stderr_digest),
            (&result.stdout_raw, &result.stdout_digest),
        ] {
            if !raw.is_empty() {
                log.push_str(&String::from_utf8_lossy(raw));
            } else if let Some((d, size)) = digest.as_ref().and_then(from_proto) {
                if size > 0 {
                    let bytes = self
                        .client
                        .read_blob(&d, size, scratch.path())
                        .await?
                        .ok_or_else(|| {
                            Failure::Engine("the action's log is gone from the CAS".into())
                        })?;
                    self.down_bytes.fetch_add(size, Ordering::Relaxed);
                    log.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        let status = resp.status.unwrap_or_default();
        if result.exit_code != 0 || status.code != 0 {
            if status.code != 0 && !status.message.is_empty() {
                log.push_str(&format!("\n[engine: {}]", status.message));
            }
            self.remote.fetch_add(1, Ordering::Relaxed);
            return Ok(Completed {
                success: false,
                stderr: log.trim_end().to_string(),
                duration: start.elapsed(),
            });
        }
        for (path, name) in &prep.outputs {
            let Some(file) = result.output_files.iter().find(|f| &f.path == path) else {
                continue; // kiln-build reports a binary go did not write
            };
            let (d, size) = file
                .digest
                .as_ref()
                .and_then(from_proto)
                .ok_or_else(|| Failure::Engine(format!("bad digest for output {path}")))?;
            let dest = out_dir.join(name);
            match self.client.download(&d, size, &dest).await? {
                crate::Fetched::Done => {}
                crate::Fetched::Missing => {
                    return Err(Failure::Engine(format!(
                        "output {path} is missing from the CAS"
                    )))
                }
                crate::Fetched::Corrupt(why) => {
                    return Err(Failure::Engine(format!("output {path}: {why}")))
                }
            }
            self.down_bytes.fetch_add(size, Ordering::Relaxed);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Failure::Engine(format!("{}: {e}", dest.display())))?;
        }
        self.remote.fetch_add(1, Ordering::Relaxed);
        if resp.cached_result {
            self.cached.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Completed {
            success: true,
            stderr: log.trim_end().to_string(),
            duration: start.elapsed(),
        })
    }
}

impl Executor for RemoteExecutor {
    fn name(&self) -> String {
        format!("remote {}", self.name)
    }

    fn run(
        &self,
        action: &Action,
        out_dir: &Path,
        parallelism: usize,
    ) -> Result<Completed, ExecError> {
        let Some(portable) = &action.portable else {
            return self.run_here(action, out_dir, parallelism);
        };
        if let Some(why) = &portable.local_only {
            self.tell_once(
                why,
                format!("{}: builds on this machine: {why}", action.label),
            );
            return self.run_here(action, out_dir, parallelism);
        }
        let down = self.disabled.lock().ok().and_then(|d| d.clone());
        let failure = match down {
            Some(why) => why,
            None => {
                std::fs::create_dir_all(out_dir).map_err(|source| ExecError::OutDir {
                    path: out_dir.to_path_buf(),
                    source,
                })?;
                let outcome = match (self.prepare(action, portable), &self.rt) {
                    (Ok(prep), Some(rt)) => rt.block_on(self.run_remote(&prep, out_dir)),
                    (Err(why), _) => {
                        // Inputs kiln cannot ship: this action builds here, the engine stays on.
                        self.tell_once(
                            &why,
                            format!("{}: builds on this machine: {why}", action.label),
                        );
                        return self.run_here(action, out_dir, parallelism);
                    }
                    (_, None) => Err(Failure::Engine("the runtime is gone".into())),
                };
                match outcome {
                    Ok(done) => return Ok(done),
                    Err(Failure::Engine(m) | Failure::MissingInputs(m)) => {
                        let first = self
                            .disabled
                            .lock()
                            .map(|mut d| {
                                let first = d.is_none();
                                d.get_or_insert(m.clone());
                                first
                            })
                            .unwrap_or(false);
                        if first {
                            self.warn(match self.settings.fallback {
                                Fallback::Local => format!(
                                    "remote execution on {} failed ({m}): building on this machine for the rest of the run\nhint: set fallback = \"fail\" under [execute] to stop instead",
                                    self.name
                                ),
                                Fallback::Fail => format!(
                                    "remote execution on {} failed ({m})",
                                    self.name
                                ),
                            });
                        }
                        m
                    }
                }
            }
        };
        match self.settings.fallback {
            Fallback::Local => self.run_here(action, out_dir, parallelism),
            Fallback::Fail => Err(ExecError::Remote {
                label: action.label.clone(),
                message: failure,
            }),
        }
    }

    fn needs_portable(&self) -> bool {
        true
    }

    fn drain_warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    fn stats(&self) -> Option<ExecutionStats> {
        Some(ExecutionStats {
            executor: self.name(),
            remote: self.remote.load(Ordering::Relaxed),
            remote_cached: self.cached.load(Ordering::Relaxed),
            local: self.local_runs.load(Ordering::Relaxed),
            uploaded_blobs: self.up_blobs.load(Ordering::Relaxed),
            uploaded_bytes: self.up_bytes.load(Ordering::Relaxed),
            downloaded_bytes: self.down_bytes.load(Ordering::Relaxed),
            disabled: self.disabled.lock().ok().and_then(|d| d.clone()),
        })
    }
}

impl Drop for RemoteExecutor {
    fn drop(&mut self) {
        // Their runtime goes away: an interrupt after this must not try to use it.
        if let Ok(mut r) = RUNNING.lock() {
            r.retain(|(_, c, _)| c.config().url != self.client.config().url);
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn forget(name: &str) {
    if let Ok(mut r) = RUNNING.lock() {
        r.retain(|(_, _, n)| n != name);
    }
}

/// The ExecuteResponse inside a finished Operation.
fn decode(op: Operation) -> Result<re::ExecuteResponse, Failure> {
    match op.result {
        Some(operation::Result::Response(any)) => {
            let resp = re::ExecuteResponse::decode(&any.value[..])
                .map_err(|e| Failure::Engine(format!("bad ExecuteResponse: {e}")))?;
            let status = resp.status.clone().unwrap_or_default();
            // FAILED_PRECONDITION with no result: inputs went missing from the CAS.
            if status.code == tonic::Code::FailedPrecondition as i32 && resp.result.is_none() {
                return Err(Failure::MissingInputs(status.message));
            }
            if status.code != 0 && resp.result.is_none() {
                return Err(Failure::Engine(format!(
                    "{:?}: {}",
                    tonic::Code::from(status.code),
                    status.message
                )));
            }
            Ok(resp)
        }
        Some(operation::Result::Error(s)) => Err(Failure::Engine(format!(
            "{:?}: {}",
            tonic::Code::from(s.code),
            s.message
        ))),
        None => Err(Failure::Engine(
            "the operation finished without a result".into(),
        )),
    }
}

fn prost_types_duration(d: Duration) -> bazel_remote_apis::google::protobuf::Duration {
    bazel_remote_apis::google::protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

/// The module (escaped path) and version of a path below GOMODCACHE, from its `path@version`
/// directory.
fn module_of(rel: &Path) -> Option<(PathBuf, String)> {
    let mut module = PathBuf::new();
    for c in rel.components() {
        let Component::Normal(part) = c else {
            return None;
        };
        let part = part.to_str()?;
        if part == "cache" && module.as_os_str().is_empty() {
            return None;
        }
        if let Some((last, version)) = part.split_once('@') {
            module.push(last);
            return Some((module, version.to_string()));
        }
        module.push(part);
    }
    None
}

/// Go's case encoding of module paths and versions in the module cache: `!` before the lower
/// case of every upper-case letter.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_cache_paths_name_their_module() {
        assert_eq!(
            module_of(Path::new("github.com/!burnt!sushi/toml@v1.3.2/decode.go")),
            Some((
                PathBuf::from("github.com/!burnt!sushi/toml"),
                "v1.3.2".into()
            ))
        );
        assert_eq!(module_of(Path::new("cache/download/x/@v/v1.mod")), None);
        assert_eq!(
            escape("github.com/BurntSushi/toml"),
            "github.com/!burnt!sushi/toml"
        );
    }

    #[test]
    fn the_input_tree_is_sorted_and_content_addressed() {
        let f = |b: &[u8]| InputFile {
            digest: Digest::of_bytes(b),
            size: b.len() as u64,
            executable: false,
            source: PathBuf::from("x"),
        };
        let mut a = Dir::default();
        a.insert(Path::new("b/x.go"), f(b"1")).unwrap();
        a.insert(Path::new("a.go"), f(b"2")).unwrap();
        let mut b = Dir::default();
        b.insert(Path::new("a.go"), f(b"2")).unwrap();
        b.insert(Path::new("b/x.go"), f(b"1")).unwrap();
        let (mut ma, mut mb) = (HashMap::new(), HashMap::new());
        assert_eq!(a.encode(&mut ma), b.encode(&mut mb));
        assert_eq!(ma.len(), 2);
        let mut c = Dir::default();
        c.insert(Path::new("a.go"), f(b"3")).unwrap();
        c.insert(Path::new("b/x.go"), f(b"1")).unwrap();
        assert_ne!(a.encode(&mut HashMap::new()), c.encode(&mut HashMap::new()));
        assert!(a.insert(Path::new("../up.go"), f(b"1")).is_err());
    }
}
