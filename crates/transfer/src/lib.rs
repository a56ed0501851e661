//! The download engine shared by every network fetcher: resumable, parallel, verified.
//!
//! A fetcher describes one download as a [`Download`]: a [`RequestSource`] that builds each
//! request (and may sign it, or refresh its credentials after a `401`), what is [`Expected`]
//! of the bytes (size and digest, when known), and the id to name in errors. The engine does
//! the rest: it streams the bytes into `<cache>/tmp/dl-<key>.part`, hashes them in file order
//! as they arrive, resumes what an earlier run left, retries what failed, and hands back a
//! synced file whose size and digest are checked, ready to publish.
//!
//! | module | its one job |
//! |---|---|
//! | [`config`](DownloadConfig) | what can be tuned, and the defaults |
//! | `engine` | the state machine: probe, then resume, restart, stream, or fetch in parallel |
//! | `source` | [`RequestSource`]: who builds requests; [`UrlSource`] for plain URLs |
//! | `range` | `Range`/`If-Range`/`Content-Range`, validators, which ranges a run fetches |
//! | `resume` | the partial file and its resume record |
//! | `sink` | writer threads, the hasher, and the flusher that syncs and records |
//! | `budget` | the memory all downloads of one engine share, as leased buffers |
//! | `retry` | [`RetryPolicy`]: what is retried, and the failure of one attempt |
//! | `room` | [`ensure_room`]: free space for what is still to come, checked before it comes |
//! | `direct` | page-aligned buffers and writes around the page cache |
//! | `checksum` | [`Checksum`]: an MD5 or CRC32C a source states, computed beside the sha256 |
//! | `rate` | [`RateLimit`]: a cap on the bytes per second of every transfer that shares it |
//! | `cancel` | [`Cancel`]: a flag that stops downloads between two reads, resumable |
//!
//! Resume: the record says what the bytes are (the expected digest, else the URL), the
//! remote's size and validators (`ETag`, `Last-Modified`), the in-order prefix that was hashed
//! and its SHA-256, and the chunks beyond it that were complete and synced. The next run
//! trusts the prefix if the remote is still the same (the request carries `If-Range`, unless
//! the digest names the bytes) and the prefix still hashes to the recorded value; it fetches
//! only the ranges that are missing, and reads the kept chunks back to hash them in order.
//! Anything else starts over from zero with the partial file truncated, so nothing stale is
//! ever appended. A server that ignores `Range` answers `200` with the whole body: the file is
//! streamed from its first byte.
//!
//! Errors name the URL without credentials or query.

#![deny(missing_docs)]

mod body;
mod budget;
mod cancel;
mod checksum;
mod config;
mod direct;
mod engine;
mod error;
mod range;
mod rate;
mod resume;
mod retry;
mod room;
mod sink;
mod source;

use catalog_core::{CacheLayout, Digest, StagedFile};
use std::sync::OnceLock;

pub use body::{BodyError, read_bounded};
pub use cancel::Cancel;
pub use checksum::{Checksum, ChecksumKind};
pub use config::{DownloadConfig, OBJECT_STORE_CHUNK, OBJECT_STORE_CONNECTIONS};
pub use error::{Error, Result};
pub use rate::{ParseRateError, RateLimit};
pub use retry::RetryPolicy;
pub use retry::untrusted_certificate;
pub use retry::{Failure, with_retries};
pub use room::{MIN_MARGIN, Planned, ensure_room, margin, required, still_to_come};
pub use source::{BoxFuture, RequestSource, UrlSource};
pub use source::{Call, Clients, call, send};
pub use source::{Reauthorize, Unanswered, send_built};

use mp_progress::Progress;

/// What the bytes of a download must be, as far as the caller knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// The size in bytes; a server that states another fails the download at once.
    pub size: Option<u64>,
    /// The digest; a mismatch fails the download before anything is published. When known,
    /// it also names the partial file, so that a download resumes from wherever the same
    /// bytes are served.
    pub digest: Option<&'a Digest>,
    /// A checksum the source states (an object store's MD5 or CRC32C), computed in the same
    /// pass as the sha256; a mismatch fails the download before anything is published.
    pub checksum: Option<&'a Checksum>,
}

