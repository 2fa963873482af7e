//! A TCP proxy on 127.0.0.1 that breaks the traffic between a client under test and a real server
//! in ways a test switches at run time: slow answers, refused connections, a server that dies
//! mid-answer, a connection cut in the middle of a request or just before one.
//!
//! It knows no protocol: it counts bytes in each direction. The one thing it infers is where a
//! request starts: the first bytes a client sends on a connection, or the first it sends after the
//! server has answered (HTTP/1.1 without pipelining, gRPC unary calls).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a [`FaultProxy`] treats the traffic it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as is.
    None,
    /// Wait this long before forwarding each chunk read from the server.
    Slow(Duration),
    /// Refuse to forward: accept connections and close them at once.
    Refuse,
    /// Forward this many more bytes from the server, then cut every connection and refuse new
    /// ones: a server that dies in the middle of a run.
    CutAfter(u64),
    /// Forward this many more bytes from the client, then cut the connection that carries them,
    /// in the middle of whatever request they belong to (the server sees a torn request). Only
    /// that connection: afterwards the proxy forwards as with [`Fault::None`].
    CutRequestAfter(u64),
    /// Once this many more bytes from the client have been forwarded, cut the connection on which
    /// the client starts its next request, before any byte of that request reaches the server
    /// (the server holds every request it got whole). Once: afterwards as [`Fault::None`].
    CutBeforeRequestAfter(u64),
}

/// A TCP proxy on 127.0.0.1 in front of a server, whose behaviour a test switches at run time;
/// stops forwarding when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` to connect to.
    pub addr: String,
    fault: Arc<Mutex<Fault>>,
    cuts: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// Which way a pipe forwards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

/// What a pipe does with one chunk it read.
enum Action {
    /// Forward the first this many bytes (all of them unless a cut falls inside), then go on.
    Forward(usize),
    /// Forward the first this many bytes, then cut the connection.
    CutAfter(usize),
    /// Cut without forwarding anything more.
    Stop,
}

struct Shared {
    fault: Arc<Mutex<Fault>>,
    cuts: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Per connection: the server sent something since the client last did, so the client's next
    /// bytes start a new request. True on a fresh connection.
    server_spoke: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy forwarding to `target` (`host:port`).
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let fault = Arc::new(Mutex::new(Fault::None));
        let cuts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, c, s, target) = (
            fault.clone(),
            cuts.clone(),
            stop.clone(),
            target.to_string(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                if *f.lock().expect("fault") == Fault::Refuse {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let server_spoke = Arc::new(AtomicBool::new(true));
                let shared = || Shared {
                    fault: f.clone(),
                    cuts: c.clone(),
                    stop: s.clone(),
                    server_spoke: server_spoke.clone(),
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(client, server, Direction::ClientToServer, shared());
                pipe(s2, c2, Direction::ServerToClient, shared());
            }
        });
        Self {
            addr,
            fault,
            cuts,
            stop,
        }
    }

    /// Switches the behaviour for data from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("fault") = fault;
    }

    /// The behaviour now (a one-time cut that happened reads [`Fault::None`] again).
    pub fn fault(&self) -> Fault {
        *self.fault.lock().expect("fault")
    }

    /// How many connections a [`Fault::CutRequestAfter`] or [`Fault::CutBeforeRequestAfter`] cut.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }

    /// `grpc://127.0.0.1:PORT`, for gRPC clients.
    pub fn url(&self) -> String {
        format!("grpc://{}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Decides what to do with `n` bytes read in `dir`, updating the fault's byte budget.
fn decide(dir: Direction, n: usize, shared: &Shared) -> Action {
    let starts_request = match dir {
        Direction::ClientToServer => shared.server_spoke.swap(false, Ordering::SeqCst),
        // Set before the answer reaches the client, so its next request cannot overtake it.
        Direction::ServerToClient => {
            shared.server_spoke.store(true, Ordering::SeqCst);
            false
        }
    };
    let len = n as u64;
    let mut g = shared.fault.lock().expect("fault");
    let cut_once = |g: &mut Fault| {
        *g = Fault::None;
        shared.cuts.fetch_add(1, Ordering::SeqCst);
    };
    match (dir, *g) {
        _ if shared.stop.load(Ordering::Relaxed) => Action::Stop,
        (_, Fault::Refuse) => Action::Stop,
        (Direction::ServerToClient, Fault::CutAfter(left)) => {
            if len < left {
                *g = Fault::CutAfter(left - len);
                Action::Forward(n)
            } else {
                // The chunk that crosses the budget is dropped whole (as this proxy always did);
                // from now on the server is "dead".
                *g = Fault::Refuse;
                Action::Stop
            }
        }
        (Direction::ClientToServer, Fault::CutRequestAfter(left)) => {
            if len < left {
                *g = Fault::CutRequestAfter(left - len);
                Action::Forward(n)
            } else {
                cut_once(&mut g);
                Action::CutAfter(usize::try_from(left).unwrap_or(n))
            }
        }
        (Direction::ClientToServer, Fault::CutBeforeRequestAfter(left)) => {
            if left == 0 && starts_request {
                cut_once(&mut g);
                Action::Stop
            } else {
                *g = Fault::CutBeforeRequestAfter(left.saturating_sub(len));
                Action::Forward(n)
            }
        }
        _ => Action::Forward(n),
    }
}

/// Forwards `from` to `to` on its own thread until either side closes or the fault cuts it.
fn pipe(mut from: TcpStream, mut to: TcpStream, dir: Direction, shared: Shared) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (forward, cut) = match decide(dir, n, &shared) {
                Action::Forward(k) => (k, false),
                Action::CutAfter(k) => (k, true),
                Action::Stop => (0, true),
            };
            if dir == Direction::ServerToClient {
                if let Fault::Slow(d) = *shared.fault.lock().expect("fault") {
                    std::thread::sleep(d);
                }
            }
            if forward > 0 && to.write_all(&buf[..forward]).is_err() {
                break;
            }
            if cut {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that answers each read with the same bytes.
    fn echo() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(c: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
        c.write_all(msg).ok()?;
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got).ok()?;
        Some(got)
    }

    #[test]
    fn cut_before_request_lets_whole_requests_through_then_cuts_the_next_once() {
        let proxy = FaultProxy::start(&echo());
        proxy.set(Fault::CutBeforeRequestAfter(3));
        let mut c = TcpStream::connect(&proxy.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Crosses the budget inside this request: it still goes through whole.
        assert_eq!(roundtrip(&mut c, b"hello").as_deref(), Some(&b"hello"[..]));
        assert_eq!(roundtrip(&mut c, b"next"), None, "next request not cut");
        assert_eq!(proxy.cuts(), 1);
        assert_eq!(proxy.fault(), Fault::None);
        let mut again = TcpStream::connect(&proxy.addr).unwrap();
        again
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(roundtrip(&mut again, b"ok").as_deref(), Some(&b"ok"[..]));
    }

    #[test]
    fn cut_request_forwards_exactly_the_budget() {
        // A server that reports how many bytes it got before the connection closed.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let _ = c.read_to_end(&mut got);
            tx.send(got).unwrap();
        });
        let proxy = FaultProxy::start(&addr);
        proxy.set(Fault::CutRequestAfter(3));
        let mut c = TcpStream::connect(&proxy.addr).unwrap();
        c.write_all(b"hello").unwrap();
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, b"hel", "the server must see the first 3 bytes only");
        assert_eq!(proxy.cuts(), 1);
        assert_eq!(proxy.fault(), Fault::None);
    }
}
