//! Running an image's filesystem the way a container runtime would, without one: `umoci`
//! unpacks an OCI layout into a runtime bundle and bubblewrap runs the bundle's process.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::tools::{require_tool, run_tool};

/// An OCI runtime bundle (`config.json` plus `rootfs/`) that `umoci unpack --rootless` wrote.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Its `config.json`, the runtime configuration umoci derived from the image config.
    pub config: Value,
}

impl Bundle {
    /// Unpacks `image` (`layout-dir:tag`) into `dir` with `umoci unpack --rootless`. Fails (never
    /// skips) with the install command when umoci is missing.
    pub fn unpack(image: &str, dir: &Path) -> Self {
        require_tool("umoci", "umoci");
        let dir_arg = dir.to_str().expect("a UTF-8 bundle path");
        run_tool(
            "umoci",
            &["unpack", "--rootless", "--image", image, dir_arg],
        );
        let config = std::fs::read(dir.join("config.json"))
            .unwrap_or_else(|e| panic!("{}/config.json: {e}", dir.display()));
        Self {
            dir: dir.to_path_buf(),
            config: serde_json::from_slice(&config).expect("config.json is JSON"),
        }
    }

    /// The unpacked root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The process's arguments (`process.args`: entrypoint then command).
    pub fn args(&self) -> Vec<String> {
        strings(&self.config["process"]["args"], "process.args")
    }

    /// The process's environment (`process.env`), split at the first `=`.
    pub fn env(&self) -> Vec<(String, String)> {
        strings(&self.config["process"]["env"], "process.env")
            .into_iter()
            .map(|e| {
                let (k, v) = e
                    .split_once('=')
                    .expect("process.env entries are KEY=VALUE");
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    /// The user and group the process runs as (`process.user.uid`, `.gid`).
    pub fn user(&self) -> (u64, u64) {
        let user = &self.config["process"]["user"];
        (
            user["uid"].as_u64().expect("process.user.uid"),
            user["gid"].as_u64().expect("process.user.gid"),
        )
    }

    /// A `bwrap` command that runs the bundle's process as a runtime would: the rootfs as `/`,
    /// fresh `/dev` and `/proc`, its own PID and user namespaces with the configured uid/gid,
    /// only the configured environment plus `extra_env`. Spawn or run it; fails (never skips)
    /// with the install command when bubblewrap is missing.
    pub fn bwrap(&self, extra_env: &[(&str, &str)]) -> Command {
        require_tool("bwrap", "bubblewrap");
        let (uid, gid) = self.user();
        let mut cmd = Command::new("bwrap");
        cmd.arg("--bind").arg(self.rootfs()).args([
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-pid",
            "--die-with-parent",
            "--unshare-user",
            "--uid",
            &uid.to_string(),
            "--gid",
            &gid.to_string(),
            "--clearenv",
        ]);
        for (k, v) in self.env() {
            cmd.args(["--setenv", &k, &v]);
        }
        for (k, v) in extra_env {
            cmd.args(["--setenv", k, v]);
        }
        cmd.args(self.args());
        cmd
    }
}

fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{what} has a non-string: {s}"))
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: Value) -> Bundle {
        Bundle {
            dir: PathBuf::from("bundle"),
            config,
        }
    }

    #[test]
    fn bwrap_runs_the_configured_process_as_its_user_with_only_its_env() {
        let b = bundle(serde_json::json!({"process": {
            "args": ["/app", "-v"],
            "env": ["PATH=/bin", "GREETING=a=b"],
            "user": {"uid": 65532, "gid": 65533},
        }}));
        let cmd = b.bwrap(&[("ADDR", "127.0.0.1:1")]);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("--bind bundle/rootfs / "), "{joined}");
        assert!(
            joined.contains("--uid 65532 --gid 65533 --clearenv"),
            "{joined}"
        );
        assert!(
            joined.ends_with(
                "--setenv PATH /bin --setenv GREETING a=b --setenv ADDR 127.0.0.1:1 /app -v"
            ),
            "{joined}"
        );
    }
}
