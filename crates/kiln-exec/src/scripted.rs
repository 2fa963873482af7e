use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::{Action, Completed, ExecError, Executor};

/// What a [`ScriptedExecutor`] does for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Writes these bytes as the package's binary (named like go would: the last import path
    /// element, or the `binary` name given).
    Write {
        /// File name of the binary.
        binary: String,
        /// Its content.
        bytes: Vec<u8>,
    },
    /// Like [`Script::Write`], and while "compiling" also writes `content` to `file`: a user
    /// saving a source file while go runs.
    WriteWhileEditing {
        /// File name of the binary.
        binary: String,
        /// Its content.
        bytes: Vec<u8>,
        /// The file edited during the build.
        file: std::path::PathBuf,
        /// Its new content.
        content: Vec<u8>,
    },
    /// Fails the whole invocation with this compiler message.
    Fail(String),
}

/// A fake executor for unit tests of the stages above: binaries come from a script instead of a
/// compiler, and every call is recorded so tests can assert what ran (and what did not).
#[derive(Debug, Default)]
pub struct ScriptedExecutor {
    scripts: Mutex<HashMap<String, Script>>,
    calls: Mutex<Vec<Action>>,
}

impl ScriptedExecutor {
    /// An executor that knows no package yet (running an unknown one fails the action).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what building `package` does.
    pub fn script(&self, package: &str, script: Script) {
        if let Ok(mut s) = self.scripts.lock() {
            s.insert(package.to_string(), script);
        }
    }

    /// The actions run so far, in order.
    pub fn calls(&self) -> Vec<Action> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Executor for ScriptedExecutor {
    fn name(&self) -> String {
        "scripted".into()
    }

    fn run(
        &self,
        action: &Action,
        out_dir: &Path,
        _parallelism: usize,
    ) -> Result<Completed, ExecError> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(action.clone());
        }
        std::fs::create_dir_all(out_dir).map_err(|source| ExecError::OutDir {
            path: out_dir.to_path_buf(),
            source,
        })?;
        let scripts = self.scripts.lock().map(|s| s.clone()).unwrap_or_default();
        for p in &action.packages {
            match scripts.get(p) {
                Some(Script::Write { binary, bytes }) => {
                    let dest = out_dir.join(binary);
                    std::fs::write(&dest, bytes).map_err(|source| ExecError::OutDir {
                        path: dest.clone(),
                        source,
                    })?;
                }
                Some(Script::WriteWhileEditing {
                    binary,
                    bytes,
                    file,
                    content,
                }) => {
                    let io = |path: &Path| {
                        let path = path.to_path_buf();
                        move |source| ExecError::OutDir { path, source }
                    };
                    std::fs::write(file, content).map_err(io(file))?;
                    let dest = out_dir.join(binary);
                    std::fs::write(&dest, bytes).map_err(io(&dest))?;
                }
                Some(Script::Fail(msg)) => return Ok(failed(msg)),
                None => return Ok(failed(&format!("no script for package {p}"))),
            }
        }
        Ok(Completed {
            success: true,
            stderr: String::new(),
            duration: Duration::from_millis(1),
        })
    }
}

fn failed(msg: &str) -> Completed {
    Completed {
        success: false,
        stderr: msg.to_string(),
        duration: Duration::from_millis(1),
    }
}
