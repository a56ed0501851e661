//! The download engine shared by every network fetcher: resumable, parallel, verified.
//!
//! A download streams into `<cache>/tmp/dl-<key>.part`, locked by its writer, and is hashed in
//! file order as it arrives. A large file on a server that honours `Range` is fetched as fixed
//! size chunks by several connections at once, each connection on a thread of its own. Writer
//! threads put each received buffer in place with a positional write, so that receiving never
//! waits for the disk, and hand it to the hasher thread, which consumes buffers in file order
//! from memory, so the file is never read back. A window of buffers bounds the memory, and the
//! buffers are reused. Writes go around the page cache where the file system allows it.
//!
//! Resume: after each chunk the hasher records, in `dl-<key>.state`, how long the in-order
//! prefix on disk is, the SHA-256 of that prefix, the remote size and its validators (`ETag`,
//! `Last-Modified`). The next run trusts the prefix only if the remote still has the same size
//! and validators (the request carries `If-Range`) and the prefix still hashes to the recorded
//! value; otherwise it starts over. A server that ignores `Range` answers `200` with the whole
//! body: the partial file is truncated and the body streamed from its first byte, so nothing
//! stale is ever appended.
//!
//! Transient failures (connection errors, timeouts, `5xx`, `429`, a body cut short, no bytes
//! for `stall_timeout`) are retried with exponential backoff, per chunk; other statuses fail at
//! once. Errors name the URL without credentials or query.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use catalog_core::{CacheLayout, Digest, HASH_BUF_SIZE, Hasher, StagedFile};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::direct::{BufPool, PageBuf, Writer};
use crate::error::{Error, Result};
use crate::reporter::Progress;

/// How downloads are made. The defaults suit a 2-core machine on a fast link.
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// Ranged requests in flight at once for one large file (1 disables parallel ranges).
    pub connections: usize,
    /// Size of each ranged request, and of each buffer: a download holds up to
    /// `connections + min(connections, 4)` of them in memory (128 MiB with the defaults).
    /// Large chunks mean large direct writes, which the disk takes faster.
    pub chunk_size: u64,
    /// Files smaller than this are fetched in one stream.
    pub parallel_threshold: u64,
    /// Retries after the first attempt, per request.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further one, up to 10 s.
    pub backoff: Duration,
    /// A request that delivers no byte for this long is abandoned and retried.
    pub stall_timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Write around the page cache (`O_DIRECT`) where the platform and file system allow it.
    /// Measured: filling the page cache was the slowest step of a loopback download, and the
    /// fsync before publishing then had the whole file to write back.
    pub direct_io: bool,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            connections: 4,
            chunk_size: 16 << 20,
            parallel_threshold: 64 << 20,
            retries: 5,
            backoff: Duration::from_millis(250),
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            direct_io: true,
        }
    }
}

/// One file to download.
#[derive(Debug)]
pub struct Download<'a> {
    /// The URL to request, credentials included.
    pub url: &'a url::Url,
    /// The URL as shown in messages: no credentials, no query.
    pub display_url: &'a str,
    /// Extra request headers (e.g. `Authorization`, for the URL's own host only).
    pub headers: HeaderMap,
    /// The digest the bytes must have.
    pub expected: Option<&'a Digest>,
    /// The id to name in a mismatch error.
    pub id: &'a str,
    /// A stable lowercase-hex key naming the partial file, so that a later run resumes it.
    pub key: &'a str,
}

/// A finished, synced, verified download, staged under `tmp/`.
#[derive(Debug)]
pub struct Downloaded {
    /// The staged file, ready for [`CacheLayout::publish_blob`].
    pub staged: StagedFile,
    /// Bytes received over the network by this run (less than the size after a resume).
    pub transferred: u64,
    /// Bytes kept from an earlier, interrupted run.
    pub resumed: u64,
    /// The remote's `ETag`, if it sent one.
    pub etag: Option<String>,
}

/// What the server told us about the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validators {
    fn from_headers(h: &HeaderMap) -> Self {
        let get = |name| {
            h.get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Validators {
            etag: get(header::ETAG),
            last_modified: get(header::LAST_MODIFIED),
        }
    }

    /// The `If-Range` value: a strong `ETag`, else `Last-Modified`.
    fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }
}

/// The resume record of a partial download.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    url: String,
    total: u64,
    validators: Validators,
    prefix_len: u64,
    prefix_sha256: String,
}

/// The download engine: an HTTP client on its own runtime.
#[derive(Debug)]
pub struct Downloader {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    config: DownloadConfig,
}

