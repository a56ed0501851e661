//! One stream of a download: a whole body (`200`), or the missing bytes in order through one
//! connection, reconnecting with a range where the server allows it.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::sync::OwnedSemaphorePermit;

use super::super::Downloaded;
use super::super::budget::Lease;
use super::super::range::{Validators, content_range, range_headers};
use super::super::retry::Failure;
use super::super::sink::HashSink;
use super::{Plan, Run, SEQUENTIAL_PIECE};
use crate::cancel::unless_cancelled;
use crate::checksum::Hashes;
use crate::error::Result;

/// Writes in flight at once for a single stream.
const SEQUENTIAL_WRITERS: usize = 2;

/// Pieces of a single stream buffered at once: room to ride out a disk that pauses for a
/// moment without holding the whole file in memory (64 MiB).
const SEQUENTIAL_WINDOW: usize = 16;

impl Run<'_> {
    /// Streams a `200` response, the whole file, from byte zero.
    pub(super) async fn whole_body(self, response: reqwest::Response) -> Result<Downloaded> {
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
            .sequential(plan.clone(), self.fresh(), Some(response))
            .await?;
        self.finish(&plan, hasher, transferred)
    }

    /// Streams `[plan.prefix, total)` in order through one connection (reconnecting with a
    /// range when the server allows it, from zero when it does not).
    pub(super) async fn sequential(
        &self,
        mut plan: Plan,
        hasher: Hashes,
        mut response: Option<reqwest::Response>,
    ) -> Result<(Hashes, u64)> {
        let mut sink = self.spawn_sink(&plan, hasher, SEQUENTIAL_WRITERS, SEQUENTIAL_WINDOW);
        let mut offset = plan.prefix;
        let mut transferred = 0;
        let mut attempts = self
            .engine
            .config
            .retry
            .attempts(self.url())
            .reporting(self.progress);
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
                                    self.fresh(),
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
    pub(super) async fn read_body(
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
            let next = tokio::time::timeout(stall, resp.chunk());
            let chunk = match unless_cancelled(self.cancel(), next).await {
                Err(cancelled) => break Some(Failure::local(cancelled)),
                Ok(Err(_)) => break Some(Failure::stalled(stall)),
                Ok(Ok(Err(e))) => break Some(Failure::from_reqwest(e)),
                Ok(Ok(Ok(None))) => break None,
                Ok(Ok(Ok(Some(c)))) => c,
            };
            let room = end.map_or(u64::MAX, |end| end.saturating_sub(offset + read));
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
            if let Some(cap) = &self.engine.config.rate_limit {
                cap.take(take).await;
            }
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
}
