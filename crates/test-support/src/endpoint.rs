//! [`Endpoint`]: the small HTTP/1.1 server under the stand-ins that answer from a state of
//! their own: the AWS credential endpoints, Entra ID's token endpoint, Azure's instance
//! metadata service, the blob endpoint of [`crate::FakeBlobs`], Google's token services and
//! Cloud Storage's upload endpoint.
//!
//! It listens on `127.0.0.1:<free port>` and takes keep-alive connections, one thread each.
//! Each request is read whole (its body framed by `Content-Length`), handed with its body to
//! the stand-in's handler along with the stand-in's state, logged with the status it got
//! ([`EndpointRequest`]) before it is answered, so the log is complete once the client has
//! its answer, and answered with what the handler said ([`Response`]). Stopped on drop.
//!
//! Servers that relay bytes or hold a body mid-way (the fault server, the proxies, the
//! registry's front) are other things and do not use it.

use std::fmt::Write as _;
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::wire::{self, Head};

/// One request an endpoint received, and the status it answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest {
    /// `GET`, `PUT`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The header fields, as sent.
    pub headers: Vec<(String, String)>,
    /// The query's and the form body's parameters, decoded, in order (query first).
    pub params: Vec<(String, String)>,
    /// The status the endpoint answered with.
    pub status: u16,
}

impl EndpointRequest {
    /// The first header called `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first parameter called `name` (exact case, as AWS has it).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What an endpoint sends back.
pub(crate) struct Response {
    pub(crate) status: u16,
    /// The status line's reason; the usual one for the status when `None`.
    pub(crate) reason: Option<&'static str>,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Response {
            status,
            reason: None,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(crate) fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status, "text/plain", body)
    }

    /// This response with the header `name: value` too.
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the threads of an endpoint share: the log and the stand-in's state.
struct Shared<S> {
    log: Vec<EndpointRequest>,
    state: S,
}

/// A stand-in's answer to a request: the log entry before its status is known, the body
/// (which the log does not keep), and the stand-in's state.
type Handler<S> = dyn Fn(&EndpointRequest, &[u8], &mut S) -> Response + Send + Sync;

/// The server on `127.0.0.1:<port>`, holding a stand-in's state `S`; stopped on drop.
pub(crate) struct Endpoint<S> {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared<S>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<S> std::fmt::Debug for Endpoint<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<S: Send + 'static> Endpoint<S> {
    /// Starts the server on a free port, with `state`, answering every request with `handler`.
    pub(crate) fn start(
        state: S,
        handler: impl Fn(&EndpointRequest, &[u8], &mut S) -> Response + Send + Sync + 'static,
    ) -> io::Result<Endpoint<S>> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared {
            log: Vec::new(),
            state,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler<S>> = Arc::new(handler);
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (shared, handler) = (Arc::clone(&shared), Arc::clone(&handler));
                    std::thread::spawn(move || serve(stream, &shared, &*handler));
                }
            })
        };
        Ok(Endpoint {
            addr,
            shared,
            stop,
            thread: Some(thread),
        })
    }
}

impl<S> Endpoint<S> {
    /// `127.0.0.1:<port>`.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, with no `/` after it.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/<path>` (`path` with or without its leading `/`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.origin(), path.trim_start_matches('/'))
    }

    /// Every request so far, in the order they arrived, with the status each got.
    pub(crate) fn log(&self) -> Vec<EndpointRequest> {
        lock(&self.shared).log.clone()
    }

    /// `f` of the stand-in's state, which no request sees meanwhile.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut lock(&self.shared).state)
    }
}

impl<S> Drop for Endpoint<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The shared state, even after a handler panicked with it (the log still tells the test
/// what came before).
fn lock<S>(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Answers the requests of one connection until the client closes it.
fn serve<S>(stream: TcpStream, shared: &Mutex<Shared<S>>, handler: &Handler<S>) {
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
        let mut parts = head.first.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut params = form_decode(query);
        let is_form = head
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            params.extend(form_decode(&String::from_utf8_lossy(&body)));
        }
        let mut request = EndpointRequest {
            method,
            path: path.to_owned(),
            headers: head.headers.clone(),
            params,
            status: 0,
        };
        let is_head = request.method == "HEAD";
        let response = {
            let mut shared = lock(shared);
            let response = handler(&request, &body, &mut shared.state);
            request.status = response.status;
            shared.log.push(request);
            response
        };
        let close = head
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let mut text = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            response.status,
            response.reason.unwrap_or_else(|| reason(response.status)),
            response.content_type,
            response.body.len()
        );
        for (name, value) in &response.headers {
            let _ = write!(text, "{name}: {value}\r\n");
        }
        if close {
            text.push_str("Connection: close\r\n");
        }
        text.push_str("\r\n");
        // A `HEAD` is answered with the length of the body it would have had, and no body.
        if !is_head {
            text.push_str(&response.body);
        }
        if out.write_all(text.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// The usual reason of `status`, of those the stand-ins answer.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// `a=b&c=d` decoded (`+` is a space, `%XX` a byte).
fn form_decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (wire::percent_decode(k), wire::percent_decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Body;

    /// An endpoint that counts the requests it answers and echoes their parameters.
    fn counter() -> io::Result<Endpoint<usize>> {
        Endpoint::start(0, |r: &EndpointRequest, body: &[u8], n: &mut usize| {
            *n += 1;
            let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Response::text(200, format!("{n} {} {}", params.join(","), body.len()))
                .with_header("X-Count", n.to_string())
        })
    }

    #[test]
    fn one_connection_carries_several_requests() -> io::Result<()> {
        let endpoint = counter()?;
        let stream = TcpStream::connect(endpoint.addr())?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        for expected in ["1  0", "2  0"] {
            out.write_all(b"GET /count HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let head = Head::read(&mut reader)?.expect("an answer");
            assert_eq!(head.status(), 200);
            let mut body = Vec::new();
            (&mut reader)
                .take(head.content_length().expect("a length"))
                .read_to_end(&mut body)?;
            assert_eq!(String::from_utf8_lossy(&body), expected);
        }
        assert_eq!(endpoint.log().len(), 2);
        assert_eq!(endpoint.with(|n| *n), 2);
        Ok(())
    }

    #[test]
    fn the_query_and_a_form_body_are_parameters_and_a_head_has_no_body() -> io::Result<()> {
        let endpoint = counter()?;
        let host = endpoint.addr().to_string();
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let got = wire::exchange(&host, "POST", "/p?a=1", &form, Body::Bytes(b"b=x+y&c=%2F"))?;
        assert_eq!(
            (got.status, got.text().as_str()),
            (200, "1 a=1,b=x y,c=/ 11")
        );
        assert_eq!(got.header("X-Count"), Some("1"));
        let json = [("Content-Type", "application/json")];
        let got = wire::exchange(&host, "POST", "/p", &json, Body::Bytes(b"d=1"))?;
        assert_eq!(got.text(), "2  3");
        let got = wire::exchange(&host, "HEAD", "/p", &[], Body::None)?;
        assert_eq!((got.status, got.body.len()), (200, 0));
        assert_eq!(got.header("Content-Length"), Some("4"));

        let log = endpoint.log();
        assert_eq!(
            log.iter()
                .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
                .collect::<Vec<_>>(),
            [
                ("POST", "/p", 200),
                ("POST", "/p", 200),
                ("HEAD", "/p", 200)
            ]
        );
        assert_eq!(log[0].param("b"), Some("x y"));
        assert_eq!(log[1].param("d"), None);
        assert_eq!(log[0].header("content-type"), Some(form[0].1));
        Ok(())
    }
}