impl Downloader {
    /// An engine with `config`.
    pub fn new(config: DownloadConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("model-provisioner-io")
            .build()
            .map_err(|e| Error::Setup {
                what: "start the download runtime",
                source: Box::new(e),
            })?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("model-provisioner/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.stall_timeout)
            .build()
            .map_err(|e| Error::Setup {
                what: "build the HTTP client",
                source: Box::new(e.without_url()),
            })?;
        Ok(Downloader {
            runtime,
            client,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DownloadConfig {
        &self.config
    }

    /// The HTTP client, for fetchers that make API calls of their own.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Runs `fut` on the engine's runtime. Must not be called from inside an async context.
    pub fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
        self.runtime.block_on(fut)
    }

    /// Downloads `dl` into the cache's `tmp/`, resuming an earlier partial download of the
    /// same key when it is still valid, and verifies it against `dl.expected`.
    pub fn fetch(
        &self,
        layout: &CacheLayout,
        dl: &Download<'_>,
        progress: &dyn Progress,
    ) -> Result<Downloaded> {
        layout.create_dir(&layout.tmp_dir())?;
        let (part_path, state_path) = layout.partial_paths(dl.key)?;
        let partial = Partial::open(part_path, state_path, self.config.direct_io)?;
        let _flusher = Flusher::start(Arc::clone(&partial.file));
        self.runtime
            .block_on(self.fetch_async(partial, dl, progress))
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one state machine: probe, then resume, restart or stream"
    )]
    async fn fetch_async(
        &self,
        partial: Partial,
        dl: &Download<'_>,
        progress: &dyn Progress,
    ) -> Result<Downloaded> {
        let mut prior = partial.load_state(dl.display_url);
        if prior.is_none() {
            partial.truncate()?;
        }
        let mut attempt = 0;
        // A changed remote or a damaged prefix sends us back here, from byte zero.
        loop {
            let (start, request) = self.probe(dl, prior.as_ref());
            let response = match self.send(request, dl).await {
                Ok(r) => r,
                Err(e) if e.transient && attempt < self.config.retries => {
                    attempt += 1;
                    self.backoff(attempt, dl, &e).await;
                    continue;
                }
                Err(e) => return Err(e.into_error(dl.display_url, attempt + 1)),
            };
            let validators = Validators::from_headers(response.headers());
            match response.status() {
                StatusCode::PARTIAL_CONTENT => {
                    let Some((first, total)) = content_range(response.headers()) else {
                        return Err(protocol_error(
                            dl,
                            "a 206 response without a valid `Content-Range`",
                        ));
                    };
                    if first != start {
                        return Err(protocol_error(
                            dl,
                            "a 206 response for another range than asked",
                        ));
                    }
                    let hasher = match &prior {
                        None => Hasher::new(),
                        Some(state) => {
                            let Some(hasher) = partial.resume(state, total, &validators, dl)?
                            else {
                                prior = None;
                                continue;
                            };
                            hasher
                        }
                    };
                    progress.set_total(total);
                    if hasher.bytes() == total {
                        progress.advance(total);
                        let plan = Plan {
                            total,
                            validators,
                            resumed: total,
                        };
                        return Self::finish(partial, dl, &plan, hasher, 0);
                    }
                    if start > 0 {
                        tracing::info!(
                            url = dl.display_url,
                            resumed = start,
                            total,
                            "resuming download"
                        );
                        progress.advance(start);
                    }
                    let plan = Plan {
                        total,
                        validators,
                        resumed: start,
                    };
                    let parallel = self.config.connections > 1
                        && total - start >= self.config.parallel_threshold;
                    let (hasher, transferred) = if parallel {
                        self.parallel(&partial, dl, &plan, hasher, response, progress)
                            .await?
                    } else {
                        self.sequential(&partial, dl, &plan, hasher, Some(response), progress)
                            .await?
                    };
                    return Self::finish(partial, dl, &plan, hasher, transferred);
                }
                StatusCode::OK => {
                    // No range support, or `If-Range` saw a changed file: the body is all of it.
                    if start > 0 {
                        tracing::info!(
                            url = dl.display_url,
                            "the server sent the whole file; starting over"
                        );
                    }
                    return self.whole_body(partial, dl, response, progress).await;
                }
                StatusCode::RANGE_NOT_SATISFIABLE if start > 0 => {
                    // Our prefix is at least as long as the remote file: it changed.
                    prior = None;
                    partial.truncate()?;
                }
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    // An empty file: some servers refuse any range of it.
                    let response = self
                        .send(self.request(dl), dl)
                        .await
                        .map_err(|e| e.into_error(dl.display_url, 1))?;
                    return self.whole_body(partial, dl, response, progress).await;
                }
                status => return Err(status_error(dl, status, attempt + 1)),
            }
        }
    }

    /// The first request of a run: from the end of the kept prefix on, with `If-Range` when
    /// resuming. Returns the offset asked for.
    fn probe(
        &self,
        dl: &Download<'_>,
        prior: Option<&ResumeState>,
    ) -> (u64, reqwest::RequestBuilder) {
        // A run killed after the last byte but before publishing kept everything: ask for the
        // last byte only, to check that the remote is still the same file.
        let complete = prior.is_some_and(|s| s.prefix_len == s.total && s.total > 0);
        let start = prior.map_or(0, |s| if complete { s.total - 1 } else { s.prefix_len });
        let range = if complete {
            format!("bytes={start}-{start}")
        } else {
            format!("bytes={start}-")
        };
        let mut request = self.request(dl).header(header::RANGE, range);
        if let Some(v) = prior.and_then(|s| s.validators.if_range()) {
            request = request.header(header::IF_RANGE, v);
        }
        (start, request)
    }

    /// Streams a `200` response, the whole file, from byte zero.
    async fn whole_body(
        &self,
        partial: Partial,
        dl: &Download<'_>,
        response: reqwest::Response,
        progress: &dyn Progress,
    ) -> Result<Downloaded> {
        partial.truncate()?;
        progress.restart();
        if let Some(total) = response.content_length() {
            progress.set_total(total);
        }
        let plan = Plan {
            total: response.content_length().unwrap_or(u64::MAX),
            validators: Validators::from_headers(response.headers()),
            resumed: 0,
        };
        let (hasher, transferred) = self
            .sequential(&partial, dl, &plan, Hasher::new(), Some(response), progress)
            .await?;
        Self::finish(partial, dl, &plan, hasher, transferred)
    }

    fn request(&self, dl: &Download<'_>) -> reqwest::RequestBuilder {
        self.client.get(dl.url.clone()).headers(dl.headers.clone())
    }

    /// Sends a request; a transient status comes back as a transient failure.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        dl: &Download<'_>,
    ) -> Result<reqwest::Response, Failure> {
        let response = request.send().await.map_err(Failure::from_reqwest)?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            tracing::debug!(url = dl.display_url, %status, "transient status");
            return Err(Failure::status(status, true));
        }
        Ok(response)
    }

    async fn backoff(&self, attempt: u32, dl: &Download<'_>, failure: &Failure) {
        let factor = 1u32 << attempt.saturating_sub(1).min(6);
        let delay = (self.config.backoff * factor).min(Duration::from_secs(10));
        tracing::warn!(
            url = dl.display_url,
            attempt,
            retries = self.config.retries,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %failure,
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }

    /// Streams `[plan.resumed, total)` in order through one connection (reconnecting with a
    /// range when the server allows it, from zero when it does not).
    #[expect(
        clippy::too_many_lines,
        reason = "one retry loop around one stream, its three outcomes side by side"
    )]
    async fn sequential(
        &self,
        partial: &Partial,
        dl: &Download<'_>,
        plan: &Plan,
        hasher: Hasher,
        mut response: Option<reqwest::Response>,
        progress: &dyn Progress,
    ) -> Result<(Hasher, u64)> {
        let pool = Arc::new(BufPool::new(SEQUENTIAL_PIECE));
        // A single stream's writers and window: 16 buffers, room to ride out a disk that
        // pauses for a moment without holding the whole file in memory.
        let spawn_sink = |hasher, plan: &Plan| {
            let window = Arc::new(Semaphore::new(16));
            HashSink::spawn(
                hasher,
                partial,
                dl,
                plan,
                Arc::clone(&pool),
                (SEQUENTIAL_WRITERS, Some(window)),
            )
        };
        let mut sink = spawn_sink(hasher, plan);
        let mut offset = plan.resumed;
        let mut transferred = 0;
        let mut attempt = 0;
        let mut ranges = true;
        loop {
            let resp = match response.take() {
                Some(r) => r,
                None => {
                    let mut request = self.request(dl);
                    if ranges {
                        request = request.header(header::RANGE, format!("bytes={offset}-"));
                        if let Some(v) = plan.validators.if_range() {
                            request = request.header(header::IF_RANGE, v);
                        }
                    }
                    match self.send(request, dl).await {
                        Ok(r)
                            if r.status() == StatusCode::PARTIAL_CONTENT
                                && content_range(r.headers()).map(|c| c.0) == Some(offset) =>
                        {
                            r
                        }
                        Ok(r) if r.status() == StatusCode::OK => {
                            // The server ignores ranges (or the file changed): the body is the
                            // whole file, so start over from its first byte, with a new hash.
                            ranges = false;
                            if offset > 0 {
                                tracing::info!(
                                    url = dl.display_url,
                                    "the server sent the whole file; starting over"
                                );
                                drop(sink.finish());
                                partial.truncate()?;
                                let fresh = Plan {
                                    total: r.content_length().unwrap_or(u64::MAX),
                                    validators: Validators::from_headers(r.headers()),
                                    resumed: 0,
                                };
                                sink = spawn_sink(Hasher::new(), &fresh);
                                offset = 0;
                                progress.restart();
                            }
                            r
                        }
                        Ok(r) => return Err(status_error(dl, r.status(), attempt + 1)),
                        Err(e) if e.transient && attempt < self.config.retries => {
                            attempt += 1;
                            self.backoff(attempt, dl, &e).await;
                            continue;
                        }
                        Err(e) => return Err(e.into_error(dl.display_url, attempt + 1)),
                    }
                }
            };
            let end = if plan.total == u64::MAX {
                u64::MAX
            } else {
                plan.total
            };
            match read_body(
                resp,
                offset,
                end,
                &sink,
                progress,
                self.config.stall_timeout,
            )
            .await
            {
                Ok(n) => {
                    transferred += n;
                    offset += n;
                    if plan.total == u64::MAX || offset == plan.total {
                        break;
                    }
                    // The server closed cleanly before the end: treat as a cut connection.
                    let failure =
                        Failure::other("the connection closed before the end of the file", true);
                    if attempt >= self.config.retries {
                        return Err(failure.into_error(dl.display_url, attempt + 1));
                    }
                    attempt += 1;
                    self.backoff(attempt, dl, &failure).await;
                }
                Err(BodyError { read, failure }) => {
                    transferred += read;
                    offset += read;
                    if !failure.transient || attempt >= self.config.retries {
                        return Err(failure.into_error(dl.display_url, attempt + 1));
                    }
                    attempt += 1;
                    self.backoff(attempt, dl, &failure).await;
                }
            }
        }
        let hasher = sink.finish()?;
        Ok((hasher, transferred))
    }

    /// Fetches `[plan.resumed, total)` as chunks over several connections at once. `first` is
    /// the open-ended response of the probe: it delivers the first chunk, then is dropped.
    async fn parallel(
        &self,
        partial: &Partial,
        dl: &Download<'_>,
        plan: &Plan,
        hasher: Hasher,
        first: reqwest::Response,
        progress: &dyn Progress,
    ) -> Result<(Hasher, u64)> {
        let chunk = self.config.chunk_size;
        // Chunks start at multiples of `chunk` from the start of the file, so that after a
        // resume from an odd offset only the first is unaligned for direct writes.
        let first_index = plan.resumed / chunk;
        let n_chunks =
            usize::try_from(plan.total.div_ceil(chunk) - first_index).unwrap_or(usize::MAX);
        let pool = Arc::new(BufPool::new(
            usize::try_from(chunk).expect("chunks fit in memory"),
        ));
        let writers = self.config.connections.clamp(2, PARALLEL_WRITERS);
        // Chunks being received, plus as many again being written or waiting for the hasher.
        let window = Arc::new(Semaphore::new(self.config.connections + writers));
        let sink = HashSink::spawn(
            hasher,
            partial,
            dl,
            plan,
            pool,
            (writers, Some(Arc::clone(&window))),
        );
        let next = Arc::new(AtomicUsize::new(1));
        let range_of = |i: usize| {
            let k = first_index + i as u64;
            (
                (k * chunk).max(plan.resumed),
                ((k + 1) * chunk).min(plan.total),
            )
        };
        let first_permit = Arc::clone(&window)
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let mut first = Some((first, first_permit));
        let worker = |mut first: Option<(reqwest::Response, OwnedSemaphorePermit)>| {
            let window = Arc::clone(&window);
            let next = Arc::clone(&next);
            let sink = &sink;
            async move {
                let mut transferred = 0u64;
                loop {
                    let (index, response, permit) = match first.take() {
                        Some((r, p)) => (0, Some(r), p),
                        None => {
                            // Closed when another worker failed: stop, that error is reported.
                            let Ok(permit) = Arc::clone(&window).acquire_owned().await else {
                                return Ok::<u64, Error>(transferred);
                            };
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            if index >= n_chunks {
                                return Ok(transferred);
                            }
                            (index, None, permit)
                        }
                    };
                    let (start, end) = range_of(index);
                    let fetched = self
                        .fetch_chunk(
                            dl,
                            plan,
                            (start, end),
                            response,
                            sink.buffer(),
                            progress,
                            &mut transferred,
                        )
                        .await;
                    match fetched {
                        Ok(buf) => sink.send(start, buf, Some(permit)),
                        Err(e) => {
                            // The hasher can never pass this chunk now, so the permits it holds
                            // would never come back: wake and stop every other worker.
                            window.close();
                            return Err(e);
                        }
                    }
                }
            }
        };
        let workers: Vec<_> = (0..self.config.connections.min(n_chunks))
            .map(|_| worker(first.take()))
            .collect();
        let results = run_on_threads(workers);
        let mut transferred = 0;
        let mut failure = None;
        for r in results {
            match r {
                Ok(n) => transferred += n,
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            // Keep what was hashed so far for the next run.
            drop(sink.finish());
            return Err(e);
        }
        let hasher = sink.finish()?;
        Ok((hasher, transferred))
    }

    /// Fetches `[start, end)` into `buf`, retrying transient failures; `response` is an
    /// already open response starting at `start`, if there is one.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, each argument distinct"
    )]
    async fn fetch_chunk(
        &self,
        dl: &Download<'_>,
        plan: &Plan,
        (start, end): (u64, u64),
        mut response: Option<reqwest::Response>,
        mut buf: PageBuf,
        progress: &dyn Progress,
        transferred: &mut u64,
    ) -> Result<PageBuf> {
        let len = usize::try_from(end - start).expect("chunks fit in memory");
        assert!(len <= buf.capacity(), "a chunk fits its buffer");
        let mut attempt = 0;
        loop {
            let have = buf.len() as u64;
            let result = async {
                let mut resp = match response.take() {
                    Some(r) => r,
                    None => {
                        let mut request = self
                            .request(dl)
                            .header(header::RANGE, format!("bytes={}-{}", start + have, end - 1));
                        if let Some(v) = plan.validators.if_range() {
                            request = request.header(header::IF_RANGE, v);
                        }
                        let r = self.send(request, dl).await?;
                        if r.status() != StatusCode::PARTIAL_CONTENT {
                            // A 200 here means the file changed under us (If-Range failed).
                            return Err(Failure::status(r.status(), false));
                        }
                        if content_range(r.headers()).map(|c| c.0) != Some(start + have) {
                            return Err(Failure::other(
                                "a 206 response for another range than asked",
                                false,
                            ));
                        }
                        r
                    }
                };
                while buf.len() < len {
                    let piece = tokio::time::timeout(self.config.stall_timeout, resp.chunk())
                        .await
                        .map_err(|_| Failure::stalled(self.config.stall_timeout))?
                        .map_err(Failure::from_reqwest)?;
                    let Some(piece) = piece else {
                        return Err(Failure::other(
                            "the connection closed before the end of the range",
                            true,
                        ));
                    };
                    let take = piece.len().min(len - buf.len());
                    buf.push(&piece[..take]);
                    progress.advance(take as u64);
                    *transferred += take as u64;
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(buf),
                Err(f) if f.transient && attempt < self.config.retries => {
                    attempt += 1;
                    self.backoff(attempt, dl, &f).await;
                }
                Err(f) => return Err(f.into_error(dl.display_url, attempt + 1)),
            }
        }
    }

    /// Syncs, checks size and digest, and hands the file over as staged.
    fn finish(
        partial: Partial,
        dl: &Download<'_>,
        plan: &Plan,
        hasher: Hasher,
        transferred: u64,
    ) -> Result<Downloaded> {
        let size = hasher.bytes();
        let digest = hasher.finish();
        if plan.total != u64::MAX && size != plan.total {
            partial.discard();
            return Err(protocol_error(
                dl,
                &format!("received {size} bytes, but the file has {}", plan.total),
            ));
        }
        if let Some(expected) = dl.expected
            && expected != &digest
        {
            partial.discard();
            return Err(Error::mismatch(dl.id, expected, &digest));
        }
        partial
            .file
            .set_len(size)
            .map_err(|e| catalog_core::Error::io("truncate", &partial.part_path, e))?;
        partial
            .file
            .sync_all()
            .map_err(|e| catalog_core::Error::io("sync", &partial.part_path, e))?;
        let _ = std::fs::remove_file(&partial.state_path);
        let Partial {
            part_path, file, ..
        } = partial;
        let handle = Arc::try_unwrap(file).ok();
        Ok(Downloaded {
            staged: StagedFile::from_synced(&part_path, digest, size, handle)?,
            transferred,
            resumed: plan.resumed,
            etag: plan.validators.etag.clone(),
        })
    }
}

