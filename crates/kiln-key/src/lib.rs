//! Third stage of kiln's flow: discover -> plan -> **key** -> cache -> execute -> ...
//!
//! An [`ActionKey`] names the output of one `go build` of one main package for one target. Two
//! builds with equal keys must produce byte-identical binaries, so the key is complete by
//! construction rather than by enumeration:
//!
//! - [`KeyContext::prepare`] is the one function that turns a planned target into a key *and* the
//!   [`GoCommand`] that runs; the executor accepts nothing else and starts it with a cleared
//!   environment, so what runs is what was hashed.
//! - Environment variables are keyed by family (`GO*`, `CGO_*`, `CC`, `PKG_CONFIG*`, C include and
//!   library paths, ...) minus a named list that cannot change the output ([`env`]); a variable a
//!   new Go release adds widens the key.
//! - [`KeyInputs`] is hashed through one canonical encoding (versioned JSON via `Serialize`), so a
//!   new field is hashed the moment it exists, and an opt-out is a visible `#[serde(skip)]`.
//! - Inputs are what go itself hashes: every package of the import graph by content (standard
//!   library and module cache included), the toolchain's binaries, every file a flag or convention
//!   names (`-overlay` and its targets, `-modfile`, `-pgo`, `default.pgo`, `vendor/modules.txt`),
//!   VCS state when stamping, absolute paths when `-trimpath` is off, and when cgo is on the C
//!   toolchain by content plus every header and library it says it reads (`cinputs`). A flag kiln does not understand makes the action uncacheable.
//!
//! A wrong key silently hands a user someone else's binary; a key that is too wide only costs a
//! rebuild, so when in doubt an input goes in. Paths inside the key are relative to their module
//! root or GOROOT, so two checkouts of the same commit share entries when `-trimpath` is on.
//! [`FileHasher`] keeps a stat cache so a no-op does not re-read every file, and can tell after a
//! build whether any hashed file changed while it ran.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod action;
mod cinputs;
pub mod env;
pub mod explain;
mod hasher;
mod inputs;
mod sources;

pub use action::GoCommand;
pub use hasher::{FileHash, FileHasher, Stamp};
pub use inputs::{
    ActionKey, CProgram, CToolchain, KeyInputs, PackageInput, Toolchain, KEY_VERSION,
};
pub use sources::{KeyContext, KeyError, Prepared};
