//! The state machine of one download: probe, then resume, restart, stream, or fetch chunks in
//! parallel; then check and hand over.
//!
//! ```text
//! probe: GET Range: bytes=<first missing byte>-  (If-Range: the recorded validator)
//!   206, same remote, prefix re-hashes ─▶ fetch the missing ranges (parallel when large or
//!                                          when chunks were kept), hash kept chunks in order
//!   206, another remote or bad prefix  ─▶ truncate, probe again from zero
//!   200                                ─▶ the whole body, streamed from byte zero (a server
//!                                         without ranges, a changed file, or a pull-through
//!                                         cache that has not cached the file yet)
//!   416                                ─▶ the remote shrank: start over (or an empty file)
//! finish: size and digest checked, file synced, record removed, handed over as staged
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use catalog_core::{Hasher, StagedFile};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::budget::Lease;
use super::range::{Validators, content_range, range_headers, work};
use super::resume::{Partial, ResumeState};
use super::retry::Failure;
use super::sink::HashSink;
use super::source::send;
use super::{Download, Downloaded, Downloader};
use crate::error::{Error, Result};
use crate::reporter::Progress;

/// Writes in flight at once, at most, for parallel ranges.
const PARALLEL_WRITERS: usize = 4;

/// Writes in flight at once for a single stream.
const SEQUENTIAL_WRITERS: usize = 2;

/// Pieces of a single stream buffered at once: room to ride out a disk that pauses for a
/// moment without holding the whole file in memory (64 MiB).
const SEQUENTIAL_WINDOW: usize = 16;

/// How much of a single stream is buffered before it is written and handed to the hasher:
/// large enough for efficient direct writes, small enough for a fine-grained resume record.
pub(crate) const SEQUENTIAL_PIECE: usize = 4 << 20;

/// What is known before the bytes flow.
#[derive(Debug, Clone)]
struct Plan {
    /// The file's size, when the server said.
    total: Option<u64>,
    validators: Validators,
    /// Bytes `[0, prefix)` are on disk and hashed.
    prefix: u64,
    /// Ranges beyond the prefix on disk from an earlier run, not hashed yet.
    kept: Vec<(u64, u64)>,
}

impl Plan {
    fn resumed(&self) -> u64 {
        self.prefix + self.kept.iter().map(|(s, e)| e - s).sum::<u64>()
    }
}

/// One download in progress.
pub(super) struct Run<'a> {
    engine: &'a Downloader,
    /// The cache directory, whose file system must have room for the bytes.
    cache: &'a std::path::Path,
    dl: &'a Download<'a>,
    partial: Partial,
    progress: &'a dyn Progress,
    /// The expected digest, as the resume record writes it.
    digest: Option<String>,
}

impl<'a> Run<'a> {
    pub(super) fn new(
        engine: &'a Downloader,
        cache: &'a std::path::Path,
        dl: &'a Download<'a>,
        partial: Partial,
        progress: &'a dyn Progress,
    ) -> Self {
        Run {
            engine,
            cache,
            dl,
            partial,
            progress,
            digest: dl.expected.digest.map(ToString::to_string),
        }
    }

    fn url(&self) -> &str {
        self.dl.source.display()
    }

    /// The record to keep for `plan` (`None` when the size is unknown: no resume then).
    fn record(&self, plan: &Plan, hasher: &Hasher) -> Option<ResumeState> {
        Some(ResumeState {
            url: self.url().to_owned(),
            digest: self.digest.clone(),
            total: plan.total?,
            validators: plan.validators.clone(),
            prefix_len: hasher.bytes(),
            prefix_sha256: hasher.clone().finish().value().to_owned(),
            chunks: plan.kept.clone(),
        })
    }

    async fn send(&self, headers: &HeaderMap) -> Result<reqwest::Response, Failure> {
        send(self.dl.source, self.engine.clients(), headers).await
    }