/// Runs each future to completion on a thread of its own (the first on the calling thread), so
/// that the copies of several connections use several cores. The futures borrow the
/// request, so they cannot be spawned as tasks; each thread drives its own on the engine's
/// runtime instead. A thread that cannot be started leaves its share to the others.
fn run_on_threads<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let mut futures = futures.into_iter();
            let first = futures.next();
            let others: Vec<_> = futures
                .enumerate()
                .filter_map(|(i, f)| {
                    let handle = &handle;
                    std::thread::Builder::new()
                        .name(format!("model-provisioner-dl{}", i + 1))
                        .spawn_scoped(scope, move || handle.block_on(f))
                        .inspect_err(|e| tracing::debug!(error = %e, "no thread for a connection"))
                        .ok()
                })
                .collect();
            let mut out: Vec<_> = first.map(|f| handle.block_on(f)).into_iter().collect();
            for thread in others {
                match thread.join() {
                    Ok(v) => out.push(v),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            out
        })
    })
}

/// Writes in flight at once, at most, for parallel ranges.
const PARALLEL_WRITERS: usize = 4;

/// Writes in flight at once for a single stream.
const SEQUENTIAL_WRITERS: usize = 2;

/// How much of a single stream is buffered before it is written and handed to the hasher:
/// large enough for efficient direct writes, small enough for a fine-grained resume state.
const SEQUENTIAL_PIECE: usize = 4 << 20;

