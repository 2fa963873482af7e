//! Shared harness of the `kiln image` tests.

pub mod registry;
