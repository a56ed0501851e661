//! Progress reporting: the provisioner says what it is doing, a front end draws it.
//!
//! The lowest crate of the workspace: the download engine, the provisioner and the
//! command-line tool all speak through these traits, and none of them is named here.

use std::fmt;

/// Receives progress from long operations (hashing, copying, downloading).
pub trait Reporter: Send + Sync + fmt::Debug {
    /// A task of `total` bytes (when known) starts; the returned handle receives its progress.
    fn start(&self, label: &str, total: Option<u64>) -> Box<dyn Progress>;
}

/// Progress of one task started by [`Reporter::start`].
pub trait Progress: Send + Sync {
    /// `bytes` more were processed.
    fn advance(&self, bytes: u64);
    /// What was reported so far is void: the task starts over from zero.
    fn restart(&self) {}
    /// The total became known (a download learns it from the response).
    fn set_total(&self, total: u64) {
        let _ = total;
    }
    /// The task ended (successfully or not).
    fn finish(&self) {}
}

/// A reporter that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;

struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}

impl Reporter for NoReporter {
    fn start(&self, _label: &str, _total: Option<u64>) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}
