use std::path::PathBuf;

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The `go` command could not be started.
    #[error("cannot run `{go}`: {source}\nhint: install Go 1.22 or newer and put it on PATH, or set KILN_GO to the go binary")]
    GoMissing {
        /// The command that was tried.
        go: PathBuf,
        /// The spawn error.
        source: std::io::Error,
    },
    /// A `go` subcommand failed.
    #[error("`go {args}` failed in {dir}:\n{stderr}")]
    GoFailed {
        /// The arguments, joined.
        args: String,
        /// Where it ran.
        dir: PathBuf,
        /// What go printed.
        stderr: String,
    },
    /// `go` printed something that is not the JSON it documents.
    #[error("cannot parse the output of `go {args}`: {message}")]
    BadOutput {
        /// The arguments, joined.
        args: String,
        /// The parser's message.
        message: String,
    },
    /// The directory is neither inside a module nor a workspace.
    #[error("{dir} is not inside a Go module or workspace (no go.mod or go.work found in it or its parents)\nhint: run kiln in your module's directory, or create a module with `go mod init <module path>`")]
    NotAModule {
        /// The directory kiln was run in.
        dir: PathBuf,
    },
    /// The patterns matched no main package.
    // The hint never proposes a pattern: the user may just have typed it.
    #[error("no main package matches {patterns}\nhint: kiln builds directories holding a `package main`; patterns are relative to the current directory, as with `go build` (`go list {patterns}` shows what they match), and kiln without patterns builds every main package of the module or workspace")]
    NoMains {
        /// The patterns, joined.
        patterns: String,
    },
    /// A matched package cannot be loaded.
    #[error("cannot load package {package}: {message}{hint}")]
    Package {
        /// The package's import path (or pattern).
        package: String,
        /// go's message.
        message: String,
        /// `\nhint: ...` when kiln knows what to do, else empty.
        hint: String,
    },
    /// Go's version is older than kiln supports.
    #[error("Go {found} is too old: kiln needs Go 1.22 or newer\nhint: install a newer Go, or set GOTOOLCHAIN=go1.22.0 (or newer) to let go download one")]
    GoTooOld {
        /// The version found.
        found: String,
    },
}
