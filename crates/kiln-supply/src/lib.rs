//! Supply-chain glue: the *attest* stage of a kiln build and the checks of `kiln verify`.
//!
//! kiln's flow is discover -> plan -> key -> cache -> execute -> verify -> package ->
//! **attest** -> publish -> record. `kiln-attest` knows the document formats and the crypto,
//! `kiln-registry` moves bytes, `kiln-verify` reads binaries and `kiln-oci` reads layers; this
//! crate wires them together so the CLI stays thin and `kiln image --push --sign` can reuse it:
//!
//! - SBOM subjects: [`binary_subject`] for a Go executable on disk, [`load_image`] +
//!   [`ImageContents::sbom_subject`] for an image from a registry or an OCI layout (layers are
//!   walked with whiteouts applied, executables found by magic and inspected in-process; the base
//!   image comes from the `org.opencontainers.image.base.*` manifest annotations).
//! - Signing: [`sign_image`] / [`sign_digest`] push a cosign-compatible `.sig` image for the
//!   resolved digest, and the same signature as a cosign 3 Sigstore bundle referrer.
//! - Attaching: [`attach_attestations`] pushes the SPDX SBOM under `.sbom`, DSSE-signed SPDX,
//!   CycloneDX and SLSA v1 provenance attestations under `.att` (other tools' attestations
//!   stay), and OCI referrer artifacts (through the referrers API, or listed in the
//!   `sha256-<hex>` fallback tag index), replacing kiln's own earlier ones instead of adding.
//!   [`sign_and_attest`] does all of it for one digest.
//! - Verifying: [`verify_image`] returns a [`VerifyReport`] with one [`Check`] per rule.
//!
//! Functions that talk to a registry are async (tokio); no function prints.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_supply::SupplyError> {
//! use kiln_registry::{Client, ClientConfig, Reference};
//! let client = Client::new(ClientConfig::default())?;
//! let image: Reference = "127.0.0.1:5000/app:v1".parse()?;
//! let key = kiln_attest::load_private_key_file("kiln.key".as_ref(), b"password")?;
//! kiln_supply::sign_and_attest(&client, &image, &key, &Default::default()).await?;
//! let public = kiln_attest::load_public_key(&std::fs::read("kiln.pub").unwrap())?;
//! let report = kiln_supply::verify_image(&client, &image, &public, None).await?;
//! assert!(report.passed);
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod image;
mod oci;
mod publish;
mod referrers;
mod subject;
mod verify;

pub use error::{Result, SupplyError};
pub use image::{
    is_executable_magic, load_image, FoundBinary, ImageContents, ImageSource, PlatformImage,
};
pub use oci::docker_reference;
pub use publish::{
    attach_attestations, provenance_input, resolve_digest, sign_and_attest, sign_digest,
    sign_image, AttachReport, BuildParams, PublishReport, SignReport, COSIGN_SIGN_PREDICATE_TYPE,
};
pub use referrers::{ReferrersReport, KILN_ATTACHMENT_ANNOTATION};
pub use subject::{
    binary_info, binary_subject, go_module, render_sbom, SbomFormat, CYCLONEDX_PREDICATE_TYPE,
    SPDX_PREDICATE_TYPE, TOOL,
};
pub use verify::{policy_facts, verify_image, Check, VerifyReport};