/// What is known before the bytes flow.
#[derive(Debug)]
struct Plan {
    /// The file's size, `u64::MAX` when the server did not say.
    total: u64,
    validators: Validators,
    /// Bytes kept from an earlier run.
    resumed: u64,
}

/// The partial file of one download, locked by this process.
#[derive(Debug, Clone)]
struct Partial {
    part_path: PathBuf,
    state_path: PathBuf,
    file: Arc<File>,
    writer: Arc<Writer>,
}

impl Partial {
    fn open(part_path: PathBuf, state_path: PathBuf, direct_io: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part_path)
            .map_err(|e| catalog_core::Error::io("create", &part_path, e))?;
        if let Err(e) = file.try_lock() {
            // Another process is downloading the same file. Without single-flight we would
            // duplicate the work; make our own copy rather than fight over one.
            tracing::debug!(path = %part_path.display(), error = %e, "partial file busy; downloading to a fresh one");
            let dir = part_path.parent().expect("partial files live in tmp/");
            let (file, path) = tempfile::Builder::new()
                .prefix("dl-")
                .suffix(".part")
                .tempfile_in(dir)
                .map_err(|e| catalog_core::Error::io("create a temporary file in", dir, e))?
                .into_parts();
            file.lock()
                .map_err(|e| catalog_core::Error::io("lock", &*path, e))?;
            let path = path
                .keep()
                .map_err(|e| catalog_core::Error::io("keep", dir, e.error))?;
            return Ok(Partial {
                state_path: path.with_extension("state"),
                writer: Arc::new(Writer::open(&path, direct_io)),
                part_path: path,
                file: Arc::new(file),
            });
        }
        Ok(Partial {
            writer: Arc::new(Writer::open(&part_path, direct_io)),
            part_path,
            state_path,
            file: Arc::new(file),
        })
    }

    fn load_state(&self, url: &str) -> Option<ResumeState> {
        let text = std::fs::read(&self.state_path).ok()?;
        let state: ResumeState = serde_json::from_slice(&text).ok()?;
        let on_disk = self.file.metadata().ok()?.len();
        (state.url == url && state.prefix_len <= on_disk && state.prefix_len <= state.total)
            .then_some(state)
    }

    /// Records the prefix `hasher` has hashed so far in `state`, and saves it.
    fn save_prefix(&self, hasher: &Hasher, state: &mut ResumeState) {
        hasher
            .clone()
            .finish()
            .value()
            .clone_into(&mut state.prefix_sha256);
        self.save_state(state);
    }

    fn save_state(&self, state: &ResumeState) {
        // Not synced: a state that did not reach the disk only means a resume from less.
        let tmp = self.state_path.with_extension("state-new");
        let written = serde_json::to_vec(state)
            .map_err(io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.state_path));
        if let Err(e) = written {
            tracing::debug!(path = %self.state_path.display(), error = %e, "could not save resume state");
        }
    }

    fn truncate(&self) -> Result<()> {
        let _ = std::fs::remove_file(&self.state_path);
        self.file
            .set_len(0)
            .map_err(|e| catalog_core::Error::io("truncate", &self.part_path, e).into())
    }

    /// Checks a resume state against what the server now says and what is on disk. Returns the
    /// hasher fed with the kept prefix, or `None` (having truncated the file) to start over.
    fn resume(
        &self,
        state: &ResumeState,
        total: u64,
        validators: &Validators,
        dl: &Download<'_>,
    ) -> Result<Option<Hasher>> {
        let why = if state.total != total || state.validators != *validators {
            "the remote file changed"
        } else if let Some(hasher) = self.rehash_prefix(state)? {
            return Ok(Some(hasher));
        } else {
            "the kept bytes no longer match their hash"
        };
        tracing::info!(url = dl.display_url, "{why}; starting over");
        self.truncate()?;
        Ok(None)
    }

    /// Hashes the kept prefix; `None` when it no longer matches the recorded hash.
    fn rehash_prefix(&self, state: &ResumeState) -> Result<Option<Hasher>> {
        let mut hasher = Hasher::new();
        let mut file = &*self.file;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| catalog_core::Error::io("read", &self.part_path, e))?;
        let mut reader = file.take(state.prefix_len);
        let mut buf = vec![0u8; HASH_BUF_SIZE];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| catalog_core::Error::io("read", &self.part_path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let ok = hasher.bytes() == state.prefix_len
            && hasher.clone().finish().value() == state.prefix_sha256;
        Ok(ok.then_some(hasher))
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(&self.part_path);
        let _ = std::fs::remove_file(&self.state_path);
    }
}

