//! A scriptable HTTP/1.1 server for faults nginx will not produce on demand, and for bodies
//! held at a chosen byte until the test lets them go.
//!
//! A kill test needs the client in the middle of a download when it kills it, however busy
//! the machine is. A held body gives it that: the server sends the bytes up to the hold point,
//! says so ([`FaultServer::wait_held`]), and sends nothing more until
//! [`FaultServer::release`], so the download cannot end before the kill.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Hold;
use crate::holds::{self, Connections, Holds, Monitor};

/// The `ETag` of the body the server starts with.
const FIRST_ETAG: &str = "\"fault-etag\"";

/// Body bytes written at a time, and counted in the log after each write.
const PIECE: usize = 64 << 10;

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Serve the body, honouring `Range` (and `If-Range`) when `ranges` is true. This is the
    /// only answer a [`Hold`] applies to.
    Serve {
        /// Whether `Range` requests get `206`.
        ranges: bool,
    },
    /// Send the headers of the full body, then only `bytes` of it, then close.
    Cut {
        /// Body bytes sent before closing.
        bytes: usize,
    },
    /// Send the headers and `bytes` of the body, then stall for `stall`, then close.
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

/// One request as the server saw it, and what it sent back (like a line of nginx's access
/// log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path requested.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `If-Range` header, if any.
    pub if_range: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The response status (0 until the headers are sent).
    pub status: u16,
    /// Body bytes written to the connection so far (fewer than the body when the client went
    /// away, or while it is held).
    pub body_bytes: u64,
    /// Whether this response reached a [`Hold`].
    pub held: bool,
}

/// A server that answers the `n`-th request with the `n`-th scripted [`Answer`] (the last
/// one repeats), serving a body the test may replace. It logs every request ([`Self::log`]),
/// can hold bodies at a chosen byte ([`Self::hold`]).
#[derive(Debug)]
pub struct FaultServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the server's threads share: the state, and a condition variable notified on every
/// change a waiter may care about.
type Shared = Monitor<State>;

#[derive(Debug)]
struct State {
    body: Arc<Vec<u8>>,
    etag: String,
    versions: u64,
    holds: Holds,
    log: Vec<Served>,
    connections: Connections,
}

holds::server_state!(State);

