//! BuildGrid with remote execution: a private PostgreSQL cluster on loopback (started once per
//! test process; BuildGrid's scheduler refuses SQLite) and `bgd server start` with CAS, action
//! cache, ByteStream, Execution and Bots on the default instance. No worker ships with BuildGrid:
//! tests start `kiln worker`s against [`BuildGridExec::addr`].
//!
//! `bgd` is the one `.ci/tools.sh buildgrid` installs under `$KILN_TOOLS_DIR/bin` (default
//! `~/.cache/kiln-tools/bin`); PostgreSQL 15 comes from Debian (`apt-get install -y postgresql`).

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::free_port;

/// Debian's PostgreSQL 15 binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The platform keys BuildGrid matches between an action and a worker, besides OSFamily and ISA
/// (always matched). kiln's workers advertise the Go version and toolchain hash under these.
pub const MATCH_KEYS: &[&str] = &["kiln-go-version", "kiln-go-toolchain"];

/// The `bgd` binary `.ci/tools.sh` installs; panics with how to install it.
pub fn bgd() -> PathBuf {
    let base = std::env::var_os("KILN_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
                .join(".cache/kiln-tools")
        });
    let path = base.join("bin/bgd");
    assert!(
        path.is_file(),
        "{} is missing: run `.ci/tools.sh buildgrid` from the repository root",
        path.display()
    );
    path
}

/// The per-process PostgreSQL cluster: its port, and the pipe whose closing (when the test
/// process exits, however it exits) stops it.
struct Postgres {
    port: u16,
    _dir: tempfile::TempDir,
    _stop: Mutex<ChildStdin>,
}

fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(start_postgres)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a shell script as the `postgres` user when we are root (initdb refuses root), else as us.
fn as_pg_user(script: &str) -> Command {
    if is_root() {
        let mut c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }
}

fn start_postgres() -> Postgres {
    assert!(
        Path::new(PG_BIN).join("initdb").is_file(),
        "PostgreSQL 15 is missing: apt-get install -y postgresql"
    );
    let dir = tempfile::Builder::new()
        .prefix("kiln-pg")
        .tempdir()
        .expect("tempdir");
    let d = dir.path().display().to_string();
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres", &d])
            .status()
            .expect("chown");
        assert!(ok.success(), "chown postgres {d}");
    }
    let init = as_pg_user(&format!(
        "{PG_BIN}/initdb -D {d}/data -A trust -U kiln >{d}/initdb.log 2>&1"
    ))
    .status()
    .expect("initdb");
    assert!(
        init.success(),
        "initdb failed: {}",
        read(&format!("{d}/initdb.log"))
    );
    let port = free_port();
    // The shell waits on stdin; the test process holds the other end, so when it exits (even when
    // killed) `read` returns and the cluster shuts down instead of outliving the tests.
    let script = format!(
        "{PG_BIN}/postgres -D {d}/data -p {port} -k {d} -c listen_addresses=127.0.0.1 -c max_connections=300 \
         >{d}/postgres.log 2>&1 & pid=$!; read _; kill -INT $pid; wait $pid; rm -rf {d}"
    );
    let mut child = as_pg_user(&script)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start postgres");
    let stdin = child.stdin.take().expect("postgres stdin");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(format!("{PG_BIN}/pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not start: {}",
            read(&format!("{d}/postgres.log"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The shell must outlive this call; it is reaped never, which is fine for a test process.
    std::mem::forget(child);
    Postgres {
        port,
        _dir: dir,
        _stop: Mutex::new(stdin),
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A fresh database in the per-process cluster, migrated with `bgd migrate apply`; its URL.
fn fresh_database() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let pg = postgres();
    let name = format!("bgd{}", N.fetch_add(1, Ordering::SeqCst));
    let out = Command::new(format!("{PG_BIN}/createdb"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "kiln",
            &name,
        ])
        .output()
        .expect("createdb");
    assert!(
        out.status.success(),
        "createdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("postgresql://kiln@127.0.0.1:{}/{name}", pg.port);
    let out = Command::new(bgd())
        .args(["migrate", "apply", &url])
        .output()
        .expect("bgd migrate");
    assert!(
        out.status.success(),
        "bgd migrate apply failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    url
}

/// BuildGrid with execution on 127.0.0.1, killed on drop. [`BuildGridExec::restart`] stops it
/// and starts it again on the same address, database and storage (an engine restart).
pub struct BuildGridExec {
    child: Option<Child>,
    /// Configuration, storage and `bgd.log`.
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl BuildGridExec {
    /// Creates a database, writes the configuration and starts the server (about 30 s in all).
    pub fn start() -> Self {
        let url = fresh_database();
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let cas = dir.path().join("cas");
        std::fs::create_dir_all(&cas).expect("mkdir cas");
        let keys = MATCH_KEYS.join(", ");
        let config = format!(
            "server:\n  - !channel\n    address: \"{addr}\"\n    insecure-mode: true\n\
             connections:\n  - !sql-connection &sql\n    connection-string: {url}\n\
             storages:\n  - !disk-storage &main-storage\n    path: {cas}\n\
             caches:\n  - !lru-action-cache &main-action\n    storage: *main-storage\n    max-cached-refs: 10000\n    allow-updates: true\n    cache-failed-actions: false\n\
             schedulers:\n  - !sql-scheduler &sched\n    sql: *sql\n    storage: *main-storage\n    action-cache: *main-action\n\
             \x20   property-set: !dynamic-property-set\n      match-property-keys: [{keys}]\n\
             \x20   bot-session-keepalive-timeout: 15\n\
             \x20   assigners:\n      - !priority-age-assigner\n        count: 1\n        interval: 0.2\n\
             instances:\n  - name: ''\n    services:\n      - !action-cache\n        cache: *main-action\n      - !execution\n        scheduler: *sched\n      - !cas\n        storage: *main-storage\n      - !bytestream\n        storage: *main-storage\n",
            cas = cas.display()
        );
        std::fs::File::create(dir.path().join("buildgrid.yml"))
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("write buildgrid.yml");
        let mut me = BuildGridExec {
            child: None,
            dir,
            addr,
        };
        me.launch();
        me
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bgd.log"))
            .expect("bgd.log");
        let mut child = Command::new(bgd())
            .args(["server", "start", "buildgrid.yml"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start bgd");
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(&self.addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("bgd exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "bgd did not listen on {}:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.child = Some(child);
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        read(&self.dir.path().join("bgd.log").display().to_string())
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again with the same address, database and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for BuildGridExec {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildgrid_with_execution_starts_and_restarts() {
        let mut bg = BuildGridExec::start();
        assert!(TcpStream::connect(&bg.addr).is_ok());
        bg.restart();
        assert!(TcpStream::connect(&bg.addr).is_ok(), "{}", bg.log());
        assert!(!bg.log().contains("Traceback"), "{}", bg.log());
    }
}
