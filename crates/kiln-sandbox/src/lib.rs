//! Sandboxed execution, below the execute stage of kiln's flow: discover -> plan -> key -> cache
//! -> **execute** -> ...
//!
//! A remote worker (`kiln worker`) and a build server (`kiln serve`) run commands that other
//! machines sent them. This crate runs one such command under bubblewrap (`bwrap`) so that it sees
//! only what it was given:
//!
//! - the system's `/usr` (and the merged-usr links `/bin`, `/lib`, ...) read-only, a private
//!   `/proc`, a minimal `/dev` and an empty `/tmp`; nothing else of the host;
//! - one input directory, read-only or writable as the caller says, plus declared read-only binds
//!   (a Go toolchain root, for example);
//! - no network (`--unshare-net`: only a loopback of its own), its own pid, IPC and UTS
//!   namespaces, and `--die-with-parent` so nothing outlives the caller;
//! - exactly the environment variables given, nothing inherited (bwrap adds `PWD`, always set to
//!   the working directory);
//! - resource limits (CPU seconds, address space, open files, file size) set as rlimits in the
//!   child before `exec`, inherited by everything it starts;
//! - a wall-clock timeout after which the whole process group is killed, and a [`CancelToken`]
//!   the caller can trip from another thread to kill it the same way (a cancelled lease);
//! - stdout and stderr captured up to a cap each (the rest is read and dropped, so a chatty
//!   command never blocks on a full pipe).
//!
//! ```no_run
//! use kiln_sandbox::{Access, Sandbox, SandboxCommand};
//! # fn main() -> Result<(), kiln_sandbox::SandboxError> {
//! let sandbox = Sandbox::locate()?;
//! let cmd = SandboxCommand::new(["/bin/sh", "-c", "cat in.txt > out.txt"])
//!     .input("/tmp/action-1", "/input", Access::Writable)
//!     .cwd("/input")
//!     .env("PATH", "/usr/bin:/bin");
//! let outcome = sandbox.run(&cmd)?;
//! assert!(outcome.success());
//! # Ok(()) }
//! ```
//!
//! Like every kiln library it prints nothing and reads no environment variable of its own (it
//! only searches `PATH` for `bwrap` in [`Sandbox::locate`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use run::{Exit, Outcome};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A handle that kills a running sandbox from another thread: clone it into the
/// [`SandboxCommand`] ([`SandboxCommand::cancel_token`]), keep a clone, and call
/// [`CancelToken::cancel`]; the run then kills the whole process group and ends with
/// [`Exit::Cancelled`]. Cancelling before the run starts kills it as soon as it starts.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run holding this token to stop (idempotent).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything that can go wrong before the sandboxed command ran to an [`Outcome`]. A command that
/// fails, is killed by a limit or times out is an [`Outcome`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `bwrap` is not on `PATH`.
    #[error("bubblewrap (bwrap) was not found on PATH\nhint: apt-get install -y bubblewrap")]
    BwrapMissing,
    /// A path handed to the sandbox does not exist or is not absolute.
    #[error("sandbox {what} {path} {problem}")]
    BadPath {
        /// Which path: "input directory", "bind source", "bind destination", ...
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The command line is empty.
    #[error("sandbox command has no program (empty argv)")]
    EmptyCommand,
    /// An argument or variable holds a NUL byte, which no process can receive.
    #[error("sandbox {what} {value:?} contains a NUL byte")]
    Nul {
        /// "argument" or "environment variable".
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// Starting `bwrap` failed.
    #[error("starting {bwrap}: {source}\nhint: bwrap needs user namespaces (sysctl kernel.unprivileged_userns_clone=1) or root")]
    Spawn {
        /// The bwrap binary that was started.
        bwrap: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Waiting for the sandboxed command failed.
    #[error("waiting for the sandboxed command: {0}")]
    Wait(std::io::Error),
}

/// How the input directory is bound into the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The command can read but not change it.
    ReadOnly,
    /// The command can create and change files in it (a REAPI input root where outputs appear).
    Writable,
}

/// Resource limits applied as rlimits to the sandboxed process and everything it starts (each
/// process is limited on its own, as rlimits are). `None` leaves the caller's limit in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU time in seconds (`RLIMIT_CPU`; the kernel sends SIGXCPU, then SIGKILL).
    pub cpu_seconds: Option<u64>,
    /// Address space in bytes (`RLIMIT_AS`): allocations beyond it fail.
    pub address_space_bytes: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Largest file the command may write, in bytes (`RLIMIT_FSIZE`; SIGXFSZ beyond it).
    pub file_size_bytes: Option<u64>,
}

/// One command to run, with its inputs, environment and limits. Built with chained setters.
#[derive(Debug, Clone)]
pub struct SandboxCommand {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    input: Option<(PathBuf, PathBuf, Access)>,
    ro_binds: Vec<(PathBuf, PathBuf)>,
    cwd: Option<PathBuf>,
    limits: Limits,
    timeout: Duration,
    output_cap: usize,
    cancel: Option<CancelToken>,
}

/// Default wall-clock timeout: long enough for a large `go build`, short enough that a stuck
/// action frees its worker.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Default cap on captured stdout and on captured stderr, each.
pub const DEFAULT_OUTPUT_CAP: usize = 4 << 20;

