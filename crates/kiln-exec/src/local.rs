use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Completed, ExecError, Executor, GoBuild};

/// Runs `go build` on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor;

impl LocalExecutor {
    /// The full argument list for `build` (public so tests and `--verbose` can show it).
    pub fn command_line(build: &GoBuild) -> Vec<String> {
        let mut args = vec![
            "build".to_string(),
            format!("-p={}", build.parallelism.max(1)),
        ];
        args.extend(build.args.iter().cloned());
        // A trailing separator makes go treat -o as a directory even for one package, and name
        // the binary after the package as it does for several.
        let mut out = build.out_dir.display().to_string();
        if !out.ends_with(std::path::MAIN_SEPARATOR) {
            out.push(std::path::MAIN_SEPARATOR);
        }
        args.push("-o".into());
        args.push(out);
        args.push("--".into());
        args.extend(build.packages.iter().cloned());
        args
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> String {
        "local".into()
    }

    fn run(&self, build: &GoBuild) -> Result<Completed, ExecError> {
        std::fs::create_dir_all(&build.out_dir).map_err(|source| ExecError::OutDir {
            path: build.out_dir.clone(),
            source,
        })?;
        let start = Instant::now();
        let out = Command::new(&build.go)
            .args(Self::command_line(build))
            .current_dir(&build.dir)
            .envs(build.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ExecError::Spawn {
                program: build.go.clone(),
                label: build.label.clone(),
                source,
            })?;
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
    use std::path::PathBuf;

    #[test]
    fn command_line_shape() {
        let b = GoBuild {
            label: "x".into(),
            go: "go".into(),
            dir: ".".into(),
            env: vec![],
            args: vec!["-trimpath".into()],
            packages: vec!["example.com/a".into(), "example.com/b".into()],
            out_dir: PathBuf::from("out"),
            parallelism: 2,
        };
        let cl = LocalExecutor::command_line(&b);
        assert_eq!(cl[0], "build");
        assert_eq!(cl[1], "-p=2");
        assert_eq!(cl[2], "-trimpath");
        assert!(cl[4].ends_with(std::path::MAIN_SEPARATOR));
        assert_eq!(&cl[5..], ["--", "example.com/a", "example.com/b"]);
    }

    #[test]
    fn missing_go_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = GoBuild {
            label: "api linux/amd64".into(),
            go: dir.path().join("no-such-go"),
            dir: dir.path().to_path_buf(),
            env: vec![],
            args: vec![],
            packages: vec!["x".into()],
            out_dir: dir.path().join("out"),
            parallelism: 1,
        };
        let e = LocalExecutor.run(&b).unwrap_err();
        assert!(e.to_string().contains("api linux/amd64"), "{e}");
        assert!(e.to_string().contains("hint:"), "{e}");
    }
}
