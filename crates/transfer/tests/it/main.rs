//! The download engine against a scripted fault server on loopback: request sources that
//! sign every request and refresh their credentials, redirects, and the memory budget that
//! the downloads of one engine share.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::Digest;
use mp_transfer::{
    BoxFuture, Checksum, ChecksumKind, Download, DownloadConfig, Downloaded, Downloader, Error,
    Expected, RequestSource, RetryPolicy, UrlSource,
};
use test_support::{Answer, FaultServer, Hold, random_bytes as bytes};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Small chunks and quick retries, so that parallel ranges and retries show at test sizes.
fn config() -> DownloadConfig {
    DownloadConfig {
        connections: 4,
        chunk_size: 256 << 10,
        parallel_threshold: 1 << 20,
        retry: RetryPolicy {
            retries: 3,
            backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        stall_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(2),
        direct_io: true,
        ..DownloadConfig::default()
    }
}

#[test]
fn authorization_goes_to_the_endpoint_only_and_is_dropped_on_a_redirect_elsewhere() -> TestResult {
    let body = bytes(20_000, 14);
    let elsewhere = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    let endpoint = FaultServer::start(Vec::new(), vec![Answer::Redirect(elsewhere.url("blob"))]);
    let cache = tempfile::tempdir()?;
    let layout = catalog_core::CacheLayout::new(cache.path())?;
    let url: url::Url = endpoint.url("org/repo/resolve/main/m.gguf").parse()?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, "Bearer hf_SECRET".parse()?);
    let engine = Downloader::new(config())?;
    let downloaded = engine.fetch(
        &layout,
        &Download {
            source: &UrlSource::new(url.clone(), url.as_str(), headers),
            expected: Expected {
                size: Some(20_000),
                digest: Some(&Digest::sha256_of(&body)),
                checksum: None,
            },
            id: "test",
            key: None,
        },
        &NoProgressBar,
    )?;
    assert_eq!(downloaded.staged.size, 20_000);
    assert_eq!(
        endpoint.authorizations(),
        [Some("Bearer hf_SECRET".to_owned())]
    );
    assert!(
        elsewhere.authorizations().iter().all(Option::is_none),
        "{:?}",
        elsewhere.authorizations()
    );
    Ok(())
}

/// Progress that shows nothing.
struct NoProgressBar;

impl mp_progress::Progress for NoProgressBar {
    fn advance(&self, _: u64) {}
}

/// A source that signs every request with the credentials in force, as S3 (a signature per
/// request) or an OCI registry (a bearer token that expires) needs, and counts what it built.
struct Signing {
    url: url::Url,
    token: std::sync::Mutex<String>,
    built: std::sync::atomic::AtomicUsize,
    refreshes: std::sync::atomic::AtomicUsize,
    can_refresh: bool,
}

impl Signing {
    fn new(url: &str, can_refresh: bool) -> Result<Self, url::ParseError> {
        Ok(Signing {
            url: url.parse()?,
            token: std::sync::Mutex::new("old".to_owned()),
            built: 0.into(),
            refreshes: 0.into(),
            can_refresh,
        })
    }
}

impl RequestSource for Signing {
    fn display(&self) -> &str {
        self.url.as_str()
    }

    fn request(
        &self,
        client: &reqwest::Client,
        headers: reqwest::header::HeaderMap,
    ) -> reqwest::RequestBuilder {
        use std::sync::atomic::Ordering;
        let n = self.built.fetch_add(1, Ordering::SeqCst);
        let token = self.token.lock().unwrap().clone();
        // The range is part of what is signed, as SigV4 does with the headers it covers.
        let range = headers
            .get(reqwest::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("all")
            .to_owned();
        client
            .get(self.url.clone())
            .headers(headers)
            .bearer_auth(format!("{token}.{n}.{range}"))
    }

    fn reauthorize<'a>(
        &'a self,
        _: &'a reqwest::Client,
        status: reqwest::StatusCode,
        _: &'a reqwest::header::HeaderMap,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
            if !self.can_refresh {
                return false;
            }
            self.refreshes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            "new".clone_into(&mut self.token.lock().unwrap());
            true
        })
    }
}