/// A piece of the file for the hasher: its offset, its bytes, and the window permit it holds.
type Piece = (u64, PageBuf, Option<OwnedSemaphorePermit>);

/// Writes a download's bytes back to disk while it runs, so that the final fsync before
/// publishing has only the last moments left to flush (measured: a third of the time of a
/// 2 GiB download on loopback went to one fsync at the end). Direct writes need it too: their
/// bytes are on the device, but the device's write cache still has to be flushed, and that
/// took 2.5 s at the end of a 2 GiB download left to the last fsync. Errors are left to that
/// final fsync, which reports them.
struct Flusher {
    stop: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    const EVERY: Duration = Duration::from_millis(250);

    fn start(file: Arc<File>) -> Self {
        let stop = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("model-provisioner-flush".into())
                .spawn(move || {
                    let (lock, wake) = &*stop;
                    let mut stopped = lock.lock().expect("poisoned");
                    while !*stopped {
                        stopped = wake.wait_timeout(stopped, Self::EVERY).expect("poisoned").0;
                        if !*stopped {
                            let _ = file.sync_data();
                        }
                    }
                })
                .ok()
        };
        Flusher { stop, thread }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().expect("poisoned") = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where received buffers go. Writer threads put each buffer at its offset in the partial
/// file, so that receiving never waits for the disk and several writes are in flight at once;
/// then the hasher thread takes the written buffers in any order, hashes them in file order,
/// records the resume state (which so only ever covers bytes on disk), and gives each buffer
/// back to the pool. The first failed write closes the window, if any, so that no new chunk
/// starts; [`HashSink::failure`] and [`HashSink::finish`] report it.
struct HashSink {
    tx: Option<mpsc::Sender<Piece>>,
    writers: Vec<std::thread::JoinHandle<()>>,
    thread: Option<std::thread::JoinHandle<Hasher>>,
    pool: Arc<BufPool>,
    failed: Arc<std::sync::Mutex<Option<io::Error>>>,
    part_path: PathBuf,
    window: Option<Arc<Semaphore>>,
}

impl HashSink {
    /// Starts `writers` writer threads and the hasher. `window`, when given, is closed on a
    /// failed write, to stop the connections waiting for room.
    fn spawn(
        mut hasher: Hasher,
        partial: &Partial,
        dl: &Download<'_>,
        plan: &Plan,
        pool: Arc<BufPool>,
        (writers, window): (usize, Option<Arc<Semaphore>>),
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Piece>();
        let (hash_tx, hash_rx) = mpsc::channel::<Piece>();
        let failed = Arc::new(std::sync::Mutex::new(None::<io::Error>));
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let writers = (0..writers.max(1))
            .map(|i| {
                let stage = WriteStage {
                    rx: Arc::clone(&rx),
                    to_hasher: hash_tx.clone(),
                    failed: Arc::clone(&failed),
                    pool: Arc::clone(&pool),
                    window: window.clone(),
                    file: Arc::clone(&partial.file),
                    writer: Arc::clone(&partial.writer),
                };
                std::thread::Builder::new()
                    .name(format!("model-provisioner-write{i}"))
                    .spawn(move || stage.run())
                    .expect("spawning a thread")
            })
            .collect();
        drop(hash_tx);
        let mut state = ResumeState {
            url: dl.display_url.to_owned(),
            total: plan.total,
            validators: plan.validators.clone(),
            prefix_len: plan.resumed,
            prefix_sha256: String::new(),
        };
        let resumable = plan.total != u64::MAX;
        let partial_for_state = partial.clone();
        let thread_pool = Arc::clone(&pool);
        let thread = std::thread::Builder::new()
            .name("model-provisioner-hash".into())
            .spawn(move || {
                let (pool, partial) = (thread_pool, partial_for_state);
                let mut pending: BTreeMap<u64, (PageBuf, Option<OwnedSemaphorePermit>)> =
                    BTreeMap::new();
                let mut last_save = Instant::now();
                for (offset, buf, permit) in hash_rx {
                    pending.insert(offset, (buf, permit));
                    while let Some((buf, permit)) = pending.remove(&state.prefix_len) {
                        hasher.update(buf.bytes());
                        state.prefix_len += buf.len() as u64;
                        pool.give(buf);
                        drop(permit);
                        if resumable && last_save.elapsed() >= Duration::from_millis(200) {
                            partial.save_prefix(&hasher, &mut state);
                            last_save = Instant::now();
                        }
                    }
                }
                if resumable && state.prefix_len > 0 {
                    partial.save_prefix(&hasher, &mut state);
                }
                hasher
            })
            .expect("spawning a thread");
        HashSink {
            tx: Some(tx),
            writers,
            thread: Some(thread),
            pool,
            failed,
            part_path: partial.part_path.clone(),
            window,
        }
    }

