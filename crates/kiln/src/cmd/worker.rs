//! `kiln worker`: turn this machine into a remote execution worker for an engine that speaks the
//! Remote Workers API (BuildGrid). Runs until killed; progress lines go to stderr.
//!
//! The Go toolchain (`--go`, default `go` on PATH) gives the platform properties and is bound
//! read-only at /kiln/go in every sandbox; actions that set `KILN_GOCACHEPROG=worker` get go's
//! package cache through the engine (Go 1.24+, off with `--no-go-cache`), relayed by this same
//! binary (`kiln gocacheprog --connect`) bound at /kiln/bin/kiln.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_config::{Env, RemoteCache};
use kiln_worker::{
    GoCacheConfig, GoPackageStats, GoToolchain, Limits, TrimReport, Worker, WorkerConfig,
    WorkerError, WorkerReporter,
};

/// Arguments of `kiln worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The engine: grpc://HOST:PORT (plain) or grpcs://HOST:PORT (TLS).
    #[arg(long, value_name = "URL")]
    server: String,
    /// REAPI instance name (default: the engine's default instance).
    #[arg(long, value_name = "NAME", default_value = "")]
    instance: String,
    /// An extra platform property to advertise, KEY=VALUE (repeatable); replaces a detected one
    /// with the same key. Detected: OSFamily, ISA, kiln-go-version, kiln-go-toolchain.
    #[arg(long = "platform", value_name = "KEY=VALUE")]
    platform: Vec<String>,
    /// The id the engine shows for this bot (default: kiln-worker-PID).
    #[arg(long, value_name = "ID")]
    bot_id: Option<String>,
    /// Where action directories are created (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Bind a host directory read-only into every sandbox, HOST or HOST:INSIDE (repeatable); a
    /// Go toolchain outside /usr, for example.
    #[arg(long = "bind-ro", value_name = "HOST[:INSIDE]")]
    bind_ro: Vec<String>,
    /// Timeout of an action that sets none, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    timeout: u64,
    /// Address-space limit of every action process, in MiB.
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u64>,
    /// CPU-time limit of every action process, in seconds.
    #[arg(long, value_name = "SECONDS")]
    cpu_seconds: Option<u64>,
    /// Largest file an action may write, in MiB.
    #[arg(long, value_name = "MIB")]
    max_file_mib: Option<u64>,
    /// The Go toolchain actions run with (default: KILN_GO, else `go` on PATH). Its GOROOT is
    /// bound read-only at /kiln/go in every sandbox, so a Command's PATH of /kiln/go/bin finds
    /// it, and the platform properties describe it.
    #[arg(long, value_name = "PATH")]
    go: Option<PathBuf>,
    /// Never serve go's package cache through the engine, even to actions that set
    /// KILN_GOCACHEPROG=worker (their environment is then exactly the Command's).
    #[arg(long)]
    no_go_cache: bool,
    /// An extra gRPC header sent with every call to the engine, KEY=VALUE (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    header: Vec<String>,
    /// Read a bearer token from this environment variable and send it with every call to the
    /// engine.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Keep the input and Go package caches in the work dir within SIZE (e.g. 20G, 500M; 0 keeps
    /// nothing between actions), least recently used files first. Give each worker its own
    /// --work-dir.
    #[arg(long, value_name = "SIZE", value_parser = crate::cmd::cache::parse_size, default_value = "10G")]
    cache_size: u64,
}

/// Prints what the worker does, one line each, to stderr.
struct Lines {
    quiet: bool,
}