fn engine_fetch(
    engine: &Downloader,
    cache: &Path,
    source: &dyn RequestSource,
    body: &[u8],
) -> Result<Downloaded, Error> {
    let layout = catalog_core::CacheLayout::new(cache)?;
    let digest = Digest::sha256_of(body);
    engine.fetch(
        &layout,
        &Download {
            source,
            expected: Expected {
                size: Some(body.len() as u64),
                digest: Some(&digest),
                checksum: None,
            },
            id: "test",
            key: None,
        },
        &NoProgressBar,
    )
}

#[test]
fn a_401_in_the_middle_of_a_parallel_download_is_recovered_by_one_refresh() -> TestResult {
    use std::sync::atomic::Ordering;
    let body = bytes(3 << 20, 16);
    // The probe and two ranges go through; the fourth request is refused, as when a token
    // expires in the middle of a pull.
    let server = FaultServer::start(
        body.clone(),
        vec![
            Answer::Serve { ranges: true },
            Answer::Serve { ranges: true },
            Answer::Serve { ranges: true },
            Answer::Status(401),
            Answer::Serve { ranges: true },
        ],
    );
    let cache = tempfile::tempdir()?;
    let source = Signing::new(&server.url("blob"), true)?;
    let engine = Downloader::new(config())?;
    let downloaded = engine_fetch(&engine, cache.path(), &source, &body)?;
    assert_eq!(std::fs::read(downloaded.staged.path())?, body);
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    // Every request was built afresh by the source: one call each, one signature each.
    let auths: Vec<String> = server.authorizations().into_iter().flatten().collect();
    assert_eq!(source.built.load(Ordering::SeqCst), server.requests());
    assert_eq!(auths.len(), server.requests());
    let distinct: std::collections::BTreeSet<_> = auths.iter().collect();
    assert_eq!(distinct.len(), auths.len(), "{auths:?}");
    // The refused request was sent again with the new credentials, for the same range.
    let refused = &auths[3];
    assert!(refused.starts_with("Bearer old."), "{refused}");
    let range = refused.rsplit('.').next().unwrap_or_default();
    assert!(
        auths[4..]
            .iter()
            .any(|a| a.starts_with("Bearer new.") && a.ends_with(&format!(".{range}"))),
        "{auths:?}"
    );
    assert!(server.requests() > 8, "parallel ranges: {auths:?}");
    Ok(())
}

