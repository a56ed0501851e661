//! A scriptable front for a [`Registry`]: what a plain registry will not do on demand.
//!
//! The front is an HTTP/1.1 server on 127.0.0.1 that forwards every request to its upstream
//! registry (method, path and query, headers but `Authorization`, body) and streams the
//! answer back, `Content-Length`-framed, on keep-alive connections. On top it can:
//!
//! - ask for Bearer tokens ([`FrontAuth::Bearer`]) the way Docker Hub and GHCR do: a request
//!   without a valid token gets `401` and a `WWW-Authenticate: Bearer realm=…` challenge;
//!   `GET /token` issues tokens, checking Basic credentials when configured. A token is
//!   refused after a set number of uses, so a test makes one run out in the middle of a
//!   pull deterministically, with no clock; [`RegistryFront::expire_tokens`] ends them all;
//! - redirect blob `GET`s and `HEAD`s (`307`) to a second listener, its "storage", reached as
//!   `localhost` (another host than `127.0.0.1`, so a correct client drops `Authorization`
//!   there), which serves the blob from upstream with no auth, honouring `Range`;
//! - hold blob bodies at a chosen byte ([`Hold`], as [`crate::FaultServer`] does) until the
//!   test releases them;
//! - answer OCI 1.1's referrers API ([`FrontOptions::referrers_api`]), which Debian's
//!   docker-registry 2.8 lacks: `GET /v2/<repo>/referrers/<digest>` lists what the referrers
//!   tag scheme's index upstream (`sha256-<hex>`, written by a client that pushed a referrer,
//!   through the front or not) lists, filtered by `artifactType`, and an empty index when there
//!   is none; the front reads that index itself, so its log shows the referrers request and no
//!   request for the tag;
//! - log what it saw: [`FrontRequest`], [`StorageRequest`], [`TokenRequest`].

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::holds::{self, Connections, Holds, Monitor};
use crate::relay::Relay;
use crate::wire::{self, Body, Head};
use crate::{Hold, Registry};

/// The `service` the challenge names.
const SERVICE: &str = "test-registry";

/// How the front asks clients to authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FrontAuth {
    /// No auth: every request is forwarded.
    #[default]
    None,
    /// Bearer tokens from the front's `/token` endpoint.
    Bearer {
        /// Basic credentials `/token` requires; `None` issues tokens to anyone (anonymous
        /// pulls, as on Docker Hub).
        credentials: Option<(String, String)>,
        /// Authorised requests a token is good for; then it is refused with the challenge.
        /// `None`: no limit.
        token_uses: Option<u32>,
        /// The `expires_in` stated in token answers, in seconds (informative only: the
        /// front never expires a token by the clock).
        expires_in: u64,
    },
}

/// What [`RegistryFront::start`] sets up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrontOptions {
    /// How clients authenticate.
    pub auth: FrontAuth,
    /// Whether authorised blob `GET`s and `HEAD`s are redirected (`307`) to the storage
    /// listener.
    pub redirect_blobs: bool,
    /// Whether `GET /v2/<repo>/referrers/<digest>` is answered (from the tag scheme's index
    /// upstream) rather than forwarded (upstream answers `404`: no API).
    pub referrers_api: bool,
}

/// One request to the registry API (`/v2/…`) as the front saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontRequest {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The status the front answered (upstream's, or its own `401` or `307`).
    pub status: u16,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The issue number (1, 2, …) of the Bearer token presented, valid or not.
    pub token: Option<u32>,
    /// Whether the request carried an `Authorization` header.
    pub authorization_present: bool,
    /// Whether its body reached a [`Hold`].
    pub held: bool,
}

/// One request to the storage listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRequest {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path and query (`/blob/<digest>?sig=…`).
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `Authorization` header, if any (a correct client sends none here).
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Whether its body reached a [`Hold`].
    pub held: bool,
}

/// One request to the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user of the Basic credentials sent, if any.
    pub basic_user: Option<String>,
    /// The `scope` asked for, decoded.
    pub scope: Option<String>,
    /// The `service` asked for, decoded.
    pub service: Option<String>,
}

