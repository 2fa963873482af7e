//! `kiln keygen`: a cosign-compatible ECDSA P-256 key pair, the private key encrypted.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use kiln_config::Env;

use crate::Ui;

/// Environment variable holding the key password (like cosign's `COSIGN_PASSWORD`).
pub const PASSWORD_ENV: &str = kiln_config::env::KILN_PASSWORD;

/// Arguments of `kiln keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write PREFIX.key and PREFIX.pub (like `cosign generate-key-pair --output-key-prefix`).
    #[arg(long, value_name = "PREFIX", default_value = "kiln")]
    pub output_prefix: PathBuf,
}

/// The key password: `KILN_PASSWORD` (an empty value means no password, as with cosign), else a
/// prompt when stdin is a terminal; `confirm` asks twice.
pub fn password(env: &Env, confirm: bool) -> Result<Vec<u8>> {
    if let Some(p) = &env.password {
        return Ok(p.clone());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: set {PASSWORD_ENV} (stdin is not a terminal, so kiln cannot prompt)");
    }
    let first = rpassword::prompt_password("Enter password for private key: ")
        .context("reading the password")?;
    if confirm {
        let again = rpassword::prompt_password("Enter password for private key again: ")
            .context("reading the password")?;
        if again != first {
            bail!("the passwords do not match");
        }
    }
    Ok(first.into_bytes())
}

/// Runs `kiln keygen`.
pub fn run(dir: &Path, env: &Env, args: KeygenArgs, ui: Ui) -> Result<ExitCode> {
    let prefix = dir.join(&args.output_prefix);
    let password = password(env, true)?;
    let (key, public) = kiln_attest::write_keypair(&prefix, &password)?;
    if !ui.quiet {
        println!("Private key written to {}", key.display());
        println!("Public key written to {}", public.display());
    }
    Ok(ExitCode::SUCCESS)
}
