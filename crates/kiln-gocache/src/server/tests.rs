//! Sessions driven over in-memory pipes, as go drives them.

use super::*;
use crate::FakeRemote;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, DuplexStream};

struct Go {
    to_server: DuplexStream,
    from_server: tokio::io::Lines<BufReader<DuplexStream>>,
    session: JoinHandle<Result<Stats, GoCacheError>>,
    next_id: i64,
}

fn action(n: u8) -> ActionId {
    ActionId::from_raw([n; 32])
}

impl Go {
    fn start(server: Server) -> Self {
        let (to_server, server_in) = tokio::io::duplex(1 << 20);
        let (server_out, from_server) = tokio::io::duplex(1 << 20);
        let session = tokio::spawn(async move { server.serve(server_in, server_out).await });
        Self {
            to_server,
            from_server: BufReader::new(from_server).lines(),
            session,
            next_id: 0,
        }
    }

    async fn send(&mut self, line: String) -> i64 {
        self.to_server.write_all(line.as_bytes()).await.unwrap();
        self.next_id
    }

    async fn get(&mut self, a: ActionId) -> i64 {
        self.next_id += 1;
        let line = format!(
            "{{\"ID\":{},\"Command\":\"get\",\"ActionID\":\"{}\"}}\n",
            self.next_id,
            B64.encode(a.as_raw())
        );
        self.send(line).await
    }

    /// A put as go writes it: the request, an empty line, the body as a base64 JSON string.
    async fn put_with(&mut self, a: ActionId, output: &Digest, body: &[u8]) -> i64 {
        self.next_id += 1;
        let mut line = format!(
            "{{\"ID\":{},\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":{}}}\n\n",
            self.next_id,
            B64.encode(a.as_raw()),
            B64.encode(output.as_raw()),
            body.len()
        );
        if !body.is_empty() {
            line.push_str(&format!("\"{}\"\n", B64.encode(body)));
        }
        self.send(line).await
    }

    async fn put(&mut self, a: ActionId, body: &[u8]) -> i64 {
        self.put_with(a, &Digest::of_bytes(body), body).await
    }

    async fn answer(&mut self) -> Response {
        let line = self.from_server.next_line().await.unwrap().unwrap();
        serde_json::from_str(&line).unwrap()
    }

    /// The answer to `id`, skipping (and returning) others that come first.
    async fn answer_to(&mut self, id: i64) -> Response {
        loop {
            let a = self.answer().await;
            if a.id == id {
                return a;
            }
        }
    }

    async fn close(mut self) -> (Response, Stats) {
        self.next_id += 1;
        let id = self.next_id;
        self.send(format!("{{\"ID\":{id},\"Command\":\"close\"}}\n"))
            .await;
        let a = self.answer_to(id).await;
        drop(self.to_server);
        let stats = self.session.await.unwrap().unwrap();
        (a, stats)
    }
}

