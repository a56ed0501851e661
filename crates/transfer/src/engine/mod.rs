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
//!
//! `stream.rs` reads one stream (a whole body, or the missing bytes in order); `chunks.rs`
//! fetches fixed-size chunks over several connections at once, and turns back to one stream
//! when a range is answered with the whole file.

mod chunks;
mod stream;

use chunks::Ranges;

use std::sync::Arc;

use catalog_core::StagedFile;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::sync::Semaphore;

use super::cancel::unless_cancelled;
use super::checksum::{Checksum, Hashes};
use super::range::{Validators, content_range, range_headers, work};
use super::resume::{Partial, ResumeState};
use super::retry::Failure;
use super::sink::HashSink;
use super::source::send;
use super::{Download, Downloaded, Downloader};
use crate::error::Result;
use mp_progress::Progress;

/// How much of a single stream is buffered before it is written and handed to the hasher:
/// large enough for efficient direct writes, small enough for a fine-grained resume record.
pub const SEQUENTIAL_PIECE: usize = 4 << 20;

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

    /// Hashes for the bytes from the first: the sha256, and the checksum the source states.
    fn fresh(&self) -> Hashes {
        Hashes::new(self.dl.expected.checksum.map(Checksum::kind))
    }

    /// The record to keep for `plan` (`None` when the size is unknown: no resume then).
    fn record(&self, plan: &Plan, hasher: &Hashes) -> Option<ResumeState> {
        Some(ResumeState {
            url: self.url().to_owned(),
            digest: self.digest.clone(),
            total: plan.total?,
            validators: plan.validators.clone(),
            prefix_len: hasher.bytes(),
            prefix_sha256: hasher.sha256_so_far().value().to_owned(),
            chunks: plan.kept.clone(),
        })
    }

    async fn send(&self, headers: &HeaderMap) -> Result<reqwest::Response, Failure> {
        let clients = self
            .engine
            .clients(self.dl.source)
            .map_err(Failure::local)?;
        unless_cancelled(self.cancel(), send(self.dl.source, clients, headers))
            .await
            .map_err(Failure::local)?
    }

    /// The flag that stops this download, if it has one.
    fn cancel(&self) -> Option<&crate::Cancel> {
        self.engine.config.cancel.as_ref()
    }

    pub(super) async fn fetch(self) -> Result<Downloaded> {
        let mut prior = self.partial.load_state(self.url(), self.digest.as_deref());
        if prior.is_none() {
            self.partial.truncate()?;
        }
        let mut attempts = self
            .engine
            .config
            .retry
            .attempts(self.url())
            .reporting(self.progress);
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
                        None => self.fresh(),
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
    fn resume(&self, state: &ResumeState, plan: &Plan) -> Result<Option<Hashes>> {
        let now = self
            .record(plan, &self.fresh())
            .expect("a 206 states the size");
        let why = if !state.same_remote(&now) {
            "the remote file changed"
        } else if let Some(hasher) = self.partial.rehash_prefix(state, self.fresh())? {
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
        hasher: Hashes,
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

    fn spawn_sink(&self, plan: &Plan, hasher: Hashes, writers: usize, window: usize) -> HashSink {
        let state = self.record(plan, &hasher);
        HashSink::spawn(
            hasher,
            &self.partial,
            state,
            writers,
            Some(Arc::new(Semaphore::new(window))),
        )
    }

    /// Syncs, checks size and digest, and hands the file over as staged.
    fn finish(self, plan: &Plan, hasher: Hashes, transferred: u64) -> Result<Downloaded> {
        let size = hasher.bytes();
        let (digest, checksum) = hasher.finish();
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
        if let Err(mismatch) =
            catalog_core::check_digest(self.dl.id, self.dl.expected.digest, &digest)
        {
            partial.discard();
            return Err(mismatch.into());
        }
        if let (Some(expected), Some(computed)) = (self.dl.expected.checksum, checksum)
            && *expected != computed
        {
            partial.discard();
            return Err(crate::Error::ChecksumMismatch {
                file: self.dl.id.to_owned(),
                expected: *expected,
                computed,
            });
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
