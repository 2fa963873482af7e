//! Third stage of kiln's flow: discover -> plan -> **key** -> cache -> execute -> ...
//!
//! An [`ActionKey`] names the output of one `go build` of one main package for one target. Two
//! builds with equal keys must produce byte-identical binaries, so the key covers everything that
//! can change the output, listed in one place: [`KeyInputs`]. Its hashing function destructures the
//! struct without `..`, so adding an input without hashing it does not compile, and every input has a
//! unit test proving it changes the key. A wrong key silently hands a user someone else's binary;
//! a key that is too wide only costs a rebuild, so when in doubt an input goes in.
//!
//! Paths inside the key are relative to their module root, never absolute: two checkouts of the
//! same commit in different directories share cache entries (builds use `-trimpath`, so the binary
//! does not depend on the checkout path either).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod inputs;
mod sources;

pub use inputs::{
    key_env, ActionKey, FileInput, KeyInputs, ModuleInput, Toolchain, ENV_VARS, KEY_VERSION,
};
pub use sources::{collect_sources, toolchain, FileHasher, KeyError, Sources};
