//! The one HTTP/1.1 test receiver, on 127.0.0.1 only: records every request (method, path,
//! headers, body, when), reads Content-Length and chunked bodies, keeps connections alive,
//! and answers as told: 2xx, 4xx, 5xx, 429 or 503 with Retry-After, hang (read the request,
//! never answer), or down (503 to everything, nothing recorded). A receiver that is not
//! there at all: [`free_port`], later [`Receiver::on_port`].

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// 429 or 503 with `Retry-After: SECS`.
    RetryAfter(u16, u64),
    /// Read the request, never answer (until the receiver is dropped).
    Hang,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// In the order sent, names as sent; [`Request::header`] looks one up by any case.
    pub headers: Vec<(String, String)>,
    /// The body, Content-Length or de-chunked, as text (tunerd sends JSON: UTF-8).
    pub body: String,
    /// When its last byte was read.
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    /// The `webhook-id` header, empty without one.
    pub fn id(&self) -> String {
        self.header("webhook-id").unwrap_or_default().to_string()
    }
}

struct ReceiverState {
    requests: Mutex<Vec<Request>>,
    arrived: Condvar,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    down: AtomicBool,
    stop: AtomicBool,
    conns: Mutex<Vec<JoinHandle<()>>>,
}

/// An HTTP/1.1 server on 127.0.0.1 that records every request. Stopped on drop, its
/// connections too (also one told to hang).
pub struct Receiver {
    pub port: u16,
    state: Arc<ReceiverState>,
    accept: Option<JoinHandle<()>>,
}

/// A port nobody listens on (bound, then closed): "the receiver is down".
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("addr").port()
}

impl Receiver {
    /// On a free port.
    pub fn start() -> Receiver {
        Receiver::on_port(0)
    }

    /// On `port` (one from [`free_port`]: the receiver that was down comes up).
    pub fn on_port(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(ReceiverState {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::Status(200)),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let st = Arc::clone(&state);
        let accept = thread::spawn(move || {
            while !st.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let st2 = Arc::clone(&st);
                        let h = thread::spawn(move || serve(stream, &st2));
                        st.conns.lock().unwrap_or_else(|e| e.into_inner()).push(h);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver {
            port,
            state,
            accept: Some(accept),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The answer to the next request not yet answered (a queue: several answer several).
    pub fn push(&self, reply: Reply) {
        self.state
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(reply);
    }

    /// The answer when nothing is pushed; 200 at start.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock().unwrap_or_else(|e| e.into_inner()) = reply;
    }

    /// Down while listening: every request is read and answered 503, and not recorded.
    /// (A receiver that does not listen at all: [`free_port`], then [`Receiver::on_port`].)
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Every request recorded so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `n` requests arrived; returns them all.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut reqs = self
            .state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while reqs.len() < n {
            let now = Instant::now();
            assert!(
                now < deadline,
                "receiver got {} of {n} requests in {timeout:?}",
                reqs.len()
            );
            reqs = self
                .state
                .arrived
                .wait_timeout(reqs, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        reqs.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let conns: Vec<_> = self
            .state
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for h in conns {
            let _ = h.join();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads until `buf` holds `want` bytes; false when the peer closed or the receiver stops.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, want: usize, st: &ReceiverState) -> bool {
    let mut chunk = [0u8; 8192];
    while buf.len() < want {
        if st.stop.load(Ordering::SeqCst) {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

/// One connection: requests one after the other (keep-alive) until the client closes, asks
/// for `Connection: close`, or the receiver stops.
fn serve(mut stream: TcpStream, st: &ReceiverState) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = Vec::new();
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let want = buf.len() + 1;
            if !fill(&mut stream, &mut buf, want, st) {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let path = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        buf.drain(..head_end + 4);
        // The body: Content-Length or chunked.
        let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&buf, b"\r\n") {
                        break i;
                    }
                    let want = buf.len() + 1;
                    if !fill(&mut stream, &mut buf, want, st) {
                        return;
                    }
                };
                let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or(0);
                buf.drain(..line_end + 2);
                if !fill(&mut stream, &mut buf, size + 2, st) {
                    return;
                }
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            let len: usize = get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if !fill(&mut stream, &mut buf, len, st) {
                return;
            }
            buf.drain(..len).collect()
        };
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if st.down.load(Ordering::SeqCst) {
            let response = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
            if stream.write_all(response.as_bytes()).is_err() || close {
                return;
            }
            continue;
        }
        // The answer is decided before the request is shown to the test, so a test that
        // scripts the next answer after seeing this request never changes this one's.
        let reply = st
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .unwrap_or_else(|| st.default.lock().unwrap_or_else(|e| e.into_inner()).clone());
        {
            let mut reqs = st.requests.lock().unwrap_or_else(|e| e.into_inner());
            reqs.push(Request {
                method,
                path,
                headers,
                body: String::from_utf8(body)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                at: Instant::now(),
            });
            st.arrived.notify_all();
        }
        let (status, extra) = match reply {
            Reply::Hang => {
                while !st.stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            Reply::Status(s) => (s, String::new()),
            Reply::RetryAfter(s, secs) => (s, format!("Retry-After: {secs}\r\n")),
        };
        let text = format!("status {status}\n");
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}{}\r\n{text}",
            text.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}
