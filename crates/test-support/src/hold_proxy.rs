//! [`HoldProxy`]: a forwarding front for any plain-HTTP server on loopback (an
//! [`crate::S3Server`], say) that can hold response bodies at a chosen byte and logs what it
//! relayed.
//!
//! Each request is forwarded as the client sent it: method, target (path and query), every
//! header but the hop-by-hop ones, body. `Host` is forwarded unchanged, so a URL presigned
//! for the proxy's `127.0.0.1:<port>` is checked upstream against the host it was signed for.
//! Answers are relayed `Content-Length`-framed on keep-alive connections.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Hold;
use crate::holds::{self, Connections, Holds, Monitor};
use crate::relay::Relay;
use crate::wire::{self, Body, Head};

/// One request the proxy relayed, and what it sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedHit {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path, without the query (a presigned URL's signature stays out of the log).
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `If-Range` header, if any.
    pub if_range: Option<String>,
    /// The `Authorization` header, if any (a bearer token a test handed out).
    pub authorization: Option<String>,
    /// The status relayed (502 when upstream could not be reached).
    pub status: u16,
    /// Body bytes written to the client (fewer than the body when the client went away).
    pub bytes_sent: u64,
    /// Whether its body reached a [`Hold`].
    pub held: bool,
}

/// A running proxy on `127.0.0.1:<port>` in front of `upstream`; stopped on drop (open
/// connections are shut down, held bodies end).
#[derive(Debug)]
pub struct HoldProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The state, with the upstream authority as the setting.
type Shared = Monitor<State, String>;

#[derive(Debug, Default)]
struct State {
    holds: Holds,
    /// Entries by sequence number, so a late update never lands on a cleared log.
    log: Vec<(u64, ProxiedHit)>,
    next_entry: u64,
    connections: Connections,
    /// Requests to answer here, with an error, rather than relay.
    refusals: Vec<Refusal>,
}

/// Requests the proxy answers itself with `status`: the next `times` whose method is `method`
/// and whose target (path and query) contains `target_has`.
#[derive(Debug, Clone)]
struct Refusal {
    method: String,
    target_has: String,
    status: u16,
    times: usize,
}

holds::server_state!(State);

impl Shared {
    fn entry(&self, seq: u64, change: impl FnOnce(&mut ProxiedHit)) {
        self.update(|s| {
            if let Some((_, hit)) = s.log.iter_mut().find(|(n, _)| *n == seq) {
                change(hit);
            }
        });
    }
}

impl HoldProxy {
    /// Starts a proxy for `upstream`: `127.0.0.1:<port>` or `http://127.0.0.1:<port>`.
    pub fn start(upstream: &str) -> io::Result<HoldProxy> {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Monitor::new("hold proxy", upstream, State::default()));
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                holds::accept_loop(&listener, &shared, |stream, shared| {
                    let _ = serve_connection(stream, shared);
                });
            })
        };
        Ok(HoldProxy {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Arms a hold: from now on, successful `GET` bodies stop at `at` until
    /// [`Self::release`]. With [`Hold::AtOffset`], the offset is in the object: a `206`'s
    /// `Content-Range` says where its body starts.
    pub fn hold(&self, at: Hold) {
        self.shared.hold(at);
    }

    /// Waits until a body has reached the armed hold, up to `timeout`; returns whether one
    /// has.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        self.shared.wait_held(timeout)
    }

    /// Disarms the hold: held bodies go on, later ones are not held.
    pub fn release(&self) {
        self.shared.release();
    }

    /// Waits until every connection accepted so far is closed, up to `timeout`; returns
    /// whether they are.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.shared.wait_idle(self.addr, timeout)
    }

    /// Every request so far, in the order they were answered.
    pub fn log(&self) -> Vec<ProxiedHit> {
        self.shared
            .lock()
            .log
            .iter()
            .map(|(_, hit)| hit.clone())
            .collect()
    }

    /// From now on, answers the next `times` requests whose method is `method` and whose target
    /// (path and query) contains `target_has` with `status` and an empty body, itself: they
    /// never reach the server (their bodies are read and dropped). They are logged with that
    /// status.
    pub fn refuse(&self, method: &str, target_has: &str, status: u16, times: usize) {
        self.shared.update(|s| {
            s.refusals.push(Refusal {
                method: method.to_owned(),
                target_has: target_has.to_owned(),
                status,
                times,
            });
        });
    }

    /// Empties the log.
    pub fn clear_log(&self) {
        self.shared.update(|s| s.log.clear());
    }
}