impl WorkerReporter for Lines {
    fn session_opened(&self, name: &str) {
        if !self.quiet {
            eprintln!("worker: bot session {name} opened");
        }
    }
    fn connection_problem(&self, error: &WorkerError, retry_in: Duration) {
        eprintln!("worker: {error} (retrying in {retry_in:?})");
    }
    fn lease_started(&self, lease: &str, action: &str) {
        if !self.quiet {
            eprintln!("worker: lease {lease}: running action {action}");
        }
    }
    fn lease_cancelled(&self, lease: &str) {
        eprintln!("worker: lease {lease}: cancelled by the engine, sandbox killed");
    }
    fn inputs_fetched(&self, lease: &str, downloaded: u64, cached: u64, batch_calls: u64) {
        if !self.quiet {
            eprintln!(
                "worker: lease {lease}: inputs: {downloaded} files downloaded ({batch_calls} batch calls), {cached} from the local cache"
            );
        }
    }
    fn go_packages(&self, lease: &str, s: &GoPackageStats) {
        if !self.quiet {
            eprintln!(
                "worker: lease {lease}: go packages: {} gets ({} local hits, {} remote hits, {} misses), {} puts, {} uploads, {} remote errors",
                s.gets, s.local_hits, s.remote_hits, s.misses, s.puts, s.uploads, s.remote_errors
            );
        }
        if let Some(first) = &s.first_remote_error {
            eprintln!("worker: lease {lease}: go package cache on the engine failed: {first}");
        }
    }
    fn caches_trimmed(&self, r: &TrimReport, limit: u64) {
        if !self.quiet {
            let mib = |b: u64| b as f64 / (1 << 20) as f64;
            eprintln!(
                "worker: caches trimmed: {} files ({:.1} MiB) removed, {:.1} MiB kept (limit {:.1} MiB)",
                r.removed,
                mib(r.freed),
                mib(r.kept),
                mib(limit)
            );
        }
    }
    fn lease_finished(&self, lease: &str, result: Result<i32, &WorkerError>) {
        match result {
            Ok(code) if !self.quiet => eprintln!("worker: lease {lease}: exit code {code}"),
            Ok(_) => {}
            Err(e) => eprintln!("worker: lease {lease}: failed: {e}"),
        }
    }
}

/// Runs `kiln worker` until the process is killed.
pub fn run(env: &Env, args: WorkerArgs, ui: crate::Ui) -> Result<ExitCode> {
    let mut server = RemoteCache::new(&args.server)?;
    server.instance = args.instance.clone();
    for pair in &args.header {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--header {pair:?} is not KEY=VALUE");
        };
        server
            .headers
            .push((key.trim().to_ascii_lowercase(), value.to_string()));
    }
    if let Some(var) = &args.token_env {
        match env.process.get(var).filter(|v| !v.is_empty()) {
            Some(token) => server.token = Some(token.clone()),
            None => eprintln!(
                "{} --token-env names {var}, which is not set: talking to the engine without a token",
                console::style("warning:").yellow().bold()
            ),
        }
    }
    let bot_id = args
        .bot_id
        .clone()
        .unwrap_or_else(|| format!("kiln-worker-{}", std::process::id()));
    let mut cfg = WorkerConfig::new(server, bot_id);
    let go = args.go.clone().unwrap_or_else(|| env.go.clone());
    let toolchain = GoToolchain::detect(&go)?;
    cfg.platform = toolchain.platform.clone();
    cfg.go_root = Some(toolchain.root.clone());
    for pair in &args.platform {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--platform {pair:?} is not KEY=VALUE");
        };
        cfg.platform.retain(|(k, _)| k != key);
        cfg.platform.push((key.to_string(), value.to_string()));
    }
    if let Some(dir) = args.work_dir {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Absolute: its paths are bound into sandboxes (the go package cache at its own path).
        cfg.work_dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
    }
    for bind in &args.bind_ro {
        let (host, inside) = bind.split_once(':').unwrap_or((bind, bind));
        cfg.ro_binds
            .push((PathBuf::from(host), PathBuf::from(inside)));
    }
    if !args.no_go_cache {
        if toolchain.has_gocacheprog() {
            let kiln = std::env::current_exe().context("locating the kiln binary")?;
            cfg.go_cache = Some(GoCacheConfig { kiln });
        } else if !ui.quiet {
            eprintln!(
                "worker: {} has no GOCACHEPROG (Go 1.24 or newer has): go's package cache stays in each action",
                toolchain.version
            );
        }
    }
    cfg.default_timeout = Duration::from_secs(args.timeout);
    cfg.cache_max_bytes = Some(args.cache_size);
    cfg.limits = Limits {
        cpu_seconds: args.cpu_seconds,
        address_space_bytes: args.memory_mib.map(|m| m << 20),
        open_files: None,
        file_size_bytes: args.max_file_mib.map(|m| m << 20),
    };
    if !ui.quiet {
        let props: Vec<String> = cfg
            .platform
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!(
            "worker: {} serving {} as {}",
            cfg.bot_id,
            args.server,
            props.join(" ")
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let worker = Worker::new(cfg)?;
        worker.run(Arc::new(Lines { quiet: ui.quiet })).await
    })?;
    Ok(ExitCode::SUCCESS)
}
