//! [`GcsUploads`]: Cloud Storage's upload endpoint as Google documents it, for what
//! fake-gcs-server (1.54, the one the tests run) does not do: a session's status.
//!
//! fake-gcs-server takes a resumable session's chunks, but answers the status query
//! (`Content-Range: bytes */TOTAL`) by completing the object with the bytes it has, and with a
//! `Range` one byte too long. Cloud Storage answers it with `308` and `Range: bytes=0-N`, and
//! keeps the session. This server does that, and can cut a chunk short: keep its first bytes and
//! answer `503`, as a connection that broke mid-chunk leaves a session, so that a test sees a
//! client go on from what the server kept.
//!
//! ```text
//! POST /upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=N   → 200, Location: session
//! PUT  <session>  Content-Range: bytes A-B/(TOTAL|*)                 → 308 Range, or 200 at the end
//! PUT  <session>  Content-Range: bytes */TOTAL                       → 308 Range: what it has
//! DELETE <session>                                                   → 499, session gone
//! POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=N       → 200, the object
//! ```
//!
//! Objects are kept in memory ([`GcsUploads::object`]); every request is logged with its
//! `Content-Range` and the status it got ([`GcsUploads::log`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::wire::{self, Head};

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's `uploadType`, if any.
    pub upload_type: Option<String>,
    /// The `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Default)]
struct State {
    log: Vec<UploadRequest>,
    /// Sessions by id: the object's name and the bytes kept.
    sessions: HashMap<String, (String, Vec<u8>)>,
    objects: HashMap<String, Vec<u8>>,
    next_session: u64,
    /// Chunk `PUT`s seen so far, and the cuts to make: (the chunk's number from 1, bytes kept).
    chunks: usize,
    cuts: Vec<(usize, usize)>,
}

/// The upload endpoint on `127.0.0.1:<port>`; stopped on drop.
#[derive(Debug)]
pub struct GcsUploads {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GcsUploads {
    /// Starts the server, with no objects.
    pub fn start() -> io::Result<GcsUploads> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || serve(stream, addr, &state));
                }
            })
        };
        Ok(GcsUploads {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `number`th chunk `PUT` from now on (counting from 1, status queries not counted)
    /// keeps its first `keep` bytes and is answered `503`.
    pub fn cut_chunk(&self, number: usize, keep: usize) {
        let mut state = lock(&self.state);
        let at = state.chunks + number;
        state.cuts.push((at, keep));
    }

    /// The bytes of the object `name`, once its upload completed.
    pub fn object(&self, name: &str) -> Option<Vec<u8>> {
        lock(&self.state).objects.get(name).cloned()
    }

    /// Every request so far, in order.
    pub fn log(&self) -> Vec<UploadRequest> {
        lock(&self.state).log.clone()
    }
}

impl Drop for GcsUploads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Answers the requests of one connection until the client closes it.
fn serve(stream: TcpStream, addr: SocketAddr, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(wire::READ_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    while let Ok(Some(head)) = Head::read(&mut reader) {
        let mut body = Vec::new();
        let len = head.content_length().unwrap_or(0);
        if (&mut reader).take(len).read_to_end(&mut body).is_err() {
            return;
        }
        let (status, headers, text) = answer(&head, body, addr, &mut lock(state));
        let mut reply = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            if status == 308 {
                "Resume Incomplete"
            } else {
                "Answer"
            },
            text.len()
        );
        for (name, value) in headers {
            let _ = write!(reply, "{name}: {value}\r\n");
        }
        reply.push_str("\r\n");
        reply.push_str(&text);
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The answer to one request: status, headers, body; the request logged.
fn answer(
    head: &Head,
    body: Vec<u8>,
    addr: SocketAddr,
    state: &mut State,
) -> (u16, Vec<(&'static str, String)>, String) {
    let mut first = head.first.split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| wire::percent_decode(v))
    };
    let content_range = head.get("content-range").map(str::to_owned);
    let (status, headers, text) = match (method.as_str(), param("upload_id")) {
        ("DELETE", Some(id)) => {
            state.sessions.remove(&id);
            (499, Vec::new(), String::new())
        }
        ("PUT", Some(id)) => chunk(state, &id, content_range.as_deref(), &body),
        ("POST", None) => match (param("uploadType").as_deref(), param("name")) {
            (Some("resumable"), Some(name)) => {
                state.next_session += 1;
                let id = format!("session-{}", state.next_session);
                state.sessions.insert(id.clone(), (name, Vec::new()));
                let location = format!("http://{addr}{path}?uploadType=resumable&upload_id={id}");
                (200, vec![("Location", location)], String::new())
            }
            (Some("media"), Some(name)) => {
                let text = object_json(&name, body.len());
                state.objects.insert(name, body);
                (200, Vec::new(), text)
            }
            _ => (400, Vec::new(), String::new()),
        },
        _ => (404, Vec::new(), String::new()),
    };
    state.log.push(UploadRequest {
        method,
        path: path.to_owned(),
        upload_type: param("uploadType"),
        content_range,
        authorization: head.get("authorization").map(str::to_owned),
        status,
    });
    (status, headers, text)
}

/// A `PUT` to the session `id`: a chunk, or a status query.
fn chunk(
    state: &mut State,
    id: &str,
    range: Option<&str>,
    body: &[u8],
) -> (u16, Vec<(&'static str, String)>, String) {
    let Some(range) = range.and_then(|r| r.strip_prefix("bytes ")) else {
        return (400, Vec::new(), String::new());
    };
    let Some((span, total)) = range.split_once('/') else {
        return (400, Vec::new(), String::new());
    };
    let total: Option<usize> = total.parse().ok();
    let cut = if span == "*" {
        None
    } else {
        state.chunks += 1;
        let number = state.chunks;
        state
            .cuts
            .iter()
            .position(|(at, _)| *at == number)
            .map(|i| state.cuts.remove(i).1)
    };
    let Some((name, kept)) = state.sessions.get_mut(id) else {
        return (404, Vec::new(), String::new());
    };
    let have = |kept: &Vec<u8>| {
        if kept.is_empty() {
            Vec::new()
        } else {
            vec![("Range", format!("bytes=0-{}", kept.len() - 1))]
        }
    };
    if span != "*" {
        let start: Option<usize> = span.split('-').next().and_then(|s| s.parse().ok());
        if start != Some(kept.len()) {
            return (400, Vec::new(), String::new());
        }
        if let Some(keep) = cut {
            kept.extend_from_slice(&body[..keep.min(body.len())]);
            return (503, Vec::new(), String::new());
        }
        kept.extend_from_slice(body);
    }
    match total {
        Some(total) if total == kept.len() => {
            let (name, bytes) = (name.clone(), std::mem::take(kept));
            state.sessions.remove(id);
            let text = object_json(&name, bytes.len());
            state.objects.insert(name, bytes);
            (200, Vec::new(), text)
        }
        _ => (308, have(kept), String::new()),
    }
}

/// An object's resource, of the fields a client reads.
fn object_json(name: &str, size: usize) -> String {
    serde_json::json!({ "kind": "storage#object", "name": name, "size": size.to_string() })
        .to_string()
}
