//! Several files at once: a bounded pool of threads, and progress for a file and its model.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use mp_progress::Progress;

/// Runs `f` on every item with up to `workers` threads; results keep the items' order. After
/// the first error no new item is started, and that error is returned.
pub(crate) fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let queue = Mutex::new(items.into_iter().enumerate().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some((i, item)) = queue.lock().expect("poisoned").pop_front() else {
                        break;
                    };
                    match f(item) {
                        Ok(r) => results.lock().expect("poisoned").push((i, r)),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().expect("poisoned").get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("poisoned") {
        return Err(e);
    }
    let mut results = results.into_inner().expect("poisoned");
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

/// Progress that goes to a file's bar and to the overall bar.
pub(crate) struct Tee<'a> {
    pub(crate) file: Box<dyn Progress>,
    pub(crate) overall: &'a dyn Progress,
}

impl Progress for Tee<'_> {
    fn advance(&self, bytes: u64) {
        self.file.advance(bytes);
        self.overall.advance(bytes);
    }

    fn set_total(&self, total: u64) {
        self.file.set_total(total);
    }

    fn restart(&self) {
        self.file.restart();
    }

    fn retrying(&self, attempt: u32, reason: &str) {
        self.file.retrying(attempt, reason);
    }
}