    pub(super) async fn fetch(self) -> Result<Downloaded> {
        let mut prior = self.partial.load_state(self.url(), self.digest.as_deref());
        if prior.is_none() {
            self.partial.truncate()?;
        }
        let mut attempts = self.engine.config.retry.attempts(self.url());
        // A changed remote or a damaged prefix sends us back here, from byte zero.
        loop {
            let config = &self.engine.config;
            // A file known to be large enough for parallel ranges is asked for its first chunk
            // only: an open-ended first request would be cut once the other ranges start, and
            // what the server sent past the chunk would be wasted.
            let parallel_size = self
                .dl
                .expected
                .size
                .filter(|&size| config.connections > 1 && size >= config.parallel_threshold);
            let (asked, headers) = probe(
                prior.as_ref(),
                self.digest.as_deref(),
                config.chunk_size,
                parallel_size,
            );
            let response = match self.send(&headers).await {
                Ok(r) => r,
                Err(f) => {
                    attempts.failed(f).await?;
                    continue;
                }
            };
            let validators = Validators::from_headers(response.headers());
            let fail = |f: Failure| Err(f.into_error(self.url(), attempts.count()));
            match response.status() {
                StatusCode::PARTIAL_CONTENT => {
                    let Some((first, total)) = content_range(response.headers()) else {
                        return fail(Failure::protocol(
                            "a 206 response without a valid `Content-Range`",
                        ));
                    };
                    if first != asked {
                        return fail(Failure::protocol(
                            "a 206 response for another range than asked",
                        ));
                    }
                    if let Some(size) = self.dl.expected.size
                        && size != total
                    {
                        return fail(Failure::protocol(&format!(
                            "a file of {total} bytes, but {size} were expected"
                        )));
                    }
                    self.ensure_room(total.saturating_sub(asked))?;
                    let mut plan = Plan {
                        total: Some(total),
                        validators,
                        prefix: 0,
                        kept: Vec::new(),
                    };
                    let hasher = match prior.take() {
                        None => Hasher::new(),
                        Some(state) => match self.resume(&state, &plan)? {
                            Some(hasher) => {
                                plan.prefix = hasher.bytes();
                                plan.kept = state.chunks;
                                hasher
                            }
                            None => continue,
                        },
                    };
                    return self.ranged(plan, hasher, asked, response).await;
                }
                StatusCode::OK => {
                    self.ensure_room(response.content_length().unwrap_or(0))?;
                    // No range support, or `If-Range` saw a changed file: the body is all of it.
                    if asked > 0 {
                        tracing::info!(
                            url = self.url(),
                            "the server sent the whole file; starting over"
                        );
                    }
                    return self.whole_body(response).await;
                }
                StatusCode::RANGE_NOT_SATISFIABLE if asked > 0 => {
                    // Our prefix is at least as long as the remote file: it changed.
                    prior = None;
                    self.partial.truncate()?;
                }
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    // An empty file: some servers refuse any range of it.
                    let response = self
                        .send(&HeaderMap::new())
                        .await
                        .map_err(|f| f.into_error(self.url(), 1))?;
                    return self.whole_body(response).await;
                }
                status => return fail(Failure::status(status)),
            }
        }
    }

    /// For a download whose size the fetcher did not know (so could not check room for before
    /// it started), checks that `to_come` bytes fit, now that the server said, before any of the
    /// body is written. A partial file this run created and left empty is removed on failure.
    fn ensure_room(&self, to_come: u64) -> Result<()> {
        if self.dl.expected.size.is_some() {
            return Ok(());
        }
        let checked = super::room::check(self.cache, self.dl.id, to_come);
        if checked.is_err() {
            self.partial.remove_if_empty();
        }
        checked
    }

    /// Checks an earlier run's record against what the server now says and what is on disk.
    /// Returns the hasher fed with the kept prefix, or `None` (having truncated the file) to
    /// start over.
    fn resume(&self, state: &ResumeState, plan: &Plan) -> Result<Option<Hasher>> {
        let now = self
            .record(plan, &Hasher::new())
            .expect("a 206 states the size");
        let why = if !state.same_remote(&now) {
            "the remote file changed"
        } else if let Some(hasher) = self.partial.rehash_prefix(state)? {
            return Ok(Some(hasher));
        } else {
            "the kept bytes no longer match their hash"
        };
        tracing::info!(url = self.url(), "{why}; starting over");
        self.partial.truncate()?;
        Ok(None)
    }

    /// A `206` to the probe: the missing ranges, in parallel or in one stream.
    async fn ranged(
        self,
        plan: Plan,
        hasher: Hasher,
        asked: u64,
        response: reqwest::Response,
    ) -> Result<Downloaded> {
        let total = plan.total.expect("a 206 states the size");
        self.progress.set_total(total);
        let resumed = plan.resumed();
        if resumed > 0 {
            tracing::info!(url = self.url(), resumed, total, "resuming download");
            self.progress.advance(resumed);
        }
        if plan.kept.is_empty() && hasher.bytes() == total {
            return self.finish(&plan, hasher, 0);
        }
        let config = &self.engine.config;
        let parallel = !plan.kept.is_empty()
            || (config.connections > 1 && total - asked >= config.parallel_threshold);
        let (hasher, transferred) = if parallel {
            // The range the probe's response delivers is the first the hasher needs: its
            // buffer is leased before any other range is taken, so that downloads sharing the
            // budget can never hold it all with later ranges while each waits for its first
            // (the earliest range in flight always holds its memory, across downloads too).
            let chunk_buf = usize::try_from(config.chunk_size).expect("chunks fit in memory");
            let first_lease = self.engine.budget.lease(chunk_buf).await;
            match self.parallel(&plan, hasher, asked, (response, first_lease))? {
                Ranges::Done(hasher, transferred) => (hasher, transferred),
                Ranges::Whole(response) => {
                    tracing::info!(
                        url = self.url(),
                        "the server sent the whole file for a range; starting over as one stream"
                    );
                    return self.whole_body(response).await;
                }
            }
        } else {
            self.sequential(plan.clone(), hasher, Some(response))
                .await?
        };
        self.finish(&plan, hasher, transferred)
    }

    /// Streams a `200` response, the whole file, from byte zero.
    async fn whole_body(self, response: reqwest::Response) -> Result<Downloaded> {
        // A server that ignores `Range` (or a pull-through cache that has not cached the file
        // yet) sends it all with `200`: read as one stream, its digest checked as ever.
        self.partial.truncate()?;
        self.progress.restart();
        if let Some(total) = response.content_length() {
            self.progress.set_total(total);
        }
        let plan = Plan {
            total: response.content_length(),
            validators: Validators::from_headers(response.headers()),
            prefix: 0,
            kept: Vec::new(),
        };
        let (hasher, transferred) = self
            .sequential(plan.clone(), Hasher::new(), Some(response))
            .await?;
        self.finish(&plan, hasher, transferred)
    }

    fn spawn_sink(&self, plan: &Plan, hasher: Hasher, writers: usize, window: usize) -> HashSink {
        let state = self.record(plan, &hasher);
        HashSink::spawn(
            hasher,
            &self.partial,
            state,
            writers,
            Some(Arc::new(Semaphore::new(window))),
        )
    }

    /// Streams `[plan.prefix, total)` in order through one connection (reconnecting with a
    /// range when the server allows it, from zero when it does not).
    async fn sequential(
        &self,
        mut plan: Plan,
        hasher: Hasher,
        mut response: Option<reqwest::Response>,
    ) -> Result<(Hasher, u64)> {
        let mut sink = self.spawn_sink(&plan, hasher, SEQUENTIAL_WRITERS, SEQUENTIAL_WINDOW);
        let mut offset = plan.prefix;
        let mut transferred = 0;
        let mut attempts = self.engine.config.retry.attempts(self.url());
        let mut ranges = true;
        loop {
            let resp = match response.take() {
                Some(r) => r,
                None => {
                    let headers = if ranges {
                        range_headers(offset, None, plan.validators.if_range())
                    } else {
                        HeaderMap::new()
                    };
                    match self.send(&headers).await {
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
                                    url = self.url(),
                                    "the server sent the whole file; starting over"
                                );
                                drop(sink.finish());
                                self.partial.truncate()?;
                                plan = Plan {
                                    total: r.content_length(),
                                    validators: Validators::from_headers(r.headers()),
                                    prefix: 0,
                                    kept: Vec::new(),
                                };
                                sink = self.spawn_sink(
                                    &plan,
                                    Hasher::new(),
                                    SEQUENTIAL_WRITERS,
                                    SEQUENTIAL_WINDOW,
                                );
                                offset = 0;
                                self.progress.restart();
                            }
                            r
                        }
                        Ok(r) => {
                            attempts.failed(Failure::status(r.status())).await?;
                            continue;
                        }
                        Err(f) => {
                            attempts.failed(f).await?;
                            continue;
                        }
                    }
                }
            };
            let (read, failure) = self.read_body(resp, offset, plan.total, &sink).await;
            transferred += read;
            offset += read;
            let failure = match failure {
                Some(f) => f,
                None if plan.total.is_none_or(|t| offset == t) => break,
                // The server closed cleanly before the end: treat as a cut connection.
                None => Failure::other("the connection closed before the end of the file", true),
            };
            attempts.failed(failure).await?;
        }
        let hasher = sink.finish()?;
        Ok((hasher, transferred))
    }

    /// Reads a response body from `offset` up to `end`, a piece at a time: each piece is
    /// leased from the budget before its first byte, then written in place and hashed. Returns
    /// the bytes read, and the failure that ended the body early, if one did.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        offset: u64,
        end: Option<u64>,
        sink: &HashSink,
    ) -> (u64, Option<Failure>) {
        let stall = self.engine.config.stall_timeout;
        let mut piece: Option<(Lease, Option<OwnedSemaphorePermit>)> = None;
        let mut flushed = offset;
        let mut read = 0u64;
        let flush = |piece: &mut Option<(Lease, Option<OwnedSemaphorePermit>)>,
                     flushed: &mut u64| {
            if let Some((lease, permit)) = piece.take()
                && !lease.buf().is_empty()
            {
                let len = lease.buf().len() as u64;
                sink.send(*flushed, lease, permit);
                *flushed += len;
            }
        };
        let failure = loop {
            let chunk = match tokio::time::timeout(stall, resp.chunk()).await {
                Err(_) => break Some(Failure::stalled(stall)),
                Ok(Err(e)) => break Some(Failure::from_reqwest(e)),
                Ok(Ok(None)) => break None,
                Ok(Ok(Some(c))) => c,
            };
            let room = end.map_or(u64::MAX, |end| end.saturating_sub(offset + read));
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
            let mut remaining = &chunk[..take];
            while !remaining.is_empty() {
                if piece.is_none() {
                    let permit = sink.room().await;
                    if let Some(e) = sink.failure() {
                        return (read, Some(Failure::local(e)));
                    }
                    piece = Some((self.engine.budget.lease(SEQUENTIAL_PIECE).await, permit));
                }
                let (lease, _) = piece.as_mut().expect("leased above");
                let n = lease.buf_mut().push(remaining);
                remaining = &remaining[n..];
                read += n as u64;
                self.progress.advance(n as u64);
                if lease.buf().is_full() {
                    flush(&mut piece, &mut flushed);
                }
            }
            if take < chunk.len() {
                break None;
            }
        };
        flush(&mut piece, &mut flushed);
        match sink.failure() {
            Some(e) => (read, Some(Failure::local(e))),
            None => (read, failure),
        }
    }

    /// Fetches the missing ranges as chunks over several connections at once, and hands the
    /// kept ones to the hasher. `first` is the open-ended response to the probe, which asked
    /// from `asked`, with a buffer already leased for it: it delivers the first range if that
    /// starts there. A `200` to any range (the server stopped honouring ranges, or `If-Range`
    /// saw a changed file) stops every connection and hands that response back, to be read as
    /// the whole file.
    fn parallel(
        &self,
        plan: &Plan,
        hasher: Hasher,
        asked: u64,
        first: (reqwest::Response, Lease),
    ) -> Result<Ranges> {
        let config = &self.engine.config;
        let chunk = config.chunk_size;
        let total = plan.total.expect("ranged downloads know their size");
        let work = work(plan.prefix, total, chunk, &plan.kept);
        let chunk_buf = usize::try_from(chunk).expect("chunks fit in memory");
        let writers = config.connections.clamp(2, PARALLEL_WRITERS);
        // Chunks being received, plus as many again being written or waiting for the hasher.
        let window = config.connections + writers;
        let sink = self.spawn_sink(plan, hasher, writers, window);
        for &(s, e) in &plan.kept {
            sink.send_kept(s, e);
        }
        // When the probe's range is not the first missing one (a resume), its lease is given
        // back and every range is leased before it is taken.
        let first = work.first().filter(|w| w.0 == asked).map(|_| first);
        let next = AtomicUsize::new(usize::from(first.is_some()));
        let whole: Mutex<Option<reqwest::Response>> = Mutex::new(None);
        let worker = |first: Option<(reqwest::Response, Lease)>| {
            let (sink, next, work, whole) = (&sink, &next, &work, &whole);
            async move {
                let mut transferred = 0u64;
                let mut first = first;
                loop {
                    // Closed when another worker failed: stop, that error is reported.
                    let Some(permit) = sink.room().await else {
                        return Ok::<u64, Error>(transferred);
                    };
                    // Leased before a range is taken, so that the earliest range in flight
                    // always holds its memory and the hasher can always move on.
                    let (index, response, lease) = match first.take() {
                        Some((r, lease)) => (0, Some(r), lease),
                        None => {
                            let lease = self.engine.budget.lease(chunk_buf).await;
                            (next.fetch_add(1, Ordering::Relaxed), None, lease)
                        }
                    };
                    let Some(&range) = work.get(index) else {
                        return Ok(transferred);
                    };
                    match self
                        .fetch_range(plan, range, response, lease, &mut transferred)
                        .await
                    {
                        Ok(Range::Filled(lease)) => sink.send(range.0, lease, Some(permit)),
                        Ok(Range::Whole(response)) => {
                            // The first such answer is kept; every worker stops.
                            whole
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(response);
                            sink.close();
                            return Ok(transferred);
                        }
                        Err(e) => {
                            // The hasher can never pass this range now, so the permits it holds
                            // would never come back: wake and stop every other worker.
                            sink.close();
                            return Err(e);
                        }
                    }
                }
            }
        };
        let mut first = first;
        let workers: Vec<_> = (0..config.connections.min(work.len()))
            .map(|_| worker(first.take()))
            .collect();
        let mut transferred = 0;
        let mut failure = None;
        for r in run_on_threads(workers) {
            match r {
                Ok(n) => transferred += n,
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(response) = whole.into_inner().unwrap_or_else(PoisonError::into_inner) {
            // Nothing of these ranges joins the new stream, which starts from byte zero.
            sink.abandon();
            return Ok(Ranges::Whole(response));
        }
        if let Some(e) = failure {
            // Keep what reached the disk for the next run.
            let local = sink.failure();
            sink.abandon();
            return Err(local.unwrap_or(e));
        }
        let hasher = sink.finish()?;
        Ok(Ranges::Done(hasher, transferred))
    }

    /// Fetches `[start, end)` into `lease`, retrying transient failures; `response` is an
    /// already open response starting at `start`, if there is one. A `200` instead of the
    /// range comes back as [`Range::Whole`].
    async fn fetch_range(
        &self,
        plan: &Plan,
        (start, end): (u64, u64),
        mut response: Option<reqwest::Response>,
        mut lease: Lease,
        transferred: &mut u64,
    ) -> Result<Range> {
        let len = usize::try_from(end - start).expect("chunks fit in memory");
        assert!(len <= lease.buf().capacity(), "a chunk fits its buffer");
        let stall = self.engine.config.stall_timeout;
        let mut attempts = self.engine.config.retry.attempts(self.url());
        loop {
            let have = lease.buf().len() as u64;
            let result = async {
                let mut resp = match response.take() {
                    Some(r) => r,
                    None => {
                        let headers =
                            range_headers(start + have, Some(end), plan.validators.if_range());
                        let r = self.send(&headers).await?;
                        if r.status() == StatusCode::OK {
                            // `If-Range` saw another file, or the server stopped honouring
                            // ranges: these chunks cannot be joined to the others.
                            return Ok(Some(r));
                        }
                        if r.status() != StatusCode::PARTIAL_CONTENT {
                            return Err(Failure::status(r.status()));
                        }
                        if content_range(r.headers()).map(|c| c.0) != Some(start + have) {
                            return Err(Failure::protocol(
                                "a 206 response for another range than asked",
                            ));
                        }
                        r
                    }
                };
                while lease.buf().len() < len {
                    let piece = tokio::time::timeout(stall, resp.chunk())
                        .await
                        .map_err(|_| Failure::stalled(stall))?
                        .map_err(Failure::from_reqwest)?;
                    let Some(piece) = piece else {
                        return Err(Failure::other(
                            "the connection closed before the end of the range",
                            true,
                        ));
                    };
                    let take = piece.len().min(len - lease.buf().len());
                    lease.buf_mut().push(&piece[..take]);
                    self.progress.advance(take as u64);
                    *transferred += take as u64;
                }
                Ok(None)
            }
            .await;
            match result {
                Ok(None) => return Ok(Range::Filled(lease)),
                Ok(Some(whole)) => return Ok(Range::Whole(whole)),
                Err(f) => attempts.failed(f).await?,
            }
        }
    }

    /// Syncs, checks size and digest, and hands the file over as staged.
    fn finish(self, plan: &Plan, hasher: Hasher, transferred: u64) -> Result<Downloaded> {
        let size = hasher.bytes();
        let digest = hasher.finish();
        let partial = self.partial;
        if let Some(total) = plan.total
            && size != total
        {
            partial.discard();
            return Err(
                Failure::protocol(&format!("{size} bytes, but the file has {total}"))
                    .into_error(self.dl.source.display(), 1),
            );
        }
        if let Err(mismatch) = Error::check_digest(self.dl.id, self.dl.expected.digest, &digest) {
            partial.discard();
            return Err(mismatch);
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
            resumed: plan.resumed(),
            etag: plan.validators.etag.clone(),
        })
    }
}

