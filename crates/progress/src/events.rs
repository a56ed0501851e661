//! [`Event`]: what a front end is told, typed; [`Events`], a reporter that turns every task and
//! event into one stream of them; [`json_line`], the schema they are written in.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{FileTask, Progress, Reporter};

/// The version of the JSON schema [`json_line`] writes (its `v` field). It changes when a field
/// is removed or changes meaning; fields and events may be added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// The least time between two [`Event::FileProgress`] of one file: a few per second, so that
/// events never slow a download down, whatever its rate.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What happens on the way of a model, and of each of its files.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event<'a> {
    /// The reference resolved into a listing of files, about to be placed.
    Resolved {
        /// The model's id.
        id: &'a str,
        /// How many files.
        files: usize,
        /// Their bytes, when every size is known.
        total_bytes: Option<u64>,
    },
    /// A file starts to move.
    FileStarted {
        /// The model's id.
        id: &'a str,
        /// The file's path in the model.
        file: &'a str,
        /// Its size, when known.
        size: Option<u64>,
    },
    /// A file moved on (at most a few of these per second per file).
    FileProgress {
        /// The model's id.
        id: &'a str,
        /// The file's path in the model.
        file: &'a str,
        /// Bytes so far (bytes kept from an interrupted run included).
        bytes: u64,
        /// Its size, when known.
        size: Option<u64>,
        /// Bytes per second since the file started.
        rate: u64,
    },
    /// A request for a file failed and is tried again.
    FileRetry {
        /// The model's id.
        id: &'a str,
        /// The file's path in the model.
        file: &'a str,
        /// The retry's number, from 1.
        attempt: u32,
        /// What failed.
        reason: &'a str,
    },
    /// What a file's progress said so far is void: it starts over from zero.
    FileRestart {
        /// The model's id.
        id: &'a str,
        /// The file's path in the model.
        file: &'a str,
    },
    /// A file stopped moving: placed, or failed (the model's `done` or `failed` says which).
    FileDone {
        /// The model's id.
        id: &'a str,
        /// The file's path in the model.
        file: &'a str,
        /// Bytes moved or kept.
        bytes: u64,
        /// Bytes per second over the file's time.
        rate: u64,
        /// Milliseconds since the file started.
        ms: u64,
    },
    /// Another process is fetching the model; this one waits for its result.
    Waiting {
        /// The model's id.
        id: &'a str,
    },
    /// A mirror could not serve the model; the next mirror, or the origin, is tried.
    MirrorFallback {
        /// The model's id.
        id: &'a str,
        /// The mirror passed over.
        mirror: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// Every file is placed and checked; the model is being checked as a whole.
    Verifying {
        /// The model's id.
        id: &'a str,
    },
    /// The model is published in the cache and recorded in the catalog.
    Published {
        /// The model's id.
        id: &'a str,
        /// Where it is.
        local_path: &'a Path,
    },
    /// The model is present: fetched, or found in the catalog.
    Done {
        /// The model's id.
        id: &'a str,
        /// Where it is.
        local_path: &'a Path,
        /// `pass`, `warn` or `fail`.
        verification: &'a str,
        /// Whether the catalog had it, unchanged.
        cached: bool,
        /// Bytes read over the network or from disk by this run.
        bytes_read: u64,
        /// Milliseconds the ensure took.
        ms: u64,
    },
    /// The model could not be made present.
    Failed {
        /// The model's id, or the reference as given when it names no id.
        id: &'a str,
        /// `verification` (the bytes are not what they must be: exit status 3), `usage` (the
        /// request cannot be met as written: 2) or `error` (anything else: 1).
        class: &'a str,
        /// The error, in words.
        message: &'a str,
    },
}

/// `event` as one line of JSON (without its newline): the event's fields, its name as `event`
/// and the schema's version as `v`.
///
/// # Panics
///
/// Never: an event is strings, numbers and paths, which always serialise (a path that is not
/// UTF-8 is written lossily by serde).
pub fn json_line(event: &Event<'_>) -> String {
    #[derive(Serialize)]
    struct Line<'a, 'b> {
        v: u32,
        #[serde(flatten)]
        event: &'b Event<'a>,
    }
    serde_json::to_string(&Line {
        v: SCHEMA_VERSION,
        event,
    })
    .expect("an event is plain data")
}

/// A reporter that hands every event to `sink`: the model's events as they come, and each
/// file's start, progress (a few times a second), retries and end. Tasks that are no file of a
/// model (hashing a model again, an overall total) are not reported.
pub struct Events<F> {
    sink: Arc<F>,
}

impl<F> Events<F>
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    /// A reporter handing its events to `sink`, which may be called from any thread.
    pub fn new(sink: F) -> Self {
        Events {
            sink: Arc::new(sink),
        }
    }
}

