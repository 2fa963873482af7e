use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use crate::{Action, Completed, ExecError, Executor};

/// Runs `go build` on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {
    gocacheprog: Option<GoCacheProgram>,
}

/// A GOCACHEPROG for every `go build`: the command line go starts, and variables it needs (go
/// passes its own environment on to the program, and kiln gives go only the keyed environment).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GoCacheProgram {
    /// The value of GOCACHEPROG (go splits it on spaces, honouring quotes).
    pub command: String,
    /// Extra variables for go's environment, read by the program (never by the build: go and its
    /// tools ignore them, and they are set only beside this GOCACHEPROG).
    pub env: Vec<(String, String)>,
}

impl std::fmt::Debug for GoCacheProgram {
    // The variables may carry a token: show their names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoCacheProgram")
            .field("command", &self.command)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish()
    }
}

/// Go's variable naming an external build cache program.
const GOCACHEPROG: &str = "GOCACHEPROG";

/// Process groups of the `go build` children now running, so a signal handler can stop them.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every `go build` this process started and that is still running, with its whole process
/// group (go's compile and link children included). For SIGINT/SIGTERM handlers; kill -9 of kiln
/// is covered by the parent-death signal each child gets.
pub fn kill_running() {
    let groups: Vec<u32> = RUNNING.lock().map(|r| r.clone()).unwrap_or_default();
    for pgid in groups {
        kill_group(pgid);
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(_pgid: u32) {}

/// Makes the child its own process group leader (so its compile and link processes can be
/// stopped together) and, on Linux, asks the kernel to kill it when kiln dies, even by SIGKILL.
#[cfg(unix)]
#[allow(unsafe_code)]
fn tie_to_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only makes two
        // async-signal-safe system calls (prctl, getppid); it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // kiln may have died between fork and prctl: then nobody would kill us.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("kiln exited while starting go build"));
                }
                Ok(())
            });
        }
    }
}

#[cfg(not(unix))]
fn tie_to_parent(_cmd: &mut Command) {}

impl LocalExecutor {
    /// Runs every `go build` with `GOCACHEPROG` set to `program` (a command line, e.g. `kiln
    /// gocacheprog --cache-dir DIR`), so go's package cache lives where the program keeps it. It
    /// cannot change a binary (go addresses its cache by content; kiln-key leaves GOCACHEPROG out
    /// of the key for that reason). A command that sets GOCACHEPROG itself keeps its value: the
    /// user's own, or the empty one kiln-key gives cgo builds, whose go cache must stay private to
    /// their C toolchain's state.
    pub fn with_gocacheprog(mut self, program: Option<GoCacheProgram>) -> Self {
        self.gocacheprog = program;
        self
    }

