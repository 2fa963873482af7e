//! Foundation types shared by every kiln crate.
//!
//! kiln's data flow is discover -> plan -> key -> cache -> execute -> verify -> package -> attest ->
//! publish -> record. Every stage talks about the same few things: *where* a binary runs (a
//! [`Platform`]) and *what* a piece of content is (a [`Digest`]). They live here, at the bottom of the
//! crate graph, so that no two stages invent their own spelling of `linux/arm/v7` or `sha256:...`.
//! The OCI content [`Descriptor`] lives here for the same reason: packaging, the registry client
//! and attestation all read and write it.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bounded;
mod descriptor;
mod digest;
mod platform;
mod stamp;
mod time;
mod vouched;

pub use bounded::run_bounded;
pub use descriptor::{Descriptor, OciPlatform};
pub use digest::{Digest, DigestError, Sha256Writer};
pub use platform::{Platform, PlatformError};
pub use stamp::{now_ns, Stamp, RACY_SLACK_NS};
pub use time::format_rfc3339;
pub use vouched::VouchedFiles;
