use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The exact `go build` command of a keyed action: program, directory, arguments and the child's
/// whole environment (it starts empty). Only [`crate::KeyContext::prepare`] makes one, from the
/// same values it hashes, so an executor cannot run something other than what the key describes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoCommand {
    go: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

impl GoCommand {
    pub(crate) fn new(
        go: PathBuf,
        dir: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> Self {
        Self { go, dir, args, env }
    }

    /// The `go` command.
    pub fn go(&self) -> &Path {
        &self.go
    }

    /// Working directory (module or workspace root).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Arguments after `go build`, before `-p`, `-o` and the packages (which the executor adds:
    /// they do not change a binary).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The child's complete environment: run it with a cleared environment plus exactly these.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// A test-only command with the given parts, for executors' unit tests in other crates.
    #[doc(hidden)]
    pub fn for_tests(go: PathBuf, dir: PathBuf, args: Vec<String>) -> Self {
        Self::new(go, dir, args, BTreeMap::new())
    }

    /// A test-only command with an environment, for executors' unit tests in other crates.
    #[doc(hidden)]
    pub fn for_tests_with_env(
        go: PathBuf,
        dir: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> Self {
        Self::new(go, dir, args, env)
    }
}