    /// The full argument list for `action` (public so tests and `--verbose` can show it).
    pub fn command_line(action: &Action, out_dir: &Path, parallelism: usize) -> Vec<String> {
        let mut args = vec!["build".to_string(), format!("-p={}", parallelism.max(1))];
        args.extend(action.command.args().iter().cloned());
        // A trailing separator makes go treat -o as a directory even for one package, and name
        // the binary after the package as it does for several.
        let mut out = out_dir.display().to_string();
        if !out.ends_with(std::path::MAIN_SEPARATOR) {
            out.push(std::path::MAIN_SEPARATOR);
        }
        args.push("-o".into());
        args.push(out);
        args.push("--".into());
        args.extend(action.packages.iter().cloned());
        args
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> String {
        "local".into()
    }

    fn run(
        &self,
        action: &Action,
        out_dir: &Path,
        parallelism: usize,
    ) -> Result<Completed, ExecError> {
        std::fs::create_dir_all(out_dir).map_err(|source| ExecError::OutDir {
            path: out_dir.to_path_buf(),
            source,
        })?;
        let start = Instant::now();
        let go = action.command.go();
        // The program serves this build unless the command brings its own GOCACHEPROG.
        let program = self
            .gocacheprog
            .as_ref()
            .filter(|_| !action.command.env().contains_key(GOCACHEPROG));
        let mut cmd = Command::new(go);
        cmd.args(Self::command_line(action, out_dir, parallelism))
            .current_dir(action.command.dir())
            // Exactly the keyed environment: nothing kiln inherited can reach the build unseen.
            .env_clear()
            .envs(action.command.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(prog) = program {
            cmd.env(GOCACHEPROG, &prog.command);
            cmd.envs(prog.env.iter().map(|(k, v)| (k, v)));
        }
        tie_to_parent(&mut cmd);
        let spawn_err = |source| ExecError::Spawn {
            program: go.to_path_buf(),
            label: action.label.clone(),
            source,
        };
        let child = cmd.spawn().map_err(spawn_err)?;
        let pid = child.id();
        if let Ok(mut r) = RUNNING.lock() {
            r.push(pid);
        }
        let out = child.wait_with_output();
        if let Ok(mut r) = RUNNING.lock() {
            r.retain(|p| *p != pid);
        }
        let out = out.map_err(spawn_err)?;
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr.push_str(&String::from_utf8_lossy(&out.stdout));
        Ok(Completed {
            success: out.status.success(),
            stderr: stderr.trim_end().to_string(),
            duration: start.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_key::GoCommand;
    use std::path::PathBuf;

    fn action(go: PathBuf, dir: PathBuf, args: &[&str], packages: &[&str]) -> Action {
        Action {
            label: "api linux/amd64".into(),
            command: GoCommand::for_tests(go, dir, args.iter().map(|s| s.to_string()).collect()),
            packages: packages.iter().map(|s| s.to_string()).collect(),
            portable: None,
        }
    }

    #[test]
    fn command_line_shape() {
        let a = action(
            "go".into(),
            ".".into(),
            &["-trimpath"],
            &["example.com/a", "example.com/b"],
        );
        let cl = LocalExecutor::command_line(&a, Path::new("out"), 2);
        assert_eq!(cl[0], "build");
        assert_eq!(cl[1], "-p=2");
        assert_eq!(cl[2], "-trimpath");
        assert!(cl[4].ends_with(std::path::MAIN_SEPARATOR));
        assert_eq!(&cl[5..], ["--", "example.com/a", "example.com/b"]);
    }

    #[test]
    fn missing_go_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = action(
            dir.path().join("no-such-go"),
            dir.path().into(),
            &[],
            &["x"],
        );
        let e = LocalExecutor::default()
            .run(&a, &dir.path().join("out"), 1)
            .unwrap_err();
        assert!(e.to_string().contains("api linux/amd64"), "{e}");
        assert!(e.to_string().contains("hint:"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn child_sees_only_the_command_environment() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A stand-in for go that prints its environment; the test process has PATH, HOME and
        // more, none of which the command lists.
        let fake = dir.path().join("fake-go");
        std::fs::write(&fake, "#!/bin/sh\n/usr/bin/env\nexit 3\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let a = action(fake, dir.path().into(), &[], &["x"]);
        let done = LocalExecutor::default()
            .run(&a, &dir.path().join("out"), 1)
            .unwrap();
        assert!(!done.success);
        let vars: Vec<&str> = done
            .stderr
            .lines()
            .filter(|l| {
                l.contains('=')
                    && !l.starts_with("PWD=")
                    && !l.starts_with("SHLVL=")
                    && !l.starts_with("_=")
            })
            .collect();
        assert!(vars.is_empty(), "inherited variables leaked: {vars:?}");
    }

    #[cfg(unix)]
    #[test]
    fn issue_11_gocacheprog_reaches_go_unless_the_command_sets_its_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-go");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"ARGS $1 $2\"\n/usr/bin/env\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = LocalExecutor::default().with_gocacheprog(Some(GoCacheProgram {
            command: "kiln gocacheprog".into(),
            env: vec![("KILN_GOCACHEPROG_REMOTE".into(), "{}".into())],
        }));
        let a = action(fake.clone(), dir.path().into(), &[], &["x"]);
        let done = exec.run(&a, &dir.path().join("out"), 1).unwrap();
        assert!(
            done.stderr
                .lines()
                .any(|l| l == "GOCACHEPROG=kiln gocacheprog"),
            "{}",
            done.stderr
        );
        assert!(
            done.stderr
                .lines()
                .any(|l| l == "KILN_GOCACHEPROG_REMOTE={}"),
            "{}",
            done.stderr
        );
        assert!(done.stderr.contains("ARGS build -p=1"), "{}", done.stderr);
        let plain = LocalExecutor::default()
            .run(&a, &dir.path().join("out"), 1)
            .unwrap();
        assert!(!plain.stderr.contains("GOCACHEPROG"), "{}", plain.stderr);
        assert!(plain.stderr.contains("ARGS build -p=1"), "{}", plain.stderr);
        // A command that sets GOCACHEPROG (empty for cgo builds) keeps it.
        let own = Action {
            command: GoCommand::for_tests_with_env(
                fake,
                dir.path().into(),
                vec![],
                [("GOCACHEPROG".to_string(), String::new())].into(),
            ),
            ..a
        };
        let done = exec.run(&own, &dir.path().join("out"), 1).unwrap();
        assert!(
            done.stderr.lines().any(|l| l == "GOCACHEPROG="),
            "{}",
            done.stderr
        );
        // ... and gets none of the program's variables either.
        assert!(
            !done.stderr.contains("KILN_GOCACHEPROG_REMOTE"),
            "{}",
            done.stderr
        );
        assert!(done.stderr.contains("ARGS build -p=1"), "{}", done.stderr);
    }
}