impl<F> std::fmt::Debug for Events<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl<F> Reporter for Events<F>
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn start(&self, _label: &str, _total: Option<u64>) -> Box<dyn Progress> {
        Box::new(crate::NoProgress)
    }

    fn start_file(&self, file: &FileTask<'_>) -> Box<dyn Progress> {
        (self.sink)(&Event::FileStarted {
            id: file.id,
            file: file.file,
            size: file.size,
        });
        let now = Instant::now();
        Box::new(FileEvents {
            sink: Arc::clone(&self.sink),
            id: file.id.to_owned(),
            file: file.file.to_owned(),
            size: Mutex::new(file.size),
            bytes: AtomicU64::new(0),
            started: now,
            last: Mutex::new(now),
            done: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn event(&self, event: &Event<'_>) {
        (self.sink)(event);
    }
}

/// The events of one file.
struct FileEvents<F> {
    sink: Arc<F>,
    id: String,
    file: String,
    size: Mutex<Option<u64>>,
    bytes: AtomicU64,
    started: Instant,
    /// When the last progress event went.
    last: Mutex<Instant>,
    done: std::sync::atomic::AtomicBool,
}

/// Bytes per second, of `bytes` over `elapsed`.
fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let ms = u64::try_from(elapsed.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    bytes.saturating_mul(1000) / ms
}

impl<F> Progress for FileEvents<F>
where
    F: Fn(&Event<'_>) + Send + Sync,
{
    fn advance(&self, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let now = Instant::now();
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if now.duration_since(*last) < PROGRESS_EVERY {
                return;
            }
            *last = now;
        }
        (self.sink)(&Event::FileProgress {
            id: &self.id,
            file: &self.file,
            bytes: total,
            size: *self.size.lock().unwrap_or_else(PoisonError::into_inner),
            rate: rate(total, now.duration_since(self.started)),
        });
    }

    fn restart(&self) {
        self.bytes.store(0, Ordering::Relaxed);
        (self.sink)(&Event::FileRestart {
            id: &self.id,
            file: &self.file,
        });
    }

    fn set_total(&self, total: u64) {
        *self.size.lock().unwrap_or_else(PoisonError::into_inner) = Some(total);
    }

    fn retrying(&self, attempt: u32, reason: &str) {
        (self.sink)(&Event::FileRetry {
            id: &self.id,
            file: &self.file,
            attempt,
            reason,
        });
    }

    fn finish(&self) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        (self.sink)(&Event::FileDone {
            id: &self.id,
            file: &self.file,
            bytes,
            rate: rate(bytes, elapsed),
            ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lines = Arc<Mutex<Vec<String>>>;

    fn recorded() -> (Events<impl Fn(&Event<'_>) + Send + Sync>, Lines) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let events = Events::new(move |e: &Event<'_>| {
            sink.lock().unwrap().push(json_line(e));
        });
        (events, lines)
    }

    #[test]
    fn a_file_is_started_retried_restarted_and_done_with_its_bytes() {
        let (events, lines) = recorded();
        events.event(&Event::Resolved {
            id: "hf:org/repo",
            files: 1,
            total_bytes: Some(10),
        });
        let progress = events.start_file(&FileTask {
            id: "hf:org/repo",
            file: "w.bin",
            label: "w.bin",
            size: None,
        });
        progress.set_total(10);
        progress.retrying(1, "connection reset");
        progress.restart();
        progress.advance(10);
        progress.finish();
        progress.finish();
        // An overall task is no file: it says nothing.
        events.start("hf:org/repo", Some(10)).advance(10);
        let lines = lines.lock().unwrap().join("\n");
        // Timing fields vary from run to run.
        insta::with_settings!({filters => vec![(r#""(rate|ms)":\d+"#, r#""$1":"[t]""#)]}, {
            insta::assert_snapshot!(lines, @r#"
            {"v":1,"event":"resolved","id":"hf:org/repo","files":1,"total_bytes":10}
            {"v":1,"event":"file_started","id":"hf:org/repo","file":"w.bin","size":null}
            {"v":1,"event":"file_retry","id":"hf:org/repo","file":"w.bin","attempt":1,"reason":"connection reset"}
            {"v":1,"event":"file_restart","id":"hf:org/repo","file":"w.bin"}
            {"v":1,"event":"file_done","id":"hf:org/repo","file":"w.bin","bytes":10,"rate":"[t]","ms":"[t]"}
            "#);
        });
    }

    #[test]
    fn progress_goes_out_a_few_times_a_second_whatever_the_number_of_reads() {
        let (events, lines) = recorded();
        let progress = events.start_file(&FileTask {
            id: "m",
            file: "f",
            label: "f",
            size: Some(1 << 30),
        });
        let started = Instant::now();
        // A million reads within the first tick are one start, and no progress event.
        for _ in 0..1_000_000 {
            progress.advance(1);
        }
        let ticks = started.elapsed().as_millis() / PROGRESS_EVERY.as_millis() + 1;
        let sent = lines.lock().unwrap().len() - 1;
        assert!(
            sent as u128 <= ticks,
            "{sent} progress events in {:?}",
            started.elapsed()
        );
    }
}