impl Drop for HoldProxy {
    fn drop(&mut self) {
        for stream in self.shared.stop() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Relays requests on one client connection until it closes or asks to.
fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(wire::READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let Some(head) = Head::read(&mut reader)? else {
            return Ok(());
        };
        let mut parts = head.first.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let chunked_body = if head.chunked() {
            Some(wire::read_chunked(&mut reader)?)
        } else {
            None
        };
        let body_len = head.content_length();
        let mut body = reader.by_ref().take(if chunked_body.is_some() {
            0
        } else {
            body_len.unwrap_or(0)
        });
        let close = head
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let keep = relay(
            shared,
            &mut out,
            &Exchange {
                method: &method,
                target: &target,
                head: &head,
                close,
            },
            chunked_body.as_deref(),
            &mut body,
        )?;
        io::copy(&mut body, &mut io::sink())?;
        if !keep || close {
            let _ = out.flush();
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// The request being relayed.
struct Exchange<'a> {
    method: &'a str,
    target: &'a str,
    head: &'a Head,
    close: bool,
}

/// Forwards one request and relays its answer; returns whether the connection may go on.
fn relay(
    shared: &Shared,
    out: &mut TcpStream,
    x: &Exchange<'_>,
    chunked_body: Option<&[u8]>,
    body: &mut dyn Read,
) -> io::Result<bool> {
    let connection = if x.close { "Connection: close\r\n" } else { "" };
    let host = x.head.get("host").unwrap_or(&shared.config).to_owned();
    let headers: Vec<(&str, &str)> = x
        .head
        .headers
        .iter()
        .filter(|(n, _)| !wire::hop_by_hop(n) && !n.eq_ignore_ascii_case("host"))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let upstream_body = match (chunked_body, x.head.content_length()) {
        (Some(bytes), _) => Body::Bytes(bytes),
        (None, Some(len)) => Body::Stream(body, len),
        (None, None) => Body::None,
    };
    let seq = shared.update(|s| {
        s.next_entry += 1;
        let seq = s.next_entry;
        s.log.push((
            seq,
            ProxiedHit {
                method: x.method.to_owned(),
                path: x.target.split('?').next().unwrap_or_default().to_owned(),
                range: x.head.get("range").map(str::to_owned),
                if_range: x.head.get("if-range").map(str::to_owned),
                authorization: x.head.get("authorization").map(str::to_owned),
                status: 0,
                bytes_sent: 0,
                held: false,
            },
        ));
        seq
    });
    let refused = shared.update(|s| {
        let r = s
            .refusals
            .iter_mut()
            .find(|r| r.times > 0 && r.method == x.method && x.target.contains(&r.target_has))?;
        r.times -= 1;
        Some(r.status)
    });
    if let Some(status) = refused {
        io::copy(body, &mut io::sink())?;
        shared.entry(seq, |h| h.status = status);
        write!(
            out,
            "HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\n{connection}\r\n"
        )?;
        out.flush()?;
        return Ok(true);
    }
    let sent = wire::send(
        &shared.config,
        &host,
        x.method,
        x.target,
        &headers,
        upstream_body,
    );
    let (head, mut upstream) = match sent {
        Ok(answer) => answer,
        Err(e) => {
            let text = e.to_string();
            shared.entry(seq, |h| h.status = 502);
            let _ = write!(
                out,
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\n{connection}\r\n{text}",
                text.len()
            );
            return Ok(false);
        }
    };
    let status = head.status();
    shared.entry(seq, |h| h.status = status);
    let relay = Relay {
        monitor: shared,
        out,
        method: x.method,
        close: x.close,
        may_hold: x.method == "GET",
    };
    relay.answer(
        &head,
        &mut upstream,
        |state| {
            if let Some((_, hit)) = state.log.iter_mut().find(|(n, _)| *n == seq) {
                hit.held = true;
            }
        },
        |sent| shared.entry(seq, |h| h.bytes_sent = sent),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{S3Server, presign_with};

    const WAIT: Duration = Duration::from_secs(10);

    /// `bucket` on the server, addressed through the proxy (signed for the proxy's host).
    fn through(proxy: &HoldProxy, bucket: &str) -> rusty_s3::Bucket {
        rusty_s3::Bucket::new(
            proxy.url().parse().expect("a URL"),
            rusty_s3::UrlStyle::Path,
            bucket.to_owned(),
            crate::S3_REGION,
        )
        .expect("a bucket")
    }

    fn get(proxy: &HoldProxy, url: &str, headers: &[(&str, &str)]) -> io::Result<wire::Reply> {
        let target = url.strip_prefix(&proxy.url()).unwrap_or(url);
        wire::exchange(&proxy.host(), "GET", target, headers, Body::None)
    }

    #[test]
    fn a_url_presigned_for_the_proxy_is_accepted_upstream() -> io::Result<()> {
        let server = S3Server::start()?;
        let bytes = crate::random_bytes(300_000, 5);
        server.put("bucket", "dir/k.bin", &bytes)?;
        let proxy = HoldProxy::start(&server.endpoint())?;
        let bucket = through(&proxy, "bucket");
        let url = presign_with(&bucket, &server.credentials(), "GET", "dir/k.bin", &[]);
        let whole = get(&proxy, &url, &[])?;
        assert_eq!(
            whole.status,
            200,
            "{}",
            String::from_utf8_lossy(&whole.body)
        );
        assert!(whole.body == bytes);
        let part = get(&proxy, &url, &[("Range", "bytes=100-199")])?;
        assert_eq!((part.status, &part.body[..]), (206, &bytes[100..200]));

        // Signed for the server's own host, the same request through the proxy is refused:
        // the proxy does not rewrite `Host`.
        let direct = server.presign("GET", "bucket", "dir/k.bin", &[]);
        let target = direct
            .strip_prefix(&server.endpoint())
            .expect("a URL on the server");
        let refused = get(&proxy, target, &[])?;
        assert_eq!(refused.status, 403);
        assert!(String::from_utf8_lossy(&refused.body).contains("SignatureDoesNotMatch"));

        assert!(proxy.wait_idle(WAIT));
        let log = proxy.log();
        let seen: Vec<(&str, &str, Option<&str>, u16, u64)> = log
            .iter()
            .map(|h| {
                (
                    h.method.as_str(),
                    h.path.as_str(),
                    h.range.as_deref(),
                    h.status,
                    h.bytes_sent,
                )
            })
            .collect();
        assert_eq!(seen[0], ("GET", "/bucket/dir/k.bin", None, 200, 300_000));
        assert_eq!(
            seen[1],
            ("GET", "/bucket/dir/k.bin", Some("bytes=100-199"), 206, 100)
        );
        assert_eq!(seen[2].3, 403);
        Ok(())
    }

    #[test]
    fn a_body_held_at_an_offset_goes_on_after_the_release() -> io::Result<()> {
        let server = S3Server::start()?;
        let bytes = crate::random_bytes(400_000, 6);
        server.put("bucket", "k", &bytes)?;
        let proxy = HoldProxy::start(&server.host())?;
        let url = presign_with(
            &through(&proxy, "bucket"),
            &server.credentials(),
            "GET",
            "k",
            &[],
        );
        proxy.hold(Hold::AtOffset(250_000));
        let (host, target) = (proxy.host(), url[proxy.url().len()..].to_owned());
        let reader = std::thread::spawn(move || {
            wire::exchange(
                &host,
                "GET",
                &target,
                &[("Range", "bytes=200000-")],
                Body::None,
            )
        });
        assert!(proxy.wait_held(WAIT), "the hold was not reached");
        assert!(!reader.is_finished(), "the client got the whole body");
        let held = proxy.log()[0].clone();
        assert!(
            held.held && held.status == 206 && held.bytes_sent == 50_000,
            "{held:?}"
        );
        proxy.release();
        let answer = reader.join().expect("reader")?;
        assert_eq!(answer.status, 206);
        assert!(answer.body == bytes[200_000..]);
        assert!(proxy.wait_idle(WAIT));
        assert_eq!(proxy.log()[0].bytes_sent, 200_000);
        Ok(())
    }

    #[test]
    fn a_signed_put_goes_through_with_its_body() -> io::Result<()> {
        let server = S3Server::start()?;
        server.create_bucket("bucket")?;
        let proxy = HoldProxy::start(&server.endpoint())?;
        let url = presign_with(
            &through(&proxy, "bucket"),
            &server.credentials(),
            "PUT",
            "p",
            &[],
        );
        let target = &url[proxy.url().len()..];
        let put = wire::exchange(&proxy.host(), "PUT", target, &[], Body::Bytes(b"put bytes"))?;
        assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
        assert_eq!(
            std::fs::read(server.object_path("bucket", "p"))?,
            b"put bytes"
        );
        Ok(())
    }
}
