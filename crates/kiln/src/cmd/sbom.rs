//! `kiln sbom`: SPDX 2.3 or CycloneDX 1.6 JSON for a Go binary or an image.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kiln_config::Env;
use kiln_supply::{ImageSource, SbomFormat};

use crate::Ui;

/// Arguments of `kiln sbom`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// A Go binary (a file path), a registry image (`host/repo:tag`) or `oci:DIR:TAG`.
    #[arg(value_name = "IMAGE|BINARY")]
    pub target: String,
    /// Document format: spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.6 JSON).
    #[arg(long, value_name = "FORMAT", default_value = "spdx")]
    pub format: SbomFormat,
    /// Write the document to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Talk plain HTTP to the image's registry (loopback registries always are).
    #[arg(long)]
    pub insecure_registry: bool,
}

/// Runs `kiln sbom`.
pub fn run(dir: &Path, env: &Env, args: SbomArgs, ui: Ui) -> Result<ExitCode> {
    let date = super::build_date(env, dir)?;
    let as_file = dir.join(&args.target);
    let subject = if as_file.is_file() {
        kiln_supply::binary_subject(&as_file)?
    } else {
        let source = match ImageSource::parse(&args.target)? {
            ImageSource::Layout { dir: d, tag } => ImageSource::Layout {
                dir: dir.join(d),
                tag,
            },
            other => other,
        };
        let client = match &source {
            ImageSource::Registry(r) => super::sign::client_for(env, r, args.insecure_registry)?,
            ImageSource::Layout { .. } => kiln_registry::Client::new(Default::default())?,
        };
        let contents =
            super::sign::runtime()?.block_on(kiln_supply::load_image(&client, &source))?;
        contents.sbom_subject()
    };
    let doc = kiln_supply::render_sbom(&subject, args.format, date.epoch)?;
    match &args.output {
        Some(out) => {
            let path = dir.join(out);
            std::fs::write(&path, &doc).with_context(|| format!("writing {}", path.display()))?;
            if !ui.quiet {
                eprintln!(
                    "wrote {} ({} binaries, {} modules) to {}",
                    args.format.media_type(),
                    subject.binaries.len(),
                    subject.binaries.iter().map(|b| b.deps.len()).sum::<usize>(),
                    path.display()
                );
            }
        }
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&doc)
                .context("writing to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
