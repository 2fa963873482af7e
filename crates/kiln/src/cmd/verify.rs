//! `kiln verify`: the CI gate before deployment: signature, SBOM and provenance attestations,
//! static binaries and an optional policy, with exit code 0 only when everything passes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kiln_config::Env;
use kiln_registry::Reference;

use crate::table::Table;
use crate::Ui;

/// Arguments of `kiln verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image in a registry, by tag or digest.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Public key (`kiln keygen` or `cosign generate-key-pair`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Policy file (TOML): allowed_base_digests, denied_modules, require_non_root,
    /// require_static, require_sbom, require_provenance.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Machine-readable report.
    #[arg(long)]
    pub json: bool,
    /// Talk plain HTTP to the image's registry (loopback registries always are).
    #[arg(long)]
    pub insecure_registry: bool,
}

/// Runs `kiln verify`: exit 0 when all checks pass, 1 when one fails (errors exit 2).
pub fn run(dir: &Path, env: &Env, args: VerifyArgs, ui: Ui) -> Result<ExitCode> {
    let reference: Reference = args.image.parse()?;
    let key_path = dir.join(&args.key);
    let pem =
        std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let key = kiln_attest::load_public_key(&pem)?;
    let policy = match &args.policy {
        Some(p) => {
            let path = dir.join(p);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(kiln_attest::Policy::from_toml(
                &text,
                &p.display().to_string(),
            )?)
        }
        None => None,
    };
    let client = super::sign::client_for(env, &reference, args.insecure_registry)?;
    let report = super::sign::runtime()?.block_on(kiln_supply::verify_image(
        &client,
        &reference,
        &key,
        policy.as_ref(),
    ))?;
    crate::ci::Ci::new(env).annotate(
        &report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| crate::ci::verify_check_annotation(&report.image, &c.name, &c.detail))
            .collect::<Vec<_>>(),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !ui.quiet || !report.passed {
        let mut t = Table::new(&["CHECK", "RESULT", "DETAIL"]);
        for c in &report.checks {
            let result = if c.passed { "ok" } else { "FAIL" };
            t.row(vec![c.name.clone(), result.into(), c.detail.clone()]);
        }
        print!("{}", t.render());
        let failed = report.checks.iter().filter(|c| !c.passed).count();
        // The key file as given plus its id, which the check details use.
        let key = format!("key {} ({})", args.key.display(), report.key_id);
        if report.passed {
            println!("verified {} ({}) with {key}", report.image, report.digest);
        } else {
            println!(
                "NOT verified {} ({}) with {key}: {failed} of {} checks failed",
                report.image,
                report.digest,
                report.checks.len()
            );
        }
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
