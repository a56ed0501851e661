//! A scriptable HTTP/1.1 server for faults nginx will not produce on demand.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server saw of one request.
#[derive(Debug, Clone, Default)]
struct Seen {
    range: Option<String>,
    authorization: Option<String>,
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Serve the body, honouring `Range` when `ranges` is true.
    Serve {
        /// Whether `Range` requests get `206`.
        ranges: bool,
    },
    /// Send the headers of the full body, then only `bytes` of it, then close.
    Cut {
        /// Body bytes sent before closing.
        bytes: usize,
    },
    /// Send the headers and `bytes` of the body, then stall for `stall`.
    Stall {
        /// Body bytes sent first.
        bytes: usize,
        /// How long to hold the connection silent.
        stall: Duration,
    },
    /// Answer with this status and an empty body.
    Status(u16),
    /// Serve these bytes instead of the body (a server that lies).
    Lie(Vec<u8>),
    /// Redirect (`302`) to this URL.
    Redirect(String),
}

/// A server that answers the `n`-th request with the `n`-th scripted [`Answer`] (the last
/// one repeats), serving `body`. It counts the requests it got.
#[derive(Debug)]
pub struct FaultServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    ranges_seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Starts the server on a free port.
    pub fn start(body: Vec<u8>, script: Vec<Answer>) -> Self {
        assert!(!script.is_empty(), "a script needs at least one answer");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let requests = Arc::new(AtomicUsize::new(0));
        let ranges_seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, ranges_seen, stop) = (
                Arc::clone(&requests),
                Arc::clone(&ranges_seen),
                Arc::clone(&stop),
            );
            let body = Arc::new(body);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (body, script) = (Arc::clone(&body), script.clone());
                            let (requests, ranges_seen, stop) = (
                                Arc::clone(&requests),
                                Arc::clone(&ranges_seen),
                                Arc::clone(&stop),
                            );
                            std::thread::spawn(move || {
                                serve_connection(
                                    stream,
                                    &body,
                                    &script,
                                    &requests,
                                    &ranges_seen,
                                    &stop,
                                );
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        FaultServer {
            port,
            requests,
            ranges_seen,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// How many requests arrived.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The `Range` header of each request, in order.
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.ranges_seen
            .lock()
            .expect("poisoned")
            .iter()
            .map(|s| s.range.clone())
            .collect()
    }

    /// The `Authorization` header of each request, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.ranges_seen
            .lock()
            .expect("poisoned")
            .iter()
            .map(|s| s.authorization.clone())
            .collect()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    body: &[u8],
    script: &[Answer],
    requests: &AtomicUsize,
    ranges_seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut range = None;
        let mut authorization = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("range") {
                    range = Some(value.trim().to_owned());
                } else if name.eq_ignore_ascii_case("authorization") {
                    authorization = Some(value.trim().to_owned());
                }
            }
        }
        let n = requests.fetch_add(1, Ordering::SeqCst);
        ranges_seen.lock().expect("poisoned").push(Seen {
            range: range.clone(),
            authorization,
        });
        let answer = script
            .get(n)
            .unwrap_or_else(|| script.last().expect("non-empty"));
        let keep_going = respond(&mut out, body, answer, range.as_deref(), stop);
        if !keep_going {
            return;
        }
    }
}

/// Parses `bytes=a-` or `bytes=a-b` against a body of `len` bytes.
fn parse_range(range: &str, len: usize) -> Option<(usize, usize)> {
    let spec = range.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: usize = a.parse().ok()?;
    let end = if b.is_empty() {
        len.checked_sub(1)?
    } else {
        b.parse::<usize>().ok()?.min(len.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

/// Writes one answer; returns whether the connection may serve another request.
fn respond(
    out: &mut TcpStream,
    body: &[u8],
    answer: &Answer,
    range: Option<&str>,
    stop: &AtomicBool,
) -> bool {
    let etag = "\"fault-etag\"";
    match answer {
        Answer::Status(code) => {
            let _ = write!(out, "HTTP/1.1 {code} Scripted\r\nContent-Length: 0\r\n\r\n");
            true
        }
        Answer::Serve { ranges } => {
            let slice = match range.and_then(|r| parse_range(r, body.len())) {
                Some((start, end)) if *ranges => {
                    let _ = write!(
                        out,
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\nETag: {etag}\r\n\r\n",
                        end - start + 1,
                        body.len()
                    );
                    &body[start..=end]
                }
                _ => {
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\n\r\n",
                        body.len()
                    );
                    body
                }
            };
            out.write_all(slice).is_ok()
        }
        Answer::Redirect(location) => {
            let _ = write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            );
            true
        }
        Answer::Lie(other) => {
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\n\r\n",
                other.len()
            );
            out.write_all(other).is_ok()
        }
        Answer::Cut { bytes } => {
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(&body[..(*bytes).min(body.len())]);
            let _ = out.flush();
            let _ = out.shutdown(std::net::Shutdown::Both);
            false
        }
        Answer::Stall { bytes, stall } => {
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(&body[..(*bytes).min(body.len())]);
            let _ = out.flush();
            let deadline = std::time::Instant::now() + *stall;
            while std::time::Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = out.shutdown(std::net::Shutdown::Both);
            false
        }
    }
}