fn local(dir: &tempfile::TempDir) -> LocalTier {
    LocalTier::open(dir.path()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announces_commands_then_put_get_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut go = Go::start(Server::new(local(&dir)));
    let hello = go.answer().await;
    assert_eq!(hello.id, 0);
    assert_eq!(hello.known_commands, ["get", "put", "close"]);

    let id = go.get(action(1)).await;
    let miss = go.answer_to(id).await;
    assert!(miss.miss && miss.err.is_empty(), "{miss:?}");

    let id = go.put(action(1), b"compiled").await;
    let put = go.answer_to(id).await;
    assert!(put.err.is_empty(), "{put:?}");
    let path = put.disk_path.unwrap();
    assert!(std::path::Path::new(&path).is_absolute());
    assert_eq!(std::fs::read(&path).unwrap(), b"compiled");

    let id = go.get(action(1)).await;
    let hit = go.answer_to(id).await;
    assert!(!hit.miss);
    assert_eq!(
        hit.output_id.unwrap(),
        Digest::of_bytes(b"compiled").as_raw()
    );
    assert_eq!(hit.size, 8);
    assert_eq!(hit.disk_path.unwrap(), path);
    assert!(hit.time.unwrap().ends_with('Z'));

    // An empty output (go caches some) has no body line.
    let id = go.put(action(2), b"").await;
    assert!(go.answer_to(id).await.err.is_empty());
    let id = go.get(action(2)).await;
    assert_eq!(
        go.answer_to(id).await.output_id.unwrap(),
        Digest::of_bytes(b"").as_raw()
    );

    let (close, stats) = go.close().await;
    assert!(close.err.is_empty());
    assert_eq!((stats.gets, stats.local_hits, stats.misses), (3, 2, 1));
    assert_eq!((stats.puts, stats.put_bytes), (2, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_answers_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Arc::new(FakeRemote::new());
    remote.insert(action(9), b"from another machine");
    let tier = local(&dir);
    tier.put(&action(2), &Digest::of_bytes(b"local"), b"local")
        .unwrap();
    let mut go = Go::start(Server::new(tier).with_remote(remote.clone()));
    assert_eq!(go.answer().await.id, 0);
    // The first get waits on the remote, which holds it; the second is a local hit.
    remote.hold_lookups();
    let slow = go.get(action(9)).await;
    let fast = go.get(action(2)).await;
    let first = go.answer().await;
    assert_eq!(
        first.id, fast,
        "the local hit is answered while the remote look-up waits"
    );
    assert!(!first.miss);
    remote.release();
    let second = go.answer().await;
    assert_eq!(second.id, slow);
    assert_eq!(
        std::fs::read(second.disk_path.unwrap()).unwrap(),
        b"from another machine"
    );
    let (_, stats) = go.close().await;
    assert_eq!((stats.local_hits, stats.remote_hits), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_put_with_wrong_output_id_is_rejected_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Arc::new(FakeRemote::new());
    let mut go = Go::start(Server::new(local(&dir)).with_remote(remote.clone()));
    go.answer().await;
    let id = go
        .put_with(action(1), &Digest::of_bytes(b"other"), b"body")
        .await;
    let a = go.answer_to(id).await;
    assert!(a.err.contains("OutputID"), "{a:?}");
    assert!(a.disk_path.is_none());
    // A body whose length is not BodySize is refused too, and the stream stays in step.
    go.next_id += 1;
    let id = go.next_id;
    go.send(format!(
        "{{\"ID\":{id},\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":3}}\n\n\"{}\"\n",
        B64.encode(action(3).as_raw()),
        B64.encode(Digest::of_bytes(b"four").as_raw()),
        B64.encode(b"four")
    ))
    .await;
    assert!(go.answer_to(id).await.err.contains("BodySize"));
    let id = go.get(action(1)).await;
    assert!(go.answer_to(id).await.miss, "nothing was stored");
    let (_, stats) = go.close().await;
    assert_eq!((stats.errors, stats.puts), (2, 0));
    assert_eq!(remote.puts(), 0, "nothing was uploaded");
    assert!(remote.entry(&action(1)).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_unknown_command_is_answered_with_err() {
    let dir = tempfile::tempdir().unwrap();
    let mut go = Go::start(Server::new(local(&dir)));
    go.answer().await;
    go.send("{\"ID\":5,\"Command\":\"get2\",\"ActionID\":\"AA==\"}\n".into())
        .await;
    let a = go.answer_to(5).await;
    assert!(a.err.contains("unknown command `get2`"), "{a:?}");
    // A get with an action ID of the wrong size is an error answer, not a crash.
    go.send("{\"ID\":6,\"Command\":\"get\",\"ActionID\":\"AA==\"}\n".into())
        .await;
    assert!(go.answer_to(6).await.err.contains("32 bytes"));
    go.next_id = 6;
    let (close, stats) = go.close().await;
    assert!(close.err.is_empty());
    assert_eq!(stats.errors, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_are_uploaded_before_close_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Arc::new(FakeRemote::new());
    let mut go = Go::start(Server::new(local(&dir)).with_remote(remote.clone()));
    go.answer().await;
    for n in 0..50u8 {
        go.put(action(n), &[n; 1000]).await;
    }
    let (_, stats) = go.close().await;
    assert_eq!(stats.uploads, 50);
    for n in 0..50u8 {
        assert_eq!(
            remote.entry(&action(n)).map(|e| e.output),
            Some(Digest::of_bytes(&[n; 1000]))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_a_read_only_remote_skips_are_not_counted_as_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Arc::new(FakeRemote::new());
    remote.set_read_only(true);
    let mut go = Go::start(Server::new(local(&dir)).with_remote(remote.clone()));
    go.answer().await;
    for n in 0..5u8 {
        go.put(action(n), &[n; 100]).await;
    }
    let (_, stats) = go.close().await;
    assert_eq!(remote.puts(), 5, "every put reached the tier");
    assert_eq!((stats.uploads, stats.upload_bytes), (0, 0), "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert!(remote.entry(&action(0)).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_lookups_are_batched() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Arc::new(FakeRemote::new());
    for n in 0..100u8 {
        remote.insert(action(n), &[n; 10]);
    }
    let server = Server::new(local(&dir)).with_remote(remote.clone());
    let counters = server.counters();
    let mut go = Go::start(server);
    go.answer().await;
    // Held look-ups keep every slot busy, so the misses queue up behind them.
    remote.hold_lookups();
    let mut ids = Vec::new();
    for n in 0..100u8 {
        ids.push(go.get(action(n)).await);
    }
    // Wait until the server has read every get and every look-up slot (4 by default) is taken by
    // a held call, or every miss is in one. Releasing earlier lets a loaded machine's late gets
    // find free slots one by one, which is not what this test is about.
    while counters.snapshot().gets < 100 || (remote.looked_up() < 100 && remote.lookup_calls() < 4)
    {
        tokio::task::yield_now().await;
    }
    // Each get's local miss is checked on a blocking thread before it queues for the remote.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    remote.release();
    let mut answered = std::collections::HashSet::new();
    while answered.len() < ids.len() {
        let a = go.answer().await;
        assert!(!a.miss, "{a:?}");
        answered.insert(a.id);
    }
    let (_, stats) = go.close().await;
    assert_eq!(stats.remote_hits, 100);
    assert_eq!(stats.remote_lookup_ids, 100);
    assert!(
        remote.lookup_calls() < 100,
        "{} calls for 100 misses",
        remote.lookup_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_remote_is_a_miss_and_is_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Arc::new(FakeRemote::new());
    remote.insert(action(1), b"x");
    remote.set_failing(true);
    let mut go = Go::start(Server::new(local(&dir)).with_remote(remote.clone()));
    go.answer().await;
    for n in 0..40u8 {
        let id = go.get(action(n)).await;
        let a = go.answer_to(id).await;
        assert!(a.miss && a.err.is_empty(), "{a:?}");
    }
    let id = go.put(action(50), b"still stored locally").await;
    assert!(go.answer_to(id).await.err.is_empty());
    let (close, stats) = go.close().await;
    assert!(close.err.is_empty());
    assert_eq!(stats.misses, 40);
    assert_eq!(stats.puts, 1);
    assert!(stats.remote_errors >= 1);
    assert!(stats.first_remote_error.unwrap().contains("told to fail"));
    assert!(
        remote.lookup_calls() <= 3,
        "the remote is not asked again after 3 failures in a row: {} calls",
        remote.lookup_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_remote_blob_is_a_miss_and_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Arc::new(FakeRemote::new());
    remote.insert(action(1), b"good bytes");
    remote.set_corrupt(true);
    let tier = local(&dir);
    let mut go = Go::start(Server::new(tier).with_remote(remote.clone()));
    go.answer().await;
    let id = go.get(action(1)).await;
    assert!(go.answer_to(id).await.miss);
    let (_, stats) = go.close().await;
    assert_eq!((stats.corrupt, stats.remote_hits), (1, 0));
    assert!(stats.first_remote_error.unwrap().contains("does not match"));
    assert!(LocalTier::open(dir.path())
        .unwrap()
        .get(&action(1))
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_input_without_close_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut go = Go::start(Server::new(local(&dir)));
    go.answer().await;
    let id = go.put(action(1), b"x").await;
    go.answer_to(id).await;
    drop(go.to_server);
    let stats = go.session.await.unwrap().unwrap();
    assert_eq!(stats.puts, 1);
}