#[test]
fn a_401_that_no_refresh_can_fix_fails_at_once_with_its_status() -> TestResult {
    use std::sync::atomic::Ordering;
    let body = bytes(100_000, 17);
    let server = FaultServer::start(body.clone(), vec![Answer::Status(401)]);
    let cache = tempfile::tempdir()?;
    let engine = Downloader::new(config())?;
    // A source without fresh credentials: one request, no retry.
    let stale = Signing::new(&server.url("blob"), false)?;
    let err = engine_fetch(&engine, cache.path(), &stale, &body).expect_err("401");
    assert!(
        matches!(
            err,
            Error::Download {
                status: Some(401),
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.requests(), 1);
    // A source that refreshes, against a server that still refuses: sent once more, then the
    // 401 is the answer.
    let refreshing = Signing::new(&server.url("blob"), true)?;
    let err = engine_fetch(&engine, cache.path(), &refreshing, &body).expect_err("401");
    assert!(
        matches!(
            err,
            Error::Download {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(refreshing.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(server.requests(), 3);
    Ok(())
}

#[test]
fn parallel_downloads_of_one_engine_share_one_memory_budget() -> TestResult {
    assert_eq!(DownloadConfig::default().memory_budget, 128 << 20);
    // Four files at once, each in parallel 256 KiB ranges with a window of eight: without a
    // shared budget they would hold 8 MiB of buffers.
    let budget = 4 << 20;
    let engine = Downloader::new(DownloadConfig {
        memory_budget: budget,
        ..config()
    })?;
    let files: Vec<_> = (0..4).map(|i| bytes(6 << 20, 20 + i)).collect();
    let servers: Vec<_> = files
        .iter()
        .map(|b| FaultServer::start(b.clone(), vec![Answer::Serve { ranges: true }]))
        .collect();
    let cache = tempfile::tempdir()?;
    std::thread::scope(|s| {
        let runs: Vec<_> = files
            .iter()
            .zip(&servers)
            .map(|(body, server)| {
                let engine = &engine;
                let cache = cache.path();
                s.spawn(move || -> Result<(), String> {
                    let source = UrlSourceFor::new(&server.url("f"));
                    let d =
                        engine_fetch(engine, cache, &source.0, body).map_err(|e| e.to_string())?;
                    (d.staged.size == body.len() as u64)
                        .then_some(())
                        .ok_or_else(|| "short".to_owned())
                })
            })
            .collect();
        for run in runs {
            run.join().expect("no panic")?;
        }
        Ok::<(), String>(())
    })?;
    assert!(servers.iter().all(|s| s.requests() > 8), "parallel ranges");
    let peak = engine.memory_peak();
    assert!(peak > 0 && peak <= budget, "peak {peak} of {budget}");
    Ok(())
}

#[test]
fn downloads_that_share_a_small_budget_never_wait_on_each_other_forever() -> TestResult {
    // Room for two chunks, and three files fetched at once in parallel ranges. Each server
    // holds the body of the probe (the first chunk) until all three hold: meanwhile the later
    // chunks are there for the taking. If those could take the whole budget, each download
    // would wait for a buffer for its first chunk while the hasher waits for that chunk.
    // (The budget in force is at least one 4 MiB stream piece: chunks of 2 MiB make it two.)
    let chunk: u64 = 2 << 20;
    let engine = Arc::new(Downloader::new(DownloadConfig {
        chunk_size: chunk,
        memory_budget: 2 * chunk,
        ..config()
    })?);
    let cache = tempfile::tempdir()?;
    let files: Vec<Vec<u8>> = (0..3).map(|i| bytes(8 << 20, 40 + i)).collect();
    let servers: Vec<Arc<FaultServer>> = files
        .iter()
        .map(|b| {
            let server = FaultServer::start(b.clone(), vec![Answer::Serve { ranges: true }]);
            server.hold(Hold::AtOffset(chunk / 2));
            Arc::new(server)
        })
        .collect();
    let (done, finished) = std::sync::mpsc::channel();
    for (body, server) in files.iter().zip(&servers) {
        let (engine, server, body, done) =
            (engine.clone(), server.clone(), body.clone(), done.clone());
        let cache = cache.path().to_owned();
        std::thread::spawn(move || {
            let source = UrlSourceFor::new(&server.url("f"));
            let result = engine_fetch(&engine, &cache, &source.0, &body)
                .map(|d| d.staged.size)
                .map_err(|e| e.to_string());
            let _ = done.send(result);
        });
    }
    for server in &servers {
        assert!(
            server.wait_held(Duration::from_secs(60)),
            "no probe was held"
        );
    }
    for server in &servers {
        server.release();
    }
    for _ in &files {
        // Generous: the three files take well under a second when nothing is stuck.
        let size = finished
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| "the downloads are stuck waiting for memory")??;
        assert_eq!(size, 8 << 20);
    }
    assert!(engine.memory_peak() <= 2 * chunk);
    Ok(())
}

/// A plain [`UrlSource`](UrlSource) for a URL.
struct UrlSourceFor(UrlSource);

impl UrlSourceFor {
    fn new(url: &str) -> Self {
        UrlSourceFor(UrlSource::new(
            url.parse().expect("a URL"),
            url,
            reqwest::header::HeaderMap::new(),
        ))
    }
}

/// A download of `body` from `server`, checked against `checksum` (and the body's size only).
fn fetch_checked(
    engine: &Downloader,
    cache: &Path,
    server: &FaultServer,
    body: &[u8],
    checksum: &Checksum,
) -> Result<Downloaded, Error> {
    let layout = catalog_core::CacheLayout::new(cache)?;
    let url: url::Url = server.url("bucket/object").parse().expect("a URL");
    engine.fetch(
        &layout,
        &Download {
            source: &UrlSource::new(url.clone(), url.as_str(), reqwest::header::HeaderMap::new()),
            expected: Expected {
                size: Some(body.len() as u64),
                digest: None,
                checksum: Some(checksum),
            },
            id: "bucket/object",
            key: Some("0bec7"),
        },
        &NoProgressBar,
    )
}

#[test]
fn a_stated_checksum_is_computed_in_the_same_pass_whether_streamed_or_in_parallel_ranges()
-> TestResult {
    // One body below the parallel threshold (one stream), one above (parallel ranges).
    for (size, seed) in [(200_000, 31), (3 << 20, 32)] {
        let body = bytes(size, seed);
        for kind in [ChecksumKind::Md5, ChecksumKind::Crc32c] {
            let right = Checksum::of(kind, &body);
            let wrong = Checksum::of(kind, b"other bytes");
            let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
            let engine = Downloader::new(config())?;
            let cache = tempfile::tempdir()?;
            let downloaded = fetch_checked(&engine, cache.path(), &server, &body, &right)?;
            assert_eq!(downloaded.staged.digest, Digest::sha256_of(&body));

            let cache = tempfile::tempdir()?;
            let refused = fetch_checked(&engine, cache.path(), &server, &body, &wrong);
            match refused {
                Err(Error::ChecksumMismatch {
                    file,
                    expected,
                    computed,
                }) => {
                    assert_eq!(
                        (file.as_str(), expected, computed),
                        ("bucket/object", wrong, right)
                    );
                }
                other => panic!("a wrong {kind:?} of {size} bytes gave {other:?}"),
            }
            let left: Vec<_> = std::fs::read_dir(cache.path().join("tmp"))?.collect();
            assert!(
                left.is_empty(),
                "nothing of a refused download is kept: {left:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn a_resumed_download_checks_the_checksum_of_its_kept_bytes_too() -> TestResult {
    // One stream, so that the first run keeps a prefix.
    let body = bytes(10 << 20, 33);
    let one_stream = DownloadConfig {
        connections: 1,
        ..config()
    };
    let cache = tempfile::tempdir()?;
    // For each kind, a first run cut after 6 MiB and not retried, then a run served whole.
    let cut = Answer::Cut { bytes: 6 << 20 };
    let serve = Answer::Serve { ranges: true };
    let server = FaultServer::start(body.clone(), vec![cut.clone(), serve.clone(), cut, serve]);
    let once = Downloader::new(DownloadConfig {
        retry: RetryPolicy {
            retries: 0,
            ..config().retry
        },
        ..one_stream.clone()
    })?;
    for kind in [ChecksumKind::Md5, ChecksumKind::Crc32c] {
        let right = Checksum::of(kind, &body);
        assert!(fetch_checked(&once, cache.path(), &server, &body, &right).is_err());
        // The next run keeps what the first received, and fetches the rest only: the checksum
        // holds over the kept prefix read back and the bytes that came after it.
        let engine = Downloader::new(one_stream.clone())?;
        let downloaded = fetch_checked(&engine, cache.path(), &server, &body, &right)?;
        assert!(
            downloaded.resumed > 0 && downloaded.resumed <= 6 << 20,
            "{kind:?}: the run resumed what the first received ({} bytes)",
            downloaded.resumed
        );
        assert_eq!(downloaded.staged.digest, Digest::sha256_of(&body));
    }
    Ok(())
}
