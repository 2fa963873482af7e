//! `kiln gocacheprog`: go's package cache in kiln's store, for `GOCACHEPROG="kiln gocacheprog"`.
//!
//! go starts this command and speaks the GOCACHEPROG protocol over its stdin and stdout, so it
//! prints nothing to stdout itself; the counters go to stderr at the end when asked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use kiln_config::env::KILN_GOCACHEPROG_REMOTE;
use kiln_config::{Env, RemoteCache};
use kiln_exec::GoCacheProgram;
use kiln_gocache::{LocalTier, Server, ServerOptions, Stats};

/// Arguments of `kiln gocacheprog`.
#[derive(Debug, Args)]
pub struct GocacheprogArgs {
    /// kiln's cache directory, whose `go-packages` bucket holds the entries (default:
    /// KILN_CACHE_DIR, else the user cache directory).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Print the counters (gets, hits, misses, puts, bytes) to stderr when go closes the cache
    /// (also KILN_GOCACHEPROG_STATS=1).
    #[arg(long)]
    stats: bool,
    /// Write the counters as JSON to FILE when go closes the cache.
    #[arg(long, value_name = "FILE")]
    stats_file: Option<PathBuf>,
    /// Write the counters as JSON to a new file in DIR when go closes the cache, and leave
    /// warnings to whoever reads them (`kiln build` sums the files of its `go build` runs).
    #[arg(long, value_name = "DIR", conflicts_with = "stats_file")]
    stats_dir: Option<PathBuf>,
    /// Relay go's requests to the GOCACHEPROG server listening on the unix socket SOCKET and its
    /// answers back, serving nothing here (`kiln worker` runs the server outside the sandbox and
    /// sets this in it).
    #[arg(long, value_name = "SOCKET", conflicts_with_all = ["cache_dir", "stats", "stats_file", "stats_dir"])]
    connect: Option<PathBuf>,
}

/// Copies stdin to the socket and the socket to stdout until the server closes the connection
/// (after answering go's `close`).
fn relay(socket: &Path) -> Result<ExitCode> {
    use std::os::unix::net::UnixStream;
    let stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "connecting to the GOCACHEPROG server at {}",
            socket.display()
        )
    })?;
    let mut upstream = stream.try_clone().context("cloning the socket")?;
    // Not joined: go may keep stdin open until this process exits.
    std::thread::spawn(move || {
        let _ = pump(&mut std::io::stdin().lock(), &mut upstream);
        let _ = upstream.shutdown(std::net::Shutdown::Write);
    });
    let mut down = stream;
    pump(&mut down, &mut std::io::stdout().lock()).context("relaying answers to go")?;
    Ok(ExitCode::SUCCESS)
}