impl SandboxCommand {
    /// A command with no inputs, an empty environment, no limits, [`DEFAULT_TIMEOUT`] and
    /// [`DEFAULT_OUTPUT_CAP`]. `argv[0]` is a path inside the sandbox (or a name found on the
    /// `PATH` given with [`SandboxCommand::env`]).
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SandboxCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            input: None,
            ro_binds: Vec::new(),
            cwd: None,
            limits: Limits::default(),
            timeout: DEFAULT_TIMEOUT,
            output_cap: DEFAULT_OUTPUT_CAP,
            cancel: None,
        }
    }

    /// Binds the host directory `host` at `mount` inside the sandbox with the given access.
    pub fn input(
        mut self,
        host: impl Into<PathBuf>,
        mount: impl Into<PathBuf>,
        access: Access,
    ) -> Self {
        self.input = Some((host.into(), mount.into(), access));
        self
    }

    /// Adds a read-only bind of the host path `host` at `dest` inside the sandbox.
    pub fn ro_bind(mut self, host: impl Into<PathBuf>, dest: impl Into<PathBuf>) -> Self {
        self.ro_binds.push((host.into(), dest.into()));
        self
    }

    /// Sets one environment variable; the command gets exactly the variables set here, plus `PWD`
    /// (which bwrap always sets to the working directory).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets all environment variables at once (replacing earlier ones).
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// The working directory inside the sandbox (default: the input mount, else `/`).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Resource limits for the command and its children.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Wall-clock timeout; when it passes the whole sandbox is killed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A token whose [`CancelToken::cancel`] kills the sandbox before its timeout.
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// How many bytes of stdout and of stderr are kept, each.
    pub fn output_cap(mut self, bytes: usize) -> Self {
        self.output_cap = bytes;
        self
    }
}

/// A located `bwrap` binary that runs [`SandboxCommand`]s.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
}

/// Host directories made visible read-only in every sandbox: the system's programs and libraries.
/// On merged-usr systems all but `/usr` are symlinks and are recreated as such.
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"];

impl Sandbox {
    /// Finds `bwrap` on `PATH`.
    pub fn locate() -> Result<Sandbox, SandboxError> {
        let path = std::env::var_os("PATH").ok_or(SandboxError::BwrapMissing)?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("bwrap"))
            .find(|candidate| candidate.is_file())
            .map(Sandbox::with_bwrap)
            .ok_or(SandboxError::BwrapMissing)
    }

    /// Uses the given `bwrap` binary.
    pub fn with_bwrap(bwrap: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            bwrap: bwrap.into(),
        }
    }

    /// The `bwrap` binary in use.
    pub fn bwrap(&self) -> &Path {
        &self.bwrap
    }

    /// Runs `cmd` to completion (or its timeout) and returns what happened.
    pub fn run(&self, cmd: &SandboxCommand) -> Result<Outcome, SandboxError> {
        let args = self.bwrap_args(cmd)?;
        run::run(&self.bwrap, &args, cmd)
    }

    /// The bwrap command line for `cmd`, after checking every path and value.
    fn bwrap_args(&self, cmd: &SandboxCommand) -> Result<Vec<String>, SandboxError> {
        if cmd.argv.is_empty() {
            return Err(SandboxError::EmptyCommand);
        }
        for arg in &cmd.argv {
            no_nul("argument", arg)?;
        }
        for (k, v) in &cmd.env {
            no_nul("environment variable", k)?;
            no_nul("environment variable", v)?;
        }
        let mut args: Vec<String> = [
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(path) {
                        push(&mut args, &["--symlink", &target.to_string_lossy(), dir]);
                    }
                }
                Ok(meta) if meta.is_dir() => push(&mut args, &["--ro-bind", dir, dir]),
                _ => {}
            }
        }
        push(
            &mut args,
            &["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"],
        );
        if let Some((host, mount, access)) = &cmd.input {
            let host = existing("input directory", host)?;
            let mount = absolute("input mount point", mount)?;
            let flag = match access {
                Access::ReadOnly => "--ro-bind",
                Access::Writable => "--bind",
            };
            push(&mut args, &[flag, &host, &mount]);
        }
        for (host, dest) in &cmd.ro_binds {
            let host = existing("bind source", host)?;
            let dest = absolute("bind destination", dest)?;
            push(&mut args, &["--ro-bind", &host, &dest]);
        }
        let cwd = match (&cmd.cwd, &cmd.input) {
            (Some(dir), _) => absolute("working directory", dir)?,
            (None, Some((_, mount, _))) => absolute("input mount point", mount)?,
            (None, None) => "/".to_string(),
        };
        push(&mut args, &["--chdir", &cwd, "--"]);
        args.extend(cmd.argv.iter().cloned());
        Ok(args)
    }
}

fn push(args: &mut Vec<String>, more: &[&str]) {
    args.extend(more.iter().map(|s| s.to_string()));
}

fn no_nul(what: &'static str, value: &str) -> Result<(), SandboxError> {
    if value.contains('\0') {
        return Err(SandboxError::Nul {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn absolute(what: &'static str, path: &Path) -> Result<String, SandboxError> {
    if !path.is_absolute() {
        return Err(SandboxError::BadPath {
            what,
            path: path.to_path_buf(),
            problem: "is not absolute",
        });
    }
    path.to_str()
        .map(str::to_string)
        .ok_or(SandboxError::BadPath {
            what,
            path: path.to_path_buf(),
            problem: "is not UTF-8",
        })
}

fn existing(what: &'static str, path: &Path) -> Result<String, SandboxError> {
    let text = absolute(what, path)?;
    if !path.exists() {
        return Err(SandboxError::BadPath {
            what,
            path: path.to_path_buf(),
            problem: "does not exist",
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
