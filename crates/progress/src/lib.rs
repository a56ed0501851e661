//! Progress reporting: the provisioner says what it is doing, a front end draws it.
//!
//! The lowest crate of the workspace: the download engine, the provisioner and the
//! command-line tool all speak through these traits, and none of them is named here.
//!
//! A [`Reporter`] hears of two things: tasks that move bytes ([`Reporter::start`],
//! [`Reporter::start_file`]), whose [`Progress`] handle receives every byte; and what happens
//! to a model on its way ([`Event`]: resolved, waiting, a mirror passed over, verified,
//! published, done or failed). [`Events`] turns both into one stream of typed events, which
//! [`json_line`] writes in the documented schema ([`SCHEMA_VERSION`]).

mod events;

use std::fmt;

pub use events::{Event, Events, SCHEMA_VERSION, json_line};

/// Receives progress from long operations (hashing, copying, downloading, uploading).
pub trait Reporter: Send + Sync + fmt::Debug {
    /// A task of `total` bytes (when known) starts; the returned handle receives its progress.
    fn start(&self, label: &str, total: Option<u64>) -> Box<dyn Progress>;

    /// One file of a model starts to move (a download, a copy, an upload); the returned handle
    /// receives its progress. By default it is a task labelled `file.label`.
    fn start_file(&self, file: &FileTask<'_>) -> Box<dyn Progress> {
        self.start(file.label, file.size)
    }

    /// Something happened to a model on its way. By default nothing is shown.
    fn event(&self, event: &Event<'_>) {
        let _ = event;
    }
}

/// One file of a model, as it starts to move.
#[derive(Debug, Clone, Copy)]
pub struct FileTask<'a> {
    /// The model's id.
    pub id: &'a str,
    /// The file's path in the model (the model's own name for a model of one file).
    pub file: &'a str,
    /// What a progress bar shows for it.
    pub label: &'a str,
    /// Its size, when known.
    pub size: Option<u64>,
}

/// Progress of one task started by [`Reporter::start`] or [`Reporter::start_file`].
pub trait Progress: Send + Sync {
    /// `bytes` more were processed.
    fn advance(&self, bytes: u64);
    /// What was reported so far is void: the task starts over from zero.
    fn restart(&self) {}
    /// The total became known (a download learns it from the response).
    fn set_total(&self, total: u64) {
        let _ = total;
    }
    /// A request failed, and is tried again (`attempt` counts the retries, from 1).
    fn retrying(&self, attempt: u32, reason: &str) {
        let _ = (attempt, reason);
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
