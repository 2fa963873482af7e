//! One action's GOCACHEPROG server: go's package cache on the engine, served on a unix socket
//! that is bound into the sandbox (which has no network).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_gocache::{LocalTier, RemoteTier, Server, ServerOptions, Stats};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::WorkerError;

/// How long the sessions of an action may take to finish after its sandbox ended: go answered
/// `close` before exiting, so they only wait for uploads still in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Longest path a unix socket address holds (`sun_path` is 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// A running server; [`GoCacheSession::finish`] stops it and returns what it did.
pub(crate) struct GoCacheSession {
    server: Arc<Server>,
    stop: oneshot::Sender<()>,
    accept: JoinHandle<()>,
}

impl GoCacheSession {
    /// Listens on `socket` and serves every connection (one per go process of the action) with
    /// one server over the local tier in `local_dir` and `remote`.
    pub(crate) fn start(
        socket: &Path,
        local_dir: &Path,
        remote: Option<Arc<dyn RemoteTier>>,
        upload: bool,
    ) -> Result<Self, WorkerError> {
        let len = socket.as_os_str().len();
        if len > SUN_PATH_MAX {
            return Err(WorkerError::SocketPath {
                path: socket.to_path_buf(),
                len,
            });
        }
        let mut server = Server::new(LocalTier::open(local_dir)?).with_options(ServerOptions {
            upload,
            ..ServerOptions::default()
        });
        if let Some(remote) = remote {
            server = server.with_remote(remote);
        }
        let server = Arc::new(server);
        let listener = UnixListener::bind(socket).map_err(|source| WorkerError::Io {
            path: socket.to_path_buf(),
            source,
        })?;
        let (stop, stopped) = oneshot::channel();
        let accept = tokio::spawn(accept_loop(listener, server.clone(), stopped));
        Ok(GoCacheSession {
            server,
            stop,
            accept,
        })
    }

    /// Stops accepting, lets the sessions finish their uploads (bounded) and returns the
    /// counters of all of them.
    pub(crate) async fn finish(self) -> Stats {
        let _ = self.stop.send(());
        let _ = self.accept.await;
        self.server.stats()
    }
}

async fn accept_loop(
    listener: UnixListener,
    server: Arc<Server>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let server = server.clone();
                sessions.spawn(async move {
                    let (read, write) = stream.into_split();
                    // A broken session (go killed mid-request) costs only its own answers.
                    let _ = server.serve(read, write).await;
                });
            }
        }
        while sessions.try_join_next().is_some() {}
    }
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        sessions.abort_all();
    }
}

/// The socket of the action whose scratch directory is `dir`: `dir/gocache/sock` (the
/// `gocache` directory is what the sandbox sees at `/kiln/gocache`).
pub(crate) fn socket_dir(dir: &Path) -> PathBuf {
    dir.join("gocache")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_connection_is_served_and_counted_in_one_session() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("sock");
        let session = GoCacheSession::start(&sock, &dir.path().join("local"), None, true).unwrap();
        // Two go processes of one action: two connections, one set of counters.
        for id in 1..=2 {
            let stream = tokio::net::UnixStream::connect(&sock).await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let hello = lines.next_line().await.unwrap().unwrap();
            assert!(hello.contains("KnownCommands"), "{hello}");
            let action = "A".repeat(43) + "=";
            write
                .write_all(
                    format!("{{\"ID\":{id},\"Command\":\"get\",\"ActionID\":\"{action}\"}}\n{{\"ID\":9,\"Command\":\"close\"}}\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let miss = lines.next_line().await.unwrap().unwrap();
            assert!(miss.contains("\"Miss\":true"), "{miss}");
            let closed = lines.next_line().await.unwrap().unwrap();
            assert!(closed.contains("\"ID\":9"), "{closed}");
        }
        let stats = session.finish().await;
        assert_eq!((stats.gets, stats.misses), (2, 2));
    }

    #[test]
    fn a_socket_path_too_long_for_unix_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("x".repeat(120));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _in = rt.enter();
        let err = GoCacheSession::start(&long, &dir.path().join("local"), None, true)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("--work-dir"), "{err}");
    }
}
