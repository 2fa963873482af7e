//! `kiln worker` processes for end-to-end tests and benchmarks: started against an engine, their
//! stderr collected line by line, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `kiln worker`.
pub struct KilnWorker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _work: tempfile::TempDir,
}

impl KilnWorker {
    /// Starts `kiln worker --server grpc://ADDR --bot-id ID --work-dir TMP EXTRA...` with the
    /// `kiln` binary at `kiln` (a test's `env!("CARGO_BIN_EXE_kiln")`).
    pub fn start(kiln: &Path, addr: &str, bot_id: &str, extra: &[&str]) -> Self {
        let work = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(kiln)
            .args([
                "worker",
                "--server",
                &format!("grpc://{addr}"),
                "--bot-id",
                bot_id,
            ])
            .arg("--work-dir")
            .arg(work.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} worker: {e}", kiln.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        KilnWorker {
            child,
            lines,
            _work: work,
        }
    }

    /// Everything the worker printed so far.
    pub fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Waits (up to five minutes) until a line contains `text`; panics with the log otherwise.
    pub fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "worker never said {text:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the worker (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KilnWorker {
    fn drop(&mut self) {
        self.kill();
    }
}
