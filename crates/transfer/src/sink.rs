//! [`HashSink`]: where received bytes go. Writers, then the hasher; a flusher records progress.
//!
//! ```text
//! connections ──buffers──▶ writer threads ──written──▶ hasher thread ──▶ buffer back to budget
//!                          (positional writes)         (in file order, from memory)
//!                                 │                          │
//!                                 └──── ledger: written chunks, hashed prefix ────┐
//!                                                                                 ▼
//!                                      flusher thread: every 250 ms sync_data, then the record
//! ```
//!
//! Writer threads put each buffer at its offset, so that receiving never waits for the disk and
//! several writes are in flight at once; the hasher takes the written buffers in any order and
//! hashes them in file order, so the file is never read back, except for chunks kept from an
//! earlier run, which it reads when their turn comes. The flusher writes the download back to
//! disk while it runs (so that the fsync before publishing has only the tail left: measured, a
//! third of a 2 GiB loopback download went to one fsync at the end) and, after each sync,
//! records what that sync covered: the hashed prefix and every chunk written before it began.
//! The first failed write closes the window, so that no new chunk starts, and is the
//! download's error; the chunks already in flight are still written and recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use crate::checksum::Hashes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::budget::Lease;
use super::range::merge;
use super::resume::{Partial, ResumeState};
use crate::error::{Error, Result};

/// The bytes of one piece of the file.
#[derive(Debug)]
enum Bytes {
    /// Received now, in a leased buffer.
    Received(Lease),
    /// On disk from an earlier run: this many bytes, read back when the hasher reaches them.
    Kept(u64),
}

/// A piece of the file: its offset, its bytes, and the window permit it holds.
#[derive(Debug)]
struct Piece {
    offset: u64,
    bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

/// What is on disk so far, for the resume record.
#[derive(Debug)]
struct Ledger {
    /// The record's fixed part (identity, size, validators); `None` when the size is unknown,
    /// which makes a download impossible to resume.
    template: Option<ResumeState>,
    on_disk: Mutex<OnDisk>,
}

/// The hashed prefix (the hasher's state after it, finished only when recorded) and the
/// chunks written beyond it.
#[derive(Debug)]
struct OnDisk {
    prefix: Hashes,
    written: Vec<(u64, u64)>,
}

impl Ledger {
    fn hashed(&self, prefix: &Hashes) {
        if let Ok(mut p) = self.on_disk.lock() {
            p.prefix.clone_from(prefix);
            let len = prefix.bytes();
            p.written.retain(|&(_, e)| e > len);
        }
    }

    fn written(&self, start: u64, end: u64) {
        if let Ok(mut p) = self.on_disk.lock() {
            p.written.push((start, end));
            if p.written.len() > 64 {
                let merged = merge(std::mem::take(&mut p.written));
                p.written = merged;
            }
        }
    }

    /// The record as of now, or `None` when there is nothing to record.
    fn snapshot(&self) -> Option<ResumeState> {
        let template = self.template.as_ref()?;
        let p = self.on_disk.lock().ok()?;
        let (prefix, written) = (p.prefix.clone(), p.written.clone());
        drop(p);
        let prefix_len = prefix.bytes();
        let chunks: Vec<_> = merge(written)
            .into_iter()
            .filter_map(|(s, e)| (e > prefix_len).then_some((s.max(prefix_len), e)))
            .collect();
        (prefix_len > 0 || !chunks.is_empty()).then(|| ResumeState {
            prefix_len,
            prefix_sha256: prefix.sha256_so_far().value().to_owned(),
            chunks,
            ..template.clone()
        })
    }

    /// Syncs the file, then records what was written before the sync began.
    fn record(&self, partial: &Partial) {
        let Some(state) = self.snapshot() else {
            return;
        };
        if partial.file.sync_data().is_ok() {
            partial.save_state(&state);
        }
    }
}

/// Where received buffers go. See the [module docs](self).
pub struct HashSink {
    tx: Option<mpsc::Sender<Piece>>,
    to_hasher: Option<mpsc::Sender<Piece>>,
    writers: Vec<std::thread::JoinHandle<()>>,
    hasher: Option<std::thread::JoinHandle<Hashes>>,
    flusher: Option<Flusher>,
    failed: Arc<Mutex<Option<Error>>>,
    ledger: Arc<Ledger>,
    partial: Partial,
    window: Option<Arc<Semaphore>>,
    record_on_drop: bool,
}

impl HashSink {
    /// How often the flusher syncs and records.
    const EVERY: Duration = Duration::from_millis(250);