impl FaultServer {
    /// Starts the server on a free port.
    pub fn start(body: Vec<u8>, script: Vec<Answer>) -> Self {
        assert!(!script.is_empty(), "a script needs at least one answer");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Monitor::new(
            "fault server",
            (),
            State {
                body: Arc::new(body),
                etag: FIRST_ETAG.to_owned(),
                versions: 1,
                holds: Holds::default(),
                log: Vec::new(),
                connections: Connections::default(),
            },
        ));
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                holds::accept_loop(&listener, &shared, move |stream, shared| {
                    serve_connection(stream, &script, shared);
                });
            })
        };
        FaultServer {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.addr.port(),
            path.trim_start_matches('/')
        )
    }

    /// Replaces the body; the `ETag` changes with it, so an `If-Range` with the old one gets
    /// the whole new body with `200`.
    pub fn set_body(&self, body: Vec<u8>) {
        self.shared.update(|s| {
            s.versions += 1;
            s.body = Arc::new(body);
            s.etag = format!("\"fault-etag-{}\"", s.versions);
        });
    }

    /// Arms a hold: from now on, bodies stop at `at` until [`Self::release`].
    pub fn hold(&self, at: Hold) {
        self.shared.hold(at);
    }

    /// Waits until a response has reached the armed hold, up to `timeout`; returns whether
    /// one has.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        self.shared.wait_held(timeout)
    }

    /// Disarms the hold: held responses send the rest of their bodies, and later ones are
    /// not held.
    pub fn release(&self) {
        self.shared.release();
    }

    /// Waits until every connection made so far is closed and its requests are complete in
    /// the log, up to `timeout`; returns whether they are. After a client has exited (or been
    /// killed, and any hold released), this makes the log final for everything it sent.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.shared.wait_idle(self.addr, timeout)
    }

    /// Every request so far, in the order they arrived.
    pub fn log(&self) -> Vec<Served> {
        self.shared.lock().log.clone()
    }

    /// How many requests arrived.
    pub fn requests(&self) -> usize {
        self.shared.lock().log.len()
    }

    /// The `Range` header of each request, in order.
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.log().into_iter().map(|s| s.range).collect()
    }

    /// The `Authorization` header of each request, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.log().into_iter().map(|s| s.authorization).collect()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        // Open connections are left to end by themselves: a held body ends at once.
        let _ = self.shared.stop();
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(stream: TcpStream, script: &[Answer], shared: &Shared) {
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
        let mut parts = request_line.split_whitespace();
        let mut seen = Served {
            method: parts.next().unwrap_or_default().to_owned(),
            path: parts.next().unwrap_or_default().to_owned(),
            range: None,
            if_range: None,
            authorization: None,
            status: 0,
            body_bytes: 0,
            held: false,
        };
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
                let value = Some(value.trim().to_owned());
                match name.to_ascii_lowercase().as_str() {
                    "range" => seen.range = value,
                    "if-range" => seen.if_range = value,
                    "authorization" => seen.authorization = value,
                    _ => {}
                }
            }
        }
        let (n, request) = shared.update(|state| {
            state.log.push(seen.clone());
            (state.log.len() - 1, seen)
        });
        let answer = script
            .get(n)
            .unwrap_or_else(|| script.last().expect("non-empty"));
        let mut response = Response {
            out: &mut out,
            shared,
            n,
        };
        if !response.answer(answer, &request) {
            let _ = out.shutdown(Shutdown::Both);
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

/// The response to request `n` on one connection; it keeps request `n`'s log entry up to
/// date.
struct Response<'a> {
    out: &'a mut TcpStream,
    shared: &'a Shared,
    n: usize,
}

