//! Test harness for `kiln image`: a real `docker-registry` (distribution) on 127.0.0.1 with its own
//! storage (kiln-test-support's, with distribution's default of refusing deletes), plus the tool
//! helpers that fail with an install hint when one is missing.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use kiln_test_support::{free_port, http_get, require_tool, run_tool};
use kiln_test_support::{DockerRegistry, RegistryOptions};

/// A running registry; killed on drop.
pub struct Registry(DockerRegistry);

impl std::ops::Deref for Registry {
    type Target = DockerRegistry;
    fn deref(&self) -> &DockerRegistry {
        &self.0
    }
}

impl Registry {
    /// Starts `docker-registry serve` on 127.0.0.1 with a free port and a temp storage dir.
    pub fn start() -> Self {
        Self::start_with_deletes(false)
    }

    /// The same, with manifest and blob deletes allowed or refused (405).
    pub fn start_with_deletes(delete: bool) -> Self {
        Self(DockerRegistry::start_with(&RegistryOptions {
            delete,
            ..RegistryOptions::default()
        }))
    }
}