    /// Waits for room in the window, if there is one; `None` when there is none or it was
    /// closed by a failed write (which [`HashSink::failure`] then reports).
    async fn room(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(self.window.as_ref()?).acquire_owned().await.ok()
    }

    /// An empty buffer, reused from the pool when one has come back from the hasher.
    fn buffer(&self) -> PageBuf {
        self.pool.take()
    }

    /// Queues `buf` to be written at `offset`, then hashed.
    fn send(&self, offset: u64, buf: PageBuf, permit: Option<OwnedSemaphorePermit>) {
        if let Some(tx) = &self.tx {
            // The writers only stop after `finish`; a send error means they panicked, which
            // `finish` reports.
            let _ = tx.send((offset, buf, permit));
        }
    }

    /// The first failed write so far, taken out (it is reported once).
    fn failure(&self) -> Option<catalog_core::Error> {
        let e = self.failed.lock().ok()?.take()?;
        Some(catalog_core::Error::io("write", &self.part_path, e))
    }

    /// Waits for everything sent to be written and hashed, and returns the hasher.
    fn finish(mut self) -> Result<Hasher> {
        let hasher = self.join();
        if let Some(e) = self.failure() {
            return Err(e.into());
        }
        hasher.ok_or_else(|| {
            catalog_core::Error::io(
                "hash",
                &self.part_path,
                io::Error::other("a writing or hashing thread panicked"),
            )
            .into()
        })
    }

