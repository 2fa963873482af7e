//! `kiln sign`: cosign-compatible signature (and, with `--attest`, SBOM and provenance
//! attestations) for an image in a registry.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kiln_config::Env;
use kiln_registry::{Client, ClientConfig, Reference};

use crate::Ui;

/// Arguments of `kiln sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Image in a registry, by tag or digest; a tag is resolved and its digest is signed.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Private key from `kiln keygen` or `cosign generate-key-pair` (password: KILN_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,
    /// Also attach DSSE-signed SBOMs (SPDX, CycloneDX) and SLSA provenance.
    #[arg(long)]
    pub attest: bool,
    /// Talk plain HTTP to the image's registry (loopback registries always are).
    #[arg(long)]
    pub insecure_registry: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// A registry client for `reference` (plain HTTP to its registry when `insecure`), with
/// credentials from the docker config `env` names.
pub fn client_for(env: &Env, reference: &Reference, insecure: bool) -> Result<Client> {
    let mut config = ClientConfig {
        docker_config_dir: env.docker_config_dir.clone(),
        ..ClientConfig::default()
    };
    if insecure {
        config
            .insecure_registries
            .push(reference.repository.registry.clone());
    }
    Ok(Client::new(config)?)
}

/// A runtime for the async registry calls of one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `kiln sign`.
pub fn run(dir: &Path, env: &Env, args: SignArgs, ui: Ui) -> Result<ExitCode> {
    let reference: Reference = args.image.parse()?;
    let password = super::keygen::password(env, false)?;
    let key = kiln_attest::load_private_key_file(&dir.join(&args.key), &password)?;
    let client = client_for(env, &reference, args.insecure_registry)?;
    let rt = runtime()?;
    if args.attest {
        let build = kiln_supply::BuildParams {
            date: super::build_date(env, dir)?.epoch,
            ..Default::default()
        };
        let report = rt.block_on(kiln_supply::sign_and_attest(
            &client, &reference, &key, &build,
        ))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else if !ui.quiet {
            let s = &report.signature;
            println!("signed {}@{} ({})", s.repository, s.digest, s.tag);
            print_attachments(&report.attachments);
        }
        warn_notes(&report.signature.referrers.notes, ui);
        warn_notes(&report.attachments.referrers_detail.notes, ui);
    } else {
        let report = rt.block_on(kiln_supply::sign_image(&client, &reference, &key))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else if !ui.quiet {
            println!(
                "signed {}@{} ({}, {} signature(s))",
                report.repository, report.digest, report.tag, report.signatures
            );
        }
        warn_notes(&report.referrers.notes, ui);
    }
    Ok(ExitCode::SUCCESS)
}

/// The human summary of what `--attest` attached, on stdout.
fn print_attachments(a: &kiln_supply::AttachReport) {
    println!(
        "attached SBOM ({}) and attestations ({}): {}",
        a.sbom_tag,
        a.attestation_tag,
        a.predicate_types.join(", ")
    );
    if a.attestations_kept > 0 {
        println!(
            "kept {} attestation(s) of other predicate types in {}",
            a.attestations_kept, a.attestation_tag
        );
    }
    let r = &a.referrers_detail;
    let place = match (&r.fallback_tag, r.api) {
        (_, true) => "via the referrers API".to_owned(),
        (Some(tag), false) => format!("listed in the fallback index {tag}"),
        (None, false) => "not written".to_owned(),
    };
    if !a.referrers.is_empty() || r.api || r.fallback_tag.is_some() {
        println!(
            "OCI referrers {place}: {} of kiln ({} new, {} replaced), {} of others kept",
            a.referrers.len(),
            r.pushed.len(),
            r.replaced.len(),
            r.kept
        );
    }
}

/// What the registry refused (a delete) or could not give (a referrers list): warnings on
/// stderr, never a failure.
fn warn_notes(notes: &[String], ui: Ui) {
    if ui.quiet {
        return;
    }
    for note in notes {
        eprintln!("warning: {note}");
    }
}