    /// Starts `writers` writer threads, the hasher (fed `hasher`, which has hashed
    /// `state.prefix_len` bytes) and the flusher. `state` is the record to keep up to date
    /// (`None`: the size is unknown, nothing is recorded); its chunks are kept from an earlier
    /// run. `window`, when given, is closed on a failed write, to stop the connections.
    pub fn spawn(
        hasher: Hashes,
        partial: &Partial,
        state: Option<ResumeState>,
        writers: usize,
        window: Option<Arc<Semaphore>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Piece>();
        let (hash_tx, hash_rx) = mpsc::channel::<Piece>();
        let failed = Arc::new(Mutex::new(None::<Error>));
        let ledger = Arc::new(Ledger {
            on_disk: Mutex::new(OnDisk {
                prefix: hasher.clone(),
                written: state.as_ref().map(|s| s.chunks.clone()).unwrap_or_default(),
            }),
            template: state,
        });
        let rx = Arc::new(Mutex::new(rx));
        let writers = (0..writers.max(1))
            .map(|i| {
                let writer = WriteStage {
                    rx: Arc::clone(&rx),
                    to_hasher: hash_tx.clone(),
                    failed: Arc::clone(&failed),
                    window: window.clone(),
                    partial: partial.clone(),
                    ledger: Arc::clone(&ledger),
                };
                std::thread::Builder::new()
                    .name(format!("model-provisioner-write{i}"))
                    .spawn(move || writer.run())
                    .expect("spawning a thread")
            })
            .collect();
        let hash_stage = HashStage {
            hasher,
            partial: partial.clone(),
            ledger: Arc::clone(&ledger),
            failed: Arc::clone(&failed),
            window: window.clone(),
        };
        let hasher = std::thread::Builder::new()
            .name("model-provisioner-hash".into())
            .spawn(move || hash_stage.run(hash_rx))
            .expect("spawning a thread");
        let flusher = Self::start_flusher(partial, &ledger);
        HashSink {
            tx: Some(tx),
            to_hasher: Some(hash_tx),
            writers,
            hasher: Some(hasher),
            flusher,
            failed,
            ledger,
            partial: partial.clone(),
            window,
            record_on_drop: true,
        }
    }

    fn start_flusher(partial: &Partial, ledger: &Arc<Ledger>) -> Option<Flusher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (partial, ledger, signal) = (partial.clone(), Arc::clone(ledger), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("model-provisioner-flush".into())
            .spawn(move || {
                let (lock, wake) = &*signal;
                let mut stopped = lock.lock().expect("poisoned");
                while !*stopped {
                    stopped = wake.wait_timeout(stopped, Self::EVERY).expect("poisoned").0;
                    if !*stopped {
                        drop(stopped);
                        if ledger.template.is_some() {
                            ledger.record(&partial);
                        } else {
                            // Errors are left to the final fsync, which reports them.
                            let _ = partial.file.sync_data();
                        }
                        stopped = lock.lock().expect("poisoned");
                    }
                }
            })
            .ok()?;
        Some(Flusher { stop, thread })
    }

    /// Waits for room in the window, if there is one; `None` when there is none or it was
    /// closed by a failed write (which [`HashSink::failure`] then reports).
    pub async fn room(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(self.window.as_ref()?).acquire_owned().await.ok()
    }

    /// Queues `lease`'s bytes to be written at `offset`, then hashed.
    pub fn send(&self, offset: u64, lease: Lease, permit: Option<OwnedSemaphorePermit>) {
        if let Some(tx) = &self.tx {
            // The writers only stop after `finish`; a send error means they panicked, which
            // `finish` reports.
            let _ = tx.send(Piece {
                offset,
                bytes: Bytes::Received(lease),
                _permit: permit,
            });
        }
    }

    /// Hands the hasher `[start, end)`, kept on disk from an earlier run.
    pub fn send_kept(&self, start: u64, end: u64) {
        if let Some(tx) = &self.to_hasher {
            let _ = tx.send(Piece {
                offset: start,
                bytes: Bytes::Kept(end - start),
                _permit: None,
            });
        }
    }

    /// Closes the window: no new chunk starts, and connections waiting for room stop.
    pub fn close(&self) {
        if let Some(w) = &self.window {
            w.close();
        }
    }

