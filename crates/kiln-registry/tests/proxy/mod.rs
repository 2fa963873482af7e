//! A small TCP proxy in front of the real registry that injects faults (503 answers, connections
//! dropped mid-request) and can play a Bearer token server. It looks at request heads only: each
//! client write that starts with `METHOD /path HTTP/1.1` is treated as a new request.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does; rules fire once each, in any order.
#[derive(Default)]
pub struct Plan {
    /// `(method, path fragment)`: answer 503 instead of forwarding.
    pub fail_503: Mutex<Vec<(&'static str, &'static str)>>,
    /// `(method, path fragment)`: forward half of the request, then drop both connections.
    pub drop: Mutex<Vec<(&'static str, &'static str)>>,
    /// Require `Authorization: Bearer` tokens from our own `/token` endpoint.
    pub bearer: bool,
    /// With `bearer`: the token endpoint demands this `user:password` (Basic); `None` = anonymous.
    pub token_basic: Option<String>,
    pub fired_503: AtomicUsize,
    pub fired_drop: AtomicUsize,
    pub token_requests: AtomicUsize,
    pub challenges: AtomicUsize,
    pub scopes_seen: Mutex<Vec<String>>,
    /// Method of every request seen, in order.
    pub methods: Mutex<Vec<String>>,
    /// Blob upload sessions open now: from the POST that starts one to the answer to the PUT
    /// that ends it (assumes no mounts and no faults).
    pub uploads_in_flight: AtomicUsize,
    /// The most `uploads_in_flight` ever was.
    pub max_uploads_in_flight: AtomicUsize,
}

pub struct Proxy {
    pub port: u16,
    pub plan: Arc<Plan>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts the proxy on the current tokio runtime.
pub async fn start(upstream: SocketAddr, plan: Plan) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plan = Arc::new(plan);
    let p = plan.clone();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(handle(conn, upstream, p.clone(), port));
        }
    });
    Proxy { port, plan, task }
}

fn take(rules: &Mutex<Vec<(&'static str, &'static str)>>, method: &str, path: &str) -> bool {
    let mut rules = rules.lock().unwrap();
    match rules
        .iter()
        .position(|(m, p)| *m == method && path.contains(p))
    {
        Some(i) => {
            rules.remove(i);
            true
        }
        None => false,
    }
}

/// `(method, path, head text)` if the chunk starts a request.
fn request_head(chunk: &[u8]) -> Option<(String, String, String)> {
    let end = chunk.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&chunk[..end]).ok()?;
    let mut parts = line.split(' ');
    let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let head_end = chunk
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(chunk.len());
    let head = String::from_utf8_lossy(&chunk[..head_end]).into_owned();
    Some((method.to_string(), path.to_string(), head))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Repository name from `/v2/<name>/(blobs|manifests|tags|referrers)/...`.
fn repo_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|k| rest.find(k))
        .min()
        .map(|i| rest[..i].to_string())
}

async fn handle(conn: TcpStream, upstream: SocketAddr, plan: Arc<Plan>, port: u16) {
    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, cw) = conn.into_split();
    let (mut ur, mut uw) = up.into_split();
    let cw = Arc::new(tokio::sync::Mutex::new(cw));
    let cw2 = cw.clone();
    // HTTP/1.1 without pipelining: the next answer on this connection is the PUT's.
    let put_pending = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (put_done, plan2) = (put_pending.clone(), plan.clone());
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match ur.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if put_done.swap(false, Ordering::SeqCst) {
                        plan2.uploads_in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                    if cw2.lock().await.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = cw2.lock().await.shutdown().await;
    });
    let reply = |text: String| {
        let cw = cw.clone();
        async move {
            let _ = cw.lock().await.write_all(text.as_bytes()).await;
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if let Some((method, path, head)) = request_head(chunk) {
            plan.methods.lock().unwrap().push(method.clone());
            if path.contains("/blobs/uploads/") {
                if method == "POST" {
                    let now = plan.uploads_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    plan.max_uploads_in_flight.fetch_max(now, Ordering::SeqCst);
                } else if method == "PUT" && path.contains("digest=") {
                    put_pending.store(true, Ordering::SeqCst);
                }
            }
            if take(&plan.fail_503, &method, &path) {
                plan.fired_503.fetch_add(1, Ordering::SeqCst);
                reply("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".into()).await;
                continue;
            }
            if plan.bearer && path.starts_with("/token") {
                plan.token_requests.fetch_add(1, Ordering::SeqCst);
                let basic_ok = match &plan.token_basic {
                    None => true,
                    Some(up) => {
                        let want = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(up)
                        );
                        header(&head, "authorization") == Some(want.as_str())
                    }
                };
                if !basic_ok {
                    reply("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".into()).await;
                    continue;
                }
                let query = path.split_once('?').map_or("", |(_, q)| q);
                let scopes: Vec<String> = query
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("scope="))
                    .map(percent_decode)
                    .collect();
                plan.scopes_seen
                    .lock()
                    .unwrap()
                    .extend(scopes.iter().cloned());
                let body = format!(r#"{{"token":"tok|{}"}}"#, scopes.join("|"));
                reply(format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ))
                .await;
                continue;
            }
            if plan.bearer && path.starts_with("/v2/") {
                let repo = repo_of(&path);
                let ok = match (&repo, header(&head, "authorization")) {
                    (Some(r), Some(a)) => {
                        a.starts_with("Bearer tok|") && a.contains(&format!("repository:{r}:"))
                    }
                    (None, Some(a)) => a.starts_with("Bearer tok|"),
                    _ => false,
                };
                if !ok {
                    plan.challenges.fetch_add(1, Ordering::SeqCst);
                    let scope = repo
                        .map(|r| format!(",scope=\"repository:{r}:pull\""))
                        .unwrap_or_default();
                    reply(format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"kiln-test\"{scope}\r\n\r\n"
                    ))
                    .await;
                    continue;
                }
            }
            if take(&plan.drop, &method, &path) {
                plan.fired_drop.fetch_add(1, Ordering::SeqCst);
                let _ = uw.write_all(&chunk[..n / 2]).await;
                break;
            }
        }
        if uw.write_all(chunk).await.is_err() {
            break;
        }
    }
    back.abort();
}
