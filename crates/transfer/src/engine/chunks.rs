//! Parallel ranges: fixed-size chunks fetched over several connections at once, driven on one
//! thread per core, leased from the budget in order, and handed to the hasher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::cancel::unless_cancelled;
use crate::checksum::Hashes;
use reqwest::StatusCode;

use super::super::budget::Lease;
use super::super::range::{content_range, range_headers, work};
use super::super::retry::Failure;
use super::{Plan, Run};
use crate::error::{Error, Result};

/// Writes in flight at once, at most, for parallel ranges.
const PARALLEL_WRITERS: usize = 4;

/// How the parallel ranges of a download ended.
pub(super) enum Ranges {
    /// Every range fetched and hashed: the hasher, and the bytes received.
    Done(Hashes, u64),
    /// A range was answered with the whole file: read it as one stream instead.
    Whole(reqwest::Response),
}

/// How one range ended.
pub(super) enum Range {
    /// Its bytes, in their buffer.
    Filled(Lease),
    /// The server answered the whole file instead.
    Whole(reqwest::Response),
}

impl Run<'_> {
    /// Fetches the missing ranges as chunks over several connections at once, and hands the
    /// kept ones to the hasher. `first` is the open-ended response to the probe, which asked
    /// from `asked`, with a buffer already leased for it: it delivers the first range if that
    /// starts there. A `200` to any range (the server stopped honouring ranges, or `If-Range`
    /// saw a changed file) stops every connection and hands that response back, to be read as
    /// the whole file.
    pub(super) fn parallel(
        &self,
        plan: &Plan,
        hasher: Hashes,
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
    pub(super) async fn fetch_range(
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
        let mut attempts = self
            .engine
            .config
            .retry
            .attempts(self.url())
            .reporting(self.progress);
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
                    let next = tokio::time::timeout(stall, resp.chunk());
                    let piece = unless_cancelled(self.cancel(), next)
                        .await
                        .map_err(Failure::local)?
                        .map_err(|_| Failure::stalled(stall))?
                        .map_err(Failure::from_reqwest)?;
                    let Some(piece) = piece else {
                        return Err(Failure::other(
                            "the connection closed before the end of the range",
                            true,
                        ));
                    };
                    let take = piece.len().min(len - lease.buf().len());
                    if let Some(cap) = &self.engine.config.rate_limit {
                        cap.take(take).await;
                    }
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
                        .spawn_scoped(scope, move || {
                            handle.block_on(super::super::join_all(take(slot)))
                        })
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
            let mut out = handle.block_on(super::super::join_all(mine));
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
}