    /// The first failure so far, taken out (it is reported once).
    pub fn failure(&self) -> Option<Error> {
        self.failed.lock().ok()?.take()
    }

    /// Waits for everything sent to be written and hashed, and returns the hasher. The last
    /// record is left as it is: a finished download needs none.
    pub fn finish(mut self) -> Result<Hashes> {
        self.record_on_drop = false;
        let hasher = self.join();
        if let Some(e) = self.failure() {
            return Err(e);
        }
        hasher.ok_or_else(|| {
            catalog_core::Error::io(
                "hash",
                &self.partial.part_path,
                std::io::Error::other("a writing or hashing thread panicked"),
            )
            .into()
        })
    }

    /// Waits for everything sent to be written and hashed, and records it for the next run.
    pub fn abandon(self) {
        drop(self);
    }

    fn join(&mut self) -> Option<Hashes> {
        drop(self.tx.take());
        let writers_ok = self.writers.drain(..).all(|w| w.join().is_ok());
        drop(self.to_hasher.take());
        let hasher = self.hasher.take()?.join().ok();
        if let Some(Flusher { stop, thread }) = self.flusher.take() {
            let (lock, wake) = &*stop;
            *lock.lock().expect("poisoned") = true;
            wake.notify_all();
            let _ = thread.join();
        }
        hasher.filter(|_| writers_ok)
    }
}

impl Drop for HashSink {
    /// On an error path, still wait for the writers and the hasher, and record what reached
    /// the disk, before the process moves on or exits.
    fn drop(&mut self) {
        self.join();
        if self.record_on_drop {
            self.ledger.record(&self.partial);
        }
    }
}

/// The flusher thread, and how to stop it.
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

/// What one writer thread works with.
struct WriteStage {
    rx: Arc<Mutex<mpsc::Receiver<Piece>>>,
    to_hasher: mpsc::Sender<Piece>,
    failed: Arc<Mutex<Option<Error>>>,
    window: Option<Arc<Semaphore>>,
    partial: Partial,
    ledger: Arc<Ledger>,
}

impl WriteStage {
    /// Writes pieces until the sending side hangs up. After a failure it still writes what
    /// arrives (the chunks already in flight), so that the next run keeps as much as the disk
    /// allowed.
    fn run(self) {
        loop {
            let next = match self.rx.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok(piece) = next else {
                return;
            };
            let Bytes::Received(lease) = &piece.bytes else {
                drop(self.to_hasher.send(piece));
                continue;
            };
            let bytes = lease.buf().bytes();
            let end = piece.offset + bytes.len() as u64;
            match self
                .partial
                .writer
                .write_at(&self.partial.file, bytes, piece.offset)
            {
                Ok(()) => {
                    self.ledger.written(piece.offset, end);
                    drop(self.to_hasher.send(piece));
                }
                Err(e) => {
                    let e = catalog_core::Error::io("write", &self.partial.part_path, e);
                    fail(&self.failed, self.window.as_ref(), e.into());
                }
            }
        }
    }
}

/// What the hasher thread works with.
struct HashStage {
    hasher: Hashes,
    partial: Partial,
    ledger: Arc<Ledger>,
    failed: Arc<Mutex<Option<Error>>>,
    window: Option<Arc<Semaphore>>,
}

impl HashStage {
    /// Hashes the pieces in file order as they come, until every sender has hung up.
    fn run(mut self, rx: mpsc::Receiver<Piece>) -> Hashes {
        let mut pending: BTreeMap<u64, Piece> = BTreeMap::new();
        for piece in rx {
            pending.insert(piece.offset, piece);
            while let Some(piece) = pending.remove(&self.hasher.bytes()) {
                match piece.bytes {
                    Bytes::Received(lease) => self.hasher.update(lease.buf().bytes()),
                    Bytes::Kept(len) => {
                        let at = self.hasher.bytes();
                        if let Err(e) = self.partial.hash_range(&mut self.hasher, at, len) {
                            fail(&self.failed, self.window.as_ref(), e);
                            return self.hasher;
                        }
                    }
                }
                self.ledger.hashed(&self.hasher);
            }
        }
        self.hasher
    }
}

/// Records the first failure and closes the window, so that no new chunk starts.
fn fail(failed: &Mutex<Option<Error>>, window: Option<&Arc<Semaphore>>, e: Error) {
    if let Ok(mut first) = failed.lock() {
        first.get_or_insert(e);
    }
    if let Some(w) = window {
        w.close();
    }
}
