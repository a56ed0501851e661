//! A reverse proxy in front of a real server that lies about some bodies: a server whose
//! bytes are not the ones its headers (`ETag`, the Hub's sha256) describe.
//!
//! It serves one request per connection (`Connection: close` both ways), reads the whole
//! upstream answer, and for a `GET` whose path contains the chosen substring flips one byte
//! in the middle of a successful body before sending it on, with every header kept (the
//! `ETag` still names the true content). Other requests pass through unchanged.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wire::{self, Head};

/// One request the proxy forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    /// The upstream status (0 when upstream could not be reached).
    pub status: u16,
    /// Whether a byte of the body was flipped.
    pub lied: bool,
}

/// A proxy on `127.0.0.1:<free port>` forwarding to `upstream`; stopped on drop.
#[derive(Debug)]
pub struct LyingProxy {
    port: u16,
    requests: Arc<Mutex<Vec<ProxiedRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What a connection needs to know.
#[derive(Debug)]
struct Route {
    /// `127.0.0.1:<port>` of the upstream server.
    upstream: String,
    /// `127.0.0.1:<port>` of the proxy, for `Location` headers.
    own: String,
    /// The substring of a `GET` path whose body is corrupted.
    lie_on: String,
}

impl LyingProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:<port>`, as [`crate::Olah::endpoint`]
    /// gives it) that corrupts the body of every successful `GET` whose path contains
    /// `path_substring` (e.g. `/resolve/` plus a file name).
    pub fn start(upstream: &str, path_substring: &str) -> Self {
        let authority = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the upstream is plain `http://host:port`, not {upstream}"))
            .trim_end_matches('/')
            .to_owned();
        assert!(
            !authority.contains('/'),
            "the upstream is `http://host:port`, without a path: {upstream}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let route = Arc::new(Route {
            upstream: authority,
            own: format!("127.0.0.1:{port}"),
            lie_on: path_substring.to_owned(),
        });
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (route, requests) = (Arc::clone(&route), Arc::clone(&requests));
                            std::thread::spawn(move || proxy_one(stream, &route, &requests));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        LyingProxy {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`: what `HF_ENDPOINT` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests forwarded so far, in the order they were answered.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.requests.lock().expect("poisoned").clone()
    }

    /// How many bodies were corrupted so far.
    pub fn lies(&self) -> usize {
        self.requests().iter().filter(|r| r.lied).count()
    }
}

impl Drop for LyingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a body framed by `head`: chunked, by length, or (for a response) to the end.
fn read_body(reader: &mut impl BufRead, head: &Head, to_eof: bool) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if head.chunked() {
        return wire::read_chunked(reader);
    } else if let Some(len) = head.content_length() {
        body.resize(
            usize::try_from(len).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            0,
        );
        reader.read_exact(&mut body)?;
    } else if to_eof {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Serves one connection: one request, forwarded, recorded, answered, closed.
fn proxy_one(
    client: TcpStream,
    route: &Route,
    requests: &Mutex<Vec<ProxiedRequest>>,
) -> Option<()> {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(client.try_clone().ok()?);
    let request = Head::read(&mut reader).ok()??;
    let body = read_body(&mut reader, &request, false).ok()?;
    let mut parts = request.first.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut client = client;

    let Some((status, response, mut response_body)) = forward(route, &request, &body) else {
        requests.lock().expect("poisoned").push(ProxiedRequest {
            method,
            path,
            status: 0,
            lied: false,
        });
        let _ = client.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return Some(());
    };
    let lied = method == "GET"
        && path.contains(&route.lie_on)
        && (200..300).contains(&status)
        && !response_body.is_empty();
    if lied {
        let middle = response_body.len() / 2;
        response_body[middle] ^= 0xff;
    }
    let mut out = Vec::with_capacity(response_body.len() + 512);
    out.extend_from_slice(response.first.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &response.headers {
        if wire::hop_by_hop(name) {
            continue;
        }
        let value = if name.eq_ignore_ascii_case("location") {
            value.replace(&route.upstream, &route.own)
        } else {
            value.clone()
        };
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if method == "HEAD" {
        // A HEAD answer states the length of the body a GET would get.
        if let Some(len) = response.get("content-length") {
            out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
        }
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n", response_body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    if method != "HEAD" {
        out.extend_from_slice(&response_body);
    }
    // Recorded before the answer leaves, so that a client that has it sees the record.
    requests.lock().expect("poisoned").push(ProxiedRequest {
        method,
        path,
        status,
        lied,
    });
    let _ = client.write_all(&out);
    let _ = client.flush();
    let _ = client.shutdown(std::net::Shutdown::Write);
    Some(())
}

/// Sends `request` upstream with `Connection: close`; returns the status, head and body.
fn forward(route: &Route, request: &Head, body: &[u8]) -> Option<(u16, Head, Vec<u8>)> {
    let upstream = TcpStream::connect(&route.upstream).ok()?;
    let _ = upstream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut head = Vec::with_capacity(1024);
    head.extend_from_slice(request.first.as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &request.headers {
        if wire::hop_by_hop(name) || name.eq_ignore_ascii_case("host") {
            continue;
        }
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    head.extend_from_slice(format!("Host: {}\r\n", route.upstream).as_bytes());
    if !body.is_empty() || request.get("content-length").is_some() {
        head.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    head.extend_from_slice(body);
    let mut writer = upstream.try_clone().ok()?;
    writer.write_all(&head).ok()?;
    let mut reader = BufReader::new(upstream);
    let response = Head::read(&mut reader).ok()??;
    let status: u16 = response.first.split(' ').nth(1)?.parse().ok()?;
    let is_head = request.first.starts_with("HEAD ");
    let response_body = if is_head || status < 200 || status == 204 || status == 304 {
        Vec::new()
    } else {
        read_body(&mut reader, &response, true).ok()?
    };
    Some((status, response, response_body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot upstream answering every request with `body`, chunked.
    fn chunked_upstream(body: &'static [u8]) -> (String, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let head = Head::read(&mut reader).unwrap().unwrap();
                seen.push(head.first.clone());
                let mut out = stream;
                let (a, b) = body.split_at(body.len() / 3);
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                    a.len()
                )
                .unwrap();
                out.write_all(a).unwrap();
                write!(out, "\r\n{:x}\r\n", b.len()).unwrap();
                out.write_all(b).unwrap();
                out.write_all(b"\r\n0\r\n\r\n").unwrap();
            }
            seen
        });
        (format!("http://127.0.0.1:{port}"), handle)
    }

    fn get(endpoint: &str, path: &str) -> (String, Vec<u8>) {
        let authority = endpoint.strip_prefix("http://").unwrap();
        let mut stream = TcpStream::connect(authority).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {authority}\r\n\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let head = Head::read(&mut reader).unwrap().unwrap();
        let body = read_body(&mut reader, &head, true).unwrap();
        (head.get("etag").unwrap_or_default().to_owned(), body)
    }

    #[test]
    fn flips_one_byte_of_matching_gets_only() {
        let body: &[u8] = b"0123456789abcdefghij";
        let (upstream, server) = chunked_upstream(body);
        let proxy = LyingProxy::start(&upstream, "/resolve/");
        let (etag, honest) = get(&proxy.endpoint(), "/api/x");
        assert_eq!(etag, "\"x\"");
        assert_eq!(honest, body);
        let (_, lie) = get(&proxy.endpoint(), "/org/repo/resolve/main/f.gguf");
        assert_eq!(lie.len(), body.len());
        let differing = lie.iter().zip(body).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 1);
        assert_eq!(proxy.lies(), 1);
        assert_eq!(
            server.join().unwrap(),
            [
                "GET /api/x HTTP/1.1",
                "GET /org/repo/resolve/main/f.gguf HTTP/1.1"
            ]
        );
    }
}