/// How the parallel ranges of a download ended.
enum Ranges {
    /// Every range fetched and hashed: the hasher, and the bytes received.
    Done(Hasher, u64),
    /// A range was answered with the whole file: read it as one stream instead.
    Whole(reqwest::Response),
}

/// How one range ended.
enum Range {
    /// Its bytes, in their buffer.
    Filled(Lease),
    /// The server answered the whole file instead.
    Whole(reqwest::Response),
}

/// The first request of a run: from the first missing byte on, with `If-Range` when resuming
/// bytes known by their validators (not when `digest` names them). When chunks beyond the gap
/// were kept, it asks for the first missing range only, so that no byte of a kept chunk is
/// sent again. A run killed after the last byte but before publishing kept everything: it
/// asks for the last byte only, to check that the remote is still the same file. A fresh
/// download of a file known to be fetched in parallel ranges (`parallel_size`) asks for its
/// first chunk only. Returns the offset asked for and the headers.
fn probe(
    prior: Option<&ResumeState>,
    digest: Option<&str>,
    chunk: u64,
    parallel_size: Option<u64>,
) -> (u64, HeaderMap) {
    let Some(s) = prior else {
        let end = parallel_size.map(|size| chunk.min(size));
        return (0, range_headers(0, end, None));
    };
    let if_range = (!s.vouched_by(digest))
        .then(|| s.validators.if_range())
        .flatten();
    let gap = s.first_gap();
    if s.total > 0 && gap == s.total {
        return (gap - 1, range_headers(gap - 1, Some(gap), if_range));
    }
    let end = work(gap, s.total, chunk, &s.chunks)
        .first()
        .map(|w| w.1)
        .filter(|_| !s.chunks.is_empty());
    (gap, range_headers(gap, end, if_range))
}