/// A running front on `127.0.0.1:<port>` with its storage listener on another port; stopped
/// on drop (open connections are shut down, held bodies end).
#[derive(Debug)]
pub struct RegistryFront {
    port: u16,
    storage_port: u16,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What every connection needs to know, fixed at start.
#[derive(Debug)]
struct Config {
    upstream: String,
    upstream_auth: Option<String>,
    auth: FrontAuth,
    redirect_blobs: bool,
    referrers_api: bool,
    port: u16,
    storage_port: u16,
}

type Shared = Monitor<State, Config>;

#[derive(Debug)]
struct Token {
    number: u32,
    uses: u32,
    expired: bool,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<String, Token>,
    issued: u32,
    /// The repository of each storage URL handed out, by its `sig`.
    signatures: HashMap<String, String>,
    holds: Holds,
    log: Vec<FrontRequest>,
    storage_log: Vec<StorageRequest>,
    token_requests: Vec<TokenRequest>,
    /// The connections open now, to shut down on drop.
    connections: Connections,
}

holds::server_state!(State);

/// Which log entry a response updates.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Front(usize),
    Storage(usize),
}

impl RegistryFront {
    /// Starts a front for `upstream` (whose credentials, if any, it sends upstream itself).
    pub fn start(upstream: &Registry, options: FrontOptions) -> io::Result<RegistryFront> {
        let front = TcpListener::bind("127.0.0.1:0")?;
        let storage = TcpListener::bind("127.0.0.1:0")?;
        let port = front.local_addr()?.port();
        let storage_port = storage.local_addr()?.port();
        let shared = Arc::new(Monitor::new(
            "registry front",
            Config {
                upstream: upstream.host(),
                upstream_auth: upstream.credentials().map(|(u, p)| wire::basic(u, p)),
                auth: options.auth,
                redirect_blobs: options.redirect_blobs,
                referrers_api: options.referrers_api,
                port,
                storage_port,
            },
            State::default(),
        ));
        let threads = [(front, false), (storage, true)]
            .into_iter()
            .map(|(listener, is_storage)| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    holds::accept_loop(&listener, &shared, move |stream, shared| {
                        let _ = serve_connection(stream, shared, is_storage);
                    });
                })
            })
            .collect();
        Ok(RegistryFront {
            port,
            storage_port,
            shared,
            threads,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The front's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The storage listener's port (reached as `localhost:<port>`).
    pub fn storage_port(&self) -> u16 {
        self.storage_port
    }

    /// Arms a hold: from now on, blob bodies (from the front or the storage) stop at `at`
    /// until [`Self::release`].
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

    /// Invalidates every token issued so far: their next use gets the challenge.
    pub fn expire_tokens(&self) {
        self.shared.update(|s| {
            for token in s.tokens.values_mut() {
                token.expired = true;
            }
        });
    }

    /// Every request to the registry API so far, in the order they were answered (token
    /// requests are in [`Self::token_requests`]).
    pub fn log(&self) -> Vec<FrontRequest> {
        self.shared.lock().log.clone()
    }

    /// Every request to the storage listener so far.
    pub fn storage_log(&self) -> Vec<StorageRequest> {
        self.shared.lock().storage_log.clone()
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> u32 {
        self.shared.lock().issued
    }

    /// Every request to the token endpoint so far, granted or not.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.lock().token_requests.clone()
    }

    /// Empties the three logs (tokens stay valid).
    pub fn clear_logs(&self) {
        self.shared.update(|s| {
            s.log.clear();
            s.storage_log.clear();
            s.token_requests.clear();
        });
    }
}

impl Drop for RegistryFront {
    fn drop(&mut self) {
        for stream in self.shared.stop() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes the accept loops, which then see `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = TcpStream::connect(("127.0.0.1", self.storage_port));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A request read from a client connection.
struct Request {
    method: String,
    target: String,
    head: Head,
}

impl Request {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| wire::percent_decode(v))
        })
    }
}

/// Serves requests on one client connection until it closes or asks to.
fn serve_connection(stream: TcpStream, shared: &Shared, storage: bool) -> io::Result<()> {
    stream.set_read_timeout(Some(wire::READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let Some(head) = Head::read(&mut reader)? else {
            return Ok(());
        };
        let mut parts = head.first.split(' ');
        let request = Request {
            method: parts.next().unwrap_or_default().to_owned(),
            target: parts.next().unwrap_or_default().to_owned(),
            head: head.clone(),
        };
        // A chunked request body is read whole; one with a length is streamed upstream.
        let mut chunked_body = None;
        if head.chunked() {
            chunked_body = Some(wire::read_chunked(&mut reader)?);
        }
        let body_len = head.content_length().unwrap_or(0);
        let mut body = reader
            .by_ref()
            .take(if chunked_body.is_some() { 0 } else { body_len });
        let close = head
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut response = Response {
            out: &mut out,
            shared,
            close,
        };
        let keep = if storage {
            serve_storage(&request, &mut response)?
        } else {
            serve_front(&request, chunked_body.as_deref(), &mut body, &mut response)?
        };
        // Whatever of the request body was not forwarded is read off the connection.
        io::copy(&mut body, &mut io::sink())?;
        if !keep || close {
            let _ = out.flush();
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// The repository a `/v2/<repo>/(manifests|blobs|tags|referrers)/…` path names, and the rest after
/// `<repo>/`.
fn repo_of(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    let at = ["/manifests/", "/blobs/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| rest.rfind(m))
        .max()?;
    Some((&rest[..at], &rest[at + 1..]))
}

/// Serves one request on the front; returns whether the connection may go on.
fn serve_front(
    request: &Request,
    chunked_body: Option<&[u8]>,
    body: &mut dyn Read,
    response: &mut Response<'_>,
) -> io::Result<bool> {
    let config = &response.shared.config;
    let path = request.path();
    if let FrontAuth::Bearer {
        credentials,
        expires_in,
        ..
    } = &config.auth
        && path == "/token"
    {
        return serve_token(request, credentials.as_ref(), *expires_in, response);
    }
    let authorization = request.head.get("authorization");
    let range = request.head.get("range").map(str::to_owned);
    let mut entry = FrontRequest {
        method: request.method.clone(),
        path: request.target.clone(),
        status: 0,
        range,
        token: None,
        authorization_present: authorization.is_some(),
        held: false,
    };
    let repo = repo_of(path);
    if let FrontAuth::Bearer { token_uses, .. } = &config.auth {
        let presented = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim);
        let valid = response.shared.update(|s| {
            let Some(token) = presented.and_then(|t| s.tokens.get_mut(t)) else {
                return false;
            };
            entry.token = Some(token.number);
            let fresh = !token.expired && token_uses.is_none_or(|n| token.uses < n);
            if fresh {
                token.uses += 1;
            }
            fresh
        });
        if !valid {
            let mut challenge = format!(
                "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"{SERVICE}\"",
                config.port
            );
            if let Some((repo, _)) = repo {
                let actions = if matches!(request.method.as_str(), "GET" | "HEAD") {
                    "pull"
                } else {
                    "pull,push"
                };
                let _ = write!(challenge, ",scope=\"repository:{repo}:{actions}\"");
            }
            let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
            entry.status = 401;
            response.log(entry);
            return response.small(
                &request.method,
                "401 Unauthorized",
                &[
                    ("WWW-Authenticate", &challenge),
                    ("Content-Type", "application/json"),
                ],
                body,
            );
        }
    }
    if config.referrers_api
        && request.method == "GET"
        && let Some((repo, rest)) = repo
        && let Some(subject) = rest.strip_prefix("referrers/")
    {
        return serve_referrers(request, repo, subject, response, entry);
    }
    let blob = repo.and_then(|(repo, rest)| {
        let digest = rest.strip_prefix("blobs/")?;
        (digest.starts_with("sha256:") && !digest.contains('/')).then_some((repo, digest))
    });
    if config.redirect_blobs
        && matches!(request.method.as_str(), "GET" | "HEAD")
        && let Some((repo, digest)) = blob
    {
        let sig = format!("{:016x}", random_u64());
        response
            .shared
            .update(|s| s.signatures.insert(sig.clone(), repo.to_owned()));
        let location = format!(
            "http://localhost:{}/blob/{digest}?sig={sig}",
            config.storage_port
        );
        entry.status = 307;
        response.log(entry);
        return response.small(
            &request.method,
            "307 Temporary Redirect",
            &[("Location", &location)],
            b"",
        );
    }
    forward(request, chunked_body, body, response, entry, blob.is_some())
}

/// Forwards a request upstream and relays the answer; returns whether the connection may go
/// on.
fn forward(
    request: &Request,
    chunked_body: Option<&[u8]>,
    body: &mut dyn Read,
    response: &mut Response<'_>,
    mut entry: FrontRequest,
    blob: bool,
) -> io::Result<bool> {
    let config = &response.shared.config;
    let host = request
        .head
        .get("host")
        .unwrap_or(&config.upstream)
        .to_owned();
    let mut headers: Vec<(&str, &str)> = request
        .head
        .headers
        .iter()
        .filter(|(n, _)| {
            !wire::hop_by_hop(n)
                && !n.eq_ignore_ascii_case("host")
                && !n.eq_ignore_ascii_case("authorization")
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if let Some(auth) = &config.upstream_auth {
        headers.push(("Authorization", auth));
    }
    let len = request.head.content_length();
    let upstream_body = match (chunked_body, len) {
        (Some(bytes), _) => Body::Bytes(bytes),
        (None, Some(len)) => Body::Stream(body, len),
        (None, None) => Body::None,
    };
    let (head, mut upstream) = match wire::send(
        &config.upstream,
        &host,
        &request.method,
        &request.target,
        &headers,
        upstream_body,
    ) {
        Ok(answer) => answer,
        Err(e) => {
            entry.status = 502;
            response.log(entry);
            let _ = response.small(
                &request.method,
                "502 Bad Gateway",
                &[],
                e.to_string().as_bytes(),
            );
            return Ok(false);
        }
    };
    entry.status = head.status();
    let n = response.log(entry);
    response.relay(&request.method, &head, &mut upstream, n, blob)
}

/// The media type of an image index: a referrers list.
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Serves `GET /v2/<repo>/referrers/<subject>`: the referrers the tag scheme's index upstream
/// lists for `subject` (none when there is no index), those of the `artifactType` asked for.
fn serve_referrers(
    request: &Request,
    repo: &str,
    subject: &str,
    response: &mut Response<'_>,
    mut entry: FrontRequest,
) -> io::Result<bool> {
    let config = &response.shared.config;
    let tag = subject.replacen(':', "-", 1);
    let mut headers = vec![("Accept", INDEX_TYPE)];
    if let Some(auth) = &config.upstream_auth {
        headers.push(("Authorization", auth));
    }
    let index = wire::exchange(
        &config.upstream,
        "GET",
        &format!("/v2/{repo}/manifests/{tag}"),
        &headers,
        Body::None,
    )?;
    let mut manifests = match index.status {
        200 => serde_json::from_slice::<serde_json::Value>(&index.body)
            .ok()
            .and_then(|i| i.get("manifests").and_then(|m| m.as_array()).cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let wanted = request.query("artifactType");
    if let Some(wanted) = &wanted {
        manifests.retain(|m| m.get("artifactType").and_then(|t| t.as_str()) == Some(wanted));
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": manifests,
    })
    .to_string();
    entry.status = 200;
    response.log(entry);
    let mut answer = vec![("Content-Type", INDEX_TYPE)];
    if wanted.is_some() {
        answer.push(("OCI-Filters-Applied", "artifactType"));
    }
    response.small(&request.method, "200 OK", &answer, body.as_bytes())
}

/// Serves `GET /token`: checks Basic credentials if required, then issues a token.
fn serve_token(
    request: &Request,
    credentials: Option<&(String, String)>,
    expires_in: u64,
    response: &mut Response<'_>,
) -> io::Result<bool> {
    let basic = request
        .head
        .get("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| wire::base64_decode(b.trim()))
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let (user, password) = match basic
        .as_deref()
        .map(|b| b.split_once(':').unwrap_or((b, "")))
    {
        Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
        None => (None, None),
    };
    response.shared.update(|s| {
        s.token_requests.push(TokenRequest {
            basic_user: user.clone(),
            scope: request.query("scope"),
            service: request.query("service"),
        });
    });
    if let Some((u, p)) = credentials
        && (user.as_ref() != Some(u) || password.as_ref() != Some(p))
    {
        let body =
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials","detail":null}]}"#;
        return response.small(
            &request.method,
            "401 Unauthorized",
            &[
                ("WWW-Authenticate", &format!("Basic realm=\"{SERVICE}\"")),
                ("Content-Type", "application/json"),
            ],
            body,
        );
    }
    let token = response.shared.update(|s| {
        s.issued += 1;
        let number = s.issued;
        let token = format!("front-{number}-{:016x}{:016x}", random_u64(), random_u64());
        s.tokens.insert(
            token.clone(),
            Token {
                number,
                uses: 0,
                expired: false,
            },
        );
        token
    });
    let body = format!(
        r#"{{"token":"{token}","access_token":"{token}","expires_in":{expires_in},"issued_at":"{}"}}"#,
        rfc3339_now()
    );
    response.small(
        &request.method,
        "200 OK",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// Serves one request on the storage listener: the blob a redirect named, from upstream.
fn serve_storage(request: &Request, response: &mut Response<'_>) -> io::Result<bool> {
    let config = &response.shared.config;
    let range = request.head.get("range").map(str::to_owned);
    let mut entry = StorageRequest {
        method: request.method.clone(),
        path: request.target.clone(),
        range: range.clone(),
        authorization: request.head.get("authorization").map(str::to_owned),
        status: 0,
        held: false,
    };
    let digest = request.path().strip_prefix("/blob/").map(str::to_owned);
    let repo = request
        .query("sig")
        .and_then(|sig| response.shared.lock().signatures.get(&sig).cloned());
    let (Some(digest), Some(repo), true) = (
        digest,
        repo,
        matches!(request.method.as_str(), "GET" | "HEAD"),
    ) else {
        entry.status = 403;
        response.log_storage(entry);
        return response.small(&request.method, "403 Forbidden", &[], b"");
    };
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(range) = &range {
        headers.push(("Range", range));
    }
    if let Some(auth) = &config.upstream_auth {
        headers.push(("Authorization", auth));
    }
    let (head, mut upstream) = match wire::send(
        &config.upstream,
        &config.upstream,
        &request.method,
        &format!("/v2/{repo}/blobs/{digest}"),
        &headers,
        Body::None,
    ) {
        Ok(answer) => answer,
        Err(e) => {
            entry.status = 502;
            response.log_storage(entry);
            let _ = response.small(
                &request.method,
                "502 Bad Gateway",
                &[],
                e.to_string().as_bytes(),
            );
            return Ok(false);
        }
    };
    entry.status = head.status();
    let n = response.log_storage(entry);
    response.relay(&request.method, &head, &mut upstream, n, true)
}

/// The answer on one client connection.
struct Response<'a> {
    out: &'a mut TcpStream,
    shared: &'a Shared,
    close: bool,
}

impl Response<'_> {
    /// Records a front request; returns its entry.
    fn log(&self, entry: FrontRequest) -> Entry {
        self.shared.update(|s| {
            s.log.push(entry);
            Entry::Front(s.log.len() - 1)
        })
    }

    /// Records a storage request; returns its entry.
    fn log_storage(&self, entry: StorageRequest) -> Entry {
        self.shared.update(|s| {
            s.storage_log.push(entry);
            Entry::Storage(s.storage_log.len() - 1)
        })
    }

    fn connection(&self) -> &'static str {
        if self.close {
            "Connection: close\r\n"
        } else {
            ""
        }
    }

    /// Writes an answer the front makes itself.
    fn small(
        &mut self,
        method: &str,
        status: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<bool> {
        let mut head = format!("HTTP/1.1 {status}\r\n");
        for (n, v) in headers {
            let _ = write!(head, "{n}: {v}\r\n");
        }
        let _ = write!(
            head,
            "Content-Length: {}\r\n{}\r\n",
            body.len(),
            self.connection()
        );
        self.out.write_all(head.as_bytes())?;
        if method != "HEAD" {
            self.out.write_all(body)?;
        }
        self.out.flush()?;
        Ok(true)
    }

    /// Relays an upstream answer: its status and headers, and its body framed by length,
    /// streamed (and held, for a blob body) when upstream gave a length.
    fn relay(
        &mut self,
        method: &str,
        head: &Head,
        upstream: &mut BufReader<TcpStream>,
        entry: Entry,
        blob: bool,
    ) -> io::Result<bool> {
        let relay = Relay {
            monitor: self.shared,
            out: self.out,
            method,
            close: self.close,
            may_hold: blob,
        };
        relay.answer(
            head,
            upstream,
            |state| match entry {
                Entry::Front(i) => state.log[i].held = true,
                Entry::Storage(i) => state.storage_log[i].held = true,
            },
            |_| {},
        )
    }
}

/// 64 random bits (from the standard library's per-process random hash keys).
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// The time now as RFC 3339 in UTC, e.g. `2026-01-02T03:04:05Z`.
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).expect("days fit") + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::{Response as Answer, request};
    use crate::{Artifact, MANIFEST_ACCEPT, OCI_MANIFEST, Pushed};

    const WAIT: Duration = Duration::from_secs(10);
    const REPO: &str = "models/tiny";

    fn blob() -> Vec<u8> {
        crate::random_bytes(400_000, 3)
    }

    fn registry_with_blob() -> io::Result<(Registry, Pushed)> {
        let registry = Registry::start()?;
        let pushed = Artifact::new(OCI_MANIFEST)
            .layer("application/octet-stream", &blob(), &[])
            .push(&registry, REPO, "v1")?;
        Ok((registry, pushed))
    }

    fn bearer(token_uses: Option<u32>) -> FrontOptions {
        FrontOptions {
            auth: FrontAuth::Bearer {
                credentials: None,
                token_uses,
                expires_in: 300,
            },
            redirect_blobs: false,
            referrers_api: false,
        }
    }

    fn get(front: &RegistryFront, path: &str, headers: &[(&str, &str)]) -> Answer {
        request(front.port(), "127.0.0.1", "GET", path, headers)
    }

    /// A token from the front, asked for with `authorization` (if any).
    fn token(front: &RegistryFront, authorization: Option<&str>) -> Answer {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        get(
            front,
            "/token?service=test-registry&scope=repository%3Amodels%2Ftiny%3Apull",
            &headers,
        )
    }

    fn token_value(answer: &Answer) -> String {
        answer.json()["token"].as_str().expect("a token").to_owned()
    }

    #[test]
    fn bearer_mode_challenges_then_serves_with_a_token() -> io::Result<()> {
        let (registry, pushed) = registry_with_blob()?;
        let front = RegistryFront::start(&registry, bearer(None))?;
        let base = get(&front, "/v2/", &[]);
        assert_eq!(base.status, 401);
        let realm = format!("http://127.0.0.1:{}/token", front.port());
        assert_eq!(
            base.header("www-authenticate"),
            Some(format!("Bearer realm=\"{realm}\",service=\"test-registry\"").as_str())
        );
        let manifest_path = format!("/v2/{REPO}/manifests/v1");
        let refused = get(&front, &manifest_path, &[("Accept", MANIFEST_ACCEPT)]);
        assert_eq!(refused.status, 401);
        assert_eq!(
            refused.header("www-authenticate"),
            Some(
                format!(
                    "Bearer realm=\"{realm}\",service=\"test-registry\",scope=\"repository:{REPO}:pull\""
                )
                .as_str()
            )
        );

        let granted = token(&front, None);
        assert_eq!(granted.status, 200);
        let json = granted.json();
        assert_eq!(json["token"], json["access_token"]);
        assert_eq!(json["expires_in"], 300);
        assert!(json["issued_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        let bearer = format!("Bearer {}", token_value(&granted));
        let served = get(
            &front,
            &manifest_path,
            &[("Accept", MANIFEST_ACCEPT), ("Authorization", &bearer)],
        );
        assert_eq!(served.status, 200);
        assert_eq!(served.body, pushed.manifest_bytes);
        let blob_path = format!("/v2/{REPO}/blobs/{}", pushed.layer_digests[0]);
        let served = get(&front, &blob_path, &[("Authorization", &bearer)]);
        assert!(served.status == 200 && served.body == blob());

        assert_eq!(front.tokens_issued(), 1);
        assert_eq!(
            front.token_requests(),
            [TokenRequest {
                basic_user: None,
                scope: Some(format!("repository:{REPO}:pull")),
                service: Some("test-registry".to_owned()),
            }]
        );
        let log = front.log();
        let seen: Vec<(u16, Option<u32>, bool)> = log
            .iter()
            .map(|r| (r.status, r.token, r.authorization_present))
            .collect();
        assert_eq!(
            seen,
            [
                (401, None, false),
                (401, None, false),
                (200, Some(1), true),
                (200, Some(1), true)
            ]
        );
        Ok(())
    }

    #[test]
    fn a_token_is_refused_after_its_uses_and_when_expired() -> io::Result<()> {
        let (registry, pushed) = registry_with_blob()?;
        let front = RegistryFront::start(&registry, bearer(Some(2)))?;
        let path = format!("/v2/{REPO}/blobs/{}", pushed.layer_digests[0]);
        let first = format!("Bearer {}", token_value(&token(&front, None)));
        let statuses: Vec<u16> = (0..3)
            .map(|_| get(&front, &path, &[("Authorization", &first)]).status)
            .collect();
        assert_eq!(statuses, [200, 200, 401]);
        let second = format!("Bearer {}", token_value(&token(&front, None)));
        assert_eq!(
            get(&front, &path, &[("Authorization", &second)]).status,
            200
        );
        front.expire_tokens();
        let refused = get(&front, &path, &[("Authorization", &second)]);
        assert_eq!(refused.status, 401);
        assert!(
            refused
                .header("www-authenticate")
                .is_some_and(|c| c.contains(&format!("scope=\"repository:{REPO}:pull\"")))
        );
        let tokens: Vec<Option<u32>> = front.log().iter().map(|r| r.token).collect();
        assert_eq!(tokens, [Some(1), Some(1), Some(1), Some(2), Some(2)]);
        assert_eq!(front.tokens_issued(), 2);
        Ok(())
    }

    #[test]
    fn the_token_endpoint_checks_basic_credentials_when_configured() -> io::Result<()> {
        let (registry, _) = registry_with_blob()?;
        let front = RegistryFront::start(
            &registry,
            FrontOptions {
                auth: FrontAuth::Bearer {
                    credentials: Some(("bob".to_owned(), "pw".to_owned())),
                    token_uses: None,
                    expires_in: 60,
                },
                redirect_blobs: false,
                referrers_api: false,
            },
        )?;
        let none = token(&front, None);
        assert_eq!(none.status, 401);
        assert_eq!(
            none.header("www-authenticate"),
            Some("Basic realm=\"test-registry\"")
        );
        assert_eq!(token(&front, Some(&wire::basic("bob", "nope"))).status, 401);
        let granted = token(&front, Some(&wire::basic("bob", "pw")));
        assert_eq!(granted.status, 200);
        assert_eq!(front.tokens_issued(), 1);
        let users: Vec<Option<String>> = front
            .token_requests()
            .into_iter()
            .map(|t| t.basic_user)
            .collect();
        assert_eq!(
            users,
            [None, Some("bob".to_owned()), Some("bob".to_owned())]
        );
        Ok(())
    }

    #[test]
    fn blobs_are_redirected_to_the_storage_which_honours_range() -> io::Result<()> {
        let (registry, pushed) = registry_with_blob()?;
        let mut options = bearer(None);
        options.redirect_blobs = true;
        let front = RegistryFront::start(&registry, options)?;
        let bearer = format!("Bearer {}", token_value(&token(&front, None)));
        let path = format!("/v2/{REPO}/blobs/{}", pushed.layer_digests[0]);
        let redirect = get(&front, &path, &[("Authorization", &bearer)]);
        assert_eq!(redirect.status, 307);
        let location = redirect.header("location").expect("a Location").to_owned();
        let prefix = format!(
            "http://localhost:{}/blob/{}?sig=",
            front.storage_port(),
            pushed.layer_digests[0]
        );
        assert!(location.starts_with(&prefix), "{location}");
        let storage_path = &location[format!("http://localhost:{}", front.storage_port()).len()..];

        let whole = request(front.storage_port(), "localhost", "GET", storage_path, &[]);
        assert!(whole.status == 200 && whole.body == blob());
        let part = request(
            front.storage_port(),
            "localhost",
            "GET",
            storage_path,
            &[("Range", "bytes=1000-1999")],
        );
        assert_eq!(part.status, 206);
        assert_eq!(part.header("content-range"), Some("bytes 1000-1999/400000"));
        assert!(part.body == blob()[1000..2000]);
        let forged = request(
            front.storage_port(),
            "localhost",
            "GET",
            &format!("/blob/{}?sig=forged", pushed.layer_digests[0]),
            &[],
        );
        assert_eq!(forged.status, 403);
        let head = request(
            front.port(),
            "127.0.0.1",
            "HEAD",
            &path,
            &[("Authorization", &bearer)],
        );
        assert_eq!(head.status, 307);

        let storage = front.storage_log();
        assert_eq!(storage.len(), 3);
        assert_eq!(storage[1].range.as_deref(), Some("bytes=1000-1999"));
        assert!(storage.iter().all(|r| r.authorization.is_none()));
        assert_eq!(
            storage.iter().map(|r| r.status).collect::<Vec<_>>(),
            [200, 206, 403]
        );
        Ok(())
    }

    #[test]
    fn a_held_blob_body_goes_on_after_the_release() -> io::Result<()> {
        let (registry, pushed) = registry_with_blob()?;
        let front = RegistryFront::start(&registry, FrontOptions::default())?;
        front.hold(Hold::AtOffset(250_000));
        let path = format!("/v2/{REPO}/blobs/{}", pushed.layer_digests[0]);
        let port = front.port();
        let reader = std::thread::spawn(move || {
            request(
                port,
                "127.0.0.1",
                "GET",
                &path,
                &[("Range", "bytes=200000-")],
            )
        });
        assert!(front.wait_held(WAIT), "the hold was not reached");
        assert!(!reader.is_finished(), "the client got the whole body");
        let log = front.log();
        assert_eq!((log[0].status, log[0].held), (206, true));
        front.release();
        let answer = reader.join().expect("reader");
        assert_eq!(answer.status, 206);
        assert!(answer.body == blob()[200_000..]);
        Ok(())
    }

    #[test]
    fn a_held_body_from_the_storage_goes_on_after_the_release() -> io::Result<()> {
        let (registry, pushed) = registry_with_blob()?;
        let options = FrontOptions {
            auth: FrontAuth::None,
            redirect_blobs: true,
            referrers_api: false,
        };
        let front = RegistryFront::start(&registry, options)?;
        let path = format!("/v2/{REPO}/blobs/{}", pushed.layer_digests[0]);
        let location = get(&front, &path, &[])
            .header("location")
            .expect("a Location")
            .to_owned();
        let storage_path =
            location[format!("http://localhost:{}", front.storage_port()).len()..].to_owned();
        front.hold(Hold::AfterBytes(100_000));
        let port = front.storage_port();
        let reader =
            std::thread::spawn(move || request(port, "localhost", "GET", &storage_path, &[]));
        assert!(front.wait_held(WAIT), "the hold was not reached");
        assert!(front.storage_log()[0].held);
        front.release();
        let answer = reader.join().expect("reader");
        assert!(answer.status == 200 && answer.body == blob());
        Ok(())
    }

    /// Reads one `Content-Length`-framed answer off a kept-alive connection.
    fn read_framed(reader: &mut BufReader<TcpStream>) -> (u16, Vec<u8>) {
        let head = Head::read(reader).expect("a head").expect("an answer");
        assert!(
            head.get("connection").is_none(),
            "the front closes: {head:?}"
        );
        let mut body =
            vec![0; usize::try_from(head.content_length().expect("a length")).expect("fits")];
        reader.read_exact(&mut body).expect("the body");
        (head.status(), body)
    }

    #[test]
    fn connections_are_kept_alive_and_parallel_ranges_add_up() -> io::Result<()> {
        let (registry, pushed) = registry_with_blob()?;
        let front = RegistryFront::start(&registry, FrontOptions::default())?;
        let path = format!("/v2/{REPO}/blobs/{}", pushed.layer_digests[0]);
        let stream = TcpStream::connect(("127.0.0.1", front.port()))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        for range in ["0-9", "10-19"] {
            write!(
                out,
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes={range}\r\n\r\n"
            )?;
            let (status, body) = read_framed(&mut reader);
            assert_eq!(status, 206);
            assert_eq!(body.len(), 10);
        }
        // A HEAD on the same connection: a length, no body.
        write!(out, "HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        let head = Head::read(&mut reader)?.expect("an answer");
        assert_eq!(head.content_length(), Some(400_000));

        let quarter = 100_000;
        let parts: Vec<std::thread::JoinHandle<Answer>> = (0..4)
            .map(|i| {
                let (port, path) = (front.port(), path.clone());
                std::thread::spawn(move || {
                    let range = format!("bytes={}-{}", i * quarter, (i + 1) * quarter - 1);
                    request(port, "127.0.0.1", "GET", &path, &[("Range", &range)])
                })
            })
            .collect();
        let mut joined = Vec::new();
        for part in parts {
            let answer = part.join().expect("a part");
            assert_eq!(answer.status, 206);
            joined.extend_from_slice(&answer.body);
        }
        assert!(joined == blob());
        Ok(())
    }
}