/// Copies `from` to `to`, passing on every read at once. Not `std::io::copy`: on Linux it
/// splices between the pipe and the socket, and go's requests then stall in the relay.
fn pump(from: &mut impl std::io::Read, to: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return to.flush(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

/// The remote cache of this session: the one `kiln build` handed over in
/// `KILN_GOCACHEPROG_REMOTE`, else (stand-alone use) the one kiln.toml near the current directory
/// or `KILN_REMOTE_CACHE` names, as for `kiln build`.
fn remote_settings(env: &Env) -> Result<Option<RemoteCache>> {
    if let Some(json) = &env.gocacheprog_remote {
        let cfg = serde_json::from_str(json).with_context(|| {
            format!(
                "{KILN_GOCACHEPROG_REMOTE} does not hold remote cache settings as kiln build writes them\nhint: unset it; set KILN_REMOTE_CACHE or [cache] remote in kiln.toml instead"
            )
        })?;
        return Ok(Some(cfg));
    }
    let config = super::config_near_cwd(env)?;
    super::remote_config(
        env,
        &config,
        crate::Ui {
            quiet: false,
            verbose: false,
        },
    )
}

/// The GOCACHEPROG `kiln build` gives its `go build` invocations when a remote cache is
/// configured: this kiln binary on `store`, with the remote handed over in its environment and
/// each session's counters written to `stats_dir`. Then a change to one shared package recompiles
/// only that package and its dependents on any machine that reaches the remote. Without a remote,
/// go's own disk cache is as good and one process less, so builds keep it.
pub fn for_build(
    store: &kiln_cache::LocalStore,
    remote: Option<&RemoteCache>,
    stats_dir: &Path,
) -> Result<Option<GoCacheProgram>> {
    let Some(remote) = remote else {
        return Ok(None);
    };
    let kiln = std::env::current_exe().context("locating the kiln binary for GOCACHEPROG")?;
    let command = format!(
        "{} --stats-dir {}",
        command_for(&kiln, store.root())?,
        quote(stats_dir.display().to_string())?
    );
    Ok(Some(GoCacheProgram {
        command,
        env: vec![(
            KILN_GOCACHEPROG_REMOTE.to_string(),
            serde_json::to_string(remote)?,
        )],
    }))
}

/// Runs `kiln gocacheprog` until go closes the cache.
pub fn run(env: &Env, args: GocacheprogArgs) -> Result<ExitCode> {
    if let Some(socket) = &args.connect {
        return relay(socket);
    }
    let store = match &args.cache_dir {
        Some(d) => kiln_cache::LocalStore::new(d.clone()),
        None => super::open_store(env)?,
    };
    let dir = store.bucket_dir(kiln_cache::CacheBucket::GoPackages)?;
    let remote = remote_settings(env)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the GOCACHEPROG server")?;
    let mut server = Server::new(LocalTier::open(&dir)?);
    if let Some(cfg) = remote {
        let options = ServerOptions {
            upload: !cfg.read_only,
            ..ServerOptions::default()
        };
        // The client's channel is driven by this runtime.
        let tier = {
            let _in_runtime = runtime.enter();
            kiln_remote::GoPackageTier::new(cfg)?
        };
        server = server.with_remote(Arc::new(tier)).with_options(options);
    }
    let mut stats = runtime.block_on(server.serve(tokio::io::stdin(), tokio::io::stdout()))?;
    // stdin's reader thread may still block on a pipe go keeps open: do not wait for it.
    runtime.shutdown_background();
    // go starts this process, so whoever measures it (a benchmark, kiln build) cannot wait4 it:
    // report the peak resident size here.
    stats.peak_rss_kib = peak_rss_kib().unwrap_or(0);

    if let Some(dir) = &args.stats_dir {
        // The caller reports the counters and the warnings of every session at once.
        write_stats_into(dir, &stats)?;
        return Ok(ExitCode::SUCCESS);
    }
    if stats.remote_errors > 0 {
        eprintln!(
            "{} kiln gocacheprog: {} remote cache failure(s), served locally; first: {}",
            console::style("warning:").yellow().bold(),
            stats.remote_errors,
            stats.first_remote_error.as_deref().unwrap_or("?")
        );
    }
    if args.stats || env.gocacheprog_stats {
        eprintln!("{}", stats_line(&stats));
    }
    if let Some(file) = &args.stats_file {
        write_stats(file, &stats)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the counters to a new `<pid>.json` in `dir`, atomically (a reader never sees half a
/// file).
fn write_stats_into(dir: &Path, stats: &Stats) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing counters into {}", dir.display()))?;
    write_stats(tmp.path(), stats)?;
    let file = dir.join(format!("{}.json", std::process::id()));
    tmp.persist(&file)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

fn write_stats(file: &Path, stats: &Stats) -> Result<()> {
    let json = serde_json::to_vec_pretty(stats)?;
    std::fs::write(file, json).with_context(|| format!("writing {}", file.display()))
}

/// `VmHWM` of this process (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The closing lines of a build about go's package cache, on stderr: the remote's failures once
/// (not when the remote cache was already warned about: one remote, one warning), and (unless
/// `--quiet`) how the packages came.
pub fn print_build_line(s: &Stats, ui: crate::Ui, remote_warned: bool) {
    if s.remote_errors > 0 && !remote_warned {
        eprintln!(
            "{} go package cache: {} remote failure(s), packages compiled or read locally instead; first: {}",
            console::style("warning:").yellow().bold(),
            s.remote_errors,
            s.first_remote_error.as_deref().unwrap_or("?")
        );
    }
    if !ui.quiet {
        eprintln!(
            "go packages: {}",
            stats_line(s).trim_start_matches("kiln gocacheprog: ")
        );
    }
}

/// One line for stderr: what go asked and where the answers came from.
fn stats_line(s: &Stats) -> String {
    use crate::table::human_size;
    let mut line = format!(
        "kiln gocacheprog: {} gets ({} local hits, {} remote hits, {} misses), {} puts ({})",
        s.gets,
        s.local_hits,
        s.remote_hits,
        s.misses,
        s.puts,
        human_size(s.put_bytes)
    );
    if s.remote_lookups > 0 || s.uploads > 0 {
        line.push_str(&format!(
            ", remote: {} look-ups for {} actions, {} down in {} waited, {} uploads ({})",
            s.remote_lookups,
            s.remote_lookup_ids,
            human_size(s.remote_bytes_down),
            crate::table::human_ms(s.remote_wait_ms),
            s.uploads,
            human_size(s.upload_bytes)
        ));
    }
    if s.corrupt > 0 {
        line.push_str(&format!(", {} damaged entries dropped", s.corrupt));
    }
    if s.errors > 0 {
        line.push_str(&format!(", {} errors answered", s.errors));
    }
    line
}

/// `s` quoted the way go splits GOCACHEPROG (`cmd/internal/quoted`: spaces separate, single or
/// double quotes group).
fn quote(s: String) -> Result<String> {
    if !s.is_empty() && !s.contains([' ', '\t', '\n', '\'', '"']) {
        Ok(s)
    } else if !s.contains('\'') {
        Ok(format!("'{s}'"))
    } else if !s.contains('"') {
        Ok(format!("\"{s}\""))
    } else {
        anyhow::bail!("cannot quote `{s}` for GOCACHEPROG: it holds both kinds of quote\nhint: move kiln or its cache to a path without quotes")
    }
}

/// The GOCACHEPROG value that runs this kiln binary on the cache at `cache_root`.
pub fn command_for(kiln: &Path, cache_root: &Path) -> Result<String> {
    Ok(format!(
        "{} gocacheprog --cache-dir {}",
        quote(kiln.display().to_string())?,
        quote(cache_root.display().to_string())?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_quoted_as_go_splits_it() {
        assert_eq!(
            command_for(Path::new("/opt/kiln"), Path::new("/c")).unwrap(),
            "/opt/kiln gocacheprog --cache-dir /c"
        );
        assert_eq!(
            command_for(Path::new("/my tools/kiln"), Path::new("/it's")).unwrap(),
            "'/my tools/kiln' gocacheprog --cache-dir \"/it's\""
        );
        assert!(command_for(Path::new("/a'\"b"), Path::new("/c")).is_err());
    }

    #[test]
    fn stats_line_names_hits_and_misses() {
        let s = Stats {
            gets: 10,
            local_hits: 7,
            misses: 3,
            puts: 3,
            put_bytes: 2048,
            ..Stats::default()
        };
        let line = stats_line(&s);
        assert!(
            line.contains("10 gets (7 local hits, 0 remote hits, 3 misses), 3 puts"),
            "{line}"
        );
        assert!(!line.contains("remote:"), "{line}");
    }
}
