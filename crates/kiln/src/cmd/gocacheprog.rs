//! `kiln gocacheprog`: go's package cache in kiln's store, for `GOCACHEPROG="kiln gocacheprog"`.
//!
//! go starts this command and speaks the GOCACHEPROG protocol over its stdin and stdout, so it
//! prints nothing to stdout itself; the counters go to stderr at the end when asked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use kiln_config::Env;
use kiln_gocache::{LocalTier, RemoteTier, Server, Stats};

/// `1` or `true`: print the session's counters to stderr when go closes the cache, as `--stats`.
/// Read here because go starts this command with the environment of the `go` command, where a
/// flag cannot be added without changing GOCACHEPROG itself.
pub const KILN_GOCACHEPROG_STATS: &str = "KILN_GOCACHEPROG_STATS";

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
}

/// The remote tier behind the local one. kiln-remote's store plugs in here when `[cache] remote`
/// (or `KILN_REMOTE_CACHE`) is configured; until then the local tier works alone.
fn remote_tier(_env: &Env) -> Result<Option<Arc<dyn RemoteTier>>> {
    Ok(None)
}

/// The GOCACHEPROG `kiln build` gives its `go build` invocations: this kiln binary on `store`,
/// when a remote cache is configured (then a change to one shared package recompiles only that
/// package and its dependents on any machine). Without a remote, go's own disk cache is as good
/// and one process less, so builds keep it.
pub fn for_build(env: &Env, store: &kiln_cache::LocalStore) -> Result<Option<String>> {
    if remote_tier(env)?.is_none() {
        return Ok(None);
    }
    let kiln = std::env::current_exe().context("locating the kiln binary for GOCACHEPROG")?;
    Ok(Some(command_for(&kiln, store.root())?))
}

/// Runs `kiln gocacheprog` until go closes the cache.
pub fn run(env: &Env, args: GocacheprogArgs) -> Result<ExitCode> {
    let store = match &args.cache_dir {
        Some(d) => kiln_cache::LocalStore::new(d.clone()),
        None => super::open_store(env)?,
    };
    let dir = store.bucket_dir(kiln_cache::CacheBucket::GoPackages)?;
    let mut server = Server::new(LocalTier::open(&dir)?);
    if let Some(remote) = remote_tier(env)? {
        server = server.with_remote(remote);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .context("starting the GOCACHEPROG server")?;
    let stats = runtime.block_on(server.serve(tokio::io::stdin(), tokio::io::stdout()))?;
    // stdin's reader thread may still block on a pipe go keeps open: do not wait for it.
    runtime.shutdown_background();

    if stats.remote_errors > 0 {
        eprintln!(
            "{} kiln gocacheprog: {} remote cache failure(s), served locally; first: {}",
            console::style("warning:").yellow().bold(),
            stats.remote_errors,
            stats.first_remote_error.as_deref().unwrap_or("?")
        );
    }
    let from_env = env
        .process
        .get(KILN_GOCACHEPROG_STATS)
        .is_some_and(|v| v == "1" || v == "true");
    if args.stats || from_env {
        eprintln!("{}", stats_line(&stats));
    }
    if let Some(file) = &args.stats_file {
        write_stats(file, &stats)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stats(file: &Path, stats: &Stats) -> Result<()> {
    let mut value = serde_json::to_value(stats)?;
    // go starts this process, so whoever measures it (the benchmark) cannot wait4 it: report the
    // peak resident size here.
    if let (Some(obj), Some(kib)) = (value.as_object_mut(), peak_rss_kib()) {
        obj.insert("peak_rss_kib".into(), kib.into());
    }
    let json = serde_json::to_vec_pretty(&value)?;
    std::fs::write(file, json).with_context(|| format!("writing {}", file.display()))
}

/// `VmHWM` of this process (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
            ", remote: {} look-ups for {} actions, {} down, {} uploads ({})",
            s.remote_lookups,
            s.remote_lookup_ids,
            human_size(s.remote_bytes_down),
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

/// The GOCACHEPROG value that runs this kiln binary on the cache at `cache_root`, quoted the way
/// go splits it (`cmd/internal/quoted`: spaces separate, single or double quotes group).
pub fn command_for(kiln: &Path, cache_root: &Path) -> Result<String> {
    let quote = |s: String| -> Result<String> {
        if !s.is_empty() && !s.contains([' ', '\t', '\n', '\'', '"']) {
            Ok(s)
        } else if !s.contains('\'') {
            Ok(format!("'{s}'"))
        } else if !s.contains('"') {
            Ok(format!("\"{s}\""))
        } else {
            anyhow::bail!("cannot quote `{s}` for GOCACHEPROG: it holds both kinds of quote\nhint: move kiln or its cache to a path without quotes")
        }
    };
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
