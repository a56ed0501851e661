//! [`Budget`]: the memory all downloads of one engine may hold, and the buffers that hold it.
//!
//! Every buffer a download fills is leased from the engine's budget: a lease holds as many
//! bytes of the budget as its buffer's capacity, from before the first byte is received until
//! the hasher has consumed it. A buffer given back stays allocated for the next lease (a
//! download touches the same memory over and over instead of faulting in fresh pages for every
//! piece) and keeps its share of the budget while it waits; a lease of another size frees idle
//! buffers to make room. So the bytes allocated, in use or idle, never exceed the budget,
//! however many files are fetched at once. When the last download ends, idle buffers are freed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::direct::PageBuf;

/// The engine's memory budget. Cheap to clone; clones share it.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total: u64,
    /// The semaphore's permits when none is taken, one per KiB.
    total_permits: usize,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<(PageBuf, OwnedSemaphorePermit)>>,
    returned: Notify,
    peak: AtomicU64,
    active: AtomicUsize,
}

/// A buffer and its share of the budget. Dropping it gives both back.
#[derive(Debug)]
pub struct Lease {
    buf: Option<PageBuf>,
    permit: Option<OwnedSemaphorePermit>,
    budget: Budget,
}

/// Marks one download in progress; when the last one ends, idle buffers are freed.
#[derive(Debug)]
pub struct Active(Budget);

impl Budget {
    /// A budget of `bytes`, which must be at least the largest lease asked for.
    pub fn new(bytes: u64) -> Self {
        // Permits count KiB: a semaphore holds fewer permits than a large budget has bytes.
        let permits = usize::try_from(bytes.div_ceil(1024))
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Budget {
            inner: Arc::new(Inner {
                total: bytes,
                total_permits: permits,
                permits: Arc::new(Semaphore::new(permits)),
                idle: Mutex::new(Vec::new()),
                returned: Notify::new(),
                peak: AtomicU64::new(0),
                active: AtomicUsize::new(0),
            }),
        }
    }

    /// The budget, in bytes.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.inner.total
    }

    /// The most bytes held by buffers at once so far, in use or idle.
    pub fn peak(&self) -> u64 {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// Marks a download in progress until the returned value is dropped.
    pub fn active(&self) -> Active {
        self.inner.active.fetch_add(1, Ordering::Relaxed);
        Active(self.clone())
    }

    /// An empty buffer of `capacity` bytes, once the budget has room for it.
    pub async fn lease(&self, capacity: usize) -> Lease {
        let wanted = u32::try_from(capacity.div_ceil(1024)).expect("a buffer is under 4 TiB");
        loop {
            // Registered before looking, so that a buffer given back in between wakes us.
            let returned = self.inner.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(lease) = self.try_lease(capacity, wanted) {
                return lease;
            }
            tokio::select! {
                permit = Arc::clone(&self.inner.permits).acquire_many_owned(wanted) => {
                    let permit = permit.expect("the budget is never closed");
                    return self.fresh(capacity, permit);
                }
                () = returned => {}
            }
        }
    }

    /// An idle buffer of this size, or a new one if the budget has room now (after freeing
    /// idle buffers of other sizes if need be).
    fn try_lease(&self, capacity: usize, wanted: u32) -> Option<Lease> {
        let mut idle = self.inner.idle.lock().expect("poisoned");
        if let Some(i) = idle.iter().position(|(b, _)| b.capacity() == capacity) {
            let (buf, permit) = idle.swap_remove(i);
            return Some(self.wrap(buf, permit));
        }
        loop {
            if let Ok(permit) = Arc::clone(&self.inner.permits).try_acquire_many_owned(wanted) {
                drop(idle);
                return Some(self.fresh(capacity, permit));
            }
            // Free an idle buffer of another size, and try again.
            drop(idle.pop()?);
        }
    }

    fn fresh(&self, capacity: usize, permit: OwnedSemaphorePermit) -> Lease {
        let free = self.inner.permits.available_permits();
        let in_use = (self.inner.total_permits.saturating_sub(free) as u64) * 1024;
        self.inner
            .peak
            .fetch_max(in_use.min(self.inner.total), Ordering::Relaxed);
        self.wrap(PageBuf::new(capacity), permit)
    }

    fn wrap(&self, buf: PageBuf, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            buf: Some(buf),
            permit: Some(permit),
            budget: self.clone(),
        }
    }
}

impl Lease {
    pub fn buf(&self) -> &PageBuf {
        self.buf
            .as_ref()
            .expect("a lease holds its buffer until dropped")
    }

    pub fn buf_mut(&mut self) -> &mut PageBuf {
        self.buf
            .as_mut()
            .expect("a lease holds its buffer until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(mut buf), Some(permit)) = (self.buf.take(), self.permit.take()) {
            buf.clear();
            let inner = &self.budget.inner;
            if inner.active.load(Ordering::Relaxed) > 0
                && let Ok(mut idle) = inner.idle.lock()
            {
                idle.push((buf, permit));
            }
            inner.returned.notify_waiters();
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let inner = &self.0.inner;
        if inner.active.fetch_sub(1, Ordering::Relaxed) == 1
            && let Ok(mut idle) = inner.idle.lock()
        {
            idle.clear();
        }
        inner.returned.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn buffers_are_reused_and_never_exceed_the_budget() {
        rt().block_on(async {
            let budget = Budget::new(8 << 10);
            let _active = budget.active();
            let a = budget.lease(4 << 10).await;
            let addr = a.buf().bytes().as_ptr();
            let b = budget.lease(4 << 10).await;
            // Full: a third lease must wait until one comes back.
            let waiting = budget.lease(4 << 10);
            tokio::pin!(waiting);
            assert!(futures_poll_once(waiting.as_mut()).await.is_none());
            drop(a);
            let c = waiting.await;
            assert_eq!(
                c.buf().bytes().as_ptr(),
                addr,
                "the returned buffer is reused"
            );
            assert!(budget.peak() <= budget.total());
            drop((b, c));
            // Idle buffers of another size make room for a new one.
            let big = budget.lease(8 << 10).await;
            assert_eq!(big.buf().capacity(), 8 << 10);
        });
    }

    #[test]
    fn idle_buffers_are_freed_when_the_last_download_ends() {
        rt().block_on(async {
            let budget = Budget::new(8 << 10);
            let active = budget.active();
            drop(budget.lease(4 << 10).await);
            assert_eq!(budget.inner.idle.lock().unwrap().len(), 1);
            drop(active);
            assert!(budget.inner.idle.lock().unwrap().is_empty());
            assert_eq!(budget.inner.permits.available_permits(), 8);
        });
    }

    /// Polls `f` once: `Some` if it was ready.
    async fn futures_poll_once<F: Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