    fn join(&mut self) -> Option<Hasher> {
        drop(self.tx.take());
        let writers_ok = self.writers.drain(..).all(|w| w.join().is_ok());
        let hasher = self.thread.take()?.join().ok();
        hasher.filter(|_| writers_ok)
    }
}

/// What one writer thread of a [`HashSink`] works with.
struct WriteStage {
    rx: Arc<std::sync::Mutex<mpsc::Receiver<Piece>>>,
    to_hasher: mpsc::Sender<Piece>,
    failed: Arc<std::sync::Mutex<Option<io::Error>>>,
    pool: Arc<BufPool>,
    window: Option<Arc<Semaphore>>,
    file: Arc<File>,
    writer: Arc<Writer>,
}

impl WriteStage {
    /// Writes pieces until the sending side hangs up. After a failure it still writes what
    /// arrives (the chunks already in flight), so that the next run keeps as long a prefix as
    /// the disk allowed.
    fn run(self) {
        loop {
            let next = match self.rx.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok((offset, buf, permit)) = next else {
                return;
            };
            match self.writer.write_at(&self.file, buf.bytes(), offset) {
                Ok(()) => drop(self.to_hasher.send((offset, buf, permit))),
                Err(e) => {
                    if let Ok(mut first) = self.failed.lock() {
                        first.get_or_insert(e);
                    }
                    if let Some(w) = &self.window {
                        w.close();
                    }
                    self.pool.give(buf);
                }
            }
        }
    }
}

impl Drop for HashSink {
    /// On an error path, still wait for the writers and the hasher, so that the resume state
    /// written last is on disk before the process moves on or exits.
    fn drop(&mut self) {
        self.join();
    }
}

/// A body read that failed after `read` bytes.
struct BodyError {
    read: u64,
    failure: Failure,
}

/// Reads a response body from `offset` up to `end`, writing it in place a buffer at a time and
/// handing each buffer to the hasher. Returns the bytes read.
async fn read_body(
    mut resp: reqwest::Response,
    offset: u64,
    end: u64,
    sink: &HashSink,
    progress: &dyn Progress,
    stall: Duration,
) -> Result<u64, BodyError> {
    let mut buf = sink.buffer();
    let mut flushed = offset;
    let mut read = 0u64;
    let flush = |buf: &mut PageBuf,
                 flushed: &mut u64,
                 permit: Option<OwnedSemaphorePermit>|
     -> Result<(), Failure> {
        if let Some(e) = sink.failure() {
            return Err(Failure::local(e));
        }
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len() as u64;
        sink.send(*flushed, std::mem::replace(buf, sink.buffer()), permit);
        *flushed += len;
        Ok(())
    };
    loop {
        let next = tokio::time::timeout(stall, resp.chunk()).await;
        let chunk = match next {
            Err(_) => Err(Failure::stalled(stall)),
            Ok(Err(e)) => Err(Failure::from_reqwest(e)),
            Ok(Ok(c)) => Ok(c),
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(failure) => {
                return match flush(&mut buf, &mut flushed, sink.room().await) {
                    Ok(()) => Err(BodyError { read, failure }),
                    Err(local) => Err(BodyError {
                        read,
                        failure: local,
                    }),
                };
            }
        };
        let room = end.saturating_sub(offset + read);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
        let mut remaining = &chunk[..take];
        while !remaining.is_empty() {
            remaining = &remaining[buf.push(remaining)..];
            if buf.is_full() {
                flush(&mut buf, &mut flushed, sink.room().await)
                    .map_err(|failure| BodyError { read, failure })?;
            }
        }
        read += take as u64;
        progress.advance(take as u64);
        if take < chunk.len() {
            break;
        }
    }
    flush(&mut buf, &mut flushed, sink.room().await)
        .map_err(|failure| BodyError { read, failure })?;
    Ok(read)
}

/// `Content-Range: bytes <first>-<last>/<total>` as `(first, total)`.
fn content_range(headers: &HeaderMap) -> Option<(u64, u64)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (
        first.parse().ok()?,
        last.parse::<u64>().ok()?,
        total.parse().ok()?,
    );
    (first <= last && last < total).then_some((first, total))
}

