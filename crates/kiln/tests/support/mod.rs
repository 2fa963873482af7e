//! Shared harness of the `kiln image` tests.

pub mod peers;
pub mod registry;