/// One file to download.
pub struct Download<'a> {
    /// Builds every request.
    pub source: &'a dyn RequestSource,
    /// What the bytes must be.
    pub expected: Expected<'a>,
    /// The id to name in a mismatch error.
    pub id: &'a str,
    /// A stable lowercase-hex key naming the partial file, so that a later run resumes it (see
    /// [`partial_key`]). `None` for content-addressed bytes: the expected digest names it, so
    /// that the same blob resumes from any location (else a hash of the URL does).
    pub key: Option<&'a str>,
}

impl std::fmt::Debug for Download<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("source", &self.source.display())
            .field("expected", &self.expected)
            .field("id", &self.id)
            .field("key", &self.key)
            .finish()
    }
}

/// A client with `config`'s connect timeout, the extra `roots` and our user agent.
fn build_client(
    roots: &[reqwest::Certificate],
    config: &DownloadConfig,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client> {
    roots
        .iter()
        .fold(builder, |b, root| b.add_root_certificate(root.clone()))
        .user_agent(concat!("model-provisioner/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout)
        .build()
        .map_err(|e| Error::Setup {
            what: "build the HTTP client",
            source: Box::new(e.without_url()),
        })
}

/// A finished, synced, verified download, staged under `tmp/`.
#[derive(Debug)]
pub struct Downloaded {
    /// The staged file, ready for [`CacheLayout::publish_blob`].
    pub staged: StagedFile,
    /// Bytes received over the network by this run (less than the size after a resume).
    pub transferred: u64,
    /// Bytes kept from an earlier, interrupted run.
    pub resumed: u64,
    /// The remote's `ETag`, if it sent one.
    pub etag: Option<String>,
}

/// The download engine: an HTTP client on its own runtime, and the memory budget its downloads
/// share. One engine serves any number of downloads at once, from any threads.
#[derive(Debug)]
pub struct Downloader {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// For downloads whose source follows redirects itself ([`RequestSource::sees_redirects`]),
    /// built on first use: only a registry's blobs need it, and each client loads the
    /// system's root certificates.
    manual: OnceLock<reqwest::Client>,
    /// The extra roots of `DownloadConfig::ca_bundle`, for the clients built later.
    roots: Vec<reqwest::Certificate>,
    /// For API calls that must see redirects rather than follow them.
    api: reqwest::Client,
    config: DownloadConfig,
    budget: budget::Budget,
}

impl Downloader {
    /// An engine with `config`.
    pub fn new(config: DownloadConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("model-provisioner-io")
            .build()
            .map_err(|e| Error::Setup {
                what: "start the download runtime",
                source: Box::new(e),
            })?;
        let roots = match &config.ca_bundle {
            Some(path) => read_ca_bundle(path)?,
            None => Vec::new(),
        };
        let client = build_client(
            &roots,
            &config,
            reqwest::Client::builder().read_timeout(config.stall_timeout),
        )?;
        let api = build_client(
            &roots,
            &config,
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(60)),
        )?;
        Ok(Downloader {
            runtime,
            client,
            manual: OnceLock::new(),
            roots,
            api,
            budget: budget::Budget::new(config.effective_budget()),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DownloadConfig {
        &self.config
    }

    /// The HTTP client, for fetchers that make API calls of their own.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The clients `source`'s requests are sent with: the engine's own, or, for a source that
    /// follows its own redirects, one that follows none (built the first time).
    pub fn clients(&self, source: &dyn RequestSource) -> Result<source::Clients<'_>> {
        let request = if source.sees_redirects() {
            match self.manual.get() {
                Some(client) => client,
                None => {
                    let built = build_client(
                        &self.roots,
                        &self.config,
                        reqwest::Client::builder()
                            .read_timeout(self.config.stall_timeout)
                            .redirect(reqwest::redirect::Policy::none()),
                    )?;
                    self.manual.get_or_init(|| built)
                }
            }
        } else {
            &self.client
        };
        Ok(source::Clients {
            request,
            auth: &self.client,
        })
    }

    /// A client for API calls that does not follow redirects (so that a fetcher can read a
    /// redirect's headers, or follow it itself), with the same roots and connect timeout, and
    /// 60 s for a whole request.
    pub fn api_client(&self) -> &reqwest::Client {
        &self.api
    }

    /// Runs `fut` on the engine's runtime. Must not be called from inside an async context.
    pub fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
        self.runtime.block_on(fut)
    }

    /// The most bytes of buffers this engine's downloads held at once so far. Never more than
    /// [`DownloadConfig::memory_budget`] (or one chunk, if that is larger).
    pub fn memory_peak(&self) -> u64 {
        self.budget.peak()
    }

    /// Downloads `dl` into the cache's `tmp/`, resuming an earlier partial download of the
    /// same bytes when it is still valid, and verifies it against `dl.expected`. A `404` fails
    /// with the source's [`not_found`](RequestSource::not_found) error, when it has one.
    pub fn fetch(
        &self,
        layout: &CacheLayout,
        dl: &Download<'_>,
        progress: &dyn Progress,
    ) -> Result<Downloaded> {
        layout.create_dir(&layout.tmp_dir())?;
        let key = match (dl.key, dl.expected.digest) {
            (Some(key), _) => key.to_owned(),
            (None, Some(digest)) => digest.value().to_owned(),
            (None, None) => partial_key(dl.source.display()),
        };
        if self
            .config
            .cancel
            .as_ref()
            .is_some_and(Cancel::is_cancelled)
        {
            return Err(Error::Cancelled);
        }
        let (part_path, state_path) = layout.partial_paths(&key)?;
        let partial = resume::Partial::open(part_path, state_path, self.config.direct_io)?;
        let _active = self.budget.active();
        self.runtime
            .block_on(engine::Run::new(self, layout.root(), dl, partial, progress).fetch())
            .map_err(|e| match e {
                Error::Download {
                    status: Some(404), ..
                } => dl.source.not_found().unwrap_or(e),
                e => e,
            })
    }
}

/// A download engine built on first use and shared by its clones: fetchers holding clones of
/// one `Engine` share its runtime, its connections and its memory budget, and a cache hit never
/// pays for starting it.
#[derive(Debug, Clone)]
pub struct Engine {
    config: DownloadConfig,
    cell: std::sync::Arc<std::sync::OnceLock<Downloader>>,
}

impl Engine {
    /// An engine that will be built with `config` when first used.
    pub fn new(config: DownloadConfig) -> Self {
        Engine {
            config,
            cell: std::sync::Arc::default(),
        }
    }

    /// The configuration it is (or will be) built with.
    pub fn config(&self) -> &DownloadConfig {
        &self.config
    }

    /// The engine, built now if this is the first use.
    pub fn get(&self) -> Result<&Downloader> {
        if let Some(engine) = self.cell.get() {
            return Ok(engine);
        }
        let engine = Downloader::new(self.config.clone())?;
        Ok(self.cell.get_or_init(|| engine))
    }
}

/// The certificates of a PEM bundle; a file that is missing, unreadable or holds none fails
/// with an error naming it.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let refused = |reason: String| Error::CaBundle {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| {
        refused(format!(
            "it holds no readable certificate ({})",
            e.without_url()
        ))
    })?;
    if certificates.is_empty() {
        return Err(refused("it holds no PEM certificate".to_owned()));
    }
    Ok(certificates)
}

/// Drives every future at once on the current task and returns their outputs, in their order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(&mut outputs) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A stable key for the partial file of `id`: the first 32 hex digits of its SHA-256.
pub fn partial_key(id: &str) -> String {
    Digest::sha256_of(id.as_bytes()).value()[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_bundle_adds_its_certificates_or_fails_naming_the_file() -> Result<()> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, include_str!("test-ca.pem")).expect("the CA written");
        assert_eq!(read_ca_bundle(&pem)?.len(), 1);
        let engine = Downloader::new(DownloadConfig {
            ca_bundle: Some(pem),
            ..DownloadConfig::default()
        });
        assert!(engine.is_ok(), "{:?}", engine.err());

        let missing = dir.path().join("absent.pem");
        let err = read_ca_bundle(&missing).unwrap_err();
        assert!(matches!(err, Error::CaBundle { .. }), "{err}");
        assert!(err.to_string().contains("absent.pem"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("the file written");
        let err = read_ca_bundle(&garbage).unwrap_err();
        assert!(err.to_string().contains("CA bundle"), "{err}");
        Ok(())
    }
}
