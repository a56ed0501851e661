//! [`DownloadConfig`]: how downloads are made.

use std::time::Duration;

use super::retry::RetryPolicy;

/// How downloads are made. The defaults suit a 2-core machine on a fast link.
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// Ranged requests in flight at once for one large file (1 disables parallel ranges).
    pub connections: usize,
    /// Size of each ranged request, and of each buffer. Large chunks mean large direct writes,
    /// which the disk takes faster.
    pub chunk_size: u64,
    /// Files smaller than this are fetched in one stream.
    pub parallel_threshold: u64,
    /// Bytes of buffers all downloads of one [`Downloader`](super::Downloader) may hold at once,
    /// however many files are fetched in parallel. Never less than one chunk.
    pub memory_budget: u64,
    /// What is retried, how often, and how long to wait in between.
    pub retry: RetryPolicy,
    /// A request that delivers no byte for this long is abandoned and retried.
    pub stall_timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Write around the page cache (`O_DIRECT`) where the platform and file system allow it.
    /// Measured: filling the page cache was the slowest step of a loopback download, and the
    /// fsync before publishing then had the whole file to write back.
    pub direct_io: bool,
    /// A PEM file of root certificates trusted for HTTPS besides the system's (a private CA,
    /// as `AWS_CA_BUNDLE` names one).
    pub ca_bundle: Option<std::path::PathBuf>,
    /// A cap on the bytes per second, shared by every transfer of every engine given a clone
    /// of it (downloads, and the uploads that read their bodies through it).
    pub rate_limit: Option<crate::RateLimit>,
    /// A flag that stops the downloads of this configuration's engines (see [`Cancel`]).
    ///
    /// [`Cancel`]: crate::Cancel
    pub cancel: Option<crate::Cancel>,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            connections: 4,
            chunk_size: 16 << 20,
            parallel_threshold: 64 << 20,
            memory_budget: 128 << 20,
            retry: RetryPolicy::default(),
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            direct_io: true,
            ca_bundle: None,
            rate_limit: None,
            cancel: None,
        }
    }
}

/// Ranged requests in flight for one object from an object store, unless configured.
pub const OBJECT_STORE_CONNECTIONS: usize = 10;
/// Size of each ranged request to an object store, unless configured.
pub const OBJECT_STORE_CHUNK: u64 = 8 << 20;

impl DownloadConfig {
    /// This configuration shaped for an object store: [`OBJECT_STORE_CONNECTIONS`] ranges of
    /// [`OBJECT_STORE_CHUNK`] in flight, the shape the AWS CLI uses too. Measured against an S3
    /// server that reads its files in small pieces on a 2-core machine: its CPU per byte fell
    /// as more ranges were read at once (6.8 s of CPU for 2 GiB at 4 connections, 5.6 s at 10),
    /// and the download with it (6.4–6.8 s against 4.9–5.1 s). Smaller chunks keep the ranges
    /// in flight within the same memory budget.
    #[must_use]
    pub fn for_object_store(self) -> Self {
        DownloadConfig {
            connections: OBJECT_STORE_CONNECTIONS,
            chunk_size: OBJECT_STORE_CHUNK,
            ..self
        }
    }

    /// The budget in force: the configured one, but at least one chunk and one stream piece.
    pub fn effective_budget(&self) -> u64 {
        self.memory_budget
            .max(self.chunk_size)
            .max(super::engine::SEQUENTIAL_PIECE as u64)
    }
}
