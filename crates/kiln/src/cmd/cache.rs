//! `kiln cache stats|prune|clear`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use kiln_cache::{CacheBucket, LocalStore, PruneOptions, PruneReport, Stats};

use crate::table::human_size;
use crate::Ui;

/// Arguments of `kiln cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Show where the cache is and the entries and bytes of each bucket.
    Stats {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove entries of every bucket not used recently, blobs nothing references, old layouts.
    Prune {
        /// Remove entries unused for longer than this (e.g. `30d`, `12h`).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
        max_age: Duration,
        /// Then keep the most recently used entries within this many bytes (e.g. `5G`, `500M`).
        #[arg(long, value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// Remove every bucket (and old layouts).
    Clear,
}

/// A byte size as users write it: `500M`, `5G`, `1024` (binary units, `B`/`iB` suffixes optional).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("`{s}` is not a size: write e.g. 500M or 5G"));
    }
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let m: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("unknown size unit in `{s}`: use B, K, M, G or T")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("`{s}` is not a size: write e.g. 500M or 5G"))
}

/// Runs `kiln cache`.
pub fn run(args: CacheArgs, env: &kiln_config::Env, ui: Ui) -> Result<ExitCode> {
    let store = LocalStore::open_default()?;
    match args.command {
        CacheCommand::Stats { json } => {
            let s = store.stats()?;
            let remote = remote_stats(env, ui)?;
            if json {
                let mut v = serde_json::to_value(&s)?;
                if let (Some(r), Some(obj)) = (remote, v.as_object_mut()) {
                    obj.insert("remote".into(), r);
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", stats_text(&s));
                if let Some(r) = remote {
                    print!("{}", remote_text(&r));
                }
            }
        }
        CacheCommand::Prune { max_age, max_size } => {
            let r = store.prune(PruneOptions {
                max_age: Some(max_age),
                max_size,
            })?;
            if !ui.quiet {
                println!("{}", prune_text(&r));
            }
        }
        CacheCommand::Clear => {
            let removed = store.clear()?;
            if !ui.quiet {
                if removed.is_empty() {
                    println!("cleared {} (it was empty)", store.root().display());
                } else {
                    println!(
                        "cleared {} ({})",
                        store.root().display(),
                        removed.join(", ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The remote cache kiln.toml (the first one found from the current directory up) or
/// `KILN_REMOTE_CACHE` configures, and what it says about itself if it can be reached.
fn remote_stats(env: &kiln_config::Env, ui: Ui) -> Result<Option<serde_json::Value>> {
    let config = super::config_near_cwd(env)?;
    let Some(cfg) = super::remote_config(env, &config, ui)? else {
        return Ok(None);
    };
    let (url, instance, read_only) = (cfg.url.clone(), cfg.instance.clone(), cfg.read_only);
    let mut v = serde_json::json!({ "url": url, "instance": instance, "read_only": read_only });
    let mut cfg = cfg;
    // A status command: one quick try, no retries.
    cfg.retries = 0;
    cfg.timeout = cfg.timeout.min(Duration::from_secs(5));
    let store = kiln_remote::RemoteStore::open(cfg)?;
    match store.capabilities() {
        Ok(c) => {
            v["reachable"] = true.into();
            v["capabilities"] = serde_json::json!({
                "sha256": c.sha256,
                "max_batch_total_size_bytes": c.max_batch_total_size_bytes,
                "action_cache_update": c.action_cache_update,
                "api_versions": c.api_versions,
            });
        }
        Err(e) => {
            v["reachable"] = false.into();
            v["error"] = e.to_string().into();
        }
    }
    Ok(Some(v))
}

fn remote_text(r: &serde_json::Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    let mut out = format!("remote:  {}", s("url"));
    if !s("instance").is_empty() {
        out += &format!(" (instance {})", s("instance"));
    }
    if r["read_only"] == true {
        out += " (read-only)";
    }
    out += "\n";
    if r["reachable"] == true {
        let c = &r["capabilities"];
        out += &format!(
            "         reachable; REAPI {}, sha256 {}, max batch {}, action cache writes {}\n",
            c["api_versions"].as_str().unwrap_or("?"),
            if c["sha256"] == true { "yes" } else { "no" },
            match c["max_batch_total_size_bytes"].as_u64() {
                Some(0) | None => "unlimited".to_string(),
                Some(n) => human_size(n),
            },
            if c["action_cache_update"] == true {
                "allowed"
            } else {
                "refused"
            },
        );
    } else {
        out += &format!("         unreachable: {}\n", s("error"));
    }
    out
}

/// One line per bucket (`name: entries (size) in dir`), then directories of other layouts.
fn stats_text(s: &Stats) -> String {
    let mut out = format!("cache:   {}\n", s.root.display());
    for b in &s.buckets {
        let label = format!("{}:", b.bucket.name());
        out += &format!(
            "{label:<8} {} ({}) in {}\n",
            b.entries,
            human_size(b.bytes),
            b.dir
        );
    }
    for o in &s.other {
        let what = if o.outdated {
            "older layout, removed by `kiln cache prune`"
        } else {
            "unknown to this kiln version, removed by `kiln cache clear`"
        };
        out += &format!("other:   {} ({}): {what}\n", o.name, human_size(o.bytes));
    }
    out += &format!("total:   {}\n", human_size(s.total_bytes));
    out
}

fn prune_text(r: &PruneReport) -> String {
    let n = |b| r.removed(b);
    let mut text = format!(
        "removed {} action(s), {} blob(s), {} layer record(s), {} pulled blob(s) and {} key file(s)",
        n(CacheBucket::Actions),
        n(CacheBucket::Blobs),
        n(CacheBucket::ImageLayers),
        n(CacheBucket::PulledBlobs),
        n(CacheBucket::Keys),
    );
    if !r.old_dirs_removed.is_empty() {
        text += &format!(" and old layout(s) {}", r.old_dirs_removed.join(", "));
    }
    text += &format!(", freed {}", human_size(r.bytes_freed));
    text
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("5GiB").unwrap(), 5 << 30);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("5X").is_err());
        assert!(parse_size("lots").is_err());
    }
}