/// One failed attempt, before it becomes an [`Error`].
#[derive(Debug)]
struct Failure {
    status: Option<StatusCode>,
    transient: bool,
    reason: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    local: Option<Box<Error>>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        let mut source = self.source.as_deref().map(|s| s as &dyn std::error::Error);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl Failure {
    fn from_reqwest(e: reqwest::Error) -> Self {
        let transient =
            e.is_timeout() || e.is_connect() || e.is_body() || e.is_request() || e.is_decode();
        let reason = if e.is_timeout() {
            "the request timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "the connection broke while receiving the body"
        } else {
            "the request failed"
        };
        Failure {
            status: e.status(),
            transient,
            reason: reason.to_owned(),
            source: Some(Box::new(e.without_url())),
            local: None,
        }
    }

    fn status(status: StatusCode, transient: bool) -> Self {
        Failure {
            status: Some(status),
            transient,
            reason: format!("HTTP {status}"),
            source: None,
            local: None,
        }
    }

    fn stalled(after: Duration) -> Self {
        Failure::other(&format!("no data for {} s", after.as_secs()), true)
    }

    fn other(reason: &str, transient: bool) -> Self {
        Failure {
            status: None,
            transient,
            reason: reason.to_owned(),
            source: None,
            local: None,
        }
    }

    fn local(e: catalog_core::Error) -> Self {
        Failure {
            status: None,
            transient: false,
            reason: String::new(),
            source: None,
            local: Some(Box::new(e.into())),
        }
    }

    fn into_error(self, url: &str, attempts: u32) -> Error {
        if let Some(local) = self.local {
            return *local;
        }
        Error::Download {
            url: url.to_owned(),
            status: self.status.map(|s| s.as_u16()),
            attempts,
            reason: self.reason,
            source: self.source,
        }
    }
}

fn status_error(dl: &Download<'_>, status: StatusCode, attempts: u32) -> Error {
    Failure::status(status, false).into_error(dl.display_url, attempts)
}

fn protocol_error(dl: &Download<'_>, what: &str) -> Error {
    Error::Download {
        url: dl.display_url.to_owned(),
        status: None,
        attempts: 1,
        reason: format!("the server sent {what}"),
        source: None,
    }
}

/// A stable key for the partial file of `id`: the first 32 hex digits of its SHA-256.
pub fn partial_key(id: &str) -> String {
    Digest::sha256_of(id.as_bytes()).value()[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 100-199/1000"),
        );
        assert_eq!(content_range(&h), Some((100, 1000)));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes */1000"),
        );
        assert_eq!(content_range(&h), None);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 5-4/10"),
        );
        assert_eq!(content_range(&h), None);
    }

    #[test]
    fn if_range_prefers_a_strong_etag() {
        let v = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Wed, 25 Nov 2026 17:00:00 GMT".into()),
        };
        assert_eq!(v.if_range(), Some("\"abc\""));
        let weak = Validators {
            etag: Some("W/\"abc\"".into()),
            ..v.clone()
        };
        assert_eq!(weak.if_range(), v.last_modified.as_deref());
    }
}