/// Runs the futures to completion on as many threads as the machine has cores (the calling
/// thread first), each thread driving its share of them at once, so that the copies of several
/// connections use several cores. The futures borrow the request, so they cannot be spawned as
/// tasks; each thread drives its own on the engine's runtime instead. One thread per future
/// was measured slower: every packet woke a thread of its own, and on two cores the store's
/// server and the hasher lost that CPU to context switches. A thread that cannot be started
/// leaves its share to the calling thread.
fn run_on_threads<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let count = threads.min(futures.len()).max(1);
    let mut groups: Vec<Vec<F>> = (0..count).map(|_| Vec::new()).collect();
    for (i, f) in futures.into_iter().enumerate() {
        groups[i % count].push(f);
    }
    let mut groups = groups.into_iter();
    let mut mine = groups.next().unwrap_or_default();
    // Each other group waits in its slot for its thread; when a thread cannot be started, the
    // calling thread takes every slot still full.
    let slots: Vec<_> = groups.map(|g| std::sync::Mutex::new(Some(g))).collect();
    let take = |slot: &std::sync::Mutex<Option<Vec<F>>>| {
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_default()
    };
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (handle, take) = (&handle, &take);
            let others: Vec<_> = slots
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| {
                    std::thread::Builder::new()
                        .name(format!("model-provisioner-dl{}", i + 1))
                        .spawn_scoped(scope, move || handle.block_on(super::join_all(take(slot))))
                        .inspect_err(|e| tracing::debug!(error = %e, "no thread for connections"))
                        .ok()
                })
                .collect();
            if others.len() < slots.len() {
                // Whichever takes a slot first drives its group: a started thread that finds
                // its slot empty has nothing to do.
                for slot in &slots {
                    mine.extend(take(slot));
                }
            }
            let mut out = handle.block_on(super::join_all(mine));
            for thread in others {
                match thread.join() {
                    Ok(v) => out.extend(v),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            out
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(prefix: u64, chunks: Vec<(u64, u64)>, digest: Option<&str>) -> ResumeState {
        ResumeState {
            url: "x".into(),
            digest: digest.map(str::to_owned),
            total: 100,
            validators: Validators {
                etag: Some("\"e\"".into()),
                last_modified: None,
            },
            prefix_len: prefix,
            prefix_sha256: String::new(),
            chunks,
        }
    }

    #[test]
    fn every_future_runs_to_completion_whatever_their_number() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        for n in [1, 2, 3, 7, 16] {
            // Each waits for the next one's signal, so that all must be driven at once.
            let notifies: Vec<_> = (0..=n).map(|_| tokio::sync::Notify::new()).collect();
            notifies[n].notify_one();
            let futures: Vec<_> = (0..n)
                .map(|i| {
                    let notifies = &notifies;
                    async move {
                        notifies[i + 1].notified().await;
                        notifies[i].notify_one();
                        i
                    }
                })
                .collect();
            let mut out = runtime.block_on(async { run_on_threads(futures) });
            out.sort_unstable();
            assert_eq!(out, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_probe_asks_from_the_first_missing_byte() {
        let (at, h) = probe(None, None, 16, None);
        assert_eq!((at, &h["range"]), (0, &"bytes=0-".parse().unwrap()));
        assert!(!h.contains_key("if-range"));
        // A file known to come in parallel ranges: its first chunk only.
        let (at, h) = probe(None, None, 16, Some(100));
        assert_eq!((at, &h["range"]), (0, &"bytes=0-15".parse().unwrap()));
        let (at, h) = probe(Some(&state(10, vec![], None)), None, 16, None);
        assert_eq!((at, &h["range"]), (10, &"bytes=10-".parse().unwrap()));
        // Kept chunks beyond the gap: only the first missing range, up to a chunk boundary.
        let (at, h) = probe(
            Some(&state(10, vec![(10, 30), (50, 60)], None)),
            None,
            16,
            Some(100),
        );
        assert_eq!((at, &h["range"]), (30, &"bytes=30-31".parse().unwrap()));
        assert_eq!(h["if-range"], "\"e\"");
        let vouched = state(40, vec![(40, 100)], Some("sha256:1"));
        let (_, h) = probe(Some(&vouched), None, 16, None);
        assert_eq!(h["if-range"], "\"e\"", "this run does not know the digest");
        let (at, h) = probe(Some(&vouched), Some("sha256:1"), 16, None);
        assert_eq!((at, &h["range"]), (99, &"bytes=99-99".parse().unwrap()));
        assert!(!h.contains_key("if-range"), "the digest names the bytes");
    }
}