impl Response<'_> {
    /// Writes one answer; returns whether the connection may serve another request.
    fn answer(&mut self, answer: &Answer, request: &Served) -> bool {
        let (body, etag) = {
            let state = self.shared.lock();
            (Arc::clone(&state.body), state.etag.clone())
        };
        let full = |len: usize| format!("Content-Length: {len}\r\nETag: {etag}\r\n");
        match answer {
            Answer::Status(code) => self.head(*code, "Scripted", "Content-Length: 0\r\n"),
            Answer::Redirect(location) => self.head(
                302,
                "Found",
                &format!("Location: {location}\r\nContent-Length: 0\r\n"),
            ),
            Answer::Lie(other) => {
                self.head(200, "OK", &full(other.len())) && self.body(other, 0, None)
            }
            Answer::Cut { bytes } => {
                let _ = self.head(200, "OK", &full(body.len()))
                    && self.body(&body[..(*bytes).min(body.len())], 0, None);
                false
            }
            Answer::Stall { bytes, stall } => {
                let _ = self.head(200, "OK", &full(body.len()))
                    && self.body(&body[..(*bytes).min(body.len())], 0, None);
                self.shared.wait_until(*stall, |s| s.holds.stopping());
                false
            }
            Answer::Serve { ranges } => {
                let fresh = request.if_range.as_ref().is_none_or(|v| *v == etag);
                let range = request
                    .range
                    .as_deref()
                    .filter(|_| *ranges && fresh)
                    .and_then(|r| parse_range(r, body.len()));
                let hold = self.shared.armed();
                match range {
                    Some((start, end)) => {
                        let headers = format!(
                            "Content-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\nETag: {etag}\r\n",
                            end - start + 1,
                            body.len()
                        );
                        self.head(206, "Partial Content", &headers)
                            && self.body(&body[start..=end], start as u64, hold)
                    }
                    None => self.head(200, "OK", &full(body.len())) && self.body(&body, 0, hold),
                }
            }
        }
    }

    /// Writes the status line and `headers`, and logs the status.
    fn head(&mut self, status: u16, reason: &str, headers: &str) -> bool {
        self.shared.update(|s| s.log[self.n].status = status);
        write!(self.out, "HTTP/1.1 {status} {reason}\r\n{headers}\r\n").is_ok()
    }

    /// Writes `bytes`, the part of the file from `offset`, stopping at `hold` if it falls
    /// inside them until the hold is released.
    fn body(&mut self, bytes: &[u8], offset: u64, hold: Option<Hold>) -> bool {
        let stop_at = hold.and_then(|h| h.stop_in(offset, bytes.len() as u64));
        let Some(stop_at) = stop_at else {
            return self.counted(bytes);
        };
        let stop_at = usize::try_from(stop_at).expect("inside the body");
        self.counted(&bytes[..stop_at])
            && self.out.flush().is_ok()
            && self.held()
            && self.counted(&bytes[stop_at..])
    }

    /// Says the hold is reached and waits for its release; `false` when the server stops
    /// first.
    fn held(&mut self) -> bool {
        let n = self.n;
        self.shared.wait_release(|s| s.log[n].held = true)
    }

    /// Writes `bytes` a piece at a time, counting them in the log.
    fn counted(&mut self, bytes: &[u8]) -> bool {
        for piece in bytes.chunks(PIECE) {
            if self.out.write_all(piece).is_err() {
                return false;
            }
            let mut state = self.shared.lock();
            state.log[self.n].body_bytes += piece.len() as u64;
            if state.holds.stopping() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn body() -> Vec<u8> {
        crate::random_bytes(300_000, 7)
    }

    /// Sends `GET /m` with `headers` and returns the stream, ready to read the answer.
    fn get(server: &FaultServer, headers: &str) -> TcpStream {
        let mut s = TcpStream::connect(server.addr).expect("connecting");
        write!(s, "GET /m HTTP/1.1\r\nHost: x\r\n{headers}\r\n").expect("sending");
        s
    }

    /// Reads one answer: the status, the headers (lowercase names) and `Content-Length` bytes
    /// of body, or as many as came before the connection closed.
    fn read_answer(s: TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).expect("status line");
        let status = line.split_whitespace().nth(1).expect("a status").parse();
        let mut headers = Vec::new();
        loop {
            line.clear();
            r.read_line(&mut line).expect("a header");
            let Some((k, v)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
        let len: u64 = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("a length"));
        let mut body = Vec::new();
        let _ = r.take(len).read_to_end(&mut body);
        (status.expect("a numeric status"), headers, body)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_single_stream_held_after_some_bytes_sends_the_rest_on_release() {
        let body = body();
        let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
        server.hold(Hold::AfterBytes(100_000));
        let client = get(&server, "");
        let reader = std::thread::spawn(move || read_answer(client));
        assert!(server.wait_held(WAIT), "the hold was not reached");
        let log = server.log();
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].status, log[0].body_bytes), (200, 100_000));
        assert!(log[0].held);
        assert!(!reader.is_finished(), "the client got the whole body");

        server.release();
        let (status, _, got) = reader.join().expect("reader");
        assert_eq!(status, 200);
        assert!(got == body, "the body differs after the release");
        assert!(server.wait_idle(WAIT));
        assert_eq!(server.log()[0].body_bytes, 300_000);
    }

    #[test]
    fn a_hold_at_an_offset_stops_only_the_range_that_covers_it() {
        let body = body();
        let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
        server.hold(Hold::AtOffset(250_000));
        let first = get(&server, "Range: bytes=0-199999\r\n");
        let (status, headers, got) = read_answer(first);
        assert_eq!(status, 206);
        assert_eq!(
            header(&headers, "content-range"),
            Some("bytes 0-199999/300000")
        );
        assert!(got == body[..200_000], "the first range differs");
        // The log counts a piece once it is written: the client can have it first.
        assert!(server.wait_idle(WAIT));

        let second = get(&server, "Range: bytes=200000-\r\n");
        let reader = std::thread::spawn(move || read_answer(second));
        assert!(server.wait_held(WAIT), "the hold was not reached");
        let log = server.log();
        assert_eq!(log.len(), 2);
        assert!(!log[0].held && log[1].held, "{log:?}");
        assert_eq!(log[0].body_bytes, 200_000);
        assert_eq!(log[1].body_bytes, 50_000, "the bytes before the offset");
        assert_eq!(log[1].range.as_deref(), Some("bytes=200000-"));

        server.release();
        let (status, _, got) = reader.join().expect("reader");
        assert_eq!(status, 206);
        assert!(got == body[200_000..], "the second range differs");
        assert!(server.wait_idle(WAIT));
        assert_eq!(server.log()[1].body_bytes, 100_000);
    }

    #[test]
    fn a_body_that_never_reaches_the_hold_is_served_whole() {
        let body = body();
        let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
        server.hold(Hold::AtOffset(300_000));
        let (status, _, got) = read_answer(get(&server, ""));
        assert_eq!(status, 200);
        assert!(got == body);
        assert!(!server.wait_held(Duration::from_millis(50)));
    }

    #[test]
    fn a_client_gone_while_held_is_logged_with_what_was_sent() {
        let server = FaultServer::start(body(), vec![Answer::Serve { ranges: true }]);
        server.hold(Hold::AtOffset(120_000));
        let client = get(&server, "Range: bytes=20000-\r\n");
        assert!(server.wait_held(WAIT), "the hold was not reached");
        drop(client);
        server.release();
        assert!(server.wait_idle(WAIT), "the connection is still open");
        let log = server.log();
        assert!(
            (100_000..300_000).contains(&log[0].body_bytes),
            "{} bytes logged",
            log[0].body_bytes
        );
        // Not held again after the release.
        let (status, _, got) = read_answer(get(&server, "Range: bytes=20000-\r\n"));
        assert_eq!((status, got.len()), (206, 280_000));
        assert!(!server.log()[1].held);
    }

    #[test]
    fn dropping_the_server_ends_a_held_response() {
        let server = FaultServer::start(body(), vec![Answer::Serve { ranges: true }]);
        server.hold(Hold::AfterBytes(1000));
        let client = get(&server, "");
        assert!(server.wait_held(WAIT));
        drop(server);
        let (status, _, got) = read_answer(client);
        assert_eq!((status, got.len()), (200, 1000));
    }

    #[test]
    fn if_range_with_an_old_etag_gets_the_whole_new_body() {
        let server = FaultServer::start(body(), vec![Answer::Serve { ranges: true }]);
        let (_, headers, _) = read_answer(get(&server, "Range: bytes=0-9\r\n"));
        let old = header(&headers, "etag").expect("an etag").to_owned();
        assert_eq!(old, FIRST_ETAG);
        let (status, _, got) = read_answer(get(
            &server,
            &format!("Range: bytes=10-\r\nIf-Range: {old}\r\n"),
        ));
        assert_eq!((status, got.len()), (206, 299_990));

        let new = crate::random_bytes(1000, 8);
        server.set_body(new.clone());
        let (status, headers, got) = read_answer(get(
            &server,
            &format!("Range: bytes=10-\r\nIf-Range: {old}\r\n"),
        ));
        assert_eq!(status, 200);
        assert_ne!(header(&headers, "etag"), Some(old.as_str()));
        assert!(got == new);
        // The log counts a piece once it is written: the client can have it first.
        assert!(server.wait_idle(WAIT));
        let log = server.log();
        assert_eq!(log[2].if_range.as_deref(), Some(old.as_str()));
        assert_eq!((log[2].status, log[2].body_bytes), (200, 1000));
    }
}
