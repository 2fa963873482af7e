use std::path::Path;
use std::process::Command;

use kiln_config::TemplateVars;

/// Values for ldflags templates, from git when `root` is in a repository.
///
/// The date comes from `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention), else from
/// the commit, never from the clock: a clock date would change the binary, and so the cache key, on
/// every run.
pub fn template_vars(root: &Path) -> TemplateVars {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let version =
        git(&["describe", "--tags", "--always", "--dirty"]).unwrap_or_else(|| "dev".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| {
            commit
                .as_ref()
                .and_then(|_| git(&["log", "-1", "--format=%ct"])?.parse().ok())
        })
        .unwrap_or(0);
    let date = kiln_types::format_rfc3339(epoch);
    TemplateVars {
        version,
        commit: commit.unwrap_or_else(|| "none".into()),
        date,
    }
}
