//! Starting bwrap, applying limits, enforcing the timeout and capturing output.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Limits, SandboxCommand, SandboxError};

/// How the sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code. bwrap reports a command killed by signal N as 128 + N.
    Code(i32),
    /// bwrap itself was killed by this signal (a limit hit bwrap, or something outside killed it).
    Signal(i32),
    /// The wall-clock timeout passed and the sandbox was killed.
    TimedOut,
    /// The command's [`crate::CancelToken`] was cancelled and the sandbox was killed.
    Cancelled,
}

/// What a sandboxed command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub exit: Exit,
    /// Captured stdout, at most the command's output cap.
    pub stdout: Vec<u8>,
    /// Captured stderr, at most the command's output cap.
    pub stderr: Vec<u8>,
    /// True when stdout was longer than the cap and was cut.
    pub stdout_truncated: bool,
    /// True when stderr was longer than the cap and was cut.
    pub stderr_truncated: bool,
    /// Wall-clock time from start to exit.
    pub duration: Duration,
}

impl Outcome {
    /// True when the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// The exit code, if the command exited on its own.
    pub fn code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(code) => Some(code),
            _ => None,
        }
    }
}

/// How often a run with a [`crate::CancelToken`] looks at it.
const CANCEL_POLL: Duration = Duration::from_millis(50);

pub(crate) fn run(
    bwrap: &Path,
    args: &[String],
    cmd: &SandboxCommand,
) -> Result<Outcome, SandboxError> {
    let mut command = Command::new(bwrap);
    command
        .args(args)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so the timeout kills bwrap and anything that escaped its
        // session with one signal.
        .process_group(0);
    set_limits(&mut command, cmd.limits);
    let start = Instant::now();
    let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
        bwrap: bwrap.to_path_buf(),
        source,
    })?;
    let pid = child.id();
    let cap = cmd.output_cap;
    let stdout = child
        .stdout
        .take()
        .map(|pipe| std::thread::spawn(move || capture(pipe, cap)));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| std::thread::spawn(move || capture(pipe, cap)));

    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let deadline = start + cmd.timeout;
    let (status, stopped) = loop {
        // A cancel token is polled: the wait wakes up at least every CANCEL_POLL to look at it.
        let now = Instant::now();
        let cancelled = cmd.cancel.as_ref().is_some_and(|c| c.is_cancelled());
        let stop = if cancelled {
            Some(Exit::Cancelled)
        } else if now >= deadline {
            Some(Exit::TimedOut)
        } else {
            None
        };
        if let Some(stop) = stop {
            kill_group(pid);
            break (
                rx.recv()
                    .unwrap_or_else(|_| Err(std::io::Error::other("waiter thread ended"))),
                Some(stop),
            );
        }
        let wait = if cmd.cancel.is_some() {
            (deadline - now).min(CANCEL_POLL)
        } else {
            deadline - now
        };
        match rx.recv_timeout(wait) {
            Ok(status) => break (status, None),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break (Err(std::io::Error::other("waiter thread ended")), None)
            }
        }
    };
    let _ = waiter.join();
    let status: ExitStatus = status.map_err(SandboxError::Wait)?;
    let duration = start.elapsed();
    let (stdout, stdout_truncated) = join(stdout);
    let (stderr, stderr_truncated) = join(stderr);
    let exit = if let Some(stop) = stopped {
        stop
    } else if let Some(code) = status.code() {
        Exit::Code(code)
    } else {
        Exit::Signal(status.signal().unwrap_or(0))
    };
    Ok(Outcome {
        exit,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        duration,
    })
}

/// Reads the pipe to its end, keeping the first `cap` bytes; true when more came.
fn capture(mut pipe: impl Read, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (kept, truncated)
}

fn join(handle: Option<std::thread::JoinHandle<(Vec<u8>, bool)>>) -> (Vec<u8>, bool) {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

#[allow(unsafe_code)]
fn kill_group(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group we created for bwrap
    // (process_group(0) made its pgid equal to its pid); it touches no memory of ours. Killing
    // bwrap's monitor ends the sandbox's pid namespace, and with it every process inside.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

#[allow(unsafe_code)]
fn set_limits(command: &mut Command, limits: Limits) {
    let wanted: Vec<(libc::__rlimit_resource_t, u64)> = [
        (libc::RLIMIT_CPU, limits.cpu_seconds),
        (libc::RLIMIT_AS, limits.address_space_bytes),
        (libc::RLIMIT_NOFILE, limits.open_files),
        (libc::RLIMIT_FSIZE, limits.file_size_bytes),
    ]
    .into_iter()
    .filter_map(|(resource, value)| value.map(|v| (resource, v)))
    .collect();
    if wanted.is_empty() {
        return;
    }
    // SAFETY: the closure runs in the forked child before exec. It only calls setrlimit(2), which
    // is async-signal-safe, on data prepared before the fork; it allocates nothing and takes no
    // lock.
    unsafe {
        command.pre_exec(move || {
            for (resource, value) in &wanted {
                let limit = libc::rlimit {
                    rlim_cur: *value as libc::rlim_t,
                    rlim_max: *value as libc::rlim_t,
                };
                if libc::setrlimit(*resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
